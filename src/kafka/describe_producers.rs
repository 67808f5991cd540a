//! DescribeProducers: the producers each partition remembers — id, epoch, last
//! sequence and timestamp, the epoch of the coordinator that last wrote a
//! marker for it, and the first offset of its open transaction — read on the
//! partitions' owning shards. Admin tools use it to find hanging transactions.

use std::rc::Rc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};

use crate::cluster::image::PartitionKey;
use crate::kafka::by_partition;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::calls::describe_producers::DescribeProducers;
use crate::storage::producer_state::ProducerInfo;

pub async fn handle(
    shard: &Rc<Shard>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let partitions =
        request
            .topics
            .iter()
            .enumerate()
            .flat_map(|(topic_index, topic)| {
                topic.partition_indexes.iter().enumerate().map(
                    move |(partition_index, &partition)| {
                        let key = PartitionKey {
                            topic: topic.name.0.to_string(),
                            partition,
                        };
                        ((topic_index, partition_index), key, ())
                    },
                )
            });
    let mut results = by_partition(shard, partitions, |items| DescribeProducers { items }).await;
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            let partitions = topic
                .partition_indexes
                .iter()
                .enumerate()
                .map(|(partition_index, &partition)| {
                    let response = PartitionResponse::default().with_partition_index(partition);
                    // by_partition answers every slot it was given.
                    let result = results
                        .remove(&(topic_index, partition_index))
                        .unwrap_or(Err(ErrorCode::UnknownServerError));
                    match result {
                        Ok(producers) => response
                            .with_active_producers(producers.iter().map(producer_state).collect()),
                        Err(error) => response.with_error_code(error.code()),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn producer_state(producer: &ProducerInfo) -> ProducerState {
    ProducerState::default()
        .with_producer_id(kafka_protocol::messages::ProducerId(producer.producer_id.0))
        .with_producer_epoch(i32::from(producer.producer_epoch.0))
        .with_last_sequence(producer.last_sequence)
        .with_last_timestamp(producer.last_timestamp.0)
        .with_coordinator_epoch(producer.coordinator_epoch)
        .with_current_txn_start_offset(producer.current_txn_start_offset.map_or(-1, |o| o.0))
}
