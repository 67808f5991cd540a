//! `sluice bench-log`: appends fixed-size batches to a partition log for a while
//! and reports throughput and append-to-acknowledgement latency.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::record::builder::build_filler_batch;
use crate::storage::{AppendOptions, LogConfig, LogStats, PartitionLog};
use crate::types::LeaderEpoch;

/// What to run.
#[derive(Debug, Clone)]
pub struct LogBenchParams {
    pub dir: PathBuf,
    pub duration: Duration,
    pub batch_bytes: usize,
    pub records_per_batch: usize,
    /// Appends in flight at once (producers sharing the group commit).
    pub concurrency: usize,
    pub config: LogConfig,
}

/// What came out.
#[derive(Debug)]
pub struct LogBenchReport {
    pub elapsed: Duration,
    pub batches: u64,
    pub bytes: u64,
    pub latency_us: Histogram<u64>,
    pub stats: LogStats,
}

impl LogBenchReport {
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    pub fn render(&self, params: &LogBenchParams) -> String {
        let quantile = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1000.0;
        let per_sync = if self.stats.syncs == 0 {
            0.0
        } else {
            self.stats.appends as f64 / self.stats.syncs as f64
        };
        format!(
            "durability {:?}, {} B batches, {} in flight, zero-fill step {} B, {:.1} s\n\
             throughput {:.1} MB/s, {:.0} batches/s\n\
             ack latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n\
             writes {}, syncs {}, batches per sync {:.1}",
            params.config.durability,
            params.batch_bytes,
            params.concurrency,
            params.config.zero_fill_step_bytes,
            self.elapsed.as_secs_f64(),
            self.megabytes_per_second(),
            self.batches as f64 / self.elapsed.as_secs_f64(),
            quantile(0.5),
            quantile(0.99),
            quantile(0.999),
            self.latency_us.max() as f64 / 1000.0,
            self.stats.writes,
            self.stats.syncs,
            per_sync,
        )
    }
}

/// Runs the benchmark on the current glommio executor.
pub async fn run(params: &LogBenchParams) -> Result<LogBenchReport, crate::storage::LogError> {
    assert!(
        params.concurrency > 0 && params.concurrency <= 4096,
        "concurrency in 1..=4096"
    );
    let (log, _) = PartitionLog::open(&params.dir, params.config.clone()).await?;
    let log = Rc::new(log);
    crate::storage::background::spawn(&log, None);
    let template = Rc::new(build_filler_batch(
        params.batch_bytes,
        params.records_per_batch,
        0,
    ));
    let started = Instant::now();
    let deadline = started + params.duration;
    let tasks: Vec<_> = (0..params.concurrency)
        .map(|_| {
            let log = Rc::clone(&log);
            let template = Rc::clone(&template);
            glommio::spawn_local(async move {
                let mut latency =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
                let options = AppendOptions {
                    leader_epoch: LeaderEpoch(0),
                    log_append_time: None,
                };
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    log.append(&template, options).await?;
                    latency.saturating_record(sent.elapsed().as_micros() as u64);
                    count += 1;
                }
                Ok::<_, crate::storage::LogError>((count, latency))
            })
        })
        .collect();
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut batches = 0;
    for task in tasks {
        let (count, histogram) = task.await?;
        batches += count;
        latency_us.add(&histogram).expect("same bounds");
    }
    let elapsed = started.elapsed();
    let stats = log.stats();
    log.close().await?;
    Ok(LogBenchReport {
        elapsed,
        batches,
        bytes: batches * template.len() as u64,
        latency_us,
        stats,
    })
}

/// What to run for the per-partition cost measurement.
#[derive(Debug, Clone)]
pub struct IdleParams {
    /// Parent directory; each log gets `p-<n>` under it.
    pub dir: PathBuf,
    pub partitions: usize,
    pub batch_bytes: usize,
    pub config: LogConfig,
}

/// The cost of many open logs that each took one batch and then went idle.
#[derive(Debug, Clone, Copy)]
pub struct IdleReport {
    pub partitions: usize,
    /// Bytes of batches in all logs.
    pub data_bytes: u64,
    /// Sum of the `.log` files' lengths (`du --apparent-size`).
    pub apparent_bytes: u64,
    /// Sum of the blocks the `.log` files hold (`du`).
    pub allocated_bytes: u64,
    /// Resident memory of the process before opening the logs and with all of them
    /// open, after the appends and any background zero-fill settled.
    pub rss_before: u64,
    pub rss_after: u64,
    /// Time to open the logs and append their batches, one log after the other.
    pub append_elapsed: Duration,
    /// Time from the last append until the files stopped growing.
    pub settle_elapsed: Duration,
}

impl IdleReport {
    /// Disk bytes allocated past the data, per partition.
    pub fn allocated_ahead_per_partition(&self) -> u64 {
        self.allocated_bytes.saturating_sub(self.data_bytes) / self.partitions as u64
    }

    pub fn rss_per_partition(&self) -> u64 {
        self.rss_after.saturating_sub(self.rss_before) / self.partitions as u64
    }

    pub fn render(&self) -> String {
        format!(
            "{} partitions, one batch each, opened and appended in {:.2} s, settled {:.1} s later: \
             data {} B, .log files {} B apparent, {} B allocated ({} B ahead per partition); \
             resident memory {} -> {} B ({} B per partition)",
            self.partitions,
            self.append_elapsed.as_secs_f64(),
            self.settle_elapsed.as_secs_f64(),
            self.data_bytes,
            self.apparent_bytes,
            self.allocated_bytes,
            self.allocated_ahead_per_partition(),
            self.rss_before,
            self.rss_after,
            self.rss_per_partition(),
        )
    }
}

/// Opens `partitions` logs, appends one batch to each, waits until their files stop
/// growing (the background zero-fill), measures disk and memory, and closes them.
pub async fn idle_partitions(params: &IdleParams) -> Result<IdleReport, crate::storage::LogError> {
    let rss_before = resident_bytes()?;
    let mut logs = Vec::with_capacity(params.partitions);
    let batch = build_filler_batch(params.batch_bytes, 1, 0);
    let options = AppendOptions {
        leader_epoch: LeaderEpoch(0),
        log_append_time: None,
    };
    let mut data_bytes = 0;
    let started = Instant::now();
    for n in 0..params.partitions {
        let dir = params.dir.join(format!("p-{n}"));
        let (log, _) = PartitionLog::open(&dir, params.config.clone()).await?;
        log.append(&batch, options).await?;
        data_bytes += log.size_bytes();
        logs.push(log);
    }
    let append_elapsed = started.elapsed();
    let appended = Instant::now();
    const SETTLE_POLLS: usize = 600;
    let mut last = None;
    let mut usage = (0, 0);
    let mut settle_elapsed = Duration::ZERO;
    for _ in 0..SETTLE_POLLS {
        glommio::timer::sleep(Duration::from_millis(100)).await;
        usage = log_file_usage(&params.dir, params.partitions)?;
        if last == Some(usage) {
            break;
        }
        last = Some(usage);
        settle_elapsed = appended.elapsed();
    }
    let rss_after = resident_bytes()?;
    for log in &logs {
        log.close().await?;
    }
    Ok(IdleReport {
        partitions: params.partitions,
        data_bytes,
        apparent_bytes: usage.0,
        allocated_bytes: usage.1,
        rss_before,
        rss_after,
        append_elapsed,
        settle_elapsed,
    })
}

/// (apparent, allocated) bytes of the `.log` files of the `p-<n>` directories.
fn log_file_usage(dir: &std::path::Path, partitions: usize) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut usage = (0, 0);
    for n in 0..partitions {
        for entry in std::fs::read_dir(dir.join(format!("p-{n}")))? {
            let entry = entry?;
            if entry.path().extension().is_some_and(|ext| ext == "log") {
                let metadata = entry.metadata()?;
                usage.0 += metadata.len();
                usage.1 += metadata.blocks() * 512;
            }
        }
    }
    Ok(usage)
}

/// The process's resident set, from `/proc/self/statm`.
fn resident_bytes() -> std::io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| std::io::Error::other("unexpected /proc/self/statm"))?;
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * u64::try_from(page_size).unwrap_or(4096))
}
