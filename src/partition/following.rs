//! What a partition does as a follower: first cut what diverged from the new
//! leader's log (OffsetForLeaderEpoch, KIP-101 and KIP-279: never by trusting
//! its own high watermark), then append what the leader's fetch answers bring,
//! with the leader's offsets and epochs, and take the leader's high watermark.
//! One change at a time: these and leadership changes hold the partition's
//! transition lock, so a batch fetched from an old leader never lands after a
//! new epoch began.

use crate::partition::{Partition, Role};
use crate::storage::LogError;
use crate::types::{LeaderEpoch, NodeId, Offset};

/// The leader this replica follows, in which epoch, and whether its log was
/// truncated to what that leader has (fetching waits for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Following {
    pub leader: NodeId,
    pub epoch: LeaderEpoch,
    pub truncated: bool,
}

impl Following {
    pub(super) fn new(leader: NodeId, epoch: LeaderEpoch) -> Following {
        Following {
            leader,
            epoch,
            truncated: false,
        }
    }
}

/// Where a follower's log must end after the leader answered
/// OffsetForLeaderEpoch for `asked`, the latest epoch in the follower's log:
/// `answer` is the largest leader epoch at or below it and where it ends
/// there (`None`: the leader knows no such epoch). `own_end_of` gives the
/// follower's own end offset of an epoch. KIP-279: when the leader's epoch is
/// older than the one asked, the follower's log ends where *its* copy of that
/// older epoch ends, if earlier than the leader's.
pub fn truncation_point(
    log_end: Offset,
    high_watermark: Offset,
    asked: Option<LeaderEpoch>,
    answer: Option<(LeaderEpoch, Offset)>,
    own_end_of: impl Fn(LeaderEpoch) -> Option<Offset>,
) -> Offset {
    match (asked, answer) {
        // Nothing to compare (an empty log): nothing to cut.
        (None, _) => log_end,
        // The leader has no epoch this old: keep only what was committed.
        (Some(_), None) => high_watermark.min(log_end),
        (Some(asked), Some((epoch, leader_end))) if epoch == asked => leader_end.min(log_end),
        (Some(_), Some((epoch, leader_end))) => own_end_of(epoch)
            .unwrap_or(log_end)
            .min(leader_end)
            .min(log_end),
    }
}

impl Partition {
    /// The leader this replica follows now, if it follows one.
    pub fn following(&self) -> Option<Following> {
        match &*self.role.borrow() {
            Role::Follower(following) => Some(*following),
            Role::Leader(_) | Role::Leaderless => None,
        }
    }

    /// The latest leader epoch in this replica's log (what a follower asks its
    /// leader about with OffsetForLeaderEpoch).
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.log.latest_epoch()
    }

    /// Cuts the log after the leader's OffsetForLeaderEpoch `answer` for
    /// `asked` (see [`truncation_point`]) and lets fetching start; returns the
    /// log end. Nothing happens if this replica no longer follows `following`.
    pub async fn truncate_for_leader(
        &self,
        following: Following,
        asked: Option<LeaderEpoch>,
        answer: Option<(LeaderEpoch, Offset)>,
    ) -> Result<Offset, LogError> {
        let _transition = self.transition().await?;
        if self.following() != Some(following) {
            return Ok(self.log_end_offset());
        }
        let log_end = self.log_end_offset();
        let target = truncation_point(log_end, self.high_watermark(), asked, answer, |epoch| {
            self.log
                .end_offset_for_epoch(epoch)
                .filter(|&(found, _)| found == epoch)
                .map(|(_, end)| end)
        });
        if target < log_end {
            tracing::info!(partition = %self.key, leader = following.leader.0, epoch = following.epoch.0, from = log_end.0, to = target.0, "truncating a diverged tail");
            self.log.truncate_to(target).await?;
        }
        self.mark_truncated(following);
        Ok(self.log_end_offset())
    }

    /// Restarts the log empty at `offset`, the leader's log start, when this
    /// replica's log ends before it (Kafka's `truncateFullyAndStartAt`).
    pub async fn restart_at(&self, following: Following, offset: Offset) -> Result<(), LogError> {
        let _transition = self.transition().await?;
        if self.following() != Some(following) {
            return Ok(());
        }
        tracing::info!(partition = %self.key, leader = following.leader.0, offset = offset.0, "the leader's log starts past this replica's end: starting over there");
        self.log.truncate_fully_and_start_at(offset).await?;
        self.log.set_high_watermark_bound(Some(offset));
        self.mark_truncated(following);
        Ok(())
    }

    fn mark_truncated(&self, following: Following) {
        if let Role::Follower(current) = &mut *self.role.borrow_mut()
            && *current == following
        {
            current.truncated = true;
        }
    }

    /// Appends the batches of the leader's fetch answer (its offsets and
    /// epochs kept; durable under the fsync policy before this returns, so the
    /// next fetch offset reports only what is on disk) and takes the leader's
    /// high watermark. Returns the log end; an answer for a leadership this
    /// replica no longer follows is dropped.
    pub async fn append_from_leader(
        &self,
        following: Following,
        records: &[u8],
        leader_high_watermark: Offset,
    ) -> Result<Offset, LogError> {
        let _transition = self.transition().await?;
        let current = self.following();
        if current.is_none_or(|c| c.leader != following.leader || c.epoch != following.epoch) {
            return Ok(self.log_end_offset());
        }
        if !records.is_empty() {
            self.log.append_replicated(records).await?;
        }
        let before = self.high_watermark();
        self.log
            .set_high_watermark_bound(Some(leader_high_watermark.min(self.log_end_offset())));
        if self.high_watermark() != before {
            self.waiters.wake_all();
        }
        Ok(self.log_end_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_cuts_where_the_leader_and_its_own_epochs_end() {
        let own = |epoch: LeaderEpoch| match epoch.0 {
            1 => Some(Offset(50)),
            2 => Some(Offset(80)),
            _ => None,
        };
        let truncate =
            |asked, answer| truncation_point(Offset(100), Offset(40), asked, answer, own);
        assert_eq!(truncate(None, None), Offset(100), "an empty log");
        assert_eq!(
            truncate(Some(LeaderEpoch(3)), Some((LeaderEpoch(3), Offset(120)))),
            Offset(100),
            "the leader has more of the same epoch"
        );
        assert_eq!(
            truncate(Some(LeaderEpoch(3)), Some((LeaderEpoch(3), Offset(90)))),
            Offset(90),
            "the tail past the leader's end of the epoch diverged"
        );
        assert_eq!(
            truncate(Some(LeaderEpoch(3)), Some((LeaderEpoch(2), Offset(85)))),
            Offset(80),
            "KIP-279: the leader never had epoch 3; ours of epoch 2 ends first"
        );
        assert_eq!(
            truncate(Some(LeaderEpoch(3)), Some((LeaderEpoch(1), Offset(45)))),
            Offset(45)
        );
        assert_eq!(
            truncate(Some(LeaderEpoch(3)), None),
            Offset(40),
            "no common epoch: the high watermark"
        );
    }
}
