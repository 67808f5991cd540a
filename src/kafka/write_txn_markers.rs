//! WriteTxnMarkers (v1), Kafka's inter-broker request: a transaction coordinator
//! on another broker asks this one to end transactions on the partitions it
//! leads. Each marker's partitions go to their owning shards (one call per
//! marker and shard, all at once), which append the marker and, on
//! `__consumer_offsets`, make the producer's offsets visible or drop them. A
//! partition another broker leads (or none does) answers NOT_LEADER_OR_FOLLOWER,
//! so the coordinator asks the new leader; an unknown one
//! UNKNOWN_TOPIC_OR_PARTITION.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafka_protocol::messages::write_txn_markers_request::WritableTxnMarker;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::cluster::image::{MetadataImage, PartitionKey};
use crate::kafka::{fan_out, routing};
use crate::protocol::error_code::ErrorCode;
use crate::record::control::MarkerKind;
use crate::shard::Shard;
use crate::shard::calls::txn_markers::WriteTxnMarkers;
use crate::txn::markers::TxnMarkers;
use crate::txn::state::TxnPartition;
use crate::types::{ProducerEpoch, ProducerId, ShardId};

pub async fn handle(shard: &Rc<Shard>, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let image = shard.image();
    // Per marker: the answers known without writing, then the shard calls'.
    let mut answers: Vec<BTreeMap<TxnPartition, ErrorCode>> = Vec::new();
    let mut markers = Vec::new();
    let mut calls = Vec::new();
    for (index, marker) in request.markers.iter().enumerate() {
        let (answered, per_owner) = split(&image, marker);
        answers.push(answered);
        for (owner, partitions) in per_owner {
            markers.push(index);
            calls.push((
                owner,
                WriteTxnMarkers(TxnMarkers {
                    producer_id: ProducerId(marker.producer_id.0),
                    producer_epoch: ProducerEpoch(marker.producer_epoch),
                    coordinator_epoch: marker.coordinator_epoch,
                    kind: if marker.transaction_result {
                        MarkerKind::Commit
                    } else {
                        MarkerKind::Abort
                    },
                    partitions: partitions.into_iter().collect(),
                }),
            ));
        }
    }
    for (index, (_, results)) in markers.into_iter().zip(fan_out(shard, calls).await) {
        answers[index].extend(results);
    }
    let results = request
        .markers
        .iter()
        .zip(answers)
        .map(|(marker, answers)| answer(marker, &answers))
        .collect();
    WriteTxnMarkersResponse::default().with_markers(results)
}

/// A marker's partitions: the answers of those not led here, and the others by
/// owning shard (each once, however often the request names it).
fn split(
    image: &MetadataImage,
    marker: &WritableTxnMarker,
) -> (
    BTreeMap<TxnPartition, ErrorCode>,
    BTreeMap<ShardId, BTreeSet<TxnPartition>>,
) {
    let mut answered = BTreeMap::new();
    let mut per_owner: BTreeMap<ShardId, BTreeSet<TxnPartition>> = BTreeMap::new();
    for topic in &marker.topics {
        let name = topic.name.0.to_string();
        for &partition in &topic.partition_indexes {
            let key = PartitionKey {
                topic: name.clone(),
                partition,
            };
            match routing::partition_owner(image.route(&key)) {
                Ok(owner) => {
                    per_owner
                        .entry(owner)
                        .or_default()
                        .insert((name.clone(), partition));
                }
                Err(error) => {
                    answered.insert((name.clone(), partition), error);
                }
            }
        }
    }
    (answered, per_owner)
}

/// The answer for one marker, in the request's order.
fn answer(
    marker: &WritableTxnMarker,
    answers: &BTreeMap<TxnPartition, ErrorCode>,
) -> WritableTxnMarkerResult {
    let topics = marker
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&partition| {
                    let error = answers
                        .get(&(name.clone(), partition))
                        .copied()
                        .unwrap_or(ErrorCode::UnknownServerError);
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(partition)
                        .with_error_code(error.code())
                })
                .collect();
            WritableTxnMarkerTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    WritableTxnMarkerResult::default()
        .with_producer_id(marker.producer_id)
        .with_topics(topics)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::write_txn_markers_request::WritableTxnMarkerTopic;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::kafka::routing::three_broker_image;

    fn marker(partitions: Vec<(&str, Vec<i32>)>) -> WritableTxnMarker {
        WritableTxnMarker::default()
            .with_producer_id(4.into())
            .with_topics(
                partitions
                    .into_iter()
                    .map(|(name, indexes)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.into())))
                            .with_partition_indexes(indexes)
                    })
                    .collect(),
            )
    }

    #[test]
    fn only_partitions_led_here_are_written() {
        // Partition 0 of `t` is led here (shard 0), 1 by broker 1, 2 is offline.
        let image = three_broker_image();
        let marker = marker(vec![("t", vec![0, 1, 2, 0]), ("gone", vec![0])]);
        let (answered, per_owner) = split(&image, &marker);
        let p = |topic: &str, index| (topic.to_string(), index);
        assert_eq!(
            per_owner,
            BTreeMap::from([(ShardId(0), BTreeSet::from([p("t", 0)]))])
        );
        assert_eq!(
            answered,
            BTreeMap::from([
                (p("t", 1), ErrorCode::NotLeaderOrFollower),
                (p("t", 2), ErrorCode::NotLeaderOrFollower),
                (p("gone", 0), ErrorCode::UnknownTopicOrPartition),
            ])
        );
        let mut answers = answered;
        answers.insert(p("t", 0), ErrorCode::None);
        let result = answer(&marker, &answers);
        assert_eq!(result.producer_id.0, 4);
        let codes: Vec<Vec<(i32, i16)>> = result
            .topics
            .iter()
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.error_code))
                    .collect()
            })
            .collect();
        assert_eq!(
            codes,
            vec![vec![(0, 0), (1, 6), (2, 6), (0, 0)], vec![(0, 3)]]
        );
    }
}
