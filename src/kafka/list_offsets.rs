//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset
//! at or after a timestamp, per partition on its owning shard.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::kafka::offsets_by_partition;
use crate::shard::Shard;
use crate::shard::messages::{PartitionKey, ShardRequest};

pub async fn handle(
    shard: &Rc<Shard>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let partitions = request
        .topics
        .iter()
        .enumerate()
        .flat_map(|(topic_index, topic)| {
            topic
                .partitions
                .iter()
                .enumerate()
                .map(move |(partition_index, partition)| {
                    let key = PartitionKey {
                        topic: topic.name.0.to_string(),
                        partition: partition.partition_index,
                    };
                    ((topic_index, partition_index), key, partition.timestamp)
                })
        });
    let results = offsets_by_partition(shard, partitions, |items| ShardRequest::ListOffsets {
        items,
    })
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
