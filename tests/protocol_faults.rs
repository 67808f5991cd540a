//! Protocol details checked on the wire, with the real broker: what a client
//! library hides (per-record produce errors, the size of a fetch response, leader
//! epoch checks).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice::record::builder::{NewRecord, build_batch};

use broker::Broker;
use kafka::create_topic;
use wire::Wire;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn produce(
    wire: &mut Wire,
    version: i16,
    topic: &str,
    partition: i32,
    batch: Vec<u8>,
) -> ProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    wire.call(ApiKey::Produce, version, &request).0
}

/// KIP-467: a refused batch names every record to blame (Produce v8+), as
/// librdkafka's 0011-produce_batch expects for keyless records on a compacted
/// topic (it marks those INVALID_RECORD and the rest _INVALID_DIFFERENT_RECORD).
#[tokio::test]
async fn produce_v8_names_every_keyless_record_of_a_compacted_topic() {
    let broker = Broker::start();
    create_topic(&broker, "compacted", 1, &[("cleanup.policy", "compact")]).await;
    let batch = build_batch(&[
        NewRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_ms: 1,
        },
        NewRecord {
            key: None,
            value: Some(b"v"),
            timestamp_ms: 1,
        },
        NewRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_ms: 1,
        },
        NewRecord {
            key: None,
            value: Some(b"v"),
            timestamp_ms: 1,
        },
    ]);
    let mut wire = Wire::connect(&broker.bootstrap());
    let response = produce(&mut wire, 8, "compacted", 0, batch);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 87, "INVALID_RECORD");
    let blamed: Vec<i32> = partition
        .record_errors
        .iter()
        .map(|e| e.batch_index)
        .collect();
    assert_eq!(
        blamed,
        vec![1, 3],
        "every keyless record, as Kafka lists them"
    );
    let message = partition.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .expect("a message");
    assert!(message.contains("no key"), "{message}");
}

/// A fetch over partitions on several shards stays within the request's
/// `max_bytes` (librdkafka's 0082-fetch_max_bytes).
#[tokio::test]
async fn a_fetch_over_several_shards_stays_within_max_bytes() {
    let broker = Broker::start_with_args(&["--shards", "2"]);
    let topic = "wide";
    create_topic(&broker, topic, 4, &[]).await;
    let mut wire = Wire::connect(&broker.bootstrap());
    let value = vec![7u8; 50_000];
    for partition in 0..4 {
        for _ in 0..12 {
            let batch = build_batch(&[NewRecord {
                key: None,
                value: Some(&value),
                timestamp_ms: 1,
            }]);
            let response = produce(&mut wire, 9, topic, partition, batch);
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        }
    }
    let max_bytes = 1_000_000;
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    (0..4)
                        .map(|partition| {
                            FetchPartition::default()
                                .with_partition(partition)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        ]);
    let (response, _): (FetchResponse, usize) = wire.call(ApiKey::Fetch, 11, &request);
    let sizes: Vec<usize> = response.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .collect();
    let total: usize = sizes.iter().sum();
    assert!(total > 0, "some records came back: {sizes:?}");
    assert!(
        total <= max_bytes as usize,
        "{total} record bytes for max_bytes {max_bytes}: {sizes:?}"
    );
}

/// Fetch v9+ carries the leader epoch the client believes current: an older
/// one is fenced, a newer one unknown.
#[tokio::test]
async fn fetch_checks_the_clients_leader_epoch() {
    let broker = Broker::start();
    create_topic(&broker, "epochs", 1, &[]).await;
    let mut wire = Wire::connect(&broker.bootstrap());
    let fetch = |epoch: i32| {
        FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name("epochs"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(epoch)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    };
    let error = |wire: &mut Wire, epoch| {
        let (response, _): (FetchResponse, usize) = wire.call(ApiKey::Fetch, 11, &fetch(epoch));
        response.responses[0].partitions[0].error_code
    };
    assert_eq!(error(&mut wire, -1), 0, "no epoch: no check");
    assert_eq!(error(&mut wire, 0), 0, "the current epoch");
    assert_eq!(error(&mut wire, 1), 75, "UNKNOWN_LEADER_EPOCH");
}
