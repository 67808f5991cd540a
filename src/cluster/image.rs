//! The metadata image: every topic, its partitions' placement on shards and leader
//! epochs, and its typed configs, as one immutable value. Each shard holds one and
//! replaces it whole when the controller publishes a change (Kafka's
//! `MetadataImage`); readers keep the `Rc` they took for as long as they need a
//! consistent view.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::cluster::topic_config::TopicConfigs;
use crate::cluster::topic_table::TopicTable;
use crate::config::BrokerConfig;
use crate::types::{LeaderEpoch, ShardId};

/// A partition by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionImage {
    /// The shard that owns the replica.
    pub shard: ShardId,
    pub leader_epoch: LeaderEpoch,
}

#[derive(Debug)]
pub struct TopicImage {
    pub id: uuid::Uuid,
    pub partitions: Vec<PartitionImage>,
    /// The overrides as set (Kafka names), for DescribeConfigs.
    pub overrides: BTreeMap<String, String>,
    pub configs: Rc<TopicConfigs>,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).expect("partition counts fit in i32")
    }

    pub fn partition(&self, index: i32) -> Option<&PartitionImage> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.partitions.get(index))
    }
}

#[derive(Debug, Default)]
pub struct MetadataImage {
    /// Grows with each publication by the controller (0: the image loaded at
    /// start-up), so a shard can tell whether it has caught up with a caller.
    version: u64,
    topics: BTreeMap<String, TopicImage>,
    names_by_id: HashMap<uuid::Uuid, String>,
    /// The persisted form this image was built from: the controller's starting
    /// point for the next change.
    table: TopicTable,
}

impl MetadataImage {
    pub fn build(version: u64, table: TopicTable, broker: &BrokerConfig) -> MetadataImage {
        let mut topics = BTreeMap::new();
        let mut names_by_id = HashMap::with_capacity(table.topics.len());
        for (name, meta) in &table.topics {
            let id = meta.uuid();
            let partitions = meta
                .shards
                .iter()
                .enumerate()
                .map(|(index, &shard)| PartitionImage {
                    shard: ShardId(shard),
                    leader_epoch: meta.leader_epoch(index),
                })
                .collect();
            names_by_id.insert(id, name.clone());
            topics.insert(
                name.clone(),
                TopicImage {
                    id,
                    partitions,
                    overrides: meta.configs.clone(),
                    configs: Rc::new(TopicConfigs::resolve(broker, &meta.configs)),
                },
            );
        }
        MetadataImage {
            version,
            topics,
            names_by_id,
            table,
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topics(&self) -> impl Iterator<Item = (&String, &TopicImage)> {
        self.topics.iter()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.topics.contains_key(name)
    }

    /// The name of the topic with `id` (Fetch v13+ and Metadata v10+ name topics by id).
    pub fn name_of(&self, id: uuid::Uuid) -> Option<&str> {
        self.names_by_id.get(&id).map(String::as_str)
    }

    pub fn partition(&self, key: &PartitionKey) -> Option<&PartitionImage> {
        self.topics.get(&key.topic)?.partition(key.partition)
    }

    pub fn owner_of(&self, key: &PartitionKey) -> Option<ShardId> {
        self.partition(key).map(|p| p.shard)
    }

    /// Every partition `shard` owns.
    pub fn owned_by(&self, shard: ShardId) -> impl Iterator<Item = PartitionKey> + '_ {
        self.topics.iter().flat_map(move |(name, topic)| {
            topic
                .partitions
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.shard == shard)
                .map(move |(index, _)| PartitionKey {
                    topic: name.clone(),
                    partition: index as i32,
                })
        })
    }

    pub fn table(&self) -> &TopicTable {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topic_table::TopicMeta;

    #[test]
    fn image_indexes_topics_by_name_and_id_and_places_partitions() {
        let mut table = TopicTable::default();
        let meta = TopicMeta {
            id: crate::cluster::topic_table::new_topic_id(),
            shards: vec![0, 1, 0],
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
            leader_epochs: Vec::new(),
        };
        let id = meta.uuid();
        table.topics.insert("t".into(), meta);
        let image = MetadataImage::build(7, table, &BrokerConfig::default());
        assert_eq!(image.version(), 7);
        assert_eq!(image.name_of(id), Some("t"));
        let key = |partition| PartitionKey {
            topic: "t".into(),
            partition,
        };
        assert_eq!(image.owner_of(&key(1)), Some(ShardId(1)));
        assert_eq!(image.owner_of(&key(3)), None);
        assert_eq!(image.owner_of(&key(-1)), None);
        assert_eq!(
            image.partition(&key(2)).map(|p| p.leader_epoch),
            Some(LeaderEpoch(0))
        );
        assert!(image.topic("t").unwrap().configs.cleanup_policy.compact);
        let owned: Vec<_> = image.owned_by(ShardId(0)).collect();
        assert_eq!(owned, vec![key(0), key(2)]);
    }
}
