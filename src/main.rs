//! The `sluice` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sluice::bench::log::{LogBenchParams, run};
use sluice::storage::{Durability, LogConfig};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Kafka-compatible streaming storage engine and broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append batches to a partition log for a while; report MB/s and ack latency.
    BenchLog(BenchLogArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Policy {
    /// Acknowledge after fdatasync (the default).
    Fsync,
    /// Acknowledge after the write; fdatasync every --flush-ms or --flush-bytes.
    Interval,
}

#[derive(clap::Args)]
struct BenchLogArgs {
    /// Directory of the partition log (created; must be on the disk to measure).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, value_enum, default_value_t = Policy::Fsync)]
    durability: Policy,
    #[arg(long, default_value_t = 16384)]
    batch_bytes: usize,
    #[arg(long, default_value_t = 16)]
    records_per_batch: usize,
    /// Appends in flight at once, as concurrent producers would have.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Interval policy: fdatasync at least this often.
    #[arg(long, default_value_t = 100)]
    flush_ms: u64,
    /// Interval policy: fdatasync after this many bytes.
    #[arg(long, default_value_t = 64 << 20)]
    flush_bytes: u64,
    /// Roll to a new segment past this many bytes (segment.bytes).
    #[arg(long, default_value_t = LogConfig::default().segment_bytes)]
    segment_bytes: u64,
    /// Zero-fill segments ahead of the writes in steps of this many bytes (0: off).
    #[arg(long, default_value_t = LogConfig::default().zero_fill_step_bytes)]
    zero_fill_step_bytes: u64,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::BenchLog(args) => bench_log(args),
    }
}

fn bench_log(args: BenchLogArgs) -> ExitCode {
    let durability = match args.durability {
        Policy::Fsync => Durability::Fsync,
        Policy::Interval => Durability::Interval {
            interval: Duration::from_millis(args.flush_ms),
            bytes: args.flush_bytes,
        },
    };
    let params = LogBenchParams {
        dir: args.dir,
        duration: Duration::from_secs_f64(args.seconds),
        batch_bytes: args.batch_bytes,
        records_per_batch: args.records_per_batch,
        concurrency: args.concurrency,
        config: LogConfig {
            durability,
            zero_fill_step_bytes: args.zero_fill_step_bytes,
            segment_bytes: args.segment_bytes,
            ..LogConfig::default()
        },
    };
    let outcome = glommio::LocalExecutorBuilder::default()
        .name("bench-log")
        .spawn(move || async move { run(&params).await.map(|report| report.render(&params)) })
        .and_then(|handle| handle.join());
    match outcome {
        Ok(Ok(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            eprintln!("bench-log failed: {error}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("could not start the executor: {error}");
            ExitCode::FAILURE
        }
    }
}
