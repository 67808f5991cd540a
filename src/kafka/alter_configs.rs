//! AlterConfigs (replace a topic's overrides) and IncrementalAlterConfigs (set,
//! delete, append to or subtract from single configs), for topics. Broker configs
//! are static: they come from the config file, env and flags.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use crate::protocol::error_code::ErrorCode;
use crate::shard::calls::topics::SetTopicConfigs;
use crate::shard::{CONTROLLER_SHARD, Shard};

const TOPIC: i8 = 2;

/// IncrementalAlterConfigs operations (Kafka's AlterConfigOp.OpType).
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

type Outcome = (ErrorCode, Option<String>);

pub async fn alter(shard: &Rc<Shard>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let outcome = if resource.resource_type != TOPIC {
            (
                ErrorCode::InvalidRequest,
                Some("only topic configs can be altered".to_string()),
            )
        } else {
            let configs: Result<BTreeMap<String, String>, String> = resource
                .configs
                .iter()
                .map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                        .ok_or_else(|| format!("config {} has no value", c.name.as_str()))
                })
                .collect();
            match configs {
                Err(message) => (ErrorCode::InvalidConfig, Some(message)),
                Ok(configs) => set(shard, name.clone(), configs, request.validate_only).await,
            }
        };
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(outcome.0.code())
                .with_error_message(outcome.1.map(StrBytes::from_string)),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental(
    shard: &Rc<Shard>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let outcome = if resource.resource_type != TOPIC {
            (
                ErrorCode::InvalidRequest,
                Some("only topic configs can be altered".to_string()),
            )
        } else {
            let current = shard.image().topic(&name).map(|t| t.overrides.clone());
            match current {
                None => (
                    ErrorCode::UnknownTopicOrPartition,
                    Some(format!("topic {name} does not exist")),
                ),
                Some(mut configs) => {
                    let applied = resource.configs.iter().try_for_each(|op| {
                        let key = op.name.to_string();
                        let value = op.value.as_ref().map(|v| v.to_string());
                        apply_op(&mut configs, key, value, op.config_operation)
                    });
                    match applied {
                        Err(message) => (ErrorCode::InvalidConfig, Some(message)),
                        Ok(()) => set(shard, name.clone(), configs, request.validate_only).await,
                    }
                }
            }
        };
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
                .with_error_code(outcome.0.code())
                .with_error_message(outcome.1.map(StrBytes::from_string)),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn apply_op(
    configs: &mut BTreeMap<String, String>,
    key: String,
    value: Option<String>,
    op: i8,
) -> Result<(), String> {
    match (op, value) {
        (SET, Some(value)) => {
            configs.insert(key, value);
        }
        (DELETE, _) => {
            configs.remove(&key);
        }
        (APPEND | SUBTRACT, Some(value)) => {
            // Only list-valued configs (cleanup.policy) can be appended to.
            if key != "cleanup.policy" {
                return Err(format!("{key} is not a list config"));
            }
            let mut items: Vec<String> = configs.get(&key).map_or_else(
                || vec!["delete".to_string()],
                |v| v.split(',').map(str::to_string).collect(),
            );
            if op == APPEND {
                if !items.contains(&value) {
                    items.push(value);
                }
            } else {
                items.retain(|item| *item != value);
            }
            configs.insert(key, items.join(","));
        }
        (op, None) => return Err(format!("operation {op} on {key} needs a value")),
        (op, Some(_)) => return Err(format!("unknown config operation {op}")),
    }
    Ok(())
}

async fn set(
    shard: &Rc<Shard>,
    topic: String,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Outcome {
    let call = SetTopicConfigs {
        topic,
        configs,
        validate_only,
    };
    let result = shard.call(CONTROLLER_SHARD, call).await;
    (result.error, result.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations() {
        let mut configs = BTreeMap::new();
        apply_op(&mut configs, "retention.ms".into(), Some("5".into()), SET).unwrap();
        apply_op(
            &mut configs,
            "cleanup.policy".into(),
            Some("compact".into()),
            APPEND,
        )
        .unwrap();
        assert_eq!(configs["cleanup.policy"], "delete,compact");
        apply_op(
            &mut configs,
            "cleanup.policy".into(),
            Some("delete".into()),
            SUBTRACT,
        )
        .unwrap();
        assert_eq!(configs["cleanup.policy"], "compact");
        apply_op(&mut configs, "retention.ms".into(), None, DELETE).unwrap();
        assert!(!configs.contains_key("retention.ms"));
        assert!(
            apply_op(
                &mut configs,
                "retention.ms".into(),
                Some("1".into()),
                APPEND
            )
            .is_err()
        );
        assert!(apply_op(&mut configs, "retention.ms".into(), None, SET).is_err());
    }
}
