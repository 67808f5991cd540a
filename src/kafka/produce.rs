//! Produce: validate and append each partition's batch on the shard owning it
//! when this node leads it, answer per partition in request order; partitions
//! led elsewhere (or by nobody) are NOT_LEADER_OR_FOLLOWER with the current
//! leader named (KIP-951).

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::image::{MetadataImage, PartitionKey};
use crate::group::coordinator_key::OFFSETS_TOPIC;
use crate::kafka::{Slot, Split, auto_create, routing};
use crate::partition::{Acks, AppendTiming};
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::calls::produce::{Produce, ProduceItem, ProduceResult};
use crate::txn::TRANSACTION_STATE_TOPIC;

/// The first Produce version of `transaction.version` 2: a transaction's first
/// batch on a partition adds the partition to the transaction.
const FIRST_IMPLICIT_ADD_VERSION: i16 = 12;
/// The first Produce version with KIP-951's `current_leader` and `node_endpoints`.
const FIRST_CURRENT_LEADER_VERSION: i16 = 10;

/// The response, and the timing of the partition acknowledged last (the one a
/// slow request waited for), if any was appended.
pub async fn handle(
    shard: &Rc<Shard>,
    request: ProduceRequest,
    version: i16,
) -> (ProduceResponse, Option<AppendTiming>) {
    let unknown: Vec<String> = {
        let image = shard.image();
        request
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|name| !image.contains(name))
            .collect()
    };
    auto_create(shard, unknown).await;

    let invalid_acks = !matches!(request.acks, -1..=1);
    // Results by (topic index, partition index); filled locally or by owners.
    let mut results: BTreeMap<Slot, ProduceResult> = BTreeMap::new();
    let mut split: Split<ProduceItem> = Split::default();
    let image = shard.image();
    for (topic_index, topic) in request.topic_data.iter().enumerate() {
        for (partition_index, data) in topic.partition_data.iter().enumerate() {
            let key = PartitionKey {
                topic: topic.name.0.to_string(),
                partition: data.index,
            };
            let at = (topic_index, partition_index);
            match routing::partition_owner(image.route(&key)) {
                _ if invalid_acks => {
                    results.insert(at, Err(ErrorCode::InvalidRequiredAcks.into()));
                }
                // Only the coordinators write the internal topics, as in Kafka.
                _ if key.topic == OFFSETS_TOPIC || key.topic == TRANSACTION_STATE_TOPIC => {
                    results.insert(at, Err(ErrorCode::InvalidTopicException.into()));
                }
                Err(error) => {
                    results.insert(at, Err(error.into()));
                }
                Ok(owner) => {
                    split.push(
                        owner,
                        at,
                        ProduceItem {
                            key,
                            records: data.records.clone(),
                        },
                    );
                }
            }
        }
    }
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    split
        .run(
            shard,
            |items| Produce {
                zstd_allowed: version >= 7,
                transactional_id: transactional_id.clone(),
                adds_partitions: version >= FIRST_IMPLICIT_ADD_VERSION,
                acks: acks_of(request.acks, request.timeout_ms),
                items,
            },
            &mut results,
        )
        .await;
    let slowest = results
        .values()
        .filter_map(|result| result.as_ref().ok())
        .map(|appended| appended.timing)
        .max_by_key(|timing| timing.acknowledged);

    // The image may have changed while the partitions appended; the newest one
    // names the leaders to redirect to.
    let image = shard.image();
    let mut leaders = Leaders::default();
    let responses = request
        .topic_data
        .iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(
                    topic
                        .partition_data
                        .iter()
                        .enumerate()
                        .map(|(partition_index, data)| {
                            let result = results
                                .remove(&(topic_index, partition_index))
                                .unwrap_or_else(|| Err(ErrorCode::UnknownServerError.into()));
                            let mut response = partition_response(data.index, result);
                            if version >= FIRST_CURRENT_LEADER_VERSION {
                                let key = PartitionKey {
                                    topic: topic.name.0.to_string(),
                                    partition: data.index,
                                };
                                leaders.redirect(&image, &key, &mut response);
                            }
                            response
                        })
                        .collect(),
                )
        })
        .collect();
    let response = ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(leaders.endpoints);
    (response, slowest)
}

/// KIP-951: a partition answered NOT_LEADER_OR_FOLLOWER names its current
/// leader, and the response carries that leader's endpoint, so the client
/// retries there without a metadata round trip (as Kafka's `handleProduceRequest`).
#[derive(Default)]
struct Leaders {
    endpoints: Vec<NodeEndpoint>,
}

impl Leaders {
    fn redirect(
        &mut self,
        image: &MetadataImage,
        key: &PartitionKey,
        response: &mut PartitionProduceResponse,
    ) {
        if response.error_code != ErrorCode::NotLeaderOrFollower.code() {
            return;
        }
        let (leader, epoch) = routing::current_leader(image, key);
        response.current_leader = LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(leader.0))
            .with_leader_epoch(epoch.0);
        let Some(broker) = routing::live_broker(image, leader) else {
            return;
        };
        if self.endpoints.iter().all(|e| e.node_id.0 != broker.id.0) {
            self.endpoints.push(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(broker.id.0))
                    .with_host(StrBytes::from_string(broker.host.clone()))
                    .with_port(i32::from(broker.port))
                    .with_rack(broker.rack.clone().map(StrBytes::from_string)),
            );
        }
    }
}

/// One partition's answer; a refusal names the record to blame and why
/// (KIP-467: Produce v8+ carries them, older versions ignore the fields).
/// The request's `acks` (-1, 0 or 1, checked before) and `timeout_ms`: how long
/// an `acks=all` batch may wait for the ISR.
fn acks_of(acks: i16, timeout_ms: i32) -> Acks {
    match acks {
        -1 => Acks::All {
            timeout: std::time::Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0)),
        },
        _ => Acks::Leader,
    }
}

fn partition_response(index: i32, result: ProduceResult) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(appended) => response
            .with_error_code(ErrorCode::None.code())
            .with_base_offset(appended.base_offset.0)
            .with_log_append_time_ms(appended.log_append_time.map_or(-1, |t| t.0))
            .with_log_start_offset(appended.log_start_offset.0),
        Err(refusal) => {
            let record_errors = refusal
                .record_errors
                .into_iter()
                .map(|(batch_index, message)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(batch_index)
                        .with_batch_index_error_message(Some(StrBytes::from_string(message)))
                })
                .collect();
            response
                .with_error_code(refusal.error.code())
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1)
                .with_record_errors(record_errors)
                .with_error_message(refusal.message.map(StrBytes::from_string))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::routing::three_broker_image;

    #[test]
    fn not_leader_answers_name_the_current_leader_and_its_endpoint_once() {
        let image = three_broker_image();
        let key = |partition| PartitionKey {
            topic: "t".into(),
            partition,
        };
        let not_leader = || {
            PartitionProduceResponse::default()
                .with_error_code(ErrorCode::NotLeaderOrFollower.code())
        };
        let mut leaders = Leaders::default();
        let mut led_elsewhere = not_leader();
        leaders.redirect(&image, &key(1), &mut led_elsewhere);
        assert_eq!(led_elsewhere.current_leader.leader_id, BrokerId(1));
        assert_eq!(led_elsewhere.current_leader.leader_epoch, 3);
        let mut again = not_leader();
        leaders.redirect(&image, &key(1), &mut again);
        let mut offline = not_leader();
        leaders.redirect(&image, &key(2), &mut offline);
        assert_eq!(offline.current_leader.leader_id, BrokerId(-1));
        assert_eq!(offline.current_leader.leader_epoch, 5);
        let mut served = PartitionProduceResponse::default();
        leaders.redirect(&image, &key(0), &mut served);
        assert_eq!(served.current_leader, LeaderIdAndEpoch::default());
        let endpoints: Vec<_> = leaders
            .endpoints
            .iter()
            .map(|e| (e.node_id, e.host.to_string(), e.port, e.rack.clone()))
            .collect();
        assert_eq!(
            endpoints,
            vec![(
                BrokerId(1),
                "10.0.0.1".to_string(),
                9092,
                Some(StrBytes::from_static_str("r1"))
            )]
        );
    }
}
