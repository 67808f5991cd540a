//! The log cleaner of one shard: every log the shard opens is registered here,
//! and one task, on a task queue with few shares so requests go first, runs one
//! cleaner pass at a time on the log that needs it most (Kafka's
//! `LogCleanerManager.grabFilthiestCompactedLog`): an overdue one (dirty records
//! past `max.compaction.lag.ms`) first, else the one with the highest dirty
//! ratio at or above its `min.cleanable.dirty.ratio`. When no log needs it, the
//! task sleeps `log.cleaner.backoff.ms`.
//!
//! Bounds: the key → offset map takes this shard's share of
//! `log.cleaner.dedupe.buffer.size`, allocated once; reads and writes together
//! stay under `log.cleaner.io.max.bytes.per.second`; a log whose pass fails is
//! left alone until the broker restarts, loudly, as Kafka marks it uncleanable.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Duration;

use glommio::{Latency, Shares};

use crate::storage::log::{PartitionLog, PassBudget};
use crate::storage::offset_map::OffsetMap;
use crate::storage::throttle::Throttle;
use crate::storage::time_slice::TimeSlice;
use crate::types::TimestampMs;

/// The cleaner's share of the shard against request handling's 1000 (glommio's
/// default): it only gets more while requests leave the shard idle.
const CLEANER_SHARES: usize = 50;
/// How long the cleaner works before it gives the shard back: below the tail
/// latency a produce should see from it.
const SLICE: Duration = Duration::from_micros(500);

/// The cleaner settings of one shard.
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// `log.cleaner.backoff.ms`.
    pub backoff: Duration,
    /// This shard's share of `log.cleaner.dedupe.buffer.size`.
    pub map_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second`; `None`: unlimited.
    pub io_bytes_per_second: Option<u64>,
    /// `log.cleaner.io.buffer.size`: bytes read at once.
    pub read_window: usize,
}

/// What the cleaner of this shard did so far (for metrics, tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanerTotals {
    pub passes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    pub failures: u64,
}

thread_local! {
    /// The shard's logs; dropped ones are pruned at each round, so the list is
    /// bounded by the partitions the shard holds.
    static LOGS: RefCell<Vec<Weak<PartitionLog>>> = const { RefCell::new(Vec::new()) };
    static TOTALS: Cell<CleanerTotals> = const { Cell::new(CleanerTotals {
        passes: 0,
        bytes_read: 0,
        bytes_written: 0,
        records_removed: 0,
        failures: 0,
    }) };
}

/// Makes `log` one the cleaner of this shard looks at (whether it is compacted
/// is read from its config at each round: a config change reaches it).
pub fn register(log: &Rc<PartitionLog>) {
    LOGS.with(|logs| logs.borrow_mut().push(Rc::downgrade(log)));
}

/// This shard's totals.
pub fn totals() -> CleanerTotals {
    TOTALS.with(Cell::get)
}

fn count(update: impl FnOnce(&mut CleanerTotals)) {
    TOTALS.with(|totals| {
        let mut now = totals.get();
        update(&mut now);
        totals.set(now);
    });
}

/// Starts this shard's cleaner task.
pub fn start(config: CleanerConfig) {
    let queue = glommio::executor().create_task_queue(
        Shares::Static(CLEANER_SHARES),
        Latency::NotImportant,
        "log-cleaner",
    );
    glommio::spawn_local_into(run(config), queue)
        .expect("the cleaner's task queue exists")
        .detach();
}

async fn run(config: CleanerConfig) {
    // Allocated at the first pass: a shard without compacted logs never pays.
    let mut map: Option<OffsetMap> = None;
    let mut throttle = Throttle::new(config.io_bytes_per_second);
    let mut slice = TimeSlice::new(SLICE);
    let mut uncleanable: HashSet<PathBuf> = HashSet::new();
    loop {
        let cleaned = clean_filthiest(
            &config,
            &mut map,
            &mut throttle,
            &mut slice,
            &mut uncleanable,
        )
        .await;
        if !cleaned {
            glommio::timer::sleep(config.backoff).await;
        }
    }
}

/// Live registered logs; forgets the dropped ones.
fn live_logs() -> Vec<Rc<PartitionLog>> {
    LOGS.with(|logs| {
        let mut logs = logs.borrow_mut();
        logs.retain(|log| log.strong_count() > 0);
        logs.iter().filter_map(Weak::upgrade).collect()
    })
}

/// Runs one pass on the log that needs it most; `false` when none did.
async fn clean_filthiest(
    config: &CleanerConfig,
    map: &mut Option<OffsetMap>,
    throttle: &mut Throttle,
    slice: &mut TimeSlice,
    uncleanable: &mut HashSet<PathBuf>,
) -> bool {
    let now = TimestampMs::now();
    let mut best: Option<(Rc<PartitionLog>, bool, f64)> = None;
    for log in live_logs() {
        if log.is_closed() || uncleanable.contains(log.dir()) {
            continue;
        }
        let Some(cleanable) = log.cleanable(now).await else {
            continue;
        };
        let min_ratio = log.config().compaction.min_cleanable_dirty_ratio;
        if !cleanable.is_due(min_ratio) {
            continue;
        }
        let rank = (cleanable.overdue, cleanable.dirty_ratio());
        if best
            .as_ref()
            .is_none_or(|(_, overdue, ratio)| rank > (*overdue, *ratio))
        {
            best = Some((log, rank.0, rank.1));
        }
    }
    let Some((log, _, _)) = best else {
        return false;
    };
    let budget = PassBudget {
        map: map.get_or_insert_with(|| OffsetMap::with_memory(config.map_bytes)),
        throttle,
        slice,
        read_window: config.read_window,
    };
    match log.clean(budget, now).await {
        Ok(Some(stats)) => {
            count(|totals| {
                totals.passes += 1;
                totals.bytes_read += stats.bytes_read;
                totals.bytes_written += stats.bytes_written;
                totals.records_removed += stats.records_removed;
            });
            let seconds = stats.elapsed.as_secs_f64().max(1e-6);
            tracing::info!(
                dir = %log.dir().display(),
                segments_read = stats.segments_read,
                segments_written = stats.segments_written,
                bytes_read = stats.bytes_read,
                bytes_written = stats.bytes_written,
                records_removed = stats.records_removed,
                first_dirty = %stats.first_dirty,
                ms = stats.elapsed.as_millis() as u64,
                read_mb_per_s = stats.bytes_read as f64 / seconds / 1e6,
                "cleaned log"
            );
            true
        }
        Ok(None) => false,
        Err(error) => {
            tracing::error!(dir = %log.dir().display(), %error, "log cleaning failed; the log stays uncleaned until restart");
            count(|totals| totals.failures += 1);
            uncleanable.insert(log.dir().to_path_buf());
            false
        }
    }
}
