//! OffsetForLeaderEpoch: for each partition this node leads, where a leader
//! epoch ends in its log, answered on the owning shard after checking the
//! client's current leader epoch. Consumers (replica id -1) use it to check,
//! after a leader change, that their position was not truncated away (KIP-320);
//! followers to find where their log diverged (KIP-101/279).

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::cluster::image::PartitionKey;
use crate::kafka::by_partition;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::calls::leader_epoch::{EpochEnd, EpochQuery, OffsetForLeaderEpoch};
use crate::types::LeaderEpoch;

pub async fn handle(
    shard: &Rc<Shard>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let partitions = request
        .topics
        .iter()
        .enumerate()
        .flat_map(|(topic_index, topic)| {
            topic
                .partitions
                .iter()
                .enumerate()
                .map(move |(partition_index, partition)| {
                    let key = PartitionKey {
                        topic: topic.topic.0.to_string(),
                        partition: partition.partition,
                    };
                    let query = EpochQuery {
                        current_leader_epoch: LeaderEpoch(partition.current_leader_epoch),
                        leader_epoch: LeaderEpoch(partition.leader_epoch),
                    };
                    ((topic_index, partition_index), key, query)
                })
        });
    let mut results = by_partition(shard, partitions, |items| OffsetForLeaderEpoch { items }).await;
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            let partitions = topic
                .partitions
                .iter()
                .enumerate()
                .map(|(partition_index, partition)| {
                    // by_partition answers every slot it was given.
                    let result = results
                        .remove(&(topic_index, partition_index))
                        .unwrap_or(Err(ErrorCode::UnknownServerError));
                    epoch_end_offset(partition.partition, result)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// One partition's answer: an epoch the log does not know, like an error, keeps
/// the UNDEFINED_EPOCH (-1) and UNDEFINED_EPOCH_OFFSET (-1) defaults.
fn epoch_end_offset(partition: i32, result: EpochEnd) -> EpochEndOffset {
    let response = EpochEndOffset::default()
        .with_partition(partition)
        .with_leader_epoch(LeaderEpoch::NONE.0)
        .with_end_offset(-1);
    match result {
        Ok(Some((epoch, end))) => response.with_leader_epoch(epoch.0).with_end_offset(end.0),
        Ok(None) => response,
        Err(error) => response.with_error_code(error.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Offset;

    #[test]
    fn unknown_epochs_and_errors_answer_undefined_epoch_and_offset() {
        let found = epoch_end_offset(3, Ok(Some((LeaderEpoch(2), Offset(40)))));
        assert_eq!(
            (
                found.partition,
                found.error_code,
                found.leader_epoch,
                found.end_offset
            ),
            (3, 0, 2, 40)
        );
        let unknown = epoch_end_offset(1, Ok(None));
        assert_eq!(
            (unknown.error_code, unknown.leader_epoch, unknown.end_offset),
            (0, -1, -1)
        );
        let fenced = epoch_end_offset(0, Err(ErrorCode::FencedLeaderEpoch));
        assert_eq!(
            (fenced.error_code, fenced.leader_epoch, fenced.end_offset),
            (74, -1, -1)
        );
    }
}
