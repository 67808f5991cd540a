//! Transactions against the real `sluice serve`: librdkafka's transactional
//! producer (the `rdkafka` crate) commits and aborts, commits consumed offsets
//! with `send_offsets_to_transaction`, a second producer with the
//! same `transactional.id` fences the first, a producer silent past its
//! `transaction.timeout.ms` is aborted by the coordinator, a transaction
//! decided right before a SIGKILL completes after the restart; raw requests check
//! the refusals a client never provokes on purpose (out-of-order transitions,
//! stale epochs, timeouts over the maximum, a produce to a partition not added
//! to the transaction) and the APIs only admin tools and brokers send
//! (DescribeProducers, the batched AddPartitionsToTxn v4-5 with `verify_only`)
//! and `transaction.version` 2 as Kafka 4 clients speak it (Produce v12,
//! EndTxn v5, TxnOffsetCommit v5).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, InitProducerIdRequest,
    InitProducerIdResponse, ListTransactionsRequest, ListTransactionsResponse, ProduceRequest,
    ProduceResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice::record::Attributes;
use sluice::record::builder::{BatchWriter, NewRecord, build_batch_with};

use broker::Broker;
use kafka::{OP_TIMEOUT, TestContext, client_config, create_topic};
use wire::Wire;

const CONCURRENT_TRANSACTIONS: i16 = 51;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const TRANSACTION_ABORTABLE: i16 = 120;

/// Two shards, few `__transaction_state` partitions, and a timeout check every
/// 200 ms so a silent producer is aborted quickly.
fn start_broker() -> Broker {
    Broker::start_with_args(&[
        "--shards",
        "2",
        "--transaction-state-log-num-partitions",
        "4",
        "--offsets-topic-num-partitions",
        "4",
        "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
        "200",
    ])
}

fn transactional_producer(
    broker: &Broker,
    id: &str,
    timeout_ms: u32,
) -> FutureProducer<TestContext> {
    client_config(broker)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("message.timeout.ms", timeout_ms.to_string())
        // librdkafka wants its socket timeout within the transaction timeout.
        .set("socket.timeout.ms", timeout_ms.min(10_000).to_string())
        .set("linger.ms", "5")
        .create_with_context(TestContext)
        .expect("create a transactional producer")
}

async fn send(producer: &FutureProducer<TestContext>, topic: &str, values: &[&str]) {
    for value in values {
        producer
            .send(
                FutureRecord::<(), str>::to(topic)
                    .partition(0)
                    .payload(*value),
                OP_TIMEOUT,
            )
            .await
            .unwrap_or_else(|(error, _)| panic!("send {value}: {error}"));
    }
}

/// Every record value of partition 0 of `topic` up to its end, read with
/// `isolation` (`read_committed` or `read_uncommitted`).
fn read_all(
    broker: &Broker,
    topic: &str,
    isolation: &str,
    expected_at_least: usize,
) -> Vec<String> {
    read_partition(broker, topic, 0, isolation, expected_at_least)
}

/// Every record value of `partition` of `topic`, read with `isolation` until
/// at least `expected_at_least` came and the partition is quiet, or 5 s passed.
fn read_partition(
    broker: &Broker,
    topic: &str,
    partition: i32,
    isolation: &str,
    expected_at_least: usize,
) -> Vec<String> {
    let consumer: BaseConsumer<TestContext> = client_config(broker)
        .set("group.id", "sluice-test-assign-only")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    // Generous: after a restart under a loaded machine, the markers of a decided
    // transaction are written by a background task with backoff; reading stops
    // as soon as the expected records are there.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => values
                .push(String::from_utf8(message.payload().unwrap_or_default().to_vec()).unwrap()),
            Some(Err(error)) => panic!("consume {topic}: {error}"),
            None if values.len() >= expected_at_least => break,
            None => {}
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_and_aborted_transactions_end_with_markers() {
    let broker = start_broker();
    create_topic(&broker, "txn-basic", 1, &[]).await;
    let producer = transactional_producer(&broker, "txn-basic-producer", 60_000);
    producer.init_transactions(OP_TIMEOUT).expect("init");

    producer.begin_transaction().expect("begin");
    send(&producer, "txn-basic", &["c0", "c1", "c2"]).await;
    producer.commit_transaction(OP_TIMEOUT).expect("commit");

    producer.begin_transaction().expect("begin");
    send(&producer, "txn-basic", &["a0", "a1"]).await;
    producer.abort_transaction(OP_TIMEOUT).expect("abort");

    producer.begin_transaction().expect("begin");
    send(&producer, "txn-basic", &["c3"]).await;
    producer.commit_transaction(OP_TIMEOUT).expect("commit");

    // Every data record, the markers skipped by the client.
    let all = read_all(&broker, "txn-basic", "read_uncommitted", 6);
    assert_eq!(all, ["c0", "c1", "c2", "a0", "a1", "c3"]);
    // Exactly the committed ones.
    let committed = read_all(&broker, "txn-basic", "read_committed", 4);
    assert_eq!(committed, ["c0", "c1", "c2", "c3"]);
}

/// librdkafka's 0129-fetch_aborted_msgs on its own: an aborted transaction of
/// 1,000 records spread over many small segments gives `read_committed` fetch
/// responses holding only aborted batches (librdkafka once took those for
/// records too large to fetch, #2993). The consumer skips them all, with no
/// error, and reaches the end of the partition past the abort marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_skips_an_aborted_transaction_spanning_segments() {
    const RECORDS: usize = 1_000;
    let broker = start_broker();
    create_topic(
        &broker,
        "txn-aborted-only",
        1,
        &[("max.message.bytes", "10000"), ("segment.bytes", "20000")],
    )
    .await;
    let producer: FutureProducer<TestContext> = client_config(&broker)
        .set("transactional.id", "txn-aborted-only-producer")
        .set("message.max.bytes", "10000")
        .set("linger.ms", "100")
        .create_with_context(TestContext)
        .expect("create a transactional producer");
    producer.init_transactions(OP_TIMEOUT).expect("init");
    producer.begin_transaction().expect("begin");
    let value = vec![b'x'; 1_000];
    let deliveries: Vec<_> = (0..RECORDS)
        .map(|_| {
            producer
                .send_result(
                    FutureRecord::<(), [u8]>::to("txn-aborted-only")
                        .partition(0)
                        .payload(&value),
                )
                .unwrap_or_else(|(error, _)| panic!("enqueue: {error}"))
        })
        .collect();
    for delivery in deliveries {
        delivery
            .await
            .expect("delivery future")
            .unwrap_or_else(|(error, _)| panic!("deliver: {error}"));
    }
    producer.abort_transaction(OP_TIMEOUT).expect("abort");

    let consumer: BaseConsumer<TestContext> = client_config(&broker)
        .set("group.id", "sluice-test-assign-only")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create_with_context(TestContext)
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("txn-aborted-only", 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no end of partition");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => panic!("an aborted record was read at {}", message.offset()),
            Some(Err(KafkaError::PartitionEOF(0))) => break,
            Some(Err(error)) => panic!("consume: {error}"),
            None => {}
        }
    }
    let position = consumer.position().expect("position");
    let end = position
        .find_partition("txn-aborted-only", 0)
        .expect("the assigned partition")
        .offset();
    // The records and the abort marker after them.
    assert_eq!(end, Offset::Offset(RECORDS as i64 + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_id_fences_the_first() {
    let broker = start_broker();
    create_topic(&broker, "txn-fence", 1, &[]).await;
    let first = transactional_producer(&broker, "txn-fence-id", 60_000);
    first.init_transactions(OP_TIMEOUT).expect("init the first");
    first.begin_transaction().expect("begin");
    send(&first, "txn-fence", &["zombie"]).await;

    // The coordinator aborts the first producer's open transaction and answers
    // CONCURRENT_TRANSACTIONS until that is done; librdkafka retries.
    let second = transactional_producer(&broker, "txn-fence-id", 60_000);
    second
        .init_transactions(OP_TIMEOUT)
        .expect("init the second");
    second.begin_transaction().expect("begin");
    send(&second, "txn-fence", &["winner"]).await;
    second
        .commit_transaction(OP_TIMEOUT)
        .expect("commit the second");

    match first.commit_transaction(OP_TIMEOUT) {
        Err(KafkaError::Transaction(error)) => {
            assert!(error.is_fatal(), "a fenced producer is fatal: {error}");
        }
        other => panic!("the fenced producer committed: {other:?}"),
    }
    let committed = read_all(&broker, "txn-fence", "read_committed", 1);
    assert_eq!(committed, ["winner"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_silent_past_its_timeout_is_aborted() {
    let broker = start_broker();
    create_topic(&broker, "txn-timeout", 1, &[]).await;
    let silent = transactional_producer(&broker, "txn-timeout-id", 1_000);
    silent.init_transactions(OP_TIMEOUT).expect("init");
    silent.begin_transaction().expect("begin");
    send(&silent, "txn-timeout", &["stale"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        silent.commit_transaction(OP_TIMEOUT).is_err(),
        "a transaction aborted by its timeout cannot commit"
    );
    let log = broker.stderr();
    assert!(
        log.contains("aborting a transaction past its timeout"),
        "the coordinator aborted it: {log}"
    );
    // Another producer's transaction on the same partition commits afterwards.
    let next = transactional_producer(&broker, "txn-timeout-next", 60_000);
    next.init_transactions(OP_TIMEOUT).expect("init");
    next.begin_transaction().expect("begin");
    send(&next, "txn-timeout", &["fresh"]).await;
    next.commit_transaction(OP_TIMEOUT).expect("commit");
    // The aborted record is skipped and the consumer moves past it.
    let committed = read_all(&broker, "txn-timeout", "read_committed", 1);
    assert_eq!(committed, ["fresh"]);
}

/// Consume-transform-produce: each round reads input, writes output and commits
/// the consumed offsets in one transaction; an aborted round leaves neither
/// its output nor its offsets, and redoing it gives the output exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_commit_and_abort_with_it() {
    let broker = start_broker();
    create_topic(&broker, "eos-in", 1, &[]).await;
    create_topic(&broker, "eos-out", 1, &[]).await;
    let plain = kafka::producer(&broker);
    let inputs: Vec<String> = (0..6).map(|i| format!("in-{i}")).collect();
    for value in &inputs {
        plain
            .send(
                FutureRecord::<(), str>::to("eos-in")
                    .partition(0)
                    .payload(value),
                OP_TIMEOUT,
            )
            .await
            .unwrap_or_else(|(error, _)| panic!("send {value}: {error}"));
    }
    let group = "eos-group";
    let consumer: BaseConsumer<TestContext> = client_config(&broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create consumer");
    let producer = transactional_producer(&broker, "eos-processor", 60_000);
    producer.init_transactions(OP_TIMEOUT).expect("init");

    let position = |next: i64| {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("eos-in", 0, Offset::Offset(next))
            .unwrap();
        offsets
    };
    let committed = |consumer: &BaseConsumer<TestContext>| {
        let offsets = consumer
            .committed_offsets(position(0), OP_TIMEOUT)
            .expect("fetch committed offsets");
        offsets.find_partition("eos-in", 0).unwrap().offset()
    };
    // Rounds of three inputs: commit the first, abort the second, redo it.
    for (round, start, commit) in [(0, 0, true), (1, 3, false), (2, 3, true)] {
        consumer.assign(&position(start)).expect("assign");
        let mut batch = Vec::new();
        while batch.len() < 3 {
            match consumer.poll(OP_TIMEOUT) {
                Some(Ok(message)) => {
                    batch.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap())
                }
                other => panic!("round {round}: no input: {other:?}"),
            }
        }
        producer.begin_transaction().expect("begin");
        let outputs: Vec<String> = batch.iter().map(|value| format!("out-{value}")).collect();
        let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        send(&producer, "eos-out", &outputs).await;
        producer
            .send_offsets_to_transaction(
                &position(start + 3),
                &consumer.group_metadata().expect("group metadata"),
                OP_TIMEOUT,
            )
            .expect("send offsets");
        if commit {
            producer.commit_transaction(OP_TIMEOUT).expect("commit");
            assert_eq!(committed(&consumer), Offset::Offset(start + 3));
        } else {
            producer.abort_transaction(OP_TIMEOUT).expect("abort");
            assert_eq!(committed(&consumer), Offset::Offset(start));
        }
    }
    let expected: Vec<String> = inputs.iter().map(|value| format!("out-{value}")).collect();
    assert_eq!(read_all(&broker, "eos-out", "read_committed", 6), expected);
}

/// The coordinator's state survives a SIGKILL: a committed id comes back with
/// its producer id (the next init bumps the epoch), and a transaction left open
/// is aborted when a new producer with the same id starts, so read_committed
/// consumers move past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_state_is_reloaded_after_a_crash() {
    let mut broker = start_broker();
    create_topic(&broker, "txn-crash", 1, &[]).await;
    let (_, producer_id, epoch) = init_raw(&broker, "txn-crash-raw", 60_000);
    let open = transactional_producer(&broker, "txn-crash-id", 60_000);
    open.init_transactions(OP_TIMEOUT).expect("init");
    open.begin_transaction().expect("begin");
    send(&open, "txn-crash", &["lost"]).await;
    drop(open);

    broker.restart_with_sigkill();
    let (_, same_id, bumped) = init_raw(&broker, "txn-crash-raw", 60_000);
    assert_eq!((same_id, bumped), (producer_id, epoch + 1));
    let next = transactional_producer(&broker, "txn-crash-id", 60_000);
    next.init_transactions(OP_TIMEOUT)
        .expect("init after the crash");
    next.begin_transaction().expect("begin");
    send(&next, "txn-crash", &["kept"]).await;
    next.commit_transaction(OP_TIMEOUT).expect("commit");
    assert_eq!(
        read_all(&broker, "txn-crash", "read_committed", 1),
        ["kept"]
    );
}

/// SIGKILL right after EndTxn was answered, while the markers of a transaction
/// over many partitions are being written: after the restart the coordinator
/// finds it decided, writes the missing markers, and consumers see it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_decided_before_a_crash_completes_after_it() {
    const PARTITIONS: i32 = 16;
    let mut broker = start_broker();
    create_topic(&broker, "txn-decided", PARTITIONS, &[]).await;
    let producer = transactional_producer(&broker, "txn-decided-id", 60_000);
    producer.init_transactions(OP_TIMEOUT).expect("init");
    producer.begin_transaction().expect("begin");
    for partition in 0..PARTITIONS {
        let value = format!("p{partition}");
        producer
            .send(
                FutureRecord::<(), str>::to("txn-decided")
                    .partition(partition)
                    .payload(&value),
                OP_TIMEOUT,
            )
            .await
            .unwrap_or_else(|(error, _)| panic!("send {value}: {error}"));
    }
    producer.commit_transaction(OP_TIMEOUT).expect("commit");
    // Sixteen fsynced markers take longer than the kill: the restarted broker
    // logs "completing transactions decided before ..." when it resumes one.
    broker.restart_with_sigkill();
    drop(producer);

    for partition in 0..PARTITIONS {
        let seen = read_partition(&broker, "txn-decided", partition, "read_committed", 1);
        assert_eq!(seen, [format!("p{partition}")], "partition {partition}");
    }
}

/// A raw connection to the coordinator of `id` with its producer initialised:
/// (connection, producer id, epoch).
fn init_raw(broker: &Broker, id: &str, timeout_ms: i32) -> (Wire, i64, i16) {
    let mut wire = Wire::connect(&broker.bootstrap());
    let deadline = Instant::now() + OP_TIMEOUT;
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_string(id.to_string())]);
    let (found, _): (FindCoordinatorResponse, _) = wire.call(ApiKey::FindCoordinator, 4, &find);
    assert_eq!(found.coordinators[0].error_code, 0);
    loop {
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_string()))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let (reply, _): (InitProducerIdResponse, _) = wire.call(ApiKey::InitProducerId, 4, &init);
        match reply.error_code {
            0 => return (wire, reply.producer_id.0, reply.producer_epoch),
            COORDINATOR_LOAD_IN_PROGRESS | CONCURRENT_TRANSACTIONS if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            error => panic!("InitProducerId answered {error}"),
        }
    }
}

fn end_txn(wire: &mut Wire, id: &str, producer_id: i64, epoch: i16, version: i16) -> i16 {
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(true);
    let (reply, _): (EndTxnResponse, _) = wire.call(ApiKey::EndTxn, version, &end);
    reply.error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_transitions_and_stale_epochs_are_refused() {
    let broker = start_broker();
    create_topic(&broker, "txn-raw", 1, &[]).await;
    let id = "txn-raw-id";
    let (mut wire, producer_id, epoch) = init_raw(&broker, id, 60_000);
    assert_eq!(epoch, 0, "a new transactional id starts at epoch 0");

    // EndTxn without a transaction.
    assert_eq!(
        end_txn(&mut wire, id, producer_id, epoch, 3),
        INVALID_TXN_STATE
    );

    // A stale epoch: PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for clients
    // older than PRODUCER_FENCED.
    let (_, same_id, bumped) = init_raw(&broker, id, 60_000);
    assert_eq!((same_id, bumped), (producer_id, epoch + 1));
    let add = |version: i16| {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(
                id.to_string(),
            )))
            .with_v3_and_below_producer_id(ProducerId(producer_id))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("txn-raw")))
                    .with_partitions(vec![0]),
            ]);
        (version, request)
    };
    for (version, request) in [add(3), add(1)] {
        let (reply, _): (AddPartitionsToTxnResponse, _) =
            wire.call(ApiKey::AddPartitionsToTxn, version, &request);
        let error =
            reply.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
        let expected = if version >= 2 {
            PRODUCER_FENCED
        } else {
            INVALID_PRODUCER_EPOCH
        };
        assert_eq!(error, expected, "AddPartitionsToTxn v{version}");
    }

    // A timeout over transaction.max.timeout.ms.
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("too-long"))))
        .with_transaction_timeout_ms(900_001)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let (reply, _): (InitProducerIdResponse, _) = wire.call(ApiKey::InitProducerId, 4, &init);
    assert_eq!(reply.error_code, INVALID_TRANSACTION_TIMEOUT);

    // Admin views: DescribeTransactions and ListTransactions.
    let describe = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(StrBytes::from_static_str(id)),
        TransactionalId(StrBytes::from_static_str("never-seen")),
    ]);
    let (described, _): (DescribeTransactionsResponse, _) =
        wire.call(ApiKey::DescribeTransactions, 0, &describe);
    let known = &described.transaction_states[0];
    assert_eq!(known.error_code, 0);
    assert_eq!(known.transaction_state.as_str(), "Empty");
    assert_eq!(
        (known.producer_id.0, known.producer_epoch),
        (producer_id, epoch + 1)
    );
    assert_eq!(
        described.transaction_states[1].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
    let list = ListTransactionsRequest::default()
        .with_state_filters(vec![
            StrBytes::from_static_str("Empty"),
            StrBytes::from_static_str("Bogus"),
        ])
        .with_duration_filter(-1);
    let (listed, _): (ListTransactionsResponse, _) = wire.call(ApiKey::ListTransactions, 1, &list);
    assert_eq!(listed.error_code, 0);
    assert_eq!(
        listed.unknown_state_filters,
        [StrBytes::from_static_str("Bogus")]
    );
    assert!(
        listed
            .transaction_states
            .iter()
            .any(|txn| txn.transactional_id.0.as_str() == id && txn.producer_id.0 == producer_id),
        "{id} is listed: {listed:?}"
    );
}

fn add_partition(wire: &mut Wire, id: &str, producer_id: i64, epoch: i16, topic: &str) -> i16 {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![0]),
        ]);
    let (reply, _): (AddPartitionsToTxnResponse, _) =
        wire.call(ApiKey::AddPartitionsToTxn, 3, &request);
    reply.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

fn produce_transactional(
    wire: &mut Wire,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    sequence: i32,
) -> i16 {
    produce_transactional_at(wire, 9, id, (producer_id, epoch), topic, sequence)
}

/// One transactional record to partition 0 of `topic` with Produce `version`.
fn produce_transactional_at(
    wire: &mut Wire,
    version: i16,
    id: &str,
    (producer_id, epoch): (i64, i16),
    topic: &str,
    sequence: i32,
) -> i16 {
    let batch = build_batch_with(
        &[NewRecord {
            key: None,
            value: Some(b"in a transaction"),
            timestamp_ms: 1_700_000_000_000,
        }],
        BatchWriter {
            attributes: Attributes(0).with_transactional(),
            producer_id: sluice::types::ProducerId(producer_id),
            producer_epoch: sluice::types::ProducerEpoch(epoch),
            base_sequence: sequence,
        },
    );
    let request = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_string()))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let (reply, _): (ProduceResponse, _) = wire.call(ApiKey::Produce, version, &request);
    reply.responses[0].partition_responses[0].error_code
}

/// KIP-890 part 1: a transactional batch for a partition that was not added to
/// the transaction is refused, so it cannot open a transaction no coordinator
/// will end; once added, the same batch is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_to_a_partition_not_in_the_transaction_is_refused() {
    let broker = start_broker();
    create_topic(&broker, "txn-unadded", 1, &[]).await;
    let id = "txn-unadded-id";
    let (mut wire, producer_id, epoch) = init_raw(&broker, id, 60_000);
    assert_eq!(
        produce_transactional(&mut wire, id, producer_id, epoch, "txn-unadded", 0),
        INVALID_TXN_STATE
    );
    assert_eq!(
        add_partition(&mut wire, id, producer_id, epoch, "txn-unadded"),
        0
    );
    assert_eq!(
        produce_transactional(&mut wire, id, producer_id, epoch, "txn-unadded", 0),
        0
    );
    assert_eq!(end_txn(&mut wire, id, producer_id, epoch, 3), 0);
}

/// The producers partition 0 of `topic` remembers, and partition 1's error code
/// (the tests' topics have one partition, so it is unknown).
fn describe_producers(
    wire: &mut Wire,
    topic: &str,
) -> (
    Vec<kafka_protocol::messages::describe_producers_response::ProducerState>,
    i16,
) {
    let request = DescribeProducersRequest::default().with_topics(vec![
        kafka_protocol::messages::describe_producers_request::TopicRequest::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_indexes(vec![0, 1]),
    ]);
    let (reply, _): (DescribeProducersResponse, _) =
        wire.call(ApiKey::DescribeProducers, 0, &request);
    let partitions = &reply.topics[0].partitions;
    assert_eq!(partitions[0].error_code, 0);
    (
        partitions[0].active_producers.clone(),
        partitions[1].error_code,
    )
}

/// DescribeProducers shows a producer's open transaction on a partition and,
/// once the commit marker is written, the coordinator epoch that wrote it and
/// no open transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_producers_shows_open_transactions() {
    let broker = start_broker();
    create_topic(&broker, "txn-producers", 1, &[]).await;
    let id = "txn-producers-id";
    let (mut wire, producer_id, epoch) = init_raw(&broker, id, 60_000);
    let (producers, unknown) = describe_producers(&mut wire, "txn-producers");
    assert!(producers.is_empty(), "{producers:?}");
    assert_eq!(unknown, UNKNOWN_TOPIC_OR_PARTITION);

    assert_eq!(
        add_partition(&mut wire, id, producer_id, epoch, "txn-producers"),
        0
    );
    assert_eq!(
        produce_transactional(&mut wire, id, producer_id, epoch, "txn-producers", 0),
        0
    );
    let (producers, _) = describe_producers(&mut wire, "txn-producers");
    assert_eq!(producers.len(), 1, "{producers:?}");
    let open = &producers[0];
    assert_eq!(
        (
            open.producer_id.0,
            open.producer_epoch,
            open.last_sequence,
            open.last_timestamp,
            open.coordinator_epoch,
            open.current_txn_start_offset
        ),
        (producer_id, i32::from(epoch), 0, 1_700_000_000_000, -1, 0)
    );

    assert_eq!(end_txn(&mut wire, id, producer_id, epoch, 3), 0);
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let (producers, _) = describe_producers(&mut wire, "txn-producers");
        let producer = &producers[0];
        if producer.current_txn_start_offset == -1 {
            assert!(producer.coordinator_epoch >= 0, "{producer:?}");
            assert_eq!(producer.last_sequence, 0);
            break;
        }
        assert!(Instant::now() < deadline, "the commit marker never came");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One transaction of a batched (v4+) AddPartitionsToTxn: partitions of `topic`.
fn batched_txn(
    id: &str,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topic: &str,
    partitions: &[i32],
) -> kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction {
    kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default(
    )
    .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
    .with_producer_id(ProducerId(producer_id))
    .with_producer_epoch(epoch)
    .with_verify_only(verify_only)
    .with_topics(vec![
        AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(partitions.to_vec()),
    ])
}

/// Sends the batched form at `version`; per transaction, per partition:
/// (partition, error code), in request order.
fn add_batched(
    wire: &mut Wire,
    version: i16,
    transactions: Vec<
        kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction,
    >,
) -> Vec<(String, Vec<(i32, i16)>)> {
    let request = AddPartitionsToTxnRequest::default().with_transactions(transactions);
    let (reply, _): (AddPartitionsToTxnResponse, _) =
        wire.call(ApiKey::AddPartitionsToTxn, version, &request);
    assert_eq!(reply.error_code, 0);
    reply
        .results_by_transaction
        .iter()
        .map(|txn| {
            let partitions = txn
                .topic_results
                .iter()
                .flat_map(|topic| {
                    topic
                        .results_by_partition
                        .iter()
                        .map(|p| (p.partition_index, p.partition_error_code))
                })
                .collect();
            (txn.transactional_id.0.to_string(), partitions)
        })
        .collect()
}

/// AddPartitionsToTxn v4-5, the broker-to-coordinator form: several
/// transactions in one request, each added or, with `verify_only`, only
/// checked; a partition not in the transaction is TRANSACTION_ABORTABLE from
/// v5 and INVALID_TXN_STATE at v4, and the answers gate Produce the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_add_partitions_adds_and_verifies_several_transactions() {
    let broker = start_broker();
    create_topic(&broker, "txn-batched", 2, &[]).await;
    let (topic, first, second) = ("txn-batched", "txn-batched-a", "txn-batched-b");
    let (mut wire, a_id, a_epoch) = init_raw(&broker, first, 60_000);
    let (_, b_id, b_epoch) = init_raw(&broker, second, 60_000);

    // Nothing added yet: verification fails, in each version's words.
    let verify_a = |partitions: &[i32]| batched_txn(first, a_id, a_epoch, true, topic, partitions);
    assert_eq!(
        add_batched(&mut wire, 5, vec![verify_a(&[0])]),
        [(first.to_string(), vec![(0, TRANSACTION_ABORTABLE)])]
    );
    assert_eq!(
        add_batched(&mut wire, 4, vec![verify_a(&[0])]),
        [(first.to_string(), vec![(0, INVALID_TXN_STATE)])]
    );

    // One request adds to two transactions; the second names a partition the
    // broker does not have, so none of its partitions is attempted.
    assert_eq!(
        add_batched(
            &mut wire,
            4,
            vec![
                batched_txn(first, a_id, a_epoch, false, topic, &[0]),
                batched_txn(second, b_id, b_epoch, false, topic, &[1, 7]),
            ]
        ),
        [
            (first.to_string(), vec![(0, 0)]),
            (
                second.to_string(),
                vec![
                    (1, OPERATION_NOT_ATTEMPTED),
                    (7, UNKNOWN_TOPIC_OR_PARTITION)
                ]
            ),
        ]
    );

    // Verification now finds partition 0 and not 1; another epoch and an
    // unknown transactional id fail for every partition.
    assert_eq!(
        add_batched(
            &mut wire,
            5,
            vec![
                verify_a(&[0, 1]),
                batched_txn(first, a_id, a_epoch + 1, true, topic, &[0]),
                batched_txn("txn-batched-never", a_id, 0, true, topic, &[0]),
                batched_txn(second, b_id, b_epoch, true, topic, &[1]),
            ]
        ),
        [
            (first.to_string(), vec![(0, 0), (1, TRANSACTION_ABORTABLE)]),
            (first.to_string(), vec![(0, PRODUCER_FENCED)]),
            (
                "txn-batched-never".to_string(),
                vec![(0, INVALID_PRODUCER_ID_MAPPING)]
            ),
            (second.to_string(), vec![(1, TRANSACTION_ABORTABLE)]),
        ]
    );
    assert_eq!(
        produce_transactional(&mut wire, first, a_id, a_epoch, topic, 0),
        0
    );
    assert_eq!(end_txn(&mut wire, first, a_id, a_epoch, 3), 0);
}

const NOT_ENOUGH_REPLICAS: i16 = 19;

/// Produce v12, retried while the coordinator completes the previous
/// transaction (NOT_ENOUGH_REPLICAS, as Kafka answers it).
fn produce_v12(wire: &mut Wire, id: &str, producer: (i64, i16), topic: &str, sequence: i32) -> i16 {
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        match produce_transactional_at(wire, 12, id, producer, topic, sequence) {
            NOT_ENOUGH_REPLICAS if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            error => return error,
        }
    }
}

/// EndTxn v5: (error, producer id, epoch), retried while the transaction
/// completes (a retry of an EndTxn that was answered gets the same answer).
fn end_txn_v5(
    wire: &mut Wire,
    id: &str,
    (producer_id, epoch): (i64, i16),
    commit: bool,
) -> (i16, i64, i16) {
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let (reply, _): (EndTxnResponse, _) = wire.call(ApiKey::EndTxn, 5, &end);
        if reply.error_code != CONCURRENT_TRANSACTIONS || Instant::now() >= deadline {
            return (reply.error_code, reply.producer_id.0, reply.producer_epoch);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// TxnOffsetCommit v5 of partition 0 of `topic` for `group`, outside group
/// management, retried while a coordinator loads.
fn txn_offset_commit_v5(
    wire: &mut Wire,
    id: &str,
    (producer_id, epoch): (i64, i16),
    group: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let (reply, _): (TxnOffsetCommitResponse, _) =
            wire.call(ApiKey::TxnOffsetCommit, 5, &request);
        let error = reply.topics[0].partitions[0].error_code;
        // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
        if !matches!(error, 14..=16) || Instant::now() >= deadline {
            return error;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `transaction.version` 2 (KIP-890 part 2) as a Kafka 4 client speaks it:
/// ApiVersions finalizes level 2; Produce v12 and TxnOffsetCommit v5 add their
/// partitions without AddPartitionsToTxn or AddOffsetsToTxn; EndTxn v5 bumps
/// the epoch on every commit and abort and answers it, which fences the old
/// epoch; `read_committed` readers see the committed transaction only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_version_2_bumps_the_epoch_and_adds_partitions_implicitly() {
    let broker = start_broker();
    let topic = "txn-tv2";
    create_topic(&broker, topic, 1, &[]).await;
    let id = "txn-tv2-id";
    let (mut wire, producer_id, epoch) = init_raw(&broker, id, 60_000);

    let (versions, _): (ApiVersionsResponse, _) = wire.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("wire-test"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    let feature = |features: &[(String, i16, i16)]| {
        features
            .iter()
            .find(|(name, _, _)| name == "transaction.version")
            .map(|&(_, min, max)| (min, max))
    };
    let finalized: Vec<_> = versions
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect();
    let supported: Vec<_> = versions
        .supported_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version, f.max_version))
        .collect();
    assert_eq!(feature(&finalized), Some((2, 2)));
    assert_eq!(feature(&supported), Some((0, 2)));
    assert!(versions.finalized_features_epoch >= 0);

    // A transaction started by Produce v12 alone, committed with EndTxn v5.
    assert_eq!(
        produce_v12(&mut wire, id, (producer_id, epoch), topic, 0),
        0
    );
    let committed = end_txn_v5(&mut wire, id, (producer_id, epoch), true);
    assert_eq!(committed, (0, producer_id, epoch + 1));
    // Its retry, once complete, gets the same answer; the old epoch is fenced.
    let retried = end_txn_v5(&mut wire, id, (producer_id, epoch), true);
    assert_eq!(retried, (0, producer_id, epoch + 1));
    assert_eq!(
        produce_v12(&mut wire, id, (producer_id, epoch), topic, 1),
        INVALID_PRODUCER_EPOCH
    );

    // The next transaction at the new epoch, with offsets, aborted: one more bump.
    let next = (producer_id, epoch + 1);
    assert_eq!(produce_v12(&mut wire, id, next, topic, 0), 0);
    assert_eq!(
        txn_offset_commit_v5(&mut wire, id, next, "txn-tv2-group", topic, 1),
        0
    );
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str(id))]);
    let (described, _): (DescribeTransactionsResponse, _) =
        wire.call(ApiKey::DescribeTransactions, 0, &describe);
    let mut in_txn: Vec<_> = described.transaction_states[0]
        .topics
        .iter()
        .map(|t| t.topic.0.to_string())
        .collect();
    in_txn.sort();
    assert_eq!(in_txn, ["__consumer_offsets", topic]);
    assert_eq!(
        end_txn_v5(&mut wire, id, next, false),
        (0, producer_id, epoch + 2)
    );
    // Retried until the abort completed; then an abort with nothing in the
    // transaction bumps the epoch too.
    assert_eq!(
        end_txn_v5(&mut wire, id, next, false),
        (0, producer_id, epoch + 2)
    );
    assert_eq!(
        end_txn_v5(&mut wire, id, (producer_id, epoch + 2), false),
        (0, producer_id, epoch + 3)
    );

    assert_eq!(read_all(&broker, topic, "read_committed", 1).len(), 1);
    assert_eq!(read_all(&broker, topic, "read_uncommitted", 2).len(), 2);
}
