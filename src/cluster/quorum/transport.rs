//! The controller listener and the outgoing connections to the other voters.
//!
//! Outgoing: one connection per peer, fed by a bounded queue of encoded Raft frames;
//! a full queue drops the message (Raft retransmits) so the tick loop never waits on
//! a slow peer. The connection is retried with bounded exponential backoff.
//! Incoming: after the Hello, Raft frames go to the driver's inbox and Request frames
//! to the `RequestHandler`, answered on the same connection.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future::or;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use protobuf::Message as PbMessage;
use raft::eraftpb::{Message, MessageType};

use super::frame::{Frame, FrameError, MAX_FRAME_BYTES, read_frame, write_encoded};
use super::{Input, RequestHandler, Shared, raft_id};
use crate::types::NodeId;

/// Raft messages waiting for one peer's connection.
const PEER_QUEUE: usize = 256;
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a new connection (either side) may take to complete the Hello exchange.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Incoming connections served at once (voters and broker-only nodes).
const MAX_CONNECTIONS: usize = 1024;
/// Requests of one incoming connection being handled at once; reading stops at the limit.
const MAX_REQUESTS_IN_FLIGHT: u64 = 64;

/// The sending side of the outgoing connections, owned by the driver.
pub struct Peers {
    queues: HashMap<u64, LocalSender<Outgoing>>,
}

struct Outgoing {
    bytes: Vec<u8>,
    snapshot: bool,
}

impl Peers {
    /// Starts one connection task per voter other than `me`.
    pub fn start(
        me: NodeId,
        cluster_id: &str,
        voters: &[(NodeId, SocketAddr)],
        shared: &Rc<Shared>,
    ) -> (Peers, Vec<glommio::Task<()>>) {
        let hello = Frame::Hello {
            cluster_id: cluster_id.to_string(),
            node_id: me,
        }
        .encode();
        let mut queues = HashMap::new();
        let mut tasks = Vec::new();
        let refusals = Rc::new(Refusals {
            by: RefCell::new(BTreeMap::new()),
            peers: voters.len() - 1,
        });
        for &(id, addr) in voters.iter().filter(|(id, _)| *id != me) {
            let (tx, rx) = local_channel::new_bounded(PEER_QUEUE);
            queues.insert(raft_id(id), tx);
            let peer = PeerLink {
                id,
                addr,
                me,
                cluster_id: cluster_id.to_string(),
                hello: hello.clone(),
                shared: shared.clone(),
                refusals: refusals.clone(),
            };
            let stop = shared.clone();
            tasks.push(glommio::spawn_local(async move {
                or(peer.run(rx), stop.stop.wait()).await;
            }));
        }
        (Peers { queues }, tasks)
    }

    /// Queues a message for its peer; false if it was dropped (unknown peer or full queue).
    pub fn send(&self, msg: &Message) -> bool {
        let Some(queue) = self.queues.get(&msg.to) else {
            return false;
        };
        let Ok(bytes) = msg.write_to_bytes() else {
            return false;
        };
        // The peer would close the connection on it; dropping it here lets raft-rs
        // hear of the failure (a snapshot this big needs a larger frame limit).
        if bytes.len() >= MAX_FRAME_BYTES {
            tracing::error!(
                to = msg.to,
                bytes = bytes.len(),
                "raft message over the frame limit dropped"
            );
            return false;
        }
        let out = Outgoing {
            bytes: Frame::Raft(bytes).encode(),
            snapshot: msg.get_msg_type() == MessageType::MsgSnapshot,
        };
        queue.try_send(out).is_ok()
    }
}

struct PeerLink {
    id: NodeId,
    addr: SocketAddr,
    me: NodeId,
    cluster_id: String,
    hello: Vec<u8>,
    shared: Rc<Shared>,
    refusals: Rc<Refusals>,
}

/// Peers that refused our Hello for another cluster id, with theirs. One refusal
/// is not enough to give up: a misconfigured voter refuses every healthy node that
/// dials it, and must not bring the cluster down. When more than half of the peers
/// refuse, this node is the odd one out and stops (`fatal`).
struct Refusals {
    by: RefCell<BTreeMap<NodeId, String>>,
    peers: usize,
}

pub enum Handshake {
    Accepted(TcpStream),
    Refused(String),
}

impl PeerLink {
    async fn run(self, rx: LocalReceiver<Outgoing>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.connect().await {
                Ok(Handshake::Accepted(mut stream)) => {
                    self.refusals.by.borrow_mut().remove(&self.id);
                    backoff = MIN_BACKOFF;
                    if !self.pump(&mut stream, &rx).await {
                        return;
                    }
                }
                Ok(Handshake::Refused(theirs)) => {
                    let why = format!(
                        "controller {} at {} refused node {}: it belongs to cluster '{}', \
                         this node to cluster '{}' (inconsistent cluster id)",
                        self.id, self.addr, self.me, theirs, self.cluster_id
                    );
                    tracing::error!("{why}");
                    let mut by = self.refusals.by.borrow_mut();
                    by.insert(self.id, theirs);
                    if by.len() * 2 > self.refusals.peers {
                        self.shared.fatal.set(why);
                        return;
                    }
                    backoff = MAX_BACKOFF;
                }
                Err(e) => {
                    tracing::debug!(peer = %self.id, addr = %self.addr, error = %e, "quorum peer unreachable");
                    // A full inbox only delays the report; the next failure repeats it.
                    let _ = self
                        .shared
                        .inbox
                        .try_send(Input::Unreachable(raft_id(self.id)));
                }
            }
            glommio::timer::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn connect(&self) -> Result<Handshake, FrameError> {
        let stream = TcpStream::connect_timeout(self.addr, CONNECT_TIMEOUT)
            .await
            .map_err(|e| FrameError::Io(e.into()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| FrameError::Io(e.into()))?;
        handshake(stream, &self.hello).await
    }

    /// Writes queued messages until the connection fails (true: reconnect) or the
    /// driver is gone (false).
    async fn pump(&self, stream: &mut TcpStream, rx: &LocalReceiver<Outgoing>) -> bool {
        let to = raft_id(self.id);
        while let Some(out) = rx.recv().await {
            let ok = write_encoded(stream, &out.bytes).await.is_ok();
            if out.snapshot {
                let _ = self.shared.inbox.try_send(Input::SnapshotSent { to, ok });
            }
            if !ok {
                return true;
            }
        }
        false
    }
}

/// The client side of the Hello exchange, bounded by [`HELLO_TIMEOUT`].
pub async fn handshake(mut stream: TcpStream, hello: &[u8]) -> Result<Handshake, FrameError> {
    let exchange = async {
        write_encoded(&mut stream, hello).await?;
        read_frame(&mut stream).await
    };
    let answer = or(exchange, async {
        glommio::timer::sleep(HELLO_TIMEOUT).await;
        Err(FrameError::Io(std::io::ErrorKind::TimedOut.into()))
    })
    .await?;
    match answer {
        Frame::HelloOk => Ok(Handshake::Accepted(stream)),
        Frame::Refused { cluster_id } => Ok(Handshake::Refused(cluster_id)),
        _ => Err(FrameError::Malformed("hello answer")),
    }
}

/// What the listener's connections need.
pub struct Server {
    pub shared: Rc<Shared>,
    pub handler: Rc<dyn RequestHandler>,
    pub cluster_id: String,
    pub voters: Vec<NodeId>,
}

impl Server {
    /// Accepts connections until stopped; the listener closes when this returns.
    pub async fn serve(self: Rc<Self>, listener: TcpListener) {
        let open = Rc::new(Semaphore::new(MAX_CONNECTIONS as u64));
        let accept = async {
            loop {
                let stream = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "controller listener accept failed");
                        glommio::timer::sleep(MIN_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(permit) = open.try_acquire_static_permit(1) else {
                    tracing::warn!(
                        "controller listener at its connection limit; closing a new one"
                    );
                    continue;
                };
                let server = self.clone();
                glommio::spawn_local(async move {
                    let stop = server.shared.clone();
                    if let Err(e) = or(server.connection(stream), async {
                        stop.stop.wait().await;
                        Ok(())
                    })
                    .await
                    {
                        tracing::debug!(error = %e, "controller connection closed");
                    }
                    drop(permit);
                })
                .detach();
            }
        };
        or(accept, self.shared.stop.wait()).await;
    }

    async fn connection(self: Rc<Self>, mut stream: TcpStream) -> Result<(), FrameError> {
        stream
            .set_nodelay(true)
            .map_err(|e| FrameError::Io(e.into()))?;
        let first = or(read_frame(&mut stream), async {
            glommio::timer::sleep(HELLO_TIMEOUT).await;
            Err(FrameError::Io(std::io::ErrorKind::TimedOut.into()))
        })
        .await?;
        let Frame::Hello {
            cluster_id,
            node_id: from,
        } = first
        else {
            return Err(FrameError::Malformed("expected hello"));
        };
        if cluster_id != self.cluster_id {
            tracing::warn!(node = %from, theirs = %cluster_id, ours = %self.cluster_id,
                "refused a node of another cluster");
            let refused = Frame::Refused {
                cluster_id: self.cluster_id.clone(),
            };
            return Ok(write_encoded(&mut stream, &refused.encode()).await?);
        }
        write_encoded(&mut stream, &Frame::HelloOk.encode()).await?;
        let (mut reader, mut writer) = futures_lite::io::split(stream);
        let (tx, rx) = local_channel::new_bounded::<Vec<u8>>(MAX_REQUESTS_IN_FLIGHT as usize);
        let tx = Rc::new(tx);
        let in_flight = Rc::new(Semaphore::new(MAX_REQUESTS_IN_FLIGHT));
        let write = async {
            while let Some(bytes) = rx.recv().await {
                write_encoded(&mut writer, &bytes).await?;
            }
            Ok(())
        };
        let read = async {
            loop {
                match read_frame(&mut reader).await? {
                    Frame::Raft(bytes) => self.on_raft(from, &bytes)?,
                    Frame::Request { id, body } => {
                        let permit = in_flight
                            .acquire_static_permit(1)
                            .await
                            .map_err(|_| FrameError::Malformed("closed"))?;
                        let handler = self.handler.clone();
                        let tx = tx.clone();
                        glommio::spawn_local(async move {
                            let body = handler.handle(from, body).await;
                            // The connection may be gone; the answer then has nowhere to go.
                            let _ = tx.send(Frame::Response { id, body }.encode()).await;
                            drop(permit);
                        })
                        .detach();
                    }
                    _ => return Err(FrameError::Malformed("unexpected frame kind")),
                }
            }
        };
        or(read, write).await
    }

    /// Hands a Raft message to the driver; only voters speak Raft, each as itself.
    fn on_raft(&self, from: NodeId, bytes: &[u8]) -> Result<(), FrameError> {
        let msg =
            Message::parse_from_bytes(bytes).map_err(|_| FrameError::Malformed("raft message"))?;
        if !self.voters.contains(&from) || msg.from != raft_id(from) {
            return Err(FrameError::Malformed("raft message from a non-voter"));
        }
        // A full inbox drops the message: Raft retransmits.
        let _ = self.shared.inbox.try_send(Input::Raft(msg));
        Ok(())
    }
}
