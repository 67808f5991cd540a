//! Calls between shards over a glommio channel mesh: a request id and a boxed
//! [`ShardCall`] one way, its reply with the same id back.

use std::rc::Rc;

use glommio::channels::channel_mesh::Receivers;
use glommio::channels::local_channel;

use crate::shard::call::{ErasedCall, ErasedReply, ShardCall, typed_reply};
use crate::shard::{Shard, ShardId};

/// Bound on messages queued between two shards.
pub const CHANNEL_CAPACITY: usize = 1024;
/// Longest a call waits for its receiver to apply the caller's metadata image:
/// an image that opens thousands of partitions takes seconds.
const IMAGE_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(30);

pub enum Envelope {
    Request {
        id: u64,
        from: ShardId,
        /// The metadata version of the caller's image when it sent the call.
        image_version: u64,
        call: Box<dyn ErasedCall>,
    },
    Response {
        id: u64,
        reply: ErasedReply,
    },
}

impl Shard {
    /// Runs `call` on `shard`: directly when it is this one, else over the mesh.
    pub async fn call<C: ShardCall>(self: &Rc<Self>, shard: ShardId, call: C) -> C::Reply {
        if shard == self.id {
            return Box::pin(call.run(Rc::clone(self))).await;
        }
        let id = self.next_request.get();
        self.next_request.set(id + 1);
        let _in_flight = crate::metrics::shard::MeshCall::sent();
        let (sender, receiver) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, sender);
        let envelope = Envelope::Request {
            id,
            from: self.id,
            image_version: self.image().version(),
            call: Box::new(call),
        };
        if self.senders.send_to(shard.0, envelope).await.is_err() {
            self.pending.borrow_mut().remove(&id);
            panic!("shard {shard} is gone: the mesh only closes at shutdown");
        }
        let reply = receiver
            .recv()
            .await
            .expect("every request gets a response");
        typed_reply::<C>(reply)
    }

    /// Waits (bounded) until this shard applied the metadata image `version`.
    async fn catch_up_with(&self, version: u64) {
        let caught_up = glommio::timer::timeout(IMAGE_CATCH_UP, async {
            self.image_updates.version_applied(version).await;
            Ok(())
        })
        .await;
        if caught_up.is_err() {
            tracing::warn!(
                version,
                have = self.image().version(),
                "serving a call before catching up with its caller's metadata image"
            );
        }
    }

    /// Serves requests from, and delivers responses of, every peer shard.
    pub fn spawn_mesh_receivers(self: &Rc<Self>, mut receivers: Receivers<Envelope>) {
        for (_, stream) in receivers.streams() {
            let shard = Rc::clone(self);
            glommio::spawn_local(async move {
                while let Some(envelope) = stream.recv().await {
                    match envelope {
                        Envelope::Request {
                            id,
                            from,
                            image_version,
                            call,
                        } => {
                            crate::metrics::shard::mesh_call_received();
                            let shard = Rc::clone(&shard);
                            glommio::spawn_local(async move {
                                if call.waits_for_callers_image() {
                                    shard.catch_up_with(image_version).await;
                                }
                                let reply = call.run_erased(Rc::clone(&shard)).await;
                                let reply = Envelope::Response { id, reply };
                                if shard.senders.send_to(from.0, reply).await.is_err() {
                                    tracing::debug!(%from, "peer shard gone before its response");
                                }
                            })
                            .detach();
                        }
                        Envelope::Response { id, reply } => {
                            let waiter = shard.pending.borrow_mut().remove(&id);
                            if let Some(waiter) = waiter {
                                let _ = waiter.try_send(reply);
                            }
                        }
                    }
                }
            })
            .detach();
        }
    }
}
