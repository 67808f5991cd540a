//! The metadata quorum: a Raft-replicated log of opaque metadata entries, driven on
//! one glommio executor (shard 0 of a controller node) over TiKV's raft-rs, which is
//! I/O-free: this module owns its storage ([`storage`]), its network ([`transport`]),
//! its clock and the order in which a `Ready` is persisted, sent and applied
//! ([`node`]). Everything is `Rc` and single-threaded. Voters are fixed by
//! `controller.quorum.voters`; Kafka node ids may be 0, so raft ids are `node_id + 1`.
//!
//! # Wire protocol of the controller listener
//! Every frame is `u32` big-endian length (kind byte + payload, at most 16 MiB; a
//! bigger one closes the connection), one kind byte, then the payload:
//! - `0` Hello: `u8` length + cluster id bytes, `i32` node id. The connecting side's
//!   first frame. The server answers with one of:
//! - `1` HelloOk (no payload), after which both sides exchange the frames below; or
//! - `2` Refused: `u8` length + the server's cluster id; the server then closes. A
//!   voter refused this way makes [`Quorum::fatal`] resolve.
//! - `3` Raft: a protobuf `raft::eraftpb::Message`, one way, only from voters and only
//!   on their own outgoing connection (voters keep one connection per peer).
//! - `4` Request: `u64` id, body for the [`RequestHandler`]; any node may send them.
//! - `5` Response: `u64` id of the request, the handler's answer.
//!
//! A malformed frame closes only its connection.

mod client;
mod frame;
mod logger;
mod node;
mod signal;
mod storage;
mod transport;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalSender};
use raft::eraftpb::Message;

pub use client::{ControllerClient, RpcError};

use crate::types::NodeId;
use node::Driver;
use signal::{Latch, Watermark};
use transport::{Peers, Server};

/// Inputs waiting for the driver: Raft messages, proposals, transport reports.
const INBOX_CAPACITY: usize = 4096;

pub struct QuorumConfig {
    pub node_id: NodeId,
    /// `controller.quorum.voters`; may be just this node.
    pub voters: Vec<(NodeId, SocketAddr)>,
    /// The controller listener; None only when `voters` is this node alone.
    pub listen: Option<SocketAddr>,
    /// `<data>/__cluster_metadata-0`; created if missing.
    pub dir: PathBuf,
    pub cluster_id: String,
    pub tick: Duration,
    /// raft-rs randomizes the election timeout in `[election, 2 * election)` ticks.
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// Take a snapshot and compact the log after this many applied entries since the last one.
    pub snapshot_after_entries: u64,
}

/// What the quorum applies committed entries to (the cluster state). Entries are opaque bytes.
pub trait StateMachine {
    /// A committed entry, in log order, exactly once per process lifetime after the
    /// snapshot restored at start. Empty entries (the new leader's no-op, conf changes)
    /// are not passed, but still advance `applied()`.
    fn apply(&self, index: u64, data: &[u8]);
    /// The state as of the last applied index (serialized by the caller).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot (at start-up from disk, or installed from the leader).
    fn restore(&self, index: u64, data: &[u8]);
}

/// Serves request/response RPCs that other nodes (controllers and broker-only nodes)
/// send over the controller listener.
pub trait RequestHandler {
    fn handle(&self, from: NodeId, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>>>>;
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    #[error("metadata log in {dir}: {source}")]
    Storage {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the metadata quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("leadership was lost before the entry committed; it may still commit")]
    Dropped,
    #[error("the metadata quorum is stopped")]
    Stopped,
}

/// What the driver is told by the rest of the quorum.
enum Input {
    Raft(Message),
    Propose {
        data: Vec<u8>,
        reply: LocalSender<Result<u64, ProposeError>>,
    },
    /// The connection to this raft id failed.
    Unreachable(u64),
    /// A MsgSnapshot to this raft id was written to its socket, or failed.
    SnapshotSent {
        to: u64,
        ok: bool,
    },
}

/// State shared by the driver, the transport and the `Quorum` handle.
struct Shared {
    inbox: LocalSender<Input>,
    leader: Cell<Option<NodeId>>,
    is_leader: Cell<bool>,
    applied: Watermark,
    fatal: Latch<String>,
    stop: Latch<()>,
}

fn raft_id(node: NodeId) -> u64 {
    u64::try_from(node.0).expect("node ids are not negative") + 1
}

fn node_id(raft_id: u64) -> NodeId {
    NodeId(i32::try_from(raft_id - 1).expect("raft ids come from node ids"))
}

pub struct Quorum {
    shared: Rc<Shared>,
    tasks: RefCell<Vec<glommio::Task<()>>>,
}

impl Quorum {
    /// Opens the durable log (restoring the snapshot into `state` and re-applying
    /// committed entries), binds the listener, connects to peers, starts ticking. A
    /// single voter campaigns at once and is leader before this returns.
    pub async fn start(
        config: QuorumConfig,
        state: Rc<dyn StateMachine>,
        handler: Rc<dyn RequestHandler>,
    ) -> Result<Rc<Quorum>, QuorumError> {
        validate(&config)?;
        let (inbox, inbox_rx) = local_channel::new_bounded(INBOX_CAPACITY);
        let shared = Rc::new(Shared {
            inbox,
            leader: Cell::new(None),
            is_leader: Cell::new(false),
            applied: Watermark::new(0),
            fatal: Latch::new(),
            stop: Latch::new(),
        });
        let listener = match config.listen {
            Some(addr) => {
                Some(
                    glommio::net::TcpListener::bind(addr).map_err(|e| QuorumError::Bind {
                        addr,
                        source: e.into(),
                    })?,
                )
            }
            None => None,
        };
        let (peers, mut tasks) =
            Peers::start(config.node_id, &config.cluster_id, &config.voters, &shared);
        let single = config.voters.len() == 1;
        let mut driver = Driver::open(&config, state, shared.clone(), peers)?;
        if single {
            driver
                .become_single_leader()
                .await
                .map_err(|source| QuorumError::Storage {
                    dir: config.dir.clone(),
                    source,
                })?;
        }
        if let Some(listener) = listener {
            let server = Rc::new(Server {
                shared: shared.clone(),
                handler,
                cluster_id: config.cluster_id.clone(),
                voters: config.voters.iter().map(|(id, _)| *id).collect(),
            });
            tasks.push(glommio::spawn_local(server.serve(listener)));
        }
        tasks.push(glommio::spawn_local(driver.run(inbox_rx)));
        Ok(Rc::new(Quorum {
            shared,
            tasks: RefCell::new(tasks),
        }))
    }

    /// Proposes an entry; resolves with its index once it is committed and applied
    /// locally. `NotLeader` at once if this node is not the leader; `Dropped` if
    /// leadership was lost before it committed or too many proposals are waiting;
    /// `Stopped` after `stop()`.
    pub async fn propose(&self, data: Vec<u8>) -> Result<u64, ProposeError> {
        if self.shared.stop.get().is_some() {
            return Err(ProposeError::Stopped);
        }
        if !self.shared.is_leader.get() {
            return Err(ProposeError::NotLeader {
                leader: self.shared.leader.get(),
            });
        }
        let (reply, answer) = local_channel::new_bounded(1);
        if self
            .shared
            .inbox
            .try_send(Input::Propose { data, reply })
            .is_err()
        {
            return Err(ProposeError::Dropped);
        }
        answer.recv().await.unwrap_or(Err(ProposeError::Stopped))
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.shared.leader.get()
    }

    pub fn is_leader(&self) -> bool {
        self.shared.is_leader.get()
    }

    pub fn applied(&self) -> u64 {
        self.shared.applied.get()
    }

    /// Resolves when the quorum cannot go on and the process must exit with this
    /// message: a peer refused us with another cluster id, or the log could not be written.
    pub async fn fatal(&self) -> String {
        self.shared.fatal.wait().await
    }

    /// Stops ticking, closes connections and the listener, flushes storage.
    pub async fn stop(&self) {
        self.shared.stop.set(());
        let tasks = self.tasks.take();
        for task in tasks {
            task.await;
        }
    }
}

fn validate(config: &QuorumConfig) -> Result<(), QuorumError> {
    let err = |m: String| Err(QuorumError::Config(m));
    if config.node_id.0 < 0 || config.voters.iter().any(|(id, _)| id.0 < 0) {
        return err("node ids must not be negative".into());
    }
    if !config.voters.iter().any(|(id, _)| *id == config.node_id) {
        return err(format!("node {} is not among the voters", config.node_id));
    }
    let mut ids: Vec<NodeId> = config.voters.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    if ids.len() != config.voters.len() {
        return err("a voter is listed twice".into());
    }
    if config.listen.is_none() && config.voters.len() > 1 {
        return err("a quorum of several voters needs a controller listener".into());
    }
    if config.tick.is_zero() || config.election_ticks <= config.heartbeat_ticks {
        return err("the election timeout must be longer than the heartbeat".into());
    }
    if config.snapshot_after_entries == 0 {
        return err("snapshot_after_entries must be positive".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
