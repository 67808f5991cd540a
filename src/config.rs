//! The broker's configuration: embedded defaults < TOML file < `SLUICE_*` env < flags.
//! Names follow Kafka's broker configs where one exists (in the TOML file with
//! underscores: `auto_create_topics_enable` is `auto.create.topics.enable`).
//!
//! The cluster settings keep Kafka's value forms too (`process.roles` as
//! "broker,controller", `controller.quorum.voters` as "0@host:9093,…", `listeners`
//! as "PLAINTEXT://:9092,CONTROLLER://:9093"): they are parsed into typed values
//! here, and [`BrokerConfig::resolve_listeners`] turns the listener lists into the
//! addresses the rest of the broker uses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::storage::{Compaction, Durability, GroupCommit, LogConfig};
use crate::types::NodeId;

/// Entries of one comma-separated list setting: far above any real cluster, low
/// enough that a pasted mistake cannot make start-up resolve thousands of names.
const MAX_LIST_ENTRIES: usize = 256;

/// The name of the broker listener when only `listen` is configured (Kafka's
/// default listener name).
const DEFAULT_LISTENER_NAME: &str = "PLAINTEXT";

const NO_CONTROLLER_LISTENER_NAMES: &str =
    "controller.listener.names must name at least one listener";

/// A role of this node (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    /// Serves clients: hosts partitions, follows the metadata log.
    Broker,
    /// Votes in the controller quorum that replicates the metadata log.
    Controller,
}

/// One voter of the controller quorum (an entry of `controller.quorum.voters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Voter {
    pub id: NodeId,
    /// The voter's controller listener, resolved when the config was read.
    pub addr: SocketAddr,
}

/// One entry of `listeners` or `advertised.listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased, as Kafka normalises listener names.
    pub name: String,
    /// As written: empty (every interface), an IP address or a host name.
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityPolicy {
    Fsync,
    Interval,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address the Kafka (broker) listener binds: set directly, or the first
    /// entry of `listeners` not named in `controller.listener.names`.
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `node.id`.
    pub node_id: i32,
    /// `process.roles`: broker, controller, or both (combined mode, the default).
    #[serde(deserialize_with = "kafka_form::process_roles")]
    pub process_roles: Vec<ProcessRole>,
    /// `controller.quorum.voters`: the static controller quorum. Empty, with no
    /// bootstrap servers either: this node alone is a quorum of one.
    #[serde(deserialize_with = "kafka_form::voters")]
    pub controller_quorum_voters: Vec<Voter>,
    /// `controller.quorum.bootstrap.servers`: controllers a broker-only node asks
    /// for the quorum when it does not list the voters.
    #[serde(deserialize_with = "kafka_form::bootstrap_servers")]
    pub controller_quorum_bootstrap_servers: Vec<SocketAddr>,
    /// `listeners`: one broker listener and, on a controller, one controller
    /// listener. Empty: the broker listener is `listen`.
    #[serde(deserialize_with = "kafka_form::listeners")]
    pub listeners: Vec<Listener>,
    /// `advertised.listeners`: the address clients are told for the broker
    /// listener, when it differs from the bound one.
    #[serde(deserialize_with = "kafka_form::advertised_listeners")]
    pub advertised_listeners: Vec<Listener>,
    /// `controller.listener.names`: which `listeners` entries are controller
    /// listeners.
    #[serde(deserialize_with = "kafka_form::listener_names")]
    pub controller_listener_names: Vec<String>,
    /// The controller listener's address, from `listeners` (derived by
    /// [`BrokerConfig::resolve_listeners`]; `None` when it binds none).
    #[serde(skip)]
    pub controller_listen: Option<SocketAddr>,
    /// Host clients are told to connect to (derived by
    /// [`BrokerConfig::resolve_listeners`]: `advertised.listeners`, else `listen`'s IP).
    #[serde(skip)]
    pub advertised_host: String,
    /// Port clients are told to connect to (derived with `advertised_host`).
    #[serde(skip)]
    pub advertised_port: u16,
    /// `broker.session.timeout.ms`: a broker without a heartbeat for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats to the controller.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.rack`: replica placement spreads replicas across racks.
    pub broker_rack: Option<String>,
    /// `default.replication.factor`: replicas of topics created without one.
    pub default_replication_factor: i16,
    /// `min.insync.replicas`: the ISR an `acks=all` produce needs (topic default).
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`: an out-of-sync replica may lead when no
    /// ISR member is alive (topic default; loses acknowledged records).
    pub unclean_leader_election_enable: bool,
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this long
    /// leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`: per partition, per follower fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per follower fetch.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: a follower's pause after a failed fetch.
    pub replica_fetch_backoff_ms: u64,
    /// `auto.leader.rebalance.enable`: leadership moves back to preferred replicas.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_seconds: u64,
    /// `offsets.topic.replication.factor`: `__consumer_offsets` is not created
    /// until this many brokers are alive. Unset: see
    /// [`BrokerConfig::offsets_topic_replication_factor`].
    pub offsets_topic_replication_factor: Option<i16>,
    /// `transaction.state.log.replication.factor`, likewise for `__transaction_state`.
    pub transaction_state_log_replication_factor: Option<i16>,
    /// `transaction.state.log.min.isr`: `__transaction_state`'s `min.insync.replicas`.
    pub transaction_state_log_min_isr: Option<i32>,
    /// `controller.quorum.election.timeout.ms`: how long a voter waits without a
    /// leader before it stands for election.
    pub controller_quorum_election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: how long a follower waits without
    /// hearing from the leader before it looks for a new one.
    pub controller_quorum_fetch_timeout_ms: u64,
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
    /// Address of the HTTP endpoint serving `/metrics` (Prometheus) and the
    /// health checks; `None` (an empty value) turns it off, port 0 picks a free one.
    #[serde(deserialize_with = "kafka_form::optional_address")]
    pub metrics_listen: Option<SocketAddr>,
    /// Sum per-partition series to topic level on `/metrics` (as Redpanda's
    /// `aggregate_metrics`): a scrape of a broker with many thousands of
    /// partitions stays small.
    pub metrics_aggregate_partitions: bool,
    /// A shard that could not run a ready task for at least this long counts a
    /// reactor stall (`sluice_reactor_stalls_total`).
    pub reactor_stall_threshold_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], 9092));
        BrokerConfig {
            listen,
            data_dir: PathBuf::from("./data"),
            node_id: 0,
            process_roles: vec![ProcessRole::Broker, ProcessRole::Controller],
            controller_quorum_voters: Vec::new(),
            controller_quorum_bootstrap_servers: Vec::new(),
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            controller_listener_names: vec!["CONTROLLER".to_string()],
            controller_listen: None,
            advertised_host: listen.ip().to_string(),
            advertised_port: listen.port(),
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            broker_rack: None,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1 << 20,
            replica_fetch_response_max_bytes: 10 << 20,
            replica_fetch_backoff_ms: 1_000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            offsets_topic_replication_factor: None,
            transaction_state_log_replication_factor: None,
            transaction_state_log_min_isr: None,
            controller_quorum_election_timeout_ms: 1_000,
            controller_quorum_fetch_timeout_ms: 2_000,
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
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9644))),
            metrics_aggregate_partitions: false,
            reactor_stall_threshold_ms: 25,
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file over the embedded defaults, with its listeners resolved.
    pub fn from_file(path: &Path) -> Result<BrokerConfig, String> {
        let at = |error: String| format!("{}: {error}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
        let keys: toml::Table = toml::from_str(&text).map_err(|e| at(e.to_string()))?;
        // Both would name the broker listener; neither silently wins in one file.
        if keys.contains_key("listen") && keys.contains_key("listeners") {
            return Err(at("set either `listen` or `listeners`, not both".into()));
        }
        let mut config: BrokerConfig = toml::from_str(&text).map_err(|e| at(e.to_string()))?;
        config.resolve_listeners(None).map_err(at)?;
        Ok(config)
    }

    /// Derives `listen`, `controller_listen`, `advertised_host` and
    /// `advertised_port` from `listeners`, `advertised.listeners` and
    /// `controller.listener.names`; `listen_override` (the `--listen` flag) wins
    /// over `listeners`. Run it once every layer of settings is applied; running
    /// it again gives the same result.
    pub fn resolve_listeners(&mut self, listen_override: Option<SocketAddr>) -> Result<(), String> {
        if self.controller_listener_names.is_empty() {
            return Err(NO_CONTROLLER_LISTENER_NAMES.into());
        }
        let mut broker: Option<(String, SocketAddr)> = None;
        let mut controller: Option<(String, SocketAddr)> = None;
        for listener in &self.listeners {
            let addr = resolve("listeners", &listener.host, listener.port)?;
            let is_controller = self.controller_listener_names.contains(&listener.name);
            let (slot, kind) = if is_controller {
                (&mut controller, "controller")
            } else {
                (&mut broker, "broker")
            };
            // The runtime binds one listener of each kind; a second one would
            // be configured but never served.
            if let Some((first, _)) = slot {
                return Err(format!(
                    "listeners: {first} and {} are both {kind} listeners; Sluice binds one of each",
                    listener.name
                ));
            }
            *slot = Some((listener.name.clone(), addr));
        }
        let mut listen = broker.as_ref().map_or(self.listen, |(_, addr)| *addr);
        if let Some(addr) = listen_override {
            listen = addr;
        }
        let mut advertised = (listen.ip().to_string(), listen.port());
        for entry in &self.advertised_listeners {
            if self.controller_listener_names.contains(&entry.name) {
                return Err(format!(
                    "advertised.listeners: {} is a controller listener; brokers reach controllers through controller.quorum.voters",
                    entry.name
                ));
            }
            let known = if self.listeners.is_empty() {
                entry.name == DEFAULT_LISTENER_NAME
            } else {
                self.listeners.iter().any(|l| l.name == entry.name)
            };
            if !known {
                return Err(format!(
                    "advertised.listeners: {} is not one of the listeners ({})",
                    entry.name,
                    self.listener_names_text()
                ));
            }
            let unroutable = entry.host.is_empty()
                || entry
                    .host
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_unspecified());
            if unroutable || entry.port == 0 {
                return Err(format!(
                    "advertised.listeners: {}://{}:{} is not an address clients can connect to",
                    entry.name, entry.host, entry.port
                ));
            }
            // At most one broker listener exists, so this is its entry.
            advertised = (entry.host.clone(), entry.port);
        }
        self.listen = listen;
        self.controller_listen = controller.map(|(_, addr)| addr);
        (self.advertised_host, self.advertised_port) = advertised;
        Ok(())
    }

    /// The names of `listeners`, for messages (`PLAINTEXT` when only `listen` is set).
    fn listener_names_text(&self) -> String {
        if self.listeners.is_empty() {
            return DEFAULT_LISTENER_NAME.to_string();
        }
        let names: Vec<&str> = self.listeners.iter().map(|l| l.name.as_str()).collect();
        names.join(",")
    }

    /// Host and port clients are told to connect to for this broker.
    pub fn advertised(&self) -> (String, u16) {
        (self.advertised_host.clone(), self.advertised_port)
    }

    pub fn is_broker(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Broker)
    }

    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Controller)
    }

    /// This node's `node.id`.
    pub fn node(&self) -> NodeId {
        NodeId(self.node_id)
    }

    /// No quorum is configured: this node is a combined broker and controller
    /// forming a quorum of one, and binds no controller listener.
    pub fn is_single_node(&self) -> bool {
        self.controller_quorum_voters.is_empty()
            && self.controller_quorum_bootstrap_servers.is_empty()
    }

    /// The voters of the controller quorum: `controller.quorum.voters`, or this
    /// node alone (at its broker listener) when it is a single node.
    pub fn quorum_voters(&self) -> Vec<(NodeId, SocketAddr)> {
        if self.is_single_node() {
            return vec![(self.node(), self.listen)];
        }
        self.controller_quorum_voters
            .iter()
            .map(|voter| (voter.id, voter.addr))
            .collect()
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
        self.validate_cluster()?;
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

    /// The roles, quorum, listeners and timeouts of a cluster node.
    fn validate_cluster(&self) -> Result<(), String> {
        if self.node_id < 0 {
            return Err(format!("node.id must be 0 or more, not {}", self.node_id));
        }
        if !self.is_broker() && !self.is_controller() {
            return Err("process.roles must name broker, controller or both".into());
        }
        if self.controller_listener_names.is_empty() {
            return Err(NO_CONTROLLER_LISTENER_NAMES.into());
        }
        let roles = roles_text(&self.process_roles);
        let controller_names = self.controller_listener_names.join(",");
        if self.is_single_node() {
            if !self.is_controller() {
                return Err(format!(
                    "process.roles={roles}: a broker-only node needs controller.quorum.voters or controller.quorum.bootstrap.servers to find the controllers"
                ));
            }
            if !self.is_broker() {
                return Err(format!(
                    "process.roles={roles}: a controller-only node needs controller.quorum.voters (without them a node is a quorum of one and must be broker,controller)"
                ));
            }
            if let Some(addr) = self.controller_listen {
                return Err(format!(
                    "listeners: the controller listener {addr} would not be used: without controller.quorum.voters this node is a quorum of one; list the voters or remove it"
                ));
            }
        } else if self.is_controller() {
            let node = self.node();
            let Some(voter) = self.controller_quorum_voters.iter().find(|v| v.id == node) else {
                return Err(format!(
                    "node.id {node} is a controller (process.roles={roles}) but not one of controller.quorum.voters{}",
                    if self.controller_quorum_voters.is_empty() {
                        " (controller.quorum.bootstrap.servers alone is for broker-only nodes)"
                    } else {
                        ""
                    }
                ));
            };
            let Some(controller_listen) = self.controller_listen else {
                return Err(format!(
                    "a controller needs a controller listener: no entry of listeners is named in controller.listener.names ({controller_names})"
                ));
            };
            // The other voters dial this port; a mismatch splits the quorum.
            if voter.addr.port() != controller_listen.port() {
                return Err(format!(
                    "controller.quorum.voters lists node.id {node} at {}, but its controller listener binds {controller_listen}",
                    voter.addr
                ));
            }
        }
        if !self.is_controller() && self.controller_listen.is_some() {
            return Err(format!(
                "process.roles={roles}: listeners must not contain a controller listener (controller.listener.names={controller_names})"
            ));
        }
        let broker_listener = self
            .listeners
            .iter()
            .find(|l| !self.controller_listener_names.contains(&l.name));
        if let (false, Some(listener)) = (self.is_broker(), broker_listener) {
            return Err(format!(
                "process.roles={roles}: listeners must only contain controller listeners (controller.listener.names={controller_names}), not {}",
                listener.name
            ));
        }
        if let Some(controller_listen) = self.controller_listen
            && self.is_broker()
            && same_socket(controller_listen, self.listen)
        {
            return Err(format!(
                "listeners: the controller listener {controller_listen} must differ from the broker listener {}",
                self.listen
            ));
        }
        self.validate_cluster_timing()
    }

    /// Whether this node is part of a quorum of several voters (or follows one).
    fn is_multi_node(&self) -> bool {
        self.controller_quorum_voters.len() > 1
            || !self.controller_quorum_bootstrap_servers.is_empty()
    }

    /// `offsets.topic.replication.factor`: Kafka's 3 in a cluster, 1 on a single
    /// node (as the single-node configuration Kafka ships sets it).
    pub fn offsets_topic_replication_factor(&self) -> i16 {
        let default = if self.is_multi_node() { 3 } else { 1 };
        self.offsets_topic_replication_factor.unwrap_or(default)
    }

    /// `transaction.state.log.replication.factor`, defaulted as the offsets topic's.
    pub fn transaction_state_log_replication_factor(&self) -> i16 {
        let default = if self.is_multi_node() { 3 } else { 1 };
        self.transaction_state_log_replication_factor
            .unwrap_or(default)
    }

    /// `transaction.state.log.min.isr`: Kafka's 2 in a cluster, 1 on a single node.
    pub fn transaction_state_log_min_isr(&self) -> i32 {
        let default = if self.is_multi_node() { 2 } else { 1 };
        self.transaction_state_log_min_isr.unwrap_or(default)
    }

    /// Timeouts, intervals, replication factor and rack.
    fn validate_cluster_timing(&self) -> Result<(), String> {
        for (name, ms) in [
            ("broker.session.timeout.ms", self.broker_session_timeout_ms),
            (
                "broker.heartbeat.interval.ms",
                self.broker_heartbeat_interval_ms,
            ),
            (
                "controller.quorum.election.timeout.ms",
                self.controller_quorum_election_timeout_ms,
            ),
            (
                "controller.quorum.fetch.timeout.ms",
                self.controller_quorum_fetch_timeout_ms,
            ),
        ] {
            if ms == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err(format!(
                "broker.heartbeat.interval.ms ({}) must be less than broker.session.timeout.ms ({})",
                self.broker_heartbeat_interval_ms, self.broker_session_timeout_ms
            ));
        }
        if self.default_replication_factor < 1 {
            return Err("default.replication.factor must be at least 1".into());
        }
        if self.min_insync_replicas < 1 {
            return Err("min.insync.replicas must be at least 1".into());
        }
        for (name, ms) in [
            ("replica.lag.time.max.ms", self.replica_lag_time_max_ms),
            ("replica.fetch.wait.max.ms", self.replica_fetch_wait_max_ms),
            (
                "leader.imbalance.check.interval.seconds",
                self.leader_imbalance_check_interval_seconds,
            ),
        ] {
            if ms == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.replica_fetch_max_bytes < 1 || self.replica_fetch_response_max_bytes < 1 {
            return Err(
                "replica.fetch.max.bytes and replica.fetch.response.max.bytes must be at least 1"
                    .into(),
            );
        }
        if self
            .broker_rack
            .as_deref()
            .is_some_and(|rack| rack.trim().is_empty())
        {
            return Err("broker.rack must not be empty (leave it unset for no rack)".into());
        }
        Ok(())
    }
}

/// `process.roles` as Kafka writes it.
fn roles_text(roles: &[ProcessRole]) -> String {
    let names: Vec<&str> = roles
        .iter()
        .map(|role| match role {
            ProcessRole::Broker => "broker",
            ProcessRole::Controller => "controller",
        })
        .collect();
    names.join(",")
}

/// Two bind addresses collide: same port, and the same IP or a wildcard on
/// either side. Port 0 asks the kernel for a free port and never collides.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Parses `process.roles`: "broker", "controller" or "broker,controller".
pub fn parse_process_roles(text: &str) -> Result<Vec<ProcessRole>, String> {
    let mut roles = Vec::new();
    for item in list_items("process.roles", text)? {
        let role = match item {
            "broker" => ProcessRole::Broker,
            "controller" => ProcessRole::Controller,
            other => {
                return Err(format!(
                    "process.roles: unknown role `{other}` (broker, controller)"
                ));
            }
        };
        if roles.contains(&role) {
            return Err(format!("process.roles: `{item}` is listed twice"));
        }
        roles.push(role);
    }
    if roles.is_empty() {
        return Err("process.roles must name broker, controller or both".into());
    }
    Ok(roles)
}

/// Parses `controller.quorum.voters`: "0@127.0.0.1:9093,1@host:9093", resolving
/// host names now.
pub fn parse_voters(text: &str) -> Result<Vec<Voter>, String> {
    const CONFIG: &str = "controller.quorum.voters";
    let mut voters: Vec<Voter> = Vec::new();
    for item in list_items(CONFIG, text)? {
        let (id, address) = item
            .split_once('@')
            .ok_or_else(|| format!("{CONFIG}: `{item}` is not id@host:port"))?;
        let id = id
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("{CONFIG}: `{item}`: `{id}` is not a node.id (0 or more)"))?;
        let addr = resolve_remote(CONFIG, address)?;
        if voters.iter().any(|voter| voter.id.0 == id) {
            return Err(format!("{CONFIG}: node.id {id} is listed twice"));
        }
        voters.push(Voter {
            id: NodeId(id),
            addr,
        });
    }
    Ok(voters)
}

/// Parses `controller.quorum.bootstrap.servers`: "host:port,host:port",
/// resolving host names now.
pub fn parse_bootstrap_servers(text: &str) -> Result<Vec<SocketAddr>, String> {
    list_items("controller.quorum.bootstrap.servers", text)?
        .into_iter()
        .map(|item| resolve_remote("controller.quorum.bootstrap.servers", item))
        .collect()
}

/// Parses `listeners`: "PLAINTEXT://127.0.0.1:9092,CONTROLLER://:9093" (an
/// empty host binds every interface).
pub fn parse_listeners(text: &str) -> Result<Vec<Listener>, String> {
    listener_list("listeners", text)
}

/// Parses `advertised.listeners`: "PLAINTEXT://broker1.example:9092".
pub fn parse_advertised_listeners(text: &str) -> Result<Vec<Listener>, String> {
    listener_list("advertised.listeners", text)
}

/// Parses `controller.listener.names`: "CONTROLLER" or "CONTROLLER,OTHER".
pub fn parse_listener_names(text: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for item in list_items("controller.listener.names", text)? {
        let name = listener_name("controller.listener.names", item)?;
        if names.contains(&name) {
            return Err(format!("controller.listener.names: {name} is listed twice"));
        }
        names.push(name);
    }
    Ok(names)
}

fn listener_list(config: &str, text: &str) -> Result<Vec<Listener>, String> {
    let mut listeners: Vec<Listener> = Vec::new();
    for item in list_items(config, text)? {
        let (name, address) = item
            .split_once("://")
            .ok_or_else(|| format!("{config}: `{item}` is not NAME://host:port"))?;
        let name = listener_name(config, name)?;
        let (host, port) = split_host_port(config, address)?;
        if listeners.iter().any(|l| l.name == name) {
            return Err(format!("{config}: {name} is listed twice"));
        }
        listeners.push(Listener {
            name,
            host: host.to_string(),
            port,
        });
    }
    Ok(listeners)
}

/// A listener name, upper-cased as Kafka normalises them.
fn listener_name(config: &str, name: &str) -> Result<String, String> {
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(format!(
            "{config}: `{name}` is not a listener name (letters, digits, _ and -)"
        ));
    }
    Ok(name.to_ascii_uppercase())
}

/// The trimmed entries of a comma-separated list; an empty text is an empty list.
fn list_items<'a>(config: &str, text: &'a str) -> Result<Vec<&'a str>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = text
        .split(',')
        .take(MAX_LIST_ENTRIES + 1)
        .map(str::trim)
        .collect();
    if items.len() > MAX_LIST_ENTRIES {
        return Err(format!("{config}: more than {MAX_LIST_ENTRIES} entries"));
    }
    if items.iter().any(|item| item.is_empty()) {
        return Err(format!("{config}: an empty entry in `{text}`"));
    }
    Ok(items)
}

/// "host:port", "1.2.3.4:port", "[::1]:port" or ":port" split into host and port.
fn split_host_port<'a>(config: &str, address: &'a str) -> Result<(&'a str, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{config}: `{address}` is not host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{config}: `{address}`: `{port}` is not a port"))?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| format!("{config}: `{address}`: unclosed `[`"))?,
        None if host.contains(':') => {
            return Err(format!(
                "{config}: `{address}`: write an IPv6 address in brackets, [addr]:port"
            ));
        }
        None => host,
    };
    Ok((host, port))
}

/// "host:port" of another node: a host is required, and port 0 means nothing.
fn resolve_remote(config: &str, address: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(config, address)?;
    if host.is_empty() || port == 0 {
        return Err(format!(
            "{config}: `{address}` needs a host and a port other than 0"
        ));
    }
    resolve(config, host, port)
}

/// Addresses one host name may resolve to that are looked at.
const MAX_RESOLVED: usize = 16;

/// The socket address of `host` (empty: every IPv4 interface). A host name that
/// resolves to both families gives its IPv4 address: "localhost" then means
/// 127.0.0.1 whatever order the resolver prefers, as listeners usually bind IPv4.
fn resolve(config: &str, host: &str, port: u16) -> Result<SocketAddr, String> {
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{config}: cannot resolve host `{host}`: {e}"))?
        .take(MAX_RESOLVED)
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{config}: host `{host}` resolves to no address"))
}

/// serde adapters: the list settings are written in the TOML file as Kafka
/// writes them, one comma-separated string.
/// An address that an empty value turns off (`--metrics-listen ""`).
pub fn parse_optional_address(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| format!("{text:?} is not an address (host:port): {e}"))
}

mod kafka_form {
    use super::*;

    fn parsed<'de, D: Deserializer<'de>, T>(
        deserializer: D,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn process_roles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ProcessRole>, D::Error> {
        parsed(d, parse_process_roles)
    }

    pub fn voters<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Voter>, D::Error> {
        parsed(d, parse_voters)
    }

    pub fn bootstrap_servers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
        parsed(d, parse_bootstrap_servers)
    }

    pub fn listeners<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listener>, D::Error> {
        parsed(d, parse_listeners)
    }

    pub fn advertised_listeners<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Listener>, D::Error> {
        parsed(d, parse_advertised_listeners)
    }

    pub fn listener_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        parsed(d, parse_listener_names)
    }

    pub fn optional_address<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        parsed(d, parse_optional_address)
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

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// A config built as `serve` builds it: TOML, then the listeners resolved.
    fn resolved(toml_text: &str) -> Result<BrokerConfig, String> {
        let mut config: BrokerConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        config.resolve_listeners(None)?;
        Ok(config)
    }

    fn refused(toml_text: &str) -> String {
        match resolved(toml_text).and_then(|config| config.validate()) {
            Ok(()) => panic!("accepted: {toml_text}"),
            Err(error) => error,
        }
    }

    #[test]
    fn the_default_is_a_single_combined_node() {
        let config = BrokerConfig::default();
        assert!(config.is_broker() && config.is_controller());
        assert!(config.is_single_node());
        assert_eq!(config.node(), NodeId(0));
        assert_eq!(
            config.quorum_voters(),
            vec![(NodeId(0), addr("127.0.0.1:9092"))]
        );
        assert_eq!(config.controller_listen, None);
        assert_eq!(config.advertised(), ("127.0.0.1".to_string(), 9092));
        assert_eq!(config.broker_session_timeout_ms, 9_000);
        assert_eq!(config.broker_heartbeat_interval_ms, 2_000);
        assert_eq!(config.default_replication_factor, 1);

        let from_listen = resolved("listen = \"127.0.0.2:19092\"").unwrap();
        assert_eq!(from_listen.advertised(), ("127.0.0.2".to_string(), 19092));
        assert_eq!(
            from_listen.quorum_voters(),
            vec![(NodeId(0), addr("127.0.0.2:19092"))]
        );
        from_listen.validate().unwrap();
    }

    #[test]
    fn parses_process_roles() {
        use ProcessRole::{Broker, Controller};
        assert_eq!(
            parse_process_roles("broker,controller").unwrap(),
            [Broker, Controller]
        );
        assert_eq!(parse_process_roles(" controller ").unwrap(), [Controller]);
        assert_eq!(
            parse_process_roles("controller, broker").unwrap(),
            [Controller, Broker]
        );
        for (bad, expected) in [
            ("", "must name"),
            ("brokers", "unknown role `brokers`"),
            ("broker,broker", "twice"),
            ("broker,", "empty entry"),
        ] {
            let error = parse_process_roles(bad).unwrap_err();
            assert!(
                error.starts_with("process.roles") && error.contains(expected),
                "{error}"
            );
        }
    }

    #[test]
    fn parses_and_resolves_quorum_voters() {
        let voters = parse_voters("0@127.0.0.1:9093, 1@localhost:9094,2@[::1]:9095").unwrap();
        assert_eq!(voters.len(), 3);
        assert_eq!(
            voters[0],
            Voter {
                id: NodeId(0),
                addr: addr("127.0.0.1:9093")
            }
        );
        assert_eq!(voters[1].id, NodeId(1));
        assert!(voters[1].addr.ip().is_loopback() && voters[1].addr.port() == 9094);
        assert_eq!(voters[2].addr, addr("[::1]:9095"));
        assert!(parse_voters("").unwrap().is_empty());
        for (bad, expected) in [
            ("127.0.0.1:9093", "is not id@host:port"),
            ("x@127.0.0.1:9093", "`x` is not a node.id"),
            ("-1@127.0.0.1:9093", "`-1` is not a node.id"),
            ("0@127.0.0.1", "is not host:port"),
            ("0@127.0.0.1:99999", "is not a port"),
            ("0@:9093", "needs a host"),
            ("0@127.0.0.1:0", "needs a host"),
            ("0@::1:9093", "in brackets"),
            (
                "0@127.0.0.1:9093,0@127.0.0.2:9093",
                "node.id 0 is listed twice",
            ),
            (
                "0@no-such-host.invalid:9093",
                "cannot resolve host `no-such-host.invalid`",
            ),
        ] {
            let error = parse_voters(bad).unwrap_err();
            assert!(
                error.starts_with("controller.quorum.voters: ") && error.contains(expected),
                "{bad}: {error}"
            );
        }
        let too_many = vec!["0@127.0.0.1:1"; MAX_LIST_ENTRIES + 1].join(",");
        assert!(parse_voters(&too_many).unwrap_err().contains("more than"));
    }

    #[test]
    fn parses_bootstrap_servers_and_listener_names() {
        assert_eq!(
            parse_bootstrap_servers("127.0.0.1:9093,127.0.0.2:9093").unwrap(),
            [addr("127.0.0.1:9093"), addr("127.0.0.2:9093")]
        );
        let error = parse_bootstrap_servers("127.0.0.1").unwrap_err();
        assert!(
            error.starts_with("controller.quorum.bootstrap.servers: "),
            "{error}"
        );
        assert_eq!(
            parse_listener_names("controller, raft_2").unwrap(),
            ["CONTROLLER", "RAFT_2"]
        );
        assert!(parse_listener_names("A,a").unwrap_err().contains("twice"));
        assert!(
            parse_listener_names("A B")
                .unwrap_err()
                .contains("not a listener name")
        );
    }

    #[test]
    fn parses_listeners() {
        let listeners =
            parse_listeners("PLAINTEXT://127.0.0.1:9092,controller://:9093,V6://[::]:9094")
                .unwrap();
        assert_eq!(
            listeners,
            [
                Listener {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092
                },
                Listener {
                    name: "CONTROLLER".into(),
                    host: String::new(),
                    port: 9093
                },
                Listener {
                    name: "V6".into(),
                    host: "::".into(),
                    port: 9094
                },
            ]
        );
        for (bad, expected) in [
            ("127.0.0.1:9092", "NAME://host:port"),
            ("://127.0.0.1:9092", "not a listener name"),
            ("A://127.0.0.1:9092,a://127.0.0.1:9093", "A is listed twice"),
            ("A://127.0.0.1", "not host:port"),
        ] {
            let error = parse_listeners(bad).unwrap_err();
            assert!(
                error.starts_with("listeners: ") && error.contains(expected),
                "{error}"
            );
        }
        let error = parse_advertised_listeners("x").unwrap_err();
        assert!(error.starts_with("advertised.listeners: "), "{error}");
    }

    const THREE_VOTERS: &str =
        "controller_quorum_voters = \"0@127.0.0.1:9093,1@127.0.0.1:9193,2@127.0.0.1:9293\"\n";

    #[test]
    fn a_combined_cluster_node_resolves_its_listeners() {
        let config = resolved(&format!(
            "node_id = 1\n{THREE_VOTERS}\
             listeners = \"PLAINTEXT://:9192,CONTROLLER://127.0.0.1:9193\"\n\
             advertised_listeners = \"PLAINTEXT://broker1.example:19192\"\n\
             broker_rack = \"rack-a\"\n"
        ))
        .unwrap();
        config.validate().unwrap();
        assert!(!config.is_single_node());
        assert_eq!(config.listen, addr("0.0.0.0:9192"));
        assert_eq!(config.controller_listen, Some(addr("127.0.0.1:9193")));
        assert_eq!(config.advertised(), ("broker1.example".to_string(), 19192));
        assert_eq!(config.broker_rack.as_deref(), Some("rack-a"));
        assert_eq!(
            config.quorum_voters(),
            [
                (NodeId(0), addr("127.0.0.1:9093")),
                (NodeId(1), addr("127.0.0.1:9193")),
                (NodeId(2), addr("127.0.0.1:9293")),
            ]
        );
    }

    #[test]
    fn the_listen_flag_wins_and_advertised_follows_it() {
        let mut config: BrokerConfig = toml::from_str(&format!(
            "node_id = 1\n{THREE_VOTERS}listeners = \"PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193\"\n"
        ))
        .unwrap();
        config.resolve_listeners(None).unwrap();
        assert_eq!(config.advertised(), ("127.0.0.1".to_string(), 9192));
        config
            .resolve_listeners(Some(addr("127.0.0.5:7000")))
            .unwrap();
        assert_eq!(config.listen, addr("127.0.0.5:7000"));
        assert_eq!(config.advertised(), ("127.0.0.5".to_string(), 7000));
        assert_eq!(config.controller_listen, Some(addr("127.0.0.1:9193")));
        config.validate().unwrap();
    }

    #[test]
    fn broker_only_and_controller_only_nodes() {
        let broker = resolved(
            "process_roles = \"broker\"\nnode_id = 4\n\
             controller_quorum_bootstrap_servers = \"127.0.0.1:9093\"\n\
             listeners = \"PLAINTEXT://127.0.0.1:9492\"\n",
        )
        .unwrap();
        broker.validate().unwrap();
        assert!(broker.is_broker() && !broker.is_controller() && !broker.is_single_node());
        assert_eq!(broker.controller_listen, None);

        let controller = resolved(&format!(
            "process_roles = \"controller\"\nnode_id = 2\n{THREE_VOTERS}\
             listeners = \"CONTROLLER://127.0.0.1:9293\"\n"
        ))
        .unwrap();
        controller.validate().unwrap();
        assert!(!controller.is_broker() && controller.is_controller());
    }

    #[test]
    fn validation_names_the_kafka_config() {
        let cluster = |extra: &str| {
            format!(
                "node_id = 1\n{THREE_VOTERS}listeners = \"PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193\"\n{extra}"
            )
        };
        for (toml_text, expected) in [
            ("node_id = -1".to_string(), "node.id must be 0 or more"),
            (
                "process_roles = \"broker\"".to_string(),
                "a broker-only node needs controller.quorum.voters or controller.quorum.bootstrap.servers",
            ),
            (
                "process_roles = \"controller\"".to_string(),
                "a controller-only node needs controller.quorum.voters",
            ),
            (
                "listeners = \"PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\""
                    .to_string(),
                "the controller listener 127.0.0.1:9093 would not be used",
            ),
            (
                format!(
                    "node_id = 7\n{THREE_VOTERS}listeners = \"PLAINTEXT://:9792,CONTROLLER://:9793\""
                ),
                "node.id 7 is a controller (process.roles=broker,controller) but not one of controller.quorum.voters",
            ),
            (
                "controller_quorum_bootstrap_servers = \"127.0.0.1:9093\"".to_string(),
                "controller.quorum.bootstrap.servers alone is for broker-only nodes",
            ),
            (
                format!("node_id = 1\n{THREE_VOTERS}listeners = \"PLAINTEXT://127.0.0.1:9192\""),
                "a controller needs a controller listener",
            ),
            (
                format!(
                    "node_id = 1\n{THREE_VOTERS}listeners = \"PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9999\""
                ),
                "controller.quorum.voters lists node.id 1 at 127.0.0.1:9193, but its controller listener binds 127.0.0.1:9999",
            ),
            (
                format!(
                    "node_id = 1\n{THREE_VOTERS}listeners = \"PLAINTEXT://:9193,CONTROLLER://127.0.0.1:9193\""
                ),
                "the controller listener 127.0.0.1:9193 must differ from the broker listener 0.0.0.0:9193",
            ),
            (
                format!(
                    "process_roles = \"broker\"\nnode_id = 5\n{THREE_VOTERS}listeners = \"PLAINTEXT://:9592,CONTROLLER://:9593\""
                ),
                "process.roles=broker: listeners must not contain a controller listener",
            ),
            (
                format!(
                    "process_roles = \"controller\"\nnode_id = 1\n{THREE_VOTERS}listeners = \"PLAINTEXT://:9192,CONTROLLER://127.0.0.1:9193\""
                ),
                "process.roles=controller: listeners must only contain controller listeners",
            ),
            (
                format!(
                    "node_id = 1\n{THREE_VOTERS}listeners = \"A://:9192,B://:9194,CONTROLLER://127.0.0.1:9193\""
                ),
                "listeners: A and B are both broker listeners",
            ),
            (
                cluster("controller_listener_names = \"\""),
                "controller.listener.names must name",
            ),
            (
                cluster("broker_session_timeout_ms = 0"),
                "broker.session.timeout.ms must be at least 1",
            ),
            (
                cluster("controller_quorum_fetch_timeout_ms = 0"),
                "controller.quorum.fetch.timeout.ms must be at least 1",
            ),
            (
                cluster("controller_quorum_election_timeout_ms = 0"),
                "controller.quorum.election.timeout.ms must be at least 1",
            ),
            (
                cluster("broker_heartbeat_interval_ms = 9000"),
                "broker.heartbeat.interval.ms (9000) must be less than broker.session.timeout.ms (9000)",
            ),
            (
                cluster("default_replication_factor = 0"),
                "default.replication.factor must be at least 1",
            ),
            (
                cluster("broker_rack = \" \""),
                "broker.rack must not be empty",
            ),
            (
                cluster("advertised_listeners = \"OTHER://host:1\""),
                "advertised.listeners: OTHER is not one of the listeners (PLAINTEXT,CONTROLLER)",
            ),
            (
                cluster("advertised_listeners = \"PLAINTEXT://0.0.0.0:9192\""),
                "advertised.listeners: PLAINTEXT://0.0.0.0:9192 is not an address clients can connect to",
            ),
            (
                cluster("advertised_listeners = \"CONTROLLER://host:9193\""),
                "advertised.listeners: CONTROLLER is a controller listener",
            ),
            (
                "advertised_listeners = \"EXTERNAL://host:9092\"".to_string(),
                "advertised.listeners: EXTERNAL is not one of the listeners (PLAINTEXT)",
            ),
        ] {
            let error = refused(&toml_text);
            assert!(error.contains(expected), "{toml_text}: {error}");
        }
        resolved(&cluster("")).unwrap().validate().unwrap();
    }

    #[test]
    fn a_file_may_not_set_both_listen_and_listeners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9092\"\nlisteners = \"PLAINTEXT://127.0.0.1:9092\"\n",
        )
        .unwrap();
        let error = BrokerConfig::from_file(&path).unwrap_err();
        assert!(error.contains("either `listen` or `listeners`"), "{error}");

        std::fs::write(
            &path,
            "listeners = \"PLAINTEXT://127.0.0.1:9392\"\nadvertised_listeners = \"PLAINTEXT://b3.example:9392\"\n",
        )
        .unwrap();
        let config = BrokerConfig::from_file(&path).unwrap();
        assert_eq!(config.listen, addr("127.0.0.1:9392"));
        assert_eq!(config.advertised(), ("b3.example".to_string(), 9392));

        std::fs::write(&path, "controller_quorum_voters = \"0@\"\n").unwrap();
        let error = BrokerConfig::from_file(&path).unwrap_err();
        assert!(error.contains("controller.quorum.voters: "), "{error}");
    }
}
