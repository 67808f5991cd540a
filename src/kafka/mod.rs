//! Request handlers, one module per API family. A handler runs on the shard that
//! owns the connection and sends each owning shard its share of the work.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod admin;
pub mod alter_configs;
pub mod api_versions;
pub mod delete_records;
pub mod describe;
pub mod describe_producers;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod group_admin;
pub mod group_membership;
pub mod group_routing;
pub mod init_producer_id;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod reassignments;
pub mod response_errors;
pub mod routing;
pub mod slow_requests;
pub mod txn_offset_commit;
pub mod txn_routing;
pub mod write_txn_markers;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::RequestKind;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use crate::cluster::controller::NewTopic;
use crate::cluster::image::PartitionKey;
use crate::kafka::response_errors::ResponseErrors;
use crate::net::context::ConnectionContext;
use crate::protocol::codec::{Request, encode_response};
use crate::protocol::error_code::ErrorCode;
use crate::shard::call::ShardCall;
use crate::shard::calls::topics::CreateTopics;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::types::ShardId;

/// What the connection does after a request.
pub enum Reply {
    Send(BytesMut),
    /// A frame with records sent from segment files.
    SendPieces(crate::net::outgoing::Pieces),
    /// Produce with acks=0 gets no response.
    Nothing,
    /// The request cannot be answered (or, with acks=0, failed): close the
    /// connection.
    Close,
}

/// Handles one request that arrived on the connection `context`, counting it
/// and its latency by API on this shard.
pub async fn handle(context: &ConnectionContext, shard: &Rc<Shard>, request: Request) -> Reply {
    let api = request.header.request_api_key;
    let received = Instant::now();
    let reply = dispatch(context, shard, request).await;
    crate::metrics::shard::request_done(api, received.elapsed());
    reply
}

async fn dispatch(context: &ConnectionContext, shard: &Rc<Shard>, request: Request) -> Reply {
    let correlation_id = request.header.correlation_id;
    let version = request.version;
    match request.body {
        RequestKind::ApiVersions(body) => {
            context.set_client_software(&body.client_software_name, &body.client_software_version);
            respond(correlation_id, version, &api_versions::handle())
        }
        RequestKind::Metadata(body) => respond(
            correlation_id,
            version,
            &metadata::handle(shard, body, version).await,
        ),
        RequestKind::Produce(body) => {
            let received = Instant::now();
            let acks = body.acks;
            let partitions = body.topic_data.iter().map(|t| t.partition_data.len()).sum();
            let (response, slowest) = produce::handle(shard, body, version).await;
            let threshold = shard.config().slow_request_ms.map(Duration::from_millis);
            slow_requests::log_if_slow(threshold, context, received, slowest, partitions);
            if acks == 0 {
                // No answer is expected, so a failed partition (one led by another
                // broker, say) closes the connection instead, as Kafka does: the
                // producer then refreshes its metadata.
                let failed = response
                    .responses
                    .iter()
                    .flat_map(|topic| &topic.partition_responses)
                    .any(|partition| partition.error_code != ErrorCode::None.code());
                response_errors::count(&response);
                return if failed { Reply::Close } else { Reply::Nothing };
            }
            respond(correlation_id, version, &response)
        }
        RequestKind::Fetch(body) => {
            let (response, spliced) = fetch::handle(shard, body, version).await;
            if spliced.is_empty() {
                // respond() counts its errors.
                return respond(correlation_id, version, &response);
            }
            response_errors::count(&response);
            match crate::protocol::spliced::encode_response(
                correlation_id,
                version,
                &response,
                spliced,
            ) {
                Ok(frame) => Reply::SendPieces(frame),
                Err(error) => {
                    tracing::error!(%error, "encoding a response failed; closing the connection");
                    Reply::Close
                }
            }
        }
        RequestKind::ListOffsets(body) => respond(
            correlation_id,
            version,
            &list_offsets::handle(shard, body, version).await,
        ),
        RequestKind::CreateTopics(body) => respond(
            correlation_id,
            version,
            &admin::create_topics(shard, body).await,
        ),
        RequestKind::CreatePartitions(body) => respond(
            correlation_id,
            version,
            &admin::create_partitions(shard, body).await,
        ),
        RequestKind::OffsetForLeaderEpoch(body) => respond(
            correlation_id,
            version,
            &offset_for_leader_epoch::handle(shard, body).await,
        ),
        RequestKind::DeleteRecords(body) => respond(
            correlation_id,
            version,
            &delete_records::handle(shard, body).await,
        ),
        RequestKind::DescribeCluster(_) => {
            respond(correlation_id, version, &describe::cluster(shard))
        }
        RequestKind::DescribeConfigs(body) => {
            respond(correlation_id, version, &describe::configs(shard, body))
        }
        RequestKind::AlterConfigs(body) => respond(
            correlation_id,
            version,
            &alter_configs::alter(shard, body).await,
        ),
        RequestKind::IncrementalAlterConfigs(body) => respond(
            correlation_id,
            version,
            &alter_configs::incremental(shard, body).await,
        ),
        RequestKind::InitProducerId(body) => respond(
            correlation_id,
            version,
            &init_producer_id::handle(shard, body, version).await,
        ),
        RequestKind::AddPartitionsToTxn(body) => respond(
            correlation_id,
            version,
            &add_partitions_to_txn::handle(shard, body, version).await,
        ),
        RequestKind::AddOffsetsToTxn(body) => respond(
            correlation_id,
            version,
            &add_offsets_to_txn::handle(shard, body, version).await,
        ),
        RequestKind::WriteTxnMarkers(body) => respond(
            correlation_id,
            version,
            &write_txn_markers::handle(shard, body).await,
        ),
        RequestKind::DescribeTransactions(body) => respond(
            correlation_id,
            version,
            &describe_transactions::handle(shard, body).await,
        ),
        RequestKind::DescribeProducers(body) => respond(
            correlation_id,
            version,
            &describe_producers::handle(shard, body).await,
        ),
        RequestKind::ListTransactions(body) => respond(
            correlation_id,
            version,
            &list_transactions::handle(shard, body).await,
        ),
        RequestKind::EndTxn(body) => respond(
            correlation_id,
            version,
            &end_txn::handle(shard, body, version).await,
        ),
        RequestKind::DeleteTopics(body) => respond(
            correlation_id,
            version,
            &admin::delete_topics(shard, body).await,
        ),
        RequestKind::FindCoordinator(body) => respond(
            correlation_id,
            version,
            &find_coordinator::handle(shard, body, version).await,
        ),
        RequestKind::JoinGroup(body) => {
            let response = group_membership::join(context, shard, body, version).await;
            respond(correlation_id, version, &response)
        }
        RequestKind::SyncGroup(body) => respond(
            correlation_id,
            version,
            &group_membership::sync(shard, body).await,
        ),
        RequestKind::Heartbeat(body) => respond(
            correlation_id,
            version,
            &group_membership::heartbeat(shard, body).await,
        ),
        RequestKind::LeaveGroup(body) => respond(
            correlation_id,
            version,
            &group_membership::leave(shard, body, version).await,
        ),
        RequestKind::OffsetCommit(body) => respond(
            correlation_id,
            version,
            &offset_commit::handle(shard, body).await,
        ),
        RequestKind::TxnOffsetCommit(body) => respond(
            correlation_id,
            version,
            &txn_offset_commit::handle(shard, body, version).await,
        ),
        RequestKind::OffsetFetch(body) => respond(
            correlation_id,
            version,
            &offset_fetch::handle(shard, body, version).await,
        ),
        RequestKind::DescribeGroups(body) => respond(
            correlation_id,
            version,
            &group_admin::describe(shard, body).await,
        ),
        RequestKind::ListGroups(body) => respond(
            correlation_id,
            version,
            &group_admin::list(shard, body).await,
        ),
        RequestKind::DeleteGroups(body) => respond(
            correlation_id,
            version,
            &group_admin::delete(shard, body).await,
        ),
        RequestKind::OffsetDelete(body) => respond(
            correlation_id,
            version,
            &group_admin::delete_offsets(shard, body).await,
        ),
        RequestKind::ElectLeaders(body) => respond(
            correlation_id,
            version,
            &elect_leaders::handle(shard, body, version).await,
        ),
        RequestKind::AlterPartitionReassignments(body) => respond(
            correlation_id,
            version,
            &reassignments::alter(&shard.image(), body),
        ),
        RequestKind::ListPartitionReassignments(body) => {
            respond(correlation_id, version, &reassignments::list(body))
        }
        other => {
            // Only advertised APIs get here; this is a missing arm, so close the
            // connection rather than leave the client waiting for an answer.
            tracing::error!(api = ?request.api_key, "advertised API has no handler: {other:?}");
            Reply::Close
        }
    }
}

fn respond<R: Encodable + HeaderVersion + ResponseErrors>(
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Reply {
    response_errors::count(body);
    match encode_response(correlation_id, version, body) {
        Ok(frame) => Reply::Send(frame),
        Err(error) => {
            tracing::error!(%error, "encoding a response failed; closing the connection");
            Reply::Close
        }
    }
}

/// Where an item sits in a request: (topic index, partition index).
pub type Slot = (usize, usize);

/// A request's items grouped by owning shard, remembering each item's slot so the
/// results land back in request order.
#[derive(Clone)]
pub struct Split<T> {
    per_owner: BTreeMap<ShardId, (Vec<Slot>, Vec<T>)>,
}

impl<T> Default for Split<T> {
    fn default() -> Self {
        Split {
            per_owner: BTreeMap::new(),
        }
    }
}

impl<T: Clone> Split<T> {
    /// Each owner and its items, for requests that do not file results by slot.
    pub fn per_owner(&self) -> impl Iterator<Item = (ShardId, Vec<T>)> + '_ {
        self.per_owner
            .iter()
            .map(|(&owner, (_, items))| (owner, items.clone()))
    }
}

impl<T> Split<T> {
    pub fn push(&mut self, owner: ShardId, slot: Slot, item: T) {
        let entry = self.per_owner.entry(owner).or_default();
        entry.0.push(slot);
        entry.1.push(item);
    }

    /// Sends each owner one call for all its items (`call` builds it), all at
    /// once, and files each result by slot.
    pub async fn run<C, R>(
        self,
        shard: &Rc<Shard>,
        call: impl Fn(Vec<T>) -> C,
        into: &mut BTreeMap<Slot, R>,
    ) where
        C: ShardCall<Reply = Vec<R>>,
    {
        let mut slots = BTreeMap::new();
        let calls = self
            .per_owner
            .into_iter()
            .map(|(owner, (owner_slots, items))| {
                slots.insert(owner, owner_slots);
                (owner, call(items))
            })
            .collect();
        for (owner, results) in fan_out(shard, calls).await {
            let owner_slots = &slots[&owner];
            debug_assert_eq!(owner_slots.len(), results.len());
            for (slot, result) in owner_slots.iter().zip(results) {
                into.insert(*slot, result);
            }
        }
    }
}

/// Runs a per-partition operation (ListOffsets, DeleteRecords,
/// OffsetForLeaderEpoch, ...) on the shards owning the partitions this node
/// leads, one call per shard; the others get their
/// [`routing::partition_owner`] error.
pub async fn by_partition<T, C, V>(
    shard: &Rc<Shard>,
    partitions: impl Iterator<Item = (Slot, PartitionKey, T)>,
    call: impl Fn(Vec<(PartitionKey, T)>) -> C,
) -> BTreeMap<Slot, Result<V, ErrorCode>>
where
    C: ShardCall<Reply = Vec<Result<V, ErrorCode>>>,
{
    let image = shard.image();
    let mut results = BTreeMap::new();
    let mut split = Split::default();
    for (slot, key, value) in partitions {
        match routing::partition_owner(image.route(&key)) {
            Ok(owner) => split.push(owner, slot, (key, value)),
            Err(error) => {
                results.insert(slot, Err(error));
            }
        }
    }
    split.run(shard, call, &mut results).await;
    results
}

/// Runs each call on its shard, concurrently, and collects the replies.
pub async fn fan_out<C: ShardCall>(
    shard: &Rc<Shard>,
    calls: Vec<(ShardId, C)>,
) -> Vec<(ShardId, C::Reply)> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|(owner, call)| {
            let shard = Rc::clone(shard);
            (
                owner,
                glommio::spawn_local(async move { shard.call(owner, call).await }),
            )
        })
        .collect();
    let mut replies = Vec::with_capacity(tasks.len());
    for (owner, task) in tasks {
        replies.push((owner, task.await));
    }
    replies
}

/// Creates `names` with the broker's defaults if auto-creation is on; returns
/// once every shard knows them. `__consumer_offsets` and `__transaction_state`
/// are never auto-created here: their coordinators create them with their own
/// settings.
pub async fn auto_create(shard: &Rc<Shard>, mut names: Vec<String>) {
    names.retain(|name| {
        name != crate::group::coordinator_key::OFFSETS_TOPIC
            && name != crate::txn::TRANSACTION_STATE_TOPIC
    });
    if names.is_empty() || !shard.config().auto_create_topics_enable {
        return;
    }
    let topics = names
        .into_iter()
        .map(|name| NewTopic {
            name,
            partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
            validate_only: false,
        })
        .collect();
    let results = shard.call(CONTROLLER_SHARD, CreateTopics(topics)).await;
    for result in results.iter().filter(|r| r.error != ErrorCode::None) {
        tracing::debug!(topic = %result.name, error = ?result.error, "auto-create refused");
    }
}
