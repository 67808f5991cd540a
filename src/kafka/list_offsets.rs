//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) or the first offset
//! at or after a timestamp, per partition on its owning shard.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::cluster::image::PartitionKey;
use crate::kafka::by_partition;
use crate::partition::{Isolation, OffsetSpec};
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::calls::offsets::ListOffsets;
use crate::types::LeaderEpoch;

pub async fn handle(
    shard: &Rc<Shard>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let isolation = if version >= 2 && request.isolation_level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
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
                        topic: topic.name.0.to_string(),
                        partition: partition.partition_index,
                    };
                    let spec = OffsetSpec::from_wire(partition.timestamp);
                    let epoch =
                        (version >= 4).then_some(LeaderEpoch(partition.current_leader_epoch));
                    ((topic_index, partition_index), key, (spec, epoch))
                })
        });
    let results = by_partition(shard, partitions, |items| ListOffsets { items, isolation }).await;
    let image = shard.image();
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(partition_index, partition)| {
                            let (error, offset, timestamp) =
                                match results[&(topic_index, partition_index)] {
                                    Ok(Some((offset, timestamp))) => {
                                        (ErrorCode::None, offset.0, timestamp.0)
                                    }
                                    Ok(None) => (ErrorCode::None, -1, -1),
                                    Err(error) => (error, -1, -1),
                                };
                            let key = PartitionKey {
                                topic: topic.name.0.to_string(),
                                partition: partition.partition_index,
                            };
                            let leader_epoch = image
                                .partition(&key)
                                .filter(|_| version >= 4 && error == ErrorCode::None)
                                .map_or(-1, |p| p.leader_epoch.0);
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(error.code())
                                .with_offset(offset)
                                .with_timestamp(timestamp)
                                .with_leader_epoch(leader_epoch)
                        })
                        .collect(),
                )
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
