//! The `sluice` command line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sluice::bench::log::{LogBenchParams, run};
use sluice::cluster::meta_properties;
use sluice::config::{
    BrokerConfig, DurabilityPolicy, Listener, ProcessRole, Voter, parse_advertised_listeners,
    parse_bootstrap_servers, parse_listener_names, parse_listeners, parse_optional_address,
    parse_process_roles, parse_voters,
};
use sluice::storage::{Durability, GroupCommit, LogConfig};
use sluice::types::NodeId;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Kafka-compatible streaming storage engine and broker"
)]
struct Cli {
    /// How log lines are written to stderr: text for people, json (one object
    /// per line) for log shippers. Filter them with RUST_LOG (default: info).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SLUICE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (defaults: 127.0.0.1:9092, data in ./data, one shard per core).
    Serve(Box<ServeArgs>),
    /// Append batches to a partition log for a while; report MB/s and ack latency.
    BenchLog(BenchLogArgs),
    /// Write meta.properties (cluster.id, node.id) into the data directory, as
    /// `kafka-storage format`: run it on every node of a cluster before its first start.
    Format(FormatArgs),
    /// Print a new cluster id for `sluice format --cluster-id`.
    RandomClusterId,
    /// Offline tools for partition directories.
    #[command(subcommand)]
    Log(LogCommand),
    /// Create, list, describe and delete topics; alter their configs.
    #[command(subcommand)]
    Topic(sluice::cli::topic::TopicCommand),
    /// List, describe and delete consumer groups; reset their offsets.
    #[command(subcommand)]
    Group(sluice::cli::group::GroupCommand),
    /// Produce one record per line of stdin (or --value) to a topic.
    Produce(Box<sluice::cli::produce::ProduceArgs>),
    /// Print records of a topic (kcat-like -f formats or --json).
    Consume(Box<sluice::cli::consume::ConsumeArgs>),
    /// Show the cluster: id, controller, brokers.
    #[command(subcommand)]
    Cluster(sluice::cli::cluster::ClusterCommand),
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print a partition directory's segments, batches, indexes and checkpoints
    /// and check them (exit 0: consistent, 1: corrupt, 2: not a partition
    /// directory or an I/O error). Read-only; run it on a stopped broker's data.
    Dump {
        /// The partition directory, `<data dir>/<topic>-<partition>`.
        dir: PathBuf,
        /// Also print every record (key, value, headers; markers as COMMIT/ABORT).
        #[arg(long)]
        records: bool,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Settings of `sluice format`: the data directory and node id come from the
/// same config file and environment as `serve`.
#[derive(clap::Args)]
struct FormatArgs {
    /// The cluster's id, the same on every node (`sluice random-cluster-id` makes one).
    #[arg(long)]
    cluster_id: String,
    /// TOML file with the broker config (its data_dir and node_id are used).
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory to format.
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// node.id of this node.
    #[arg(long, env = "SLUICE_NODE_ID")]
    node_id: Option<i32>,
    /// Succeed without writing when the directory is already formatted with the
    /// same cluster id and node id.
    #[arg(long)]
    ignore_formatted: bool,
}

/// Settings of `sluice serve`: embedded defaults < --config file < SLUICE_* env < flags.
#[derive(clap::Args)]
struct ServeArgs {
    /// TOML file with any setting of the broker config (docs/configuration.md).
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the broker listener; wins over --listeners.
    #[arg(long, env = "SLUICE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory holding the partitions and metadata.
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// node.id advertised in metadata.
    #[arg(long, env = "SLUICE_NODE_ID")]
    node_id: Option<i32>,
    /// Number of shards (0: one per core).
    #[arg(long, env = "SLUICE_SHARDS")]
    shards: Option<usize>,
    /// num.partitions of auto-created topics.
    #[arg(long, env = "SLUICE_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// auto.create.topics.enable.
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS_ENABLE")]
    auto_create_topics_enable: Option<bool>,
    /// When a produce is acknowledged: after fdatasync, or after the write.
    #[arg(long, value_enum, env = "SLUICE_DURABILITY")]
    durability: Option<Policy>,
    /// With fsync durability, what one write-and-fdatasync cycle gathers.
    #[arg(long, value_enum, env = "SLUICE_GROUP_COMMIT")]
    group_commit: Option<CommitScope>,
    /// group.initial.rebalance.delay.ms.
    #[arg(long, env = "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// group.min.session.timeout.ms.
    #[arg(long, env = "SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<u64>,
    /// group.max.session.timeout.ms.
    #[arg(long, env = "SLUICE_GROUP_MAX_SESSION_TIMEOUT_MS")]
    group_max_session_timeout_ms: Option<u64>,
    /// group.max.size: members per consumer group.
    #[arg(long, env = "SLUICE_GROUP_MAX_SIZE")]
    group_max_size: Option<usize>,
    /// offsets.topic.num.partitions: partitions of __consumer_offsets.
    #[arg(long, env = "SLUICE_OFFSETS_TOPIC_NUM_PARTITIONS")]
    offsets_topic_num_partitions: Option<i32>,
    /// offsets.retention.minutes.
    #[arg(long, env = "SLUICE_OFFSETS_RETENTION_MINUTES")]
    offsets_retention_minutes: Option<u64>,
    /// offsets.retention.check.interval.ms.
    #[arg(long, env = "SLUICE_OFFSETS_RETENTION_CHECK_INTERVAL_MS")]
    offsets_retention_check_interval_ms: Option<u64>,
    /// transaction.state.log.num.partitions: partitions of __transaction_state.
    #[arg(long, env = "SLUICE_TRANSACTION_STATE_LOG_NUM_PARTITIONS")]
    transaction_state_log_num_partitions: Option<i32>,
    /// transaction.max.timeout.ms: the longest transaction timeout a producer may use.
    #[arg(long, env = "SLUICE_TRANSACTION_MAX_TIMEOUT_MS")]
    transaction_max_timeout_ms: Option<i32>,
    /// transaction.abort.timed.out.transaction.cleanup.interval.ms.
    #[arg(
        long,
        env = "SLUICE_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS"
    )]
    transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<u64>,
    /// transactional.id.expiration.ms: idle transactional ids are removed after it.
    #[arg(long, env = "SLUICE_TRANSACTIONAL_ID_EXPIRATION_MS")]
    transactional_id_expiration_ms: Option<u64>,
    /// Serve even if existing partitions cannot be opened at start-up (they stay
    /// offline, answering KAFKA_STORAGE_ERROR); without it the broker refuses to start.
    #[arg(long, env = "SLUICE_ALLOW_OFFLINE_PARTITIONS")]
    allow_offline_partitions: bool,

    /// log.retention.check.interval.ms: how often each log applies retention.
    #[arg(long, env = "SLUICE_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<u64>,
    /// log.cleaner.enable: compact topics with cleanup.policy=compact.
    #[arg(long, env = "SLUICE_LOG_CLEANER_ENABLE")]
    log_cleaner_enable: Option<bool>,
    /// log.cleaner.backoff.ms: how long a shard's cleaner sleeps when no log needs it.
    #[arg(long, env = "SLUICE_LOG_CLEANER_BACKOFF_MS")]
    log_cleaner_backoff_ms: Option<u64>,
    /// log.cleaner.dedupe.buffer.size: memory for the cleaners' key maps, split across shards.
    #[arg(long, env = "SLUICE_LOG_CLEANER_DEDUPE_BUFFER_SIZE")]
    log_cleaner_dedupe_buffer_size: Option<u64>,
    /// log.cleaner.io.max.bytes.per.second: each shard's cleaner I/O rate.
    #[arg(long, env = "SLUICE_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND")]
    log_cleaner_io_max_bytes_per_second: Option<f64>,
    /// offsets.topic.segment.bytes: segment.bytes of __consumer_offsets.
    #[arg(long, env = "SLUICE_OFFSETS_TOPIC_SEGMENT_BYTES")]
    offsets_topic_segment_bytes: Option<u64>,

    /// Log where the time of every produce request at least this slow went (a
    /// WARN line per request: dispatch, validate, write, sync, acknowledge, respond)
    #[arg(long, env = "SLUICE_SLOW_REQUEST_MS", value_name = "MS")]
    slow_request_ms: Option<u64>,

    /// Address of the HTTP endpoint for /metrics (Prometheus), /ready and
    /// /health (default 127.0.0.1:9644; "" turns it off; port 0 picks a free one).
    #[arg(long, env = "SLUICE_METRICS_LISTEN", value_name = "ADDRESS")]
    metrics_listen: Option<String>,
    /// Sum per-partition series to topic level on /metrics.
    #[arg(long, env = "SLUICE_METRICS_AGGREGATE_PARTITIONS")]
    metrics_aggregate_partitions: Option<bool>,
    /// A shard held this long by one task counts a reactor stall.
    #[arg(long, env = "SLUICE_REACTOR_STALL_THRESHOLD_MS", value_name = "MS")]
    reactor_stall_threshold_ms: Option<u64>,

    #[command(flatten)]
    cluster: ClusterArgs,
}

/// The cluster settings of `sluice serve`, in Kafka's value forms.
#[derive(clap::Args)]
struct ClusterArgs {
    /// process.roles: broker, controller, or broker,controller (the default).
    #[arg(long, env = "SLUICE_PROCESS_ROLES", value_parser = parse_process_roles)]
    process_roles: Option<std::vec::Vec<ProcessRole>>,
    /// controller.quorum.voters: id@host:port,… (none: a single node, a quorum of one).
    #[arg(long, env = "SLUICE_CONTROLLER_QUORUM_VOTERS", value_parser = parse_voters)]
    controller_quorum_voters: Option<std::vec::Vec<Voter>>,
    /// controller.quorum.bootstrap.servers: host:port,… of controllers (broker-only nodes).
    #[arg(long, env = "SLUICE_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS", value_parser = parse_bootstrap_servers)]
    controller_quorum_bootstrap_servers: Option<std::vec::Vec<SocketAddr>>,
    /// listeners: PLAINTEXT://host:port,CONTROLLER://host:port (empty host: all interfaces).
    #[arg(long, env = "SLUICE_LISTENERS", value_parser = parse_listeners)]
    listeners: Option<std::vec::Vec<Listener>>,
    /// advertised.listeners: PLAINTEXT://host:port clients are told to connect to.
    #[arg(long, env = "SLUICE_ADVERTISED_LISTENERS", value_parser = parse_advertised_listeners)]
    advertised_listeners: Option<std::vec::Vec<Listener>>,
    /// controller.listener.names: which listeners are controller listeners (CONTROLLER).
    #[arg(long, env = "SLUICE_CONTROLLER_LISTENER_NAMES", value_parser = parse_listener_names)]
    controller_listener_names: Option<std::vec::Vec<String>>,
    /// broker.session.timeout.ms: a broker without heartbeats this long is fenced.
    #[arg(long, env = "SLUICE_BROKER_SESSION_TIMEOUT_MS")]
    broker_session_timeout_ms: Option<u64>,
    /// broker.heartbeat.interval.ms: how often a broker heartbeats to the controller.
    #[arg(long, env = "SLUICE_BROKER_HEARTBEAT_INTERVAL_MS")]
    broker_heartbeat_interval_ms: Option<u64>,
    /// broker.rack: replicas are spread across racks.
    #[arg(long, env = "SLUICE_BROKER_RACK")]
    broker_rack: Option<String>,
    /// default.replication.factor: replicas of topics created without one.
    #[arg(long, env = "SLUICE_DEFAULT_REPLICATION_FACTOR")]
    default_replication_factor: Option<i16>,
    /// min.insync.replicas: the ISR an acks=all produce needs (topic default).
    #[arg(long, env = "SLUICE_MIN_INSYNC_REPLICAS")]
    min_insync_replicas: Option<i32>,
    /// unclean.leader.election.enable (topic default).
    #[arg(long, env = "SLUICE_UNCLEAN_LEADER_ELECTION_ENABLE")]
    unclean_leader_election_enable: Option<bool>,
    /// replica.lag.time.max.ms: a follower behind this long leaves the ISR.
    #[arg(long, env = "SLUICE_REPLICA_LAG_TIME_MAX_MS")]
    replica_lag_time_max_ms: Option<u64>,
    /// auto.leader.rebalance.enable: leadership moves back to preferred replicas.
    #[arg(long, env = "SLUICE_AUTO_LEADER_REBALANCE_ENABLE")]
    auto_leader_rebalance_enable: Option<bool>,
    /// leader.imbalance.check.interval.seconds.
    #[arg(long, env = "SLUICE_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS")]
    leader_imbalance_check_interval_seconds: Option<u64>,
    /// offsets.topic.replication.factor (default 3 in a cluster, 1 alone).
    #[arg(long, env = "SLUICE_OFFSETS_TOPIC_REPLICATION_FACTOR")]
    offsets_topic_replication_factor: Option<i16>,
    /// transaction.state.log.replication.factor (default 3 in a cluster, 1 alone).
    #[arg(long, env = "SLUICE_TRANSACTION_STATE_LOG_REPLICATION_FACTOR")]
    transaction_state_log_replication_factor: Option<i16>,
    /// transaction.state.log.min.isr (default 2 in a cluster, 1 alone).
    #[arg(long, env = "SLUICE_TRANSACTION_STATE_LOG_MIN_ISR")]
    transaction_state_log_min_isr: Option<i32>,
    /// controller.quorum.election.timeout.ms.
    #[arg(long, env = "SLUICE_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS")]
    controller_quorum_election_timeout_ms: Option<u64>,
    /// controller.quorum.fetch.timeout.ms.
    #[arg(long, env = "SLUICE_CONTROLLER_QUORUM_FETCH_TIMEOUT_MS")]
    controller_quorum_fetch_timeout_ms: Option<u64>,
}

impl ClusterArgs {
    /// Lays these settings over the file's.
    fn apply(self, config: &mut BrokerConfig) {
        fn set<T>(value: Option<T>, field: &mut T) {
            if let Some(value) = value {
                *field = value;
            }
        }
        set(self.process_roles, &mut config.process_roles);
        set(
            self.controller_quorum_voters,
            &mut config.controller_quorum_voters,
        );
        set(
            self.controller_quorum_bootstrap_servers,
            &mut config.controller_quorum_bootstrap_servers,
        );
        set(self.listeners, &mut config.listeners);
        set(self.advertised_listeners, &mut config.advertised_listeners);
        set(
            self.controller_listener_names,
            &mut config.controller_listener_names,
        );
        set(
            self.broker_session_timeout_ms,
            &mut config.broker_session_timeout_ms,
        );
        set(
            self.broker_heartbeat_interval_ms,
            &mut config.broker_heartbeat_interval_ms,
        );
        if self.broker_rack.is_some() {
            config.broker_rack = self.broker_rack;
        }
        set(self.min_insync_replicas, &mut config.min_insync_replicas);
        set(
            self.unclean_leader_election_enable,
            &mut config.unclean_leader_election_enable,
        );
        set(
            self.replica_lag_time_max_ms,
            &mut config.replica_lag_time_max_ms,
        );
        set(
            self.auto_leader_rebalance_enable,
            &mut config.auto_leader_rebalance_enable,
        );
        set(
            self.leader_imbalance_check_interval_seconds,
            &mut config.leader_imbalance_check_interval_seconds,
        );
        for (value, field) in [
            (
                self.offsets_topic_replication_factor,
                &mut config.offsets_topic_replication_factor,
            ),
            (
                self.transaction_state_log_replication_factor,
                &mut config.transaction_state_log_replication_factor,
            ),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
        if self.transaction_state_log_min_isr.is_some() {
            config.transaction_state_log_min_isr = self.transaction_state_log_min_isr;
        }
        set(
            self.default_replication_factor,
            &mut config.default_replication_factor,
        );
        set(
            self.controller_quorum_election_timeout_ms,
            &mut config.controller_quorum_election_timeout_ms,
        );
        set(
            self.controller_quorum_fetch_timeout_ms,
            &mut config.controller_quorum_fetch_timeout_ms,
        );
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Policy {
    /// Acknowledge after fdatasync (the default).
    Fsync,
    /// Acknowledge after the write; fdatasync every --flush-ms or --flush-bytes.
    Interval,
}

#[derive(Clone, Copy, ValueEnum)]
enum CommitScope {
    /// Each partition writes and syncs on its own (the default).
    Partition,
    /// The partitions of a shard with appends waiting write, then sync, in one
    /// round, and are acknowledged together.
    Shard,
}

impl From<CommitScope> for GroupCommit {
    fn from(scope: CommitScope) -> GroupCommit {
        match scope {
            CommitScope::Partition => GroupCommit::Partition,
            CommitScope::Shard => GroupCommit::Shard,
        }
    }
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
    let cli = Cli::parse();
    init_logs(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::BenchLog(args) => bench_log(args),
        Command::Format(args) => format(args),
        Command::RandomClusterId => {
            println!("{}", meta_properties::random_cluster_id());
            ExitCode::SUCCESS
        }
        Command::Log(LogCommand::Dump { dir, records, json }) => ExitCode::from(
            sluice::storage::dump::main(&dir, sluice::storage::dump::Options { records }, json),
        ),
        Command::Topic(command) => sluice::cli::topic::run(command),
        Command::Group(command) => sluice::cli::group::run(command),
        Command::Produce(args) => sluice::cli::produce::run(*args),
        Command::Consume(args) => sluice::cli::consume::run(*args),
        Command::Cluster(command) => sluice::cli::cluster::run(command),
    }
}

/// Log lines to stderr, filtered by RUST_LOG (default `info`).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only for a terminal, not in a log file or a pipe.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // Span context is left out: the lines carry their fields themselves.
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// The config file, or the embedded defaults without one.
fn load_config(path: Option<&Path>) -> Result<BrokerConfig, String> {
    path.map_or_else(|| Ok(BrokerConfig::default()), BrokerConfig::from_file)
}

fn format(args: FormatArgs) -> ExitCode {
    let mut config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sluice: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(id) = args.node_id {
        config.node_id = id;
    }
    match meta_properties::format(
        &config.data_dir,
        &args.cluster_id,
        NodeId(config.node_id),
        args.ignore_formatted,
    ) {
        Ok(meta) => {
            println!(
                "{}/meta.properties: version=1 cluster.id={} node.id={} directory.id={}",
                config.data_dir.display(),
                meta.cluster_id,
                meta.node_id,
                meta.directory_id
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sluice format: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let mut config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sluice: {error}");
            return ExitCode::FAILURE;
        }
    };
    apply_group_args(&args, &mut config);
    args.cluster.apply(&mut config);
    if let Err(error) = config.resolve_listeners(args.listen) {
        eprintln!("sluice: {error}");
        return ExitCode::FAILURE;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(id) = args.node_id {
        config.node_id = id;
    }
    if let Some(shards) = args.shards {
        config.shards = shards;
    }
    if let Some(partitions) = args.num_partitions {
        config.num_partitions = partitions;
    }
    if let Some(enabled) = args.auto_create_topics_enable {
        config.auto_create_topics_enable = enabled;
    }
    if args.allow_offline_partitions {
        config.allow_offline_partitions = true;
    }
    if args.slow_request_ms.is_some() {
        config.slow_request_ms = args.slow_request_ms;
    }
    if let Some(address) = &args.metrics_listen {
        match parse_optional_address(address) {
            Ok(address) => config.metrics_listen = address,
            Err(error) => {
                eprintln!("sluice: --metrics-listen: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(aggregate) = args.metrics_aggregate_partitions {
        config.metrics_aggregate_partitions = aggregate;
    }
    if let Some(threshold) = args.reactor_stall_threshold_ms {
        config.reactor_stall_threshold_ms = threshold;
    }
    if let Some(policy) = args.durability {
        config.durability = match policy {
            Policy::Fsync => DurabilityPolicy::Fsync,
            Policy::Interval => DurabilityPolicy::Interval,
        };
    }
    if let Some(scope) = args.group_commit {
        config.group_commit = scope.into();
    }
    match sluice::shard::runtime::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice: {error}");
            ExitCode::FAILURE
        }
    }
}

fn apply_group_args(args: &ServeArgs, config: &mut BrokerConfig) {
    let set = |value: Option<u64>, field: &mut u64| {
        if let Some(value) = value {
            *field = value;
        }
    };
    set(
        args.group_initial_rebalance_delay_ms,
        &mut config.group_initial_rebalance_delay_ms,
    );
    set(
        args.group_min_session_timeout_ms,
        &mut config.group_min_session_timeout_ms,
    );
    set(
        args.group_max_session_timeout_ms,
        &mut config.group_max_session_timeout_ms,
    );
    set(
        args.offsets_retention_minutes,
        &mut config.offsets_retention_minutes,
    );
    set(
        args.offsets_retention_check_interval_ms,
        &mut config.offsets_retention_check_interval_ms,
    );
    set(
        args.log_retention_check_interval_ms,
        &mut config.log_retention_check_interval_ms,
    );
    set(
        args.log_cleaner_backoff_ms,
        &mut config.log_cleaner_backoff_ms,
    );
    set(
        args.log_cleaner_dedupe_buffer_size,
        &mut config.log_cleaner_dedupe_buffer_size,
    );
    set(
        args.offsets_topic_segment_bytes,
        &mut config.offsets_topic_segment_bytes,
    );
    if let Some(enable) = args.log_cleaner_enable {
        config.log_cleaner_enable = enable;
    }
    if let Some(rate) = args.log_cleaner_io_max_bytes_per_second {
        config.log_cleaner_io_max_bytes_per_second = rate;
    }
    if let Some(size) = args.group_max_size {
        config.group_max_size = size;
    }
    if let Some(partitions) = args.offsets_topic_num_partitions {
        config.offsets_topic_num_partitions = partitions;
    }
    set(
        args.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        &mut config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
    );
    set(
        args.transactional_id_expiration_ms,
        &mut config.transactional_id_expiration_ms,
    );
    if let Some(partitions) = args.transaction_state_log_num_partitions {
        config.transaction_state_log_num_partitions = partitions;
    }
    if let Some(timeout) = args.transaction_max_timeout_ms {
        config.transaction_max_timeout_ms = timeout;
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
    let dir = match std::fs::create_dir_all(&args.dir).and_then(|()| args.dir.canonicalize()) {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("bench-log: {}: {error}", args.dir.display());
            return ExitCode::FAILURE;
        }
    };
    let params = LogBenchParams {
        dir,
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
