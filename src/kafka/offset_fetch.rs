//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+), each
//! asked of its coordinating shard (one message per shard). Partitions without
//! a commit, and unknown groups, answer offset -1. With `require_stable` (v7+,
//! KIP-447) a partition whose offset a transaction has pending answers
//! UNSTABLE_OFFSET_COMMIT, and the consumer asks again.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::group::ids::GroupId;
use crate::group::offsets::TopicPartition;
use crate::group::requests::{FetchOffsets, FetchedOffset, FetchedOffsets};
use crate::kafka::fan_out;
use crate::kafka::group_routing::split_by_coordinator;
use crate::shard::Shard;

/// One partition's answer: (partition, offset, leader epoch, metadata, error).
type PartitionOffset = (i32, i64, i32, String, i16);

pub async fn handle(
    shard: &Rc<Shard>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let asked: Vec<(String, Option<Vec<TopicPartition>>)> = if version >= 8 {
        request
            .groups
            .iter()
            .map(|g| {
                let partitions = g.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.to_string(), p)))
                        .collect()
                });
                (g.group_id.to_string(), partitions)
            })
            .collect()
    } else {
        let partitions = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.to_string(), p)))
                .collect()
        });
        vec![(request.group_id.to_string(), partitions)]
    };
    let names: Vec<String> = asked.iter().map(|(g, _)| g.clone()).collect();
    // The field exists from v7; older versions decode it as false.
    let results = fetch_all(shard, asked, request.require_stable).await;
    if version >= 8 {
        let groups = names
            .into_iter()
            .zip(results)
            .map(|(group, result)| {
                let group_response = OffsetFetchResponseGroup::default().with_group_id(
                    kafka_protocol::messages::GroupId(StrBytes::from_string(group)),
                );
                match result {
                    Err(error) => group_response.with_error_code(error.code()),
                    Ok(offsets) => group_response.with_topics(
                        by_topic(offsets)
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(topic_name(topic))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(p, offset, epoch, metadata, error)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_error_code(error)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(StrBytes::from_string(
                                                        metadata,
                                                    )))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let result = results.into_iter().next().unwrap_or(Ok(Vec::new()));
    match result {
        Err(error) => OffsetFetchResponse::default().with_error_code(error.code()),
        Ok(offsets) => OffsetFetchResponse::default().with_topics(
            by_topic(offsets)
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, offset, epoch, metadata, error)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(error)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(StrBytes::from_string(metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

fn topic_name(topic: String) -> TopicName {
    TopicName(StrBytes::from_string(topic))
}

/// Each group's offsets, one message per coordinating shard.
async fn fetch_all(
    shard: &Rc<Shard>,
    asked: Vec<(String, Option<Vec<TopicPartition>>)>,
    require_stable: bool,
) -> Vec<FetchedOffsets> {
    let count = asked.len();
    let mut results: Vec<FetchedOffsets> = vec![Ok(Vec::new()); count];
    let items = asked
        .into_iter()
        .map(|(g, p)| (g.clone(), (g, p)))
        .collect();
    let (per_shard, failed) = split_by_coordinator(shard, items).await;
    for (index, error) in failed {
        results[index] = Err(error);
    }
    let mut indexes = BTreeMap::new();
    let requests = per_shard
        .into_iter()
        .map(|(owner, items)| {
            let (owner_indexes, groups): (Vec<usize>, Vec<_>) = items
                .into_iter()
                .map(|(index, (group, partitions))| (index, (GroupId(group), partitions)))
                .unzip();
            indexes.insert(owner, owner_indexes);
            (
                owner,
                FetchOffsets {
                    groups,
                    require_stable,
                },
            )
        })
        .collect();
    for (owner, fetched) in fan_out(shard, requests).await {
        for (index, result) in indexes[&owner].iter().zip(fetched) {
            results[*index] = result;
        }
    }
    results
}

/// Groups partition answers by topic, in the order topics first appear.
fn by_topic(offsets: Vec<(TopicPartition, FetchedOffset)>) -> Vec<(String, Vec<PartitionOffset>)> {
    let mut topics: Vec<(String, Vec<PartitionOffset>)> = Vec::new();
    for ((topic, partition), value) in offsets {
        let answer = match value {
            Ok(Some(v)) => (partition, v.offset, v.leader_epoch, v.metadata, 0),
            Ok(None) => (partition, -1, -1, String::new(), 0),
            Err(error) => (partition, -1, -1, String::new(), error.code()),
        };
        match topics.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, partitions)) => partitions.push(answer),
            None => topics.push((topic, vec![answer])),
        }
    }
    topics
}
