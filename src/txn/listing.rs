//! DescribeTransactions and ListTransactions on one shard: what the coordinator
//! knows of the transactional ids it owns, for admin tools.

use std::rc::Rc;

use crate::protocol::error_code::ErrorCode;
use crate::txn::coordinator::owned_partition;
use crate::txn::host::TxnHost;
use crate::txn::state::{TxnMetadata, TxnState};
use crate::types::{ProducerId, TimestampMs};

/// DescribeTransactions for ids this shard coordinates.
#[derive(Debug)]
pub struct DescribeTxns(pub Vec<String>);

/// ListTransactions on one shard.
#[derive(Debug, Clone)]
pub struct ListTxns(pub ListFilter);

/// ListTransactions' filters; an empty list does not filter.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub states: Vec<TxnState>,
    pub producer_ids: Vec<ProducerId>,
    /// Only transactions started at least this long ago (v1); negative: all.
    pub min_duration_ms: i64,
}

/// A listed transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub state: TxnState,
}

impl ListFilter {
    /// Kafka's TransactionStateManager.listTransactionStates rule.
    pub fn matches(&self, metadata: &TxnMetadata, now: TimestampMs) -> bool {
        (self.states.is_empty() || self.states.contains(&metadata.state))
            && (self.producer_ids.is_empty() || self.producer_ids.contains(&metadata.producer_id))
            && (self.min_duration_ms < 0
                || metadata.start_timestamp.0 <= now.0.saturating_sub(self.min_duration_ms))
    }
}

impl DescribeTxns {
    pub fn serve(self, host: &Rc<dyn TxnHost>) -> Vec<Result<TxnMetadata, ErrorCode>> {
        self.0
            .iter()
            .map(|id| {
                owned_partition(host.as_ref(), id)?;
                host.txn_coordinator()
                    .ids
                    .borrow()
                    .get(id)
                    .cloned()
                    .ok_or(ErrorCode::TransactionalIdNotFound)
            })
            .collect()
    }
}

impl ListTxns {
    pub fn serve(self, host: &Rc<dyn TxnHost>) -> Vec<ListedTxn> {
        let now = TimestampMs::now();
        host.txn_coordinator()
            .ids
            .borrow()
            .values()
            .filter(|metadata| self.0.matches(metadata, now))
            .map(|metadata| ListedTxn {
                transactional_id: metadata.transactional_id.clone(),
                producer_id: metadata.producer_id,
                state: metadata.state,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_state_producer_and_duration() {
        let metadata = TxnMetadata::new("t".into(), ProducerId(7), 1_000, TimestampMs(0));
        let now = TimestampMs(10_000);
        assert!(ListFilter::default().matches(&metadata, now));
        let by_state = |states: Vec<TxnState>| ListFilter {
            states,
            min_duration_ms: -1,
            ..ListFilter::default()
        };
        assert!(by_state(vec![TxnState::Empty]).matches(&metadata, now));
        assert!(!by_state(vec![TxnState::Ongoing]).matches(&metadata, now));
        let by_producer = ListFilter {
            producer_ids: vec![ProducerId(8)],
            min_duration_ms: -1,
            ..ListFilter::default()
        };
        assert!(!by_producer.matches(&metadata, now));
        let mut ongoing = metadata.clone();
        ongoing.start_timestamp = TimestampMs(9_000);
        let longer_than = |ms| ListFilter {
            min_duration_ms: ms,
            ..ListFilter::default()
        };
        assert!(longer_than(1_000).matches(&ongoing, now));
        assert!(!longer_than(1_001).matches(&ongoing, now));
    }
}
