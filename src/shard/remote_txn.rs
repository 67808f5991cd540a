//! Transactions across brokers, as Kafka's brokers speak them to each other:
//! the coordinator sends the markers for partitions another broker leads with
//! WriteTxnMarkers v1 to that leader, and a partition leader asks a coordinator
//! on another broker about a producer's transaction (KIP-890) with
//! AddPartitionsToTxn v5. Both answers are read back into what the shard calls
//! of one node answer, so the callers treat local and remote partitions alike.
//!
//! Requests travel over the shard's pooled connections
//! ([`crate::net::peers`]); a request that gets no answer (connection refused
//! or broken, timeout) fails every partition it carried with a retriable error.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::net::kafka_client::ClientError;
use crate::protocol::error_code::ErrorCode;
use crate::record::control::MarkerKind;
use crate::shard::Shard;
use crate::txn::markers::{MarkerResult, TxnMarkers};
use crate::txn::state::TxnPartition;
use crate::types::{NodeId, ProducerEpoch, ProducerId};

/// The WriteTxnMarkers version brokers send (the only one Kafka 4 keeps).
pub const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// The AddPartitionsToTxn version brokers send: the batched form with
/// `verify_only`, and TRANSACTION_ABORTABLE for a partition not in the
/// transaction.
pub const ADD_PARTITIONS_VERSION: i16 = 5;
/// How long a leader may take to answer markers: each waits up to five seconds
/// for the ISR there, and Kafka's inter-broker `request.timeout.ms` is 30 s.
const MARKERS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a coordinator may take to answer a check or an add (an add writes
/// `__transaction_state` and waits for its ISR). A produce waiting longer would
/// hit the client's own timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `markers` on partitions `leader` leads: one WriteTxnMarkers request
/// for all of them. Every partition gets an answer; a request that failed
/// answers NETWORK_EXCEPTION (or REQUEST_TIMED_OUT) for each, which the
/// coordinator retries.
pub async fn write_markers(
    shard: Rc<Shard>,
    leader: NodeId,
    markers: TxnMarkers,
) -> Vec<MarkerResult> {
    let request = markers_request(&markers);
    match shard
        .send_to_broker(leader, &request, WRITE_TXN_MARKERS_VERSION, MARKERS_TIMEOUT)
        .await
    {
        Ok(response) => marker_results(&markers, &response),
        Err(error) => {
            tracing::debug!(leader = leader.0, %error, "WriteTxnMarkers got no answer");
            let code = unanswered(&error);
            markers
                .partitions
                .into_iter()
                .map(|partition| (partition, code))
                .collect()
        }
    }
}

/// What a partition's marker counts as when its request got no answer.
fn unanswered(error: &ClientError) -> ErrorCode {
    match error {
        ClientError::Timeout => ErrorCode::RequestTimedOut,
        _ => ErrorCode::NetworkException,
    }
}

/// One WriteTxnMarkers request carrying one transaction's markers, partitions
/// grouped by topic.
fn markers_request(markers: &TxnMarkers) -> WriteTxnMarkersRequest {
    let marker = WritableTxnMarker::default()
        .with_producer_id(markers.producer_id.0.into())
        .with_producer_epoch(markers.producer_epoch.0)
        .with_transaction_result(markers.kind == MarkerKind::Commit)
        .with_coordinator_epoch(markers.coordinator_epoch)
        .with_topics(
            by_topic(&markers.partitions)
                .into_iter()
                .map(|(name, partitions)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(topic_name(name))
                        .with_partition_indexes(partitions)
                })
                .collect(),
        );
    WriteTxnMarkersRequest::default().with_markers(vec![marker])
}

/// The leader's answer for each partition of `markers`; one it left out is
/// UNKNOWN_SERVER_ERROR, retried.
fn marker_results(markers: &TxnMarkers, response: &WriteTxnMarkersResponse) -> Vec<MarkerResult> {
    let answered: BTreeMap<TxnPartition, ErrorCode> = response
        .markers
        .iter()
        .filter(|marker| marker.producer_id.0 == markers.producer_id.0)
        .flat_map(|marker| &marker.topics)
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| {
                (
                    (topic.name.0.to_string(), partition.partition_index),
                    ErrorCode::from_code(partition.error_code),
                )
            })
        })
        .collect();
    in_asked_order(
        &markers.partitions,
        &answered,
        ErrorCode::UnknownServerError,
    )
}

/// Each partition asked with its answer, `missing` for one left unanswered.
fn in_asked_order<'a, C: FromIterator<(TxnPartition, ErrorCode)>>(
    asked: impl IntoIterator<Item = &'a TxnPartition>,
    answered: &BTreeMap<TxnPartition, ErrorCode>,
    missing: ErrorCode,
) -> C {
    asked
        .into_iter()
        .map(|partition| {
            let error = answered.get(partition).copied().unwrap_or(missing);
            (partition.clone(), error)
        })
        .collect()
}

/// One producer's transaction and the partitions a leader asks its coordinator
/// about.
#[derive(Debug)]
pub struct TxnCheck<'a> {
    pub transactional_id: &'a str,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub partitions: &'a BTreeSet<TxnPartition>,
    /// Only verify that the partitions are in the ongoing transaction; false:
    /// add them (Produce v12, `transaction.version` 2).
    pub verify_only: bool,
}

/// Asks the coordinator on broker `coordinator` about `check`: per partition,
/// NONE when it is in the ongoing transaction (or was added),
/// INVALID_TXN_STATE when it is not, or the coordinator's error for the
/// transaction. A coordinator that could not be reached, or answered without
/// this transaction, is COORDINATOR_NOT_AVAILABLE, which producers retry.
pub async fn check_with_coordinator(
    shard: &Shard,
    coordinator: NodeId,
    check: &TxnCheck<'_>,
) -> Result<BTreeMap<TxnPartition, ErrorCode>, ErrorCode> {
    let request = check_request(check);
    match shard
        .send_to_broker(coordinator, &request, ADD_PARTITIONS_VERSION, CHECK_TIMEOUT)
        .await
    {
        Ok(response) => check_results(check, &response),
        Err(error) => {
            tracing::debug!(
                coordinator = coordinator.0,
                %error,
                "AddPartitionsToTxn got no answer"
            );
            Err(ErrorCode::CoordinatorNotAvailable)
        }
    }
}

fn check_request(check: &TxnCheck<'_>) -> AddPartitionsToTxnRequest {
    let topics = by_topic(check.partitions)
        .into_iter()
        .map(|(name, partitions)| {
            AddPartitionsToTxnTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        })
        .collect();
    let transaction = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            check.transactional_id.to_string(),
        )))
        .with_producer_id(check.producer_id.0.into())
        .with_producer_epoch(check.producer_epoch.0)
        .with_verify_only(check.verify_only)
        .with_topics(topics);
    AddPartitionsToTxnRequest::default().with_transactions(vec![transaction])
}

fn check_results(
    check: &TxnCheck<'_>,
    response: &AddPartitionsToTxnResponse,
) -> Result<BTreeMap<TxnPartition, ErrorCode>, ErrorCode> {
    let top = ErrorCode::from_code(response.error_code);
    if top != ErrorCode::None {
        return Err(top);
    }
    let result = response
        .results_by_transaction
        .iter()
        .find(|result| result.transactional_id.0.as_str() == check.transactional_id)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let answered: BTreeMap<TxnPartition, ErrorCode> = result
        .topic_results
        .iter()
        .flat_map(|topic| {
            topic.results_by_partition.iter().map(|partition| {
                let error = match ErrorCode::from_code(partition.partition_error_code) {
                    // v5's answer for a partition not in the transaction; the
                    // produce path refuses it as v4's and one node's check do.
                    ErrorCode::TransactionAbortable => ErrorCode::InvalidTxnState,
                    other => other,
                };
                ((topic.name.0.to_string(), partition.partition_index), error)
            })
        })
        .collect();
    Ok(in_asked_order(
        check.partitions,
        &answered,
        ErrorCode::CoordinatorNotAvailable,
    ))
}

fn by_topic<'a>(
    partitions: impl IntoIterator<Item = &'a TxnPartition>,
) -> BTreeMap<&'a str, Vec<i32>> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic.as_str()).or_default().push(*partition);
    }
    topics
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
    };
    use kafka_protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn partition(topic: &str, index: i32) -> TxnPartition {
        (topic.to_string(), index)
    }

    fn markers() -> TxnMarkers {
        TxnMarkers {
            producer_id: ProducerId(7),
            producer_epoch: ProducerEpoch(3),
            coordinator_epoch: 5,
            kind: MarkerKind::Commit,
            partitions: vec![partition("a", 0), partition("b", 1), partition("a", 2)],
        }
    }

    #[test]
    fn markers_travel_as_one_request_grouped_by_topic() {
        let request = markers_request(&markers());
        // It encodes and decodes at the version sent.
        let mut bytes = bytes::BytesMut::new();
        request
            .encode(&mut bytes, WRITE_TXN_MARKERS_VERSION)
            .unwrap();
        let decoded =
            WriteTxnMarkersRequest::decode(&mut bytes.freeze(), WRITE_TXN_MARKERS_VERSION).unwrap();
        assert_eq!(decoded, request);
        let [marker] = request.markers.as_slice() else {
            panic!("one marker: {request:?}");
        };
        assert_eq!(marker.producer_id.0, 7);
        assert_eq!(marker.producer_epoch, 3);
        assert!(marker.transaction_result, "commit");
        assert_eq!(marker.coordinator_epoch, 5);
        let topics: Vec<_> = marker
            .topics
            .iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect();
        assert_eq!(
            topics,
            vec![("a".to_string(), vec![0, 2]), ("b".to_string(), vec![1])]
        );
    }

    #[test]
    fn marker_answers_map_back_per_partition_and_missing_ones_are_retried() {
        let answer = |topic: &str, results: Vec<(i32, ErrorCode)>| {
            WritableTxnMarkerTopicResult::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    results
                        .into_iter()
                        .map(|(index, error)| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(index)
                                .with_error_code(error.code())
                        })
                        .collect(),
                )
        };
        let response = WriteTxnMarkersResponse::default().with_markers(vec![
            WritableTxnMarkerResult::default()
                .with_producer_id(7.into())
                .with_topics(vec![
                    answer("a", vec![(0, ErrorCode::None)]),
                    answer("b", vec![(1, ErrorCode::NotLeaderOrFollower)]),
                ]),
            // Another producer's answer is not ours.
            WritableTxnMarkerResult::default()
                .with_producer_id(8.into())
                .with_topics(vec![answer("a", vec![(2, ErrorCode::None)])]),
        ]);
        assert_eq!(
            marker_results(&markers(), &response),
            vec![
                (partition("a", 0), ErrorCode::None),
                (partition("b", 1), ErrorCode::NotLeaderOrFollower),
                (partition("a", 2), ErrorCode::UnknownServerError),
            ]
        );
    }

    #[test]
    fn requests_without_an_answer_are_retriable() {
        use crate::txn::markers::{MarkerOutcome, outcome};
        for error in [
            ClientError::Timeout,
            ClientError::Unusable,
            ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()),
        ] {
            assert_eq!(outcome(unanswered(&error)), MarkerOutcome::Retry);
        }
        assert_eq!(
            unanswered(&ClientError::Timeout),
            ErrorCode::RequestTimedOut
        );
    }

    fn check_response(
        top: ErrorCode,
        id: &str,
        results: Vec<(&str, i32, ErrorCode)>,
    ) -> AddPartitionsToTxnResponse {
        let topics = results
            .into_iter()
            .map(|(topic, index, error)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(topic_name(topic))
                    .with_results_by_partition(vec![
                        AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(index)
                            .with_partition_error_code(error.code()),
                    ])
            })
            .collect();
        AddPartitionsToTxnResponse::default()
            .with_error_code(top.code())
            .with_results_by_transaction(vec![
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_string(id.into())))
                    .with_topic_results(topics),
            ])
    }

    #[test]
    fn checks_ask_for_one_transaction_and_read_its_answers_per_partition() {
        let partitions: BTreeSet<_> = [partition("a", 0), partition("a", 1), partition("b", 0)]
            .into_iter()
            .collect();
        let check = TxnCheck {
            transactional_id: "tx",
            producer_id: ProducerId(9),
            producer_epoch: ProducerEpoch(2),
            partitions: &partitions,
            verify_only: true,
        };
        let request = check_request(&check);
        let mut bytes = bytes::BytesMut::new();
        request.encode(&mut bytes, ADD_PARTITIONS_VERSION).unwrap();
        let decoded =
            AddPartitionsToTxnRequest::decode(&mut bytes.freeze(), ADD_PARTITIONS_VERSION).unwrap();
        assert_eq!(decoded, request);
        let [transaction] = request.transactions.as_slice() else {
            panic!("one transaction: {request:?}");
        };
        assert_eq!(transaction.transactional_id.0.as_str(), "tx");
        assert_eq!(transaction.producer_id.0, 9);
        assert_eq!(transaction.producer_epoch, 2);
        assert!(transaction.verify_only);
        assert_eq!(transaction.topics.len(), 2);
        assert_eq!(transaction.topics[0].partitions, vec![0, 1]);

        let response = check_response(
            ErrorCode::None,
            "tx",
            vec![
                ("a", 0, ErrorCode::None),
                ("a", 1, ErrorCode::TransactionAbortable),
            ],
        );
        let answers = check_results(&check, &response).unwrap();
        assert_eq!(answers[&partition("a", 0)], ErrorCode::None);
        assert_eq!(
            answers[&partition("a", 1)],
            ErrorCode::InvalidTxnState,
            "not in the transaction"
        );
        assert_eq!(
            answers[&partition("b", 0)],
            ErrorCode::CoordinatorNotAvailable,
            "left out of the answer: retried"
        );

        let refused = check_response(ErrorCode::UnknownServerError, "tx", vec![]);
        assert_eq!(
            check_results(&check, &refused),
            Err(ErrorCode::UnknownServerError)
        );
        let other = check_response(ErrorCode::None, "other", vec![]);
        assert_eq!(
            check_results(&check, &other),
            Err(ErrorCode::CoordinatorNotAvailable)
        );
    }
}
