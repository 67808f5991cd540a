//! `sluice::net::kafka_client::KafkaClient`, the replica fetcher's connection to a
//! leader, against the real `sluice serve`: ApiVersions, Metadata and Fetch on
//! one connection, the response size limit, a send timeout, and a refused connect.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use broker::{Broker, reserve_port};
use kafka::{OP_TIMEOUT, create_topic, producer};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, FetchRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;
use sluice::net::kafka_client::{ClientError, KafkaClient};

const CLIENT_ID: &str = "sluice-kafka-client-test";
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Runs `future` on a glommio executor in this thread.
fn on_glommio<T>(future: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("make the glommio executor")
        .run(future)
}

fn addr(broker: &Broker) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, broker.port()))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A Fetch v12 of partition 0 of `topic` from `offset`, as a consumer (replica -1).
fn fetch(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

fn api_versions() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-test"))
        .with_client_software_version(StrBytes::from_static_str("0.1"))
}

/// Produces `count` records to partition 0 of a new one-partition `topic` with
/// librdkafka and waits for their delivery.
fn create_and_produce(broker: &Broker, topic: &str, count: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        create_topic(broker, topic, 1, &[]).await;
        let producer = producer(broker);
        for i in 0..count {
            let value = format!("value-{i}");
            let record = FutureRecord::<(), _>::to(topic)
                .payload(&value)
                .partition(0);
            let delivery = tokio::time::timeout(OP_TIMEOUT, producer.send(record, OP_TIMEOUT))
                .await
                .expect("delivery within the timeout");
            let (partition, offset) = delivery
                .map(|d| (d.partition, d.offset))
                .unwrap_or_else(|(error, _)| panic!("record {i} not delivered: {error}"));
            assert_eq!((partition, offset), (0, i as i64), "record {i}");
        }
    });
}

#[test]
fn api_versions_metadata_and_fetch_on_one_connection_then_a_timeout() {
    let broker = Broker::start();
    let topic = "kafka-client-fetch";
    let records = 5;
    create_and_produce(&broker, topic, records);
    let addr = addr(&broker);

    on_glommio(async move {
        let mut client = KafkaClient::connect(addr, CLIENT_ID, MAX_RESPONSE_BYTES, TIMEOUT)
            .await
            .expect("connect");

        // v3 is flexible (request header v2) but its response header is v0.
        let versions = client
            .send(&api_versions(), 3, TIMEOUT)
            .await
            .expect("ApiVersions v3");
        assert_eq!(versions.error_code, 0);
        let fetch_versions = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Fetch as i16)
            .expect("Fetch is listed");
        assert!(
            fetch_versions.min_version <= 12 && 12 <= fetch_versions.max_version,
            "Fetch versions {}..{}",
            fetch_versions.min_version,
            fetch_versions.max_version
        );

        let metadata = client
            .send(
                &MetadataRequest::default().with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
                ])),
                12,
                TIMEOUT,
            )
            .await
            .expect("Metadata v12");
        let listed = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref() == Some(&topic_name(topic)))
            .expect("the topic is listed");
        assert_eq!(listed.error_code, 0);
        assert_eq!(listed.partitions.len(), 1);
        let leader = listed.partitions[0].leader_id;
        assert!(
            metadata.brokers.iter().any(|b| b.node_id == leader),
            "leader {leader:?} is a listed broker"
        );

        let fetched = client
            .send(&fetch(topic, 0, 100), 12, TIMEOUT)
            .await
            .expect("Fetch v12");
        assert_eq!(fetched.error_code, 0);
        assert_eq!(fetched.responses.len(), 1);
        let partition = &fetched.responses[0].partitions[0];
        assert_eq!(partition.partition_index, 0);
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.high_watermark, records as i64);
        let batches = partition.records.as_ref().expect("records");
        // A v2 batch starts with its base offset: the first one is at offset 0.
        assert!(batches.len() > 61, "{} bytes of records", batches.len());
        assert_eq!(i64::from_be_bytes(batches[..8].try_into().unwrap()), 0);

        // At the log end the broker holds the fetch for max_wait_ms; the client
        // gives up first and then refuses the connection it left mid-exchange.
        let started = Instant::now();
        let held = client
            .send(
                &fetch(topic, records as i64, 5_000),
                12,
                Duration::from_millis(300),
            )
            .await;
        assert!(matches!(held, Err(ClientError::Timeout)), "{held:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let after = client.send(&api_versions(), 3, TIMEOUT).await;
        assert!(matches!(after, Err(ClientError::Unusable)), "{after:?}");
    });
}

#[test]
fn a_response_over_the_limit_is_refused_and_the_connection_unusable() {
    let broker = Broker::start();
    let addr = addr(&broker);
    on_glommio(async move {
        let mut client = KafkaClient::connect(addr, CLIENT_ID, 64, TIMEOUT)
            .await
            .expect("connect");
        let refused = client.send(&api_versions(), 3, TIMEOUT).await;
        match refused {
            Err(ClientError::TooLarge { size, limit }) => {
                assert_eq!(limit, 64);
                assert!(size > 64, "announced {size} bytes");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let after = client.send(&api_versions(), 3, TIMEOUT).await;
        assert!(matches!(after, Err(ClientError::Unusable)), "{after:?}");
    });
}

#[test]
fn connect_to_a_closed_port_fails_within_the_timeout() {
    // Bound but not listening: connections to it are refused.
    let (port, _reservation) = reserve_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_secs(2);
    on_glommio(async move {
        let started = Instant::now();
        let result = KafkaClient::connect(addr, CLIENT_ID, MAX_RESPONSE_BYTES, timeout).await;
        assert!(
            matches!(result, Err(ClientError::Connect(_))),
            "{:?}",
            result.err()
        );
        assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
    });
}
