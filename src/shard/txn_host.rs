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
use crate::shard::remote_txn;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::txn::TRANSACTION_STATE_TOPIC;
use crate::txn::coordinator::TxnCoordinator;
use crate::txn::host::TxnHost;
use crate::txn::markers::{MarkerResult, TxnMarkers};
use crate::txn::state::TxnPartition;
use crate::types::{NodeId, ProducerId, ShardId};

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
            let image = self.image();
            let mut results = Vec::with_capacity(markers.partitions.len());
            let mut per_shard: BTreeMap<ShardId, Vec<TxnPartition>> = BTreeMap::new();
            let mut per_leader: BTreeMap<NodeId, Vec<TxnPartition>> = BTreeMap::new();
            for partition in &markers.partitions {
                let key = PartitionKey {
                    topic: partition.0.clone(),
                    partition: partition.1,
                };
                match image.route(&key) {
                    Route::Local(owner) => {
                        per_shard.entry(owner).or_default().push(partition.clone())
                    }
                    Route::Remote { leader, .. } => {
                        per_leader
                            .entry(leader)
                            .or_default()
                            .push(partition.clone());
                    }
                    // Retried until a leader is elected.
                    Route::Offline => {
                        results.push((partition.clone(), ErrorCode::NotLeaderOrFollower));
                    }
                    Route::Unknown => {
                        results.push((partition.clone(), ErrorCode::UnknownTopicOrPartition));
                    }
                }
            }
            let markers_for = |partitions| TxnMarkers {
                partitions,
                ..markers.clone()
            };
            // One call per owning shard and one request per leading broker, all
            // at once.
            let mut tasks = Vec::with_capacity(per_shard.len() + per_leader.len());
            for (owner, partitions) in per_shard {
                let call = WriteTxnMarkers(markers_for(partitions));
                let shard = Rc::clone(&self);
                tasks.push(glommio::spawn_local(async move {
                    shard.call(owner, call).await
                }));
            }
            for (leader, partitions) in per_leader {
                tasks.push(glommio::spawn_local(remote_txn::write_markers(
                    Rc::clone(&self),
                    leader,
                    markers_for(partitions),
                )));
            }
            for task in tasks {
                results.extend(task.await);
            }
            results
        })
    }
}

impl Shard {
    /// Where the coordinator of `transactional_id` is: the route to its
    /// `__transaction_state` partition ([`Route::Unknown`] while that topic
    /// does not exist).
    pub fn txn_coordinator_route(&self, transactional_id: &str) -> Route {
        match self.state_partition_count() {
            Some(count) => self.image().route(&state_key(crate::txn::partition_for(
                transactional_id,
                count,
            ))),
            None => Route::Unknown,
        }
    }
}
