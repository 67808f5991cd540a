//! Topic administration: CreateTopics, CreatePartitions and DeleteTopics, carried out by the
//! controller shard.

use std::rc::Rc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::controller::{NewTopic, PartitionGrowth};
use crate::shard::calls::topics::{CreatePartitions, CreateTopics, DeleteTopics};
use crate::shard::{CONTROLLER_SHARD, Shard};

pub async fn create_topics(
    shard: &Rc<Shard>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let topics: Vec<NewTopic> = request
        .topics
        .iter()
        .map(|topic| NewTopic {
            name: topic.name.0.to_string(),
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: topic
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
            validate_only: request.validate_only,
        })
        .collect();
    let results = shard.call(CONTROLLER_SHARD, CreateTopics(topics)).await;
    let image = shard.image();
    CreateTopicsResponse::default().with_topics(
        results
            .into_iter()
            .map(|result| {
                let topic = image.topic(&result.name);
                CreatableTopicResult::default()
                    .with_name(TopicName(StrBytes::from_string(result.name.clone())))
                    .with_topic_id(topic.map(|t| t.id).unwrap_or_default())
                    .with_error_code(result.error.code())
                    .with_error_message(result.message.map(StrBytes::from_string))
                    .with_num_partitions(topic.map_or(-1, |t| t.partition_count()))
                    .with_replication_factor(if topic.is_some() { 1 } else { -1 })
            })
            .collect(),
    )
}

pub async fn delete_topics(
    shard: &Rc<Shard>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics`, by name or id.
    let mut names: Vec<String> = request
        .topic_names
        .iter()
        .map(|n| n.0.to_string())
        .collect();
    let image = shard.image();
    for topic in &request.topics {
        match &topic.name {
            Some(name) => names.push(name.0.to_string()),
            None => names.push(
                image
                    .name_of(topic.topic_id)
                    .unwrap_or_default()
                    .to_string(),
            ),
        }
    }
    let results = shard.call(CONTROLLER_SHARD, DeleteTopics(names)).await;
    DeleteTopicsResponse::default().with_responses(
        results
            .into_iter()
            .map(|result| {
                DeletableTopicResult::default()
                    .with_name(Some(TopicName(StrBytes::from_string(result.name))))
                    .with_error_code(result.error.code())
                    .with_error_message(result.message.map(StrBytes::from_string))
            })
            .collect(),
    )
}

pub async fn create_partitions(
    shard: &Rc<Shard>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| PartitionGrowth {
            name: t.name.0.to_string(),
            count: t.count,
            assignments: t.assignments.as_ref().map(|lists| {
                lists
                    .iter()
                    .map(|a| a.broker_ids.iter().map(|id| id.0).collect())
                    .collect()
            }),
        })
        .collect();
    let call = CreatePartitions {
        topics,
        validate_only: request.validate_only,
    };
    let results = shard.call(CONTROLLER_SHARD, call).await;
    CreatePartitionsResponse::default().with_results(
        results
            .into_iter()
            .map(|result| {
                CreatePartitionsTopicResult::default()
                    .with_name(TopicName(StrBytes::from_string(result.name)))
                    .with_error_code(result.error.code())
                    .with_error_message(result.message.map(StrBytes::from_string))
            })
            .collect(),
    )
}
