//! The real `sluice serve` driven by librdkafka (the `rdkafka` crate): produce,
//! consume, metadata, topic admin, and a SIGKILL restart.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use broker::Broker;
use kafka::{OP_TIMEOUT, TestContext, admin, admin_options, consumer, producer};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use wire::Wire;

fn key(i: usize) -> String {
    format!("key-{i:05}")
}

fn value(i: usize) -> String {
    format!("value-{i:05}-{}", "x".repeat(i % 97))
}

/// Sends records `range` (keyed by `key(i)`, valued by `value(i)`) to partition 0
/// of `topic` without waiting between sends, then waits for every delivery and
/// returns the offsets in send order.
async fn produce(
    producer: &FutureProducer<TestContext>,
    topic: &str,
    range: std::ops::Range<usize>,
) -> Vec<i64> {
    let mut deliveries = Vec::with_capacity(range.len());
    for i in range.clone() {
        let (k, v) = (key(i), value(i));
        let record = FutureRecord::to(topic).key(&k).payload(&v).partition(0);
        let delivery = producer
            .send_result(record)
            .unwrap_or_else(|(err, _)| panic!("enqueue record {i}: {err}"));
        deliveries.push((i, delivery));
    }
    let mut offsets = Vec::with_capacity(deliveries.len());
    for (i, delivery) in deliveries {
        let result = tokio::time::timeout(OP_TIMEOUT, delivery)
            .await
            .unwrap_or_else(|_| panic!("no delivery report for record {i} within {OP_TIMEOUT:?}"))
            .expect("delivery future cancelled");
        let delivery = result.unwrap_or_else(|(err, _)| panic!("record {i} not delivered: {err}"));
        assert_eq!(delivery.partition, 0, "record {i}");
        offsets.push(delivery.offset);
    }
    offsets
}

/// Reads partition 0 of `topic` from offset 0 until `count` records have arrived
/// and checks each one's offset, key and value.
fn consume_and_check(broker: &Broker, topic: &str, count: usize) {
    let consumer = consumer(broker);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(0))
        .expect("add partition");
    consumer.assign(&assignment).expect("assign");

    let deadline = Instant::now() + OP_TIMEOUT;
    let mut next = 0;
    while next < count {
        assert!(
            Instant::now() < deadline,
            "read only {next} of {count} records from {topic} within {OP_TIMEOUT:?}"
        );
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(err)) => panic!("consumer error after {next} records: {err}"),
            Some(Ok(message)) => message,
        };
        assert_eq!(message.topic(), topic);
        assert_eq!(message.partition(), 0);
        assert_eq!(message.offset(), next as i64, "offset of record {next}");
        assert_eq!(
            message.key(),
            Some(key(next).as_bytes()),
            "key at offset {next}"
        );
        assert_eq!(
            message.payload(),
            Some(value(next).as_bytes()),
            "value at offset {next}"
        );
        next += 1;
    }

    let (low, high) = consumer
        .fetch_watermarks(topic, 0, OP_TIMEOUT)
        .expect("fetch watermarks");
    assert_eq!((low, high), (0, count as i64), "watermarks of {topic}-0");
}

/// Asks for metadata (through `fetch`) until `topic` is listed without error with
/// at least one partition; returns its partition ids, sorted.
fn wait_for_topic(fetch: impl Fn() -> Result<Metadata, KafkaError>, topic: &str) -> Vec<i32> {
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let metadata = fetch().expect("fetch metadata");
        if let Some(t) = metadata.topics().iter().find(|t| t.name() == topic)
            && t.error().is_none()
            && !t.partitions().is_empty()
        {
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            for p in t.partitions() {
                assert!(p.error().is_none(), "{topic}-{}: {:?}", p.id(), p.error());
                assert!(
                    metadata.brokers().iter().any(|b| b.id() == p.leader()),
                    "{topic}-{}: leader {} is not a listed broker",
                    p.id(),
                    p.leader()
                );
            }
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} not in metadata within {OP_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn produce_1000_keyed_records_then_read_them_back_in_order() {
    let broker = Broker::start();
    let topic = "basics-produce-consume";

    let offsets = produce(&producer(&broker), topic, 0..1000).await;
    assert_eq!(offsets, (0..1000).collect::<Vec<i64>>());

    consume_and_check(&broker, topic, 1000);
}

/// With `--slow-request-ms 0` every produce request is slow enough: each gets a
/// WARN timeline naming its steps, the fdatasync included (fsync before ack).
#[tokio::test]
async fn slow_produce_requests_are_logged_with_their_timeline() {
    let broker = Broker::start_with_args(&["--slow-request-ms", "0"]);
    let offsets = produce(&producer(&broker), "basics-slow-requests", 0..10).await;
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    let stderr = broker.stderr();
    let line = stderr
        .lines()
        .find(|line| line.contains("slow produce"))
        .unwrap_or_else(|| panic!("no slow produce line in:\n{stderr}"));
    for step in [
        "total_ms=",
        "dispatch_ms=",
        "validate_ms=",
        "write_ms=",
        "sync_ms=",
        "acknowledge_ms=",
        "respond_ms=",
        "partitions=1",
    ] {
        assert!(line.contains(step), "{step} missing from: {line}");
    }
}

#[tokio::test]
async fn metadata_lists_auto_created_topics() {
    let broker = Broker::start();

    // Auto-created by Produce.
    let produced = "basics-metadata-by-produce";
    let producer = producer(&broker);
    assert_eq!(
        produce(&producer, produced, 0..10).await,
        (0..10).collect::<Vec<i64>>()
    );

    let client = producer.client();
    let metadata = client
        .fetch_metadata(None, OP_TIMEOUT)
        .expect("fetch metadata for all topics");
    let broker_addrs: Vec<(String, i32)> = metadata
        .brokers()
        .iter()
        .map(|b| (b.host().to_string(), b.port()))
        .collect();
    assert_eq!(
        broker_addrs,
        vec![("127.0.0.1".to_string(), i32::from(broker.port()))],
        "advertised brokers"
    );
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == produced)
        .unwrap_or_else(|| panic!("{produced} not listed in all-topics metadata"));
    assert!(topic.error().is_none(), "{produced}: {:?}", topic.error());
    assert_eq!(topic.partitions().len(), 1, "num.partitions defaults to 1");

    let ids = wait_for_topic(
        || client.fetch_metadata(Some(produced), OP_TIMEOUT),
        produced,
    );
    assert_eq!(ids, vec![0]);

    // Auto-created by Metadata: librdkafka producers ask with
    // allow_auto_topic_creation=true.
    let requested = "basics-metadata-by-request";
    let ids = wait_for_topic(
        || client.fetch_metadata(Some(requested), OP_TIMEOUT),
        requested,
    );
    assert_eq!(ids, vec![0]);
}

#[tokio::test]
async fn admin_creates_and_deletes_a_topic() {
    let broker = Broker::start();
    let admin = admin(&broker);
    let topic = "basics-admin";

    let created = tokio::time::timeout(
        OP_TIMEOUT,
        admin.create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &admin_options(),
        ),
    )
    .await
    .expect("CreateTopics within the timeout")
    .expect("CreateTopics request");
    assert_eq!(created, vec![Ok(topic.to_string())]);

    let ids = wait_for_topic(|| admin.inner().fetch_metadata(None, OP_TIMEOUT), topic);
    assert_eq!(ids, vec![0, 1, 2]);

    let again = tokio::time::timeout(
        OP_TIMEOUT,
        admin.create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &admin_options(),
        ),
    )
    .await
    .expect("second CreateTopics within the timeout")
    .expect("second CreateTopics request");
    assert_eq!(
        again,
        vec![Err((
            topic.to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );

    let deleted = tokio::time::timeout(OP_TIMEOUT, admin.delete_topics(&[topic], &admin_options()))
        .await
        .expect("DeleteTopics within the timeout")
        .expect("DeleteTopics request");
    assert_eq!(deleted, vec![Ok(topic.to_string())]);

    // All-topics metadata (which never auto-creates) stops listing it.
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(None, OP_TIMEOUT)
            .expect("fetch metadata");
        if !metadata.topics().iter().any(|t| t.name() == topic) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} still listed {OP_TIMEOUT:?} after DeleteTopics"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn acknowledged_records_survive_sigkill() {
    let mut broker = Broker::start();
    let topic = "basics-sigkill";

    {
        let producer = producer(&broker);
        let offsets = produce(&producer, topic, 0..500).await;
        assert_eq!(offsets, (0..500).collect::<Vec<i64>>());
    }

    broker.restart_with_sigkill();
    consume_and_check(&broker, topic, 500);

    // The log end offset was recovered too: new records continue from it.
    let producer = producer(&broker);
    let offsets = produce(&producer, topic, 500..600).await;
    assert_eq!(offsets, (500..600).collect::<Vec<i64>>());
    drop(producer);

    broker.stop_gracefully();
    broker.start_again();
    consume_and_check(&broker, topic, 600);
}

/// Runs `sluice serve` with `args` and expects it to refuse to start: a non-zero
/// exit and `reason` on stderr.
fn refused_start(args: &[&str], reason: &str) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .args(args)
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started with {args:?}: {stderr}");
    assert!(stderr.contains(reason), "{args:?}: stderr was {stderr}");
}

/// A second broker on the same port or the same data directory refuses to start
/// rather than split the connections or the files with the first one.
#[tokio::test]
async fn a_second_broker_on_the_same_port_or_data_dir_refuses_to_start() {
    let broker = Broker::start();
    let other_dir = tempfile::tempdir().expect("temp dir");
    let listen = broker.bootstrap();
    let data_dir = broker.data_dir().display().to_string();
    refused_start(
        &[
            "--listen",
            &listen,
            "--data-dir",
            &other_dir.path().display().to_string(),
        ],
        "address already in use",
    );
    refused_start(
        &["--listen", "127.0.0.1:0", "--data-dir", &data_dir],
        "in use by another process",
    );
    let admin = admin(&broker);
    let metadata = admin
        .inner()
        .fetch_metadata(None, OP_TIMEOUT)
        .expect("the first broker still serves");
    assert_eq!(metadata.brokers().len(), 1);
}

/// A broker accepts connections only once every shard has opened its partitions.
/// One shard rebuilds a large partition's offset index at start-up while the other
/// has nothing to open: a request that reaches the broker as soon as it answers
/// ApiVersions must find the partition (issue 9's restart, where kcat was told
/// UNKNOWN_TOPIC_OR_PARTITION).
#[tokio::test]
async fn a_restarted_broker_answers_for_every_partition_as_soon_as_it_accepts() {
    let mut broker = Broker::start_with_args(&["--shards", "2"]);
    let topic = "basics-slow-to-open";
    kafka::create_topic(&broker, topic, 1, &[]).await;
    let records = 500;
    {
        let producer = producer(&broker);
        let payload = vec![b'x'; 100_000];
        let mut deliveries = Vec::with_capacity(records);
        for i in 0..records {
            let record = FutureRecord::<(), _>::to(topic)
                .payload(&payload)
                .partition(0);
            let delivery = producer
                .send_result(record)
                .unwrap_or_else(|(err, _)| panic!("enqueue record {i}: {err}"));
            deliveries.push(delivery);
        }
        for (i, delivery) in deliveries.into_iter().enumerate() {
            tokio::time::timeout(OP_TIMEOUT, delivery)
                .await
                .unwrap_or_else(|_| panic!("no delivery report for record {i}"))
                .expect("delivery future cancelled")
                .unwrap_or_else(|(err, _)| panic!("record {i} not delivered: {err}"));
        }
    }
    broker.stop_gracefully();
    let index = broker
        .data_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000000.index");
    std::fs::remove_file(&index)
        .unwrap_or_else(|error| panic!("remove {}: {error}", index.display()));

    broker.start_again();
    let watermarks = consumer(&broker).fetch_watermarks(topic, 0, OP_TIMEOUT);
    assert_eq!(
        watermarks.expect("ListOffsets for the partition right after the restart"),
        (0, records as i64)
    );
}

/// OffsetForLeaderEpoch (KIP-320), as librdkafka sends it to validate its
/// position: the current epoch ends at the log end, an epoch the log never had
/// is UNDEFINED (-1, -1), a newer current epoch than the broker's is
/// UNKNOWN_LEADER_EPOCH, and unknown partitions are UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test]
async fn offset_for_leader_epoch_answers_where_an_epoch_ends() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, BrokerId, MetadataRequest, MetadataResponse, OffsetForLeaderEpochRequest,
        OffsetForLeaderEpochResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let broker = Broker::start();
    let topic = "basics-leader-epochs";
    let producer = producer(&broker);
    assert_eq!(produce(&producer, topic, 0..10).await.len(), 10);

    let mut wire = Wire::connect(&broker.bootstrap());
    let (metadata, _): (MetadataResponse, usize) = wire.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let partition = &metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .expect("the topic is listed")
        .partitions[0];
    let epoch = partition.leader_epoch;
    assert!(epoch >= 0, "a real leader epoch: {epoch}");

    let name = |name: &str| TopicName(StrBytes::from_string(name.to_string()));
    let ask = |partition: i32, current: i32, wanted: i32| {
        OffsetForLeaderPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(current)
            .with_leader_epoch(wanted)
    };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    ask(0, epoch, epoch),
                    ask(0, -1, epoch + 1),
                    ask(0, epoch + 1, epoch),
                    ask(7, -1, epoch),
                ]),
            OffsetForLeaderTopic::default()
                .with_topic(name("basics-no-such-topic"))
                .with_partitions(vec![ask(0, -1, 0)]),
        ]);
    for version in [2, 3, 4] {
        let (response, _): (OffsetForLeaderEpochResponse, usize) =
            wire.call(ApiKey::OffsetForLeaderEpoch, version, &request);
        let answers: Vec<Vec<(i32, i16, i32, i64)>> = response
            .topics
            .iter()
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition, p.error_code, p.leader_epoch, p.end_offset))
                    .collect()
            })
            .collect();
        assert_eq!(
            answers,
            vec![
                vec![
                    (0, 0, epoch, 10),
                    (0, 0, -1, -1),
                    (0, 75, -1, -1),
                    (7, 3, -1, -1),
                ],
                vec![(0, 3, -1, -1)],
            ],
            "v{version}"
        );
    }
}
