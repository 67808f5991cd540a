//! The coordinator's timer task, one per shard: every
//! `transaction.abort.timed.out.transaction.cleanup.interval.ms` it aborts the
//! transactions open longer than their `transaction.timeout.ms` (fencing the
//! producer with an epoch bump, as Kafka does) and removes transactional ids
//! idle longer than `transactional.id.expiration.ms` (a tombstone each).

use std::rc::Rc;
use std::time::Duration;

use crate::txn::completion;
use crate::txn::coordinator::transition;
use crate::txn::host::TxnHost;
use crate::txn::state::{TxnError, TxnMetadata, TxnState};
use crate::types::TimestampMs;

/// Aborts and removals per tick at most; the rest wait for the next tick, so a
/// tick never holds the shard for long.
const MAX_PER_TICK: usize = 1_000;

/// Starts this shard's timer task, once.
pub fn ensure_task(host: &Rc<dyn TxnHost>) {
    if host.txn_coordinator().start_tasks_once() {
        return;
    }
    let host = Rc::clone(host);
    glommio::spawn_local(async move { run(&host).await }).detach();
}

async fn run(host: &Rc<dyn TxnHost>) {
    let interval = Duration::from_millis(
        host.broker_config()
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            .max(1),
    );
    loop {
        glommio::timer::sleep(interval).await;
        abort_timed_out(host).await;
        remove_expired(host).await;
    }
}

/// Kafka's rule: an Ongoing transaction started at least its timeout ago.
pub fn is_timed_out(metadata: &TxnMetadata, now: TimestampMs) -> bool {
    metadata.state == TxnState::Ongoing
        && metadata.pending_state().is_none()
        && metadata.start_timestamp.0 + i64::from(metadata.timeout_ms) <= now.0
}

/// Kafka's rule: a state that allows it, and no transition for `expiration_ms`.
pub fn is_expired(metadata: &TxnMetadata, now: TimestampMs, expiration_ms: u64) -> bool {
    let expiration_ms = i64::try_from(expiration_ms).unwrap_or(i64::MAX);
    metadata.state.is_expiration_allowed()
        && metadata.pending_state().is_none()
        && metadata
            .last_update_timestamp
            .0
            .saturating_add(expiration_ms)
            <= now.0
}

fn select(host: &dyn TxnHost, pick: impl Fn(&TxnMetadata) -> bool) -> Vec<String> {
    host.txn_coordinator()
        .ids
        .borrow()
        .values()
        .filter(|metadata| pick(metadata))
        .take(MAX_PER_TICK)
        .map(|metadata| metadata.transactional_id.clone())
        .collect()
}

async fn abort_timed_out(host: &Rc<dyn TxnHost>) {
    let now = TimestampMs::now();
    for id in select(host.as_ref(), |metadata| is_timed_out(metadata, now)) {
        let aborted = transition(host.as_ref(), &id, |metadata| {
            if !is_timed_out(metadata, now) {
                return Err(TxnError::ConcurrentTransactions);
            }
            let version = metadata.client_version;
            metadata.prepare_fence_abort(version, now)
        })
        .await;
        match aborted {
            Ok(transit) => {
                tracing::info!(
                    transactional_id = %id,
                    producer_id = transit.producer_id.0,
                    epoch = transit.producer_epoch.0,
                    "aborting a transaction past its timeout"
                );
                completion::spawn(Rc::clone(host), id);
            }
            Err(error) => {
                tracing::debug!(transactional_id = %id, ?error, "timed-out abort not written")
            }
        }
    }
}

async fn remove_expired(host: &Rc<dyn TxnHost>) {
    let expiration_ms = host.broker_config().transactional_id_expiration_ms;
    let now = TimestampMs::now();
    for id in select(host.as_ref(), |metadata| {
        is_expired(metadata, now, expiration_ms)
    }) {
        let removed = transition(host.as_ref(), &id, |metadata| {
            if !is_expired(metadata, now, expiration_ms) {
                return Err(TxnError::ConcurrentTransactions);
            }
            metadata.prepare_dead()
        })
        .await;
        match removed {
            Ok(_) => tracing::debug!(transactional_id = %id, "transactional id expired"),
            Err(error) => tracing::debug!(transactional_id = %id, ?error, "expiration not written"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ProducerId;

    #[test]
    fn only_open_transactions_time_out_and_only_idle_ids_expire() {
        let mut metadata = TxnMetadata::new("t".into(), ProducerId(1), 1_000, TimestampMs(10_000));
        assert!(!is_timed_out(&metadata, TimestampMs(100_000)));
        assert!(is_expired(&metadata, TimestampMs(20_000), 10_000));
        assert!(!is_expired(&metadata, TimestampMs(19_999), 10_000));
        let transit = metadata
            .prepare_increment_producer_epoch(1_000, None, TimestampMs(10_000))
            .unwrap();
        metadata.complete_transition(transit).unwrap();
        let transit = metadata
            .prepare_add_partitions(
                [("topic".to_string(), 0)],
                TimestampMs(10_000),
                metadata.client_version,
            )
            .unwrap();
        metadata.complete_transition(transit).unwrap();
        assert!(!is_timed_out(&metadata, TimestampMs(10_999)));
        assert!(is_timed_out(&metadata, TimestampMs(11_000)));
        assert!(!is_expired(&metadata, TimestampMs(i64::MAX), 0));
    }
}
