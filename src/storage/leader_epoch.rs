//! The leader epoch cache: the start offset of every leader epoch in the log.

use crate::types::{LeaderEpoch, Offset};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl LeaderEpochCache {
    /// Builds from checkpointed entries, keeping only strictly increasing ones.
    pub fn from_entries(entries: Vec<(LeaderEpoch, Offset)>) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for (epoch, offset) in entries {
            cache.assign(epoch, offset);
        }
        cache
    }

    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    pub fn latest(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|&(epoch, _)| epoch)
    }

    /// Where `epoch` starts, if the cache holds that very epoch.
    pub fn start_offset(&self, epoch: LeaderEpoch) -> Option<Offset> {
        // Strictly increasing epochs (`assign`): a binary search finds it.
        let found = self.entries.binary_search_by_key(&epoch, |&(e, _)| e);
        found.ok().map(|at| self.entries[at].1)
    }

    /// Records that `epoch` starts at `start`; returns whether the cache changed.
    pub fn assign(&mut self, epoch: LeaderEpoch, start: Offset) -> bool {
        if epoch == LeaderEpoch::NONE {
            return false;
        }
        match self.entries.last() {
            Some(&(last_epoch, last_start)) if epoch <= last_epoch || start < last_start => false,
            _ => {
                self.entries.push((epoch, start));
                true
            }
        }
    }

    /// Forgets epochs that start at or after `end` (the log was truncated to `end`).
    pub fn truncate_from(&mut self, end: Offset) -> bool {
        let keep = self.entries.partition_point(|&(_, start)| start < end);
        let changed = keep != self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The end offset of `epoch` as OffsetForLeaderEpoch answers it (Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`), with the epoch found: the latest
    /// epoch ends at `log_end`; an older one at the start of the first later
    /// epoch, found as the latest epoch at or below it, or as itself when it is
    /// older than every epoch kept (its records are gone, the next epoch's start
    /// is where the log resumes). `None` (UNDEFINED_EPOCH_OFFSET) for no epoch
    /// (-1) and for one newer than every epoch here.
    pub fn end_offset_for(
        &self,
        epoch: LeaderEpoch,
        log_end: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        if epoch == LeaderEpoch::NONE {
            return None;
        }
        if self.latest() == Some(epoch) {
            return Some((epoch, log_end));
        }
        let after = self.entries.partition_point(|&(e, _)| e <= epoch);
        let &(_, end) = self.entries.get(after)?;
        let found = after
            .checked_sub(1)
            .map_or(epoch, |floor| self.entries[floor].0);
        Some((found, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_truncates_and_answers_end_offsets() {
        let mut cache = LeaderEpochCache::default();
        assert!(cache.assign(LeaderEpoch(1), Offset(0)));
        assert!(!cache.assign(LeaderEpoch(1), Offset(5)));
        assert!(cache.assign(LeaderEpoch(3), Offset(10)));
        assert!(!cache.assign(LeaderEpoch(2), Offset(20)));
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(1), Offset(50)),
            Some((LeaderEpoch(1), Offset(10)))
        );
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(2), Offset(50)),
            Some((LeaderEpoch(1), Offset(10)))
        );
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(3), Offset(50)),
            Some((LeaderEpoch(3), Offset(50)))
        );
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(0), Offset(50)),
            Some((LeaderEpoch(0), Offset(0))),
            "an epoch older than every kept one ends where the first kept one starts"
        );
        assert_eq!(cache.end_offset_for(LeaderEpoch(4), Offset(50)), None);
        assert_eq!(cache.end_offset_for(LeaderEpoch::NONE, Offset(50)), None);
        assert_eq!(
            LeaderEpochCache::default().end_offset_for(LeaderEpoch(0), Offset(50)),
            None
        );
        assert_eq!(cache.start_offset(LeaderEpoch(3)), Some(Offset(10)));
        assert_eq!(cache.start_offset(LeaderEpoch(2)), None);
        assert!(cache.truncate_from(Offset(10)));
        assert_eq!(cache.latest(), Some(LeaderEpoch(1)));
    }
}
