//! DescribeCluster and DescribeConfigs.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::topic_config;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;

/// (name, value, source) of a described config.
type Entry = (String, String, i8);

/// Kafka's ConfigResource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Kafka's ConfigSource for settings from the broker's own config.
const STATIC_BROKER_CONFIG: i8 = 4;

/// The same brokers, cluster id and controller as Metadata.
pub fn cluster(shard: &Shard) -> DescribeClusterResponse {
    let image = shard.image();
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(image.cluster_id().to_string()))
        .with_controller_id(BrokerId(image.controller_id().0))
        .with_brokers(
            image
                .live_brokers()
                .map(|broker| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(broker.id.0))
                        .with_host(StrBytes::from_string(broker.host.clone()))
                        .with_port(i32::from(broker.port))
                        .with_rack(broker.rack.clone().map(StrBytes::from_string))
                })
                .collect(),
        )
}

pub fn configs(shard: &Rc<Shard>, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries: Result<Vec<Entry>, (ErrorCode, String)> = match resource.resource_type {
                TOPIC => {
                    let image = shard.image();
                    match image.topic(&name) {
                        None => Err((
                            ErrorCode::UnknownTopicOrPartition,
                            format!("topic {name} does not exist"),
                        )),
                        Some(topic) => Ok(topic_config::describe(shard.config(), &topic.overrides)
                            .into_iter()
                            .map(|(key, value, source)| (key.to_string(), value, source as i8))
                            .collect()),
                    }
                }
                BROKER => Ok(broker_configs(shard)),
                other => Err((
                    ErrorCode::InvalidRequest,
                    format!("unsupported resource type {other}"),
                )),
            };
            match entries {
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
                Ok(entries) => result.with_configs(
                    entries
                        .into_iter()
                        .filter(|(key, _, _)| wanted(key))
                        .map(|(key, value, source)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_string(key))
                                .with_value(Some(StrBytes::from_string(value)))
                                .with_config_source(source)
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_configs(shard: &Shard) -> Vec<Entry> {
    let config = shard.config();
    [
        ("node.id", config.node_id.to_string()),
        (
            "auto.create.topics.enable",
            config.auto_create_topics_enable.to_string(),
        ),
        ("num.partitions", config.num_partitions.to_string()),
        ("message.max.bytes", config.message_max_bytes.to_string()),
        (
            "socket.request.max.bytes",
            config.socket_request_max_bytes.to_string(),
        ),
        ("log.segment.bytes", config.log_segment_bytes.to_string()),
        ("log.retention.ms", config.log_retention_ms.to_string()),
        (
            "log.retention.bytes",
            config.log_retention_bytes.to_string(),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value, STATIC_BROKER_CONFIG))
    .collect()
}
