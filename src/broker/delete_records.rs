//! DeleteRecords: moves each partition's log start offset on its owning shard.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Split;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::messages::{OffsetResult, PartitionKey, ShardRequest, ShardResponse};

pub async fn handle(shard: &Rc<Shard>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
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
                Some(owner) => split.push(owner, at, (key, partition.offset)),
            }
        }
    }
    split
        .run(
            shard,
            |items| ShardRequest::DeleteRecords { items },
            |response| match response {
                ShardResponse::DeleteRecords(results) => results,
                other => unreachable!("a delete records request answered with {other:?}"),
            },
            &mut results,
        )
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
