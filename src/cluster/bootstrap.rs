//! Upgrading a single-node data directory in place: the topic table it kept in
//! `meta/topics.toml` and the producer ids it reserved in `meta/producer-ids`
//! become the first metadata records of its new log, so every topic keeps its
//! id, partitions, leader epochs and config overrides, and no producer id is
//! handed out twice.

use crate::cluster::records::MetadataRecord;
use crate::cluster::topic_table::TopicTable;
use crate::types::NodeId;

/// The records that recreate `table` with `node` as the only replica and
/// leader of every partition.
pub fn from_topic_table(table: &TopicTable, node: NodeId) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (name, meta) in &table.topics {
        records.push(MetadataRecord::Topic {
            name: name.clone(),
            id: meta.id.clone(),
        });
        records.extend(
            (0..meta.shards.len()).map(|index| MetadataRecord::Partition {
                topic: name.clone(),
                partition: i32::try_from(index).expect("partition counts fit in i32"),
                replicas: vec![node],
                isr: vec![node],
                leader: node,
                leader_epoch: meta.leader_epoch(index),
            }),
        );
        if !meta.configs.is_empty() {
            records.push(MetadataRecord::TopicConfigs {
                name: name.clone(),
                configs: meta.configs.clone(),
            });
        }
    }
    records
}

/// The record that moves the cluster's producer-id high mark past the ids the
/// single node already reserved (`reserved`, the number in `meta/producer-ids`):
/// producers holding those ids have state in the logs, and a new producer
/// given one of them would be taken for the old one.
pub fn from_producer_ids(reserved: i64, node: NodeId) -> Vec<MetadataRecord> {
    if reserved > 0 {
        vec![MetadataRecord::ProducerIds {
            broker: node,
            next: reserved,
        }]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cluster::state::ClusterState;
    use crate::cluster::topic_table::{TopicMeta, new_topic_id};
    use crate::types::LeaderEpoch;

    #[test]
    fn a_topic_table_becomes_the_same_topics_on_one_node() {
        let mut table = TopicTable::default();
        table.topics.insert(
            "plain".into(),
            TopicMeta {
                id: new_topic_id(),
                shards: vec![0, 1, 0],
                configs: BTreeMap::new(),
                leader_epochs: vec![4],
            },
        );
        table.topics.insert(
            "compacted".into(),
            TopicMeta {
                id: new_topic_id(),
                shards: vec![1],
                configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
                leader_epochs: Vec::new(),
            },
        );
        let node = NodeId(7);
        let mut state = ClusterState::default();
        state.apply(1, &from_topic_table(&table, node));
        assert_eq!(state.topics.len(), 2);
        for (name, meta) in &table.topics {
            let topic = &state.topics[name];
            assert_eq!(topic.id, meta.id);
            assert_eq!(topic.configs, meta.configs);
            assert_eq!(topic.partitions.len(), meta.shards.len());
            for partition in &topic.partitions {
                assert_eq!(partition.replicas, vec![node]);
                assert_eq!(partition.isr, vec![node]);
                assert_eq!(partition.leader, node);
            }
        }
        let epochs: Vec<LeaderEpoch> = state.topics["plain"]
            .partitions
            .iter()
            .map(|p| p.leader_epoch)
            .collect();
        assert_eq!(epochs, vec![LeaderEpoch(4), LeaderEpoch(0), LeaderEpoch(0)]);
        assert!(
            !from_topic_table(&table, node)
                .iter()
                .any(|r| matches!(r, MetadataRecord::TopicConfigs { name, .. } if name == "plain"))
        );
    }

    #[test]
    fn reserved_producer_ids_are_never_handed_out_again() {
        assert!(from_producer_ids(0, NodeId(1)).is_empty());
        let mut state = ClusterState::default();
        state.apply(1, &from_producer_ids(3000, NodeId(1)));
        let (first, _) = crate::cluster::controller::allocate_producer_ids(&state, NodeId(1), 1000);
        assert_eq!(first, 3000);
    }
}
