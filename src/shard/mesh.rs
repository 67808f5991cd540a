//! Requests between shards over a glommio channel mesh: a request id and payload
//! one way, the response with the same id back.

use std::rc::Rc;

use glommio::channels::channel_mesh::Receivers;
use glommio::channels::local_channel;

use crate::shard::Shard;
use crate::shard::messages::{ShardRequest, ShardResponse};

/// Bound on messages queued between two shards.
pub const CHANNEL_CAPACITY: usize = 1024;

pub enum Envelope {
    Request {
        id: u64,
        from: usize,
        body: ShardRequest,
    },
    Response {
        id: u64,
        body: ShardResponse,
    },
}

impl Shard {
    /// Runs `request` on `shard`: directly when it is this one, else over the mesh.
    pub async fn call(self: &Rc<Self>, shard: usize, request: ShardRequest) -> ShardResponse {
        if shard == self.id {
            return Box::pin(self.serve(request)).await;
        }
        let id = self.next_request.get();
        self.next_request.set(id + 1);
        let (sender, receiver) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, sender);
        let envelope = Envelope::Request {
            id,
            from: self.id,
            body: request,
        };
        if self.senders.send_to(shard, envelope).await.is_err() {
            self.pending.borrow_mut().remove(&id);
            panic!("shard {shard} is gone: the mesh only closes at shutdown");
        }
        receiver
            .recv()
            .await
            .expect("every request gets a response")
    }

    /// Serves requests from, and delivers responses of, every peer shard.
    pub fn spawn_mesh_receivers(self: &Rc<Self>, mut receivers: Receivers<Envelope>) {
        for (_, stream) in receivers.streams() {
            let shard = Rc::clone(self);
            glommio::spawn_local(async move {
                while let Some(envelope) = stream.recv().await {
                    match envelope {
                        Envelope::Request { id, from, body } => {
                            let shard = Rc::clone(&shard);
                            glommio::spawn_local(async move {
                                let body = shard.serve(body).await;
                                let reply = Envelope::Response { id, body };
                                if shard.senders.send_to(from, reply).await.is_err() {
                                    tracing::debug!(from, "peer shard gone before its response");
                                }
                            })
                            .detach();
                        }
                        Envelope::Response { id, body } => {
                            let waiter = shard.pending.borrow_mut().remove(&id);
                            if let Some(waiter) = waiter {
                                let _ = waiter.try_send(body);
                            }
                        }
                    }
                }
            })
            .detach();
        }
    }
}
