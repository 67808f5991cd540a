//! A partition that cannot be opened is a loud failure, not a silent one (issue 9):
//! `sluice serve` refuses to start and names it with the reason, unless
//! `--allow-offline-partitions` is given; then it serves the other partitions and a
//! produce to the offline one gets KAFKA_STORAGE_ERROR, not a timeout.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;

use std::time::{Duration, Instant};

use broker::Broker;
use kafka::{OP_TIMEOUT, TestContext, client_config, consumer, create_topic};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

/// A producer that reports the first error a partition answers instead of
/// retrying until `message.timeout.ms`.
fn producer_without_retries(broker: &Broker) -> FutureProducer<TestContext> {
    client_config(broker)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.send.max.retries", "0")
        .set("message.timeout.ms", "20000")
        .set("request.timeout.ms", "10000")
        .create_with_context(TestContext)
        .expect("create producer")
}

/// Sends `value` to partition 0 of `topic` and returns its offset or the
/// delivery error.
async fn send(
    producer: &FutureProducer<TestContext>,
    topic: &str,
    value: &str,
) -> Result<i64, KafkaError> {
    let record = FutureRecord::<(), _>::to(topic).payload(value).partition(0);
    let delivery = producer
        .send_result(record)
        .unwrap_or_else(|(err, _)| panic!("enqueue a record for {topic}: {err}"));
    tokio::time::timeout(OP_TIMEOUT, delivery)
        .await
        .unwrap_or_else(|_| panic!("no delivery report for {topic} within {OP_TIMEOUT:?}"))
        .expect("delivery future cancelled")
        .map(|delivery| delivery.offset)
        .map_err(|(err, _)| err)
}

/// The values of partition 0 of `topic`, from offset 0 until `count` arrived.
fn read_values(broker: &Broker, topic: &str, count: usize) -> Vec<String> {
    let consumer = consumer(broker);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(0))
        .expect("add partition");
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        assert!(
            Instant::now() < deadline,
            "read only {values:?} of {count} records from {topic} within {OP_TIMEOUT:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(err)) => panic!("consumer error on {topic} after {values:?}: {err}"),
            Some(Ok(message)) => values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned()),
        }
    }
    values
}

#[tokio::test]
async fn a_partition_that_cannot_open_stops_the_start_or_answers_kafka_storage_error() {
    let mut broker = Broker::start_with_args(&["--shards", "2"]);
    let (broken, healthy) = ("offline-broken", "offline-healthy");
    create_topic(&broker, broken, 1, &[]).await;
    create_topic(&broker, healthy, 1, &[]).await;
    let producer = producer_without_retries(&broker);
    for topic in [broken, healthy] {
        let offset = send(&producer, topic, "before").await;
        assert_eq!(offset.expect("produce before the damage"), 0, "{topic}");
    }
    drop(producer);
    broker.stop_gracefully();

    let partition = format!("{broken}-0");
    let checkpoint = broker
        .data_dir()
        .join(&partition)
        .join("leader-epoch-checkpoint");
    assert!(
        checkpoint.is_file(),
        "{} was not written",
        checkpoint.display()
    );
    std::fs::write(&checkpoint, "not a checkpoint\n").expect("overwrite the checkpoint");

    // Without the flag the broker refuses to start, naming the partition and why.
    let status = broker.start_again_expecting_exit();
    let stderr = broker.stderr_of_last_start();
    assert!(
        !status.success(),
        "exited with {status} despite {partition}"
    );
    assert!(
        stderr.contains(&format!("{partition}: "))
            && stderr.contains("leader-epoch-checkpoint")
            && stderr.contains("--allow-offline-partitions"),
        "the refusal should name {partition}, the reason (its leader-epoch-checkpoint) and \
         the flag; stderr was:\n{stderr}"
    );

    // With it the broker serves; the broken partition answers KAFKA_STORAGE_ERROR.
    broker.start_again_with_args(&["--shards", "2", "--allow-offline-partitions"]);
    let stderr = broker.stderr_of_last_start();
    assert!(
        stderr.contains("cannot open partition") && stderr.contains(broken),
        "the broker should log the partition it could not open; stderr was:\n{stderr}"
    );
    let producer = producer_without_retries(&broker);
    match send(&producer, broken, "after").await {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError)) => {}
        other => {
            panic!("produce to the offline {partition}: expected KafkaStorageError, got {other:?}")
        }
    }
    let offset = send(&producer, healthy, "after").await;
    assert_eq!(offset.expect("produce to the healthy topic"), 1);
    assert_eq!(read_values(&broker, healthy, 2), ["before", "after"]);
    broker.stop_gracefully();
}
