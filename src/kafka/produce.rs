//! Produce: validate and append each partition's batch on its owning shard, answer
//! per partition in request order.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::group::coordinator_key::OFFSETS_TOPIC;
use crate::kafka::{Split, auto_create};
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::messages::{
    PartitionKey, ProduceItem, ProduceResult, ShardRequest, ShardResponse,
};

pub async fn handle(shard: &Rc<Shard>, request: ProduceRequest, version: i16) -> ProduceResponse {
    let unknown: Vec<String> = {
        let topics = shard.topics.borrow();
        request
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|name| !topics.topics.contains_key(name))
            .collect()
    };
    auto_create(shard, unknown).await;

    let invalid_acks = !matches!(request.acks, -1..=1);
    // Results by (topic index, partition index); filled locally or by owners.
    let mut results: BTreeMap<(usize, usize), ProduceResult> = BTreeMap::new();
    let mut split: Split<ProduceItem> = Split::default();
    for (topic_index, topic) in request.topic_data.iter().enumerate() {
        for (partition_index, data) in topic.partition_data.iter().enumerate() {
            let key = PartitionKey {
                topic: topic.name.0.to_string(),
                partition: data.index,
            };
            let at = (topic_index, partition_index);
            match shard.owner_of(&key) {
                _ if invalid_acks => {
                    results.insert(at, failed(ErrorCode::InvalidRequiredAcks));
                }
                // Only the group coordinator writes the internal topic, as in Kafka.
                _ if key.topic == OFFSETS_TOPIC => {
                    results.insert(at, failed(ErrorCode::InvalidTopicException));
                }
                None => {
                    results.insert(at, failed(ErrorCode::UnknownTopicOrPartition));
                }
                Some(owner) => {
                    split.push(
                        owner,
                        at,
                        ProduceItem {
                            key,
                            records: data.records.clone(),
                        },
                    );
                }
            }
        }
    }
    split
        .run(
            shard,
            |items| ShardRequest::Produce {
                zstd_allowed: version >= 7,
                items,
            },
            |response| match response {
                ShardResponse::Produce(results) => results,
                other => unreachable!("a produce request answered with {other:?}"),
            },
            &mut results,
        )
        .await;

    let responses = request
        .topic_data
        .iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(
                    topic
                        .partition_data
                        .iter()
                        .enumerate()
                        .map(|(partition_index, data)| {
                            let result = results
                                .get(&(topic_index, partition_index))
                                .copied()
                                .unwrap_or_else(|| failed(ErrorCode::UnknownServerError));
                            PartitionProduceResponse::default()
                                .with_index(data.index)
                                .with_error_code(result.error.code())
                                .with_base_offset(result.base_offset)
                                .with_log_append_time_ms(result.log_append_time)
                                .with_log_start_offset(result.log_start_offset)
                        })
                        .collect(),
                )
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

fn failed(error: ErrorCode) -> ProduceResult {
    ProduceResult {
        error,
        base_offset: -1,
        log_append_time: -1,
        log_start_offset: -1,
    }
}
