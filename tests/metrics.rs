//! The metrics and health endpoint of the real `sluice` binary: a produce and
//! consume run moves the counters by exactly what was sent, the text parses with
//! a Prometheus parser that is not ours, readiness and health answer, a taken
//! port stops the start with its reason, and per-partition series aggregate to
//! topic level on request.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/http.rs"]
mod http;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::time::Duration;

use broker::Broker;
use kafka::{OP_TIMEOUT, client_config, create_topic, producer};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use prometheus_parse::{Sample, Scrape, Value};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

const RECORDS: i64 = 100;
const VALUE: &str = "0123456789abcdef0123456789abcdef";

fn scrape(broker: &Broker) -> Scrape {
    let (status, body) = http::get(broker.metrics_addr(), "/metrics");
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|line| Ok(line.to_string()))).expect("Prometheus text parses")
}

fn scalar(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        Value::Summary(_) => panic!("{} is a summary", sample.metric),
    }
}

/// The sum over every series of `metric` whose labels include `labels`.
fn total(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(scalar)
        .sum()
}

fn series(scrape: &Scrape, metric: &str) -> Vec<HashMap<String, String>> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| (*s.labels).clone())
        .collect()
}

async fn produce(broker: &Broker, topic: &str) {
    let producer = producer(broker);
    for i in 0..RECORDS {
        let key = format!("key-{i}");
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&key)
                    .payload(VALUE)
                    .partition(0),
                OP_TIMEOUT,
            )
            .await
            .expect("produce");
    }
}

fn consume_all(broker: &Broker, topic: &str) -> BaseConsumer<kafka::TestContext> {
    let consumer: BaseConsumer<kafka::TestContext> = client_config(broker)
        .set("group.id", "metrics-group")
        .set("enable.auto.commit", "false")
        .create_with_context(kafka::TestContext)
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut seen = 0;
    let deadline = std::time::Instant::now() + OP_TIMEOUT;
    while seen < RECORDS {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed {seen} of {RECORDS}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            assert_eq!(message.offset(), seen);
            seen += 1;
        }
    }
    consumer
}

/// A ListOffsets for a partition that does not exist: one error for the
/// errors-by-API counter.
fn ask_for_a_missing_partition(broker: &Broker, topic: &str) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let request = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(99)
                        .with_timestamp(-1),
                ]),
        ]);
    let mut wire = wire::Wire::connect(&broker.bootstrap());
    let (response, _): (ListOffsetsResponse, _) = wire.call(ApiKey::ListOffsets, 7, &request);
    assert_eq!(response.topics[0].partitions[0].error_code, 3);
}

#[tokio::test]
async fn a_produce_and_consume_run_moves_the_counters_by_what_was_sent() {
    let broker = Broker::start();
    assert_eq!(
        http::get(broker.metrics_addr(), "/ready"),
        (200, "ready\n".into())
    );
    assert_eq!(
        http::get(broker.metrics_addr(), "/health"),
        (200, "ok\n".into())
    );
    assert_eq!(http::get(broker.metrics_addr(), "/nothing").0, 404);

    let topic = "metered";
    create_topic(&broker, topic, 1, &[]).await;
    let before = scrape(&broker);
    let produces_before = total(
        &before,
        "sluice_kafka_requests_total",
        &[("api", "Produce")],
    );
    let fsyncs_before = total(&before, "sluice_storage_fsync_latency_seconds", &[]);

    produce(&broker, topic).await;
    let consumer = consume_all(&broker, topic);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(topic, 0, Offset::Offset(40))
        .expect("commit offset");
    consumer
        .commit(&commit, CommitMode::Sync)
        .expect("commit 40");
    ask_for_a_missing_partition(&broker, topic);

    let after = scrape(&broker);
    let on_topic = [("topic", topic)];
    assert_eq!(
        total(&after, "sluice_topic_records_in_total", &on_topic),
        RECORDS as f64
    );
    let bytes_in = total(&after, "sluice_topic_bytes_in_total", &on_topic);
    assert!(
        bytes_in >= (RECORDS as usize * VALUE.len()) as f64,
        "bytes in {bytes_in}"
    );
    let bytes_out = total(&after, "sluice_topic_bytes_out_total", &on_topic);
    assert!(
        bytes_out >= bytes_in,
        "a full read-back returns every batch: {bytes_out} < {bytes_in}"
    );
    let partition = [("topic", topic), ("partition", "0")];
    assert_eq!(
        total(&after, "sluice_partition_log_end_offset", &partition),
        RECORDS as f64
    );
    assert_eq!(
        total(&after, "sluice_partition_high_watermark", &partition),
        RECORDS as f64
    );
    assert_eq!(
        total(&after, "sluice_partition_log_start_offset", &partition),
        0.0
    );
    assert_eq!(total(&after, "sluice_partition_leader", &partition), 1.0);
    assert!(total(&after, "sluice_partition_size_bytes", &partition) >= bytes_in);

    let produces = total(&after, "sluice_kafka_requests_total", &[("api", "Produce")]);
    assert!(
        produces - produces_before >= 1.0 && produces - produces_before <= RECORDS as f64,
        "produce requests moved by {}",
        produces - produces_before
    );
    assert!(total(&after, "sluice_kafka_requests_total", &[("api", "Fetch")]) >= 1.0);
    assert!(
        total(
            &after,
            "sluice_kafka_request_latency_seconds",
            &[("api", "Produce")]
        ) >= produces
    );
    assert_eq!(
        total(
            &after,
            "sluice_kafka_request_errors_total",
            &[
                ("api", "ListOffsets"),
                ("error", "UNKNOWN_TOPIC_OR_PARTITION")
            ]
        ),
        1.0
    );
    // fsync before ack: every acknowledged produce waited for one.
    let fsyncs = total(&after, "sluice_storage_fsync_latency_seconds", &[]);
    assert!(
        fsyncs - fsyncs_before >= 1.0,
        "fsyncs moved by {}",
        fsyncs - fsyncs_before
    );
    assert!(total(&after, "sluice_storage_group_commit_appends", &[]) >= 1.0);
    assert!(
        total(&after, "sluice_storage_tail_cache_hits_total", &[])
            + total(&after, "sluice_storage_tail_cache_misses_total", &[])
            >= 1.0
    );
    assert!(
        total(&after, "sluice_net_connections", &[]) >= 2.0,
        "producer and consumer connected"
    );
    assert!(total(&after, "sluice_net_connections_accepted_total", &[]) >= 2.0);

    let group = [
        ("group", "metrics-group"),
        ("topic", topic),
        ("partition", "0"),
    ];
    assert_eq!(
        total(&after, "sluice_consumer_group_committed_offset", &group),
        40.0
    );
    assert_eq!(
        total(&after, "sluice_consumer_group_lag", &group),
        (RECORDS - 40) as f64
    );
    assert_eq!(
        total(&after, "sluice_consumer_groups", &[("state", "Empty")]),
        1.0
    );
    for state in [
        "Empty",
        "PreparingRebalance",
        "CompletingRebalance",
        "Stable",
        "Dead",
    ] {
        assert_eq!(
            series(&after, "sluice_consumer_groups")
                .iter()
                .filter(|l| l["state"] == state)
                .count(),
            1
        );
    }
    for metric in [
        "sluice_reactor_stalls_total",
        "sluice_mesh_calls_sent_total",
        "sluice_net_sendfile_bytes_total",
    ] {
        assert!(!series(&after, metric).is_empty(), "{metric} is exported");
    }
    drop(consumer);
}

#[tokio::test]
async fn aggregation_sums_partitions_per_topic() {
    let broker = Broker::start_with_args(&["--metrics-aggregate-partitions", "true"]);
    let topic = "aggregated";
    create_topic(&broker, topic, 3, &[]).await;
    let producer = producer(&broker);
    for partition in 0..3 {
        for _ in 0..=partition {
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .payload(VALUE)
                        .partition(partition),
                    OP_TIMEOUT,
                )
                .await
                .expect("produce");
        }
    }
    let scrape = scrape(&broker);
    let on_topic = [("topic", topic)];
    assert_eq!(
        total(&scrape, "sluice_topic_partition_replicas", &on_topic),
        3.0
    );
    assert_eq!(
        total(&scrape, "sluice_partition_log_end_offset", &on_topic),
        6.0
    );
    assert_eq!(
        total(&scrape, "sluice_topic_records_in_total", &on_topic),
        6.0
    );
    for labels in series(&scrape, "sluice_partition_log_end_offset") {
        assert!(
            !labels.contains_key("partition"),
            "aggregated series {labels:?}"
        );
    }
}

#[test]
fn a_taken_metrics_port_stops_the_start_and_an_empty_address_turns_it_off() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &address,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started on a taken metrics port: {stderr}"
    );
    assert!(
        stderr.contains(&format!("metrics endpoint {address}"))
            && stderr.contains("--metrics-listen"),
        "{stderr}"
    );

    let mut broker = Broker::start_with_args(&["--metrics-listen", ""]);
    broker.stop_gracefully();
    let log = std::fs::read_to_string(broker.stderr_path()).expect("stderr");
    assert!(log.contains("metrics endpoint off"), "{log}");
    assert!(!log.contains("metrics_listen="), "{log}");
}
