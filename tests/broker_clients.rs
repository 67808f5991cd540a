//! The real `sluice serve` driven by librdkafka (the `rdkafka` crate) the way
//! applications use it: many keyed records over several partitions, headers and
//! timestamps, the four codecs, watermarks and offsets-for-times, size limits,
//! DeleteRecords and DescribeConfigs through the admin client, idempotent
//! producers, and garbage on raw connections next to a busy producer.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use broker::Broker;
use kafka::{OP_TIMEOUT, TestContext, admin, admin_options, client_config, consumer, create_topic};
use rand::{Rng, SeedableRng};
use rdkafka::admin::{ConfigSource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, Timestamp, TopicPartitionList};

/// Upper bound for a whole bulk phase (producing or consuming 100,000 records).
const BULK_TIMEOUT: Duration = Duration::from_secs(45);
/// How long a broker may take to close a connection that sent garbage.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// A fixed CreateTime in the past (2020-09-13), so no timestamp check can refuse it.
const BASE_TS: i64 = 1_600_000_000_000;

/// A producer with room for many records in flight: acks=all, not idempotent
/// (unless `extra` says so), linger.ms=5, bounded delivery time.
fn producer_with(broker: &Broker, extra: &[(&str, &str)]) -> FutureProducer<TestContext> {
    let mut config = client_config(broker);
    config
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
        .create_with_context(TestContext)
        .expect("create producer")
}

/// Enqueues `record`, waiting for room if librdkafka's queue is full.
async fn enqueue(
    producer: &FutureProducer<TestContext>,
    mut record: FutureRecord<'_, [u8], [u8]>,
    deadline: Instant,
) -> DeliveryFuture {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return delivery,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                assert!(
                    Instant::now() < deadline,
                    "librdkafka's queue stayed full until the deadline"
                );
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((err, _)) => panic!("enqueue a record: {err}"),
        }
    }
}

/// The codec ids (attributes bits 0-2) of the batches stored for partition 0 of
/// `topic`, read from its segment files: proof that the client compressed.
fn stored_codecs(broker: &Broker, topic: &str) -> Vec<i16> {
    let dir = broker.data_dir().join(format!("{topic}-0"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    segments.sort();
    let mut codecs = Vec::new();
    for segment in segments {
        let bytes = std::fs::read(&segment).expect("read segment");
        let mut at = 0;
        while at + 61 <= bytes.len() {
            let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            if length <= 0 {
                break; // zero-filled space after the last batch
            }
            codecs.push(i16::from_be_bytes(bytes[at + 21..at + 23].try_into().unwrap()) & 7);
            at += 12 + length as usize;
        }
    }
    codecs
}

/// Waits (until `deadline`) for one delivery report and returns it, panicking if
/// the record was not delivered.
async fn delivered(what: &str, delivery: DeliveryFuture, deadline: Instant) -> Delivery {
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, delivery)
        .await
        .unwrap_or_else(|_| panic!("no delivery report for {what} before the deadline"))
        .expect("delivery future cancelled")
        .unwrap_or_else(|(err, _)| panic!("{what} not delivered: {err}"))
}

/// Assigns `partitions` of `topic` from `start` and polls until `count` records
/// have arrived, then polls a little longer to make sure no more come. Returns
/// them in arrival order.
fn consume(
    broker: &Broker,
    topic: &str,
    partitions: &[i32],
    start: Offset,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let consumer = consumer(broker);
    let mut assignment = TopicPartitionList::new();
    for &p in partitions {
        assignment
            .add_partition_offset(topic, p, start)
            .expect("add partition");
    }
    consumer.assign(&assignment).expect("assign");

    let mut messages = Vec::with_capacity(count);
    let deadline = Instant::now() + timeout;
    while messages.len() < count {
        assert!(
            Instant::now() < deadline,
            "read only {} of {count} records from {topic} within {timeout:?}",
            messages.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(err)) => panic!("consumer error after {} records: {err}", messages.len()),
            Some(Ok(message)) => messages.push(message.detach()),
        }
    }
    let quiet = Instant::now() + Duration::from_millis(500);
    while Instant::now() < quiet {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(err)) => panic!("consumer error after all {count} records: {err}"),
            Some(Ok(message)) => panic!(
                "record beyond the {count} expected: {}-{} offset {}",
                message.topic(),
                message.partition(),
                message.offset()
            ),
        }
    }
    messages
}

fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The number in a value such as `v123` or `loop-123`.
fn index_of(message: &OwnedMessage, prefix: &str) -> usize {
    let payload = text(message.payload()).expect("a value");
    payload
        .strip_prefix(prefix)
        .and_then(|n| n.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected value {payload:?}"))
}

#[tokio::test]
async fn keyed_records_over_six_partitions_read_back_exactly_in_partition_order() {
    const RECORDS: usize = 100_000;
    const KEYS: usize = 5_000;
    const PARTITIONS: i32 = 6;
    let broker = Broker::start();
    let topic = "clients-keyed";
    create_topic(&broker, topic, PARTITIONS, &[]).await;

    let key = |i: usize| format!("key-{:04}", i % KEYS);
    let value = |i: usize| format!("v{i}-{}", "x".repeat(i % 53));

    let started = Instant::now();
    let producer = producer_with(&broker, &[]);
    let deadline = Instant::now() + BULK_TIMEOUT;
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let (k, v) = (key(i), value(i));
        let record = FutureRecord::to(topic)
            .key(k.as_bytes())
            .payload(v.as_bytes());
        deliveries.push(enqueue(&producer, record, deadline).await);
    }
    let mut placed = Vec::with_capacity(RECORDS);
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let d = delivered(&format!("record {i}"), delivery, deadline).await;
        placed.push((d.partition, d.offset));
    }
    eprintln!("produced {RECORDS} records in {:?}", started.elapsed());

    // Every key always went to the same partition, and all partitions were used.
    let mut partition_of_key: HashMap<String, i32> = HashMap::new();
    for (i, &(partition, _)) in placed.iter().enumerate() {
        let expected = *partition_of_key.entry(key(i)).or_insert(partition);
        assert_eq!(partition, expected, "record {i} with {} moved", key(i));
    }
    let mut per_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, &(partition, _)) in placed.iter().enumerate() {
        per_partition.entry(partition).or_default().push(i);
    }
    assert_eq!(
        per_partition.keys().copied().collect::<Vec<_>>(),
        (0..PARTITIONS).collect::<Vec<_>>(),
        "partitions used by {KEYS} keys"
    );
    // Within a partition, offsets follow send order with no gap.
    for (partition, indexes) in &per_partition {
        for (n, &i) in indexes.iter().enumerate() {
            assert_eq!(
                placed[i],
                (*partition, n as i64),
                "offset of record {i} in partition {partition}"
            );
        }
    }

    let started = Instant::now();
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let messages = consume(
        &broker,
        topic,
        &partitions,
        Offset::Beginning,
        RECORDS,
        BULK_TIMEOUT,
    );
    eprintln!("consumed {RECORDS} records in {:?}", started.elapsed());

    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut seen = vec![false; RECORDS];
    for message in &messages {
        assert_eq!(message.topic(), topic);
        let partition = message.partition();
        let expected_offset = next_offset.entry(partition).or_insert(0);
        assert_eq!(
            message.offset(),
            *expected_offset,
            "records of partition {partition} out of order"
        );
        *expected_offset += 1;
        let i = index_of(message, "v");
        assert!(!seen[i], "record {i} read twice");
        seen[i] = true;
        assert_eq!(placed[i], (partition, message.offset()), "record {i}");
        assert_eq!(text(message.key()), Some(key(i)), "key of record {i}");
        assert_eq!(
            text(message.payload()),
            Some(value(i)),
            "value of record {i}"
        );
    }

    let consumer = consumer(&broker);
    for (partition, indexes) in &per_partition {
        let watermarks = consumer
            .fetch_watermarks(topic, *partition, OP_TIMEOUT)
            .expect("fetch watermarks");
        assert_eq!(
            watermarks,
            (0, indexes.len() as i64),
            "watermarks of {topic}-{partition}"
        );
    }
}

#[tokio::test]
async fn headers_null_keys_null_values_and_timestamps_round_trip() {
    let broker = Broker::start();
    let topic = "clients-headers";
    create_topic(&broker, topic, 1, &[]).await;

    struct Sample {
        key: Option<&'static [u8]>,
        value: Option<&'static [u8]>,
        headers: Vec<(&'static str, Option<&'static [u8]>)>,
        timestamp: i64,
    }
    let samples = vec![
        Sample {
            key: Some(b"with-headers"),
            value: Some(b"value"),
            headers: vec![
                ("trace-id", Some(b"abc-123")),
                ("empty", Some(b"")),
                ("null", None),
                ("binary", Some(&[0, 255, 1, 254])),
                ("trace-id", Some(b"duplicate keys are kept in order")),
            ],
            timestamp: BASE_TS,
        },
        Sample {
            key: None,
            value: Some(b"null key"),
            headers: vec![],
            timestamp: BASE_TS + 1,
        },
        Sample {
            key: Some(b"tombstone"),
            value: None,
            headers: vec![("h", Some(b"on a tombstone"))],
            timestamp: BASE_TS + 2,
        },
        Sample {
            key: None,
            value: None,
            headers: vec![],
            timestamp: BASE_TS - 86_400_000,
        },
        Sample {
            key: Some(b""),
            value: Some(b""),
            headers: vec![("", Some(b""))],
            timestamp: BASE_TS + 3,
        },
        Sample {
            key: Some(b"old"),
            value: Some(b"timestamps need not increase"),
            headers: vec![],
            timestamp: 1,
        },
        Sample {
            key: Some(b"later"),
            value: Some(b"after an older one"),
            headers: vec![("x", None)],
            timestamp: BASE_TS + 1_000,
        },
    ];

    let producer = producer_with(&broker, &[]);
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut deliveries = Vec::new();
    for sample in &samples {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(0)
            .timestamp(sample.timestamp);
        if let Some(key) = sample.key {
            record = record.key(key);
        }
        if let Some(value) = sample.value {
            record = record.payload(value);
        }
        if !sample.headers.is_empty() {
            let mut headers = OwnedHeaders::new();
            for &(key, value) in &sample.headers {
                headers = headers.insert(Header { key, value });
            }
            record = record.headers(headers);
        }
        deliveries.push(enqueue(&producer, record, deadline).await);
    }
    for (n, delivery) in deliveries.into_iter().enumerate() {
        let d = delivered(&format!("sample {n}"), delivery, deadline).await;
        assert_eq!((d.partition, d.offset), (0, n as i64), "sample {n}");
    }

    let messages = consume(
        &broker,
        topic,
        &[0],
        Offset::Beginning,
        samples.len(),
        OP_TIMEOUT,
    );
    for (n, (message, sample)) in messages.iter().zip(&samples).enumerate() {
        assert_eq!(message.offset(), n as i64);
        assert_eq!(message.key(), sample.key, "key of sample {n}");
        assert_eq!(message.payload(), sample.value, "value of sample {n}");
        assert_eq!(
            message.timestamp(),
            Timestamp::CreateTime(sample.timestamp),
            "timestamp of sample {n}"
        );
        let headers: Vec<(String, Option<Vec<u8>>)> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let expected: Vec<(String, Option<Vec<u8>>)> = sample
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(headers, expected, "headers of sample {n}");
    }
}

#[tokio::test]
async fn all_four_codecs_round_trip() {
    const RECORDS: usize = 2_000;
    let broker = Broker::start();
    let value = |codec: &str, i: usize| {
        format!(
            "{codec} record {i} {}",
            "compressible text, again and again; ".repeat(1 + i % 20)
        )
    };

    for (codec, id) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let topic = format!("clients-codec-{codec}");
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = producer_with(&broker, &[("compression.type", codec)]);
        let deadline = Instant::now() + OP_TIMEOUT;
        let mut deliveries = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            let (k, v) = (format!("k{i}"), value(codec, i));
            let headers = OwnedHeaders::new().insert(Header {
                key: "codec",
                value: Some(codec),
            });
            let record = FutureRecord::to(&topic)
                .partition(0)
                .key(k.as_bytes())
                .payload(v.as_bytes())
                .headers(headers);
            deliveries.push(enqueue(&producer, record, deadline).await);
        }
        for (i, delivery) in deliveries.into_iter().enumerate() {
            let d = delivered(&format!("{codec} record {i}"), delivery, deadline).await;
            assert_eq!(d.offset, i as i64, "offset of {codec} record {i}");
        }
        let codecs = stored_codecs(&broker, &topic);
        // librdkafka silently sends lz4 uncompressed to brokers that do not
        // advertise FindCoordinator: check what was stored.
        assert!(
            !codecs.is_empty() && codecs.iter().all(|&c| c == id),
            "{codec}: stored batches have codecs {codecs:?}"
        );

        let messages = consume(
            &broker,
            &topic,
            &[0],
            Offset::Beginning,
            RECORDS,
            OP_TIMEOUT,
        );
        for (i, message) in messages.iter().enumerate() {
            assert_eq!(message.offset(), i as i64, "{codec}");
            assert_eq!(
                text(message.key()),
                Some(format!("k{i}")),
                "{codec} key {i}"
            );
            assert_eq!(
                text(message.payload()),
                Some(value(codec, i)),
                "{codec} value {i}"
            );
            let header = message
                .headers()
                .and_then(|h| h.try_get(0))
                .and_then(|h| h.value.map(<[u8]>::to_vec));
            assert_eq!(
                header,
                Some(codec.as_bytes().to_vec()),
                "{codec} header {i}"
            );
        }

        // From an offset inside a compressed batch: the broker returns the whole
        // batch and the client skips the records before the offset.
        let from = 1_234;
        let messages = consume(
            &broker,
            &topic,
            &[0],
            Offset::Offset(from as i64),
            RECORDS - from,
            OP_TIMEOUT,
        );
        for (n, message) in messages.iter().enumerate() {
            let i = from + n;
            assert_eq!(message.offset(), i as i64, "{codec}, from offset {from}");
            assert_eq!(
                text(message.payload()),
                Some(value(codec, i)),
                "{codec} value {i}"
            );
        }
    }
}

#[tokio::test]
async fn watermarks_and_offsets_for_times() {
    let broker = Broker::start();
    offsets_for_times_with(&broker, "clients-times", "none").await;
    // In compressed batches too the answer is the exact record: the broker
    // inflates the batch that holds it.
    offsets_for_times_with(&broker, "clients-times-gzip", "gzip").await;
    assert!(
        stored_codecs(&broker, "clients-times-gzip")
            .iter()
            .all(|&c| c == 1)
    );
}

async fn offsets_for_times_with(broker: &Broker, topic: &str, codec: &str) {
    create_topic(broker, topic, 3, &[]).await;
    let producer = producer_with(broker, &[("compression.type", codec)]);

    // Partition 0: 60 records, two per timestamp (BASE_TS + 100 * (i / 2)), in
    // three rounds so they span several batches. Partition 1: 10 records at
    // BASE_TS + 5_000 + i. Partition 2 stays empty.
    let ts0 = |i: usize| BASE_TS + 100 * (i as i64 / 2);
    let ts1 = |i: usize| BASE_TS + 5_000 + i as i64;
    for round in 0..3 {
        let deadline = Instant::now() + OP_TIMEOUT;
        let mut deliveries = Vec::new();
        for i in round * 20..(round + 1) * 20 {
            // Compressible, so librdkafka does compress.
            let v = format!("p0-{i}-{}", "x".repeat(200));
            let record = FutureRecord::to(topic)
                .partition(0)
                .payload(v.as_bytes())
                .timestamp(ts0(i));
            deliveries.push((i, enqueue(&producer, record, deadline).await));
        }
        for (i, delivery) in deliveries {
            let d = delivered(&format!("p0 record {i}"), delivery, deadline).await;
            assert_eq!(d.offset, i as i64);
        }
    }
    let deadline = Instant::now() + OP_TIMEOUT;
    for i in 0..10 {
        let v = format!("p1-{i}");
        let record = FutureRecord::to(topic)
            .partition(1)
            .payload(v.as_bytes())
            .timestamp(ts1(i));
        let d = delivered(
            &format!("p1 record {i}"),
            enqueue(&producer, record, deadline).await,
            deadline,
        )
        .await;
        assert_eq!(d.offset, i as i64);
    }

    let consumer = consumer(broker);
    for (partition, expected) in [(0, (0, 60)), (1, (0, 10)), (2, (0, 0))] {
        let watermarks = consumer
            .fetch_watermarks(topic, partition, OP_TIMEOUT)
            .expect("fetch watermarks");
        assert_eq!(watermarks, expected, "watermarks of {topic}-{partition}");
    }

    let lookup = |queries: &[(i32, i64)]| -> Vec<(i32, Offset)> {
        let mut request = TopicPartitionList::new();
        for &(partition, ts) in queries {
            request
                .add_partition_offset(topic, partition, Offset::Offset(ts))
                .expect("add partition");
        }
        let answer = consumer
            .offsets_for_times(request, OP_TIMEOUT)
            .expect("offsets_for_times");
        queries
            .iter()
            .map(|&(partition, _)| {
                let elem = answer
                    .find_partition(topic, partition)
                    .unwrap_or_else(|| panic!("partition {partition} missing from the answer"));
                elem.error()
                    .unwrap_or_else(|e| panic!("partition {partition}: {e}"));
                (partition, elem.offset())
            })
            .collect()
    };

    // Partition 0, one query at a time: (timestamp, earliest offset with a
    // timestamp >= it).
    let cases = [
        (BASE_TS - 1_000_000, Offset::Offset(0)),
        (BASE_TS, Offset::Offset(0)),
        (BASE_TS + 1, Offset::Offset(2)),
        (ts0(14), Offset::Offset(14)),
        (ts0(14) + 1, Offset::Offset(16)),
        (ts0(20), Offset::Offset(20)), // first record of the second round
        (ts0(39) + 1, Offset::Offset(40)),
        (ts0(58), Offset::Offset(58)),
        (ts0(59) + 1, Offset::End), // after the newest: -1
    ];
    for (ts, expected) in cases {
        assert_eq!(
            lookup(&[(0, ts)]),
            vec![(0, expected)],
            "offset for time {ts} (BASE_TS + {}) in partition 0",
            ts - BASE_TS
        );
    }

    // Several partitions in one request, including the empty one.
    assert_eq!(
        lookup(&[(0, ts0(30)), (1, ts1(7)), (2, BASE_TS)]),
        vec![
            (0, Offset::Offset(30)),
            (1, Offset::Offset(7)),
            (2, Offset::End)
        ]
    );
    assert_eq!(
        lookup(&[(0, BASE_TS + 4_000), (1, BASE_TS)]),
        vec![(0, Offset::End), (1, Offset::Offset(0))]
    );
}

#[tokio::test]
async fn log_append_time_topics_stamp_records_with_the_broker_clock() {
    let broker = Broker::start();
    let topic = "clients-log-append-time";
    create_topic(
        &broker,
        topic,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let producer = producer_with(&broker, &[]);
    let deadline = Instant::now() + OP_TIMEOUT;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64
    };
    let before = now();
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let v = format!("v{i}");
        let record = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(0)
            .payload(v.as_bytes())
            .timestamp(BASE_TS + i);
        deliveries.push(enqueue(&producer, record, deadline).await);
    }
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let d = delivered(&format!("record {i}"), delivery, deadline).await;
        assert_eq!(d.offset, i as i64);
    }
    let after = now();

    let messages = consume(&broker, topic, &[0], Offset::Beginning, 10, OP_TIMEOUT);
    for message in &messages {
        match message.timestamp() {
            Timestamp::LogAppendTime(ts) => assert!(
                (before - 1_000..=after + 1_000).contains(&ts),
                "LogAppendTime {ts} of offset {} is not within [{before}, {after}]",
                message.offset()
            ),
            other => panic!(
                "offset {} has {other:?}, not LogAppendTime",
                message.offset()
            ),
        }
    }
}

#[tokio::test]
async fn a_record_over_max_message_bytes_is_refused_by_the_broker() {
    let broker = Broker::start();
    let topic = "clients-too-large";
    create_topic(&broker, topic, 1, &[("max.message.bytes", "1000")]).await;
    // librdkafka's own limit stays well above the record, so the broker is the
    // one refusing it.
    let producer = producer_with(&broker, &[("message.max.bytes", "1000000")]);
    let deadline = Instant::now() + OP_TIMEOUT;

    let small = vec![b's'; 500];
    let record = FutureRecord::<[u8], [u8]>::to(topic)
        .partition(0)
        .payload(&small);
    let d = delivered(
        "a 500-byte record",
        enqueue(&producer, record, deadline).await,
        deadline,
    )
    .await;
    assert_eq!(d.offset, 0);

    let large = vec![b'L'; 5_000];
    let record = FutureRecord::<[u8], [u8]>::to(topic)
        .partition(0)
        .payload(&large);
    let delivery = enqueue(&producer, record, deadline).await; // accepted by librdkafka
    let left = deadline.saturating_duration_since(Instant::now());
    let result = tokio::time::timeout(left, delivery)
        .await
        .expect("a delivery report for the 5,000-byte record")
        .expect("delivery future cancelled");
    match result {
        Ok(d) => panic!(
            "a 5,000-byte record was accepted by a topic with max.message.bytes=1000 (offset {})",
            d.offset
        ),
        Err((err, message)) => {
            assert_eq!(
                err,
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                "delivery error for the 5,000-byte record"
            );
            assert_eq!(message.payload().map(<[u8]>::len), Some(5_000));
        }
    }

    // The partition is untouched and still takes records within the limit.
    let record = FutureRecord::<[u8], [u8]>::to(topic)
        .partition(0)
        .payload(&small);
    let d = delivered(
        "a second 500-byte record",
        enqueue(&producer, record, deadline).await,
        deadline,
    )
    .await;
    assert_eq!(d.offset, 1);
    let messages = consume(&broker, topic, &[0], Offset::Beginning, 2, OP_TIMEOUT);
    assert!(messages.iter().all(|m| m.payload() == Some(&small[..])));

    // A topic without the override takes the same record (default limit 1 MiB).
    let other = "clients-default-limit";
    create_topic(&broker, other, 1, &[]).await;
    let record = FutureRecord::<[u8], [u8]>::to(other)
        .partition(0)
        .payload(&large);
    let d = delivered(
        "a 5,000-byte record under the default limit",
        enqueue(&producer, record, deadline).await,
        deadline,
    )
    .await;
    assert_eq!(d.offset, 0);
}

/// Produces `count` records `v0`, `v1`, .. to partition 0 of `topic`.
async fn produce_numbered(broker: &Broker, topic: &str, count: usize) {
    let producer = producer_with(broker, &[]);
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let v = format!("v{i}");
        let record = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(0)
            .payload(v.as_bytes());
        deliveries.push(enqueue(&producer, record, deadline).await);
    }
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let d = delivered(&format!("record {i}"), delivery, deadline).await;
        assert_eq!(d.offset, i as i64);
    }
}

#[tokio::test]
async fn delete_records_moves_the_log_start_offset() {
    let broker = Broker::start();
    let topic = "clients-delete-records";
    create_topic(&broker, topic, 1, &[]).await;
    produce_numbered(&broker, topic, 100).await;

    let admin = admin(&broker);
    let mut request = TopicPartitionList::new();
    request
        .add_partition_offset(topic, 0, Offset::Offset(40))
        .expect("add partition");
    let answer = tokio::time::timeout(OP_TIMEOUT, admin.delete_records(&request, &admin_options()))
        .await
        .expect("DeleteRecords within the timeout")
        .expect("DeleteRecords request");
    let elem = answer
        .find_partition(topic, 0)
        .expect("partition 0 in the answer");
    elem.error().expect("DeleteRecords on partition 0");
    assert_eq!(elem.offset(), Offset::Offset(40), "new low watermark");

    let consumer = consumer(&broker);
    assert_eq!(
        consumer
            .fetch_watermarks(topic, 0, OP_TIMEOUT)
            .expect("fetch watermarks"),
        (40, 100)
    );

    let messages = consume(&broker, topic, &[0], Offset::Beginning, 60, OP_TIMEOUT);
    for (n, message) in messages.iter().enumerate() {
        let offset = 40 + n as i64;
        assert_eq!(message.offset(), offset, "consuming from the beginning");
        assert_eq!(text(message.payload()), Some(format!("v{offset}")));
    }

    // Deleting up to the end empties the partition; new records continue at 100.
    let mut request = TopicPartitionList::new();
    request
        .add_partition_offset(topic, 0, Offset::End)
        .expect("add partition");
    let answer = tokio::time::timeout(OP_TIMEOUT, admin.delete_records(&request, &admin_options()))
        .await
        .expect("DeleteRecords within the timeout")
        .expect("DeleteRecords request");
    let elem = answer.find_partition(topic, 0).expect("partition 0");
    elem.error().expect("DeleteRecords up to the end");
    assert_eq!(elem.offset(), Offset::Offset(100));
    assert_eq!(
        consumer
            .fetch_watermarks(topic, 0, OP_TIMEOUT)
            .expect("fetch watermarks"),
        (100, 100)
    );
}

#[tokio::test]
async fn delete_records_past_the_high_watermark_is_refused() {
    let broker = Broker::start();
    let topic = "clients-delete-records-range";
    create_topic(&broker, topic, 1, &[]).await;
    produce_numbered(&broker, topic, 10).await;

    let admin = admin(&broker);
    let mut request = TopicPartitionList::new();
    request
        .add_partition_offset(topic, 0, Offset::Offset(11))
        .expect("add partition");
    let answer = tokio::time::timeout(OP_TIMEOUT, admin.delete_records(&request, &admin_options()))
        .await
        .expect("DeleteRecords within the timeout")
        .expect("DeleteRecords request");
    let elem = answer.find_partition(topic, 0).expect("partition 0");
    assert_eq!(
        elem.error(),
        Err(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange)),
        "DeleteRecords before offset 11 of a 10-record partition"
    );
    let consumer = consumer(&broker);
    assert_eq!(
        consumer
            .fetch_watermarks(topic, 0, OP_TIMEOUT)
            .expect("fetch watermarks"),
        (0, 10)
    );
}

#[tokio::test]
async fn describe_configs_reports_values_and_sources() {
    let broker = Broker::start();
    let topic = "clients-describe-configs";
    create_topic(&broker, topic, 1, &[("retention.ms", "12345")]).await;

    let admin = admin(&broker);
    let results = tokio::time::timeout(
        OP_TIMEOUT,
        admin.describe_configs(
            &[
                ResourceSpecifier::Topic(topic),
                ResourceSpecifier::Topic("clients-no-such-topic"),
            ],
            &admin_options(),
        ),
    )
    .await
    .expect("DescribeConfigs within the timeout")
    .expect("DescribeConfigs request");
    assert_eq!(results.len(), 2);

    let resource = results[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("DescribeConfigs of {topic}: {e:?}"));
    let retention = resource
        .get("retention.ms")
        .expect("retention.ms is described");
    assert_eq!(retention.value.as_deref(), Some("12345"));
    assert_eq!(
        retention.source,
        ConfigSource::DynamicTopic,
        "{retention:?}"
    );
    assert!(!retention.is_default, "{retention:?}");

    let segment = resource
        .get("segment.bytes")
        .expect("segment.bytes is described");
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert_eq!(segment.source, ConfigSource::Default, "{segment:?}");
    assert!(segment.is_default, "{segment:?}");

    let cleanup = resource
        .get("cleanup.policy")
        .expect("cleanup.policy is described");
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert_eq!(cleanup.source, ConfigSource::Default, "{cleanup:?}");

    // The rdkafka crate (0.39) drops per-resource error codes and always returns
    // Ok; a topic that does not exist at least has no configs.
    match &results[1] {
        Err(code) => assert_eq!(*code, RDKafkaErrorCode::UnknownTopicOrPartition),
        Ok(resource) => assert!(
            resource.entries.is_empty(),
            "configs described for a topic that does not exist: {:?}",
            resource.entries
        ),
    }
}

#[tokio::test]
async fn idempotent_producer_writes_each_record_exactly_once() {
    const RECORDS: usize = 1_000;
    const PARTITIONS: i32 = 3;
    let broker = Broker::start();
    let topic = "clients-idempotent";
    create_topic(&broker, topic, PARTITIONS, &[]).await;

    let producer = producer_with(
        &broker,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    );
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let (k, v) = (format!("k{}", i % 37), format!("v{i}"));
        let record = FutureRecord::to(topic)
            .key(k.as_bytes())
            .payload(v.as_bytes());
        deliveries.push(enqueue(&producer, record, deadline).await);
    }
    let mut placed = Vec::with_capacity(RECORDS);
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let d = delivered(&format!("record {i}"), delivery, deadline).await;
        placed.push((d.partition, d.offset));
    }
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for &(partition, offset) in &placed {
        per_partition.entry(partition).or_default().push(offset);
    }
    for (partition, offsets) in &per_partition {
        assert_eq!(
            offsets,
            &(0..offsets.len() as i64).collect::<Vec<_>>(),
            "offsets acknowledged in partition {partition}, in send order"
        );
    }

    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let messages = consume(
        &broker,
        topic,
        &partitions,
        Offset::Beginning,
        RECORDS,
        OP_TIMEOUT,
    );
    let mut seen = vec![false; RECORDS];
    for message in &messages {
        let i = index_of(message, "v");
        assert!(!seen[i], "record {i} read twice");
        seen[i] = true;
        assert_eq!(
            placed[i],
            (message.partition(), message.offset()),
            "record {i}"
        );
        assert_eq!(text(message.key()), Some(format!("k{}", i % 37)));
    }
    let consumer = consumer(&broker);
    for (partition, offsets) in &per_partition {
        assert_eq!(
            consumer
                .fetch_watermarks(topic, *partition, OP_TIMEOUT)
                .expect("fetch watermarks"),
            (0, offsets.len() as i64),
            "watermarks of {topic}-{partition}"
        );
    }
}

/// Waits for the delivery report of `record` and returns the broker's refusal.
async fn refused(
    producer: &FutureProducer<TestContext>,
    what: &str,
    record: FutureRecord<'_, [u8], [u8]>,
) -> KafkaError {
    let deadline = Instant::now() + OP_TIMEOUT;
    let delivery = enqueue(producer, record, deadline).await;
    match tokio::time::timeout(OP_TIMEOUT, delivery)
        .await
        .unwrap_or_else(|_| panic!("no delivery report for {what}"))
        .expect("delivery future cancelled")
    {
        Ok(d) => panic!("{what} was accepted at offset {}", d.offset),
        Err((err, _)) => err,
    }
}

/// Keys on compacted topics (inside compressed batches too) and the topic's
/// timestamp bounds are enforced with Kafka's error codes.
#[tokio::test]
async fn keyless_records_on_compacted_topics_and_timestamps_out_of_bounds_are_refused() {
    let broker = Broker::start();
    let compacted = "checks-compacted";
    create_topic(&broker, compacted, 1, &[("cleanup.policy", "compact")]).await;
    let deadline = Instant::now() + OP_TIMEOUT;
    for codec in ["none", "gzip", "zstd"] {
        let producer = producer_with(&broker, &[("compression.type", codec)]);
        let keyed = FutureRecord::<[u8], [u8]>::to(compacted)
            .partition(0)
            .key(b"k")
            .payload(b"v");
        delivered(
            &format!("a keyed record ({codec})"),
            enqueue(&producer, keyed, deadline).await,
            deadline,
        )
        .await;
        let keyless = FutureRecord::<[u8], [u8]>::to(compacted)
            .partition(0)
            .payload(b"v");
        assert_eq!(
            refused(&producer, &format!("a keyless record ({codec})"), keyless).await,
            KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord),
            "{codec}"
        );
    }

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let bounded = "checks-timestamps";
    create_topic(
        &broker,
        bounded,
        1,
        &[("message.timestamp.before.max.ms", "3600000")],
    )
    .await;
    let producer = producer_with(&broker, &[("compression.type", "gzip")]);
    for (what, timestamp) in [
        (
            "two hours ahead (default after.max.ms: 1 hour)",
            now + 7_200_000,
        ),
        ("two hours old (before.max.ms: 1 hour)", now - 7_200_000),
    ] {
        let record = FutureRecord::<[u8], [u8]>::to(bounded)
            .partition(0)
            .payload(b"v")
            .timestamp(timestamp);
        assert_eq!(
            refused(&producer, what, record).await,
            KafkaError::MessageProduction(RDKafkaErrorCode::InvalidTimestamp),
            "{what}"
        );
    }
    let record = FutureRecord::<[u8], [u8]>::to(bounded)
        .partition(0)
        .payload(b"v")
        .timestamp(now - 60_000);
    let d = delivered(
        "a minute-old record",
        enqueue(&producer, record, deadline).await,
        deadline,
    )
    .await;
    assert_eq!(d.offset, 0);
}

// ---- garbage on raw connections ----

/// A request frame: size, api key, version, correlation id, client id, `body`.
fn request_frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client_id = b"sluice-garbage-test";
    let mut request = Vec::new();
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&correlation_id.to_be_bytes());
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    request.extend_from_slice(body);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    frame
}

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.bootstrap()).expect("connect to the broker");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("set write timeout");
    stream
}

/// Reads until the broker closes the connection (EOF or a reset) and returns how
/// many bytes it answered with first; an error if it is still open after
/// [`CLOSE_TIMEOUT`].
fn wait_until_closed(stream: &mut TcpStream) -> Result<usize, String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .expect("set read timeout");
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    let mut answered = 0;
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(answered),
            Ok(n) => answered += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "still open {CLOSE_TIMEOUT:?} later ({answered} bytes answered)"
                    ));
                }
            }
            Err(_) => return Ok(answered), // reset: closed too
        }
    }
}

/// Sends `bytes` on a new connection (then half-closes it if `then_shutdown`) and
/// checks that the broker closes it.
fn send_garbage(broker: &Broker, what: &str, bytes: &[u8], then_shutdown: bool) {
    let mut stream = connect(broker);
    // The broker may close before reading everything; a failed write is fine.
    let written = stream.write_all(bytes).and_then(|()| stream.flush());
    if then_shutdown && written.is_ok() {
        let _ = stream.shutdown(Shutdown::Write);
    }
    match wait_until_closed(&mut stream) {
        Ok(answered) => eprintln!("{what}: closed by the broker after {answered} bytes"),
        Err(problem) => panic!("{what}: {problem}"),
    }
}

/// Sends an ApiVersions v0 request on a new connection and checks the answer.
fn answers_api_versions(broker: &Broker) {
    let mut stream = connect(broker);
    stream
        .set_read_timeout(Some(OP_TIMEOUT))
        .expect("set read timeout");
    stream
        .write_all(&request_frame(18, 0, 77, &[]))
        .expect("send ApiVersions");
    let mut header = [0u8; 10];
    stream
        .read_exact(&mut header)
        .expect("read the ApiVersions answer");
    let correlation_id = i32::from_be_bytes(header[4..8].try_into().unwrap());
    let error_code = i16::from_be_bytes(header[8..10].try_into().unwrap());
    assert_eq!((correlation_id, error_code), (77, 0), "ApiVersions answer");
}

/// Produce v0-2 are advertised (librdkafka insists) but refused as Kafka 4 does:
/// each partition answered with UNSUPPORTED_VERSION (35), the connection kept.
#[tokio::test]
async fn produce_v0_to_v2_is_answered_with_unsupported_version() {
    let broker = Broker::start();
    for version in 0..=2i16 {
        let mut body = Vec::new();
        body.extend_from_slice(&1i16.to_be_bytes()); // acks
        body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
        body.extend_from_slice(&1i32.to_be_bytes()); // one topic
        body.extend_from_slice(&3i16.to_be_bytes());
        body.extend_from_slice(b"old");
        body.extend_from_slice(&1i32.to_be_bytes()); // one partition
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(&4i32.to_be_bytes()); // a (bogus) message set
        body.extend_from_slice(b"xxxx");
        let mut stream = connect(&broker);
        stream
            .set_read_timeout(Some(OP_TIMEOUT))
            .expect("set read timeout");
        stream
            .write_all(&request_frame(0, version, 41, &body))
            .expect("send Produce");
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).expect("Produce answer size");
        let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut answer).expect("Produce answer");
        let i32_at = |at: usize| i32::from_be_bytes(answer[at..at + 4].try_into().unwrap());
        assert_eq!(i32_at(0), 41, "v{version} correlation id");
        assert_eq!(i32_at(4), 1, "v{version} topic count");
        assert_eq!(&answer[10..13], b"old");
        assert_eq!((i32_at(13), i32_at(17)), (1, 3), "v{version} partition");
        let error = i16::from_be_bytes(answer[21..23].try_into().unwrap());
        assert_eq!(error, 35, "v{version} error code");
        let expected_len = 31 + if version >= 1 { 4 } else { 0 } + if version >= 2 { 8 } else { 0 };
        assert_eq!(answer.len(), expected_len, "v{version} response size");
        stream
            .write_all(&request_frame(18, 0, 42, &[]))
            .expect("the connection stays open");
        stream
            .read_exact(&mut size)
            .expect("ApiVersions after Produce v{version}");
    }
}

/// Produces `loop-0`, `loop-1`, .. to partition 0 of `topic`, 50 in flight at a
/// time, until `stop` is set; counts acknowledgements in `acked` and returns how
/// many it sent. Any delivery error fails the test.
async fn produce_until_stopped(
    producer: FutureProducer<TestContext>,
    topic: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> usize {
    let mut next = 0;
    while !stop.load(Ordering::SeqCst) {
        let deadline = Instant::now() + OP_TIMEOUT;
        let mut deliveries = Vec::with_capacity(50);
        for _ in 0..50 {
            let v = format!("loop-{next}");
            let record = FutureRecord::<[u8], [u8]>::to(&topic)
                .partition(0)
                .payload(v.as_bytes());
            deliveries.push((next, enqueue(&producer, record, deadline).await));
            next += 1;
        }
        for (i, delivery) in deliveries {
            let d = delivered(&format!("loop record {i}"), delivery, deadline).await;
            assert_eq!(d.offset, i as i64, "offset of loop record {i}");
            acked.fetch_add(1, Ordering::SeqCst);
        }
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_other_connections_does_not_disturb_a_producer() {
    let broker = Arc::new(Broker::start());
    let topic = "clients-garbage";
    create_topic(&broker, topic, 1, &[]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let producing = tokio::spawn(produce_until_stopped(
        producer_with(&broker, &[]),
        topic.to_string(),
        Arc::clone(&stop),
        Arc::clone(&acked),
    ));

    let raw = {
        let broker = Arc::clone(&broker);
        let acked = Arc::clone(&acked);
        tokio::task::spawn_blocking(move || {
            // Each case starts once the producer has made progress since the last.
            let progressed = |since: usize| {
                let deadline = Instant::now() + OP_TIMEOUT;
                loop {
                    let now = acked.load(Ordering::SeqCst);
                    if now > since {
                        return now;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the producer made no progress within {OP_TIMEOUT:?} ({now} acknowledged)"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x51u64);
            let mut random = |len: usize| {
                let mut bytes = vec![0u8; len];
                rng.fill(&mut bytes[..]);
                bytes
            };

            let mut cases: Vec<(&str, Vec<u8>, bool)> = Vec::new();
            // (a) random garbage: raw bytes whose "size" is negative, a frame of
            // the right size full of random bytes, and plain HTTP.
            let mut bytes = random(4096);
            bytes[0] |= 0x80;
            cases.push(("random bytes, negative size", bytes, false));
            let payload = random(1020);
            let mut bytes = (payload.len() as i32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            cases.push(("a frame of random bytes", bytes, false));
            cases.push((
                "an HTTP request",
                b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
                false,
            ));
            // (b) a 2 GiB size prefix, and a little of the "payload".
            let mut bytes = i32::MAX.to_be_bytes().to_vec();
            bytes.extend_from_slice(&random(64));
            cases.push(("a 2 GiB size prefix", bytes, false));
            // (c) an unknown API key, and a known API at an unknown version.
            cases.push((
                "unknown API key 9999",
                request_frame(9999, 0, 1, &[]),
                false,
            ));
            cases.push(("Metadata v99", request_frame(3, 99, 2, &[0; 8]), false));
            // A frame too short for a request header.
            cases.push(("a 3-byte frame", vec![0, 0, 0, 3, 1, 2, 3], false));
            // (d) a truncated request: the size says 200 bytes, 20 come, then the
            // client closes its side.
            let mut bytes = 200i32.to_be_bytes().to_vec();
            bytes.extend_from_slice(&request_frame(3, 12, 3, &[])[4..]);
            bytes.truncate(24);
            cases.push(("a truncated request, then EOF", bytes, true));

            let mut seen = progressed(0);
            for (what, bytes, then_shutdown) in &cases {
                send_garbage(&broker, what, bytes, *then_shutdown);
                seen = progressed(seen);
            }
            // All at once, too.
            let mut streams: Vec<(&str, TcpStream)> = cases
                .iter()
                .map(|(what, bytes, then_shutdown)| {
                    let mut stream = connect(&broker);
                    if stream.write_all(bytes).is_ok() && *then_shutdown {
                        let _ = stream.shutdown(Shutdown::Write);
                    }
                    (*what, stream)
                })
                .collect();
            for (what, stream) in &mut streams {
                if let Err(problem) = wait_until_closed(stream) {
                    panic!("{what} (concurrent): {problem}");
                }
            }
            progressed(seen);
            answers_api_versions(&broker);
        })
    };
    let raw_result = tokio::time::timeout(Duration::from_secs(120), raw)
        .await
        .expect("garbage cases within 120 s");
    stop.store(true, Ordering::SeqCst);
    let sent = tokio::time::timeout(OP_TIMEOUT * 2, producing)
        .await
        .expect("the producer stops")
        .expect("the producer task");
    if let Err(panic) = raw_result {
        std::panic::resume_unwind(panic.into_panic());
    }
    assert_eq!(
        acked.load(Ordering::SeqCst),
        sent,
        "every record acknowledged"
    );
    eprintln!("{sent} records produced next to the garbage");

    // The broker still answers, and has every record exactly once, in order.
    answers_api_versions(&broker);
    let messages = consume(&broker, topic, &[0], Offset::Beginning, sent, OP_TIMEOUT);
    for (i, message) in messages.iter().enumerate() {
        assert_eq!(message.offset(), i as i64);
        assert_eq!(index_of(message, "loop-"), i);
    }
    let stderr = broker.stderr();
    assert!(
        !stderr.contains("panicked"),
        "the broker panicked:\n{stderr}"
    );
}
