//! DescribeTransactions: each id's state from the shard coordinating it; ids
//! coordinated by another broker are NOT_COORDINATOR.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::fan_out;
use crate::kafka::routing::coordinator_owner;
use crate::kafka::txn_routing::coordinator_partition;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::txn::TRANSACTION_STATE_TOPIC;
use crate::txn::listing::DescribeTxns;
use crate::txn::state::TxnMetadata;
use crate::types::ShardId;

pub async fn handle(
    shard: &Rc<Shard>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let ids: Vec<String> = request
        .transactional_ids
        .iter()
        .map(|id| id.0.to_string())
        .collect();
    let image = shard.image();
    let count = image
        .topic(TRANSACTION_STATE_TOPIC)
        .map(|topic| topic.partition_count());
    let mut results: Vec<Result<TxnMetadata, ErrorCode>> =
        vec![Err(ErrorCode::TransactionalIdNotFound); ids.len()];
    let mut per_shard: BTreeMap<ShardId, Vec<usize>> = BTreeMap::new();
    for (index, id) in ids.iter().enumerate() {
        // No __transaction_state: no transactional id exists yet.
        let Some(count) = count else { continue };
        let key = coordinator_partition(id, count);
        match coordinator_owner(image.route(&key)) {
            Ok(owner) => per_shard.entry(owner).or_default().push(index),
            Err(error) => results[index] = Err(error),
        }
    }
    let (indices, calls): (Vec<_>, Vec<_>) = per_shard
        .into_iter()
        .map(|(owner, indices)| {
            let call = DescribeTxns(indices.iter().map(|&i| ids[i].clone()).collect());
            (indices, (owner, call))
        })
        .unzip();
    for (indices, (_, replies)) in indices.into_iter().zip(fan_out(shard, calls).await) {
        for (index, reply) in indices.into_iter().zip(replies) {
            results[index] = reply;
        }
    }
    let states = ids
        .into_iter()
        .zip(results)
        .map(|(id, result)| describe(id, result))
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

fn describe(id: String, result: Result<TxnMetadata, ErrorCode>) -> TransactionState {
    let state = TransactionState::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id)));
    let metadata = match result {
        Ok(metadata) => metadata,
        Err(error) => {
            return state
                .with_error_code(error.code())
                .with_transaction_state(StrBytes::from_static_str(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
        }
    };
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in &metadata.partitions {
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == topic.as_str() => {
                last.partitions.push(*partition);
            }
            _ => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    state
        .with_transaction_state(StrBytes::from_static_str(metadata.state.name()))
        .with_transaction_timeout_ms(metadata.timeout_ms)
        .with_transaction_start_time_ms(metadata.start_timestamp.0)
        .with_producer_id(ProducerId(metadata.producer_id.0))
        .with_producer_epoch(metadata.producer_epoch.0)
        .with_topics(topics)
}
