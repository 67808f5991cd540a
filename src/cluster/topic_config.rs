//! Topic configs: the Kafka names Sluice understands, their validation, and the
//! partition log settings they produce.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::BrokerConfig;
use crate::storage::LogConfig;

/// Topic configs that change what the broker does (Kafka names).
pub const KNOWN: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// What a value of a recorded config must look like.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An integer at least this.
    Integer(i64),
    /// An integer in this range, or -1 (the codec's default level).
    Level(i64, i64),
    Boolean,
    Codec,
    /// A message format version such as `3.0-IV1` or `0.10.0.0`.
    Version,
    /// A list of replicas, free text here.
    Text,
}

/// Kafka topic configs Sluice accepts, validates, stores and reports (with
/// Kafka's defaults) but does not act on yet: clients and tools set them
/// (librdkafka's admin tests, Connect, stream processors), and refusing them
/// would fail a topic creation that Kafka accepts. docs/configuration.md lists
/// them.
const RECORDED: &[(&str, &str, Kind)] = &[
    ("compression.gzip.level", "-1", Kind::Level(1, 9)),
    ("compression.lz4.level", "9", Kind::Level(1, 17)),
    ("compression.type", "producer", Kind::Codec),
    ("compression.zstd.level", "3", Kind::Level(-131_072, 22)),
    ("file.delete.delay.ms", "60000", Kind::Integer(0)),
    ("flush.messages", "9223372036854775807", Kind::Integer(1)),
    ("flush.ms", "9223372036854775807", Kind::Integer(0)),
    ("follower.replication.throttled.replicas", "", Kind::Text),
    ("leader.replication.throttled.replicas", "", Kind::Text),
    ("local.retention.bytes", "-2", Kind::Integer(-2)),
    ("local.retention.ms", "-2", Kind::Integer(-2)),
    ("message.downconversion.enable", "true", Kind::Boolean),
    ("message.format.version", "3.0-IV1", Kind::Version),
    (
        "message.timestamp.difference.max.ms",
        "9223372036854775807",
        Kind::Integer(0),
    ),
    ("min.insync.replicas", "1", Kind::Integer(1)),
    ("preallocate", "false", Kind::Boolean),
    ("remote.log.copy.disable", "false", Kind::Boolean),
    ("remote.log.delete.on.disable", "false", Kind::Boolean),
    ("remote.storage.enable", "false", Kind::Boolean),
    ("segment.index.bytes", "10485760", Kind::Integer(4)),
    ("segment.jitter.ms", "0", Kind::Integer(0)),
    ("unclean.leader.election.enable", "false", Kind::Boolean),
];

fn check_recorded(name: &str, value: &str, kind: Kind) -> Result<(), String> {
    let valid = match kind {
        Kind::Integer(min) => value.parse::<i64>().is_ok_and(|v| v >= min),
        Kind::Level(min, max) => value
            .parse::<i64>()
            .is_ok_and(|v| v == -1 || (min..=max).contains(&v)),
        Kind::Boolean => matches!(value, "true" | "false"),
        Kind::Codec => matches!(
            value,
            "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
        ),
        Kind::Version => value
            .split(['.', '-'])
            .next()
            .is_some_and(|major| major.parse::<u32>().is_ok()),
        Kind::Text => true,
    };
    if valid {
        Ok(())
    } else {
        Err(format!("invalid value {value:?} for {name}"))
    }
}

pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let number = |min: i64| {
        value
            .parse::<i64>()
            .ok()
            .filter(|&v| v >= min)
            .map(|_| ())
            .ok_or_else(|| {
                format!("invalid value {value:?} for {name}: expected an integer >= {min}")
            })
    };
    match name {
        "cleanup.policy" => match value {
            "delete" | "compact" | "compact,delete" | "delete,compact" => Ok(()),
            _ => Err(format!("invalid value {value:?} for cleanup.policy")),
        },
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(format!(
                "invalid value {value:?} for message.timestamp.type"
            )),
        },
        "retention.bytes" | "retention.ms" => number(-1),
        "delete.retention.ms" | "min.compaction.lag.ms" => number(0),
        "max.compaction.lag.ms" => number(1),
        "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(()),
            _ => Err(format!(
                "invalid value {value:?} for min.cleanable.dirty.ratio: expected a number in [0, 1]"
            )),
        },
        "message.timestamp.after.max.ms" | "message.timestamp.before.max.ms" => number(0),
        "segment.bytes" => number(14).and_then(|()| {
            if value
                .parse::<u64>()
                .is_ok_and(|v| v <= LogConfig::MAX_SEGMENT_BYTES)
            {
                Ok(())
            } else {
                Err(format!("segment.bytes {value} is too large"))
            }
        }),
        "segment.ms" | "max.message.bytes" | "index.interval.bytes" => number(1),
        _ => match RECORDED.iter().find(|(known, _, _)| *known == name) {
            Some(&(_, _, kind)) => check_recorded(name, value, kind),
            None => Err(format!("unknown topic config {name}")),
        },
    }
}

/// Kafka 4's defaults: CreateTime timestamps at most an hour ahead of the broker's
/// clock, and any age.
pub const TIMESTAMP_AFTER_MAX_MS: i64 = 3_600_000;
pub const TIMESTAMP_BEFORE_MAX_MS: i64 = i64::MAX;

/// Where a described config value comes from (Kafka's ConfigSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicOverride = 1,
    Default = 5,
}

/// Every topic config of a topic with `overrides`, with its effective value and
/// source.
pub fn describe(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<(&'static str, String, ConfigSource)> {
    let recorded = RECORDED
        .iter()
        .map(|&(name, default, _)| match overrides.get(name) {
            Some(value) => (name, value.clone(), ConfigSource::TopicOverride),
            None => (name, default.to_string(), ConfigSource::Default),
        });
    let mut all = acting(broker, overrides);
    all.extend(recorded);
    all.sort_by_key(|(name, _, _)| *name);
    all
}

/// The configs of [`KNOWN`], effective values and sources.
fn acting(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<(&'static str, String, ConfigSource)> {
    let defaults = LogConfig::default();
    let log = broker.log_config();
    KNOWN
        .iter()
        .map(|&name| {
            if let Some(value) = overrides.get(name) {
                return (name, value.clone(), ConfigSource::TopicOverride);
            }
            let value = match name {
                "cleanup.policy" => "delete".to_string(),
                "delete.retention.ms" => log.compaction.delete_retention.as_millis().to_string(),
                "max.compaction.lag.ms" => log
                    .compaction
                    .max_compaction_lag
                    .map_or(i64::MAX, |d| d.as_millis() as i64)
                    .to_string(),
                "min.cleanable.dirty.ratio" => log.compaction.min_cleanable_dirty_ratio.to_string(),
                "min.compaction.lag.ms" => {
                    log.compaction.min_compaction_lag.as_millis().to_string()
                }
                "index.interval.bytes" => defaults.index_interval_bytes.to_string(),
                "max.message.bytes" => broker.message_max_bytes.to_string(),
                "message.timestamp.type" => "CreateTime".to_string(),
                "message.timestamp.after.max.ms" => TIMESTAMP_AFTER_MAX_MS.to_string(),
                "message.timestamp.before.max.ms" => TIMESTAMP_BEFORE_MAX_MS.to_string(),
                "retention.bytes" => log.retention_bytes.map_or(-1, |b| b as i64).to_string(),
                "retention.ms" => log
                    .retention_ms
                    .map_or(-1, |d| d.as_millis() as i64)
                    .to_string(),
                "segment.bytes" => log.segment_bytes.to_string(),
                "segment.ms" => log.segment_ms.as_millis().to_string(),
                other => unreachable!("{other} is in KNOWN and has a default"),
            };
            (name, value, ConfigSource::Default)
        })
        .collect()
}

/// `cleanup.policy`: what happens to old segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageTimestampType {
    CreateTime,
    LogAppendTime,
}

/// A topic's effective configs, parsed once when the metadata image is built:
/// the overrides over the broker's defaults, with units.
#[derive(Debug, Clone)]
pub struct TopicConfigs {
    pub cleanup_policy: CleanupPolicy,
    /// `max.message.bytes`: the largest batch a producer may send.
    pub max_message_bytes: usize,
    pub timestamp_type: MessageTimestampType,
    /// `message.timestamp.before.max.ms`: how old a CreateTime timestamp may be
    /// (`None`: any age).
    pub timestamp_before_max: Option<Duration>,
    /// `message.timestamp.after.max.ms`: how far ahead of the broker's clock.
    pub timestamp_after_max: Option<Duration>,
    /// `min.insync.replicas`: the ISR an `acks=all` produce needs.
    pub min_insync_replicas: usize,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// Segment, retention and index settings of the partition logs.
    pub log: LogConfig,
}

impl TopicConfigs {
    /// The configs of a topic with `overrides` (validated when they were set).
    pub fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> TopicConfigs {
        let get = |name: &str| overrides.get(name).map(String::as_str);
        let millis = |name: &str, default: i64| {
            let ms = get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(default);
            (ms != i64::MAX).then(|| Duration::from_millis(ms.max(0) as u64))
        };
        let policy = get("cleanup.policy").unwrap_or("delete");
        TopicConfigs {
            cleanup_policy: CleanupPolicy {
                delete: policy.contains("delete"),
                compact: policy.contains("compact"),
            },
            max_message_bytes: get("max.message.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(broker.message_max_bytes),
            timestamp_type: match get("message.timestamp.type") {
                Some("LogAppendTime") => MessageTimestampType::LogAppendTime,
                _ => MessageTimestampType::CreateTime,
            },
            timestamp_before_max: millis(
                "message.timestamp.before.max.ms",
                TIMESTAMP_BEFORE_MAX_MS,
            ),
            timestamp_after_max: millis("message.timestamp.after.max.ms", TIMESTAMP_AFTER_MAX_MS),
            min_insync_replicas: get("min.insync.replicas")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(usize::try_from(broker.min_insync_replicas).unwrap_or(1))
                .max(1),
            unclean_leader_election: get("unclean.leader.election.enable")
                .map_or(broker.unclean_leader_election_enable, |v| {
                    v.eq_ignore_ascii_case("true")
                }),
            log: log_config(broker, overrides),
        }
    }
}

/// The log settings of a partition of a topic with `overrides`.
fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let mut config = broker.log_config();
    let get = |name: &str| overrides.get(name).and_then(|v| v.parse::<i64>().ok());
    if let Some(ms) = get("retention.ms") {
        config.retention_ms = u64::try_from(ms).ok().map(Duration::from_millis);
    }
    if let Some(bytes) = get("retention.bytes") {
        config.retention_bytes = u64::try_from(bytes).ok();
    }
    if let Some(bytes) = get("segment.bytes") {
        config.segment_bytes = bytes as u64;
    }
    if let Some(ms) = get("segment.ms") {
        config.segment_ms = Duration::from_millis(ms as u64);
    }
    if let Some(bytes) = get("index.interval.bytes") {
        config.index_interval_bytes = bytes as u64;
    }
    let policy = overrides
        .get("cleanup.policy")
        .map_or("delete", String::as_str);
    if !policy.contains("delete") {
        // Kafka deletes segments by age or size only under the delete policy.
        config.retention_ms = None;
        config.retention_bytes = None;
    }
    let compaction = &mut config.compaction;
    compaction.enabled = policy.contains("compact");
    if let Some(ms) = get("delete.retention.ms") {
        compaction.delete_retention = Duration::from_millis(ms.max(0) as u64);
    }
    if let Some(ms) = get("min.compaction.lag.ms") {
        compaction.min_compaction_lag = Duration::from_millis(ms.max(0) as u64);
    }
    if let Some(ms) = get("max.compaction.lag.ms") {
        compaction.max_compaction_lag =
            (ms != i64::MAX).then(|| Duration::from_millis(ms.max(1) as u64));
    }
    if let Some(ratio) = overrides
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.parse::<f64>().ok())
    {
        compaction.min_cleanable_dirty_ratio = ratio;
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_known_configs() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact").is_ok());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("segment.bytes", "10").is_err());
        assert!(validate("no.such.config", "1").is_err());
        for name in KNOWN {
            assert!(validate(name, "junk").is_err(), "{name}");
        }
        // Recorded without effect yet, but validated as Kafka does.
        assert!(validate("compression.type", "lz4").is_ok());
        assert!(validate("compression.type", "brotli").is_err());
        assert!(validate("delete.retention.ms", "900").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "0.1").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("compression.zstd.level", "-1").is_ok());
        assert!(validate("compression.gzip.level", "10").is_err());
        assert!(validate("remote.storage.enable", "false").is_ok());
        assert!(validate("local.retention.ms", "-2").is_ok());
        assert!(validate("message.format.version", "0.10.0.0").is_ok());
        assert!(validate("preallocate", "yes").is_err());
        assert!(validate("dummy.doesntexist", "1").is_err());
        let described = describe(&BrokerConfig::default(), &BTreeMap::new());
        assert_eq!(described.len(), KNOWN.len() + RECORDED.len());
        assert!(
            described.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted by name"
        );
    }

    #[test]
    fn configs_resolve_with_units_over_the_broker_defaults() {
        let broker = BrokerConfig::default();
        let defaults = TopicConfigs::resolve(&broker, &BTreeMap::new());
        assert_eq!(
            defaults.cleanup_policy,
            CleanupPolicy {
                delete: true,
                compact: false
            }
        );
        assert_eq!(defaults.max_message_bytes, broker.message_max_bytes);
        assert_eq!(defaults.timestamp_before_max, None);
        assert_eq!(
            defaults.timestamp_after_max,
            Some(Duration::from_secs(3600))
        );
        let overrides: BTreeMap<String, String> = [
            ("cleanup.policy", "compact,delete"),
            ("message.timestamp.type", "LogAppendTime"),
            ("retention.ms", "-1"),
            ("segment.bytes", "1048576"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let configs = TopicConfigs::resolve(&broker, &overrides);
        assert!(configs.cleanup_policy.compact && configs.cleanup_policy.delete);
        assert_eq!(configs.timestamp_type, MessageTimestampType::LogAppendTime);
        assert_eq!(configs.log.retention_ms, None);
        assert_eq!(configs.log.segment_bytes, 1 << 20);
        assert!(configs.log.compaction.enabled);
        let compact_only: BTreeMap<String, String> = [
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("max.compaction.lag.ms", "5000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let log = TopicConfigs::resolve(&broker, &compact_only).log;
        assert_eq!((log.retention_ms, log.retention_bytes), (None, None));
        assert_eq!(log.compaction.delete_retention, Duration::from_millis(100));
        assert_eq!(log.compaction.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(
            log.compaction.max_compaction_lag,
            Some(Duration::from_secs(5))
        );
        assert!(!defaults.log.compaction.enabled);
    }
}
