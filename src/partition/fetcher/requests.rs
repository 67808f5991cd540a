//! The requests a follower sends its leader, and reading their answers:
//! OffsetForLeaderEpoch before fetching in a new leader epoch, then Fetch with
//! this broker's replica id (Kafka's replica fetcher, Fetch v12 with topic
//! names and no fetch sessions).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::image::PartitionKey;
use crate::protocol::error_code::ErrorCode;
use crate::types::{LeaderEpoch, NodeId, Offset};

use super::FetcherSettings;

/// Fetch v12: the last version naming topics; the replica id is a field.
pub const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch v4: flexible, with the replica id.
pub const EPOCH_VERSION: i16 = 4;

/// One partition of a follower's fetch.
#[derive(Debug, Clone)]
pub struct FetchAt {
    pub key: PartitionKey,
    pub epoch: LeaderEpoch,
    pub offset: Offset,
    pub log_start: Offset,
}

/// One partition's part of a fetch answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub error: ErrorCode,
    pub high_watermark: Offset,
    pub log_start: Offset,
    pub records: Bytes,
}

fn by_topic<T>(items: impl Iterator<Item = (String, T)>) -> BTreeMap<String, Vec<T>> {
    let mut topics: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (topic, item) in items {
        topics.entry(topic).or_default().push(item);
    }
    topics
}

fn topic_name(name: String) -> TopicName {
    TopicName(StrBytes::from_string(name))
}

pub fn fetch_request(settings: &FetcherSettings, partitions: &[FetchAt]) -> FetchRequest {
    let topics = by_topic(partitions.iter().map(|at| {
        let partition = FetchPartition::default()
            .with_partition(at.key.partition)
            .with_current_leader_epoch(at.epoch.0)
            .with_fetch_offset(at.offset.0)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(at.log_start.0)
            .with_partition_max_bytes(settings.partition_max_bytes);
        (at.key.topic.clone(), partition)
    }))
    .into_iter()
    .map(|(topic, partitions)| {
        FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)
    })
    .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(settings.node.0))
        .with_max_wait_ms(i32::try_from(settings.max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(1)
        .with_max_bytes(settings.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// The answer for each partition asked, by key (partitions the leader left
/// out are missing).
pub fn fetched(response: FetchResponse) -> Result<BTreeMap<PartitionKey, Fetched>, ErrorCode> {
    let error = ErrorCode::from_code(response.error_code);
    if error != ErrorCode::None {
        return Err(error);
    }
    let mut answers = BTreeMap::new();
    for topic in response.responses {
        let name = topic.topic.0.to_string();
        for partition in topic.partitions {
            let key = PartitionKey {
                topic: name.clone(),
                partition: partition.partition_index,
            };
            answers.insert(
                key,
                Fetched {
                    error: ErrorCode::from_code(partition.error_code),
                    high_watermark: Offset(partition.high_watermark),
                    log_start: Offset(partition.log_start_offset),
                    records: partition.records.unwrap_or_default(),
                },
            );
        }
    }
    Ok(answers)
}

/// One partition to ask OffsetForLeaderEpoch about: the follower's latest epoch.
#[derive(Debug, Clone)]
pub struct EpochAsk {
    pub key: PartitionKey,
    pub current: LeaderEpoch,
    pub latest: LeaderEpoch,
}

pub fn epoch_request(node: NodeId, asks: &[EpochAsk]) -> OffsetForLeaderEpochRequest {
    let topics = by_topic(asks.iter().map(|ask| {
        let partition = OffsetForLeaderPartition::default()
            .with_partition(ask.key.partition)
            .with_current_leader_epoch(ask.current.0)
            .with_leader_epoch(ask.latest.0);
        (ask.key.topic.clone(), partition)
    }))
    .into_iter()
    .map(|(topic, partitions)| {
        OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)
    })
    .collect();
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(node.0))
        .with_topics(topics)
}

/// The leader's answer per partition: its epoch at or below the one asked and
/// where that epoch ends (`None`: it knows none), or an error.
pub type EpochAnswer = Result<Option<(LeaderEpoch, Offset)>, ErrorCode>;

pub fn epoch_answers(
    response: OffsetForLeaderEpochResponse,
) -> BTreeMap<PartitionKey, EpochAnswer> {
    let mut answers = BTreeMap::new();
    for topic in response.topics {
        let name = topic.topic.0.to_string();
        for partition in topic.partitions {
            let key = PartitionKey {
                topic: name.clone(),
                partition: partition.partition,
            };
            let error = ErrorCode::from_code(partition.error_code);
            let answer = if error != ErrorCode::None {
                Err(error)
            } else if partition.end_offset < 0 {
                Ok(None)
            } else {
                Ok(Some((
                    LeaderEpoch(partition.leader_epoch),
                    Offset(partition.end_offset),
                )))
            };
            answers.insert(key, answer);
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::offset_for_leader_epoch_response::{
        EpochEndOffset, OffsetForLeaderTopicResult,
    };
    use std::time::Duration;

    fn key(topic: &str, partition: i32) -> PartitionKey {
        PartitionKey {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn a_follower_fetch_names_its_replica_id_and_groups_partitions_by_topic() {
        let settings = FetcherSettings {
            node: NodeId(2),
            max_wait: Duration::from_millis(500),
            partition_max_bytes: 1 << 20,
            response_max_bytes: 10 << 20,
            backoff: Duration::from_secs(1),
        };
        let at = |topic, partition, offset| FetchAt {
            key: key(topic, partition),
            epoch: LeaderEpoch(3),
            offset: Offset(offset),
            log_start: Offset(0),
        };
        let request = fetch_request(&settings, &[at("b", 0, 5), at("a", 1, 7), at("b", 2, 9)]);
        assert_eq!(request.replica_id, BrokerId(2));
        assert_eq!(request.max_wait_ms, 500);
        let topics: Vec<(String, Vec<(i32, i64)>)> = request
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition, p.fetch_offset))
                    .collect();
                (t.topic.0.to_string(), partitions)
            })
            .collect();
        assert_eq!(
            topics,
            vec![
                ("a".to_string(), vec![(1, 7)]),
                ("b".to_string(), vec![(0, 5), (2, 9)])
            ]
        );
    }

    #[test]
    fn answers_are_read_by_partition() {
        let response = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(topic_name("t".into()))
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(0)
                        .with_high_watermark(10)
                        .with_records(Some(Bytes::from_static(b"abc"))),
                    PartitionData::default()
                        .with_partition_index(1)
                        .with_error_code(ErrorCode::FencedLeaderEpoch.code()),
                ]),
        ]);
        let answers = fetched(response).unwrap();
        assert_eq!(answers[&key("t", 0)].high_watermark, Offset(10));
        assert_eq!(&answers[&key("t", 0)].records[..], b"abc");
        assert_eq!(answers[&key("t", 1)].error, ErrorCode::FencedLeaderEpoch);
        let epochs = OffsetForLeaderEpochResponse::default().with_topics(vec![
            OffsetForLeaderTopicResult::default()
                .with_topic(topic_name("t".into()))
                .with_partitions(vec![
                    EpochEndOffset::default()
                        .with_partition(0)
                        .with_leader_epoch(2)
                        .with_end_offset(40),
                    EpochEndOffset::default()
                        .with_partition(1)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1),
                ]),
        ]);
        let answers = epoch_answers(epochs);
        assert_eq!(
            answers[&key("t", 0)],
            Ok(Some((LeaderEpoch(2), Offset(40))))
        );
        assert_eq!(answers[&key("t", 1)], Ok(None));
    }
}
