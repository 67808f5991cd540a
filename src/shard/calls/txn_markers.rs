//! WriteTxnMarkers on the shard owning the partitions: each partition appends
//! the transaction's marker; for `__consumer_offsets` partitions the group
//! coordinator then materialises or drops the producer's pending offsets.

use std::cell::RefCell;
use std::rc::Rc;

use crate::cluster::image::PartitionKey;
use crate::group::coordinator_key::OFFSETS_TOPIC;
use crate::partition::TxnMarker;
use crate::protocol::error_code::ErrorCode;
use crate::record::control::MarkerKind;
use crate::shard::Shard;
use crate::shard::bounded;
use crate::shard::call::ShardCall;
use crate::txn::markers::{MarkerResult, TxnMarkers};
use crate::txn::state::TxnPartition;

/// One transaction's markers for the partitions the receiving shard owns.
#[derive(Debug)]
pub struct WriteTxnMarkers(pub TxnMarkers);

impl ShardCall for WriteTxnMarkers {
    type Reply = Vec<MarkerResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<MarkerResult> {
        let mut markers = self.0;
        let partitions = std::mem::take(&mut markers.partitions);
        let results = Rc::new(RefCell::new(Vec::with_capacity(partitions.len())));
        let collected = Rc::clone(&results);
        let markers = Rc::new(markers);
        bounded::for_each(partitions, bounded::PARTITION_JOBS, move |partition| {
            let shard = Rc::clone(&shard);
            let results = Rc::clone(&collected);
            let markers = Rc::clone(&markers);
            async move {
                let error = write(&shard, &markers, &partition).await;
                results.borrow_mut().push((partition, error));
            }
        })
        .await;
        results.take()
    }
}

async fn write(shard: &Shard, markers: &TxnMarkers, (topic, index): &TxnPartition) -> ErrorCode {
    let key = PartitionKey {
        topic: topic.clone(),
        partition: *index,
    };
    let partition = match shard.partition(&key) {
        Ok(partition) => partition,
        Err(error) => return error,
    };
    let marker = TxnMarker {
        producer_id: markers.producer_id,
        producer_epoch: markers.producer_epoch,
        coordinator_epoch: markers.coordinator_epoch,
        kind: markers.kind,
    };
    if let Err(error) = partition.write_txn_marker(marker).await {
        return error;
    }
    if key.topic == OFFSETS_TOPIC {
        shard.groups().complete_txn_offsets(
            key.partition,
            markers.producer_id,
            markers.kind == MarkerKind::Commit,
        );
    }
    ErrorCode::None
}
