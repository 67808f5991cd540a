//! Typed calls between shards: one request type per cross-shard operation, each
//! with its own reply type. A call runs on the shard it is sent to and its reply
//! travels back on the mesh; the caller gets the reply type it asked for.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use crate::shard::Shard;

/// An operation one shard asks of another (or of itself).
pub trait ShardCall: Send + 'static {
    type Reply: Send + 'static;

    /// Whether the receiving shard first catches up with the metadata image the
    /// caller routed by: the caller may already know a topic or placement the
    /// receiver is still applying, and would otherwise get an answer for an
    /// older image (UNKNOWN_TOPIC_OR_PARTITION, COORDINATOR_NOT_AVAILABLE).
    const WAITS_FOR_CALLERS_IMAGE: bool = true;

    /// Does the work on the receiving shard.
    fn run(self, shard: Rc<Shard>) -> impl Future<Output = Self::Reply>;
}

/// A reply on its way back over the mesh, its type known only to the caller.
pub type ErasedReply = Box<dyn Any + Send>;

/// A boxed [`ShardCall`] crossing the mesh.
pub trait ErasedCall: Send {
    fn waits_for_callers_image(&self) -> bool;

    fn run_erased(self: Box<Self>, shard: Rc<Shard>) -> Pin<Box<dyn Future<Output = ErasedReply>>>;
}

impl<C: ShardCall> ErasedCall for C {
    fn waits_for_callers_image(&self) -> bool {
        C::WAITS_FOR_CALLERS_IMAGE
    }

    fn run_erased(self: Box<Self>, shard: Rc<Shard>) -> Pin<Box<dyn Future<Output = ErasedReply>>> {
        Box::pin(async move { Box::new((*self).run(shard).await) as ErasedReply })
    }
}

/// The caller's side of [`ErasedReply`]: the mesh pairs each reply with the call
/// that produced it by request id, so its type is `C::Reply`.
pub fn typed_reply<C: ShardCall>(reply: ErasedReply) -> C::Reply {
    match reply.downcast::<C::Reply>() {
        Ok(reply) => *reply,
        Err(_) => panic!(
            "the mesh paired a {} call with a reply of another type",
            std::any::type_name::<C>()
        ),
    }
}
