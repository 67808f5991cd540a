//! Sends group work to the shard coordinating the group: the owner of the
//! group's `__consumer_offsets` partition, which is created on first use.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::group::coordinator_key::{OFFSETS_TOPIC, partition_for};
use crate::group::requests::{GroupRequest, GroupResponse};
use crate::protocol::error_code::ErrorCode;
use crate::shard::messages::{NewTopic, PartitionKey, ShardRequest, ShardResponse};
use crate::shard::{CONTROLLER_SHARD, Shard};

/// Partitions of `__consumer_offsets`, creating it (compacted, internal) through
/// the controller if it does not exist yet.
pub async fn offsets_topic_partitions(shard: &Rc<Shard>) -> Result<i32, ErrorCode> {
    let existing = |shard: &Shard| {
        shard
            .topics
            .borrow()
            .topics
            .get(OFFSETS_TOPIC)
            .map(|meta| meta.partition_count())
    };
    if let Some(count) = existing(shard) {
        return Ok(count);
    }
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: shard.config.offsets_topic_num_partitions,
        replication_factor: -1,
        configs: vec![("cleanup.policy".to_string(), Some("compact".to_string()))],
        validate_only: false,
    };
    // Another request may create it at the same time: TOPIC_ALREADY_EXISTS is
    // fine, the table says whether it is there.
    if let ShardResponse::TopicsChanged(results) = shard
        .call(CONTROLLER_SHARD, ShardRequest::CreateTopics(vec![topic]))
        .await
    {
        for result in results
            .iter()
            .filter(|r| !matches!(r.error, ErrorCode::None | ErrorCode::TopicAlreadyExists))
        {
            tracing::error!(error = ?result.error, message = ?result.message, "cannot create {OFFSETS_TOPIC}");
        }
    }
    existing(shard).ok_or(ErrorCode::CoordinatorNotAvailable)
}

/// Longest group id, instance id, client id or protocol name the coordinator
/// takes: they are stored in `__consumer_offsets` as Kafka strings (INT16 length).
pub const MAX_NAME_BYTES: usize = 4096;

/// The shard coordinating `group`.
pub async fn coordinator_shard(shard: &Rc<Shard>, group: &str) -> Result<usize, ErrorCode> {
    if group.len() > MAX_NAME_BYTES {
        return Err(ErrorCode::InvalidGroupId);
    }
    let partitions = offsets_topic_partitions(shard).await?;
    let key = PartitionKey {
        topic: OFFSETS_TOPIC.to_string(),
        partition: partition_for(group, partitions),
    };
    shard
        .owner_of(&key)
        .ok_or(ErrorCode::CoordinatorNotAvailable)
}

/// Runs `request` on the shard coordinating `group`.
pub async fn call(
    shard: &Rc<Shard>,
    group: &str,
    request: GroupRequest,
) -> Result<GroupResponse, ErrorCode> {
    let owner = coordinator_shard(shard, group).await?;
    Ok(group_response(
        shard.call(owner, ShardRequest::Group(request)).await,
    ))
}

/// Groups `items` by coordinating shard, keeping each item's index in the
/// request; items whose coordinator cannot be found come back with the error.
pub async fn split_by_coordinator<T>(
    shard: &Rc<Shard>,
    items: Vec<(String, T)>,
) -> (BTreeMap<usize, Vec<(usize, T)>>, Vec<(usize, ErrorCode)>) {
    let mut per_shard: BTreeMap<usize, Vec<(usize, T)>> = BTreeMap::new();
    let mut failed = Vec::new();
    for (index, (group, item)) in items.into_iter().enumerate() {
        match coordinator_shard(shard, &group).await {
            Ok(owner) => per_shard.entry(owner).or_default().push((index, item)),
            Err(error) => failed.push((index, error)),
        }
    }
    (per_shard, failed)
}

pub fn group_response(response: ShardResponse) -> GroupResponse {
    match response {
        ShardResponse::Group(response) => response,
        other => unreachable!("a group request answered with {other:?}"),
    }
}
