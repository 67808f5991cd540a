//! Fetch: reads each partition this node leads on its owning shard, long-polling
//! up to `max_wait_ms` for `min_bytes`, and answers in request order; partitions
//! led elsewhere (or by nobody) are NOT_LEADER_OR_FOLLOWER with the current
//! leader named (KIP-951). Topics are named (v4-12) or identified by topic id
//! (v13+).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::image::{MetadataImage, PartitionKey};
use crate::kafka::{Slot, Split, routing};
use crate::net::outgoing::Pieces;
use crate::partition::Isolation;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::spliced::placeholder;
use crate::shard::Shard;
use crate::shard::calls::fetch::{Fetch, FetchItem, FetchOffsets, FetchResult};
use crate::storage::txn_index::AbortedTxn;
use crate::types::{LeaderEpoch, NodeId, Offset, ShardId};

/// Reads every partition on its owner without waiting.
async fn read_now(
    shard: &Rc<Shard>,
    split: Split<FetchItem>,
    limits: Limits,
    mut results: BTreeMap<Slot, FetchResult>,
) -> BTreeMap<Slot, FetchResult> {
    split
        .run(
            shard,
            |items| Fetch {
                items,
                max_wait: Duration::ZERO,
                min_bytes: 0,
                max_bytes: limits.max_bytes,
                isolation: limits.isolation,
                replica: limits.replica,
            },
            &mut results,
        )
        .await;
    within_max_bytes(&mut results, limits.max_bytes);
    results
}

/// Long-polls every owning shard at once and returns as soon as one of them sees
/// data for its partitions, or `wait` passes. The other polls finish on their own
/// by their deadline; fetches do not change anything, so their answers are dropped.
async fn wait_for_data(
    shard: &Rc<Shard>,
    split: &Split<FetchItem>,
    wait: Duration,
    limits: Limits,
) {
    let owners: Vec<(ShardId, Vec<FetchItem>)> = split.per_owner().collect();
    let (sender, receiver) = glommio::channels::local_channel::new_bounded(owners.len().max(1));
    let sender = Rc::new(sender);
    for (owner, items) in owners {
        let shard = Rc::clone(shard);
        let sender = Rc::clone(&sender);
        glommio::spawn_local(async move {
            let call = Fetch {
                items,
                max_wait: wait,
                min_bytes: 1,
                max_bytes: limits.max_bytes,
                isolation: limits.isolation,
                replica: limits.replica,
            };
            shard.call(owner, call).await;
            let _ = sender.try_send(());
        })
        .detach();
    }
    let _ = glommio::timer::timeout(wait, async {
        receiver.recv().await;
        Ok(())
    })
    .await;
}

/// What bounds a fetch's answer.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_bytes: usize,
    isolation: Isolation,
    /// A follower's fetch: its broker id.
    replica: Option<NodeId>,
}

/// Keeps the whole response within `max_bytes`, as Kafka does: each shard read
/// within the limit on its own, so partitions after the budget is spent lose their
/// records (the client fetches them next time), except that the first partition
/// with records keeps them even when they alone exceed the limit.
fn within_max_bytes(results: &mut BTreeMap<Slot, FetchResult>, max_bytes: usize) {
    let mut used: u64 = 0;
    let mut first = true;
    for result in results.values_mut() {
        let len = result.records.len();
        if len == 0 {
            continue;
        }
        if first || used + len <= max_bytes as u64 {
            used += len;
        } else {
            result.records = Pieces::default();
            if let Some(aborted) = &mut result.aborted {
                aborted.clear();
            }
        }
        first = false;
    }
}

/// Fetch's `aborted_transactions` (read_committed): producer id and first
/// offset of each aborted transaction with data in the records returned.
fn aborted_transactions(aborted: &[AbortedTxn]) -> Vec<AbortedTransaction> {
    aborted
        .iter()
        .map(|txn| {
            AbortedTransaction::default()
                .with_producer_id(kafka_protocol::messages::ProducerId(txn.producer_id.0))
                .with_first_offset(txn.first_offset.0)
        })
        .collect()
}

/// The follower broker a replica fetch comes from: the replica id field up to
/// v14, the replica state from v15 (KIP-903); consumers send -1.
fn replica_of(request: &FetchRequest, version: i16) -> Option<NodeId> {
    let id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    (id >= 0).then_some(NodeId(id))
}

/// Resolves a fetch topic to its name (by id from v13).
fn topic_name(
    image: &MetadataImage,
    name: &TopicName,
    id: uuid::Uuid,
    version: i16,
) -> Option<String> {
    if version < 13 {
        return Some(name.0.to_string());
    }
    image.name_of(id).map(str::to_string)
}

/// The response, and the pieces of each record field that is sent from segment
/// files (in encoding order; see [`crate::protocol::spliced`]).
pub async fn handle(
    shard: &Rc<Shard>,
    request: FetchRequest,
    version: i16,
) -> (FetchResponse, Vec<Pieces>) {
    if let Some(error) = session_error(&request) {
        let response = FetchResponse::default()
            .with_error_code(error.code())
            .with_session_id(0);
        return (response, Vec::new());
    }
    let mut results: BTreeMap<Slot, FetchResult> = BTreeMap::new();
    let mut split: Split<FetchItem> = Split::default();
    let mut names = Vec::with_capacity(request.topics.len());
    let image = shard.image();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let name = topic_name(&image, &topic.topic, topic.topic_id, version);
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            let at = (topic_index, partition_index);
            let Some(name) = &name else {
                results.insert(at, FetchResult::failed(ErrorCode::UnknownTopicId));
                continue;
            };
            let key = PartitionKey {
                topic: name.clone(),
                partition: partition.partition,
            };
            match routing::partition_owner(image.route(&key)) {
                Err(error) => {
                    results.insert(at, FetchResult::failed(error));
                }
                Ok(owner) => {
                    split.push(
                        owner,
                        at,
                        FetchItem {
                            key,
                            offset: Offset(partition.fetch_offset),
                            current_leader_epoch: Some(LeaderEpoch(partition.current_leader_epoch)),
                            max_bytes: partition.partition_max_bytes,
                        },
                    );
                }
            }
        }
        names.push(name);
    }
    let max_wait_ms = u64::try_from(request.max_wait_ms).unwrap_or(0);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    // max_bytes came with v3; earlier fetches are bounded per partition only.
    let replica = replica_of(&request, version);
    let limits = Limits {
        max_bytes: usize::try_from(request.max_bytes).unwrap_or(usize::MAX),
        isolation: match (replica, request.isolation_level) {
            (Some(_), _) => Isolation::LogEnd,
            (None, 1) => Isolation::ReadCommitted,
            (None, _) => Isolation::ReadUncommitted,
        },
        replica,
    };
    let wait = Duration::from_millis(max_wait_ms);
    let started = Instant::now();
    results = read_now(shard, split.clone(), limits, results).await;
    let enough = |results: &BTreeMap<Slot, FetchResult>| {
        let bytes: u64 = results.values().map(|r| r.records.len()).sum();
        bytes >= min_bytes.max(1) as u64 || results.values().any(|r| r.error != ErrorCode::None)
    };
    if !enough(&results) && started.elapsed() < wait {
        wait_for_data(shard, &split, wait - started.elapsed(), limits).await;
        results = read_now(shard, split, limits, results).await;
    }

    // The newest image names the leaders to redirect to.
    let image = shard.image();
    let mut leaders = Leaders::default();
    let mut spliced = Vec::new();
    let responses = request
        .topics
        .iter()
        .enumerate()
        .map(|(topic_index, topic)| {
            let key_name = names[topic_index].clone();
            let name = key_name.clone().map_or_else(
                || topic.topic.clone(),
                |n| TopicName(StrBytes::from_string(n)),
            );
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_topic_id(topic.topic_id)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(partition_index, partition)| {
                            let result = results
                                .remove(&(topic_index, partition_index))
                                .unwrap_or_else(|| {
                                    FetchResult::failed(ErrorCode::UnknownServerError)
                                });
                            let records = match result.records.as_single_bytes() {
                                Some(bytes) => bytes,
                                None => {
                                    let len = result.records.len();
                                    spliced.push(result.records);
                                    placeholder(len)
                                }
                            };
                            let offsets = result.offsets;
                            let offset = |get: fn(&FetchOffsets) -> Offset| {
                                offsets.as_ref().map_or(-1, |o| get(o).0)
                            };
                            let current_leader = match &key_name {
                                Some(topic) if version >= FIRST_CURRENT_LEADER_VERSION => {
                                    let key = PartitionKey {
                                        topic: topic.clone(),
                                        partition: partition.partition,
                                    };
                                    leaders.redirect(&image, &key, result.error)
                                }
                                _ => LeaderIdAndEpoch::default(),
                            };
                            PartitionData::default()
                                .with_partition_index(partition.partition)
                                .with_error_code(result.error.code())
                                .with_current_leader(current_leader)
                                .with_high_watermark(offset(|o| o.high_watermark))
                                .with_last_stable_offset(offset(|o| o.last_stable_offset))
                                .with_log_start_offset(offset(|o| o.log_start_offset))
                                .with_aborted_transactions(
                                    result.aborted.as_deref().map(aborted_transactions),
                                )
                                .with_records(Some(records))
                        })
                        .collect(),
                )
        })
        .collect();
    let mut response = FetchResponse::default().with_responses(responses);
    if version >= FIRST_NODE_ENDPOINTS_VERSION {
        response.node_endpoints = leaders.endpoints;
    }
    (response, spliced)
}

/// The first Fetch version with `current_leader` per partition.
const FIRST_CURRENT_LEADER_VERSION: i16 = 12;
/// The first Fetch version with `node_endpoints` (KIP-951).
const FIRST_NODE_ENDPOINTS_VERSION: i16 = 16;

/// KIP-951: a partition answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH
/// names its current leader, and the response carries that leader's endpoint
/// (as Kafka's `handleFetchRequest`).
#[derive(Default)]
struct Leaders {
    endpoints: Vec<NodeEndpoint>,
}

impl Leaders {
    fn redirect(
        &mut self,
        image: &MetadataImage,
        key: &PartitionKey,
        error: ErrorCode,
    ) -> LeaderIdAndEpoch {
        if !matches!(
            error,
            ErrorCode::NotLeaderOrFollower | ErrorCode::FencedLeaderEpoch
        ) {
            return LeaderIdAndEpoch::default();
        }
        let (leader, epoch) = routing::current_leader(image, key);
        if let Some(broker) = routing::live_broker(image, leader)
            && self.endpoints.iter().all(|e| e.node_id.0 != broker.id.0)
        {
            self.endpoints.push(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(broker.id.0))
                    .with_host(StrBytes::from_string(broker.host.clone()))
                    .with_port(i32::from(broker.port))
                    .with_rack(broker.rack.clone().map(StrBytes::from_string)),
            );
        }
        LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(leader.0))
            .with_leader_epoch(epoch.0)
    }
}

/// This broker creates no fetch sessions (KIP-227): it answers a request for a new
/// one (epoch 0) with session id 0, which tells the client to keep sending full
/// fetches; a request in a session it never created is refused as Kafka refuses an
/// unknown or evicted session.
fn session_error(request: &FetchRequest) -> Option<ErrorCode> {
    const FINAL_EPOCH: i32 = -1;
    const NEW_SESSION_EPOCH: i32 = 0;
    match (request.session_id, request.session_epoch) {
        (0, FINAL_EPOCH | NEW_SESSION_EPOCH) => None,
        (0, _) => Some(ErrorCode::InvalidFetchSessionEpoch),
        (_, _) => Some(ErrorCode::FetchSessionIdNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_and_not_leader_partitions_name_the_current_leader() {
        let image = crate::kafka::routing::three_broker_image();
        let key = |partition| PartitionKey {
            topic: "t".into(),
            partition,
        };
        let mut leaders = Leaders::default();
        let elsewhere = leaders.redirect(&image, &key(1), ErrorCode::NotLeaderOrFollower);
        assert_eq!(
            (elsewhere.leader_id, elsewhere.leader_epoch),
            (BrokerId(1), 3)
        );
        let fenced = leaders.redirect(&image, &key(0), ErrorCode::FencedLeaderEpoch);
        assert_eq!((fenced.leader_id, fenced.leader_epoch), (BrokerId(0), 1));
        let served = leaders.redirect(&image, &key(0), ErrorCode::None);
        assert_eq!(served, LeaderIdAndEpoch::default());
        let ids: Vec<BrokerId> = leaders.endpoints.iter().map(|e| e.node_id).collect();
        assert_eq!(ids, vec![BrokerId(1), BrokerId(0)]);
    }

    #[test]
    fn only_sessionless_full_fetches_are_served() {
        let request = |id, epoch| {
            FetchRequest::default()
                .with_session_id(id)
                .with_session_epoch(epoch)
        };
        assert_eq!(session_error(&request(0, -1)), None);
        assert_eq!(session_error(&request(0, 0)), None);
        assert_eq!(
            session_error(&request(0, 3)),
            Some(ErrorCode::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            session_error(&request(12, 1)),
            Some(ErrorCode::FetchSessionIdNotFound)
        );
    }

    #[test]
    fn responses_stay_within_max_bytes_but_the_first_batch_always_goes() {
        let result = |len: usize| FetchResult {
            error: ErrorCode::None,
            offsets: None,
            records: Pieces::from(bytes::Bytes::from(vec![0u8; len])),
            aborted: None,
        };
        let mut results: BTreeMap<Slot, FetchResult> = [
            ((0, 0), result(0)),
            ((0, 1), result(700)),
            ((0, 2), result(400)),
            ((1, 0), result(300)),
        ]
        .into_iter()
        .collect();
        within_max_bytes(&mut results, 1000);
        let kept: Vec<u64> = results.values().map(|r| r.records.len()).collect();
        assert_eq!(kept, vec![0, 700, 0, 300]);
        let mut oversized: BTreeMap<Slot, FetchResult> =
            [((0, 0), result(5000)), ((0, 1), result(1))]
                .into_iter()
                .collect();
        within_max_bytes(&mut oversized, 1000);
        let kept: Vec<u64> = oversized.values().map(|r| r.records.len()).collect();
        assert_eq!(kept, vec![5000, 0]);
    }
}
