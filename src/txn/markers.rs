//! WriteTxnMarkers, API-shaped: what a coordinator asks of a partition leader
//! once a transaction is decided. On one node it is a cross-shard call; with a
//! cluster it becomes the inter-broker request of the same name.

use crate::protocol::error_code::ErrorCode;
use crate::record::control::MarkerKind;
use crate::txn::state::TxnPartition;
use crate::types::{ProducerEpoch, ProducerId};

/// One transaction's markers for a set of partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarkers {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// The epoch of the `__transaction_state` partition that decided it, so a
    /// partition can refuse markers from a deposed coordinator.
    pub coordinator_epoch: i32,
    pub kind: MarkerKind,
    pub partitions: Vec<TxnPartition>,
}

/// A partition and how writing its marker went.
pub type MarkerResult = (TxnPartition, ErrorCode);

/// What the coordinator does with a partition after a marker attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerOutcome {
    /// The marker is written, or it never can be and waiting would only block
    /// the transactional id (a deleted topic, a producer already past this
    /// epoch): the partition is done.
    Done,
    /// Retriable: send it again after a backoff.
    Retry,
}

/// Kafka's TransactionMarkerRequestCompletionHandler rules, except that a stale
/// epoch drops the partition instead of stalling the id, so a transaction never
/// waits forever on one partition (a newer coordinator, if there is one, sends
/// its own markers). A partition without a leader (NOT_LEADER_OR_FOLLOWER) or a
/// leader that did not answer (NETWORK_EXCEPTION, REQUEST_TIMED_OUT) is retried.
pub fn outcome(error: ErrorCode) -> MarkerOutcome {
    match error {
        ErrorCode::None
        | ErrorCode::UnknownTopicOrPartition
        | ErrorCode::InvalidProducerEpoch
        | ErrorCode::TransactionCoordinatorFenced => MarkerOutcome::Done,
        _ => MarkerOutcome::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_retriable_errors_are_retried() {
        assert_eq!(outcome(ErrorCode::None), MarkerOutcome::Done);
        assert_eq!(
            outcome(ErrorCode::UnknownTopicOrPartition),
            MarkerOutcome::Done
        );
        assert_eq!(outcome(ErrorCode::KafkaStorageError), MarkerOutcome::Retry);
        assert_eq!(outcome(ErrorCode::RequestTimedOut), MarkerOutcome::Retry);
        assert_eq!(outcome(ErrorCode::NetworkException), MarkerOutcome::Retry);
        assert_eq!(
            outcome(ErrorCode::NotLeaderOrFollower),
            MarkerOutcome::Retry
        );
    }
}
