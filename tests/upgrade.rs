//! A data directory written before the metadata log (topics in
//! `meta/topics.toml`, producer ids in `meta/producer-ids`) is upgraded in place
//! by a single-node broker: its topics, their configs and their data stay.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;

use std::time::{Duration, Instant};

use broker::Broker;
use kafka::{OP_TIMEOUT, admin, admin_options, consumer, create_topic, producer};
use rdkafka::admin::{ConfigResource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPIC: &str = "legacy";
const PER_PARTITION: usize = 10;

/// What an older broker wrote for `legacy`: its id, its shards, its override.
const TOPIC_TABLE: &str = r#"
[topics.legacy]
id = "0123456789abcdef0123456789abcdef"
shards = [0, 0]

[topics.legacy.configs]
"retention.ms" = "1234567"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_from_before_the_metadata_log_keeps_its_topics_and_data() {
    let mut broker = Broker::start();
    create_topic(&broker, TOPIC, 2, &[("retention.ms", "1234567")]).await;
    let producer = producer(&broker);
    for partition in 0..2 {
        for i in 0..PER_PARTITION {
            let value = format!("p{partition}-{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(TOPIC)
                        .partition(partition)
                        .payload(&value),
                    OP_TIMEOUT,
                )
                .await
                .expect("delivered");
        }
    }
    drop(producer);
    broker.stop_gracefully();

    // Turn the directory into what an older broker left: no metadata log, no
    // meta.properties, no partition.metadata; the topic table and producer-id
    // reservation instead.
    let data = broker.data_dir();
    std::fs::remove_file(data.join("meta.properties")).expect("meta.properties written");
    std::fs::remove_dir_all(data.join("__cluster_metadata-0")).expect("metadata log written");
    std::fs::create_dir_all(data.join("meta")).unwrap();
    std::fs::write(data.join("meta").join("topics.toml"), TOPIC_TABLE).unwrap();
    std::fs::write(data.join("meta").join("producer-ids"), "5000\n").unwrap();
    for partition in 0..2 {
        std::fs::remove_file(
            data.join(format!("{TOPIC}-{partition}"))
                .join("partition.metadata"),
        )
        .expect("partition.metadata written");
    }

    broker.start_again();
    assert!(
        !data.join("meta").join("topics.toml").exists()
            && data.join("meta").join("topics.toml.migrated").exists(),
        "the topic table is moved aside once it is in the metadata log"
    );
    let admin = admin(&broker);
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(TOPIC)], &admin_options())
        .await
        .expect("DescribeConfigs");
    let resource: &ConfigResource = described[0].as_ref().expect("the topic is known");
    assert_eq!(
        resource
            .get("retention.ms")
            .and_then(|e| e.value.as_deref()),
        Some("1234567")
    );

    let consumer = consumer(&broker);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..2 {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen = Vec::new();
    let deadline = Instant::now() + OP_TIMEOUT;
    while seen.len() < 2 * PER_PARTITION {
        assert!(Instant::now() < deadline, "only {seen:?} read back");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("no consume error");
            seen.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    seen.sort();
    let mut expected: Vec<String> = (0..2)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| format!("p{p}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    broker.stop_gracefully();
    broker.start_again();
    assert!(
        !data.join("meta").join("topics.toml").exists(),
        "the table is not read again"
    );
}
