//! AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
//! producer's transaction, so the commit or abort marker reaches the offsets the
//! producer commits with TxnOffsetCommit.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::group::coordinator_key::{OFFSETS_TOPIC, partition_for};
use crate::kafka::group_routing::offsets_topic_partitions;
use crate::kafka::txn_routing;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::txn::requests::AddToTxn;
use crate::txn::state::error_code_for_client;
use crate::types::{ProducerEpoch, ProducerId};

pub async fn handle(
    shard: &Rc<Shard>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let error = add(shard, request).await;
    AddOffsetsToTxnResponse::default()
        .with_error_code(error_code_for_client(error, version >= 2).code())
}

async fn add(shard: &Rc<Shard>, request: AddOffsetsToTxnRequest) -> ErrorCode {
    let offsets_partitions = match offsets_topic_partitions(shard).await {
        Ok(count) => count,
        Err(error) => return error,
    };
    let partition = partition_for(&request.group_id.0, offsets_partitions);
    let id = request.transactional_id.0.to_string();
    let call = AddToTxn {
        transactional_id: id.clone(),
        producer_id: ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
        partitions: BTreeSet::from([(OFFSETS_TOPIC.to_string(), partition)]),
    };
    txn_routing::call(shard, &id, call)
        .await
        .unwrap_or_else(|error| error)
}
