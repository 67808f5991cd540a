//! Transactional offset commits with the real broker: on the wire, what a
//! transactional client will not send on purpose (a commit for a generation the
//! group never had) and KIP-447's stable offsets (OffsetFetch with
//! `require_stable` while a transaction holds an offset pending), across a
//! restart too; with librdkafka, `send_offsets_to_transaction` in committed and
//! aborted transactions.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use std::thread;
use std::time::Duration;

use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, InitProducerIdRequest, InitProducerIdResponse, OffsetFetchRequest,
    OffsetFetchResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use broker::Broker;
use kafka::{OP_TIMEOUT, TestContext, client_config, create_topic};
use wire::Wire;

const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
/// Errors that only say the coordinator is not ready yet.
const NOT_READY: [i16; 3] = [14, 15, 16];

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A producer id from InitProducerId (idempotent: no transactional id needed
/// to get one).
fn producer_id(wire: &mut Wire) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let (response, _): (InitProducerIdResponse, _) = wire.call(ApiKey::InitProducerId, 4, &request);
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

struct Commit<'a> {
    group: &'a str,
    producer: (i64, i16),
    generation: i32,
    member: &'a str,
    partitions: &'a [(&'a str, i32, i64)],
}

/// TxnOffsetCommit v3, retried while the coordinator loads; the error of each
/// partition, in request order.
fn txn_commit(wire: &mut Wire, commit: &Commit<'_>) -> Vec<i16> {
    let topics = commit
        .partitions
        .iter()
        .map(|(topic, partition, offset)| {
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(str(topic)))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(*partition)
                        .with_committed_offset(*offset)
                        .with_committed_metadata(Some(str("m"))),
                ])
        })
        .collect();
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(str("txn")))
        .with_group_id(GroupId(str(commit.group)))
        .with_producer_id(ProducerId(commit.producer.0))
        .with_producer_epoch(commit.producer.1)
        .with_generation_id(commit.generation)
        .with_member_id(str(commit.member))
        .with_topics(topics);
    for _ in 0..100 {
        let (response, _): (TxnOffsetCommitResponse, _) =
            wire.call(ApiKey::TxnOffsetCommit, 3, &request);
        let errors: Vec<i16> = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        if !errors.iter().any(|e| NOT_READY.contains(e)) {
            return errors;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("the group coordinator never became ready");
}

/// OffsetFetch v7 of one partition: (offset, partition error).
fn fetch_v7(wire: &mut Wire, group: &str, topic: &str, require_stable: bool) -> (i64, i16) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(str(topic)))
                .with_partition_indexes(vec![0]),
        ]));
    for _ in 0..100 {
        let (response, _): (OffsetFetchResponse, _) = wire.call(ApiKey::OffsetFetch, 7, &request);
        if NOT_READY.contains(&response.error_code) {
            thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert_eq!(response.error_code, 0);
        let partition = &response.topics[0].partitions[0];
        return (partition.committed_offset, partition.error_code);
    }
    panic!("the group coordinator never became ready");
}

/// OffsetFetch v8 of one group, all its partitions: (offset, partition error)
/// of the first.
fn fetch_v8_all(wire: &mut Wire, group: &str, require_stable: bool) -> Vec<(i64, i16)> {
    let request = OffsetFetchRequest::default()
        .with_require_stable(require_stable)
        .with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str(group)))
                .with_topics(None::<Vec<OffsetFetchRequestTopics>>),
        ]);
    let (response, _): (OffsetFetchResponse, _) = wire.call(ApiKey::OffsetFetch, 8, &request);
    let group = &response.groups[0];
    assert_eq!(group.error_code, 0);
    group
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.committed_offset, p.error_code))
        .collect()
}

#[tokio::test]
async fn a_commit_for_a_generation_of_an_unknown_group_is_refused() {
    let broker = Broker::start();
    create_topic(&broker, "t", 1, &[]).await;
    let mut wire = Wire::connect(&broker.bootstrap());
    let producer = producer_id(&mut wire);
    let mut commit = Commit {
        group: "never-joined",
        producer,
        generation: 4,
        member: "member-1",
        partitions: &[("t", 0, 10)],
    };
    assert_eq!(txn_commit(&mut wire, &commit), [ILLEGAL_GENERATION]);
    // Outside group management (generation -1) the group is created.
    commit.generation = -1;
    commit.member = "";
    assert_eq!(txn_commit(&mut wire, &commit), [0]);
    // Now the group exists, without that member.
    commit.generation = 4;
    commit.member = "member-1";
    assert_eq!(txn_commit(&mut wire, &commit), [UNKNOWN_MEMBER_ID]);
}

#[tokio::test]
async fn a_pending_transactional_offset_is_unstable_until_its_transaction_ends() {
    let broker = Broker::start();
    create_topic(&broker, "t", 1, &[]).await;
    let mut wire = Wire::connect(&broker.bootstrap());
    let producer = producer_id(&mut wire);
    let commit = Commit {
        group: "eos",
        producer,
        generation: -1,
        member: "",
        partitions: &[("t", 0, 42), ("missing", 0, 1)],
    };
    assert_eq!(
        txn_commit(&mut wire, &commit),
        [0, UNKNOWN_TOPIC_OR_PARTITION]
    );

    // Not committed yet: a read_committed consumer asks for stable offsets and
    // is told to wait; without require_stable the offset is simply not there.
    assert_eq!(
        fetch_v7(&mut wire, "eos", "t", true),
        (-1, UNSTABLE_OFFSET_COMMIT)
    );
    assert_eq!(fetch_v7(&mut wire, "eos", "t", false), (-1, 0));
    // Pending offsets are not among the group's committed partitions.
    assert_eq!(fetch_v8_all(&mut wire, "eos", true), []);

    // The transaction has no marker yet: after a restart it is still pending.
    let mut broker = broker;
    drop(wire);
    broker.stop_gracefully();
    broker.start_again();
    let mut wire = Wire::connect(&broker.bootstrap());
    assert_eq!(
        fetch_v7(&mut wire, "eos", "t", true),
        (-1, UNSTABLE_OFFSET_COMMIT)
    );
}

/// The committed offset of `in-0` for `group`, as a read_committed consumer
/// asks for it (OffsetFetch with require_stable).
fn committed(consumer: &BaseConsumer<TestContext>) -> Offset {
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition("in", 0);
    let committed = consumer
        .committed_offsets(partitions, OP_TIMEOUT)
        .expect("OffsetFetch");
    committed
        .find_partition("in", 0)
        .expect("in-0 answered")
        .offset()
}

#[tokio::test]
async fn offsets_sent_to_a_transaction_count_only_once_it_commits() {
    let broker = Broker::start_with_args(&[
        "--transaction-state-log-num-partitions",
        "4",
        "--offsets-topic-num-partitions",
        "4",
    ]);
    create_topic(&broker, "in", 1, &[]).await;
    create_topic(&broker, "out", 1, &[]).await;
    let consumer: BaseConsumer<TestContext> = client_config(&broker)
        .set("group.id", "eos-group")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create_with_context(TestContext)
        .expect("create consumer");
    let producer: FutureProducer<TestContext> = client_config(&broker)
        .set("transactional.id", "eos-producer")
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "20000")
        .create_with_context(TestContext)
        .expect("create producer");
    producer.init_transactions(OP_TIMEOUT).expect("init");
    let group = consumer.group_metadata().expect("group metadata");

    let round = |input_offset: i64, commit: bool| {
        producer.begin_transaction().expect("begin");
        let record = FutureRecord::to("out").key("k").payload("v");
        producer.send_result(record).expect("queued");
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("in", 0, Offset::Offset(input_offset))
            .expect("offset");
        producer
            .send_offsets_to_transaction(&offsets, &group, OP_TIMEOUT)
            .expect("send offsets");
        if commit {
            producer.commit_transaction(OP_TIMEOUT).expect("commit");
        } else {
            producer.abort_transaction(OP_TIMEOUT).expect("abort");
        }
    };

    round(5, true);
    assert_eq!(committed(&consumer), Offset::Offset(5));
    // An aborted round leaves the offset where the last commit put it, and
    // the redone round moves it.
    round(9, false);
    assert_eq!(committed(&consumer), Offset::Offset(5));
    round(9, true);
    assert_eq!(committed(&consumer), Offset::Offset(9));

    // While a transaction holds offset 12 pending, a read_committed consumer
    // is told UNSTABLE_OFFSET_COMMIT and asks again until it commits.
    producer.begin_transaction().expect("begin");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("in", 0, Offset::Offset(12))
        .expect("offset");
    producer
        .send_offsets_to_transaction(&offsets, &group, OP_TIMEOUT)
        .expect("send offsets");
    thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(Duration::from_millis(500));
            producer.commit_transaction(OP_TIMEOUT).expect("commit");
        });
        assert_eq!(committed(&consumer), Offset::Offset(12));
    });

    // The commit marker settled it for good: a restart reads the same.
    drop(consumer);
    drop(producer);
    let mut broker = broker;
    broker.stop_gracefully();
    broker.start_again();
    let consumer: BaseConsumer<TestContext> = client_config(&broker)
        .set("group.id", "eos-group")
        .set("isolation.level", "read_committed")
        .create_with_context(TestContext)
        .expect("create consumer");
    assert_eq!(committed(&consumer), Offset::Offset(12));
}
