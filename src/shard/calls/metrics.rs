//! A scrape's call to every shard: its metrics snapshot.

use std::rc::Rc;

use crate::metrics::snapshot::{CommittedOffset, PartitionSample, ShardSnapshot};
use crate::shard::Shard;
use crate::shard::call::ShardCall;

/// Partitions sampled between chances for the shard's other tasks to run: a
/// scrape of thousands of partitions must not hold the reactor.
const PARTITIONS_PER_SLICE: usize = 512;

pub struct GatherMetrics;

impl ShardCall for GatherMetrics {
    type Reply = ShardSnapshot;

    /// A scrape reads what is there now, whatever image the shard is at.
    const WAITS_FOR_CALLERS_IMAGE: bool = false;

    async fn run(self, shard: Rc<Shard>) -> ShardSnapshot {
        let open = shard.open_partitions();
        let mut partitions = Vec::with_capacity(open.len());
        for chunk in open.chunks(PARTITIONS_PER_SLICE) {
            partitions.extend(chunk.iter().map(|partition| PartitionSample {
                topic: partition.key().topic.clone(),
                partition: partition.key().partition,
                leader: partition.is_leader(),
                log_start: partition.log_start_offset().0,
                log_end: partition.log_end_offset().0,
                high_watermark: partition.high_watermark().0,
                size_bytes: partition.size_bytes(),
                traffic: partition.traffic().sample(),
            }));
            futures_lite::future::yield_now().await;
        }
        let groups = shard.groups().groups.borrow();
        let group_states = groups.values().map(|g| g.state().name()).collect();
        let committed = groups
            .values()
            .flat_map(|group| {
                group
                    .offsets
                    .iter()
                    .map(|((topic, partition), value)| CommittedOffset {
                        group: group.id().0.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        offset: value.offset,
                    })
            })
            .collect();
        ShardSnapshot {
            shard: shard.id(),
            sample: crate::metrics::shard::sample(),
            tail_cache_bytes: crate::storage::tail_cache::shard_bytes() as u64,
            partitions,
            group_states,
            committed,
        }
    }
}
