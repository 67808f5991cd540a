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
    crate::shard::reactor_heartbeat::spawn();
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
                let mut batch = template.to_vec();
                let options = AppendOptions {
                    leader_epoch: LeaderEpoch(0),
                    log_append_time: None,
                };
                let mut count = 0u64;
                while Instant::now() < deadline {
                    batch.copy_from_slice(&template);
                    let sent = Instant::now();
                    log.append(&mut batch, options).await?;
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
