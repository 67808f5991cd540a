//! The client side of the controller RPC, used by every node (broker-only ones too)
//! to reach a controller: one connection per controller address, opened on demand
//! with the Hello handshake, requests multiplexed by id, reopened after a failure.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use futures_lite::future::or;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;

use super::frame::{Frame, read_frame, write_encoded};
use super::transport::{Handshake, handshake};
use crate::types::NodeId;

/// Requests waiting for an answer on one connection; more fail at once.
const MAX_IN_FLIGHT: usize = 1024;
/// Controller addresses with an open connection; the oldest is closed beyond this.
const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("controller connection: {0}")]
    Io(String),
    #[error("controller request timed out")]
    Timeout,
    #[error("the controller belongs to cluster '{theirs}'")]
    InconsistentClusterId { theirs: String },
}

type Reply = LocalSender<Result<Vec<u8>, RpcError>>;

/// One open connection: the writer's queue and the requests awaiting answers.
struct Conn {
    frames: LocalSender<Vec<u8>>,
    waiting: Rc<Waiting>,
}

/// Requests awaiting answers, and whether the connection still works.
#[derive(Default)]
struct Waiting {
    replies: RefCell<HashMap<u64, Reply>>,
    dead: Cell<bool>,
}

impl Waiting {
    fn fail_all(&self, why: &str) {
        self.dead.set(true);
        for (_, reply) in self.replies.take() {
            let _ = reply.try_send(Err(RpcError::Io(why.to_string())));
        }
    }
}

pub struct ControllerClient {
    node_id: NodeId,
    cluster_id: String,
    conns: RefCell<HashMap<SocketAddr, Rc<Conn>>>,
    next_id: Cell<u64>,
}

impl ControllerClient {
    pub fn new(node_id: NodeId, cluster_id: String) -> ControllerClient {
        ControllerClient {
            node_id,
            cluster_id,
            conns: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
        }
    }

    /// One request to the controller at `addr`; Err on connect failure, timeout or refusal.
    pub async fn call(
        &self,
        addr: SocketAddr,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        or(self.call_inner(addr, body), async {
            glommio::timer::sleep(timeout).await;
            Err(RpcError::Timeout)
        })
        .await
    }

    async fn call_inner(&self, addr: SocketAddr, body: Vec<u8>) -> Result<Vec<u8>, RpcError> {
        let conn = self.conn(addr).await?;
        if conn.waiting.replies.borrow().len() >= MAX_IN_FLIGHT {
            return Err(RpcError::Io("too many requests in flight".into()));
        }
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let (reply, answer) = local_channel::new_bounded(1);
        conn.waiting.replies.borrow_mut().insert(id, reply);
        // Removes the entry if this call is cancelled (timeout) before its answer.
        let _forget = Forget {
            waiting: &conn.waiting,
            id,
        };
        if conn
            .frames
            .send(Frame::Request { id, body }.encode())
            .await
            .is_err()
        {
            return Err(RpcError::Io("connection closed".into()));
        }
        answer
            .recv()
            .await
            .unwrap_or_else(|| Err(RpcError::Io("connection closed".into())))
    }

    /// The open connection to `addr`, or a new one.
    async fn conn(&self, addr: SocketAddr) -> Result<Rc<Conn>, RpcError> {
        if let Some(c) = self.conns.borrow().get(&addr)
            && !c.waiting.dead.get()
        {
            return Ok(c.clone());
        }
        let io = |e: &dyn std::fmt::Display| RpcError::Io(format!("{addr}: {e}"));
        let stream = TcpStream::connect(addr).await.map_err(|e| io(&e))?;
        stream.set_nodelay(true).map_err(|e| io(&e))?;
        let hello = Frame::Hello {
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
        }
        .encode();
        let stream = match handshake(stream, &hello).await.map_err(|e| io(&e))? {
            Handshake::Accepted(s) => s,
            Handshake::Refused(theirs) => return Err(RpcError::InconsistentClusterId { theirs }),
        };
        let conn = Rc::new(spawn_conn(stream));
        let mut conns = self.conns.borrow_mut();
        conns.retain(|_, c| !c.waiting.dead.get());
        if conns.len() >= MAX_CONNECTIONS {
            conns.clear();
        }
        conns.insert(addr, conn.clone());
        Ok(conn)
    }
}

struct Forget<'a> {
    waiting: &'a Waiting,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.waiting.replies.borrow_mut().remove(&self.id);
    }
}

/// Starts the reader and writer of a connection; both end when it fails or when the
/// `Conn` is dropped (the writer then closes the socket, and the server's close ends
/// the reader).
fn spawn_conn(stream: TcpStream) -> Conn {
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (frames, rx) = local_channel::new_bounded::<Vec<u8>>(MAX_IN_FLIGHT);
    let waiting = Rc::new(Waiting::default());
    let w = waiting.clone();
    glommio::spawn_local(async move {
        while let Some(bytes) = rx.recv().await {
            if let Err(e) = write_encoded(&mut writer, &bytes).await {
                w.fail_all(&e.to_string());
                return;
            }
        }
        let _ = writer.close().await;
    })
    .detach();
    let w = waiting.clone();
    glommio::spawn_local(async move {
        loop {
            match read_frame(&mut reader).await {
                Ok(Frame::Response { id, body }) => {
                    if let Some(reply) = w.replies.borrow_mut().remove(&id) {
                        let _ = reply.try_send(Ok(body));
                    }
                }
                Ok(_) => return w.fail_all("unexpected frame from the controller"),
                Err(e) => return w.fail_all(&e.to_string()),
            }
        }
    })
    .detach();
    Conn { frames, waiting }
}
