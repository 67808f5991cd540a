//! The metadata image: the brokers, every topic, its partitions' replicas,
//! leader, leader epoch and ISR, where this node keeps its own replicas (the
//! shard), and typed topic configs, as one immutable value. Each shard holds one
//! and replaces it whole when a new metadata offset is published (Kafka's
//! `MetadataImage`); readers keep the `Rc` they took for as long as they need a
//! consistent view.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::cluster::state::ClusterState;
use crate::cluster::topic_config::TopicConfigs;
use crate::config::BrokerConfig;
use crate::types::{LeaderEpoch, NodeId, ShardId};

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

/// Which shard of this node keeps each of its replicas.
pub type LocalPlacement = BTreeMap<PartitionKey, ShardId>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// The shard holding this node's replica; `None` when this node has none.
    pub shard: Option<ShardId>,
    /// [`NodeId::NONE`] while no live replica leads it (offline).
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// Grows with every change of leader, ISR or replicas: an AlterPartition
    /// names the one it was decided against (Kafka's partition epoch).
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub id: NodeId,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// Where a request for a partition goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This node leads it; the shard owning the replica serves it.
    Local(ShardId),
    /// Another broker leads it: NOT_LEADER_OR_FOLLOWER, pointing there.
    Remote { leader: NodeId, epoch: LeaderEpoch },
    /// No live replica can lead it.
    Offline,
    /// No such topic or partition.
    Unknown,
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

/// Who this node is, for building images.
#[derive(Debug, Clone)]
pub struct Identity {
    pub node: NodeId,
    pub cluster_id: String,
}

#[derive(Debug, Default)]
pub struct MetadataImage {
    /// The metadata log offset this image was built at (0: nothing applied yet),
    /// so a shard can tell whether it has caught up with a caller.
    version: u64,
    node: NodeId,
    cluster_id: String,
    /// What clients are told is the controller: a live broker, this one when
    /// it is live (admin requests sent there are forwarded to the active one).
    controller: NodeId,
    brokers: BTreeMap<NodeId, BrokerImage>,
    topics: BTreeMap<String, TopicImage>,
    names_by_id: HashMap<uuid::Uuid, String>,
}

impl MetadataImage {
    /// The image of `state` as this node sees it: `placement` names the shard of
    /// each replica it keeps.
    pub fn build(
        state: &ClusterState,
        placement: &LocalPlacement,
        identity: &Identity,
        broker: &BrokerConfig,
    ) -> MetadataImage {
        let brokers: BTreeMap<NodeId, BrokerImage> = state
            .brokers
            .values()
            .map(|b| {
                (
                    b.id,
                    BrokerImage {
                        id: b.id,
                        host: b.host.clone(),
                        port: b.port,
                        rack: b.rack.clone(),
                        fenced: b.fenced,
                    },
                )
            })
            .collect();
        let mut topics = BTreeMap::new();
        let mut names_by_id = HashMap::with_capacity(state.topics.len());
        for (name, topic) in &state.topics {
            let id = uuid::Uuid::parse_str(&topic.id).unwrap_or_default();
            let partitions = (0..)
                .zip(&topic.partitions)
                .map(|(index, p)| {
                    let key = PartitionKey {
                        topic: name.clone(),
                        partition: index,
                    };
                    PartitionImage {
                        shard: placement.get(&key).copied(),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        partition_epoch: p.partition_epoch,
                    }
                })
                .collect();
            names_by_id.insert(id, name.clone());
            topics.insert(
                name.clone(),
                TopicImage {
                    id,
                    partitions,
                    overrides: topic.configs.clone(),
                    configs: Rc::new(TopicConfigs::resolve(broker, &topic.configs)),
                },
            );
        }
        // As KRaft brokers do, clients are given a live broker, not the
        // quorum leader: a client keeps sending admin requests to the id it was
        // given, and a dead controller's broker entry stays live until its
        // session expires. This broker itself is the one the client reaches.
        let live = |id: &NodeId| brokers.get(id).is_some_and(|b| !b.fenced);
        let controller = Some(identity.node)
            .filter(live)
            .or_else(|| brokers.keys().copied().find(live))
            .unwrap_or(NodeId::NONE);
        MetadataImage {
            version: state.offset,
            node: identity.node,
            cluster_id: identity.cluster_id.clone(),
            controller,
            brokers,
            topics,
            names_by_id,
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The controller id clients are given (Metadata, DescribeCluster).
    pub fn controller_id(&self) -> NodeId {
        self.controller
    }

    pub fn broker(&self, id: NodeId) -> Option<&BrokerImage> {
        self.brokers.get(&id)
    }

    /// Registered, unfenced brokers: the ones clients are told about.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
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

    /// Where requests for `key` go.
    pub fn route(&self, key: &PartitionKey) -> Route {
        let Some(partition) = self.partition(key) else {
            return Route::Unknown;
        };
        let led_by_live_broker = self
            .brokers
            .get(&partition.leader)
            .is_some_and(|b| !b.fenced);
        match partition.shard {
            Some(shard) if partition.leader == self.node => Route::Local(shard),
            _ if led_by_live_broker => Route::Remote {
                leader: partition.leader,
                epoch: partition.leader_epoch,
            },
            _ => Route::Offline,
        }
    }

    /// The shard serving `key` when this node leads it.
    pub fn owner_of(&self, key: &PartitionKey) -> Option<ShardId> {
        match self.route(key) {
            Route::Local(shard) => Some(shard),
            _ => None,
        }
    }

    /// Every replica `shard` keeps, led here or not.
    pub fn owned_by(&self, shard: ShardId) -> impl Iterator<Item = PartitionKey> + '_ {
        self.topics.iter().flat_map(move |(name, topic)| {
            (0..)
                .zip(&topic.partitions)
                .filter(move |(_, p)| p.shard == Some(shard))
                .map(move |(index, _)| PartitionKey {
                    topic: name.clone(),
                    partition: index,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::{BrokerState, PartitionState, TopicState};

    fn broker(id: i32, fenced: bool) -> BrokerState {
        BrokerState {
            id: NodeId(id),
            incarnation: "i".into(),
            epoch: 1,
            host: "127.0.0.1".into(),
            port: 9000 + id as u16,
            rack: None,
            fenced,
        }
    }

    fn partition(leader: i32, epoch: i32) -> PartitionState {
        PartitionState {
            replicas: vec![NodeId(leader.max(0))],
            isr: vec![NodeId(leader.max(0))],
            leader: NodeId(leader),
            leader_epoch: LeaderEpoch(epoch),
            partition_epoch: 0,
        }
    }

    #[test]
    fn image_routes_partitions_to_local_shards_remote_leaders_or_nowhere() {
        let mut state = ClusterState {
            offset: 7,
            ..ClusterState::default()
        };
        for b in [broker(0, false), broker(1, false), broker(2, true)] {
            state.brokers.insert(b.id, b);
        }
        let id = crate::cluster::topic_table::new_topic_id();
        state.topics.insert(
            "t".into(),
            TopicState {
                id: id.clone(),
                partitions: vec![
                    partition(0, 0),
                    PartitionState {
                        partition_epoch: 4,
                        ..partition(1, 3)
                    },
                    partition(2, 1),
                    partition(0, 2),
                ],
                configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
            },
        );
        let key = |partition| PartitionKey {
            topic: "t".into(),
            partition,
        };
        let placement: LocalPlacement = [(key(0), ShardId(1)), (key(3), ShardId(0))].into();
        let identity = Identity {
            node: NodeId(0),
            cluster_id: "c".into(),
        };
        let image = MetadataImage::build(&state, &placement, &identity, &BrokerConfig::default());
        assert_eq!(image.version(), 7);
        assert_eq!(
            image.name_of(uuid::Uuid::parse_str(&id).unwrap()),
            Some("t")
        );
        assert_eq!(image.route(&key(0)), Route::Local(ShardId(1)));
        assert_eq!(image.partition(&key(1)).unwrap().partition_epoch, 4);
        assert_eq!(
            image.route(&key(1)),
            Route::Remote {
                leader: NodeId(1),
                epoch: LeaderEpoch(3)
            }
        );
        assert_eq!(image.route(&key(2)), Route::Offline, "its leader is fenced");
        assert_eq!(image.route(&key(4)), Route::Unknown);
        assert_eq!(image.route(&key(-1)), Route::Unknown);
        assert_eq!(image.owner_of(&key(3)), Some(ShardId(0)));
        assert_eq!(image.owner_of(&key(1)), None);
        assert_eq!(image.owned_by(ShardId(0)).collect::<Vec<_>>(), vec![key(3)]);
        assert_eq!(image.live_brokers().count(), 2);
        assert_eq!(
            image.controller_id(),
            NodeId(0),
            "clients are given this live broker"
        );
        assert!(image.topic("t").unwrap().configs.cleanup_policy.compact);
    }
}
