//! AddPartitionsToTxn v0-3, the client form: the partitions join the producer's
//! transaction on its coordinator. Partitions the broker does not have are
//! refused and, as in Kafka, the rest are then not attempted.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use crate::cluster::image::PartitionKey;
use crate::kafka::txn_routing;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::txn::requests::AddToTxn;
use crate::txn::state::error_code_for_client;
use crate::types::{ProducerEpoch, ProducerId};

pub async fn handle(
    shard: &Rc<Shard>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let image = shard.image();
    let unknown = |topic: &str, partition: i32| {
        let key = PartitionKey {
            topic: topic.to_string(),
            partition,
        };
        image.owner_of(&key).is_none() || topic == crate::txn::TRANSACTION_STATE_TOPIC
    };
    let any_unknown = request.v3_and_below_topics.iter().any(|topic| {
        topic
            .partitions
            .iter()
            .any(|&partition| unknown(&topic.name.0, partition))
    });
    let outcome = |topic: &str, partition: i32, error: ErrorCode| {
        if !any_unknown {
            error
        } else if unknown(topic, partition) {
            ErrorCode::UnknownTopicOrPartition
        } else {
            ErrorCode::OperationNotAttempted
        }
    };
    let error = if any_unknown {
        ErrorCode::None
    } else {
        let partitions: BTreeSet<_> = request
            .v3_and_below_topics
            .iter()
            .flat_map(|topic| {
                let name = topic.name.0.to_string();
                topic.partitions.iter().map(move |&p| (name.clone(), p))
            })
            .collect();
        let id = request.v3_and_below_transactional_id.0.to_string();
        let call = AddToTxn {
            transactional_id: id.clone(),
            producer_id: ProducerId(request.v3_and_below_producer_id.0),
            producer_epoch: ProducerEpoch(request.v3_and_below_producer_epoch),
            partitions,
        };
        let error = txn_routing::call(shard, &id, call)
            .await
            .unwrap_or_else(|error| error);
        error_code_for_client(error, version >= 2)
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    topic
                        .partitions
                        .iter()
                        .map(|&partition| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(partition)
                                .with_partition_error_code(
                                    outcome(&topic.name.0, partition, error).code(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
