//! Transactions against the real `sluice serve`: raw requests check the
//! refusals a client never provokes on purpose (out-of-order transitions,
//! stale epochs, timeouts over the maximum).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use broker::Broker;
use kafka::{OP_TIMEOUT, create_topic};
use wire::Wire;

const CONCURRENT_TRANSACTIONS: i16 = 51;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;

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
}
