//! KIP-890 part 1 on the partition's owner: before a producer's first
//! transactional batch of a transaction on a partition, the coordinator is asked
//! whether the partition was added to the ongoing transaction, and the batch is
//! refused otherwise — so a late or stray batch cannot open a transaction that
//! no coordinator will ever end (a "hanging" transaction that stalls the last
//! stable offset). Later batches of the same transaction skip the check.
//!
//! With Produce v12 (`transaction.version` 2, KIP-890 part 2) the client sends
//! no AddPartitionsToTxn: the same first batch adds the partition to the
//! transaction on the coordinator instead, and is refused only if that fails.
//!
//! The coordinator is the leader of the transactional id's `__transaction_state`
//! partition: a shard of this node (a shard call), or another broker, asked
//! with AddPartitionsToTxn v5 as Kafka's brokers do ([`remote_txn`]).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::cluster::image::Route;
use crate::partition::append_rules::Refusal;
use crate::protocol::error_code::ErrorCode;
use crate::record::BatchHeader;
use crate::shard::Shard;
use crate::shard::calls::produce::ProduceItem;
use crate::shard::remote_txn::{self, TxnCheck};
use crate::txn::requests::{AddToTxn, VerifyTxn};
use crate::txn::state::{TxnPartition, TxnVersion};
use crate::types::{ProducerEpoch, ProducerId};

/// For each item, the refusal verification gives it, if any. `adds_partitions`:
/// add the partitions to the transaction rather than verify them (Produce v12).
pub async fn refusals(
    shard: &Rc<Shard>,
    transactional_id: &str,
    items: &[ProduceItem],
    adds_partitions: bool,
) -> Vec<Option<Refusal>> {
    let mut refusals: Vec<Option<Refusal>> = items.iter().map(|_| None).collect();
    // A request comes from one producer; grouping keeps a malformed one correct.
    let mut to_verify: BTreeMap<(ProducerId, ProducerEpoch), Vec<usize>> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        // A batch without a readable header is refused by validation.
        let Some(header) = item.records.as_deref().and_then(BatchHeader::parse) else {
            continue;
        };
        if !header.attributes().is_transactional() {
            continue;
        }
        let producer_id = ProducerId(header.producer_id.get());
        let open = shard
            .partition(&item.key)
            .is_ok_and(|partition| partition.has_ongoing_transaction(producer_id));
        if !open {
            to_verify
                .entry((producer_id, ProducerEpoch(header.producer_epoch.get())))
                .or_default()
                .push(index);
        }
    }
    if to_verify.is_empty() {
        return refusals;
    }
    let coordinator = shard.txn_coordinator_route(transactional_id);
    for ((producer_id, producer_epoch), indices) in to_verify {
        let partitions: BTreeSet<_> = indices
            .iter()
            .map(|&i| (items[i].key.topic.clone(), items[i].key.partition))
            .collect();
        let answers = match coordinator {
            Route::Local(coordinator) if adds_partitions => {
                let call = AddToTxn {
                    transactional_id: transactional_id.to_string(),
                    producer_id,
                    producer_epoch,
                    partitions,
                    client_version: TxnVersion::TV_2,
                };
                match shard.call(coordinator, call).await {
                    ErrorCode::None => Ok(BTreeMap::new()),
                    error => Err(error),
                }
            }
            Route::Local(coordinator) => {
                let call = VerifyTxn {
                    transactional_id: transactional_id.to_string(),
                    producer_id,
                    producer_epoch,
                    partitions,
                };
                shard.call(coordinator, call).await.map(|missing| {
                    missing
                        .into_iter()
                        .map(|partition| (partition, ErrorCode::InvalidTxnState))
                        .collect()
                })
            }
            Route::Remote { leader, .. } => {
                let check = TxnCheck {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    partitions: &partitions,
                    verify_only: !adds_partitions,
                };
                remote_txn::check_with_coordinator(shard, leader, &check).await
            }
            Route::Offline | Route::Unknown => Err(ErrorCode::CoordinatorNotAvailable),
        };
        for index in indices {
            let key = &items[index].key;
            refusals[index] = refusal(&answers, &(key.topic.clone(), key.partition));
        }
    }
    refusals
}

/// The refusal of a batch for `partition`, given the coordinator's answers
/// (per partition: NONE, or why not; partitions left out are fine) or its
/// error for the whole transaction.
fn refusal(
    answers: &Result<BTreeMap<TxnPartition, ErrorCode>, ErrorCode>,
    partition: &TxnPartition,
) -> Option<Refusal> {
    let error = match answers {
        Ok(answers) => answers.get(partition).copied().unwrap_or(ErrorCode::None),
        Err(error) => *error,
    };
    match error {
        ErrorCode::None => None,
        ErrorCode::InvalidTxnState if answers.is_ok() => Some(Refusal {
            message: Some("Partition was not added to the transaction".into()),
            ..Refusal::from(ErrorCode::InvalidTxnState)
        }),
        error => Some(Refusal::from(produce_error(error))),
    }
}

/// Kafka's translation of a failed verification for Produce: retriable
/// coordinator errors become NOT_ENOUGH_REPLICAS, which every client retries
/// without a metadata refresh, and a fenced producer sees
/// INVALID_PRODUCER_EPOCH.
fn produce_error(error: ErrorCode) -> ErrorCode {
    match error {
        ErrorCode::ConcurrentTransactions
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::NotCoordinator
        // A coordinator on another broker did not try this partition because
        // it did not know another one of the batch's yet.
        | ErrorCode::OperationNotAttempted => ErrorCode::NotEnoughReplicas,
        ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coordinators_answers_become_refusals_per_partition() {
        let p = |index| ("t".to_string(), index);
        let answers = Ok(BTreeMap::from([
            (p(0), ErrorCode::None),
            (p(1), ErrorCode::InvalidTxnState),
            (p(2), ErrorCode::ProducerFenced),
            (p(3), ErrorCode::OperationNotAttempted),
        ]));
        let refused = |partition| refusal(&answers, &p(partition));
        assert!(refused(0).is_none());
        assert!(refused(9).is_none(), "a partition not named is fine");
        let not_added = refused(1).expect("refused");
        assert_eq!(not_added.error, ErrorCode::InvalidTxnState);
        assert!(not_added.message.is_some());
        assert_eq!(
            refused(2).map(|r| r.error),
            Some(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            refused(3).map(|r| r.error),
            Some(ErrorCode::NotEnoughReplicas)
        );
        let unreachable =
            refusal(&Err(ErrorCode::CoordinatorNotAvailable), &p(0)).expect("refused");
        assert_eq!(unreachable.error, ErrorCode::NotEnoughReplicas);
        assert!(unreachable.message.is_none());
    }

    #[test]
    fn retriable_coordinator_errors_are_retried_by_every_client() {
        assert_eq!(
            produce_error(ErrorCode::ConcurrentTransactions),
            ErrorCode::NotEnoughReplicas
        );
        assert_eq!(
            produce_error(ErrorCode::ProducerFenced),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            produce_error(ErrorCode::InvalidProducerIdMapping),
            ErrorCode::InvalidProducerIdMapping
        );
    }
}
