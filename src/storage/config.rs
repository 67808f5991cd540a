//! Per-log settings, named after the Kafka topic configs they implement.

use std::time::Duration;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after the batch is written and fdatasynced (the default).
    Fsync,
    /// Acknowledge after the write; fdatasync every `interval` or every `bytes`
    /// written, whichever comes first.
    Interval { interval: Duration, bytes: u64 },
}

/// Which appends one fdatasync cycle gathers (`group_commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupCommit {
    /// Each partition writes and syncs on its own, as soon as it has appends.
    #[default]
    Partition,
    /// The partitions of a shard with appends waiting write, then sync, in one
    /// round and are acknowledged together (`storage::commit_round`).
    Shard,
}

/// `cleanup.policy=compact` and the topic configs of the log cleaner
/// (`storage::cleaner`), Kafka's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    /// The policy includes `compact`.
    pub enabled: bool,
    /// `min.cleanable.dirty.ratio`: clean once dirty bytes over all bytes of the
    /// cleanable part reach this (0..=1).
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this stay uncleaned.
    pub min_compaction_lag: Duration,
    /// `max.compaction.lag.ms`: a log with dirty records older than this is
    /// cleaned whatever its dirty ratio; `None`: no such bound.
    pub max_compaction_lag: Option<Duration>,
    /// `delete.retention.ms`: how long tombstones and transaction markers stay
    /// after the cleaner first passed them.
    pub delete_retention: Duration,
}

impl Default for Compaction {
    fn default() -> Self {
        Compaction {
            enabled: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag: Duration::ZERO,
            max_compaction_lag: None,
            delete_retention: Duration::from_millis(86_400_000),
        }
    }
}

/// Settings of one partition log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment past this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a segment this long after its first append.
    pub segment_ms: Duration,
    /// `index.interval.bytes`: bytes between two entries of the sparse indexes.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older; `None` keeps all.
    pub retention_ms: Option<Duration>,
    /// `retention.bytes`: delete oldest segments past this total; `None` keeps all.
    pub retention_bytes: Option<u64>,
    pub durability: Durability,
    /// With `Durability::Fsync`: one cycle per partition or per shard.
    pub group_commit: GroupCommit,
    /// Zero-fill segments ahead of the write position, so an fdatasync only flushes
    /// data, not an ext4 journal commit, in steps that grow with the partition's
    /// write rate up to this many bytes (`storage::zero_fill`). 0 turns it off.
    pub zero_fill_step_bytes: u64,
    /// Recently written bytes kept in memory per partition to serve tail reads.
    pub tail_cache_bytes: usize,
    /// Appended bytes allowed to wait for a write before appends wait for a flush.
    pub max_pending_bytes: usize,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub retention_check_interval: Duration,
    /// Whether and how the log cleaner compacts this log.
    pub compaction: Compaction,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Duration::from_millis(604_800_000),
            index_interval_bytes: 4096,
            retention_ms: Some(Duration::from_millis(604_800_000)),
            retention_bytes: None,
            durability: Durability::Fsync,
            group_commit: GroupCommit::Partition,
            zero_fill_step_bytes: 16 << 20,
            tail_cache_bytes: 4 << 20,
            max_pending_bytes: 32 << 20,
            retention_check_interval: Duration::from_millis(300_000),
            compaction: Compaction::default(),
        }
    }
}

impl LogConfig {
    /// Segments address positions with u32 in the index, as Kafka does.
    pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

    /// Checks the settings a log cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 14 || self.segment_bytes > Self::MAX_SEGMENT_BYTES {
            return Err(format!(
                "segment.bytes must be in 14..={}, got {}",
                Self::MAX_SEGMENT_BYTES,
                self.segment_bytes
            ));
        }
        if self.segment_ms.is_zero() {
            return Err("segment.ms must be at least 1".into());
        }
        if !self.zero_fill_step_bytes.is_multiple_of(4096) {
            return Err("the zero-fill step must be a multiple of 4096".into());
        }
        if let Durability::Interval { interval, .. } = self.durability
            && interval.is_zero()
        {
            return Err("the flush interval must be at least 1 ms".into());
        }
        if self.retention_check_interval.is_zero() {
            return Err("the retention check interval must be at least 1 ms".into());
        }
        if !(0.0..=1.0).contains(&self.compaction.min_cleanable_dirty_ratio) {
            return Err("min.cleanable.dirty.ratio must be in 0..=1".into());
        }
        if self.max_pending_bytes == 0 {
            return Err("max pending bytes must be positive".into());
        }
        Ok(())
    }
}
