//! DeleteRecords: moves each partition's log start offset on its owning shard.

use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::cluster::image::PartitionKey;
use crate::kafka::by_partition;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::calls::offsets::DeleteRecords;
use crate::types::Offset;

pub async fn handle(shard: &Rc<Shard>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
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
                    // -1: up to the high watermark.
                    let before = (partition.offset != -1).then_some(Offset(partition.offset));
                    ((topic_index, partition_index), key, before)
                })
        });
    let results = by_partition(shard, partitions, |items| DeleteRecords { items }).await;
    DeleteRecordsResponse::default().with_topics(
        request
            .topics
            .iter()
            .enumerate()
            .map(|(topic_index, topic)| {
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        topic
                            .partitions
                            .iter()
                            .enumerate()
                            .map(|(partition_index, partition)| {
                                let result = results[&(topic_index, partition_index)];
                                let (low_watermark, error) = match result {
                                    Ok(offset) => (offset.0, ErrorCode::None),
                                    Err(error) => (-1, error),
                                };
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(partition.partition_index)
                                    .with_low_watermark(low_watermark)
                                    .with_error_code(error.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
