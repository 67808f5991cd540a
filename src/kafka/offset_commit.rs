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

pub async fn handle(shard: &Rc<Shard>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let now_ms = TimestampMs::now().0;
    // Per topic, per partition: the error, None until the coordinator answers.
    let mut errors: Vec<Vec<Option<ErrorCode>>> = Vec::with_capacity(request.topics.len());
    let mut offsets = Vec::new();
    {
        let image = shard.image();
        for topic in &request.topics {
            let known_topic = image.topic(topic.name.as_str());
            let mut topic_errors = Vec::with_capacity(topic.partitions.len());
            for partition in &topic.partitions {
                let known =
                    known_topic.is_some_and(|t| t.partition(partition.partition_index).is_some());
                let metadata = partition
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let error = if !known {
                    Some(ErrorCode::UnknownTopicOrPartition)
                } else if metadata.len() > MAX_METADATA_BYTES {
                    Some(ErrorCode::OffsetMetadataTooLarge)
                } else {
                    offsets.push((
                        (topic.name.to_string(), partition.partition_index),
                        OffsetValue {
                            offset: partition.committed_offset,
                            leader_epoch: partition.committed_leader_epoch,
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
    }
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
