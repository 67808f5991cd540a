//! The broker's configuration: embedded defaults < TOML file < `SLUICE_*` env < flags.
//! Names follow Kafka's broker configs where one exists (in the TOML file with
//! underscores: `auto_create_topics_enable` is `auto.create.topics.enable`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::storage::{Compaction, Durability, GroupCommit, LogConfig};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityPolicy {
    Fsync,
    Interval,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds (and advertises).
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `node.id`.
    pub node_id: i32,
    /// Shards (executors pinned one per core); 0 means one per online core.
    pub shards: usize,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of auto-created topics.
    pub num_partitions: i32,
    /// `socket.request.max.bytes`: frames larger than this close the connection.
    pub socket_request_max_bytes: usize,
    /// `message.max.bytes`: the default `max.message.bytes` of topics.
    pub message_max_bytes: usize,
    pub durability: DurabilityPolicy,
    /// With fsync durability: `partition` (each partition writes and syncs on its
    /// own) or `shard` (the partitions of a shard with appends waiting write, then
    /// sync, in one round).
    pub group_commit: GroupCommit,
    /// Interval policy: fdatasync at least this often (`log.flush.interval.ms`).
    pub log_flush_interval_ms: u64,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `log.retention.ms` (-1: keep forever).
    pub log_retention_ms: i64,
    /// `log.retention.bytes` (-1: no limit).
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`: how often each log applies retention.
    pub log_retention_check_interval_ms: u64,
    /// `log.cleaner.enable`: run the log cleaner, which compacts the topics with
    /// `cleanup.policy=compact` (among them `__consumer_offsets`).
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: how long a shard's cleaner sleeps when no log
    /// needs cleaning.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the cleaners' key → offset
    /// maps, split evenly across shards.
    pub log_cleaner_dedupe_buffer_size: u64,
    /// `log.cleaner.io.buffer.size`: bytes a cleaner reads at once.
    pub log_cleaner_io_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`: the cleaners' read and write rate,
    /// per shard (Kafka's default: unlimited).
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `log.cleaner.min.cleanable.ratio`: the default `min.cleanable.dirty.ratio`.
    pub log_cleaner_min_cleanable_ratio: f64,
    /// `log.cleaner.delete.retention.ms`: the default `delete.retention.ms`.
    pub log_cleaner_delete_retention_ms: u64,
    /// `log.cleaner.min.compaction.lag.ms`: the default `min.compaction.lag.ms`.
    pub log_cleaner_min_compaction_lag_ms: u64,
    /// `log.cleaner.max.compaction.lag.ms`: the default `max.compaction.lag.ms`.
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// `group.initial.rebalance.delay.ms`: how long a group rebalancing from
    /// Empty waits for more members.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: u64,
    /// `group.max.size`: members per group.
    pub group_max_size: usize,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when
    /// it is created (later changes do not move existing groups).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets`.
    pub offsets_topic_segment_bytes: u64,
    /// `offsets.retention.minutes`: offsets of groups without members expire
    /// this long after the later of their commit and the group emptying.
    pub offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// `transaction.state.log.num.partitions`: partitions of
    /// `__transaction_state` when it is created.
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.segment.bytes`: `segment.bytes` of
    /// `__transaction_state`.
    pub transaction_state_log_segment_bytes: u64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a
    /// producer may ask for (INVALID_TRANSACTION_TIMEOUT above it).
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often
    /// the coordinator looks for transactions past their timeout.
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transactional.id.expiration.ms`: an idle transactional id is removed
    /// this long after its last transition.
    pub transactional_id_expiration_ms: u64,
    /// Start even when existing partitions cannot be opened; they stay offline
    /// and their requests get KAFKA_STORAGE_ERROR. Off: refuse to start.
    pub allow_offline_partitions: bool,
    /// Log a WARN timeline of every produce request that takes at least this many
    /// milliseconds (dispatch, validate, write, sync, acknowledge, respond). Off
    /// when unset.
    pub slow_request_ms: Option<u64>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            data_dir: PathBuf::from("./data"),
            node_id: 0,
            shards: 0,
            auto_create_topics_enable: true,
            num_partitions: 1,
            socket_request_max_bytes: 100 << 20,
            message_max_bytes: 1_048_588,
            durability: DurabilityPolicy::Fsync,
            group_commit: GroupCommit::default(),
            log_flush_interval_ms: 100,
            log_segment_bytes: 1 << 30,
            log_retention_ms: 604_800_000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_dedupe_buffer_size: 128 << 20,
            log_cleaner_io_buffer_size: 512 << 10,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            log_cleaner_min_cleanable_ratio: 0.5,
            log_cleaner_delete_retention_ms: 86_400_000,
            log_cleaner_min_compaction_lag_ms: 0,
            log_cleaner_max_compaction_lag_ms: i64::MAX,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 10_000,
            offsets_topic_num_partitions: 50,
            offsets_topic_segment_bytes: 100 << 20,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            transaction_state_log_num_partitions: 50,
            transaction_state_log_segment_bytes: 100 << 20,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transactional_id_expiration_ms: 604_800_000,
            allow_offline_partitions: false,
            slow_request_ms: None,
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file over the embedded defaults.
    pub fn from_file(path: &Path) -> Result<BrokerConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The number of shards to run.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Settings of partition logs, before per-topic overrides.
    pub fn log_config(&self) -> LogConfig {
        let durability = match self.durability {
            DurabilityPolicy::Fsync => Durability::Fsync,
            DurabilityPolicy::Interval => Durability::Interval {
                interval: Duration::from_millis(self.log_flush_interval_ms.max(1)),
                bytes: 64 << 20,
            },
        };
        LogConfig {
            durability,
            group_commit: self.group_commit,
            segment_bytes: self.log_segment_bytes,
            retention_ms: u64::try_from(self.log_retention_ms)
                .ok()
                .map(Duration::from_millis),
            retention_bytes: u64::try_from(self.log_retention_bytes).ok(),
            retention_check_interval: Duration::from_millis(self.log_retention_check_interval_ms),
            compaction: Compaction {
                enabled: false,
                min_cleanable_dirty_ratio: self.log_cleaner_min_cleanable_ratio,
                min_compaction_lag: Duration::from_millis(self.log_cleaner_min_compaction_lag_ms),
                max_compaction_lag: u64::try_from(self.log_cleaner_max_compaction_lag_ms)
                    .ok()
                    .filter(|&ms| ms != i64::MAX as u64)
                    .map(Duration::from_millis),
                delete_retention: Duration::from_millis(self.log_cleaner_delete_retention_ms),
            },
            ..LogConfig::default()
        }
    }

    /// The group settings the coordinator enforces.
    pub fn group_limits(&self) -> crate::group::state::GroupLimits {
        crate::group::state::GroupLimits {
            min_session_timeout: Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(self.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(self.group_initial_rebalance_delay_ms),
            max_size: self.group_max_size,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err("group_min_session_timeout_ms exceeds group_max_session_timeout_ms".into());
        }
        if self.group_max_size < 1 {
            return Err("group_max_size must be at least 1".into());
        }
        if !(1..=100_000).contains(&self.offsets_topic_num_partitions) {
            return Err("offsets_topic_num_partitions must be in 1..=100000".into());
        }
        if !(1..=100_000).contains(&self.transaction_state_log_num_partitions) {
            return Err("transaction_state_log_num_partitions must be in 1..=100000".into());
        }
        if self.transaction_max_timeout_ms < 1 {
            return Err("transaction_max_timeout_ms must be at least 1".into());
        }
        if self.log_cleaner_max_compaction_lag_ms < 1 {
            return Err("log_cleaner_max_compaction_lag_ms must be at least 1".into());
        }
        if self.log_cleaner_backoff_ms < 1 || self.log_cleaner_io_buffer_size < 4096 {
            return Err(
                "log_cleaner_backoff_ms must be at least 1 and log_cleaner_io_buffer_size at least 4096"
                    .into(),
            );
        }
        if self.log_cleaner_io_max_bytes_per_second.is_nan()
            || self.log_cleaner_io_max_bytes_per_second < 1.0
        {
            return Err("log_cleaner_io_max_bytes_per_second must be at least 1".into());
        }
        for (name, bytes) in [
            (
                "offsets_topic_segment_bytes",
                self.offsets_topic_segment_bytes,
            ),
            (
                "transaction_state_log_segment_bytes",
                self.transaction_state_log_segment_bytes,
            ),
        ] {
            if !(14..=LogConfig::MAX_SEGMENT_BYTES).contains(&bytes) {
                return Err(format!(
                    "{name} must be in 14..={}",
                    LogConfig::MAX_SEGMENT_BYTES
                ));
            }
        }
        if self.num_partitions < 1 {
            return Err("num_partitions must be at least 1".into());
        }
        if self.socket_request_max_bytes < 1024 {
            return Err("socket_request_max_bytes must be at least 1024".into());
        }
        self.log_config().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_refuses_unknown_keys() {
        let config: BrokerConfig = toml::from_str(
            "listen = \"127.0.0.1:19092\"\nnum_partitions = 6\ndurability = \"interval\"\n",
        )
        .unwrap();
        assert_eq!(config.listen.port(), 19092);
        assert_eq!(config.num_partitions, 6);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert!(matches!(
            config.log_config().durability,
            Durability::Interval { .. }
        ));
        assert!(toml::from_str::<BrokerConfig>("no_such_key = 1").is_err());
        assert!(BrokerConfig::default().validate().is_ok());
    }
}
