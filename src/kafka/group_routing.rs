//! Sends group work to the shard coordinating the group: the owner of the
//! group's `__consumer_offsets` partition (created on first use) when this
//! node leads it; a group coordinated by another broker is NOT_COORDINATOR.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::cluster::controller::NewTopic;
use crate::cluster::image::PartitionKey;
use crate::group::coordinator_key::{OFFSETS_TOPIC, partition_for};
use crate::kafka::routing::coordinator_owner;
use crate::protocol::error_code::ErrorCode;
use crate::shard::call::ShardCall;
use crate::shard::calls::topics::CreateTopics;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::types::ShardId;

/// Partitions of `__consumer_offsets`, creating it (compacted, internal, with
/// `offsets.topic.replication.factor` replicas) through the controller if it
/// does not exist yet.
pub async fn offsets_topic_partitions(shard: &Rc<Shard>) -> Result<i32, ErrorCode> {
    let existing = |shard: &Shard| {
        shard
            .image()
            .topic(OFFSETS_TOPIC)
            .map(|topic| topic.partition_count())
    };
    if let Some(count) = existing(shard) {
        return Ok(count);
    }
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: shard.config().offsets_topic_num_partitions,
        // Never created with fewer replicas: until this many brokers are
        // live the controller refuses it and groups get COORDINATOR_NOT_AVAILABLE.
        replication_factor: shard.config().offsets_topic_replication_factor(),
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            (
                "segment.bytes".to_string(),
                Some(shard.config().offsets_topic_segment_bytes.to_string()),
            ),
        ],
        validate_only: false,
    };
    // Another request may create it at the same time: TOPIC_ALREADY_EXISTS is
    // fine, the table says whether it is there.
    let results = shard
        .call(CONTROLLER_SHARD, CreateTopics(vec![topic]))
        .await;
    for result in results
        .iter()
        .filter(|r| !matches!(r.error, ErrorCode::None | ErrorCode::TopicAlreadyExists))
    {
        tracing::error!(error = ?result.error, message = ?result.message, "cannot create {OFFSETS_TOPIC}");
    }
    existing(shard).ok_or(ErrorCode::CoordinatorNotAvailable)
}

/// Longest group id, instance id, client id or protocol name the coordinator
/// takes: they are stored in `__consumer_offsets` as Kafka strings (INT16 length).
pub const MAX_NAME_BYTES: usize = 4096;

/// The `__consumer_offsets` partition that coordinates `group`, of `partitions`.
pub fn coordinator_partition(group: &str, partitions: i32) -> PartitionKey {
    PartitionKey {
        topic: OFFSETS_TOPIC.to_string(),
        partition: partition_for(group, partitions),
    }
}

/// The shard coordinating `group`: NOT_COORDINATOR when another broker leads
/// its partition, COORDINATOR_NOT_AVAILABLE when none does.
pub async fn coordinator_shard(shard: &Rc<Shard>, group: &str) -> Result<ShardId, ErrorCode> {
    if group.len() > MAX_NAME_BYTES {
        return Err(ErrorCode::InvalidGroupId);
    }
    let partitions = offsets_topic_partitions(shard).await?;
    let key = coordinator_partition(group, partitions);
    coordinator_owner(shard.image().route(&key))
}

/// Runs `call` on the shard coordinating `group`.
pub async fn call<C: ShardCall>(
    shard: &Rc<Shard>,
    group: &str,
    call: C,
) -> Result<C::Reply, ErrorCode> {
    let owner = coordinator_shard(shard, group).await?;
    Ok(shard.call(owner, call).await)
}

/// Groups `items` by coordinating shard, keeping each item's index in the
/// request; items whose coordinator cannot be found come back with the error.
pub async fn split_by_coordinator<T>(
    shard: &Rc<Shard>,
    items: Vec<(String, T)>,
) -> (BTreeMap<ShardId, Vec<(usize, T)>>, Vec<(usize, ErrorCode)>) {
    let mut per_shard: BTreeMap<ShardId, Vec<(usize, T)>> = BTreeMap::new();
    let mut failed = Vec::new();
    for (index, (group, item)) in items.into_iter().enumerate() {
        match coordinator_shard(shard, &group).await {
            Ok(owner) => per_shard.entry(owner).or_default().push((index, item)),
            Err(error) => failed.push((index, error)),
        }
    }
    (per_shard, failed)
}
