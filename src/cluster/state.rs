//! The cluster state every node rebuilds from the committed metadata log:
//! brokers, topics, partitions with replicas, leader, epochs and ISR, configs,
//! and the producer-id high mark. The controller decides against it; each
//! shard's [`crate::cluster::image::MetadataImage`] is built from it. Serialized
//! whole as a metadata snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cluster::records::MetadataRecord;
use crate::types::{LeaderEpoch, NodeId};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The metadata log offset (Raft index) of the last batch applied.
    pub offset: u64,
    pub brokers: BTreeMap<NodeId, BrokerState>,
    pub topics: BTreeMap<String, TopicState>,
    /// The first producer id not yet handed out in a block.
    pub next_producer_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    pub id: NodeId,
    pub incarnation: String,
    /// The offset of its registration (Kafka's broker epoch).
    pub epoch: i64,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub fenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    /// The topic id, 32 hex digits.
    pub id: String,
    pub partitions: Vec<PartitionState>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// [`NodeId::NONE`] while no live replica can lead.
    pub leader: NodeId,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
}

impl ClusterState {
    /// Applies one committed batch (one Raft entry) found at log offset `offset`.
    /// Records that name unknown brokers or topics, or carry a stale broker
    /// epoch, are skipped with a warning: the log is replicated input, and every
    /// node skipping the same record keeps every node's state the same.
    pub fn apply(&mut self, offset: u64, records: &[MetadataRecord]) {
        // Offsets only grow: applying an entry twice would register a broker
        // again (a new epoch) or append a partition twice.
        assert!(
            offset > self.offset,
            "metadata entry at offset {offset} applied after offset {}",
            self.offset
        );
        for record in records {
            self.apply_record(offset, record);
        }
        self.offset = offset;
    }

    /// Applies one record of the batch at `offset` without moving `self.offset`:
    /// the controller replays its own pending decisions on a scratch copy so
    /// later topics of the same request see the earlier ones.
    pub(crate) fn apply_record(&mut self, offset: u64, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker {
                id,
                incarnation,
                host,
                port,
                rack,
            } => {
                let epoch = i64::try_from(offset).expect("Raft indexes stay below 2^63");
                self.brokers.insert(
                    *id,
                    BrokerState {
                        id: *id,
                        incarnation: incarnation.clone(),
                        epoch,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced: true,
                    },
                );
            }
            MetadataRecord::FenceBroker { id, epoch } => self.set_fenced(*id, *epoch, true),
            MetadataRecord::UnfenceBroker { id, epoch } => self.set_fenced(*id, *epoch, false),
            MetadataRecord::Topic { name, id } => {
                if self.topics.contains_key(name) {
                    tracing::warn!(offset, topic = %name, "metadata record creates an existing topic; skipped");
                    return;
                }
                self.topics.insert(
                    name.clone(),
                    TopicState {
                        id: id.clone(),
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
            } => {
                let Some(state) = self.topics.get_mut(topic) else {
                    tracing::warn!(offset, %topic, partition, "partition of an unknown topic; skipped");
                    return;
                };
                // The controller creates partitions in index order within the
                // batch that creates them: a gap means the log itself is wrong.
                assert_eq!(
                    usize::try_from(*partition).ok(),
                    Some(state.partitions.len()),
                    "metadata offset {offset}: partition {partition} of {topic} is not the next index"
                );
                state.partitions.push(PartitionState {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: 0,
                });
            }
            MetadataRecord::PartitionChange {
                topic,
                partition,
                leader,
                isr,
                replicas,
            } => {
                let Some(state) = self.partition_mut(topic, *partition) else {
                    tracing::warn!(offset, %topic, partition, "change of an unknown partition; skipped");
                    return;
                };
                if let Some(leader) = leader
                    && *leader != state.leader
                {
                    state.leader = *leader;
                    state.leader_epoch = LeaderEpoch(state.leader_epoch.0 + 1);
                }
                if let Some(isr) = isr {
                    state.isr = isr.clone();
                }
                if let Some(replicas) = replicas {
                    state.replicas = replicas.clone();
                }
                state.partition_epoch += 1;
            }
            MetadataRecord::RemoveTopic { name } => {
                if self.topics.remove(name).is_none() {
                    tracing::warn!(offset, topic = %name, "removal of an unknown topic; skipped");
                }
            }
            MetadataRecord::TopicConfigs { name, configs } => match self.topics.get_mut(name) {
                Some(state) => state.configs = configs.clone(),
                None => {
                    tracing::warn!(offset, topic = %name, "configs of an unknown topic; skipped")
                }
            },
            MetadataRecord::ProducerIds { broker, next } => {
                // Going back would hand out ids a producer already holds.
                if *next > self.next_producer_id {
                    self.next_producer_id = *next;
                } else {
                    tracing::warn!(
                        offset,
                        %broker,
                        next,
                        current = self.next_producer_id,
                        "producer id block does not move forward; skipped"
                    );
                }
            }
        }
    }

    fn set_fenced(&mut self, id: NodeId, epoch: i64, fenced: bool) {
        match self.brokers.get_mut(&id) {
            Some(broker) if broker.epoch == epoch => broker.fenced = fenced,
            Some(broker) => tracing::warn!(
                %id,
                epoch,
                current = broker.epoch,
                fenced,
                "fencing change for an older registration; skipped"
            ),
            None => {
                tracing::warn!(%id, epoch, fenced, "fencing change for an unknown broker; skipped")
            }
        }
    }

    fn partition_mut(&mut self, topic: &str, index: i32) -> Option<&mut PartitionState> {
        let index = usize::try_from(index).ok()?;
        self.topics.get_mut(topic)?.partitions.get_mut(index)
    }

    /// Registered brokers that are not fenced, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerState> {
        self.brokers.values().filter(|broker| !broker.fenced)
    }

    /// Whether `id` is registered and unfenced.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.brokers.get(&id).is_some_and(|broker| !broker.fenced)
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionState> {
        let index = usize::try_from(index).ok()?;
        self.topics.get(topic)?.partitions.get(index)
    }

    /// The metadata snapshot: the whole state as JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the cluster state always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<ClusterState, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("metadata snapshot: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(id: i32, incarnation: &str) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            id: NodeId(id),
            incarnation: incarnation.into(),
            host: "127.0.0.1".into(),
            port: 9092,
            rack: Some("r1".into()),
        }
    }

    fn partition(index: i32, leader: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic: "t".into(),
            partition: index,
            replicas: vec![NodeId(leader)],
            isr: vec![NodeId(leader)],
            leader: NodeId(leader),
            leader_epoch: LeaderEpoch(0),
        }
    }

    fn change(leader: Option<i32>, isr: Option<Vec<NodeId>>) -> MetadataRecord {
        MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 0,
            leader: leader.map(NodeId),
            isr,
            replicas: None,
        }
    }

    /// A log touching every record type, as (offset, batch).
    fn log() -> Vec<(u64, Vec<MetadataRecord>)> {
        let topic = MetadataRecord::Topic {
            name: "t".into(),
            id: "0123456789abcdef0123456789abcdef".into(),
        };
        vec![
            (1, vec![register(1, "a"), register(2, "b")]),
            (
                3,
                vec![MetadataRecord::UnfenceBroker {
                    id: NodeId(1),
                    epoch: 1,
                }],
            ),
            (4, vec![topic, partition(0, 1), partition(1, 2)]),
            (
                5,
                vec![
                    change(Some(2), None),
                    change(Some(2), Some(vec![NodeId(2)])),
                ],
            ),
            (
                6,
                vec![MetadataRecord::TopicConfigs {
                    name: "t".into(),
                    configs: [("retention.ms".to_string(), "5".to_string())].into(),
                }],
            ),
            (
                7,
                vec![MetadataRecord::ProducerIds {
                    broker: NodeId(1),
                    next: 1000,
                }],
            ),
        ]
    }

    fn replay(log: &[(u64, Vec<MetadataRecord>)]) -> ClusterState {
        let mut state = ClusterState::default();
        for (offset, batch) in log {
            state.apply(*offset, batch);
        }
        state
    }

    #[test]
    fn applying_the_log_builds_brokers_topics_and_epochs() {
        let state = replay(&log());
        assert_eq!(state.offset, 7);
        assert_eq!(state.brokers[&NodeId(1)].epoch, 1);
        assert_eq!(state.brokers[&NodeId(2)].epoch, 1);
        let live: Vec<NodeId> = state.live_brokers().map(|b| b.id).collect();
        assert_eq!(live, vec![NodeId(1)]);
        let changed = state.partition("t", 0).unwrap();
        assert_eq!(changed.leader, NodeId(2));
        assert_eq!(changed.leader_epoch, LeaderEpoch(1), "one leader change");
        assert_eq!(changed.partition_epoch, 2, "two changes");
        assert_eq!(changed.isr, vec![NodeId(2)]);
        assert_eq!(state.partition("t", 1).unwrap().partition_epoch, 0);
        assert!(state.partition("t", 2).is_none() && state.partition("t", -1).is_none());
        assert_eq!(state.topics["t"].configs["retention.ms"], "5");
        assert_eq!(state.next_producer_id, 1000);
        assert_eq!(replay(&log()), state, "deterministic");
    }

    #[test]
    fn stale_epochs_and_unknown_names_change_nothing() {
        let mut state = replay(&log());
        state.apply(8, &[register(1, "again")]);
        assert_eq!(state.brokers[&NodeId(1)].epoch, 8);
        assert!(state.brokers[&NodeId(1)].fenced);
        let before = state.clone();
        let ignored = [
            MetadataRecord::UnfenceBroker {
                id: NodeId(1),
                epoch: 1,
            },
            MetadataRecord::FenceBroker {
                id: NodeId(9),
                epoch: 1,
            },
            MetadataRecord::RemoveTopic { name: "zz".into() },
            MetadataRecord::TopicConfigs {
                name: "zz".into(),
                configs: BTreeMap::new(),
            },
            MetadataRecord::PartitionChange {
                topic: "t".into(),
                partition: 5,
                leader: Some(NodeId(1)),
                isr: None,
                replicas: None,
            },
            MetadataRecord::Partition {
                topic: "zz".into(),
                partition: 0,
                replicas: vec![NodeId(1)],
                isr: vec![NodeId(1)],
                leader: NodeId(1),
                leader_epoch: LeaderEpoch(0),
            },
            MetadataRecord::Topic {
                name: "t".into(),
                id: "other".into(),
            },
            MetadataRecord::ProducerIds {
                broker: NodeId(1),
                next: 10,
            },
        ];
        state.apply(9, &ignored);
        assert_eq!(
            state,
            ClusterState {
                offset: 9,
                ..before
            }
        );
        state.apply(
            10,
            &[MetadataRecord::UnfenceBroker {
                id: NodeId(1),
                epoch: 8,
            }],
        );
        assert!(!state.brokers[&NodeId(1)].fenced);
        state.apply(11, &[MetadataRecord::RemoveTopic { name: "t".into() }]);
        assert!(state.topics.is_empty());
    }

    #[test]
    #[should_panic(expected = "not the next index")]
    fn a_partition_gap_is_a_broken_log() {
        let mut state = replay(&log());
        state.apply(8, &[partition(3, 1)]);
    }

    #[test]
    #[should_panic(expected = "applied after offset")]
    fn an_entry_is_applied_once() {
        let mut state = replay(&log());
        state.apply(7, &[]);
    }

    #[test]
    fn snapshots_round_trip() {
        let state = replay(&log());
        let decoded = ClusterState::decode(&state.encode()).unwrap();
        assert_eq!(decoded, state);
        assert!(ClusterState::decode(b"{\"offset\": 1").is_err());
    }
}
