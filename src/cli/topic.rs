//! `sluice topic create|list|describe|delete|alter-config`: topic administration
//! through CreateTopics, Metadata, DescribeConfigs, AlterConfigs and DeleteTopics.

use std::collections::BTreeMap;
use std::process::ExitCode;

use futures_lite::future::block_on;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigEntry, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::MetadataTopic;
use serde_json::{Value, json};

use super::connect::{Common, creation};
use super::errors::{CliError, exit};
use super::output::{Table, join, print_json, print_text};

#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition counts and replication factors.
    List(ListArgs),
    /// Show partitions (leader, replicas, ISR) and configs of topics.
    Describe(DescribeArgs),
    /// Delete topics.
    Delete(DeleteArgs),
    /// Set or remove topic config overrides.
    AlterConfig(AlterConfigArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Name of the topic.
    pub name: String,
    /// Number of partitions (-1: the broker's num.partitions).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub partitions: i32,
    /// Replicas per partition (-1: the broker's default.replication.factor).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub replication_factor: i32,
    /// A topic config override, NAME=VALUE (repeatable), e.g. cleanup.policy=compact.
    #[arg(long = "config", value_parser = key_value)]
    pub configs: Vec<(String, String)>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// Topics to describe (default: every topic).
    pub names: Vec<String>,
    /// Show every config, defaults included, not only the overrides.
    #[arg(long)]
    pub all_configs: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Topics to delete.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct AlterConfigArgs {
    /// Name of the topic.
    pub name: String,
    /// Set a config, NAME=VALUE (repeatable).
    #[arg(long = "set", value_parser = key_value)]
    pub set: Vec<(String, String)>,
    /// Remove a config override, back to the broker's default (repeatable).
    #[arg(long = "delete")]
    pub delete: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

/// Parses `NAME=VALUE`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

pub fn run(command: TopicCommand) -> ExitCode {
    exit(match command {
        TopicCommand::Create(args) => create(args),
        TopicCommand::List(args) => list(args),
        TopicCommand::Describe(args) => describe(args),
        TopicCommand::Delete(args) => delete(args),
        TopicCommand::AlterConfig(args) => alter_config(args),
    })
}

/// An admin client, after checking that the cluster answers at all.
pub fn admin(common: &Common) -> Result<AdminClient<DefaultClientContext>, CliError> {
    let admin: AdminClient<DefaultClientContext> =
        common.client_config().create().map_err(creation)?;
    common.metadata(admin.inner(), None)?;
    Ok(admin)
}

pub fn admin_options(common: &Common) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(common.timeout()))
        .operation_timeout(Some(common.timeout()))
}

fn create(args: CreateArgs) -> Result<(), CliError> {
    let common = &args.common;
    let admin = admin(common)?;
    let mut topic = NewTopic::new(
        &args.name,
        args.partitions,
        TopicReplication::Fixed(args.replication_factor),
    );
    for (key, value) in &args.configs {
        topic = topic.set(key, value);
    }
    let results = block_on(admin.create_topics([&topic], &admin_options(common)))
        .map_err(|e| common.unreachable_or(&e, "CreateTopics"))?;
    for result in results {
        result.map_err(|(name, code)| CliError::code(code, format!("topic {name:?}")))?;
    }
    let configs: BTreeMap<&str, &str> = args
        .configs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if common.json {
        print_json(&json!({
            "name": args.name,
            "partitions": args.partitions,
            "replication_factor": args.replication_factor,
            "configs": configs,
        }))
    } else {
        print_text(&format!("Created topic {}.\n", args.name))
    }
}

fn list(args: ListArgs) -> Result<(), CliError> {
    let common = &args.common;
    let admin = admin(common)?;
    let metadata = common.metadata(admin.inner(), None)?;
    let mut topics: Vec<&MetadataTopic> = metadata.topics().iter().collect();
    topics.sort_by_key(|t| t.name());
    if common.json {
        let topics: Vec<Value> = topics
            .iter()
            .map(|t| {
                json!({
                    "name": t.name(),
                    "partitions": t.partitions().len(),
                    "replication_factor": replication_factor(t),
                })
            })
            .collect();
        return print_json(&json!({ "topics": topics }));
    }
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
    for topic in topics {
        table.row(vec![
            topic.name().to_string(),
            topic.partitions().len().to_string(),
            replication_factor(topic).to_string(),
        ]);
    }
    table.print()
}

/// The replica count of the topic's first partition (Kafka's tools print that).
fn replication_factor(topic: &MetadataTopic) -> usize {
    topic.partitions().first().map_or(0, |p| p.replicas().len())
}

fn describe(args: DescribeArgs) -> Result<(), CliError> {
    let common = &args.common;
    let admin = admin(common)?;
    let metadata = common.metadata(admin.inner(), None)?;
    let names: Vec<String> = if args.names.is_empty() {
        let mut all: Vec<String> = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        all.sort();
        all
    } else {
        args.names.clone()
    };
    let mut described = Vec::with_capacity(names.len());
    for name in &names {
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                CliError::code(
                    rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
                    format!("topic {name:?}"),
                )
            })?;
        if let Some(error) = topic.error() {
            return Err(CliError::code(error.into(), format!("topic {name:?}")));
        }
        let configs = topic_configs(&admin, common, name)?
            .into_iter()
            .filter(|entry| args.all_configs || !is_default(entry))
            .collect::<Vec<_>>();
        described.push((topic, configs));
    }
    if common.json {
        let topics: Vec<Value> = described
            .iter()
            .map(|(topic, configs)| {
                let partitions: Vec<Value> = sorted_partitions(topic)
                    .iter()
                    .map(|p| {
                        json!({
                            "partition": p.id(),
                            "leader": p.leader(),
                            "replicas": p.replicas(),
                            "isr": p.isr(),
                        })
                    })
                    .collect();
                let configs: Vec<Value> = configs
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "value": c.value,
                            "source": source_name(&c.source),
                        })
                    })
                    .collect();
                json!({
                    "name": topic.name(),
                    "partitions": partitions,
                    "configs": configs,
                })
            })
            .collect();
        return print_json(&json!({ "topics": topics }));
    }
    let mut text = String::new();
    for (i, (topic, configs)) in described.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&format!(
            "Topic: {}  Partitions: {}  ReplicationFactor: {}\n",
            topic.name(),
            topic.partitions().len(),
            replication_factor(topic)
        ));
        let mut partitions = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR"]);
        for p in sorted_partitions(topic) {
            partitions.row(vec![
                p.id().to_string(),
                p.leader().to_string(),
                join(p.replicas()),
                join(p.isr()),
            ]);
        }
        text.push_str(&partitions.render());
        if configs.is_empty() {
            text.push_str("Configs: none set on the topic\n");
        } else {
            let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
            for c in configs {
                table.row(vec![
                    c.name.clone(),
                    c.value.clone().unwrap_or_default(),
                    source_name(&c.source).to_string(),
                ]);
            }
            text.push_str(&table.render());
        }
    }
    print_text(&text)
}

fn sorted_partitions(topic: &MetadataTopic) -> Vec<&rdkafka::metadata::MetadataPartition> {
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    partitions
}

/// Every config of topic `name`, sorted by name.
fn topic_configs(
    admin: &AdminClient<DefaultClientContext>,
    common: &Common,
    name: &str,
) -> Result<Vec<ConfigEntry>, CliError> {
    let results =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic(name)], &admin_options(common)))
            .map_err(|e| common.unreachable_or(&e, "DescribeConfigs"))?;
    let mut entries = Vec::new();
    for result in results {
        let resource = result.map_err(|code| CliError::code(code, format!("topic {name:?}")))?;
        entries.extend(resource.entries);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn is_default(entry: &ConfigEntry) -> bool {
    entry.is_default || entry.source == ConfigSource::Default
}

/// Kafka's name of a config source (DescribeConfigs' ConfigSource enum).
pub fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "UNKNOWN",
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
    }
}

fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let common = &args.common;
    let admin = admin(common)?;
    let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
    let results = block_on(admin.delete_topics(&names, &admin_options(common)))
        .map_err(|e| common.unreachable_or(&e, "DeleteTopics"))?;
    for result in results {
        result.map_err(|(name, code)| CliError::code(code, format!("topic {name:?}")))?;
    }
    if common.json {
        print_json(&json!({ "deleted": names }))
    } else {
        print_text(&format!("Deleted topic(s) {}.\n", names.join(", ")))
    }
}

/// The overrides after applying `set` and `delete` to the current ones.
fn altered(
    current: BTreeMap<String, String>,
    set: &[(String, String)],
    delete: &[String],
) -> BTreeMap<String, String> {
    let mut configs = current;
    for name in delete {
        configs.remove(name);
    }
    for (name, value) in set {
        configs.insert(name.clone(), value.clone());
    }
    configs
}

/// rdkafka 0.39 has no IncrementalAlterConfigs, so this reads the topic's current
/// overrides, applies `--set`/`--delete` to them and sends the whole set with
/// AlterConfigs (which replaces every override). A change made by someone else
/// between the read and the write is lost, as with Kafka's pre-2.3 tools.
fn alter_config(args: AlterConfigArgs) -> Result<(), CliError> {
    let common = &args.common;
    if args.set.is_empty() && args.delete.is_empty() {
        return Err(CliError::Usage(
            "give at least one --set NAME=VALUE or --delete NAME".to_string(),
        ));
    }
    let admin = admin(common)?;
    let current: BTreeMap<String, String> = topic_configs(&admin, common, &args.name)?
        .into_iter()
        .filter(|e| e.source == ConfigSource::DynamicTopic)
        .filter_map(|e| Some((e.name, e.value?)))
        .collect();
    let configs = altered(current, &args.set, &args.delete);
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&args.name));
    for (name, value) in &configs {
        alter = alter.set(name, value);
    }
    let results = block_on(admin.alter_configs([&alter], &admin_options(common)))
        .map_err(|e| common.unreachable_or(&e, "AlterConfigs"))?;
    for result in results {
        result.map_err(|(_, code)| CliError::code(code, format!("topic {:?}", args.name)))?;
    }
    if common.json {
        return print_json(&json!({ "name": args.name, "configs": configs }));
    }
    let mut table = Table::new(&["CONFIG", "VALUE"]);
    for (name, value) in &configs {
        table.row(vec![name.clone(), value.clone()]);
    }
    print_text(&format!(
        "Altered configs of topic {}; its overrides now:\n",
        args.name
    ))?;
    table.print()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(
            key_value("a.b=c=d").unwrap(),
            ("a.b".to_string(), "c=d".to_string())
        );
        assert_eq!(key_value("x=").unwrap(), ("x".to_string(), String::new()));
        assert!(key_value("novalue").is_err());
        assert!(key_value("=v").is_err());
    }

    #[test]
    fn altering_deletes_then_sets_on_top_of_the_current_overrides() {
        let current = BTreeMap::from([
            ("retention.ms".to_string(), "1000".to_string()),
            ("cleanup.policy".to_string(), "compact".to_string()),
        ]);
        let configs = altered(
            current,
            &[("retention.ms".to_string(), "5000".to_string())],
            &["cleanup.policy".to_string(), "not.set".to_string()],
        );
        assert_eq!(
            configs,
            BTreeMap::from([("retention.ms".to_string(), "5000".to_string())])
        );
    }
}
