//! Produce on the owning shard: each partition's batch validated and appended
//! through its [`crate::partition::Partition`], concurrently, answered in order.

use std::rc::Rc;

use bytes::Bytes;

use crate::cluster::image::PartitionKey;
use crate::partition::append_rules::Refusal;
use crate::partition::{Acks, Appended};
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::call::ShardCall;
use crate::shard::calls::txn_verify;

#[derive(Debug)]
pub struct ProduceItem {
    pub key: PartitionKey,
    pub records: Option<Bytes>,
}

pub type ProduceResult = Result<Appended, Refusal>;

#[derive(Debug)]
pub struct Produce {
    /// zstd batches need Produce v7+ (older clients cannot read them back).
    pub zstd_allowed: bool,
    /// The request's transactional id: a transaction's first batch on a
    /// partition is verified with its coordinator (KIP-890 part 1).
    pub transactional_id: Option<String>,
    /// Produce v12 (`transaction.version` 2): that first batch adds its
    /// partition to the transaction instead (KIP-890 part 2).
    pub adds_partitions: bool,
    /// When each batch is acknowledged.
    pub acks: Acks,
    pub items: Vec<ProduceItem>,
}

impl ShardCall for Produce {
    type Reply = Vec<ProduceResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<ProduceResult> {
        let zstd_allowed = self.zstd_allowed;
        let acks = self.acks;
        let refusals = match &self.transactional_id {
            Some(id) => txn_verify::refusals(&shard, id, &self.items, self.adds_partitions).await,
            None => self.items.iter().map(|_| None).collect(),
        };
        let tasks: Vec<_> = self
            .items
            .into_iter()
            .zip(refusals)
            .map(|(item, refusal)| {
                let shard = Rc::clone(&shard);
                glommio::spawn_local(async move {
                    match refusal {
                        Some(refusal) => Err(refusal),
                        None => produce_one(&shard, item, zstd_allowed, acks).await,
                    }
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await);
        }
        results
    }
}

async fn produce_one(
    shard: &Shard,
    item: ProduceItem,
    zstd_allowed: bool,
    acks: Acks,
) -> ProduceResult {
    let partition = shard.partition(&item.key)?;
    let records = item.records.ok_or(ErrorCode::InvalidRecord)?;
    let inflate_limit = shard.config().socket_request_max_bytes;
    partition
        .append_from_producer(&records, zstd_allowed, inflate_limit, acks)
        .await
}
