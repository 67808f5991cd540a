//! AddPartitionsToTxn. Versions 0-3 are the client form: one transaction's
//! partitions join it on its coordinator. Versions 4-5 are the broker form
//! (KIP-890): a batch of transactions, each either added the same way or, with
//! `verify_only`, only checked — which partitions are already in the ongoing
//! transaction — as a partition leader does before a transaction's first batch.
//! A partition leader on another broker sends it (`shard/remote_txn.rs`) before
//! a transactional batch; on one node that check is the `VerifyTxn` shard call
//! the produce path makes, and this form answers through the same coordinator
//! code.
//! Partitions the broker does not have are refused and, as in Kafka, the rest
//! of their transaction is then not attempted.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use crate::cluster::image::PartitionKey;
use crate::kafka::txn_routing;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::txn::requests::{AddToTxn, VerifyTxn};
use crate::txn::state::{TxnPartition, TxnVersion, error_code_for_client};
use crate::types::{ProducerEpoch, ProducerId};

/// The first version of the broker form (a batch of transactions, `verify_only`).
const FIRST_BATCHED_VERSION: i16 = 4;
/// The first version whose verify-only answer may be TRANSACTION_ABORTABLE.
const FIRST_ABORTABLE_VERSION: i16 = 5;

/// One transaction of a request, in either form.
struct Transaction {
    transactional_id: String,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    verify_only: bool,
    topics: Vec<AddPartitionsToTxnTopic>,
}

pub async fn handle(
    shard: &Rc<Shard>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version < FIRST_BATCHED_VERSION {
        let transaction = Transaction {
            transactional_id: request.v3_and_below_transactional_id.0.to_string(),
            producer_id: ProducerId(request.v3_and_below_producer_id.0),
            producer_epoch: ProducerEpoch(request.v3_and_below_producer_epoch),
            verify_only: false,
            topics: request.v3_and_below_topics,
        };
        let results = one_transaction(Rc::clone(shard), transaction, version).await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    // Each transaction has its own coordinator: ask them all at once. The
    // request's size bounds the number of tasks.
    let tasks: Vec<_> = request
        .transactions
        .into_iter()
        .map(|transaction| {
            let id = transaction.transactional_id.clone();
            let transaction = Transaction {
                transactional_id: transaction.transactional_id.0.to_string(),
                producer_id: ProducerId(transaction.producer_id.0),
                producer_epoch: ProducerEpoch(transaction.producer_epoch),
                verify_only: transaction.verify_only,
                topics: transaction.topics,
            };
            let task =
                glommio::spawn_local(one_transaction(Rc::clone(shard), transaction, version));
            (id, task)
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for (id, task) in tasks {
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(id)
                .with_topic_results(task.await),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// Adds (or verifies) one transaction's partitions and answers per partition,
/// in the request's order.
async fn one_transaction(
    shard: Rc<Shard>,
    transaction: Transaction,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let image = shard.image();
    let unknown = |(topic, partition): &TxnPartition| {
        let key = PartitionKey {
            topic: topic.clone(),
            partition: *partition,
        };
        // Any broker may lead the partition: the coordinator only needs it to
        // exist (Kafka checks the metadata cache, not leadership).
        image.partition(&key).is_none() || topic == crate::txn::TRANSACTION_STATE_TOPIC
    };
    let partitions: BTreeSet<TxnPartition> = transaction
        .topics
        .iter()
        .flat_map(|topic| {
            let name = topic.name.0.to_string();
            topic.partitions.iter().map(move |&p| (name.clone(), p))
        })
        .collect();
    let id = transaction.transactional_id;
    let outcomes: BTreeMap<TxnPartition, ErrorCode> = if partitions.iter().any(unknown) {
        partitions
            .into_iter()
            .map(|partition| {
                let error = if unknown(&partition) {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    ErrorCode::OperationNotAttempted
                };
                (partition, error)
            })
            .collect()
    } else if transaction.verify_only {
        let call = VerifyTxn {
            transactional_id: id.clone(),
            producer_id: transaction.producer_id,
            producer_epoch: transaction.producer_epoch,
            partitions: partitions.clone(),
        };
        match txn_routing::call(&shard, &id, call).await.and_then(|r| r) {
            Ok(missing) => partitions
                .into_iter()
                .map(|partition| {
                    let error = if missing.contains(&partition) {
                        not_in_transaction(version)
                    } else {
                        ErrorCode::None
                    };
                    (partition, error)
                })
                .collect(),
            Err(error) => partitions.into_iter().map(|p| (p, error)).collect(),
        }
    } else {
        let call = AddToTxn {
            transactional_id: id.clone(),
            producer_id: transaction.producer_id,
            producer_epoch: transaction.producer_epoch,
            partitions: partitions.clone(),
            // Only brokers send the batched form, for Produce v12 and
            // TxnOffsetCommit v5: those producers speak transaction version 2.
            client_version: if version >= FIRST_BATCHED_VERSION {
                TxnVersion::TV_2
            } else {
                TxnVersion::TV_0
            },
        };
        let error = txn_routing::call(&shard, &id, call)
            .await
            .unwrap_or_else(|error| error);
        let error = error_code_for_client(error, version >= 2);
        partitions.into_iter().map(|p| (p, error)).collect()
    };
    transaction
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    topic
                        .partitions
                        .iter()
                        .map(|&partition| {
                            let error = outcomes[&(name.clone(), partition)];
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(partition)
                                .with_partition_error_code(error.code())
                        })
                        .collect(),
                )
        })
        .collect()
}

/// The verify-only answer for a partition not in the ongoing transaction:
/// TRANSACTION_ABORTABLE from v5 (KIP-890: the producer aborts and goes on),
/// INVALID_TXN_STATE before, which a v4 requester knows.
fn not_in_transaction(version: i16) -> ErrorCode {
    if version >= FIRST_ABORTABLE_VERSION {
        ErrorCode::TransactionAbortable
    } else {
        ErrorCode::InvalidTxnState
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v5_requesters_are_told_the_transaction_is_abortable() {
        assert_eq!(not_in_transaction(4), ErrorCode::InvalidTxnState);
        assert_eq!(not_in_transaction(5), ErrorCode::TransactionAbortable);
    }
}
