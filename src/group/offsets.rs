//! A group's committed offsets, in memory: the latest commit per partition, as
//! the log of `__consumer_offsets` says once appended, with the log offset of the
//! batch that stored it (a transactional commit only replaces a later one's
//! offset if its own batch is later in the log: Kafka's rule, which keeps the
//! result the same after compaction).

use std::collections::BTreeMap;

use crate::group::records::OffsetValue;
use crate::types::Offset;

/// Kafka's `offset.metadata.max.bytes`: longer commit metadata is refused.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Partitions one group may hold offsets for; commits past it are refused, so a
/// client cannot grow a shard's memory without bound.
pub const MAX_OFFSETS_PER_GROUP: usize = 1 << 20;

/// (topic, partition).
pub type TopicPartition = (String, i32);

#[derive(Debug, Default, Clone)]
pub struct OffsetStore {
    /// Each partition's offset and the base offset of the batch holding it.
    offsets: BTreeMap<TopicPartition, (OffsetValue, Offset)>,
}

impl OffsetStore {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.offsets
            .get(&(topic.to_string(), partition))
            .map(|(value, _)| value)
    }

    /// Whether a commit to `key` fits under [`MAX_OFFSETS_PER_GROUP`].
    pub fn has_room_for(&self, key: &TopicPartition) -> bool {
        self.offsets.len() < MAX_OFFSETS_PER_GROUP || self.offsets.contains_key(key)
    }

    /// Stores a commit read or written at `record_offset`, replacing any other.
    pub fn put(&mut self, key: TopicPartition, value: OffsetValue, record_offset: Offset) {
        self.offsets.insert(key, (value, record_offset));
        debug_assert!(self.offsets.len() <= MAX_OFFSETS_PER_GROUP);
    }

    /// Stores an offset written at `record_offset` unless the partition holds
    /// one from a later batch: a plain commit made after a transactional one
    /// was written wins over it when the transaction commits, as in Kafka's
    /// completePendingTxnOffsetCommit and onOffsetCommitAppend. Past
    /// [`MAX_OFFSETS_PER_GROUP`] a new partition is not stored. Returns
    /// whether it was stored.
    pub fn put_if_newer(
        &mut self,
        key: TopicPartition,
        value: OffsetValue,
        record_offset: Offset,
    ) -> bool {
        let newer = self
            .offsets
            .get(&key)
            .is_none_or(|(_, current)| *current < record_offset);
        if !newer || !self.has_room_for(&key) {
            return false;
        }
        self.put(key, value, record_offset);
        true
    }

    pub fn remove(&mut self, key: &TopicPartition) -> Option<OffsetValue> {
        self.offsets.remove(key).map(|(value, _)| value)
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &OffsetValue)> {
        self.offsets.iter().map(|(key, (value, _))| (key, value))
    }

    pub fn keys(&self) -> Vec<TopicPartition> {
        self.offsets.keys().cloned().collect()
    }

    /// Offsets past retention: committed (or, if later, the group became empty)
    /// `retention_ms` or more before `now_ms`. Kafka's rule for groups without
    /// members; groups with members keep their offsets.
    pub fn expired(
        &self,
        now_ms: i64,
        retention_ms: i64,
        empty_since_ms: i64,
    ) -> Vec<TopicPartition> {
        self.offsets
            .iter()
            .filter(|(_, (value, _))| {
                now_ms.saturating_sub(value.commit_timestamp.max(empty_since_ms)) >= retention_ms
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64, commit_timestamp: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp,
        }
    }

    #[test]
    fn latest_commit_wins_and_expiry_counts_from_the_later_of_commit_and_empty() {
        let mut store = OffsetStore::default();
        store.put(("t".into(), 0), value(5, 100), Offset(0));
        store.put(("t".into(), 0), value(9, 200), Offset(1));
        store.put(("t".into(), 1), value(1, 1_000), Offset(2));
        assert_eq!(store.get("t", 0).unwrap().offset, 9);
        assert_eq!(store.expired(1_150, 1_000, 0), Vec::<TopicPartition>::new());
        assert_eq!(store.expired(1_200, 1_000, 0), vec![("t".to_string(), 0)]);
        // The group emptied at 500: nothing expires before 1_500.
        assert_eq!(
            store.expired(1_400, 1_000, 500),
            Vec::<TopicPartition>::new()
        );
        assert_eq!(store.expired(2_000, 1_000, 500).len(), 2);
        assert!(store.remove(&("t".into(), 0)).is_some());
        assert!(store.get("t", 0).is_none());
    }

    #[test]
    fn a_transactional_offset_only_replaces_one_from_an_earlier_batch() {
        let mut store = OffsetStore::default();
        assert!(store.put_if_newer(("t".into(), 0), value(5, 0), Offset(10)));
        // A plain commit at 20 came after the transaction's batch at 15.
        store.put(("t".into(), 0), value(7, 0), Offset(20));
        assert!(!store.put_if_newer(("t".into(), 0), value(6, 0), Offset(15)));
        assert_eq!(store.get("t", 0).unwrap().offset, 7);
        assert!(store.put_if_newer(("t".into(), 0), value(8, 0), Offset(30)));
        assert_eq!(store.get("t", 0).unwrap().offset, 8);
    }
}
