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
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use crate::broker::{answers_api_versions, released, reserve_port, wait_timeout};
use crate::command::run_bounded;
use crate::kafka::TestContext;
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
}

pub struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
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
                }
            })
            .collect();
        let cluster = Cluster { dir, nodes };
        for (node, cluster_id) in cluster_ids.iter().enumerate() {
            fs::create_dir_all(cluster.data_dir(node)).expect("create a node's data dir");
            cluster.format(node, cluster_id);
        }
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
        let _ = child.kill();
        let _ = child.wait();
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
            .env("RUST_BACKTRACE", "1")
            // The tests read the quorum-leader line, logged at info.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a node's log handle"))
            .stderr(log);
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
