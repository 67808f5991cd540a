//! What the group coordinator needs of the shard it runs on: its own state, the
//! broker's settings, and the `__consumer_offsets` partitions, through a narrow
//! interface rather than the shard itself.

use std::rc::Rc;

use crate::cluster::image::PartitionKey;
use crate::config::BrokerConfig;
use crate::group::coordinator::Coordinator;
use crate::partition::Partition;
use crate::protocol::error_code::ErrorCode;

pub trait GroupHost {
    fn coordinator(&self) -> &Coordinator;

    fn config(&self) -> &BrokerConfig;

    /// Partitions of `__consumer_offsets`, once it exists.
    fn offsets_partition_count(&self) -> Option<i32>;

    /// True when this shard owns `key`.
    fn owns(&self, key: &PartitionKey) -> bool;

    /// A partition this shard owns, or the error a request for it gets.
    fn partition(&self, key: &PartitionKey) -> Result<Rc<Partition>, ErrorCode>;
}
