//! OffsetForLeaderEpoch on the owning shard: each partition checks the leader
//! epoch its client believes current, then answers where the requested epoch
//! ends in its log (KIP-101/279 for followers, KIP-320 for consumers).

use std::rc::Rc;

use crate::cluster::image::PartitionKey;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::call::ShardCall;
use crate::types::{LeaderEpoch, Offset};

/// What one partition is asked.
#[derive(Debug, Clone, Copy)]
pub struct EpochQuery {
    /// The leader epoch the client believes current (-1: no check).
    pub current_leader_epoch: LeaderEpoch,
    /// The epoch whose end offset it wants.
    pub leader_epoch: LeaderEpoch,
}

/// The epoch found and where it ends; `None` when the log knows no such epoch
/// (answered as UNDEFINED_EPOCH_OFFSET with epoch -1).
pub type EpochEnd = Result<Option<(LeaderEpoch, Offset)>, ErrorCode>;

#[derive(Debug)]
pub struct OffsetForLeaderEpoch {
    pub items: Vec<(PartitionKey, EpochQuery)>,
}

impl ShardCall for OffsetForLeaderEpoch {
    type Reply = Vec<EpochEnd>;

    async fn run(self, shard: Rc<Shard>) -> Vec<EpochEnd> {
        self.items
            .into_iter()
            .map(|(key, query)| {
                let partition = shard.partition(&key)?;
                partition.check_leader_epoch(Some(query.current_leader_epoch))?;
                Ok(partition.end_offset_for_epoch(query.leader_epoch))
            })
            .collect()
    }
}
