//! A group's committed offsets, in memory: the latest commit per partition, as
//! the log of `__consumer_offsets` says once appended.

use std::collections::BTreeMap;

use crate::group::records::OffsetValue;

/// Kafka's `offset.metadata.max.bytes`: longer commit metadata is refused.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Partitions one group may hold offsets for; commits past it are refused, so a
/// client cannot grow a shard's memory without bound.
pub const MAX_OFFSETS_PER_GROUP: usize = 1 << 20;

/// (topic, partition).
pub type TopicPartition = (String, i32);

#[derive(Debug, Default, Clone)]
pub struct OffsetStore {
    offsets: BTreeMap<TopicPartition, OffsetValue>,
}

impl OffsetStore {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.offsets.get(&(topic.to_string(), partition))
    }

    /// Whether a commit to `key` fits under [`MAX_OFFSETS_PER_GROUP`].
    pub fn has_room_for(&self, key: &TopicPartition) -> bool {
        self.offsets.len() < MAX_OFFSETS_PER_GROUP || self.offsets.contains_key(key)
    }

    pub fn put(&mut self, key: TopicPartition, value: OffsetValue) {
        self.offsets.insert(key, value);
        debug_assert!(self.offsets.len() <= MAX_OFFSETS_PER_GROUP);
    }

    pub fn remove(&mut self, key: &TopicPartition) -> Option<OffsetValue> {
        self.offsets.remove(key)
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &OffsetValue)> {
        self.offsets.iter()
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
            .filter(|(_, value)| {
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
        store.put(("t".into(), 0), value(5, 100));
        store.put(("t".into(), 0), value(9, 200));
        store.put(("t".into(), 1), value(1, 1_000));
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
}
