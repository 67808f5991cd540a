//! OffsetCommit: partitions of topics that exist are committed in one append to
//! the group's `__consumer_offsets` partition on the coordinating shard; the
//! others get UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers them.

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::group::ids::{GenerationId, GroupId, InstanceId, MemberId};
use crate::group::offsets::MAX_METADATA_BYTES;
use crate::group::records::OffsetValue;
use crate::group::requests::CommitOffsets;
use crate::kafka::group_routing::call;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::types::TimestampMs;

/// One partition of an OffsetCommit or TxnOffsetCommit request.
pub struct CommittedPartition<'a> {
    pub index: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<&'a str>,
}

/// Per topic, per partition: the error of each partition that cannot be
/// committed (`None` until the coordinator answers the rest), and the offsets
/// to commit.
pub type CheckedCommits = (
    Vec<Vec<Option<ErrorCode>>>,
    Vec<((String, i32), OffsetValue)>,
);

/// The checks both commit APIs make before the coordinator: the partition
/// exists and its metadata is not too large.
pub fn check_commits<'a>(
    shard: &Shard,
    topics: impl Iterator<Item = (&'a str, Vec<CommittedPartition<'a>>)>,
    now_ms: i64,
) -> CheckedCommits {
    let image = shard.image();
    let mut errors = Vec::new();
    let mut offsets = Vec::new();
    for (name, partitions) in topics {
        let known_topic = image.topic(name);
        let mut topic_errors = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let known = known_topic.is_some_and(|t| t.partition(partition.index).is_some());
            let metadata = partition.metadata.unwrap_or_default().to_string();
            let error = if !known {
                Some(ErrorCode::UnknownTopicOrPartition)
            } else if metadata.len() > MAX_METADATA_BYTES {
                Some(ErrorCode::OffsetMetadataTooLarge)
            } else {
                offsets.push((
                    (name.to_string(), partition.index),
                    OffsetValue {
                        offset: partition.offset,
                        leader_epoch: partition.leader_epoch,
                        metadata,
                        commit_timestamp: now_ms,
                    },
                ));
                None
            };
            topic_errors.push(error);
        }
        errors.push(topic_errors);
    }
    (errors, offsets)
}

pub async fn handle(shard: &Rc<Shard>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let now_ms = TimestampMs::now().0;
    let (errors, offsets) = check_commits(
        shard,
        request.topics.iter().map(|topic| {
            let partitions = topic.partitions.iter().map(|p| CommittedPartition {
                index: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.as_str()),
            });
            (topic.name.as_str(), partitions.collect())
        }),
        now_ms,
    );
    let group_error = if offsets.is_empty() {
        ErrorCode::None
    } else {
        let group = request.group_id.to_string();
        let commit = CommitOffsets {
            group: GroupId(group.clone()),
            member: MemberId(request.member_id.to_string()),
            instance: request
                .group_instance_id
                .as_ref()
                .map(|i| InstanceId(i.to_string())),
            generation: GenerationId(request.generation_id_or_member_epoch),
            offsets,
        };
        call(shard, &group, commit)
            .await
            .unwrap_or_else(|error| error)
    };
    let topics = request
        .topics
        .into_iter()
        .zip(errors)
        .map(|(topic, topic_errors)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .zip(topic_errors)
                        .map(|(partition, error)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(error.unwrap_or(group_error).code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
