//! WriteTxnMarkers on the shard owning the partitions: each partition appends
//! the transaction's marker; for `__consumer_offsets` partitions the group
//! coordinator then materialises or drops the producer's pending offsets.

use std::rc::Rc;

use crate::cluster::image::PartitionKey;
use crate::protocol::error_code::ErrorCode;
use crate::record::control::EndTxnMarker;
use crate::shard::Shard;
use crate::shard::bounded;
use crate::shard::call::ShardCall;
use crate::txn::markers::{MarkerResult, TxnMarkers};
use crate::types::TimestampMs;

/// One transaction's markers for the partitions the receiving shard owns.
#[derive(Debug)]
pub struct WriteTxnMarkers(pub TxnMarkers);

impl ShardCall for WriteTxnMarkers {
    type Reply = Vec<MarkerResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<MarkerResult> {
        let markers = self.0;
        let batch = Rc::new(
            EndTxnMarker {
                kind: markers.kind,
                coordinator_epoch: markers.coordinator_epoch,
            }
            .build_batch(
                markers.producer_id,
                markers.producer_epoch,
                TimestampMs::now(),
            ),
        );
        let results = Rc::new(std::cell::RefCell::new(Vec::with_capacity(
            markers.partitions.len(),
        )));
        let collected = Rc::clone(&results);
        bounded::for_each(
            markers.partitions,
            bounded::PARTITION_JOBS,
            move |txn_partition| {
                let shard = Rc::clone(&shard);
                let results = Rc::clone(&collected);
                let batch = Rc::clone(&batch);
                async move {
                    let key = PartitionKey {
                        topic: txn_partition.0.clone(),
                        partition: txn_partition.1,
                    };
                    let error = match shard.partition(&key) {
                        Ok(partition) => match partition.append_internal(&batch).await {
                            Ok(_) => ErrorCode::None,
                            Err(error) => error.error_code(),
                        },
                        Err(error) => error,
                    };
                    results.borrow_mut().push((txn_partition, error));
                }
            },
        )
        .await;
        results.take()
    }
}
