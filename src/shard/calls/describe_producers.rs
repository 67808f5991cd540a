//! DescribeProducers on the owning shard: each partition's producers as its
//! producer state remembers them.

use std::rc::Rc;

use crate::cluster::image::PartitionKey;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::call::ShardCall;
use crate::storage::producer_state::ProducerInfo;

/// One partition's active producers, or why they cannot be listed.
pub type PartitionProducers = Result<Vec<ProducerInfo>, ErrorCode>;

#[derive(Debug)]
pub struct DescribeProducers {
    /// The partitions to describe (`kafka::by_partition` pairs every key with
    /// a value; this call needs none).
    pub items: Vec<(PartitionKey, ())>,
}

impl ShardCall for DescribeProducers {
    type Reply = Vec<PartitionProducers>;

    async fn run(self, shard: Rc<Shard>) -> Vec<PartitionProducers> {
        self.items
            .iter()
            .map(|(key, ())| shard.partition(key).map(|partition| partition.producers()))
            .collect()
    }
}
