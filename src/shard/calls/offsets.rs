//! ListOffsets and DeleteRecords on the owning shard.

use std::rc::Rc;

use crate::cluster::image::PartitionKey;
use crate::partition::{Isolation, OffsetSpec};
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::call::ShardCall;
use crate::types::{LeaderEpoch, Offset, TimestampMs};

/// An offset and its timestamp (`None`: no record matches).
pub type ListedOffset = Result<Option<(Offset, TimestampMs)>, ErrorCode>;

#[derive(Debug)]
pub struct ListOffsets {
    /// Each partition, the offset asked for, and the leader epoch the client
    /// believes current (v4+).
    pub items: Vec<(PartitionKey, (OffsetSpec, Option<LeaderEpoch>))>,
    /// The request's `isolation_level`: what the answers may reach.
    pub isolation: Isolation,
}

impl ShardCall for ListOffsets {
    type Reply = Vec<ListedOffset>;

    async fn run(self, shard: Rc<Shard>) -> Vec<ListedOffset> {
        let mut results = Vec::with_capacity(self.items.len());
        for (key, (spec, epoch)) in self.items {
            let result = match shard.partition(&key) {
                Ok(partition) => match partition.check_leader_epoch(epoch) {
                    Ok(()) => partition.offset_for(spec, self.isolation).await,
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            results.push(result);
        }
        results
    }
}

/// The new log start offset.
pub type DeletedRecords = Result<Offset, ErrorCode>;

/// Moves log start offsets: to the given offset, or (`None`) the high watermark.
#[derive(Debug)]
pub struct DeleteRecords {
    pub items: Vec<(PartitionKey, Option<Offset>)>,
}

impl ShardCall for DeleteRecords {
    type Reply = Vec<DeletedRecords>;

    async fn run(self, shard: Rc<Shard>) -> Vec<DeletedRecords> {
        let mut results = Vec::with_capacity(self.items.len());
        for (key, before) in self.items {
            let result = match shard.partition(&key) {
                Ok(partition) => partition
                    .delete_records(before)
                    .await
                    .map_err(|e| e.error_code()),
                Err(error) => Err(error),
            };
            results.push(result);
        }
        results
    }
}
