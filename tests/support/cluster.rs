//! Runs several real `sluice` processes on 127.0.0.1 as one cluster (combined
//! broker + controller nodes) for integration tests.
//!
//! Include it after the harnesses it builds on:
//! `#[path = "support/broker.rs"] mod broker;`
//! `#[path = "support/command.rs"] mod command;`
//! `#[path = "support/kafka.rs"] mod kafka;`
//! `#[path = "support/wire.rs"] mod wire;`
//! `#[path = "support/cluster.rs"] mod cluster;`
//!
//! Node `n` has node id `n`, a broker port and a controller port (both reserved
//! for the cluster's lifetime, as [`crate::broker::reserve_port`] explains), and a
//! directory `node-n/` in the cluster's temporary directory holding its data
//! directory and its log (stdout and stderr of every start, each start preceded
//! by a marker line). Every node is formatted with `sluice format` before its
//! first start. Nodes are killed when the [`Cluster`] is dropped; if the test is
//! panicking then, the tail of every node's log is printed.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use crate::broker::{answers_api_versions, released, reserve_port, wait_timeout};
use crate::command::run_bounded;
use crate::kafka::{TestContext, admin_options};
use crate::wire::Wire;

/// How long a node may take to answer ApiVersions after it was spawned. A node
/// may wait for the quorum before it serves, so this covers an election.
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to exit after SIGTERM (controlled shutdown included).
pub const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// `broker.session.timeout.ms` of every node: short, so fencing tests are quick.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(3000);
/// `broker.heartbeat.interval.ms` of every node.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// `num.partitions` of every node.
pub const NUM_PARTITIONS: i32 = 3;
/// `replica.lag.time.max.ms` of every node: short, so that a follower that
/// stopped fetching leaves the ISR within a test's patience.
pub const REPLICA_LAG_TIME_MAX: Duration = Duration::from_millis(3000);
/// What a node logs (with `leader=<id>`) when it learns who leads the metadata
/// quorum: the only way to find the active controller, since Metadata's and
/// DescribeCluster's `controller_id` name a random live broker, as in KRaft.
pub const QUORUM_LEADER_LINE: &str = "metadata quorum leader";
/// How long a `sluice format` or `sluice random-cluster-id` may run.
const ADMIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of each node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 400;
/// Pause between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Bound on creating a topic and on its partitions getting leaders everywhere.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one raw Metadata call to one node (a paused node never answers).
pub const METADATA_CALL_TIMEOUT: Duration = Duration::from_secs(2);

struct Node {
    broker_port: u16,
    controller_port: u16,
    /// Keep both ports bound (SO_REUSEPORT, not listening) while the cluster
    /// lives, so no other test picks them between this node's starts.
    _reservations: [std::os::fd::OwnedFd; 2],
    child: Option<Child>,
    starts: u32,
    /// `process.roles=broker`: not a voter, no controller listener.
    broker_only: bool,
    /// Sent SIGSTOP and not SIGCONT since.
    paused: bool,
    /// The group id the node runs with, if the cluster is isolatable: what a
    /// [`NetworkPartition`] tells the node's sockets apart by.
    gid: Option<u32>,
}

pub struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    /// Extra `SLUICE_*` settings every node runs with.
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Formats `nodes` nodes with one fresh cluster id, starts them all and waits
    /// until each answers ApiVersions.
    pub fn start(nodes: usize) -> Cluster {
        let cluster_id = random_cluster_id();
        let mut cluster = Cluster::formatted(&vec![cluster_id; nodes]);
        cluster.start_all();
        cluster
    }

    /// A cluster of `cluster_ids.len()` nodes, node `n` formatted with
    /// `cluster_ids[n]`, none of them running yet.
    pub fn formatted(cluster_ids: &[String]) -> Cluster {
        assert!(!cluster_ids.is_empty(), "a cluster has at least one node");
        let dir = tempfile::Builder::new()
            .prefix("sluice-cluster-")
            .tempdir()
            .expect("create the cluster's temp dir");
        let nodes = cluster_ids
            .iter()
            .map(|_| {
                let (broker_port, broker_reservation) = reserve_port();
                let (controller_port, controller_reservation) = reserve_port();
                Node {
                    broker_port,
                    controller_port,
                    _reservations: [broker_reservation, controller_reservation],
                    child: None,
                    starts: 0,
                    broker_only: false,
                    paused: false,
                    gid: None,
                }
            })
            .collect();
        let cluster = Cluster {
            dir,
            nodes,
            env: Vec::new(),
        };
        for (node, cluster_id) in cluster_ids.iter().enumerate() {
            fs::create_dir_all(cluster.data_dir(node)).expect("create a node's data dir");
            cluster.format(node, cluster_id);
        }
        cluster
    }

    /// As [`Cluster::start`], but each node runs with a group id of its own
    /// (as root, its user stays root) so that [`Cluster::isolate`] can cut it off
    /// from the others with packet filter rules. Needs root.
    pub fn start_isolatable(nodes: usize) -> Cluster {
        assert!(is_root(), "an isolatable cluster needs root (setgid)");
        let cluster_id = random_cluster_id();
        let mut cluster = Cluster::formatted(&vec![cluster_id; nodes]);
        let base = isolation_gid_base();
        for (index, node) in cluster.nodes.iter_mut().enumerate() {
            node.gid = Some(base + u32::try_from(index).expect("node index fits a gid"));
        }
        cluster.start_all();
        cluster
    }

    /// Makes the last `count` nodes broker-only (`process.roles=broker`): they
    /// follow the metadata of the other nodes' quorum. Before any node starts.
    pub fn with_broker_only(mut self, count: usize) -> Cluster {
        assert!(count < self.nodes.len(), "at least one controller");
        assert!(self.nodes.iter().all(|n| n.starts == 0), "before any start");
        let first = self.nodes.len() - count;
        for node in &mut self.nodes[first..] {
            node.broker_only = true;
        }
        self
    }

    /// Runs every node with the environment variable `key` set to `value`
    /// (a `SLUICE_*` setting). Before any node starts.
    pub fn with_env(mut self, key: &str, value: &str) -> Cluster {
        assert!(self.nodes.iter().all(|n| n.starts == 0), "before any start");
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Number of nodes, running or not.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Spawns every node that is not running, then waits until each answers
    /// ApiVersions. All are spawned first: a node may not serve before a quorum
    /// of controllers is up.
    pub fn start_all(&mut self) {
        for node in 0..self.nodes.len() {
            if self.nodes[node].child.is_none() {
                self.spawn(node);
            }
        }
        for node in 0..self.nodes.len() {
            self.wait_until_serving(node);
        }
    }

    /// The node id of node `node` (its index).
    pub fn node_id(&self, node: usize) -> i32 {
        assert!(node < self.nodes.len(), "no node {node}");
        i32::try_from(node).expect("node index fits a node id")
    }

    pub fn broker_port(&self, node: usize) -> u16 {
        self.nodes[node].broker_port
    }

    pub fn controller_port(&self, node: usize) -> u16 {
        self.nodes[node].controller_port
    }

    /// `127.0.0.1:PORT` of node `node`'s broker listener alone.
    pub fn node_bootstrap(&self, node: usize) -> String {
        format!("127.0.0.1:{}", self.broker_port(node))
    }

    /// Every node's broker listener, comma-separated, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        (0..self.nodes.len())
            .map(|node| self.node_bootstrap(node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `--controller-quorum-voters`: every node but the broker-only ones.
    pub fn quorum_voters(&self) -> String {
        (0..self.nodes.len())
            .filter(|&node| !self.nodes[node].broker_only)
            .map(|node| format!("{node}@127.0.0.1:{}", self.controller_port(node)))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn data_dir(&self, node: usize) -> PathBuf {
        self.node_dir(node).join("data")
    }

    /// The file node `node` logs to (stdout and stderr of all its starts).
    pub fn log_path(&self, node: usize) -> PathBuf {
        self.node_dir(node).join("log")
    }

    /// Everything node `node` has logged, over all its starts.
    pub fn node_log(&self, node: usize) -> String {
        fs::read(self.log_path(node))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// What node `node` logged since it was last started.
    pub fn node_log_of_last_start(&self, node: usize) -> String {
        let all = self.node_log(node);
        let marker = start_marker(node, self.nodes[node].starts);
        match all.rfind(&marker) {
            Some(at) => all[at + marker.len()..].to_string(),
            None => all,
        }
    }

    pub fn is_running(&self, node: usize) -> bool {
        self.nodes[node].child.is_some()
    }

    /// Kills node `node` with SIGKILL and reaps it.
    pub fn kill(&mut self, node: usize) {
        let mut child = self.nodes[node]
            .child
            .take()
            .unwrap_or_else(|| panic!("node {node} is not running"));
        self.nodes[node].paused = false;
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Freezes node `node` with SIGSTOP: its sockets stay open, it answers
    /// nothing and sends nothing, as a node in a long GC pause or a partition.
    pub fn pause(&mut self, node: usize) {
        assert!(!self.nodes[node].paused, "node {node} is paused already");
        self.signal(node, libc::SIGSTOP);
        self.nodes[node].paused = true;
    }

    /// Lets node `node` run again after [`Cluster::pause`] (SIGCONT).
    pub fn resume(&mut self, node: usize) {
        assert!(self.nodes[node].paused, "node {node} is not paused");
        self.signal(node, libc::SIGCONT);
        self.nodes[node].paused = false;
    }

    pub fn is_paused(&self, node: usize) -> bool {
        self.nodes[node].paused
    }

    /// The process id of the running node `node`.
    pub fn pid(&self, node: usize) -> u32 {
        self.nodes[node]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node {node} is not running"))
            .id()
    }

    fn signal(&self, node: usize, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid(node)).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({signal}) node {node}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Sends SIGTERM to node `node` and waits (bounded) for it to exit; panics
    /// unless it exits with status 0.
    pub fn stop(&mut self, node: usize) {
        let mut child = self.nodes[node]
            .child
            .take()
            .unwrap_or_else(|| panic!("node {node} is not running"));
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
        match wait_timeout(&mut child, NODE_STOP_TIMEOUT) {
            Some(status) => assert!(
                status.success(),
                "node {node} exited with {status} after SIGTERM"
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {node} did not exit within {NODE_STOP_TIMEOUT:?} of SIGTERM");
            }
        }
    }

    /// Starts node `node` again on its data directory and ports and waits until it
    /// answers ApiVersions.
    pub fn restart(&mut self, node: usize) {
        self.spawn(node);
        self.wait_until_serving(node);
    }

    /// Spawns node `node` without waiting for it. Panics if it is running, or if
    /// its ports still accept connections from a previous start.
    pub fn spawn(&mut self, node: usize) {
        assert!(
            self.nodes[node].child.is_none(),
            "node {node} is already running"
        );
        for port in [self.broker_port(node), self.controller_port(node)] {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            assert!(
                released(addr),
                "a listener on {addr} (a previous start's) still accepts {:?} after it exited",
                crate::broker::RELEASE_TIMEOUT
            );
        }
        self.nodes[node].starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(node))
            .expect("open a node's log");
        writeln!(log, "{}", start_marker(node, self.nodes[node].starts))
            .expect("write a node's log");
        let listeners = if self.nodes[node].broker_only {
            format!("PLAINTEXT://127.0.0.1:{}", self.broker_port(node))
        } else {
            format!(
                "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                self.broker_port(node),
                self.controller_port(node)
            )
        };
        let roles = if self.nodes[node].broker_only {
            "broker"
        } else {
            "broker,controller"
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .arg("serve")
            .arg("--node-id")
            .arg(node.to_string())
            .arg("--data-dir")
            .arg(self.data_dir(node))
            .args(["--shards", "1", "--listeners", &listeners])
            .args(["--process-roles", roles])
            .args(["--controller-quorum-voters", &self.quorum_voters()])
            .arg("--broker-session-timeout-ms")
            .arg(SESSION_TIMEOUT.as_millis().to_string())
            .arg("--broker-heartbeat-interval-ms")
            .arg(HEARTBEAT_INTERVAL.as_millis().to_string())
            .arg("--num-partitions")
            .arg(NUM_PARTITIONS.to_string())
            .arg("--replica-lag-time-max-ms")
            .arg(REPLICA_LAG_TIME_MAX.as_millis().to_string())
            // Three nodes on one machine: each its own free port.
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("RUST_BACKTRACE", "1")
            // The tests read the quorum-leader line, logged at info.
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a node's log handle"))
            .stderr(log);
        if let Some(gid) = self.nodes[node].gid {
            command.gid(gid);
        }
        let child = command.spawn().expect("spawn the sluice binary");
        self.nodes[node].child = Some(child);
    }

    /// Waits (bounded) until node `node` answers ApiVersions on its broker port.
    /// Panics if it exits first or does not answer in time (after killing it).
    pub fn wait_until_serving(&mut self, node: usize) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.broker_port(node)));
        let deadline = Instant::now() + NODE_START_TIMEOUT;
        loop {
            let child = self.nodes[node]
                .child
                .as_mut()
                .unwrap_or_else(|| panic!("node {node} was not spawned"));
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.nodes[node].child = None;
                panic!("node {node} exited with {status} before answering ApiVersions on {addr}");
            }
            if answers_api_versions(addr) {
                return;
            }
            if Instant::now() >= deadline {
                self.kill(node);
                panic!(
                    "node {node} did not answer ApiVersions on {addr} within {NODE_START_TIMEOUT:?}"
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits (bounded by `timeout`) for the spawned node `node` to exit, as a node
    /// that refuses to start does, and returns its status. Panics (after killing
    /// it) if it is still running at the deadline.
    pub fn wait_for_exit(&mut self, node: usize, timeout: Duration) -> ExitStatus {
        let mut child = self.nodes[node]
            .child
            .take()
            .unwrap_or_else(|| panic!("node {node} was not spawned"));
        match wait_timeout(&mut child, timeout) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {node} was still running {timeout:?} after it was spawned");
            }
        }
    }

    /// A client configuration bootstrapping from node `node` alone; librdkafka's
    /// logs go to stderr as in [`crate::kafka::client_config`].
    pub fn client_config(&self, node: usize) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.node_bootstrap(node))
            .set("socket.timeout.ms", "10000")
            .set_log_level(RDKafkaLogLevel::Warning);
        if let Ok(contexts) = std::env::var("SLUICE_TEST_RDKAFKA_DEBUG")
            && !contexts.is_empty()
        {
            config
                .set("debug", contexts)
                .set_log_level(RDKafkaLogLevel::Debug);
        }
        config
    }

    /// Polls Metadata (all topics) through an rdkafka client bootstrapped from
    /// node `via` until `check` accepts it, and returns that metadata. librdkafka
    /// may ask any broker it knows, not only `via`: use
    /// [`Cluster::wait_for_node_metadata`] for one node's own view. Panics with
    /// `what` and the last answer (or error) if `timeout` passes first.
    pub fn wait_for_metadata(
        &self,
        via: usize,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Metadata) -> bool,
    ) -> Metadata {
        let client: BaseConsumer<TestContext> = self
            .client_config(via)
            .create_with_context(TestContext)
            .expect("create a metadata client");
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let last = match client.fetch_metadata(None, remaining.max(POLL_INTERVAL)) {
                Ok(metadata) if check(&metadata) => return metadata,
                Ok(metadata) => describe_metadata(&metadata),
                Err(error) => format!("fetch_metadata failed: {error}"),
            };
            assert!(
                Instant::now() < deadline,
                "not within {timeout:?} (via node {via}): {what}\nlast metadata: {last}"
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Node `node`'s own answer to Metadata v12 for all topics, on a raw
    /// connection: this is the only way to be sure which broker answered, and to
    /// read `controller_id`, which librdkafka does not expose.
    pub fn node_metadata(&self, node: usize) -> MetadataResponse {
        let mut wire = Wire::connect(&self.node_bootstrap(node));
        let request = MetadataRequest::default().with_topics(None);
        let (response, _) = wire.call(ApiKey::Metadata, 12, &request);
        response
    }

    /// Polls [`Cluster::node_metadata`] of node `node` until `check` accepts it,
    /// and returns it. Panics with `what` and the last answer if `timeout` passes
    /// first.
    pub fn wait_for_node_metadata(
        &self,
        node: usize,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&MetadataResponse) -> bool,
    ) -> MetadataResponse {
        let deadline = Instant::now() + timeout;
        loop {
            let metadata = self.node_metadata(node);
            if check(&metadata) {
                return metadata;
            }
            assert!(
                Instant::now() < deadline,
                "not within {timeout:?} (node {node}'s own Metadata): {what}\nlast metadata: {metadata:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The quorum leader that node `node` last logged since its last start, if it
    /// logged one (a line with [`QUORUM_LEADER_LINE`] and `leader=<id>`, the id
    /// non-negative).
    pub fn quorum_leader_seen_by(&self, node: usize) -> Option<i32> {
        self.node_log_of_last_start(node)
            .lines()
            .filter(|line| line.contains(QUORUM_LEADER_LINE))
            .filter_map(parse_leader)
            .next_back()
            .filter(|leader| *leader >= 0)
    }

    /// Waits (bounded by `timeout`) until every running node's last logged quorum
    /// leader is the same running node, and returns that node's id.
    pub fn wait_for_quorum_leader(&self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            let running: Vec<usize> = (0..self.nodes.len())
                .filter(|node| self.is_running(*node))
                .collect();
            let views: Vec<(usize, Option<i32>)> = running
                .iter()
                .map(|node| (*node, self.quorum_leader_seen_by(*node)))
                .collect();
            if let Some((_, Some(leader))) = views.first()
                && views.iter().all(|(_, view)| *view == Some(*leader))
                && usize::try_from(*leader).is_ok_and(|l| running.contains(&l))
            {
                return *leader;
            }
            assert!(
                Instant::now() < deadline,
                "the running nodes did not agree on a running quorum leader within {timeout:?} \
                 (each node's last `{QUORUM_LEADER_LINE}` line since its start, as (node, leader)): {views:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The node index of node id `id` (they are equal in this harness).
    pub fn node_index(&self, id: i32) -> usize {
        let node = usize::try_from(id).unwrap_or_else(|_| panic!("no node has id {id}"));
        assert!(node < self.nodes.len(), "no node has id {id}");
        node
    }

    /// Nodes that are running and not paused: those that can answer.
    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&node| self.is_running(node) && !self.is_paused(node))
            .collect()
    }

    /// `bootstrap.servers` listing only the [`Cluster::live_nodes`].
    pub fn live_bootstrap(&self) -> String {
        self.live_nodes()
            .into_iter()
            .map(|node| self.node_bootstrap(node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Creates `topic` through an admin client bootstrapped from the live
    /// nodes, with `replication_factor` replicas of each of its `partitions`
    /// partitions and `configs` as overrides, then waits until every live node's
    /// Metadata gives each partition a leader. Panics if the broker refuses.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[(&str, &str)],
    ) {
        let mut new_topic = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(replication_factor),
        );
        for (key, value) in configs {
            new_topic = new_topic.set(key, value);
        }
        let admin: AdminClient<TestContext> = self
            .client_config(self.live_nodes()[0])
            .set("bootstrap.servers", self.live_bootstrap())
            .create_with_context(TestContext)
            .expect("create an admin client");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime for the admin client");
        let created = runtime
            .block_on(async {
                tokio::time::timeout(
                    ADMIN_TIMEOUT,
                    admin.create_topics(&[new_topic], &admin_options()),
                )
                .await
            })
            .unwrap_or_else(|_| panic!("CreateTopics {topic} answered within {ADMIN_TIMEOUT:?}"))
            .expect("CreateTopics request");
        assert_eq!(
            created,
            vec![Ok(topic.to_string())],
            "create {topic} with {partitions} partitions, replication factor \
             {replication_factor}, configs {configs:?}"
        );
        for partition in 0..partitions {
            self.wait_for_partition(
                topic,
                partition,
                &format!("{topic}/{partition} has a leader on every live node"),
                ADMIN_TIMEOUT,
                |views| {
                    views.len() == self.live_nodes().len()
                        && views.iter().all(|(_, view)| view.leader >= 0)
                },
            );
        }
    }

    /// What node `node`'s own Metadata says of `topic`/`partition`, or `None` if
    /// the node does not answer within [`METADATA_CALL_TIMEOUT`] or does not
    /// know the partition.
    pub fn partition_seen_by(
        &self,
        node: usize,
        topic: &str,
        partition: i32,
    ) -> Option<PartitionView> {
        let mut wire = Wire::try_connect(&self.node_bootstrap(node), METADATA_CALL_TIMEOUT).ok()?;
        let request = MetadataRequest::default().with_topics(None);
        let (response, _): (MetadataResponse, _) =
            wire.try_call(ApiKey::Metadata, 12, &request).ok()?;
        let topic = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|name| name.as_str() == topic))?;
        let state = topic
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)?;
        Some(PartitionView {
            leader: state.leader_id.0,
            leader_epoch: state.leader_epoch,
            replicas: state.replica_nodes.iter().map(|id| id.0).collect(),
            isr: state.isr_nodes.iter().map(|id| id.0).collect(),
        })
    }

    /// Every live node's view of `topic`/`partition`, as (node, view), leaving
    /// out nodes that did not answer.
    pub fn partition_views(&self, topic: &str, partition: i32) -> Vec<(usize, PartitionView)> {
        self.live_nodes()
            .into_iter()
            .filter_map(|node| {
                self.partition_seen_by(node, topic, partition)
                    .map(|view| (node, view))
            })
            .collect()
    }

    /// The newest view of `topic`/`partition` among the live nodes: the one with
    /// the highest leader epoch (a node cut off from the quorum keeps an old one).
    pub fn partition_state(&self, topic: &str, partition: i32) -> Option<PartitionView> {
        self.partition_views(topic, partition)
            .into_iter()
            .map(|(_, view)| view)
            .max_by_key(|view| view.leader_epoch)
    }

    /// The node id leading `topic`/`partition` in the newest view, if any
    /// leads it.
    pub fn partition_leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.partition_state(topic, partition)
            .map(|view| view.leader)
            .filter(|leader| *leader >= 0)
    }

    /// The in-sync replicas of `topic`/`partition` in the newest view.
    pub fn partition_isr(&self, topic: &str, partition: i32) -> Vec<i32> {
        self.partition_state(topic, partition)
            .map(|view| view.isr)
            .unwrap_or_default()
    }

    /// Polls every live node's view of `topic`/`partition` until `check`
    /// accepts the views, and returns them. Panics with `what` and the last
    /// views if `timeout` passes first.
    pub fn wait_for_partition(
        &self,
        topic: &str,
        partition: i32,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&[(usize, PartitionView)]) -> bool,
    ) -> Vec<(usize, PartitionView)> {
        let deadline = Instant::now() + timeout;
        loop {
            let views = self.partition_views(topic, partition);
            if check(&views) {
                return views;
            }
            assert!(
                Instant::now() < deadline,
                "not within {timeout:?}: {what}\nlast views of {topic}/{partition} as (node, view): {views:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until every live node says `topic`/`partition` has `expected_len`
    /// in-sync replicas and one leader, the same on all; returns the ISR.
    pub fn wait_for_isr(
        &self,
        topic: &str,
        partition: i32,
        expected_len: usize,
        timeout: Duration,
    ) -> Vec<i32> {
        let live = self.live_nodes().len();
        let views = self.wait_for_partition(
            topic,
            partition,
            &format!("every live node lists {expected_len} in-sync replicas and one leader"),
            timeout,
            |views| {
                views.len() == live
                    && views.iter().all(|(_, view)| {
                        view.isr.len() == expected_len
                            && view.leader >= 0
                            && view.leader == views[0].1.leader
                    })
            },
        );
        let mut isr = views[0].1.isr.clone();
        isr.sort_unstable();
        isr
    }

    /// Waits until every live node names the same leader for `topic`/`partition`
    /// and `check` accepts it; returns that leader's node id.
    pub fn wait_for_partition_leader(
        &self,
        topic: &str,
        partition: i32,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(i32) -> bool,
    ) -> i32 {
        let live = self.live_nodes().len();
        let views = self.wait_for_partition(topic, partition, what, timeout, |views| {
            views.len() == live
                && views
                    .iter()
                    .all(|(_, view)| view.leader >= 0 && view.leader == views[0].1.leader)
                && check(views[0].1.leader)
        });
        views[0].1.leader
    }

    /// Cuts node `node` off from every other node, in both directions, broker
    /// and controller ports alike, while clients (the test process) still reach
    /// it and the others: nftables rules drop the packets that a node's sockets
    /// send to another node's ports, told apart by the group id each node runs
    /// with ([`Cluster::start_isolatable`]). The returned guard heals the
    /// partition when dropped, a panicking test included.
    pub fn isolate(&self, node: usize) -> NetworkPartition {
        let gid = |n: usize| {
            self.nodes[n]
                .gid
                .expect("isolate needs a cluster from Cluster::start_isolatable")
        };
        let others: Vec<usize> = (0..self.nodes.len()).filter(|&n| n != node).collect();
        let ports = |nodes: &[usize]| {
            nodes
                .iter()
                .flat_map(|&n| [self.broker_port(n), self.controller_port(n)])
                .map(|port| port.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let other_gids = others
            .iter()
            .map(|&n| gid(n).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let table = format!("sluice_test_{}_{}", std::process::id(), gid(node));
        let rules = format!(
            "table inet {table} {{\n\
             \tchain output {{\n\
             \t\ttype filter hook output priority 0; policy accept;\n\
             \t\tmeta skgid {isolated} tcp dport {{ {other_ports} }} drop\n\
             \t\tmeta skgid {{ {other_gids} }} tcp dport {{ {isolated_ports} }} drop\n\
             \t}}\n\
             }}\n",
            isolated = gid(node),
            other_ports = ports(&others),
            isolated_ports = ports(&[node]),
        );
        nft(&["-f", "-"], Some(&rules)).unwrap_or_else(|error| panic!("{error}"));
        NetworkPartition { table }
    }

    fn node_dir(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("node-{node}"))
    }

    /// `sluice format --cluster-id ID --node-id N --data-dir D`; panics unless it
    /// succeeds.
    fn format(&self, node: usize, cluster_id: &str) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .args(["format", "--cluster-id", cluster_id, "--node-id"])
            .arg(node.to_string())
            .arg("--data-dir")
            .arg(self.data_dir(node));
        let what = format!("sluice format (node {node})");
        let finished = run_bounded(&what, command, ADMIN_COMMAND_TIMEOUT);
        assert!(finished.status.success(), "{finished}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if thread::panicking() {
            for node in 0..self.nodes.len() {
                let log = self.node_log(node);
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                eprintln!(
                    "---- node {node} log (last {} lines) ----\n{}\n---- end of node {node} log ----",
                    tail.len(),
                    tail.join("\n")
                );
            }
        }
    }
}

/// A fresh cluster id from `sluice random-cluster-id`.
pub fn random_cluster_id() -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.arg("random-cluster-id");
    let finished = run_bounded("sluice random-cluster-id", command, ADMIN_COMMAND_TIMEOUT);
    assert!(finished.status.success(), "{finished}");
    let id = finished.stdout.trim().to_string();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "random-cluster-id printed one id: {finished}"
    );
    id
}

/// A short account of rdkafka metadata for failure messages: brokers, and per
/// topic its error and each partition's leader and error.
pub fn describe_metadata(metadata: &Metadata) -> String {
    let brokers: Vec<String> = metadata
        .brokers()
        .iter()
        .map(|b| format!("{}@{}:{}", b.id(), b.host(), b.port()))
        .collect();
    let topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| {
            let partitions: Vec<String> = t
                .partitions()
                .iter()
                .map(|p| format!("{}:leader={}:{:?}", p.id(), p.leader(), p.error()))
                .collect();
            format!("{} {:?} [{}]", t.name(), t.error(), partitions.join(" "))
        })
        .collect();
    format!(
        "brokers [{}] topics {{{}}}",
        brokers.join(" "),
        topics.join("; ")
    )
}

/// One node's view of a partition in its Metadata answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// nftables rules isolating one node ([`Cluster::isolate`]); removed on drop.
pub struct NetworkPartition {
    table: String,
}

impl NetworkPartition {
    /// Removes the rules now.
    pub fn heal(self) {}
}

impl Drop for NetworkPartition {
    fn drop(&mut self) {
        if let Err(error) = nft(&["delete", "table", "inet", &self.table], None) {
            eprintln!("healing the network partition: {error}");
        }
    }
}

/// Whether [`Cluster::isolate`] can work here: root, and an `nft` that runs.
pub fn can_isolate() -> bool {
    is_root() && nft(&["list", "tables"], None).is_ok()
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A range of group ids of its own for each isolatable cluster: tests of one
/// binary run in parallel, and several test binaries may run at once.
fn isolation_gid_base() -> u32 {
    static CLUSTERS: AtomicU32 = AtomicU32::new(0);
    let cluster = CLUSTERS.fetch_add(1, Ordering::SeqCst) % 100;
    200_000 + (std::process::id() % 10_000) * 1_000 + cluster * 10
}

/// Runs `nft` with `args` (and `input` on its stdin), bounded in time.
fn nft(args: &[&str], input: Option<&str>) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("run nft {args:?}: {error}"))?;
    let mut stdin = child.stdin.take().expect("nft's stdin");
    stdin
        .write_all(input.unwrap_or_default().as_bytes())
        .map_err(|error| format!("write nft's input: {error}"))?;
    drop(stdin);
    let status = wait_timeout(&mut child, ADMIN_COMMAND_TIMEOUT).ok_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        format!("nft {args:?} did not finish within {ADMIN_COMMAND_TIMEOUT:?}")
    })?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {args:?} exited with {status}: {stderr}\ninput: {input:?}"
        ))
    }
}

fn start_marker(node: usize, start: u32) -> String {
    format!("==== sluice test harness: node {node}, start {start} ====")
}

/// The id in the first `leader=<id>` field of `line`, if it has one (a field of
/// its own: `previous_leader=1` is not it).
fn parse_leader(line: &str) -> Option<i32> {
    line.split(|c: char| c.is_whitespace() || c == ',')
        .find_map(|field| field.strip_prefix("leader="))
        .and_then(|id| id.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::parse_leader;

    #[test]
    fn the_leader_id_is_read_from_a_log_line() {
        let line = "INFO sluice::cluster: metadata quorum leader changed leader=2 term=7";
        assert_eq!(parse_leader(line), Some(2));
        assert_eq!(parse_leader("metadata quorum leader leader=-1"), Some(-1));
        assert_eq!(parse_leader("metadata quorum leader leader=none"), None);
        assert_eq!(parse_leader("metadata quorum leader, no leader yet"), None);
        assert_eq!(parse_leader("leader=12"), Some(12));
        assert_eq!(
            parse_leader("metadata quorum leader previous_leader=1 leader=0"),
            Some(0)
        );
    }
}
