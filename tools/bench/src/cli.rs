//! The command line: what to benchmark, the workload flags (each overriding
//! the workload file), and where the results go.

use std::path::PathBuf;

use clap::Parser;

use crate::workload::{Acks, Compression, ConsumerMode, KeyDistribution, Overrides};

/// Load generator for Kafka-compatible brokers, in the manner of
/// OpenMessaging Benchmark: throughput and latency percentiles of publishing
/// and of end-to-end delivery, with every record verified.
#[derive(Debug, Parser)]
#[command(name = "sluice-bench", version)]
pub struct Cli {
    /// The broker to benchmark (librdkafka's bootstrap.servers).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// A second broker: run the workload against both, alternating A B A B,
    /// and print B/A ratios.
    #[arg(long, value_name = "HOST:PORT")]
    pub vs: Option<String>,
    /// Rounds of A then B with --vs.
    #[arg(long, default_value_t = 2, requires = "vs", value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,

    /// Workload file (TOML); flags override its values.
    #[arg(long, value_name = "FILE")]
    pub workload: Option<PathBuf>,
    /// Measured seconds [default: 60].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Warm-up seconds before the measurement, verified but not measured [default: 5].
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<u64>,
    /// Topics [default: 1].
    #[arg(long)]
    pub topics: Option<u32>,
    /// Partitions per topic [default: 8].
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Producers per topic [default: 1].
    #[arg(long)]
    pub producers: Option<u32>,
    /// Consumers per topic; 0 produces only, unverified [default: 1].
    #[arg(long)]
    pub consumers: Option<u32>,
    /// How consumers get partitions [default: group].
    #[arg(long, value_enum)]
    pub consumer_mode: Option<ConsumerMode>,
    /// Bytes per record value, at least 32 [default: 1024].
    #[arg(long, value_name = "BYTES")]
    pub message_size: Option<u32>,
    /// Record keys [default: none].
    #[arg(long, value_enum)]
    pub keys: Option<KeyDistribution>,
    /// With --keys random: distinct keys, 0 for any 8-byte key [default: 0].
    #[arg(long, value_name = "N")]
    pub key_space: Option<u64>,
    /// Replicas of each partition of the run's topics [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub replication_factor: Option<u16>,
    /// A topic config the run's topics are created with (repeatable), e.g.
    /// --topic-config cleanup.policy=compact.
    #[arg(long, value_name = "KEY=VALUE", value_parser = property)]
    pub topic_config: Vec<(String, String)>,
    /// Records per second, all producers together; 0 = as fast as possible [default: 0].
    #[arg(long, value_name = "MSG_PER_SEC")]
    pub rate: Option<u64>,
    /// Producer acks [default: all].
    #[arg(long, value_enum)]
    pub acks: Option<Acks>,
    /// Producer compression [default: none].
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// Producer linger.ms [default: 5].
    #[arg(long, value_name = "MS")]
    pub linger_ms: Option<u32>,
    /// Producer batch.size in bytes [default: 1000000].
    #[arg(long, value_name = "BYTES")]
    pub batch_size: Option<u32>,
    /// Commit a transaction every N records per producer (consumers then read
    /// committed) [default: no transactions].
    #[arg(long, value_name = "N")]
    pub transactional: Option<u32>,

    /// Topic name (NAME-0, NAME-1, .. for several); a new unique name per run by default.
    #[arg(long, value_name = "NAME")]
    pub topic: Option<String>,
    /// Delete the run's topics after it.
    #[arg(long)]
    pub delete_topics: bool,
    /// Seconds the consumers may take to catch up once the producers are done.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub drain_timeout: u64,
    /// A librdkafka property for every client (repeatable), e.g. -X security.protocol=ssl.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = property)]
    pub property: Vec<(String, String)>,

    /// Write the workload and every result as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write percentile distributions (HdrHistogram .hgrm, in ms) into this directory.
    #[arg(long, value_name = "DIR")]
    pub hgrm: Option<PathBuf>,
    /// Draw latency by percentile into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

fn property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            topics: self.topics,
            partitions_per_topic: self.partitions,
            replication_factor: self.replication_factor,
            producers_per_topic: self.producers,
            consumers_per_topic: self.consumers,
            consumer_mode: self.consumer_mode,
            message_size: self.message_size,
            key_distribution: self.keys,
            key_space: self.key_space,
            topic_configs: self.topic_config.clone(),
            producer_rate: self.rate,
            warmup_secs: self.warmup,
            duration_secs: self.duration,
            acks: self.acks,
            compression: self.compression,
            linger_ms: self.linger_ms,
            batch_size: self.batch_size,
            transaction_records: self.transactional,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bootstrap_alone_is_enough() {
        let cli = Cli::try_parse_from(["sluice-bench", "--bootstrap", "h:1"]).unwrap();
        assert_eq!(cli.overrides(), Overrides::default());
        assert_eq!(cli.rounds, 2);
        assert!(cli.vs.is_none() && cli.json.is_none());
    }

    #[test]
    fn flags_become_overrides() {
        let cli = Cli::try_parse_from([
            "sluice-bench",
            "--bootstrap=h:1",
            "--duration=3",
            "--partitions=2",
            "--consumer-mode=group",
            "--keys=round-robin",
            "--acks=1",
            "--compression=lz4",
            "--rate=1000",
            "-X",
            "client.id=me",
            "-Xsocket.timeout.ms=5000",
        ])
        .unwrap();
        let overrides = cli.overrides();
        assert_eq!(overrides.duration_secs, Some(3));
        assert_eq!(overrides.partitions_per_topic, Some(2));
        assert_eq!(overrides.consumer_mode, Some(ConsumerMode::Group));
        assert_eq!(
            overrides.key_distribution,
            Some(KeyDistribution::RoundRobin)
        );
        assert_eq!(overrides.acks, Some(Acks::Leader));
        assert_eq!(overrides.compression, Some(Compression::Lz4));
        assert_eq!(overrides.producer_rate, Some(1000));
        assert_eq!(overrides.topics, None);
        assert_eq!(
            cli.property,
            [
                ("client.id".to_owned(), "me".to_owned()),
                ("socket.timeout.ms".to_owned(), "5000".to_owned())
            ]
        );
    }

    #[test]
    fn bad_command_lines_are_refused() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        assert!(parse(&["sluice-bench"]).is_err(), "no bootstrap");
        assert!(
            parse(&["sluice-bench", "--bootstrap=h:1", "--rounds=3"]).is_err(),
            "rounds without vs"
        );
        assert!(parse(&["sluice-bench", "--bootstrap=h:1", "--acks=2"]).is_err());
        assert!(parse(&["sluice-bench", "--bootstrap=h:1", "-X", "novalue"]).is_err());
    }
}
