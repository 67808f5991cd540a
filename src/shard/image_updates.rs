//! Metadata image updates on one shard, applied one at a time. Applying an image
//! opens and closes partitions, which awaits; two applications running at once
//! would open the same partition twice (each removing the other's temporary
//! files). An image that arrives while one is being applied waits, and only the
//! newest of the waiting images is applied next: each image is complete, so the
//! ones in between need not be.

use std::cell::{Cell, RefCell};

use crate::cluster::image::MetadataImage;
use crate::storage::wake_list::WakeList;

#[derive(Default)]
pub struct ImageUpdates {
    newest: RefCell<Option<(u64, MetadataImage)>>,
    requested: Cell<u64>,
    applied: Cell<u64>,
    /// The metadata version of the newest image applied.
    applied_version: Cell<u64>,
    running: Cell<bool>,
    done: WakeList,
}

/// What the caller of [`ImageUpdates::submit`] does next.
pub enum Turn {
    /// Apply images with [`ImageUpdates::next`] until it returns `None`.
    Apply,
    /// Another task is applying; wait with [`ImageUpdates::applied`].
    Wait(u64),
}

impl ImageUpdates {
    pub fn submit(&self, image: MetadataImage) -> Turn {
        let generation = self.requested.get() + 1;
        self.requested.set(generation);
        *self.newest.borrow_mut() = Some((generation, image));
        if self.running.replace(true) {
            Turn::Wait(generation)
        } else {
            Turn::Apply
        }
    }

    /// The next image to apply; `None` ends the applier's turn.
    pub fn next(&self) -> Option<(u64, MetadataImage)> {
        debug_assert!(self.running.get());
        let next = self.newest.borrow_mut().take();
        if next.is_none() {
            self.running.set(false);
        }
        next
    }

    pub fn finished(&self, generation: u64, version: u64) {
        debug_assert!(generation > self.applied.get());
        self.applied.set(generation);
        self.applied_version
            .set(self.applied_version.get().max(version));
        self.done.wake_all();
    }

    /// Resolves once an image of metadata `version` or newer has been applied.
    pub async fn version_applied(&self, version: u64) {
        // Bounded by the number of images applied meanwhile, one wake-up each.
        while self.applied_version.get() < version {
            self.done.wait().await;
        }
    }

    /// Resolves once `generation` or a newer image has been applied.
    pub async fn applied(&self, generation: u64) {
        // Bounded by the number of images applied meanwhile, one wake-up each.
        while self.applied.get() < generation {
            self.done.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_apply_one_at_a_time_and_only_the_newest_waiting_one_runs() {
        let updates = ImageUpdates::default();
        assert!(matches!(
            updates.submit(MetadataImage::default()),
            Turn::Apply
        ));
        assert_eq!(updates.next().map(|(g, _)| g), Some(1));
        assert!(matches!(
            updates.submit(MetadataImage::default()),
            Turn::Wait(2)
        ));
        assert!(matches!(
            updates.submit(MetadataImage::default()),
            Turn::Wait(3)
        ));
        updates.finished(1, 1);
        assert_eq!(updates.next().map(|(g, _)| g), Some(3), "2 is superseded");
        updates.finished(3, 3);
        futures_lite::future::block_on(updates.applied(2));
        futures_lite::future::block_on(updates.version_applied(3));
        assert!(updates.next().is_none());
        assert!(matches!(
            updates.submit(MetadataImage::default()),
            Turn::Apply
        ));
    }
}
