//! The transactional ids of one shard: the metadata of every id whose
//! `__transaction_state` partition this shard owns and has loaded, and the one
//! way a transition happens — prepared in memory, written to the partition and
//! made durable, then completed (or forgotten if the write failed).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};

use crate::protocol::error_code::ErrorCode;
use crate::record::builder::{NewRecord, build_batch};
use crate::storage::wake_list::{Wait, WakeList};
use crate::txn::coordinator_key::partition_for;
use crate::txn::host::TxnHost;
use crate::txn::log_records::{TxnLogKey, VALUE_VERSION_V1};
use crate::txn::state::{TxnError, TxnMetadata, TxnState, TxnTransit};
use crate::types::TimestampMs;

/// Transactional ids one shard keeps at most; new ones are refused past it so
/// clients cannot grow a shard's memory without bound (idle ids expire after
/// `transactional.id.expiration.ms`).
pub const MAX_TXN_IDS_PER_SHARD: usize = 1_000_000;

#[derive(Default)]
pub struct TxnCoordinator {
    pub ids: RefCell<HashMap<String, TxnMetadata>>,
    /// `__transaction_state` partitions read back since this shard opened them.
    loaded: RefCell<BTreeSet<i32>>,
    tasks_started: Cell<bool>,
    /// Woken whenever a transition of any id ends (written or forgotten), for
    /// requests waiting out a transaction that is completing.
    transitions: WakeList,
}

impl TxnCoordinator {
    pub fn mark_loaded(&self, partition: i32) {
        self.loaded.borrow_mut().insert(partition);
    }

    /// Forgets the transactional ids of `partition` (one of `partitions`) when
    /// this shard's replica stops leading it; leading again reloads them.
    pub fn unload(&self, partition: i32, partitions: i32) {
        self.loaded.borrow_mut().remove(&partition);
        self.ids
            .borrow_mut()
            .retain(|id, _| partition_for(id, partitions) != partition);
        self.transitions.wake_all();
    }

    /// Resolves after the next transition of any id on this shard ends.
    pub fn next_transition(&self) -> Wait<'_> {
        self.transitions.wait()
    }

    /// Sets the flag that the shard's timer task runs; true if it already did.
    pub fn start_tasks_once(&self) -> bool {
        self.tasks_started.replace(true)
    }
}

/// The `__transaction_state` partition of `transactional_id` here, if this
/// shard owns it and has read it back.
pub fn owned_partition(host: &dyn TxnHost, transactional_id: &str) -> Result<i32, ErrorCode> {
    let count = host
        .state_partition_count()
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let partition = partition_for(transactional_id, count);
    if !host.owns_state_partition(partition) {
        return Err(ErrorCode::NotCoordinator);
    }
    if !host.txn_coordinator().loaded.borrow().contains(&partition) {
        return Err(ErrorCode::CoordinatorLoadInProgress);
    }
    Ok(partition)
}

/// The coordinator epoch of a `__transaction_state` partition: its leader epoch,
/// as in Kafka.
pub fn coordinator_epoch(host: &dyn TxnHost, partition: i32) -> Result<i32, ErrorCode> {
    host.state_partition(partition)
        .map(|log| log.leader_epoch().0)
        .map_err(|_| ErrorCode::NotCoordinator)
}

/// Prepares a transition of `transactional_id` with `prepare`, writes it and
/// completes it once durable. Returns the transit that is now the current state.
pub async fn transition(
    host: &dyn TxnHost,
    transactional_id: &str,
    prepare: impl FnOnce(&mut TxnMetadata) -> Result<TxnTransit, TxnError>,
) -> Result<TxnTransit, ErrorCode> {
    let partition = owned_partition(host, transactional_id)?;
    let transit = {
        let mut ids = host.txn_coordinator().ids.borrow_mut();
        let metadata = ids
            .get_mut(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        prepare(metadata).map_err(|error| log_refusal(transactional_id, &error))?
    };
    let written = write(host, partition, transactional_id, &transit).await;
    // Wakes waiters once this function returns, whichever way it ends.
    let _wake = WakeOnDrop(&host.txn_coordinator().transitions);
    let mut ids = host.txn_coordinator().ids.borrow_mut();
    let Some(metadata) = ids.get_mut(transactional_id) else {
        // Only a Dead transition removes an id, and it is pending here.
        return Err(ErrorCode::CoordinatorNotAvailable);
    };
    if let Err(error) = written {
        metadata.abort_pending_transition();
        return Err(error);
    }
    if transit.state == TxnState::Dead {
        ids.remove(transactional_id);
        return Ok(transit);
    }
    metadata
        .complete_transition(transit.clone())
        .map_err(|error| log_refusal(transactional_id, &error))?;
    Ok(transit)
}

struct WakeOnDrop<'a>(&'a WakeList);

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.wake_all();
    }
}

fn log_refusal(transactional_id: &str, error: &TxnError) -> ErrorCode {
    match error {
        TxnError::Illegal(_) | TxnError::UnknownStatus(_) => {
            tracing::error!(transactional_id, %error, "transaction coordinator bug");
        }
        _ => tracing::debug!(transactional_id, %error, "transactional request refused"),
    }
    error.error_code()
}

/// Appends `transit` (a tombstone for Dead) to `partition` of
/// `__transaction_state` and returns once the log's durability policy
/// acknowledges it (fsync by default).
async fn write(
    host: &dyn TxnHost,
    partition: i32,
    transactional_id: &str,
    transit: &TxnTransit,
) -> Result<(), ErrorCode> {
    let log = host
        .state_partition(partition)
        .map_err(|_| ErrorCode::NotCoordinator)?;
    let key = TxnLogKey {
        transactional_id: transactional_id.to_string(),
    }
    .encode();
    // Version 1 keeps the previous and next producer ids; Kafka 3.x and later
    // read it.
    let value =
        (transit.state != TxnState::Dead).then(|| transit.to_log_value().encode(VALUE_VERSION_V1));
    let batch = build_batch(&[NewRecord {
        key: Some(&key),
        value: value.as_deref(),
        timestamp_ms: TimestampMs::now().0,
    }]);
    log.append_internal(&batch)
        .await
        .map(|_| ())
        .map_err(|error| {
            tracing::warn!(partition, %error, "appending to __transaction_state failed");
            ErrorCode::CoordinatorNotAvailable
        })
}
