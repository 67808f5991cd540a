//! What a handler does with a partition's [`Route`]: serve it on the shard that
//! owns this node's replica, or answer with the error Kafka gives when another
//! broker leads it (data partitions) or coordinates it (group and transaction
//! coordinators), and name that leader for KIP-951 clients.

use crate::cluster::image::{BrokerImage, MetadataImage, PartitionKey, Route};
use crate::protocol::error_code::ErrorCode;
use crate::types::{LeaderEpoch, NodeId, ShardId};

/// A data partition (Produce, Fetch, ListOffsets, ...): served where this node
/// leads it; Kafka answers NOT_LEADER_OR_FOLLOWER both when another broker leads
/// it and when none does, so the client refreshes its metadata and retries.
pub fn partition_owner(route: Route) -> Result<ShardId, ErrorCode> {
    match route {
        Route::Local(shard) => Ok(shard),
        Route::Remote { .. } | Route::Offline => Err(ErrorCode::NotLeaderOrFollower),
        Route::Unknown => Err(ErrorCode::UnknownTopicOrPartition),
    }
}

/// The coordinator partition of a group or transactional id: served where this
/// node leads it; another broker's is NOT_COORDINATOR (the client looks the
/// coordinator up again), one without a live leader COORDINATOR_NOT_AVAILABLE.
pub fn coordinator_owner(route: Route) -> Result<ShardId, ErrorCode> {
    match route {
        Route::Local(shard) => Ok(shard),
        Route::Remote { .. } => Err(ErrorCode::NotCoordinator),
        Route::Offline | Route::Unknown => Err(ErrorCode::CoordinatorNotAvailable),
    }
}

/// The partition's leader as the metadata knows it, for the KIP-951
/// `current_leader` field: (-1, -1) when the partition is unknown, a leader of -1
/// with the last epoch while it is offline (as Kafka's `getCurrentLeader`).
pub fn current_leader(image: &MetadataImage, key: &PartitionKey) -> (NodeId, LeaderEpoch) {
    image
        .partition(key)
        .map_or((NodeId::NONE, LeaderEpoch::NONE), |p| {
            (p.leader, p.leader_epoch)
        })
}

/// A live broker's advertised endpoint, for the KIP-951 `node_endpoints`.
pub fn live_broker(image: &MetadataImage, id: NodeId) -> Option<&BrokerImage> {
    image.broker(id).filter(|b| !b.fenced)
}

/// A three-broker cluster seen from node 0: broker 2 is fenced; topic `t` has
/// partition 0 led here (epoch 1), 1 led by broker 1 (epoch 3) and 2 offline
/// (its only replica on broker 2, epoch 5).
#[cfg(test)]
pub fn three_broker_image() -> MetadataImage {
    use crate::cluster::image::{Identity, LocalPlacement};
    use crate::cluster::state::{BrokerState, ClusterState, PartitionState, TopicState};
    let mut state = ClusterState::default();
    for (id, fenced) in [(0, false), (1, false), (2, true)] {
        let broker = BrokerState {
            id: NodeId(id),
            incarnation: "i".into(),
            epoch: 1,
            host: format!("10.0.0.{id}"),
            port: 9092,
            rack: (id == 1).then(|| "r1".to_string()),
            fenced,
        };
        state.brokers.insert(broker.id, broker);
    }
    let partition = |replica: i32, leader: NodeId, epoch: i32| PartitionState {
        replicas: vec![NodeId(replica)],
        isr: vec![NodeId(replica)],
        leader,
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: 0,
    };
    state.topics.insert(
        "t".into(),
        TopicState {
            id: crate::cluster::topic_table::new_topic_id(),
            partitions: vec![
                partition(0, NodeId(0), 1),
                partition(1, NodeId(1), 3),
                partition(2, NodeId::NONE, 5),
            ],
            configs: Default::default(),
        },
    );
    let placement: LocalPlacement = [(
        PartitionKey {
            topic: "t".into(),
            partition: 0,
        },
        ShardId(0),
    )]
    .into();
    let identity = Identity {
        node: NodeId(0),
        cluster_id: "cluster-a".into(),
    };
    MetadataImage::build(
        &state,
        &placement,
        &identity,
        &crate::config::BrokerConfig::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_leaders_and_their_endpoints_come_from_the_image() {
        let image = three_broker_image();
        let key = |partition| PartitionKey {
            topic: "t".into(),
            partition,
        };
        assert_eq!(current_leader(&image, &key(1)), (NodeId(1), LeaderEpoch(3)));
        assert_eq!(
            current_leader(&image, &key(2)),
            (NodeId::NONE, LeaderEpoch(5)),
            "an offline partition keeps its epoch"
        );
        assert_eq!(
            current_leader(&image, &key(9)),
            (NodeId::NONE, LeaderEpoch::NONE)
        );
        assert_eq!(live_broker(&image, NodeId(1)).map(|b| b.port), Some(9092));
        assert!(live_broker(&image, NodeId(2)).is_none(), "fenced");
        assert!(live_broker(&image, NodeId::NONE).is_none());
    }

    #[test]
    fn routes_map_to_kafkas_errors_for_data_and_coordinator_partitions() {
        let remote = Route::Remote {
            leader: NodeId(2),
            epoch: LeaderEpoch(4),
        };
        assert_eq!(partition_owner(Route::Local(ShardId(3))), Ok(ShardId(3)));
        assert_eq!(partition_owner(remote), Err(ErrorCode::NotLeaderOrFollower));
        assert_eq!(
            partition_owner(Route::Offline),
            Err(ErrorCode::NotLeaderOrFollower)
        );
        assert_eq!(
            partition_owner(Route::Unknown),
            Err(ErrorCode::UnknownTopicOrPartition)
        );
        assert_eq!(coordinator_owner(Route::Local(ShardId(1))), Ok(ShardId(1)));
        assert_eq!(coordinator_owner(remote), Err(ErrorCode::NotCoordinator));
        assert_eq!(
            coordinator_owner(Route::Offline),
            Err(ErrorCode::CoordinatorNotAvailable)
        );
        assert_eq!(
            coordinator_owner(Route::Unknown),
            Err(ErrorCode::CoordinatorNotAvailable)
        );
    }
}
