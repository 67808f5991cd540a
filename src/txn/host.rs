//! What the transaction coordinator needs of the shard it runs on: its own
//! state, the broker's settings, the `__transaction_state` partitions, producer
//! ids from the controller and markers written by the partitions' owners —
//! through a narrow interface rather than the shard itself.

use std::rc::Rc;

use futures_lite::future::BoxedLocal;

use crate::config::BrokerConfig;
use crate::partition::Partition;
use crate::protocol::error_code::ErrorCode;
use crate::txn::coordinator::TxnCoordinator;
use crate::txn::markers::{MarkerResult, TxnMarkers};
use crate::types::ProducerId;

pub trait TxnHost {
    fn txn_coordinator(&self) -> &TxnCoordinator;

    fn broker_config(&self) -> &BrokerConfig;

    /// Partitions of `__transaction_state`, once it exists.
    fn state_partition_count(&self) -> Option<i32>;

    /// True when this shard owns partition `partition` of `__transaction_state`.
    fn owns_state_partition(&self, partition: i32) -> bool;

    /// A `__transaction_state` partition this shard owns.
    fn state_partition(&self, partition: i32) -> Result<Rc<Partition>, ErrorCode>;

    /// A new producer id from the controller; `None` if it could not be made
    /// durable.
    fn allocate_producer_id(self: Rc<Self>) -> BoxedLocal<Option<ProducerId>>;

    /// Has each partition's owner write the transaction's marker: one call per
    /// owning shard, all at once; one result per partition.
    fn write_txn_markers(self: Rc<Self>, markers: TxnMarkers) -> BoxedLocal<Vec<MarkerResult>>;
}
