//! The committed metadata applied to the cluster state, and the state published
//! to every shard as a new image: one publication at a time, always of the
//! newest state (each image is complete, so skipped ones are not missed).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cluster::image::{LocalPlacement, PartitionKey};
use crate::cluster::quorum::StateMachine;
use crate::cluster::records;
use crate::cluster::state::ClusterState;
use crate::shard::calls::topics::ApplyMetadata;
use crate::shard::metadata::MetadataNode;
use crate::types::{NodeId, ShardId};

impl StateMachine for MetadataNode {
    fn apply(&self, index: u64, data: &[u8]) {
        match records::decode(data) {
            Ok(batch) => self.state.borrow_mut().apply(index, &batch),
            // The log is checksummed, and written only by controllers of this
            // version: a batch that does not decode is a bug, not bad input.
            Err(error) => panic!("metadata log entry {index} does not decode: {error}"),
        }
        self.changed();
    }

    fn snapshot(&self) -> Vec<u8> {
        self.state.borrow().encode()
    }

    fn restore(&self, index: u64, data: &[u8]) {
        let mut state = ClusterState::decode(data).unwrap_or_else(|error| {
            panic!("metadata snapshot at {index} does not decode: {error}")
        });
        state.offset = index;
        *self.state.borrow_mut() = state;
        self.changed();
    }
}

impl MetadataNode {
    /// Replaces the state with one received from the active controller.
    pub(super) fn replace_state(&self, state: ClusterState) {
        *self.state.borrow_mut() = state;
        self.changed();
    }

    fn changed(&self) {
        self.dirty.set(true);
        if self.started.get() && !self.publishing.get() {
            let shard = self.shard();
            let node = shard
                .metadata()
                .expect("the metadata node is set before it starts applying");
            glommio::spawn_local(async move { node.publish().await }).detach();
        }
    }

    /// Publishes the newest state to every shard, again while it changed
    /// meanwhile; returns at once if another task is publishing.
    pub(super) async fn publish(&self) {
        if self.publishing.replace(true) {
            return;
        }
        // Bounded: each round publishes every change made before it began.
        while self.dirty.replace(false) {
            let state = Arc::new(self.state.borrow().clone());
            let shard = self.shard();
            let placement = place_local_replicas(
                &self.placement.borrow(),
                &state,
                self.identity.node,
                shard.all_shards().count(),
            );
            *self.placement.borrow_mut() = placement.clone();
            let placement = Arc::new(placement);
            for target in shard.all_shards() {
                let call = ApplyMetadata {
                    state: Arc::clone(&state),
                    placement: Arc::clone(&placement),
                    identity: self.identity.clone(),
                    quorum_leader: self.quorum_leader(),
                };
                shard.call(target, call).await;
            }
            self.published.set(self.published.get().max(state.offset));
            self.published_changed.wake_all();
        }
        self.publishing.set(false);
    }
}

/// This node's replicas on its shards: the ones it kept stay where they are,
/// new ones go to the least loaded shard (in partition order, so a restart
/// places them the same way).
fn place_local_replicas(
    previous: &LocalPlacement,
    state: &ClusterState,
    node: NodeId,
    shards: usize,
) -> LocalPlacement {
    assert!(shards > 0, "a broker has at least one shard");
    let mut placement = LocalPlacement::new();
    let mut new = Vec::new();
    for (name, topic) in &state.topics {
        for (index, partition) in (0..).zip(&topic.partitions) {
            if !partition.replicas.contains(&node) {
                continue;
            }
            let key = PartitionKey {
                topic: name.clone(),
                partition: index,
            };
            match previous.get(&key) {
                Some(&shard) if shard.0 < shards => {
                    placement.insert(key, shard);
                }
                _ => new.push(key),
            }
        }
    }
    let mut load: BTreeMap<ShardId, usize> = (0..shards).map(|s| (ShardId(s), 0)).collect();
    for shard in placement.values() {
        *load.entry(*shard).or_default() += 1;
    }
    for key in new {
        let (&shard, _) = load
            .iter()
            .min_by_key(|&(shard, count)| (*count, *shard))
            .expect("at least one shard");
        *load.entry(shard).or_default() += 1;
        placement.insert(key, shard);
    }
    placement
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::{PartitionState, TopicState};
    use crate::types::LeaderEpoch;

    fn topic(replicas: &[i32]) -> TopicState {
        TopicState {
            id: String::new(),
            partitions: replicas
                .iter()
                .map(|&r| PartitionState {
                    replicas: vec![NodeId(r)],
                    isr: vec![NodeId(r)],
                    leader: NodeId(r),
                    leader_epoch: LeaderEpoch(0),
                    partition_epoch: 0,
                })
                .collect(),
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn local_replicas_are_balanced_over_shards_and_stay_where_they_are() {
        let key = |topic: &str, partition| PartitionKey {
            topic: topic.into(),
            partition,
        };
        let mut state = ClusterState::default();
        state.topics.insert("b".into(), topic(&[1, 2, 1, 1]));
        let first = place_local_replicas(&LocalPlacement::new(), &state, NodeId(1), 2);
        assert_eq!(
            first.clone().into_iter().collect::<Vec<_>>(),
            vec![
                (key("b", 0), ShardId(0)),
                (key("b", 2), ShardId(1)),
                (key("b", 3), ShardId(0)),
            ]
        );
        state.topics.insert("a".into(), topic(&[1, 1]));
        state.topics.get_mut("b").unwrap().partitions.remove(0);
        let second = place_local_replicas(&first, &state, NodeId(1), 2);
        assert_eq!(
            second[&key("b", 2)],
            ShardId(1),
            "kept replicas do not move"
        );
        assert_eq!(second.len(), 4);
        let per_shard = |s| second.values().filter(|&&v| v == ShardId(s)).count();
        assert_eq!((per_shard(0), per_shard(1)), (2, 2));
    }
}
