//! DeleteRecords: moves each partition's log start offset on its owning shard.

use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::kafka::offsets_by_partition;
use crate::shard::Shard;
use crate::shard::messages::{PartitionKey, ShardRequest};

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
                    ((topic_index, partition_index), key, partition.offset)
                })
        });
    let results = offsets_by_partition(shard, partitions, |items| ShardRequest::DeleteRecords {
        items,
    })
    .await;
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
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(partition.partition_index)
                                    .with_low_watermark(result.offset)
                                    .with_error_code(result.error.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
