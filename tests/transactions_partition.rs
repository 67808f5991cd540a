//! The partition side of transactions on the wire, with the real broker and
//! transactional batches built by hand: an open transaction holds the last
//! stable offset, which `read_committed` fetches and ListOffsets honour and which
//! survives a restart, clean or not. (Markers come from the coordinator's
//! WriteTxnMarkers; the client tests of transactions end to end drive them.)

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice::record::builder::{BatchWriter, NewRecord, build_batch, build_batch_with};
use sluice::record::{Attributes, BatchHeader};
use sluice::types::{ProducerEpoch, ProducerId};

use broker::Broker;
use kafka::create_topic;
use wire::Wire;

const TOPIC: &str = "txns";
const PRODUCER: i64 = 5_000;

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn records(count: usize) -> Vec<NewRecord<'static>> {
    (0..count)
        .map(|_| NewRecord {
            key: None,
            value: Some(b"value"),
            timestamp_ms: 1,
        })
        .collect()
}

/// A batch of `count` records from the test's producer at `first_sequence`.
fn producer_batch(transactional: bool, first_sequence: i32, count: usize) -> Vec<u8> {
    let attributes = if transactional {
        Attributes(0).with_transactional()
    } else {
        Attributes(0)
    };
    build_batch_with(
        &records(count),
        BatchWriter {
            attributes,
            producer_id: ProducerId(PRODUCER),
            producer_epoch: ProducerEpoch(0),
            base_sequence: first_sequence,
        },
    )
}

/// The partition's error code for producing `batch`.
fn produce(wire: &mut Wire, batch: Vec<u8>) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let (response, _): (ProduceResponse, usize) = wire.call(ApiKey::Produce, 9, &request);
    response.responses[0].partition_responses[0].error_code
}

/// What a fetch from `offset` saw.
#[derive(Debug, PartialEq, Eq)]
struct Fetched {
    /// The base offsets of the batches returned.
    batches: Vec<i64>,
    high_watermark: i64,
    last_stable_offset: i64,
    /// `None` when the response's list is null.
    aborted: Option<usize>,
}

fn fetch(wire: &mut Wire, offset: i64, isolation_level: i8, max_wait_ms: i32) -> Fetched {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name())
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let (response, _): (FetchResponse, usize) = wire.call(ApiKey::Fetch, 11, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let mut batches = Vec::new();
    let mut bytes: &[u8] = partition.records.as_deref().unwrap_or_default();
    while let Some(header) = BatchHeader::parse(bytes) {
        batches.push(header.base_offset().0);
        bytes = &bytes[header.total_len().expect("a batch length")..];
    }
    Fetched {
        batches,
        high_watermark: partition.high_watermark,
        last_stable_offset: partition.last_stable_offset,
        aborted: partition.aborted_transactions.as_ref().map(Vec::len),
    }
}

/// ListOffsets latest at `isolation_level`.
fn latest(wire: &mut Wire, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name())
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let (response, _): (ListOffsetsResponse, usize) = wire.call(ApiKey::ListOffsets, 5, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    partition.offset
}

#[tokio::test]
async fn an_open_transaction_holds_the_last_stable_offset_across_restarts() {
    let mut broker = Broker::start();
    create_topic(&broker, TOPIC, 1, &[]).await;
    let mut wire = Wire::connect(&broker.bootstrap());
    assert_eq!(produce(&mut wire, build_batch(&records(2))), 0);
    assert_eq!(produce(&mut wire, producer_batch(true, 0, 2)), 0);
    assert_eq!(produce(&mut wire, build_batch(&records(1))), 0);
    assert_eq!(
        produce(&mut wire, producer_batch(false, 2, 1)),
        48,
        "INVALID_TXN_STATE: a plain batch inside the producer's open transaction"
    );

    let committed = Fetched {
        batches: vec![0],
        high_watermark: 5,
        last_stable_offset: 2,
        aborted: Some(0),
    };
    assert_eq!(fetch(&mut wire, 0, 1, 0), committed);
    assert_eq!(
        fetch(&mut wire, 0, 0, 0),
        Fetched {
            batches: vec![0, 2, 4],
            aborted: None,
            ..committed
        }
    );
    let waited = fetch(&mut wire, 2, 1, 300);
    assert_eq!(waited.batches, Vec::<i64>::new(), "nothing below the LSO");
    assert_eq!((latest(&mut wire, 1), latest(&mut wire, 0)), (2, 5));

    broker.stop_gracefully();
    broker.start_again();
    let mut wire = Wire::connect(&broker.bootstrap());
    assert_eq!(fetch(&mut wire, 0, 1, 0), committed, "from the snapshot");
    assert_eq!(produce(&mut wire, producer_batch(true, 2, 1)), 0);

    broker.restart_with_sigkill();
    let mut wire = Wire::connect(&broker.bootstrap());
    assert_eq!(
        fetch(&mut wire, 0, 1, 0),
        Fetched {
            high_watermark: 6,
            ..committed
        },
        "replayed from the log"
    );
    assert_eq!(latest(&mut wire, 1), 2);
}
