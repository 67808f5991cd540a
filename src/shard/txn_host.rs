//! The shard as the transaction coordinator sees it.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_lite::future::BoxedLocal;

use crate::cluster::image::{PartitionKey, Route};
use crate::config::BrokerConfig;
use crate::partition::Partition;
use crate::protocol::error_code::ErrorCode;
use crate::shard::calls::producer_id::AllocateProducerId;
use crate::shard::calls::txn_markers::WriteTxnMarkers;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::txn::TRANSACTION_STATE_TOPIC;
use crate::txn::coordinator::TxnCoordinator;
use crate::txn::host::TxnHost;
use crate::txn::markers::{MarkerResult, TxnMarkers};
use crate::types::{ProducerId, ShardId};

fn state_key(partition: i32) -> PartitionKey {
    PartitionKey {
        topic: TRANSACTION_STATE_TOPIC.to_string(),
        partition,
    }
}

impl TxnHost for Shard {
    fn txn_coordinator(&self) -> &TxnCoordinator {
        self.transactions()
    }

    fn broker_config(&self) -> &BrokerConfig {
        Shard::config(self)
    }

    fn state_partition_count(&self) -> Option<i32> {
        self.image()
            .topic(TRANSACTION_STATE_TOPIC)
            .map(|topic| topic.partition_count())
    }

    fn owns_state_partition(&self, partition: i32) -> bool {
        self.owner_of(&state_key(partition)) == Some(self.id())
    }

    fn state_partition(&self, partition: i32) -> Result<Rc<Partition>, ErrorCode> {
        Shard::partition(self, &state_key(partition))
    }

    fn allocate_producer_id(self: Rc<Self>) -> BoxedLocal<Option<ProducerId>> {
        Box::pin(async move { self.call(CONTROLLER_SHARD, AllocateProducerId).await })
    }

    fn write_txn_markers(self: Rc<Self>, markers: TxnMarkers) -> BoxedLocal<Vec<MarkerResult>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(markers.partitions.len());
            let mut per_shard: BTreeMap<ShardId, Vec<_>> = BTreeMap::new();
            for (topic, partition) in &markers.partitions {
                let key = PartitionKey {
                    topic: topic.clone(),
                    partition: *partition,
                };
                match self.owner_of(&key) {
                    Some(owner) => per_shard
                        .entry(owner)
                        .or_default()
                        .push((topic.clone(), *partition)),
                    None => {
                        if !matches!(self.image().route(&key), Route::Unknown) {
                            // Markers are shard calls within this node: a
                            // partition another broker leads keeps the
                            // transaction open there (docs/cluster.md).
                            tracing::error!(partition = %key, "transaction marker not written: the partition is led by another broker");
                        }
                        results.push((
                            (topic.clone(), *partition),
                            ErrorCode::UnknownTopicOrPartition,
                        ));
                    }
                }
            }
            // One call per owning shard, all at once.
            let tasks: Vec<_> = per_shard
                .into_iter()
                .map(|(owner, partitions)| {
                    let call = WriteTxnMarkers(TxnMarkers {
                        partitions,
                        ..markers.clone()
                    });
                    let shard = Rc::clone(&self);
                    glommio::spawn_local(async move { shard.call(owner, call).await })
                })
                .collect();
            for task in tasks {
                results.extend(task.await);
            }
            results
        })
    }
}

impl Shard {
    /// The shard coordinating `transactional_id`, if `__transaction_state`
    /// exists.
    pub fn txn_coordinator_shard(&self, transactional_id: &str) -> Option<ShardId> {
        let count = self.state_partition_count()?;
        self.owner_of(&state_key(crate::txn::partition_for(
            transactional_id,
            count,
        )))
    }
}
