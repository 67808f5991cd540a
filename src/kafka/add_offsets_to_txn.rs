//! AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
//! producer's transaction, so the commit or abort marker reaches the offsets the
//! producer commits with TxnOffsetCommit. TxnOffsetCommit v5
//! (`transaction.version` 2) adds the same partition implicitly.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::group::coordinator_key::{OFFSETS_TOPIC, partition_for};
use crate::kafka::group_routing::offsets_topic_partitions;
use crate::kafka::txn_routing;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::txn::requests::AddToTxn;
use crate::txn::state::{TxnVersion, error_code_for_client};
use crate::types::{ProducerEpoch, ProducerId};

pub async fn handle(
    shard: &Rc<Shard>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let producer = OffsetsProducer {
        transactional_id: request.transactional_id.0.to_string(),
        producer_id: ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
        client_version: TxnVersion::TV_0,
    };
    let error = add_offsets_partition(shard, &producer, &request.group_id.0).await;
    AddOffsetsToTxnResponse::default()
        .with_error_code(error_code_for_client(error, version >= 2).code())
}

/// The transactional producer committing a group's offsets.
pub struct OffsetsProducer {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub client_version: TxnVersion,
}

/// Adds the `__consumer_offsets` partition of `group` to the producer's
/// transaction.
pub async fn add_offsets_partition(
    shard: &Rc<Shard>,
    producer: &OffsetsProducer,
    group: &str,
) -> ErrorCode {
    let offsets_partitions = match offsets_topic_partitions(shard).await {
        Ok(count) => count,
        Err(error) => return error,
    };
    let partition = partition_for(group, offsets_partitions);
    let id = &producer.transactional_id;
    let call = AddToTxn {
        transactional_id: id.clone(),
        producer_id: producer.producer_id,
        producer_epoch: producer.producer_epoch,
        partitions: BTreeSet::from([(OFFSETS_TOPIC.to_string(), partition)]),
        client_version: producer.client_version,
    };
    txn_routing::call(shard, id, call)
        .await
        .unwrap_or_else(|error| error)
}
