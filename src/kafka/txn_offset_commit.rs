//! TxnOffsetCommit (v0-5): a transactional producer commits a group's offsets
//! as part of its transaction (`send_offsets_to_transaction`). Partitions of
//! topics that exist go in one transactional append to the group's
//! `__consumer_offsets` partition on the coordinating shard, pending until the
//! transaction's marker; the others get UNKNOWN_TOPIC_OR_PARTITION, as Kafka
//! answers them. v3 adds the member, generation and instance id checks. v5 is
//! `transaction.version` 2: the client sends no AddOffsetsToTxn, so the
//! offsets partition joins the transaction here first.

use std::rc::Rc;

use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::group::ids::{GenerationId, GroupId, InstanceId, MemberId};
use crate::group::requests::TxnCommitOffsets;
use crate::kafka::add_offsets_to_txn::{OffsetsProducer, add_offsets_partition};
use crate::kafka::group_routing::call;
use crate::kafka::offset_commit::{CommittedPartition, check_commits};
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::txn::state::TxnVersion;
use crate::types::{ProducerEpoch, ProducerId, TimestampMs};

/// The first version that adds the offsets partition to the transaction.
const FIRST_IMPLICIT_ADD_VERSION: i16 = 5;

pub async fn handle(
    shard: &Rc<Shard>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let now_ms = TimestampMs::now().0;
    let (errors, offsets) = check_commits(
        shard,
        request.topics.iter().map(|topic| {
            let partitions = topic.partitions.iter().map(|p| CommittedPartition {
                index: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.as_str()),
            });
            (topic.name.as_str(), partitions.collect())
        }),
        now_ms,
    );
    let group_error = if offsets.is_empty() {
        ErrorCode::None
    } else if request.producer_id.0 < 0 || request.producer_epoch < 0 {
        // A transactional batch needs its producer: InitProducerId hands out
        // non-negative ids and epochs only.
        ErrorCode::InvalidProducerIdMapping
    } else {
        let group = request.group_id.to_string();
        let added = if version >= FIRST_IMPLICIT_ADD_VERSION {
            let producer = OffsetsProducer {
                transactional_id: request.transactional_id.0.to_string(),
                producer_id: ProducerId(request.producer_id.0),
                producer_epoch: ProducerEpoch(request.producer_epoch),
                client_version: TxnVersion::TV_2,
            };
            implicit_add_error(add_offsets_partition(shard, &producer, &group).await)
        } else {
            ErrorCode::None
        };
        if added != ErrorCode::None {
            added
        } else {
            let commit = TxnCommitOffsets {
                group: GroupId(group.clone()),
                producer_id: ProducerId(request.producer_id.0),
                producer_epoch: ProducerEpoch(request.producer_epoch),
                // v0-2 decode these as "", -1 and null: a commit outside group
                // management.
                member: MemberId(request.member_id.to_string()),
                instance: request
                    .group_instance_id
                    .as_ref()
                    .map(|i| InstanceId(i.to_string())),
                generation: GenerationId(request.generation_id),
                offsets,
            };
            call(shard, &group, commit)
                .await
                .unwrap_or_else(|error| error)
        }
    };
    TxnOffsetCommitResponse::default().with_topics(answer(request.topics, errors, group_error))
}

/// Each partition's answer: its own error, else the group's.
fn answer(
    topics: Vec<TxnOffsetCommitRequestTopic>,
    errors: Vec<Vec<Option<ErrorCode>>>,
    group_error: ErrorCode,
) -> Vec<TxnOffsetCommitResponseTopic> {
    topics
        .into_iter()
        .zip(errors)
        .map(|(topic, topic_errors)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .zip(topic_errors)
                        .map(|(partition, error)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(error.unwrap_or(group_error).code())
                        })
                        .collect(),
                )
        })
        .collect()
}

/// How a failed implicit add reaches the client, as in Kafka: retriable
/// coordinator errors as COORDINATOR_NOT_AVAILABLE (retried), a fenced
/// producer as INVALID_PRODUCER_EPOCH.
fn implicit_add_error(error: ErrorCode) -> ErrorCode {
    match error {
        ErrorCode::ConcurrentTransactions
        | ErrorCode::CoordinatorLoadInProgress
        | ErrorCode::CoordinatorNotAvailable
        | ErrorCode::NotCoordinator => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
        other => other,
    }
}
