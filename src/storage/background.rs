//! Background work of a partition log on its owning shard: retention and the high
//! watermark checkpoint, the periodic fdatasync of the interval policy, and the
//! registration with the shard's log cleaner.

use std::rc::{Rc, Weak};
use std::time::Duration;

use glommio::TaskQueueHandle;

use crate::storage::config::Durability;
use crate::storage::log::PartitionLog;
use crate::types::TimestampMs;

/// Spawns the log's background tasks on `queue` (give it fewer shares than request
/// handling). They hold only a weak reference and stop when the log is closed or
/// dropped.
pub fn spawn(log: &Rc<PartitionLog>, queue: Option<TaskQueueHandle>) {
    crate::storage::cleaner::register(log);
    let config = log.config();
    every(
        log,
        config.retention_check_interval,
        queue,
        |log| async move {
            if let Err(error) = log.apply_retention(TimestampMs::now()).await {
                tracing::error!(dir = %log.dir().display(), %error, "retention failed");
            }
            if let Err(error) = log.checkpoint_high_watermark().await {
                tracing::error!(dir = %log.dir().display(), %error, "high watermark checkpoint failed");
            }
        },
    );
    if let Durability::Interval { interval, .. } = config.durability {
        every(log, interval, queue, |log| async move {
            if let Err(error) = log.flush(true).await {
                tracing::error!(dir = %log.dir().display(), %error, "interval flush failed");
            }
        });
    }
}

fn every<F, Fut>(log: &Rc<PartitionLog>, period: Duration, queue: Option<TaskQueueHandle>, work: F)
where
    F: Fn(Rc<PartitionLog>) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let log: Weak<PartitionLog> = Rc::downgrade(log);
    let task = async move {
        loop {
            glommio::timer::sleep(period).await;
            let Some(log) = log.upgrade() else { return };
            if log.is_closed() {
                return;
            }
            work(log).await;
        }
    };
    match queue {
        Some(queue) => glommio::spawn_local_into(task, queue)
            .expect("the task queue exists")
            .detach(),
        None => glommio::spawn_local(task).detach(),
    };
}
