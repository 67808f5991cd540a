//! This node's part in the cluster's metadata, run by the controller shard:
//! the Raft quorum member (controllers) or the follower of the active
//! controller (broker-only nodes), the cluster state rebuilt from the committed
//! metadata log, its publication to every shard as a new image, the active
//! controller's duties, and this broker's registration and heartbeats.

mod active;
mod lifecycle;
mod publish;
pub mod rpc;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::cluster::image::{Identity, LocalPlacement};
use crate::cluster::quorum::{ControllerClient, Quorum, QuorumConfig, RpcError};
use crate::cluster::records;
use crate::cluster::state::ClusterState;
use crate::cluster::topic_table::TopicTable;
use crate::shard::Shard;
use crate::shard::metadata::rpc::{ControllerRequest, ControllerResponse};
use crate::storage::wake_list::WakeList;
use crate::types::NodeId;

/// How long a metadata change may look for an active controller.
const CONTROLLER_DEADLINE: Duration = Duration::from_secs(15);
/// Pause before asking again when no controller answered.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long one request to a controller may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

pub struct MetadataNode {
    shard: Weak<Shard>,
    identity: Identity,
    state: RefCell<ClusterState>,
    placement: RefCell<LocalPlacement>,
    quorum: OnceCell<Rc<Quorum>>,
    client: ControllerClient,
    /// Where controller requests go: voters, or the bootstrap servers of a
    /// broker-only node.
    controllers: Vec<(Option<NodeId>, SocketAddr)>,
    /// The controller that last answered, or was named as the leader.
    leader_hint: Cell<Option<NodeId>>,
    /// The metadata offset every shard has applied.
    published: Cell<u64>,
    publishing: Cell<bool>,
    published_changed: WakeList,
    /// The state changed since the last publication began.
    dirty: Cell<bool>,
    started: Cell<bool>,
    /// Active controller only: decisions one at a time, each against the state
    /// that includes every change before it (Kafka's controller event queue).
    turn: glommio::sync::Semaphore,
    /// Active controller only: whether this term's first entry is applied,
    /// so the state holds every change committed before it.
    leader_ready: Cell<bool>,
    /// Active controller only: the last heartbeat of each broker.
    heartbeats: RefCell<HashMap<NodeId, Instant>>,
    /// This broker's registration: its epoch once registered.
    broker_epoch: Cell<Option<i64>>,
    fenced: Cell<bool>,
    fenced_changed: WakeList,
    incarnation: String,
    /// Set by a clean shutdown: background loops end.
    stopping: Cell<bool>,
    /// Broker-only node: why the controllers refused it.
    refused: RefCell<Option<String>>,
    refused_changed: WakeList,
}

impl MetadataNode {
    /// Starts this node's metadata: opens the quorum (replaying the committed
    /// log) or reaches the controllers, and publishes the resulting image to
    /// every shard before it returns.
    pub async fn start(shard: &Rc<Shard>, identity: Identity) -> Result<Rc<MetadataNode>, String> {
        let config = shard.config();
        let controllers = if config.is_controller() || config.is_single_node() {
            config
                .quorum_voters()
                .into_iter()
                .map(|(id, addr)| (Some(id), addr))
                .collect()
        } else if config.controller_quorum_voters.is_empty() {
            config
                .controller_quorum_bootstrap_servers
                .iter()
                .map(|&addr| (None, addr))
                .collect()
        } else {
            config
                .controller_quorum_voters
                .iter()
                .map(|v| (Some(v.id), v.addr))
                .collect()
        };
        let node = Rc::new(MetadataNode {
            shard: Rc::downgrade(shard),
            client: ControllerClient::new(identity.node, identity.cluster_id.clone()),
            identity,
            state: RefCell::new(ClusterState::default()),
            placement: RefCell::new(LocalPlacement::new()),
            quorum: OnceCell::new(),
            controllers,
            leader_hint: Cell::new(None),
            published: Cell::new(0),
            publishing: Cell::new(false),
            published_changed: WakeList::default(),
            dirty: Cell::new(true),
            started: Cell::new(false),
            turn: glommio::sync::Semaphore::new(1),
            leader_ready: Cell::new(false),
            heartbeats: RefCell::new(HashMap::new()),
            broker_epoch: Cell::new(None),
            fenced: Cell::new(true),
            fenced_changed: WakeList::default(),
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            stopping: Cell::new(false),
            refused: RefCell::new(None),
            refused_changed: WakeList::default(),
        });
        shard.set_metadata(Rc::clone(&node));
        if config.is_controller() || config.is_single_node() {
            let quorum = Quorum::start(
                quorum_config(shard, &node.identity),
                Rc::clone(&node) as _,
                Rc::clone(&node) as _,
            )
            .await
            .map_err(|e| format!("starting the metadata quorum: {e}"))?;
            assert!(node.quorum.set(quorum).is_ok(), "the quorum starts once");
            node.migrate_topic_table().await?;
            active::spawn_duties(&node);
        } else {
            lifecycle::follow(&node).await;
        }
        node.started.set(true);
        node.publish().await;
        Ok(node)
    }

    /// Upgrades a single-node data directory written before the metadata log:
    /// its topic table (and producer-id reservation) become the log's first
    /// batch, and the old file is kept renamed, never read again.
    async fn migrate_topic_table(&self) -> Result<(), String> {
        let shard = self.shard();
        let data_dir = &shard.config().data_dir;
        let table = TopicTable::load(data_dir)?;
        let quorum = self.quorum.get().expect("controllers run the quorum");
        if table.topics.is_empty() || !shard.config().is_single_node() {
            return Ok(());
        }
        if !self.state.borrow().topics.is_empty() {
            return Err(format!(
                "{} exists but the metadata log already has topics; move the file away if the log is right",
                TopicTable::path(data_dir).display()
            ));
        }
        let mut batch = crate::cluster::bootstrap::from_topic_table(&table, self.identity.node);
        let reserved = crate::txn::producer_ids::reserved(data_dir)?;
        batch.extend(crate::cluster::bootstrap::from_producer_ids(
            reserved,
            self.identity.node,
        ));
        let offset = quorum
            .propose(records::encode(&batch))
            .await
            .map_err(|e| format!("writing the topic table to the metadata log: {e}"))?;
        let from = TopicTable::path(data_dir);
        let to = from.with_extension("toml.migrated");
        std::fs::rename(&from, &to).map_err(|e| format!("renaming {}: {e}", from.display()))?;
        tracing::info!(topics = table.topics.len(), offset, to = %to.display(), "topic table moved into the metadata log");
        Ok(())
    }

    fn shard(&self) -> Rc<Shard> {
        self.shard
            .upgrade()
            .expect("the shard outlives its metadata node")
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// This broker's epoch (the offset of its current registration), once
    /// registered.
    pub fn broker_epoch(&self) -> Option<i64> {
        self.broker_epoch.get()
    }

    pub fn quorum(&self) -> Option<&Rc<Quorum>> {
        self.quorum.get()
    }

    /// The active controller as far as this node knows.
    pub fn quorum_leader(&self) -> Option<NodeId> {
        match self.quorum.get() {
            Some(quorum) => quorum.leader(),
            None => self.leader_hint.get(),
        }
    }

    /// Resolves once every shard applied metadata offset `offset` or newer.
    pub async fn published(&self, offset: u64) {
        // Bounded by the publications meanwhile, one wake-up each.
        while self.published.get() < offset {
            self.published_changed.wait().await;
        }
    }

    /// Sends `request` to the active controller (this node's own, when it is
    /// the one), following NOT_CONTROLLER answers, until one answers or the
    /// deadline passes.
    pub async fn ask_controller(&self, request: ControllerRequest) -> ControllerResponse {
        let deadline = Instant::now() + CONTROLLER_DEADLINE;
        let mut next_voter = 0usize;
        loop {
            let leader_here = self.quorum.get().is_some_and(|q| q.is_leader());
            let answer = if leader_here {
                Ok(active::serve(self, request.clone()).await)
            } else {
                let hint = self.quorum_leader().or(self.leader_hint.get());
                let target = hint
                    .and_then(|id| self.controllers.iter().find(|(v, _)| *v == Some(id)))
                    .or_else(|| {
                        next_voter += 1;
                        self.controllers
                            .get(next_voter % self.controllers.len().max(1))
                    });
                match target {
                    Some(&(id, addr)) => self
                        .client
                        .call(addr, rpc::encode(&request), RPC_TIMEOUT)
                        .await
                        .map_err(|error| {
                            if let RpcError::InconsistentClusterId { theirs } = &error {
                                self.refused_by_controller(addr, theirs);
                            }
                            error.to_string()
                        })
                        .and_then(|bytes| rpc::decode::<ControllerResponse>(&bytes))
                        .inspect(|_| {
                            if id.is_some() {
                                self.leader_hint.set(id);
                            }
                        }),
                    None => Err("no controller is configured".into()),
                }
            };
            if let Some(reason) = self.refused.borrow().clone() {
                return ControllerResponse::Failed(reason);
            }
            match answer {
                Ok(ControllerResponse::NotController { leader }) => {
                    self.leader_hint.set(leader);
                }
                Ok(answer) => return answer,
                Err(error) => {
                    tracing::debug!(%error, "controller request failed");
                    self.leader_hint.set(None);
                }
            }
            if Instant::now() >= deadline {
                return ControllerResponse::NotController { leader: None };
            }
            glommio::timer::sleep(RETRY_PAUSE).await;
        }
    }

    /// A broker-only node refused by a controller of another cluster cannot
    /// go on (a voter's quorum decides that for itself, by majority).
    fn refused_by_controller(&self, addr: SocketAddr, theirs: &str) {
        if self.quorum.get().is_some() || self.refused.borrow().is_some() {
            return;
        }
        let reason = format!(
            "controller {addr} refused node {}: it belongs to cluster '{theirs}', this node to cluster '{}' (inconsistent cluster id)",
            self.identity.node, self.identity.cluster_id
        );
        *self.refused.borrow_mut() = Some(reason);
        self.refused_changed.wake_all();
    }

    /// Resolves when this node cannot go on, with the reason: its quorum
    /// stopped, or the controllers belong to another cluster.
    pub async fn fatal(&self) -> String {
        if let Some(quorum) = self.quorum.get() {
            return quorum.fatal().await;
        }
        // Bounded: one wake-up, when the refusal is recorded.
        loop {
            if let Some(reason) = self.refused.borrow().clone() {
                return reason;
            }
            self.refused_changed.wait().await;
        }
    }

    /// Resolves once this broker is unfenced.
    pub async fn unfenced(&self) {
        // Bounded by the heartbeats meanwhile, one wake-up each.
        while self.fenced.get() {
            self.fenced_changed.wait().await;
        }
    }
}

fn quorum_config(shard: &Shard, identity: &Identity) -> QuorumConfig {
    let config = shard.config();
    let tick = Duration::from_millis(100);
    let election_ticks =
        usize::try_from(config.controller_quorum_election_timeout_ms / 100).unwrap_or(10);
    QuorumConfig {
        node_id: identity.node,
        voters: config.quorum_voters(),
        listen: if config.is_single_node() {
            None
        } else {
            config.controller_listen
        },
        dir: config.data_dir.join("__cluster_metadata-0"),
        cluster_id: identity.cluster_id.clone(),
        tick,
        election_ticks: election_ticks.max(2),
        heartbeat_ticks: 1,
        snapshot_after_entries: 1000,
    }
}
