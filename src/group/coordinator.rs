//! The groups of one shard: the registry of [`Group`]s whose `__consumer_offsets`
//! partition this shard owns, the JoinGroup and SyncGroup requests waiting for a
//! rebalance, the timer task that drives sessions and rebalance deadlines, the
//! offset retention task, the transactional offsets waiting for their markers,
//! and appends to `__consumer_offsets`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

use crate::cluster::image::PartitionKey;
use crate::group::coordinator_key::{OFFSETS_TOPIC, partition_for};
use crate::group::host::GroupHost;
use crate::group::ids::{GroupId, MemberId};
use crate::group::records::RecordKey;
use crate::group::state::{Group, GroupState, JoinResult, Reply, SyncResult};
use crate::group::txn_offsets::{self, PendingTxnOffsets};
use crate::protocol::error_code::ErrorCode;
use crate::record::attributes::Attributes;
use crate::record::builder::{BatchWriter, NewRecord, build_batch_with};
use crate::storage::error::LogError;
use crate::types::{Offset, ProducerEpoch, ProducerId, TimestampMs};

/// Groups one shard coordinates at most; new ones are refused past it so a
/// client cannot grow a shard's memory without bound.
pub const MAX_GROUPS_PER_SHARD: usize = 100_000;

type WaiterKey = (GroupId, MemberId);

/// A record for `__consumer_offsets`: key and value (`None`: a tombstone).
pub type OffsetsRecord = (Vec<u8>, Option<Vec<u8>>);

#[derive(Default)]
pub struct Coordinator {
    pub groups: RefCell<BTreeMap<GroupId, Group>>,
    /// `__consumer_offsets` partitions read back since this shard opened them.
    loaded: RefCell<BTreeSet<i32>>,
    joins: RefCell<HashMap<WaiterKey, LocalSender<JoinResult>>>,
    syncs: RefCell<HashMap<WaiterKey, LocalSender<SyncResult>>>,
    /// TxnOffsetCommits waiting for their transaction's marker.
    pub txn_offsets: RefCell<PendingTxnOffsets>,
    /// Woken when a deadline may have moved earlier.
    changed: crate::storage::wake_list::WakeList,
    tasks_started: Cell<bool>,
}

impl Coordinator {
    pub fn mark_loaded(&self, partition: i32) {
        self.loaded.borrow_mut().insert(partition);
    }

    /// Forgets the groups of `partition` (one of `partitions`) when this
    /// shard's replica stops leading it: another broker coordinates them now,
    /// and leading again reloads them from the log. Waiting joins and syncs of
    /// those groups are dropped (their clients hear REBALANCE_IN_PROGRESS and
    /// look the coordinator up again).
    pub fn unload(&self, partition: i32, partitions: i32) {
        self.loaded.borrow_mut().remove(&partition);
        let of_partition = |group: &GroupId| partition_for(&group.0, partitions) == partition;
        self.groups
            .borrow_mut()
            .retain(|group, _| !of_partition(group));
        self.joins
            .borrow_mut()
            .retain(|(group, _), _| !of_partition(group));
        self.syncs
            .borrow_mut()
            .retain(|(group, _), _| !of_partition(group));
    }

    /// Registers a JoinGroup waiting under `member`; an earlier request of the
    /// same member (a client retry) is answered REBALANCE_IN_PROGRESS by the
    /// dropped channel.
    pub fn wait_join(&self, group: &GroupId, member: MemberId) -> LocalReceiver<JoinResult> {
        let (sender, receiver) = local_channel::new_bounded(1);
        self.joins
            .borrow_mut()
            .insert((group.clone(), member), sender);
        receiver
    }

    pub fn wait_sync(&self, group: &GroupId, member: MemberId) -> LocalReceiver<SyncResult> {
        let (sender, receiver) = local_channel::new_bounded(1);
        self.syncs
            .borrow_mut()
            .insert((group.clone(), member), sender);
        receiver
    }

    /// Hands each reply to its waiting request, if it is still there.
    pub fn deliver(&self, group: &GroupId, replies: Vec<Reply>) {
        for reply in replies {
            match reply {
                Reply::Join(member, result) => {
                    let waiter = self.joins.borrow_mut().remove(&(group.clone(), member));
                    if let Some(waiter) = waiter {
                        let _ = waiter.try_send(result);
                    }
                }
                Reply::Sync(member, result) => {
                    let waiter = self.syncs.borrow_mut().remove(&(group.clone(), member));
                    if let Some(waiter) = waiter {
                        let _ = waiter.try_send(result);
                    }
                }
            }
        }
    }

    /// The commit (or abort) marker of `producer_id`'s transaction is in
    /// partition `offsets_partition` of `__consumer_offsets`: its pending
    /// offsets in the groups of that partition become their committed offsets
    /// (or are dropped). Called once the marker is durably appended.
    pub fn complete_txn_offsets(
        &self,
        offsets_partition: i32,
        producer_id: ProducerId,
        commit: bool,
    ) {
        txn_offsets::complete(
            &mut self.groups.borrow_mut(),
            &mut self.txn_offsets.borrow_mut(),
            offsets_partition,
            producer_id,
            commit,
        );
    }

    /// A group's deadlines may be earlier now: the timer task re-reads them.
    pub fn deadlines_changed(&self) {
        self.changed.wake_all();
    }
}

/// The `__consumer_offsets` partition of `group` here, if this shard owns it and
/// has read it back.
pub fn owned_partition(host: &dyn GroupHost, group: &GroupId) -> Result<i32, ErrorCode> {
    let count = host
        .offsets_partition_count()
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let partition = partition_for(&group.0, count);
    let key = PartitionKey {
        topic: OFFSETS_TOPIC.to_string(),
        partition,
    };
    if !host.owns(&key) {
        return Err(ErrorCode::NotCoordinator);
    }
    if !host.coordinator().loaded.borrow().contains(&partition) {
        return Err(ErrorCode::CoordinatorLoadInProgress);
    }
    Ok(partition)
}

/// Appends `records` to `partition` of `__consumer_offsets` as one batch and
/// returns its base offset once the log's durability policy acknowledges it
/// (fsync by default).
pub async fn append(
    host: &dyn GroupHost,
    partition: i32,
    records: &[OffsetsRecord],
) -> Result<Offset, ErrorCode> {
    append_as(host, partition, records, BatchWriter::NONE).await
}

/// Appends `records` as one transactional batch of the producer: they count
/// only once the producer's commit marker follows them in the partition.
pub async fn append_transactional(
    host: &dyn GroupHost,
    partition: i32,
    records: &[OffsetsRecord],
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
) -> Result<Offset, ErrorCode> {
    let writer = BatchWriter {
        attributes: Attributes(0).with_transactional(),
        producer_id,
        producer_epoch,
        // No sequence (Kafka's NO_SEQUENCE, as its coordinator origin): the
        // log checks only the producer's epoch of the broker's own batches.
        base_sequence: -1,
    };
    append_as(host, partition, records, writer).await
}

async fn append_as(
    host: &dyn GroupHost,
    partition: i32,
    records: &[OffsetsRecord],
    writer: BatchWriter,
) -> Result<Offset, ErrorCode> {
    debug_assert!(!records.is_empty());
    let key = PartitionKey {
        topic: OFFSETS_TOPIC.to_string(),
        partition,
    };
    let offsets = host
        .partition(&key)
        .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
    let now = TimestampMs::now().0;
    let new_records: Vec<NewRecord<'_>> = records
        .iter()
        .map(|(key, value)| NewRecord {
            key: Some(key),
            value: value.as_deref(),
            timestamp_ms: now,
        })
        .collect();
    let batch = build_batch_with(&new_records, writer);
    match offsets.append_internal(&batch).await {
        Ok(offset) => Ok(offset),
        // A fenced producer's transactional commit: the client must hear it.
        Err(LogError::Producer(error)) => Err(error.error_code()),
        Err(error) => {
            tracing::warn!(partition, %error, "appending to __consumer_offsets failed");
            Err(ErrorCode::CoordinatorNotAvailable)
        }
    }
}

/// Starts the timer and retention tasks of this shard's coordinator, once.
pub fn ensure_tasks(host: &Rc<dyn GroupHost>) {
    if host.coordinator().tasks_started.replace(true) {
        return;
    }
    let timers = Rc::clone(host);
    glommio::spawn_local(async move { run_timers(&timers).await }).detach();
    let retention = Rc::clone(host);
    glommio::spawn_local(async move { run_retention(&retention).await }).detach();
}

/// Sleeps until the earliest group deadline (or until one moves earlier), then
/// runs the timers of every group that is due.
async fn run_timers(host: &Rc<dyn GroupHost>) {
    let coordinator = host.coordinator();
    loop {
        let now = Instant::now();
        let now_ms = TimestampMs::now().0;
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        {
            let mut groups = coordinator.groups.borrow_mut();
            for group in groups.values_mut() {
                if group.next_deadline().is_some_and(|d| d <= now) {
                    let mut out = Vec::new();
                    group.tick(now, now_ms, &mut out);
                    due.push((group.id().clone(), out));
                }
                next = match (next, group.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        for (group, replies) in due {
            coordinator.deliver(&group, replies);
        }
        // No await between reading the deadlines and registering the wait, so
        // no change can slip in unnoticed.
        let changed = coordinator.changed.wait();
        match next {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = glommio::timer::timeout(left, async {
                    changed.await;
                    Ok(())
                })
                .await;
            }
            None => changed.await,
        }
    }
}

/// Every `offsets.retention.check.interval.ms`: drops the offsets of groups
/// without members once `offsets.retention.minutes` passed (writing
/// tombstones), and forgets groups left with neither members nor offsets.
async fn run_retention(host: &Rc<dyn GroupHost>) {
    let interval = Duration::from_millis(host.config().offsets_retention_check_interval_ms.max(1));
    loop {
        glommio::timer::sleep(interval).await;
        expire_offsets(host).await;
    }
}

async fn expire_offsets(host: &Rc<dyn GroupHost>) {
    let retention_ms = i64::try_from(
        host.config()
            .offsets_retention_minutes
            .saturating_mul(60_000),
    )
    .unwrap_or(i64::MAX);
    let now_ms = TimestampMs::now().0;
    let Some(count) = host.offsets_partition_count() else {
        return;
    };
    let mut per_partition: BTreeMap<i32, Vec<OffsetsRecord>> = BTreeMap::new();
    {
        let coordinator = host.coordinator();
        let mut groups = coordinator.groups.borrow_mut();
        let mut dead = Vec::new();
        for group in groups.values_mut() {
            if group.state() != GroupState::Empty {
                continue;
            }
            let partition = partition_for(&group.id().0, count);
            let records = per_partition.entry(partition).or_default();
            for (topic, index) in
                group
                    .offsets
                    .expired(now_ms, retention_ms, group.empty_since_ms())
            {
                group.offsets.remove(&(topic.clone(), index));
                let key = RecordKey::Offset {
                    group: group.id().0.clone(),
                    topic,
                    partition: index,
                };
                records.push((key.encode(), None));
            }
            // A group with transactional offsets pending stays: their commit
            // marker must find it (Kafka's GroupMetadata.hasOffsets).
            if group.offsets.is_empty() && !coordinator.txn_offsets.borrow().has_group(group.id()) {
                group.set_dead();
                dead.push(group.id().clone());
                let key = RecordKey::Group {
                    group: group.id().0.clone(),
                };
                records.push((key.encode(), None));
            }
        }
        for id in dead {
            groups.remove(&id);
        }
    }
    for (partition, records) in per_partition {
        if records.is_empty() {
            continue;
        }
        tracing::info!(
            partition,
            tombstones = records.len(),
            "expired group offsets"
        );
        // A failed tombstone only means compaction keeps the old record longer;
        // memory already forgot it, and a reload sees the record expire again.
        let _ = append(host.as_ref(), partition, &records).await;
    }
}
