//! Producer id allocation on the controller shard, from blocks the active
//! controller hands this broker.

use std::rc::Rc;

use crate::shard::call::ShardCall;
use crate::shard::metadata::rpc::{ControllerRequest, ControllerResponse};
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::types::ProducerId;

/// A new producer id; `None` when no controller handed out a block.
#[derive(Debug)]
pub struct AllocateProducerId;

impl ShardCall for AllocateProducerId {
    type Reply = Option<ProducerId>;

    async fn run(self, shard: Rc<Shard>) -> Option<ProducerId> {
        assert_eq!(
            shard.id(),
            CONTROLLER_SHARD,
            "producer ids come from the controller shard"
        );
        if let Some(id) = shard.producer_ids.borrow_mut().take() {
            return Some(ProducerId(id));
        }
        let node = shard.metadata()?;
        let request = ControllerRequest::AllocateProducerIds {
            broker: node.identity().node,
        };
        match node.ask_controller(request).await {
            ControllerResponse::ProducerIds { first, count, .. } => {
                let mut ids = shard.producer_ids.borrow_mut();
                // A concurrent call may have refilled it meanwhile: its block
                // is as good, and replacing it only skips ids.
                ids.refill(first, count);
                ids.take().map(ProducerId)
            }
            answer => {
                tracing::error!(?answer, "no producer id block from the controller");
                None
            }
        }
    }
}
