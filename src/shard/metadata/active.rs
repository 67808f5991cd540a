//! The active controller: decides metadata changes against the committed state
//! ([`crate::cluster::controller`]), commits them through the quorum before it
//! answers, and watches broker heartbeats, fencing a broker whose session
//! expired so its partitions get new leaders (or go offline).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster::controller::{self, Limits};
use crate::cluster::quorum::{ProposeError, RequestHandler};
use crate::cluster::records::{self, MetadataRecord};
use crate::protocol::error_code::ErrorCode;
use crate::shard::metadata::MetadataNode;
use crate::shard::metadata::rpc::{self, ControllerRequest, ControllerResponse};
use crate::types::NodeId;

/// Producer ids handed to a broker at a time (Kafka's block size).
const PRODUCER_ID_BLOCK: i64 = 1000;
/// How long a broker-only node's metadata fetch waits for a change.
const FETCH_WAIT: Duration = Duration::from_secs(1);

impl RequestHandler for MetadataNode {
    fn handle(&self, from: NodeId, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>>>> {
        let node = self
            .shard()
            .metadata()
            .expect("the metadata node is set before the quorum serves requests");
        Box::pin(async move {
            let answer = match rpc::decode::<ControllerRequest>(&body) {
                Ok(request) => serve(&node, request).await,
                Err(error) => {
                    tracing::warn!(from = from.0, %error, "refused a controller request");
                    ControllerResponse::Failed(error)
                }
            };
            rpc::encode(&answer)
        })
    }
}

/// Answers one request as the active controller, or says who is.
pub(super) async fn serve(node: &MetadataNode, request: ControllerRequest) -> ControllerResponse {
    let Some(quorum) = node.quorum.get() else {
        return ControllerResponse::NotController { leader: None };
    };
    if let ControllerRequest::FetchMetadata { after } = request {
        return fetch_metadata(node, after).await;
    }
    let _turn = node
        .turn
        .acquire_permit(1)
        .await
        .expect("the controller's semaphore is never closed");
    if !quorum.is_leader() {
        return ControllerResponse::NotController {
            leader: quorum.leader(),
        };
    }
    if !node.leader_ready.get() {
        // An empty batch of this term: once it is applied, so is everything
        // committed before it, and decisions see the whole state.
        if let Err(answer) = commit(node, Vec::new(), true).await {
            return answer;
        }
        node.leader_ready.set(true);
    }
    let limits = limits(node);
    match request {
        ControllerRequest::CreateTopics(topics) => {
            let decision = controller::create_topics(&node.state.borrow(), topics, limits);
            topics_answer(node, decision).await
        }
        ControllerRequest::CreatePartitions {
            topics,
            validate_only,
        } => {
            let decision =
                controller::create_partitions(&node.state.borrow(), topics, validate_only, limits);
            topics_answer(node, decision).await
        }
        ControllerRequest::SetTopicConfigs {
            topic,
            configs,
            validate_only,
        } => {
            let decision =
                controller::set_topic_configs(&node.state.borrow(), topic, configs, validate_only);
            topics_answer(node, decision).await
        }
        ControllerRequest::DeleteTopics(names) => {
            let decision = controller::delete_topics(&node.state.borrow(), names);
            topics_answer(node, decision).await
        }
        ControllerRequest::RegisterBroker(registration) => {
            let id = registration.id;
            let batch = controller::register_broker(&node.state.borrow(), registration);
            match commit(node, batch, true).await {
                Ok(offset) => {
                    node.heartbeats.borrow_mut().insert(id, Instant::now());
                    let epoch = node.state.borrow().brokers.get(&id).map(|b| b.epoch);
                    match epoch {
                        Some(epoch) => ControllerResponse::Registered { epoch },
                        None => ControllerResponse::Failed(format!(
                            "broker {id} is not registered after offset {offset}"
                        )),
                    }
                }
                Err(answer) => answer,
            }
        }
        ControllerRequest::Heartbeat {
            id,
            epoch,
            applied,
            shutting_down,
        } => heartbeat(node, id, epoch, applied, shutting_down).await,
        ControllerRequest::AllocateProducerIds { broker } => {
            let (first, batch) =
                controller::allocate_producer_ids(&node.state.borrow(), broker, PRODUCER_ID_BLOCK);
            match commit(node, batch, true).await {
                Ok(offset) => ControllerResponse::ProducerIds {
                    first,
                    count: PRODUCER_ID_BLOCK,
                    offset,
                },
                Err(answer) => answer,
            }
        }
        ControllerRequest::AlterPartition(request) => {
            let decision = controller::alter_partition(&node.state.borrow(), &request);
            match decision {
                Ok(batch) => match commit(node, batch, false).await {
                    Ok(offset) => ControllerResponse::AlterPartition {
                        error: ErrorCode::None,
                        offset,
                    },
                    Err(answer) => answer,
                },
                Err(error) => ControllerResponse::AlterPartition {
                    error,
                    offset: node.state.borrow().offset,
                },
            }
        }
        ControllerRequest::ElectLeaders {
            election,
            partitions,
        } => {
            let (results, batch) =
                controller::elect_leaders(&node.state.borrow(), election, partitions);
            match commit(node, batch, false).await {
                Ok(offset) => ControllerResponse::ElectLeaders { results, offset },
                Err(answer) => answer,
            }
        }
        ControllerRequest::FetchMetadata { .. } => unreachable!("answered above"),
    }
}

async fn heartbeat(
    node: &MetadataNode,
    id: NodeId,
    epoch: i64,
    applied: u64,
    shutting_down: bool,
) -> ControllerResponse {
    let registered = node.state.borrow().brokers.get(&id).cloned();
    let Some(broker) = registered.filter(|b| b.epoch == epoch) else {
        return ControllerResponse::StaleBrokerEpoch;
    };
    node.heartbeats.borrow_mut().insert(id, Instant::now());
    let batch = if shutting_down && !broker.fenced {
        controller::controlled_shutdown(&node.state.borrow(), id, epoch, unclean_default(node))
    } else if !shutting_down && broker.fenced && applied >= epoch_offset(epoch) {
        // Caught up with the log up to its own registration: it can serve.
        controller::unfence_broker(&node.state.borrow(), id, epoch, unclean_default(node))
    } else {
        Vec::new()
    };
    if let Err(answer) = commit(node, batch, false).await {
        return answer;
    }
    let fenced = node
        .state
        .borrow()
        .brokers
        .get(&id)
        .is_none_or(|b| b.fenced);
    ControllerResponse::Heartbeat { fenced }
}

fn epoch_offset(epoch: i64) -> u64 {
    u64::try_from(epoch).unwrap_or(0)
}

async fn topics_answer(node: &MetadataNode, decision: controller::Decision) -> ControllerResponse {
    // A copy to log from once committed: topic changes are rare admin requests.
    match commit(node, decision.records.clone(), false).await {
        Ok(offset) => {
            // Here, once per cluster (the active controller), when it is committed.
            for change in TopicChange::of(&decision.records) {
                change.log(offset);
            }
            ControllerResponse::Topics {
                results: decision.results,
                offset,
            }
        }
        Err(answer) => answer,
    }
}

/// A topic change a committed batch of records makes, as an operator reads it.
#[derive(Debug, PartialEq, Eq)]
enum TopicChange<'a> {
    Created {
        topic: &'a str,
        partitions: usize,
        configs: Option<&'a BTreeMap<String, String>>,
    },
    PartitionsAdded {
        topic: &'a str,
        added: usize,
        /// The partition count after the change.
        partitions: i32,
    },
    ConfigAltered {
        topic: &'a str,
        configs: &'a BTreeMap<String, String>,
    },
    Deleted {
        topic: &'a str,
    },
}

impl<'a> TopicChange<'a> {
    /// The changes of `records`, one per topic and kind, in record order.
    fn of(records: &'a [MetadataRecord]) -> Vec<TopicChange<'a>> {
        let mut changes: Vec<TopicChange<'a>> = Vec::new();
        for record in records {
            match record {
                MetadataRecord::Topic { name, .. } => changes.push(TopicChange::Created {
                    topic: name,
                    partitions: 0,
                    configs: None,
                }),
                MetadataRecord::Partition {
                    topic, partition, ..
                } => match changes.iter_mut().find(|c| c.topic() == topic) {
                    Some(TopicChange::Created { partitions, .. }) => *partitions += 1,
                    Some(TopicChange::PartitionsAdded {
                        added, partitions, ..
                    }) => {
                        *added += 1;
                        *partitions = (*partitions).max(partition + 1);
                    }
                    _ => changes.push(TopicChange::PartitionsAdded {
                        topic,
                        added: 1,
                        partitions: partition + 1,
                    }),
                },
                MetadataRecord::TopicConfigs { name, configs } => {
                    match changes.iter_mut().find(|c| c.topic() == name) {
                        Some(TopicChange::Created { configs: set, .. }) => *set = Some(configs),
                        _ => changes.push(TopicChange::ConfigAltered {
                            topic: name,
                            configs,
                        }),
                    }
                }
                MetadataRecord::RemoveTopic { name } => {
                    changes.push(TopicChange::Deleted { topic: name })
                }
                _ => {}
            }
        }
        changes
    }

    fn topic(&self) -> &'a str {
        match self {
            TopicChange::Created { topic, .. }
            | TopicChange::PartitionsAdded { topic, .. }
            | TopicChange::ConfigAltered { topic, .. }
            | TopicChange::Deleted { topic } => topic,
        }
    }

    fn log(&self, offset: u64) {
        match self {
            TopicChange::Created {
                topic,
                partitions,
                configs,
            } => {
                tracing::info!(topic, partitions, configs = ?configs.cloned().unwrap_or_default(), metadata_offset = offset, "topic created")
            }
            TopicChange::PartitionsAdded {
                topic,
                added,
                partitions,
            } => tracing::info!(
                topic,
                added,
                partitions,
                metadata_offset = offset,
                "partitions added"
            ),
            TopicChange::ConfigAltered { topic, configs } => {
                tracing::info!(
                    topic,
                    ?configs,
                    metadata_offset = offset,
                    "topic config altered"
                )
            }
            TopicChange::Deleted { topic } => {
                tracing::info!(topic, metadata_offset = offset, "topic deleted")
            }
        }
    }
}

/// Commits a batch and returns its offset (the current one for an empty batch,
/// unless `always`), or the answer to give instead.
async fn commit(
    node: &MetadataNode,
    batch: Vec<MetadataRecord>,
    always: bool,
) -> Result<u64, ControllerResponse> {
    if batch.is_empty() && !always {
        return Ok(node.state.borrow().offset);
    }
    let quorum = node.quorum.get().expect("only controllers commit");
    match quorum.propose(records::encode(&batch)).await {
        Ok(offset) => Ok(offset),
        Err(ProposeError::NotLeader { leader }) => {
            node.leader_ready.set(false);
            Err(ControllerResponse::NotController { leader })
        }
        Err(error) => {
            node.leader_ready.set(false);
            Err(ControllerResponse::Failed(error.to_string()))
        }
    }
}

async fn fetch_metadata(node: &MetadataNode, after: u64) -> ControllerResponse {
    let deadline = Instant::now() + FETCH_WAIT;
    // Bounded by the deadline: one wake-up per publication.
    while node.state.borrow().offset <= after && Instant::now() < deadline {
        let wait = node.published_changed.wait();
        futures_lite::future::or(wait, async {
            glommio::timer::sleep(FETCH_WAIT).await;
        })
        .await;
    }
    let state = node.state.borrow();
    ControllerResponse::Metadata {
        state: (state.offset > after).then(|| Box::new(state.clone())),
    }
}

fn limits(node: &MetadataNode) -> Limits {
    let shard = node.shard();
    let config = shard.config();
    Limits {
        default_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
    }
}

/// The broker's `unclean.leader.election.enable`, for topics without an override.
fn unclean_default(node: &MetadataNode) -> bool {
    node.shard().config().unclean_leader_election_enable
}

/// Starts the controller's periodic work on this shard: noticing leadership
/// changes (logged on every node), fencing brokers whose session expired and,
/// with `auto.leader.rebalance.enable`, moving leadership back to preferred
/// replicas every `leader.imbalance.check.interval.seconds`.
pub(super) fn spawn_duties(node: &Rc<MetadataNode>) {
    if node.shard().config().auto_leader_rebalance_enable {
        spawn_rebalance(node);
    }
    let node = Rc::clone(node);
    glommio::spawn_local(async move {
        let session = Duration::from_millis(node.shard().config().broker_session_timeout_ms);
        let period = (session / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
        let mut known_leader = None;
        loop {
            glommio::timer::sleep(period).await;
            let Some(quorum) = node.quorum.get() else {
                return;
            };
            let leader = quorum.leader();
            if leader != known_leader {
                known_leader = leader;
                tracing::info!(
                    leader = leader.map_or(-1, |l| l.0),
                    "metadata quorum leader"
                );
                if quorum.is_leader() {
                    // A new term: every broker gets a full session from now.
                    let now = Instant::now();
                    let ids: Vec<NodeId> = node.state.borrow().brokers.keys().copied().collect();
                    node.heartbeats
                        .borrow_mut()
                        .extend(ids.into_iter().map(|id| (id, now)));
                }
                node.leader_ready.set(false);
            }
            if quorum.is_leader() {
                fence_expired(&node, session).await;
            }
        }
    })
    .detach();
}

fn spawn_rebalance(node: &Rc<MetadataNode>) {
    let node = Rc::clone(node);
    glommio::spawn_local(async move {
        let period = Duration::from_secs(
            node.shard()
                .config()
                .leader_imbalance_check_interval_seconds
                .max(1),
        );
        // Runs for the life of the process, one check per period.
        loop {
            glommio::timer::sleep(period).await;
            let Some(quorum) = node.quorum.get() else {
                return;
            };
            let _turn = node
                .turn
                .acquire_permit(1)
                .await
                .expect("the controller's semaphore is never closed");
            // A leader not yet ready may not see every committed change; the
            // next check will.
            if !quorum.is_leader() || !node.leader_ready.get() {
                continue;
            }
            let batch = controller::rebalance_leaders(&node.state.borrow());
            if !batch.is_empty() {
                tracing::info!(partitions = batch.len(), "preferred leader elections");
            }
            if let Err(answer) = commit(&node, batch, false).await {
                tracing::warn!(?answer, "preferred leader elections failed");
            }
        }
    })
    .detach();
}

async fn fence_expired(node: &MetadataNode, session: Duration) {
    let now = Instant::now();
    let expired: Vec<(NodeId, i64)> = node
        .state
        .borrow()
        .brokers
        .values()
        .filter(|b| !b.fenced)
        // This node's own broker, still starting (opening its partitions can
        // take longer than a session), registers anew: fencing its previous
        // registration would only churn every leadership it holds.
        .filter(|b| b.id != node.identity.node || node.broker_epoch.get().is_some())
        .filter(|b| {
            node.heartbeats
                .borrow()
                .get(&b.id)
                .is_none_or(|last| now.duration_since(*last) > session)
        })
        .map(|b| (b.id, b.epoch))
        .collect();
    for (id, epoch) in expired {
        let _turn = node
            .turn
            .acquire_permit(1)
            .await
            .expect("the controller's semaphore is never closed");
        tracing::warn!(broker = id.0, "broker session expired: fencing it");
        let batch =
            controller::fence_broker(&node.state.borrow(), id, epoch, unclean_default(node));
        if let Err(answer) = commit(node, batch, false).await {
            tracing::warn!(broker = id.0, ?answer, "fencing failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LeaderEpoch;

    fn partition(topic: &str, partition: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic: topic.into(),
            partition,
            replicas: vec![NodeId(1)],
            isr: vec![NodeId(1)],
            leader: NodeId(1),
            leader_epoch: LeaderEpoch(0),
        }
    }

    #[test]
    fn committed_records_read_as_one_change_per_topic() {
        let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let records = vec![
            MetadataRecord::Topic {
                name: "new".into(),
                id: "id".into(),
            },
            partition("new", 0),
            partition("new", 1),
            MetadataRecord::TopicConfigs {
                name: "new".into(),
                configs: configs.clone(),
            },
            partition("old", 3),
            partition("old", 4),
            MetadataRecord::TopicConfigs {
                name: "other".into(),
                configs: configs.clone(),
            },
            MetadataRecord::RemoveTopic {
                name: "gone".into(),
            },
        ];
        assert_eq!(
            TopicChange::of(&records),
            vec![
                TopicChange::Created {
                    topic: "new",
                    partitions: 2,
                    configs: Some(&configs)
                },
                TopicChange::PartitionsAdded {
                    topic: "old",
                    added: 2,
                    partitions: 5
                },
                TopicChange::ConfigAltered {
                    topic: "other",
                    configs: &configs
                },
                TopicChange::Deleted { topic: "gone" },
            ]
        );
    }
}
