//! librdkafka clients (the `rdkafka` crate) for a test [`Broker`].
//!
//! Include it after the broker harness:
//! `#[path = "support/broker.rs"] mod broker;`
//! `#[path = "support/kafka.rs"] mod kafka;`
//!
//! Every client logs through [`TestContext`], which writes librdkafka's log lines
//! and errors to stderr; libtest shows them for failing tests only. Set
//! `SLUICE_TEST_RDKAFKA_DEBUG` to a list of librdkafka debug contexts (for example
//! `broker,protocol,fetch`) to see what the clients send and receive.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

use crate::broker::Broker;

/// Upper bound for any single client operation in a test.
pub const OP_TIMEOUT: Duration = Duration::from_secs(20);

/// Writes librdkafka's logs and client errors to stderr.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestContext;

impl ClientContext for TestContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("librdkafka {level:?} {fac}: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("librdkafka error: {error}: {reason}");
    }
}

impl ConsumerContext for TestContext {}

/// `bootstrap.servers` and bounded socket timeouts; warnings and errors are
/// logged, debug contexts from `SLUICE_TEST_RDKAFKA_DEBUG`.
pub fn client_config(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
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

/// acks=all, not idempotent, bounded delivery time.
pub fn producer(broker: &Broker) -> FutureProducer<TestContext> {
    client_config(broker)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "20000")
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "5")
        .create_with_context(TestContext)
        .expect("create producer")
}

/// A consumer that only reads the partitions it is assigned: no subscription, no
/// commits, and no silent offset reset. librdkafka's `assign` needs a group.id,
/// though the group is never joined.
pub fn consumer(broker: &Broker) -> BaseConsumer<TestContext> {
    client_config(broker)
        .set("group.id", "sluice-test-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create consumer")
}

pub fn admin(broker: &Broker) -> AdminClient<TestContext> {
    client_config(broker)
        .create_with_context(TestContext)
        .expect("create admin client")
}

/// Request and operation timeouts of 10 s.
pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .operation_timeout(Some(Duration::from_secs(10)))
}

/// Creates `topic` with `partitions` partitions and `configs` through the admin
/// client and waits until metadata lists all its partitions.
pub async fn create_topic(broker: &Broker, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(broker);
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let created = tokio::time::timeout(
        OP_TIMEOUT,
        admin.create_topics(&[new_topic], &admin_options()),
    )
    .await
    .expect("CreateTopics within the timeout")
    .expect("CreateTopics request");
    assert_eq!(created, vec![Ok(topic.to_string())], "create {topic}");

    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), OP_TIMEOUT)
            .expect("fetch metadata");
        if let Some(t) = metadata.topics().iter().find(|t| t.name() == topic)
            && t.error().is_none()
            && t.partitions().len() == partitions as usize
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} not listed with {partitions} partitions within {OP_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The committed offset of partition 0 of `topic`, retrying errors while the
/// group coordinator is created or loads, for up to `patience`.
pub fn committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    patience: Duration,
) -> rdkafka::Offset {
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions.add_partition(topic, 0);
    let deadline = Instant::now() + patience;
    loop {
        match consumer.committed_offsets(partitions.clone(), OP_TIMEOUT) {
            Ok(committed) => return committed.elements()[0].offset(),
            Err(error) => {
                eprintln!("OffsetFetch: {error}");
                assert!(
                    Instant::now() < deadline,
                    "OffsetFetch kept failing: {error}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}
