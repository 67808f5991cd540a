//! Transactions on a three-broker cluster, where a transaction's coordinator (the
//! leader of its `__transaction_state` partition) and the leaders of its
//! partitions are different brokers: the coordinator writes the markers on the
//! other leaders with WriteTxnMarkers, and each leader verifies a producer's
//! first batch with the coordinator (KIP-890) with AddPartitionsToTxn.
//!
//! Every topic has six partitions with three replicas, so their leaders spread
//! over all three brokers and whichever broker coordinates a transaction, four
//! of its six partitions are led elsewhere. `__transaction_state` and
//! `__consumer_offsets` get the cluster defaults (replication factor 3,
//! `min.insync.replicas` 2). A transaction also commits everywhere when a
//! broker stops while it is open; a raw WriteTxnMarkers checks the leader's
//! side of the markers alone.
//!
//! It is a separate test binary, so cargo runs it after the others; within it,
//! the tests take [`one_cluster`] so only one cluster runs at a time.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/command.rs"]
mod command;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use cluster::Cluster;
use futures_lite::future::block_on;
use kafka::{OP_TIMEOUT, TestContext};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// One cluster at a time: this machine's cores do not keep the session
/// timeouts of two three-broker clusters.
static ONE_CLUSTER: Mutex<()> = Mutex::new(());

fn one_cluster() -> MutexGuard<'static, ()> {
    ONE_CLUSTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Partitions of every topic: two led by each broker.
const PARTITIONS: i32 = 6;
const REPLICATION_FACTOR: i32 = 3;
const MIN_INSYNC_2: [(&str, &str); 1] = [("min.insync.replicas", "2")];
/// Bound on markers reaching every partition after a commit or an abort, and on
/// reading a topic back.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// A three-broker cluster and `topics`, each with [`PARTITIONS`] partitions whose
/// leaders are on every broker.
fn cluster_with(topics: &[&str]) -> Cluster {
    let cluster = Cluster::start(3);
    for topic in topics {
        cluster.create_topic(topic, PARTITIONS, REPLICATION_FACTOR, &MIN_INSYNC_2);
        let leaders: BTreeSet<i32> = (0..PARTITIONS)
            .map(|partition| {
                cluster
                    .partition_leader(topic, partition)
                    .unwrap_or_else(|| panic!("{topic}/{partition} has a leader"))
            })
            .collect();
        assert_eq!(leaders.len(), 3, "{topic}'s leaders are on every broker");
    }
    cluster
}

fn transactional_producer(cluster: &Cluster, id: &str) -> FutureProducer<TestContext> {
    cluster
        .client_config(0)
        .set("bootstrap.servers", cluster.bootstrap())
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .create_with_context(TestContext)
        .expect("create a transactional producer")
}

/// Sends `value` to `partition` of `topic` and waits for its acknowledgement.
fn send(producer: &FutureProducer<TestContext>, topic: &str, partition: i32, value: &str) {
    let delivery = producer
        .send_result(
            FutureRecord::<(), str>::to(topic)
                .partition(partition)
                .payload(value),
        )
        .unwrap_or_else(|(error, _)| panic!("enqueue {value}: {error}"));
    block_on(delivery)
        .expect("delivery answered")
        .unwrap_or_else(|(error, _)| panic!("send {value} to {topic}/{partition}: {error}"));
}

/// One record to each partition of `topic`, valued `<prefix>-<partition>`.
fn send_to_every_partition(producer: &FutureProducer<TestContext>, topic: &str, prefix: &str) {
    for partition in 0..PARTITIONS {
        send(producer, topic, partition, &format!("{prefix}-{partition}"));
    }
}

/// A consumer bootstrapped from the running brokers only: one bootstrapped
/// from a stopped broker reports the failed connection as a consume error.
fn consumer(cluster: &Cluster, group: &str, isolation: &str) -> BaseConsumer<TestContext> {
    cluster
        .client_config(cluster.live_nodes()[0])
        .set("bootstrap.servers", cluster.live_bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create a consumer")
}

fn every_partition(topic: &str, offset: Offset) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition_offset(topic, partition, offset)
            .expect("add a partition");
    }
    list
}

/// Every record value of `topic` read with `isolation`, per partition in
/// order, once at least `expected` came and the topic is quiet.
fn read_topic(
    cluster: &Cluster,
    topic: &str,
    isolation: &str,
    expected: usize,
) -> BTreeMap<i32, Vec<String>> {
    let consumer = consumer(cluster, "sluice-test-assign-only", isolation);
    consumer
        .assign(&every_partition(topic, Offset::Beginning))
        .expect("assign");
    let mut values: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut count = 0;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(300)) {
            Some(Ok(message)) => {
                let value = String::from_utf8(message.payload().unwrap_or_default().to_vec())
                    .expect("UTF-8 values");
                values.entry(message.partition()).or_default().push(value);
                count += 1;
            }
            Some(Err(error)) => panic!("consume {topic}: {error}"),
            None if count >= expected => break,
            None => {}
        }
    }
    values
}

/// Per partition of `topic`: (the end offset `read_committed` consumers are
/// given, i.e. the last stable offset; the high watermark), each from the
/// partition's leader (ListOffsets latest at each isolation level).
fn stable_and_high(
    committed: &BaseConsumer<TestContext>,
    uncommitted: &BaseConsumer<TestContext>,
    topic: &str,
) -> Vec<(i64, i64)> {
    (0..PARTITIONS)
        .map(|partition| {
            let stable = latest(committed, topic, partition, "read_committed");
            let high = latest(uncommitted, topic, partition, "read_uncommitted");
            (stable, high)
        })
        .collect()
}

/// ListOffsets latest through `consumer`, retried while a new leader's high
/// watermark has not reached its epoch's start yet (OFFSET_NOT_AVAILABLE,
/// KIP-207) or leadership is moving, as Kafka's clients retry those.
fn latest(consumer: &BaseConsumer<TestContext>, topic: &str, partition: i32, what: &str) -> i64 {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match consumer.fetch_watermarks(topic, partition, OP_TIMEOUT) {
            Ok((_, offset)) => return offset,
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::OffsetNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable,
            )) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(error) => panic!("ListOffsets {what}: {error}"),
        }
    }
}

/// Waits until every partition of `topic` has the last stable offset and high
/// watermark `expected` (the markers of the transactions are written there).
fn wait_for_offsets(cluster: &Cluster, topic: &str, expected: (i64, i64)) {
    let committed = consumer(cluster, "sluice-test-offsets", "read_committed");
    let uncommitted = consumer(cluster, "sluice-test-offsets", "read_uncommitted");
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let offsets = stable_and_high(&committed, &uncommitted, topic);
        if offsets.iter().all(|&offsets| offsets == expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "every partition of {topic} at (LSO, HW) {expected:?} within {SETTLE_TIMEOUT:?}; \
             per partition: {offsets:?}"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

#[test]
fn a_transaction_over_partitions_led_by_every_broker_commits_and_aborts() {
    let _one = one_cluster();
    let topic = "txn-spread";
    let cluster = cluster_with(&[topic]);
    let producer = transactional_producer(&cluster, "txn-spread-producer");
    producer.init_transactions(OP_TIMEOUT).expect("init");

    producer.begin_transaction().expect("begin");
    send_to_every_partition(&producer, topic, "committed");
    producer.commit_transaction(OP_TIMEOUT).expect("commit");
    // One record and its commit marker on every partition; the marker ends
    // the transaction, so the LSO is the high watermark.
    wait_for_offsets(&cluster, topic, (2, 2));

    producer.begin_transaction().expect("begin");
    send_to_every_partition(&producer, topic, "aborted");
    producer.abort_transaction(OP_TIMEOUT).expect("abort");
    wait_for_offsets(&cluster, topic, (4, 4));

    let per_partition = |prefixes: &[&str]| -> BTreeMap<i32, Vec<String>> {
        (0..PARTITIONS)
            .map(|partition| {
                let values = prefixes
                    .iter()
                    .map(|prefix| format!("{prefix}-{partition}"))
                    .collect();
                (partition, values)
            })
            .collect()
    };
    let total = usize::try_from(PARTITIONS).expect("a small count");
    assert_eq!(
        read_topic(&cluster, topic, "read_committed", total),
        per_partition(&["committed"]),
        "read_committed sees exactly the committed records"
    );
    assert_eq!(
        read_topic(&cluster, topic, "read_uncommitted", 2 * total),
        per_partition(&["committed", "aborted"]),
        "read_uncommitted sees the aborted ones too"
    );

    // The producer goes on: a third transaction commits on every partition.
    producer.begin_transaction().expect("begin");
    send_to_every_partition(&producer, topic, "again");
    producer.commit_transaction(OP_TIMEOUT).expect("commit");
    wait_for_offsets(&cluster, topic, (6, 6));
    assert_eq!(
        read_topic(&cluster, topic, "read_committed", 2 * total),
        per_partition(&["committed", "again"]),
    );
}

#[test]
fn offsets_sent_to_a_transaction_commit_and_abort_with_it_across_brokers() {
    let _one = one_cluster();
    let (input, output) = ("eos-cluster-in", "eos-cluster-out");
    let cluster = cluster_with(&[input, output]);
    let plain: FutureProducer<TestContext> = cluster
        .client_config(0)
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "all")
        .create_with_context(TestContext)
        .expect("create a producer");
    for round in 0..3 {
        send_to_every_partition(&plain, input, &format!("in{round}"));
    }

    let group = "eos-cluster-group";
    let consumer = consumer(&cluster, group, "read_committed");
    let producer = transactional_producer(&cluster, "eos-cluster-processor");
    producer.init_transactions(OP_TIMEOUT).expect("init");
    let committed = || -> Vec<Offset> {
        let offsets = consumer
            .committed_offsets(every_partition(input, Offset::Offset(0)), OP_TIMEOUT)
            .expect("fetch committed offsets");
        (0..PARTITIONS)
            .map(|partition| {
                offsets
                    .find_partition(input, partition)
                    .expect("every partition answered")
                    .offset()
            })
            .collect()
    };
    let total = usize::try_from(PARTITIONS).expect("a small count");
    // Rounds of one input per partition: commit the first, abort the second,
    // redo it.
    for (round, start, commit) in [(0, 0, true), (1, 1, false), (2, 1, true)] {
        consumer
            .assign(&every_partition(input, Offset::Offset(start)))
            .expect("assign");
        // The input at `start` of each partition (later ones may come too).
        let mut batch = BTreeMap::new();
        while batch.len() < total {
            match consumer.poll(OP_TIMEOUT) {
                Some(Ok(message)) if message.offset() == start => {
                    let value = String::from_utf8(message.payload().unwrap_or_default().to_vec())
                        .expect("UTF-8 values");
                    batch.insert(message.partition(), value);
                }
                Some(Ok(_)) => {}
                other => panic!("round {round}: no input: {other:?}"),
            }
        }
        producer.begin_transaction().expect("begin");
        for (partition, value) in &batch {
            send(&producer, output, *partition, &format!("out-{value}"));
        }
        producer
            .send_offsets_to_transaction(
                &every_partition(input, Offset::Offset(start + 1)),
                &consumer.group_metadata().expect("group metadata"),
                OP_TIMEOUT,
            )
            .expect("send offsets");
        let expected = if commit {
            producer.commit_transaction(OP_TIMEOUT).expect("commit");
            start + 1
        } else {
            producer.abort_transaction(OP_TIMEOUT).expect("abort");
            start
        };
        assert_eq!(
            committed(),
            vec![Offset::Offset(expected); total],
            "round {round}: committed offsets"
        );
    }
    let outputs: BTreeMap<i32, Vec<String>> = (0..PARTITIONS)
        .map(|partition| {
            let values = (0..2)
                .map(|round| format!("out-in{round}-{partition}"))
                .collect();
            (partition, values)
        })
        .collect();
    assert_eq!(
        read_topic(&cluster, output, "read_committed", 2 * total),
        outputs,
        "every input once in the committed output"
    );
}

/// WriteTxnMarkers as a coordinator on another broker sends it: the broker
/// writes the markers on the partitions it leads (a marker for a producer with
/// nothing open is still written) and refuses the others with Kafka's codes.
#[test]
fn write_txn_markers_writes_only_where_the_broker_leads() {
    let _one = one_cluster();
    let topic = "markers-raw";
    let cluster = cluster_with(&[topic]);
    let node = 1;
    let id = cluster.node_id(node);
    let topics = [
        (topic, (0..PARTITIONS).collect()),
        ("no-such-topic", vec![0]),
    ]
    .into_iter()
    .map(|(name, partitions): (&str, Vec<i32>)| {
        WritableTxnMarkerTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_partition_indexes(partitions)
    })
    .collect();
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(4242.into())
            .with_producer_epoch(0)
            .with_transaction_result(true)
            .with_coordinator_epoch(0)
            .with_topics(topics),
    ]);
    let mut wire = wire::Wire::connect(&cluster.node_bootstrap(node));
    let (response, _): (WriteTxnMarkersResponse, _) =
        wire.call(ApiKey::WriteTxnMarkers, 1, &request);
    let [marker] = response.markers.as_slice() else {
        panic!("one marker's answer: {response:?}");
    };
    assert_eq!(marker.producer_id.0, 4242);
    let answers: Vec<(String, i32, i16)> = marker
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    let led_here: Vec<i32> = (0..PARTITIONS)
        .filter(|&partition| cluster.partition_leader(topic, partition) == Some(id))
        .collect();
    assert_eq!(led_here.len(), 2, "node {node} leads two partitions");
    let mut expected: Vec<(String, i32, i16)> = (0..PARTITIONS)
        .map(|partition| {
            let error = if led_here.contains(&partition) {
                0
            } else {
                NOT_LEADER_OR_FOLLOWER
            };
            (topic.to_string(), partition, error)
        })
        .collect();
    expected.push(("no-such-topic".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION));
    assert_eq!(answers, expected);

    // The markers are in the logs of the partitions led there, and only there.
    let uncommitted = consumer(&cluster, "sluice-test-offsets", "read_uncommitted");
    for partition in 0..PARTITIONS {
        let (_, high) = uncommitted
            .fetch_watermarks(topic, partition, OP_TIMEOUT)
            .expect("ListOffsets");
        let markers = i64::from(led_here.contains(&partition));
        assert_eq!(high, markers, "{topic}/{partition}'s high watermark");
    }
}

/// A broker stops (controlled shutdown: its leaderships move) while a
/// transaction over every partition is open; the commit still ends it on every
/// partition, the markers going to the new leaders (and, if the stopped broker
/// coordinated the transaction, from the new coordinator, which completes the
/// decided transaction when it loads the id's partition).
#[test]
fn a_transaction_commits_everywhere_after_a_broker_stops() {
    let _one = one_cluster();
    let topic = "txn-stop";
    let mut cluster = cluster_with(&[topic]);
    let producer = transactional_producer(&cluster, "txn-stop-producer");
    producer.init_transactions(OP_TIMEOUT).expect("init");
    producer.begin_transaction().expect("begin");
    send_to_every_partition(&producer, topic, "committed");
    cluster.stop(2);
    for partition in 0..PARTITIONS {
        cluster.wait_for_partition(
            topic,
            partition,
            &format!("{topic}/{partition} led by a running broker"),
            SETTLE_TIMEOUT,
            |views| {
                views
                    .iter()
                    .all(|(_, view)| view.leader >= 0 && view.leader != 2)
            },
        );
    }
    producer.commit_transaction(OP_TIMEOUT).expect("commit");
    wait_for_offsets(&cluster, topic, (2, 2));
    let total = usize::try_from(PARTITIONS).expect("a small count");
    let committed: BTreeMap<i32, Vec<String>> = (0..PARTITIONS)
        .map(|partition| (partition, vec![format!("committed-{partition}")]))
        .collect();
    assert_eq!(
        read_topic(&cluster, topic, "read_committed", total),
        committed
    );
}
