//! The controller's decisions: topic creation, partition growth, config changes
//! and deletions, each checked against the current topic table and turned into
//! the next one. Pure functions: the controller shard runs them, persists the
//! result and publishes the new image to every shard.

use std::collections::BTreeMap;

use crate::cluster::topic_table::{TopicMeta, TopicTable, new_topic_id, validate_topic_name};
use crate::protocol::error_code::ErrorCode;

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: i32 = 100_000;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub partitions: i32,
    pub replication_factor: i16,
    /// Manual replica assignment: (partition, broker ids); when given, it sets
    /// the partition count and replication factor, which must then be -1.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, Option<String>)>,
    pub validate_only: bool,
}

/// The outcome of one topic's change.
#[derive(Debug, Clone)]
pub struct TopicChangeResult {
    pub name: String,
    pub error: ErrorCode,
    pub message: Option<String>,
}

impl TopicChangeResult {
    fn of(name: String, outcome: Result<(), (ErrorCode, String)>) -> TopicChangeResult {
        match outcome {
            Ok(()) => TopicChangeResult {
                name,
                error: ErrorCode::None,
                message: None,
            },
            Err((error, message)) => TopicChangeResult {
                name,
                error,
                message: Some(message),
            },
        }
    }
}

/// What the controller needs to know of the broker.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub default_partitions: i32,
    /// This broker: the only one a replica can be assigned to.
    pub node_id: i32,
    pub shard_count: usize,
}

/// A proposed next table and each topic's result; `changed` says whether the
/// table must be published.
pub struct Proposal {
    pub table: TopicTable,
    pub results: Vec<TopicChangeResult>,
    pub changed: bool,
}

pub fn create_topics(current: &TopicTable, topics: Vec<NewTopic>, limits: Limits) -> Proposal {
    let mut table = current.clone();
    let mut changed = false;
    let results = topics
        .into_iter()
        .map(|topic| {
            let outcome = check_new_topic(&table, &topic, limits).map(|meta| {
                if !topic.validate_only {
                    table.topics.insert(topic.name.clone(), meta);
                    changed = true;
                }
            });
            TopicChangeResult::of(topic.name, outcome)
        })
        .collect();
    Proposal {
        table,
        results,
        changed,
    }
}

fn check_new_topic(
    table: &TopicTable,
    topic: &NewTopic,
    limits: Limits,
) -> Result<TopicMeta, (ErrorCode, String)> {
    validate_topic_name(&topic.name).map_err(|m| (ErrorCode::InvalidTopicException, m))?;
    if table.topics.contains_key(&topic.name) {
        return Err((
            ErrorCode::TopicAlreadyExists,
            format!("topic '{}' already exists", topic.name),
        ));
    }
    let partitions = if !topic.assignments.is_empty() {
        check_assignments(topic, limits)?
    } else if topic.partitions == -1 {
        limits.default_partitions
    } else {
        topic.partitions
    };
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("{partitions} partitions: must be in 1..={MAX_PARTITIONS}"),
        ));
    }
    if topic.replication_factor != -1 && topic.replication_factor != 1 {
        return Err((
            ErrorCode::InvalidReplicationFactor,
            format!(
                "replication factor {} is larger than the 1 available broker",
                topic.replication_factor
            ),
        ));
    }
    let mut configs = BTreeMap::new();
    for (name, value) in &topic.configs {
        let value = value.clone().ok_or((
            ErrorCode::InvalidConfig,
            format!("config {name} has no value"),
        ))?;
        crate::cluster::topic_config::validate(name, &value)
            .map_err(|m| (ErrorCode::InvalidConfig, m))?;
        configs.insert(name.clone(), value);
    }
    Ok(TopicMeta {
        id: new_topic_id(),
        shards: table.place(partitions as usize, limits.shard_count),
        configs,
        leader_epochs: Vec::new(),
    })
}

/// A manual assignment as Kafka checks it: partitions 0..n each exactly once,
/// every replica list non-empty and on this broker; returns the partition count.
fn check_assignments(topic: &NewTopic, limits: Limits) -> Result<i32, (ErrorCode, String)> {
    if topic.partitions != -1 || topic.replication_factor != -1 {
        return Err((
            ErrorCode::InvalidRequest,
            "both a replica assignment and a partition count or replication factor".into(),
        ));
    }
    let mut indexes: Vec<i32> = topic.assignments.iter().map(|(p, _)| *p).collect();
    indexes.sort_unstable();
    let count = i32::try_from(indexes.len()).unwrap_or(i32::MAX);
    if !indexes.iter().copied().eq(0..count) {
        return Err((
            ErrorCode::InvalidReplicaAssignment,
            "partitions must be assigned 0..n, each once".into(),
        ));
    }
    for (partition, brokers) in &topic.assignments {
        if brokers.is_empty() || brokers.iter().any(|&b| b != limits.node_id) || brokers.len() > 1 {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "partition {partition} assigned to {brokers:?}; the only broker is {}",
                    limits.node_id
                ),
            ));
        }
    }
    Ok(count)
}

/// Grows topics to the given partition counts (never shrinks them).
pub fn create_partitions(
    current: &TopicTable,
    topics: Vec<(String, i32)>,
    validate_only: bool,
    limits: Limits,
) -> Proposal {
    let mut table = current.clone();
    let mut changed = false;
    let results = topics
        .into_iter()
        .map(|(name, count)| {
            let outcome = match table.topics.get(&name) {
                None => Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic {name} does not exist"),
                )),
                Some(meta) if count <= meta.partition_count() => Err((
                    ErrorCode::InvalidPartitions,
                    format!(
                        "topic {name} has {} partitions; {count} would not add any",
                        meta.partition_count()
                    ),
                )),
                Some(_) if count > MAX_PARTITIONS => Err((
                    ErrorCode::InvalidPartitions,
                    format!("{count} partitions: at most {MAX_PARTITIONS}"),
                )),
                Some(meta) => Ok(meta.partition_count()),
            }
            .map(|current| {
                if !validate_only {
                    let added = table.place((count - current) as usize, limits.shard_count);
                    let meta = table.topics.get_mut(&name).expect("checked above");
                    meta.shards.extend(added);
                    changed = true;
                }
            });
            TopicChangeResult::of(name, outcome)
        })
        .collect();
    Proposal {
        table,
        results,
        changed,
    }
}

/// Replaces the config overrides of `topic`.
pub fn set_topic_configs(
    current: &TopicTable,
    topic: String,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Proposal {
    let mut table = current.clone();
    let outcome = match table.topics.get_mut(&topic) {
        None => Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("topic {topic} does not exist"),
        )),
        Some(meta) => configs
            .iter()
            .try_for_each(|(name, value)| crate::cluster::topic_config::validate(name, value))
            .map_err(|m| (ErrorCode::InvalidConfig, m))
            .map(|()| meta.configs = configs),
    };
    let changed = outcome.is_ok() && !validate_only;
    Proposal {
        table,
        results: vec![TopicChangeResult::of(topic, outcome)],
        changed,
    }
}

pub fn delete_topics(current: &TopicTable, names: Vec<String>) -> Proposal {
    let mut table = current.clone();
    let results: Vec<TopicChangeResult> = names
        .into_iter()
        .map(|name| {
            let error = if table.topics.remove(&name).is_some() {
                ErrorCode::None
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            TopicChangeResult {
                name,
                error,
                message: None,
            }
        })
        .collect();
    let changed = results.iter().any(|r| r.error == ErrorCode::None);
    Proposal {
        table,
        results,
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        default_partitions: 3,
        node_id: 0,
        shard_count: 2,
    };

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
            validate_only: false,
        }
    }

    #[test]
    fn a_manual_assignment_sets_the_partition_count_on_this_broker_only() {
        let assigned = |assignments: Vec<(i32, Vec<i32>)>| NewTopic {
            assignments,
            ..new_topic("m", -1)
        };
        let created = create_topics(
            &TopicTable::default(),
            vec![assigned(vec![(1, vec![0]), (0, vec![0])])],
            LIMITS,
        );
        assert_eq!(created.results[0].error, ErrorCode::None);
        assert_eq!(created.table.topics["m"].shards.len(), 2);
        for bad in [
            vec![(0, vec![1])],
            vec![(0, vec![0]), (2, vec![0])],
            vec![(0, vec![])],
        ] {
            let refused = create_topics(&TopicTable::default(), vec![assigned(bad)], LIMITS);
            assert_eq!(
                refused.results[0].error,
                ErrorCode::InvalidReplicaAssignment
            );
        }
        let both = NewTopic {
            partitions: 2,
            ..assigned(vec![(0, vec![0])])
        };
        let refused = create_topics(&TopicTable::default(), vec![both], LIMITS);
        assert_eq!(refused.results[0].error, ErrorCode::InvalidRequest);
    }

    #[test]
    fn topics_are_created_checked_grown_and_deleted() {
        let created = create_topics(
            &TopicTable::default(),
            vec![new_topic("a", -1), new_topic("a", 1), new_topic("b c", 1)],
            LIMITS,
        );
        assert!(created.changed);
        let errors: Vec<_> = created.results.iter().map(|r| r.error).collect();
        assert_eq!(
            errors,
            vec![
                ErrorCode::None,
                ErrorCode::TopicAlreadyExists,
                ErrorCode::InvalidTopicException
            ]
        );
        assert_eq!(created.table.topics["a"].shards, vec![0, 1, 0]);
        let grown = create_partitions(&created.table, vec![("a".into(), 2)], false, LIMITS);
        assert_eq!(grown.results[0].error, ErrorCode::InvalidPartitions);
        assert!(!grown.changed);
        let grown = create_partitions(&created.table, vec![("a".into(), 5)], false, LIMITS);
        assert_eq!(grown.table.topics["a"].shards.len(), 5);
        let configured = set_topic_configs(
            &grown.table,
            "a".into(),
            [("retention.ms".to_string(), "soon".to_string())].into(),
            false,
        );
        assert_eq!(configured.results[0].error, ErrorCode::InvalidConfig);
        assert!(!configured.changed);
        let deleted = delete_topics(&grown.table, vec!["a".into(), "zz".into()]);
        assert!(deleted.changed && deleted.table.topics.is_empty());
        assert_eq!(deleted.results[1].error, ErrorCode::UnknownTopicOrPartition);
    }
}
