//! Partition replication under faults: real `sluice` clusters on 127.0.0.1,
//! idempotent acks=all producers writing sequenced records to topics with
//! replication factor 3 and `min.insync.replicas=2`, a nemesis that kills,
//! freezes or cuts off brokers, and the checker of `support/checker.rs` reading
//! everything back: no acknowledged record lost, moved, duplicated or reordered.
//!
//! Each test injects faults for `SLUICE_FAULT_SECONDS` seconds (default
//! [`DEFAULT_FAULT_SECONDS`]); set it higher to run them longer by hand.
//! docs/replication.md describes each test.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/checker.rs"]
mod checker;
#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/command.rs"]
mod command;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use checker::{History, Running, Sent, Workload};
use cluster::{Cluster, METADATA_CALL_TIMEOUT, REPLICA_LAG_TIME_MAX, SESSION_TIMEOUT, can_isolate};
use kafka::TestContext;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use sluice::record::builder::{NewRecord, build_batch};
use wire::Wire;

/// One cluster at a time: this machine's two cores do not keep the session
/// timeouts of two clusters of three to five brokers under fault.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

fn one_cluster() -> MutexGuard<'static, ()> {
    ONE_CLUSTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seconds of faults per test unless `SLUICE_FAULT_SECONDS` says otherwise.
const DEFAULT_FAULT_SECONDS: u64 = 6;
/// Bound on a cluster-wide change: an election, a fenced broker's leaderships
/// moving, a restarted broker catching up and rejoining the ISR.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);
/// Acknowledgements that prove the cluster accepts writes again.
const PROGRESS: usize = 20;
/// How long a killed broker stays down before it is restarted.
const DOWN_TIME: Duration = Duration::from_millis(1000);
/// Partitions of the topics the checker writes to.
const PARTITIONS: i32 = 3;
/// The topic configuration every replicated test uses.
const MIN_INSYNC_2: [(&str, &str); 1] = [("min.insync.replicas", "2")];
/// Producer id of the records tests send by hand (not a checker producer).
const HAND_PRODUCER: usize = 1000;
/// Kafka's NOT_LEADER_OR_FOLLOWER.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn fault_duration() -> Duration {
    let seconds = std::env::var("SLUICE_FAULT_SECONDS")
        .ok()
        .map(|value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("SLUICE_FAULT_SECONDS={value:?} is not a number"))
        })
        .unwrap_or(DEFAULT_FAULT_SECONDS);
    Duration::from_secs(seconds)
}

/// Producers that run until the test finishes them.
fn workload() -> Workload {
    Workload {
        producers: 3,
        partitions: PARTITIONS,
        duration: Duration::from_secs(3600),
        rate: 100,
    }
}

/// An RF3 topic with `min.insync.replicas=2` whose every partition has all
/// three replicas in sync.
fn replicated_topic(cluster: &Cluster, topic: &str, partitions: i32) {
    cluster.create_topic(topic, partitions, 3, &MIN_INSYNC_2);
    for partition in 0..partitions {
        cluster.wait_for_isr(topic, partition, 3, CLUSTER_TIMEOUT);
    }
}

fn wait_for_full_isr(cluster: &Cluster, topic: &str, partitions: i32) {
    for partition in 0..partitions {
        cluster.wait_for_isr(topic, partition, 3, CLUSTER_TIMEOUT);
    }
}

fn assert_progress(running: &Running, when: &str) {
    assert!(
        running.wait_for_progress(PROGRESS, CLUSTER_TIMEOUT),
        "{PROGRESS} more records acknowledged within {CLUSTER_TIMEOUT:?} {when} (acked so far: {})",
        running.acked()
    );
}

/// Runs the checker's workload on an RF3 topic while `nemesis` injects one
/// round of faults per call (the round number is its argument) for
/// [`fault_duration`]; then brings every node back, waits for the ISRs to be
/// whole and checks the history. Returns the rounds survived.
fn survive(
    cluster: &mut Cluster,
    topic: &str,
    mut nemesis: impl FnMut(&mut Cluster, &Running, usize),
) -> usize {
    replicated_topic(cluster, topic, PARTITIONS);
    let running = checker::start(&cluster.bootstrap(), topic, &workload());
    assert_progress(&running, "before any fault");
    let end = Instant::now() + fault_duration();
    let mut rounds = 0;
    while Instant::now() < end {
        nemesis(cluster, &running, rounds);
        rounds += 1;
    }
    for node in 0..cluster.len() {
        if cluster.is_paused(node) {
            cluster.resume(node);
        }
        if !cluster.is_running(node) {
            cluster.restart(node);
        }
    }
    wait_for_full_isr(cluster, topic, PARTITIONS);
    assert_progress(&running, "after the faults");
    let history = running.finish();
    let report = checker::read_and_check(&cluster.bootstrap(), topic, PARTITIONS, &history);
    eprintln!("{topic}: survived {rounds} rounds of faults");
    report.assert_valid();
    assert!(report.acked > 0, "nothing was acknowledged: {report}");
    rounds
}

/// The node leading `topic`/`partition` now, by every live node's account.
fn leader_node(cluster: &Cluster, topic: &str, partition: i32) -> usize {
    let leader = cluster.wait_for_partition_leader(
        topic,
        partition,
        "the live nodes agree on a leader",
        CLUSTER_TIMEOUT,
        |_| true,
    );
    cluster.node_index(leader)
}

/// Waits until every live node names a leader of `topic`/`partition` other
/// than node `old`.
fn wait_for_new_leader(cluster: &Cluster, topic: &str, partition: i32, old: usize) -> usize {
    let old_id = cluster.node_id(old);
    let leader = cluster.wait_for_partition_leader(
        topic,
        partition,
        &format!("a leader other than node {old}"),
        CLUSTER_TIMEOUT,
        |leader| leader != old_id,
    );
    cluster.node_index(leader)
}

#[test]
fn the_checker_passes_on_an_unreplicated_topic_without_faults() {
    let _one = one_cluster();
    let cluster = Cluster::start(3);
    let topic = "checker-rf1";
    cluster.create_topic(topic, PARTITIONS, 1, &[]);
    let workload = Workload {
        duration: Duration::from_secs(3),
        ..workload()
    };
    let running = checker::start(&cluster.bootstrap(), topic, &workload);
    assert_progress(&running, "on a healthy cluster");
    while !running.done() {
        thread::sleep(Duration::from_millis(100));
    }
    let history = running.finish();
    assert!(history.failed.is_empty(), "failures: {:?}", history.failed);
    let report = checker::read_and_check(&cluster.bootstrap(), topic, PARTITIONS, &history);
    report.assert_valid();
    assert_eq!(report.read, report.acked, "{report}");
}

#[test]
fn acks_all_survives_leader_kills() {
    let _one = one_cluster();
    let mut cluster = Cluster::start(3);
    let topic = "leader-kills";
    survive(&mut cluster, topic, |cluster, running, round| {
        let partition = i32::try_from(round).expect("round fits i32") % PARTITIONS;
        let leader = leader_node(cluster, topic, partition);
        cluster.kill(leader);
        wait_for_new_leader(cluster, topic, partition, leader);
        assert_progress(running, &format!("with node {leader}, a leader, killed"));
        thread::sleep(DOWN_TIME);
        cluster.restart(leader);
        wait_for_full_isr(cluster, topic, PARTITIONS);
    });
}

#[test]
fn acks_all_survives_follower_kills_and_pauses() {
    let _one = one_cluster();
    let mut cluster = Cluster::start(3);
    let topic = "follower-faults";
    // A pause beyond the session timeout fences the broker (its leaderships
    // move); a shorter one does not, and it must carry on where it stopped.
    // Every third round moves both pauses on to the next node.
    let long_pause = SESSION_TIMEOUT + Duration::from_secs(2);
    let short_pause = SESSION_TIMEOUT / 3;
    survive(&mut cluster, topic, |cluster, running, round| {
        let partition = i32::try_from(round).expect("round fits i32") % PARTITIONS;
        match round % 3 {
            0 => {
                let leader = leader_node(cluster, topic, partition);
                let follower = (leader + 1) % cluster.len();
                cluster.kill(follower);
                assert_progress(
                    running,
                    &format!("with node {follower}, a follower, killed"),
                );
                thread::sleep(DOWN_TIME);
                cluster.restart(follower);
            }
            1 => {
                let node = (round / 3) % cluster.len();
                cluster.pause(node);
                thread::sleep(long_pause);
                assert_progress(running, &format!("with node {node} paused {long_pause:?}"));
                cluster.resume(node);
            }
            _ => {
                let node = (round / 3) % cluster.len();
                cluster.pause(node);
                thread::sleep(short_pause);
                cluster.resume(node);
                assert_progress(
                    running,
                    &format!("after node {node} paused {short_pause:?}"),
                );
            }
        }
        wait_for_full_isr(cluster, topic, PARTITIONS);
    });
}

#[test]
fn acks_all_survives_the_active_controller_dying() {
    let _one = one_cluster();
    let mut cluster = Cluster::start(3);
    let topic = "controller-kills";
    survive(&mut cluster, topic, |cluster, running, _| {
        let controller = cluster.node_index(cluster.wait_for_quorum_leader(CLUSTER_TIMEOUT));
        cluster.kill(controller);
        let successor = cluster.wait_for_quorum_leader(CLUSTER_TIMEOUT);
        assert_ne!(cluster.node_index(successor), controller);
        assert_progress(
            running,
            &format!("with node {controller}, the active controller, killed"),
        );
        thread::sleep(DOWN_TIME);
        cluster.restart(controller);
        wait_for_full_isr(cluster, topic, PARTITIONS);
    });
}

/// Five nodes, so that the quorum (every node is a voter) outlives two of them:
/// the partition's leader and a follower die, and the controller still moves
/// the partition to the last in-sync replica.
#[test]
fn a_broker_that_was_behind_truncates_catches_up_and_rejoins_the_isr() {
    let _one = one_cluster();
    let mut cluster = Cluster::start(5);
    let topic = "truncation";
    let partitions = 1;
    replicated_topic(&cluster, topic, partitions);
    let running = checker::start(
        &cluster.bootstrap(),
        topic,
        &Workload {
            partitions,
            ..workload()
        },
    );
    assert_progress(&running, "before any fault");
    let leader = leader_node(&cluster, topic, 0);
    let isr = cluster.partition_isr(topic, 0);
    let followers: Vec<usize> = isr
        .iter()
        .map(|id| cluster.node_index(*id))
        .filter(|node| *node != leader)
        .collect();
    assert_eq!(
        followers.len(),
        2,
        "an RF3 partition has two followers: {isr:?}"
    );
    let (behind, survivor) = (followers[0], followers[1]);

    cluster.kill(behind);
    let shrunk = cluster.wait_for_isr(topic, 0, 2, REPLICA_LAG_TIME_MAX + CLUSTER_TIMEOUT);
    assert!(
        !shrunk.contains(&cluster.node_id(behind)),
        "node {behind}, killed, left the ISR: {shrunk:?}"
    );
    assert_progress(&running, &format!("with node {behind}, a follower, killed"));
    thread::sleep(fault_duration() / 2);

    cluster.kill(leader);
    let survivor_id = cluster.node_id(survivor);
    cluster.wait_for_partition_leader(
        topic,
        0,
        &format!("node {survivor}, the last in-sync replica, leads"),
        CLUSTER_TIMEOUT,
        |leader| leader == survivor_id,
    );
    thread::sleep(fault_duration() / 2);

    cluster.restart(behind);
    cluster.restart(leader);
    let isr = cluster.wait_for_isr(topic, 0, 3, CLUSTER_TIMEOUT);
    for node in [behind, leader, survivor] {
        assert!(
            isr.contains(&cluster.node_id(node)),
            "node {node} is back in the ISR: {isr:?}"
        );
    }
    assert_progress(&running, "with every replica back");
    let history = running.finish();
    checker::read_and_check(&cluster.bootstrap(), topic, partitions, &history).assert_valid();

    // Consumers read from leaders only: hand leadership over (a controlled
    // shutdown of the leader) and read everything again from the new leader,
    // so the data of the replicas that were restarted is checked too.
    let mut verified = vec![survivor];
    for _ in 0..3 {
        let current = leader_node(&cluster, topic, 0);
        cluster.stop(current);
        let next = wait_for_new_leader(&cluster, topic, 0, current);
        checker::read_and_check(&cluster.live_bootstrap(), topic, partitions, &history)
            .assert_valid();
        verified.push(next);
        cluster.restart(current);
        cluster.wait_for_isr(topic, 0, 3, CLUSTER_TIMEOUT);
    }
    verified.sort_unstable();
    verified.dedup();
    eprintln!("{topic}: read the whole history from the replicas of nodes {verified:?}");
    assert!(
        verified.contains(&behind) || verified.contains(&leader),
        "a restarted replica led once and served the history: {verified:?}"
    );
}

/// Five nodes, so that the quorum outlives both followers of the partition and
/// the ISR can shrink to the leader alone.
#[test]
fn acks_all_needs_min_insync_replicas() {
    let _one = one_cluster();
    let mut cluster = Cluster::start(5);
    let topic = "min-isr";
    replicated_topic(&cluster, topic, 1);
    let leader = leader_node(&cluster, topic, 0);
    let followers: Vec<usize> = cluster
        .partition_isr(topic, 0)
        .iter()
        .map(|id| cluster.node_index(*id))
        .filter(|node| *node != leader)
        .collect();
    assert_eq!(followers.len(), 2, "an RF3 partition has two followers");
    produce_until_acked(&cluster, topic, "all", "before any fault");

    for &follower in &followers {
        cluster.kill(follower);
    }
    cluster.wait_for_isr(topic, 0, 1, REPLICA_LAG_TIME_MAX + CLUSTER_TIMEOUT);
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    let mut others = Vec::new();
    loop {
        match produce_once(&cluster, topic, "all") {
            Ok(offset) => panic!(
                "acks=all acknowledged at offset {offset} with the ISR at 1 of min.insync.replicas 2"
            ),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)) => break,
            Err(error) => others.push(error.to_string()),
        }
        assert!(
            Instant::now() < deadline,
            "acks=all failed with NOT_ENOUGH_REPLICAS within {CLUSTER_TIMEOUT:?}; other errors: {others:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    produce_until_acked(&cluster, topic, "1", "with the ISR at the leader alone");

    for &follower in &followers {
        cluster.restart(follower);
    }
    cluster.wait_for_isr(topic, 0, 3, CLUSTER_TIMEOUT);
    produce_until_acked(&cluster, topic, "all", "with the followers back");
}

/// The leader of a partition is cut off from the other brokers (their broker
/// and controller ports, both ways; the test's clients still reach it) by
/// nftables rules. Where that cannot be done (not root, or no `nft`), it is
/// frozen with SIGSTOP instead: the nearest approximation, though a frozen
/// leader cannot be seen refusing acknowledgements as a partitioned one does.
#[test]
fn a_partitioned_leader_stops_acknowledging_and_rejoins() {
    let _one = one_cluster();
    let isolatable = can_isolate();
    if !isolatable {
        eprintln!("no packet filter here (root and nft needed): freezing the leader instead");
    }
    let mut cluster = if isolatable {
        Cluster::start_isolatable(3)
    } else {
        Cluster::start(3)
    };
    let topic = "partitioned-leader";
    replicated_topic(&cluster, topic, PARTITIONS);
    let running = checker::start(&cluster.bootstrap(), topic, &workload());
    assert_progress(&running, "before any fault");
    let old = leader_node(&cluster, topic, 0);
    let mut hand = HandRecords::default();

    let partition = if isolatable {
        Some(cluster.isolate(old))
    } else {
        cluster.pause(old);
        None
    };
    let old_id = cluster.node_id(old);
    let others: Vec<usize> = (0..cluster.len()).filter(|&n| n != old).collect();
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    loop {
        let views: Vec<_> = others
            .iter()
            .filter_map(|&node| cluster.partition_seen_by(node, topic, 0))
            .collect();
        if views.len() == others.len()
            && views.iter().all(|view| {
                view.leader >= 0 && view.leader != old_id && view.leader == views[0].leader
            })
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the majority side elected a new leader of {topic}/0 within {CLUSTER_TIMEOUT:?}: {views:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_progress(&running, &format!("with node {old}, a leader, cut off"));
    let refused = hand.produce_raw(&cluster, old, topic, 0);
    assert!(
        refused.is_err(),
        "node {old}, cut off from the ISR, acknowledged an acks=all produce at offset {refused:?}"
    );
    thread::sleep(fault_duration());

    match partition {
        Some(partition) => partition.heal(),
        None => cluster.resume(old),
    }
    wait_for_full_isr(&cluster, topic, PARTITIONS);
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    loop {
        match hand.produce_raw(&cluster, old, topic, 0) {
            Err(ProduceRefused::Code(NOT_LEADER_OR_FOLLOWER)) => break,
            // Leadership went back to it (a preferred-leader rebalance): it
            // acknowledges as a leader again, and the checker holds it to that.
            Ok(_) if cluster.partition_leader(topic, 0) == Some(old_id) => break,
            outcome => assert!(
                Instant::now() < deadline,
                "node {old}, healed, answered NOT_LEADER_OR_FOLLOWER within {CLUSTER_TIMEOUT:?}: {outcome:?}"
            ),
        }
        thread::sleep(Duration::from_millis(200));
    }
    assert_progress(&running, "after healing");
    let mut history = running.finish();
    hand.record(&mut history);
    let report = checker::read_and_check(&cluster.bootstrap(), topic, PARTITIONS, &history);
    report.assert_valid();
}

/// One record with `acks` through a non-idempotent producer that does not
/// retry, so the broker's own error comes back; bounded by the message timeout.
fn produce_once(cluster: &Cluster, topic: &str, acks: &str) -> Result<i64, KafkaError> {
    let producer: FutureProducer<TestContext> = cluster
        .client_config(cluster.live_nodes()[0])
        .set("bootstrap.servers", cluster.live_bootstrap())
        .set("acks", acks)
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("message.timeout.ms", "10000")
        .set("request.timeout.ms", "8000")
        .create_with_context(TestContext)
        .expect("create a producer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime for the producer");
    runtime.block_on(async {
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(0)
                    .key("hand")
                    .payload("hand"),
                Duration::from_secs(10),
            )
            .await
            .map(|delivery| delivery.offset)
            .map_err(|(error, _)| error)
    })
}

/// Retries [`produce_once`] until a record is acknowledged, within
/// [`CLUSTER_TIMEOUT`] (leaders may still be settling).
fn produce_until_acked(cluster: &Cluster, topic: &str, acks: &str, when: &str) {
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    let mut errors = Vec::new();
    loop {
        match produce_once(cluster, topic, acks) {
            Ok(_) => return,
            Err(error) => errors.push(error.to_string()),
        }
        assert!(
            Instant::now() < deadline,
            "an acks={acks} produce succeeded {when} within {CLUSTER_TIMEOUT:?}; errors: {errors:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Why a raw produce was not acknowledged.
#[derive(Debug)]
enum ProduceRefused {
    /// The partition's error code.
    Code(i16),
    /// No answer: the connection failed or timed out.
    NoAnswer(String),
}

impl std::fmt::Display for ProduceRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProduceRefused::Code(code) => write!(f, "error code {code}"),
            ProduceRefused::NoAnswer(error) => write!(f, "no answer: {error}"),
        }
    }
}

/// Records a test sends by hand on raw connections, with their outcomes, so the
/// checker accounts for them like the producers' own.
#[derive(Default)]
struct HandRecords {
    next_seq: u64,
    acked: Vec<(Sent, i64)>,
    failed: Vec<(Sent, String)>,
}

impl HandRecords {
    /// One acks=all record to `topic`/`partition` sent to node `node` itself,
    /// whichever node leads: the base offset if acknowledged.
    fn produce_raw(
        &mut self,
        cluster: &Cluster,
        node: usize,
        topic: &str,
        partition: i32,
    ) -> Result<i64, ProduceRefused> {
        let sent = Sent {
            producer: HAND_PRODUCER,
            partition,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let outcome = produce_raw(cluster, node, topic, sent);
        match &outcome {
            Ok(offset) => self.acked.push((sent, *offset)),
            Err(refused) => self.failed.push((sent, refused.to_string())),
        }
        outcome
    }

    fn record(self, history: &mut History) {
        history.acked.extend(self.acked);
        history.failed.extend(self.failed);
    }
}

fn produce_raw(
    cluster: &Cluster,
    node: usize,
    topic: &str,
    sent: Sent,
) -> Result<i64, ProduceRefused> {
    let (key, value) = (sent.key(), sent.value());
    let batch = build_batch(&[NewRecord {
        key: Some(key.as_bytes()),
        value: Some(value.as_bytes()),
        timestamp_ms: now_ms(),
    }]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(3_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(sent.partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let answer_within = Duration::from_secs(3) + METADATA_CALL_TIMEOUT * 2;
    let mut wire = Wire::try_connect(&cluster.node_bootstrap(node), answer_within)
        .map_err(|error| ProduceRefused::NoAnswer(error.to_string()))?;
    let (response, _): (ProduceResponse, _) = wire
        .try_call(ApiKey::Produce, 9, &request)
        .map_err(|error| ProduceRefused::NoAnswer(error.to_string()))?;
    let answer = &response.responses[0].partition_responses[0];
    if answer.error_code == 0 {
        Ok(answer.base_offset)
    } else {
        Err(ProduceRefused::Code(answer.error_code))
    }
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit i64")
}

/// The broker coordinating `group` (FindCoordinator), asked through a live node.
fn group_coordinator(cluster: &Cluster, group: &str) -> usize {
    use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    loop {
        let request = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
        let mut wire = Wire::connect(&cluster.node_bootstrap(cluster.live_nodes()[0]));
        let (response, _): (FindCoordinatorResponse, _) =
            wire.call(ApiKey::FindCoordinator, 4, &request);
        let found = &response.coordinators[0];
        if found.error_code == 0 {
            return cluster.node_index(found.node_id.0);
        }
        assert!(
            Instant::now() < deadline,
            "no coordinator for {group}: error {}",
            found.error_code
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Consumes from `consumer` until `count` records came, within [`CLUSTER_TIMEOUT`].
fn consume(consumer: &rdkafka::consumer::BaseConsumer<TestContext>, count: usize, when: &str) {
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    let mut seen = 0;
    while seen < count {
        assert!(
            Instant::now() < deadline,
            "{when}: {seen} of {count} records"
        );
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {
            seen += 1;
        }
    }
}

/// Commits `offset` for partition 0 of `topic` in the consumer's group,
/// polling (which drives a rejoin after the coordinator moved) and retrying
/// until it is accepted.
fn commit(
    consumer: &rdkafka::consumer::BaseConsumer<TestContext>,
    topic: &str,
    offset: i64,
    when: &str,
) {
    use rdkafka::consumer::{CommitMode, Consumer};
    use rdkafka::topic_partition_list::TopicPartitionList;
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, rdkafka::Offset::Offset(offset))
        .expect("a valid offset");
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    loop {
        match consumer.commit(&offsets, CommitMode::Sync) {
            Ok(()) => return,
            Err(error) => {
                assert!(Instant::now() < deadline, "{when}: commit failed: {error}");
                let _ = consumer.poll(Duration::from_millis(200));
            }
        }
    }
}

#[test]
fn a_consumer_group_survives_its_coordinator_dying() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let _one = one_cluster();
    let mut cluster = Cluster::start(3);
    let topic = "coordinator-failover";
    let group = "coordinator-failover-group";
    cluster.create_topic(topic, 1, 3, &MIN_INSYNC_2);
    let group_consumer = |cluster: &Cluster| -> BaseConsumer<TestContext> {
        let consumer: BaseConsumer<TestContext> = cluster
            .client_config(cluster.live_nodes()[0])
            .set("bootstrap.servers", cluster.live_bootstrap())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(TestContext)
            .expect("create a consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        consumer
    };
    for _ in 0..10 {
        produce_until_acked(&cluster, topic, "all", "before the failover");
    }
    let consumer = group_consumer(&cluster);
    consume(&consumer, 10, "before the failover");
    commit(&consumer, topic, 10, "before the failover");
    let coordinator = group_coordinator(&cluster, group);
    cluster.kill(coordinator);
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    while group_coordinator(&cluster, group) == coordinator {
        assert!(
            Instant::now() < deadline,
            "the coordination stays on the dead node {coordinator}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..5 {
        produce_until_acked(&cluster, topic, "all", "after the failover");
    }
    consume(&consumer, 5, "after the coordinator died");
    commit(&consumer, topic, 15, "after the coordinator died");
    drop(consumer);
    cluster.restart(coordinator);
    let fresh = group_consumer(&cluster);
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    let position = loop {
        let mut asked = rdkafka::topic_partition_list::TopicPartitionList::new();
        asked.add_partition(topic, 0);
        let committed = fresh
            .committed_offsets(asked, Duration::from_secs(5))
            .map(|list| list.find_partition(topic, 0).map(|p| p.offset()));
        if let Ok(Some(rdkafka::Offset::Offset(offset))) = committed {
            break offset;
        }
        assert!(
            Instant::now() < deadline,
            "no committed offset: {committed:?}"
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        position, 15,
        "both commits survived the coordinator's death"
    );
}
