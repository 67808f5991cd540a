//! Transactional offset commits (TxnOffsetCommit) waiting for their
//! transaction to end, for every group of one shard.
//!
//! A transactional commit is appended to the group's `__consumer_offsets`
//! partition at once, in a transactional batch of its producer, but it only
//! becomes the group's committed offset when the commit marker for that
//! producer lands on the same partition; an abort marker drops it. Until then
//! OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for the
//! partitions concerned (KIP-447).
//!
//! An offset is pending from before its append (as Kafka's
//! prepareTxnOffsetCommit): a marker written while the append is in flight (a
//! transaction aborted at its timeout) then finds and ends it, rather than
//! missing it and leaving it pending for good. The append fills in the batch's
//! offset, or removes the entry if it failed.
//!
//! Entries are (group, producer, partition) triples, bounded per group and per
//! shard so producers that never end their transactions cannot grow a shard's
//! memory without limit; the transaction timeout ends them eventually.

use std::collections::{BTreeMap, BTreeSet};

use crate::group::ids::GroupId;
use crate::group::offsets::{OffsetStore, TopicPartition};
use crate::group::records::OffsetValue;
use crate::group::state::Group;
use crate::protocol::error_code::ErrorCode;
use crate::types::{Offset, ProducerId};

/// Pending (producer, partition) entries one group may hold.
pub const MAX_PENDING_PER_GROUP: usize = 1 << 16;
/// Pending entries all the groups of one shard may hold.
pub const MAX_PENDING_PER_SHARD: usize = 1 << 20;

/// One pending offset and the base offset of the batch that stored it (`None`
/// while that batch is being appended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOffset {
    pub value: OffsetValue,
    pub record_offset: Option<Offset>,
}

/// One producer's pending offsets in one group.
pub type ByPartition = BTreeMap<TopicPartition, PendingOffset>;

/// Why a transactional commit was refused for lack of room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingLimit {
    #[error("the group holds {MAX_PENDING_PER_GROUP} pending transactional offsets")]
    Group,
    #[error("the shard holds {MAX_PENDING_PER_SHARD} pending transactional offsets")]
    Shard,
}

impl PendingLimit {
    pub fn error_code(self) -> ErrorCode {
        match self {
            // The request itself is too large for the group, as OffsetCommit
            // answers past its own per-group bound.
            PendingLimit::Group => ErrorCode::InvalidCommitOffsetSize,
            // The broker is out of room for now; the client retries.
            PendingLimit::Shard => ErrorCode::CoordinatorNotAvailable,
        }
    }
}

#[derive(Debug, Default)]
struct GroupPending {
    /// The group's `__consumer_offsets` partition, where its markers land.
    offsets_partition: i32,
    producers: BTreeMap<ProducerId, ByPartition>,
    len: usize,
}

#[derive(Debug, Default)]
pub struct PendingTxnOffsets {
    by_group: BTreeMap<GroupId, GroupPending>,
    /// The groups holding offsets of a producer, per `__consumer_offsets`
    /// partition: what one marker on that partition completes.
    by_producer: BTreeMap<(i32, ProducerId), BTreeSet<GroupId>>,
    len: usize,
}

impl PendingTxnOffsets {
    /// Pending entries on the shard.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `producer` may add offsets for `keys` to `group` within the
    /// bounds (a partition it already has pending does not count again).
    pub fn check_room(
        &self,
        group: &GroupId,
        producer: ProducerId,
        keys: &[TopicPartition],
    ) -> Result<(), PendingLimit> {
        let pending = self.by_group.get(group);
        let known = pending.and_then(|p| p.producers.get(&producer));
        let added = keys
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|key| known.is_none_or(|k| !k.contains_key(*key)))
            .count();
        if pending.map_or(0, |p| p.len) + added > MAX_PENDING_PER_GROUP {
            return Err(PendingLimit::Group);
        }
        if self.len + added > MAX_PENDING_PER_SHARD {
            return Err(PendingLimit::Shard);
        }
        Ok(())
    }

    /// Holds `offsets`, stored by `producer` for `group` in the batch at
    /// `record_offset` of `offsets_partition` (`None`: about to be appended),
    /// until the producer's marker. A later commit of the same partition in the
    /// same transaction replaces the earlier one. The caller checked the room.
    pub fn add(
        &mut self,
        offsets_partition: i32,
        group: &GroupId,
        producer: ProducerId,
        offsets: impl IntoIterator<Item = (TopicPartition, OffsetValue)>,
        record_offset: Option<Offset>,
    ) {
        let pending = self
            .by_group
            .entry(group.clone())
            .or_insert_with(|| GroupPending {
                offsets_partition,
                ..GroupPending::default()
            });
        debug_assert_eq!(pending.offsets_partition, offsets_partition);
        let partitions = pending.producers.entry(producer).or_default();
        for (key, value) in offsets {
            let entry = PendingOffset {
                value,
                record_offset,
            };
            if partitions.insert(key, entry).is_none() {
                pending.len += 1;
                self.len += 1;
            }
        }
        self.by_producer
            .entry((offsets_partition, producer))
            .or_default()
            .insert(group.clone());
        debug_assert!(pending.len <= MAX_PENDING_PER_GROUP);
        debug_assert!(self.len <= MAX_PENDING_PER_SHARD);
    }

    /// The batch holding `offsets` was appended at `record_offset`: the entries
    /// still pending with these values get its offset (a marker may have ended
    /// them during the append: then there is nothing to do).
    pub fn appended(
        &mut self,
        group: &GroupId,
        producer: ProducerId,
        offsets: &[(TopicPartition, OffsetValue)],
        record_offset: Offset,
    ) {
        let Some(partitions) = self
            .by_group
            .get_mut(group)
            .and_then(|p| p.producers.get_mut(&producer))
        else {
            return;
        };
        for (key, value) in offsets {
            if let Some(entry) = partitions.get_mut(key)
                && entry.record_offset.is_none()
                && entry.value == *value
            {
                entry.record_offset = Some(record_offset);
            }
        }
    }

    /// The batch holding `offsets` was not appended: they are not pending.
    pub fn failed(
        &mut self,
        group: &GroupId,
        producer: ProducerId,
        offsets: &[(TopicPartition, OffsetValue)],
    ) {
        let Some(pending) = self.by_group.get(group) else {
            return;
        };
        let Some(partitions) = pending.producers.get(&producer) else {
            return;
        };
        let keys: Vec<TopicPartition> = offsets
            .iter()
            .filter(|(key, value)| {
                partitions
                    .get(key)
                    .is_some_and(|e| e.record_offset.is_none() && e.value == *value)
            })
            .map(|(key, _)| key.clone())
            .collect();
        self.remove_producer_partitions(group, producer, &keys);
    }

    /// Removes and returns every offset `producer` has pending in the groups of
    /// `offsets_partition`: its marker there ends them.
    pub fn take(
        &mut self,
        offsets_partition: i32,
        producer: ProducerId,
    ) -> Vec<(GroupId, ByPartition)> {
        let Some(groups) = self.by_producer.remove(&(offsets_partition, producer)) else {
            return Vec::new();
        };
        let mut taken = Vec::with_capacity(groups.len());
        for group in groups {
            let Some(pending) = self.by_group.get_mut(&group) else {
                continue;
            };
            if let Some(partitions) = pending.producers.remove(&producer) {
                pending.len -= partitions.len();
                self.len -= partitions.len();
                taken.push((group.clone(), partitions));
            }
            if pending.producers.is_empty() {
                self.by_group.remove(&group);
            }
        }
        taken
    }

    /// Whether any producer has an offset of `key` pending in `group`.
    pub fn is_pending(&self, group: &GroupId, key: &TopicPartition) -> bool {
        self.by_group.get(group).is_some_and(|p| {
            p.producers
                .values()
                .any(|offsets| offsets.contains_key(key))
        })
    }

    /// Whether `group` has any pending offset (then it must not be forgotten).
    pub fn has_group(&self, group: &GroupId) -> bool {
        self.by_group.contains_key(group)
    }

    /// Forgets the pending offsets of `keys` in `group` (deleted offsets, or a
    /// transactional tombstone read back), of every producer.
    pub fn remove_partitions(&mut self, group: &GroupId, keys: &[TopicPartition]) {
        let producers: Vec<ProducerId> = self
            .by_group
            .get(group)
            .map(|p| p.producers.keys().copied().collect())
            .unwrap_or_default();
        for producer in producers {
            self.remove_producer_partitions(group, producer, keys);
        }
    }

    fn remove_producer_partitions(
        &mut self,
        group: &GroupId,
        producer: ProducerId,
        keys: &[TopicPartition],
    ) {
        let Some(pending) = self.by_group.get_mut(group) else {
            return;
        };
        let offsets_partition = pending.offsets_partition;
        let Some(partitions) = pending.producers.get_mut(&producer) else {
            return;
        };
        let removed = keys
            .iter()
            .filter(|key| partitions.remove(*key).is_some())
            .count();
        pending.len -= removed;
        self.len -= removed;
        if !partitions.is_empty() {
            return;
        }
        pending.producers.remove(&producer);
        if pending.producers.is_empty() {
            self.by_group.remove(group);
        }
        self.unlink(offsets_partition, producer, group);
    }

    /// Forgets everything `group` has pending (the group is deleted).
    pub fn remove_group(&mut self, group: &GroupId) {
        let Some(pending) = self.by_group.remove(group) else {
            return;
        };
        self.len -= pending.len;
        for producer in pending.producers.keys() {
            self.unlink(pending.offsets_partition, *producer, group);
        }
    }

    fn unlink(&mut self, offsets_partition: i32, producer: ProducerId, group: &GroupId) {
        let key = (offsets_partition, producer);
        if let Some(groups) = self.by_producer.get_mut(&key) {
            groups.remove(group);
            if groups.is_empty() {
                self.by_producer.remove(&key);
            }
        }
    }
}

/// Ends `producer_id`'s pending offsets in the groups of `offsets_partition`:
/// on commit they become the groups' committed offsets, on abort they are
/// dropped (Kafka's completePendingTxnOffsetCommit).
pub fn complete(
    groups: &mut BTreeMap<GroupId, Group>,
    pending: &mut PendingTxnOffsets,
    offsets_partition: i32,
    producer_id: ProducerId,
    commit: bool,
) {
    let completed = pending.take(offsets_partition, producer_id);
    if !commit {
        return;
    }
    for (id, offsets) in completed {
        match groups.get_mut(&id) {
            Some(group) => materialize(&mut group.offsets, offsets),
            // Deleting a group drops its pending offsets, and retention keeps
            // groups that have some: not reached.
            None => {
                tracing::warn!(group = %id.0, "transactional offsets committed for a group that is gone")
            }
        }
    }
}

/// Makes a committed transaction's offsets the group's committed offsets,
/// each unless a later batch already stored that partition's offset.
fn materialize(offsets: &mut OffsetStore, committed: ByPartition) {
    for (key, pending) in committed {
        // The coordinator sends a commit marker only after EndTxn, which the
        // producer sends after its TxnOffsetCommit was answered: appended.
        let Some(record_offset) = pending.record_offset else {
            tracing::warn!(topic = %key.0, partition = key.1, "a transaction committed while its offset commit was being appended");
            continue;
        };
        if !offsets.put_if_newer(key.clone(), pending.value, record_offset) {
            tracing::debug!(topic = %key.0, partition = key.1, "a committed transactional offset is older than the stored one");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        }
    }

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        (topic.to_string(), partition)
    }

    fn group(name: &str) -> GroupId {
        GroupId(name.to_string())
    }

    #[test]
    fn a_marker_takes_its_producers_offsets_of_its_partition_only() {
        let mut pending = PendingTxnOffsets::default();
        let (p1, p2) = (ProducerId(1), ProducerId(2));
        pending.add(
            3,
            &group("a"),
            p1,
            [(tp("t", 0), value(5))],
            Some(Offset(10)),
        );
        pending.add(
            3,
            &group("b"),
            p1,
            [(tp("t", 0), value(6))],
            Some(Offset(11)),
        );
        pending.add(
            3,
            &group("a"),
            p2,
            [(tp("t", 1), value(7))],
            Some(Offset(12)),
        );
        pending.add(
            4,
            &group("c"),
            p1,
            [(tp("t", 0), value(8))],
            Some(Offset(0)),
        );
        assert_eq!(pending.len(), 4);
        assert!(pending.is_pending(&group("a"), &tp("t", 1)));

        let taken = pending.take(3, p1);
        assert_eq!(
            taken.iter().map(|(g, _)| g.0.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(taken[0].1[&tp("t", 0)].record_offset, Some(Offset(10)));
        assert_eq!(pending.len(), 2);
        assert!(!pending.is_pending(&group("a"), &tp("t", 0)));
        assert!(!pending.has_group(&group("b")));
        assert!(pending.has_group(&group("c")));
        assert!(pending.take(3, p1).is_empty());
    }

    #[test]
    fn a_later_commit_in_the_same_transaction_replaces_the_earlier() {
        let mut pending = PendingTxnOffsets::default();
        let p = ProducerId(9);
        pending.add(0, &group("g"), p, [(tp("t", 0), value(1))], Some(Offset(1)));
        pending.add(0, &group("g"), p, [(tp("t", 0), value(2))], Some(Offset(5)));
        assert_eq!(pending.len(), 1);
        let taken = pending.take(0, p);
        assert_eq!(
            taken[0].1[&tp("t", 0)],
            PendingOffset {
                value: value(2),
                record_offset: Some(Offset(5))
            }
        );
        assert!(pending.is_empty());
    }

    #[test]
    fn commit_materializes_unless_a_later_plain_commit_exists() {
        let mut pending = PendingTxnOffsets::default();
        let p = ProducerId(1);
        pending.add(
            0,
            &group("g"),
            p,
            [(tp("t", 0), value(10)), (tp("t", 1), value(20))],
            Some(Offset(100)),
        );
        let mut store = OffsetStore::default();
        // A plain commit of partition 0 written after the transactional batch.
        store.put(tp("t", 0), value(11), Offset(150));
        // And one of partition 1 written before it.
        store.put(tp("t", 1), value(19), Offset(50));
        for (_, committed) in pending.take(0, p) {
            materialize(&mut store, committed);
        }
        assert_eq!(store.get("t", 0).unwrap().offset, 11);
        assert_eq!(store.get("t", 1).unwrap().offset, 20);
    }

    #[test]
    fn a_marker_during_the_append_ends_the_offsets_being_appended() {
        let mut pending = PendingTxnOffsets::default();
        let p = ProducerId(1);
        let offsets = vec![(tp("t", 0), value(3))];
        pending.add(0, &group("g"), p, offsets.clone(), None);
        assert!(pending.is_pending(&group("g"), &tp("t", 0)));
        // The transaction times out and its abort marker lands first.
        let aborted = pending.take(0, p);
        assert_eq!(aborted[0].1[&tp("t", 0)].record_offset, None);
        pending.appended(&group("g"), p, &offsets, Offset(7));
        assert!(pending.is_empty(), "nothing is left pending for good");

        // Without a marker the append fills in the batch's offset...
        pending.add(0, &group("g"), p, offsets.clone(), None);
        pending.appended(&group("g"), p, &offsets, Offset(9));
        let mut store = OffsetStore::default();
        for (_, committed) in pending.take(0, p) {
            materialize(&mut store, committed);
        }
        assert_eq!(store.get("t", 0).unwrap().offset, 3);
        // ...and a failed append takes its offsets back.
        pending.add(0, &group("g"), p, offsets.clone(), None);
        pending.failed(&group("g"), p, &offsets);
        assert!(pending.is_empty());
        assert!(pending.take(0, p).is_empty());
    }

    #[test]
    fn removing_partitions_and_groups_keeps_the_counts() {
        let mut pending = PendingTxnOffsets::default();
        let (p1, p2) = (ProducerId(1), ProducerId(2));
        pending.add(
            0,
            &group("g"),
            p1,
            [(tp("t", 0), value(1)), (tp("t", 1), value(1))],
            Some(Offset(1)),
        );
        pending.add(
            0,
            &group("g"),
            p2,
            [(tp("t", 0), value(1))],
            Some(Offset(2)),
        );
        pending.add(
            0,
            &group("h"),
            p2,
            [(tp("t", 0), value(1))],
            Some(Offset(3)),
        );
        pending.remove_partitions(&group("g"), &[tp("t", 0)]);
        assert_eq!(pending.len(), 2);
        assert!(!pending.is_pending(&group("g"), &tp("t", 0)));
        assert!(pending.is_pending(&group("g"), &tp("t", 1)));
        // p2 has nothing left in g: its marker completes h only.
        assert_eq!(pending.take(0, p2).len(), 1);
        pending.remove_group(&group("g"));
        assert!(pending.is_empty());
        assert!(pending.take(0, p1).is_empty());
    }

    #[test]
    fn room_is_counted_per_group_and_per_shard() {
        let mut pending = PendingTxnOffsets::default();
        let p = ProducerId(1);
        let keys: Vec<TopicPartition> = (0..MAX_PENDING_PER_GROUP as i32)
            .map(|i| tp("t", i))
            .collect();
        assert_eq!(pending.check_room(&group("g"), p, &keys), Ok(()));
        pending.add(
            0,
            &group("g"),
            p,
            keys.iter().map(|k| (k.clone(), value(0))),
            Some(Offset(0)),
        );
        // Partitions already pending for this producer take no more room.
        assert_eq!(pending.check_room(&group("g"), p, &keys[..3]), Ok(()));
        assert_eq!(
            pending.check_room(&group("g"), ProducerId(2), &keys[..1]),
            Err(PendingLimit::Group)
        );
        assert_eq!(pending.check_room(&group("other"), p, &keys[..1]), Ok(()));
        assert_eq!(
            PendingLimit::Shard.error_code(),
            ErrorCode::CoordinatorNotAvailable
        );
    }
}
