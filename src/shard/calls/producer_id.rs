//! Producer id allocation on the controller shard.

use std::rc::Rc;

use crate::shard::call::ShardCall;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::types::ProducerId;

/// A new producer id; `None` when the allocation could not be made durable.
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
        let mut ids = shard.producer_ids.borrow_mut();
        if ids.is_none() {
            match crate::txn::producer_ids::ProducerIds::load(&shard.config().data_dir) {
                Ok(loaded) => *ids = Some(loaded),
                Err(error) => {
                    tracing::error!(%error, "cannot load producer ids");
                    return None;
                }
            }
        }
        match ids.as_mut().map(|ids| ids.allocate()) {
            Some(Ok(id)) => Some(ProducerId(id)),
            Some(Err(error)) => {
                tracing::error!(%error, "cannot reserve producer ids");
                None
            }
            None => None,
        }
    }
}
