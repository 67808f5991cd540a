//! The ISR changes this shard's leaders propose to the controller
//! (AlterPartition): checked when a follower fetches (a caught-up follower
//! joins at once) and every half `replica.lag.time.max.ms` (a lagging one
//! leaves). A change takes effect only once committed and applied here.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::partition::Partition;
use crate::shard::calls::alter_partition::AlterPartition;
use crate::shard::{CONTROLLER_SHARD, Shard};

fn lag_max(shard: &Shard) -> Duration {
    Duration::from_millis(shard.config().replica_lag_time_max_ms)
}

/// Proposes the ISR change `partition` needs now, if any, in the background.
pub fn propose_due(shard: &Rc<Shard>, partition: &Rc<Partition>) {
    let Some(proposal) = partition.take_isr_change(Instant::now(), lag_max(shard)) else {
        return;
    };
    let shard = Rc::clone(shard);
    let partition = Rc::clone(partition);
    glommio::spawn_local(async move {
        tracing::info!(partition = %partition.key(), isr = ?proposal.isr, leader_epoch = proposal.leader_epoch.0, "proposing an ISR change");
        let call = AlterPartition {
            key: partition.key().clone(),
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            isr: proposal.isr.clone(),
        };
        if let Err(error) = shard.call(CONTROLLER_SHARD, call).await {
            tracing::warn!(partition = %partition.key(), isr = ?proposal.isr, ?error, "ISR change refused");
        }
        partition.isr_change_settled();
    })
    .detach();
}

/// Checks every partition this shard leads each half `replica.lag.time.max.ms`
/// until `stopped` says so.
pub async fn check_periodically(shard: Rc<Shard>, stopped: impl Fn() -> bool) {
    let period = lag_max(&shard) / 2;
    while !stopped() {
        glommio::timer::sleep(period).await;
        for key in shard.partitions.keys() {
            if let Ok(partition) = shard.partitions.get_or_error(&key)
                && partition.is_leader()
            {
                propose_due(&shard, &partition);
            }
        }
    }
}
