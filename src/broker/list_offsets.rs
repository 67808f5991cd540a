//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset
//! at or after a timestamp, per partition on its owning shard.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Split;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::messages::{OffsetResult, PartitionKey, ShardRequest, ShardResponse};

pub async fn handle(
    shard: &Rc<Shard>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut results: BTreeMap<(usize, usize), OffsetResult> = BTreeMap::new();
    let mut split: Split<(PartitionKey, i64)> = Split::default();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            let key = PartitionKey {
                topic: topic.name.0.to_string(),
                partition: partition.partition_index,
            };
            let at = (topic_index, partition_index);
            match shard.owner_of(&key) {
                None => {
                    results.insert(
                        at,
                        OffsetResult {
                            error: ErrorCode::UnknownTopicOrPartition,
                            offset: -1,
                            timestamp: -1,
                        },
                    );
                }
                Some(owner) => {
                    split.push(owner, at, (key, partition.timestamp));
                }
            }
        }
    }
    split
        .run(
            shard,
            |items| ShardRequest::ListOffsets { items },
            |response| match response {
                ShardResponse::ListOffsets(results) => results,
                other => unreachable!("a list offsets request answered with {other:?}"),
            },
            &mut results,
        )
        .await;
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(partition_index, partition)| {
                            let result = results[&(topic_index, partition_index)];
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(result.error.code())
                                .with_offset(result.offset)
                                .with_timestamp(result.timestamp)
                                .with_leader_epoch(if version >= 4 {
                                    crate::shard::service::LEADER_EPOCH.0
                                } else {
                                    -1
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
