//! What a partition does as its leader beyond appending: taking its followers'
//! fetches into account (their progress moves the high watermark), waiting for
//! the ISR on `acks=all`, and deciding the ISR changes to propose.

use std::time::{Duration, Instant};

use crate::partition::append_rules::Refusal;
use crate::partition::replica::IsrProposal;
use crate::partition::waiters::DataWaiter;
use crate::partition::{Partition, Role};
use crate::protocol::error_code::ErrorCode;
use crate::types::{LeaderEpoch, NodeId, Offset};

/// When a produce is acknowledged (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0` or `1`: once the leader has it under its durability policy.
    Leader,
    /// `acks=all` (-1): once every in-sync replica has it, within `timeout`.
    All { timeout: Duration },
}

/// Bound on the wake-ups one `acks=all` wait takes: each follows a move of the
/// high watermark or a leadership change.
const MAX_REPLICATION_ROUNDS: usize = 1_000_000;

impl Partition {
    /// NOT_ENOUGH_REPLICAS before an `acks=all` append when the ISR is smaller
    /// than `min.insync.replicas`; NOT_LEADER_OR_FOLLOWER when this replica
    /// does not lead.
    pub(super) fn check_enough_replicas(&self, min_insync: usize) -> Result<(), Refusal> {
        match &*self.role.borrow() {
            Role::Leader(state) if state.isr().len() >= min_insync => Ok(()),
            Role::Leader(state) => {
                tracing::debug!(partition = %self.key, isr = ?state.isr(), min_insync, "not enough replicas");
                Err(ErrorCode::NotEnoughReplicas.into())
            }
            Role::Follower(_) | Role::Leaderless => Err(ErrorCode::NotLeaderOrFollower.into()),
        }
    }

    /// Waits until the high watermark reaches `target` while this replica
    /// still leads epoch `epoch`, until `deadline` (REQUEST_TIMED_OUT, as Kafka's
    /// delayed produce). Reached with an ISR below `min.insync.replicas` is
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND; a lost leadership is
    /// NOT_LEADER_OR_FOLLOWER (the record may or may not survive; the client
    /// retries, and the idempotent producer's sequence deduplicates).
    pub(super) async fn wait_replicated(
        &self,
        target: Offset,
        epoch: LeaderEpoch,
        deadline: Instant,
    ) -> Result<(), ErrorCode> {
        for _ in 0..MAX_REPLICATION_ROUNDS {
            if let Some(outcome) = self.replication_outcome(target, epoch) {
                return outcome;
            }
            // Registered, then checked again: a move in between is not missed.
            let waiter = DataWaiter::new();
            self.replication_waiters.register(&waiter);
            if let Some(outcome) = self.replication_outcome(target, epoch) {
                return outcome;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(ErrorCode::RequestTimedOut);
            };
            let _ = glommio::timer::timeout(left, async {
                waiter.woken().await;
                Ok(())
            })
            .await;
        }
        Err(ErrorCode::RequestTimedOut)
    }

    /// How an `acks=all` wait for `target` in epoch `epoch` ends, if it ends now.
    fn replication_outcome(
        &self,
        target: Offset,
        epoch: LeaderEpoch,
    ) -> Option<Result<(), ErrorCode>> {
        let role = self.role.borrow();
        let Role::Leader(state) = &*role else {
            return Some(Err(ErrorCode::NotLeaderOrFollower));
        };
        if state.epoch() != epoch {
            return Some(Err(ErrorCode::NotLeaderOrFollower));
        }
        if self.log.high_watermark() < target {
            return None;
        }
        let min_insync = self.configs.borrow().min_insync_replicas;
        Some(if state.isr().len() >= min_insync {
            Ok(())
        } else {
            Err(ErrorCode::NotEnoughReplicasAfterAppend)
        })
    }

    /// A replica fetch from `follower` at `fetch_offset` (everything before it
    /// is on the follower, durably under the fsync policy): moves the high
    /// watermark if it can, waking fetches and `acks=all` produces. Refused
    /// with NOT_LEADER_OR_FOLLOWER when this replica does not lead or
    /// `follower` is not a replica, OFFSET_OUT_OF_RANGE past the log end.
    pub fn follower_fetched(
        &self,
        follower: NodeId,
        fetch_offset: Offset,
        now: Instant,
    ) -> Result<(), ErrorCode> {
        let before = self.log.high_watermark();
        let bound = {
            let mut role = self.role.borrow_mut();
            let Role::Leader(state) = &mut *role else {
                return Err(ErrorCode::NotLeaderOrFollower);
            };
            let end = self.log.readable_end();
            // Past the end, the follower's log diverged: its fetch is refused
            // (it truncates) and counts for nothing.
            if fetch_offset > end {
                return Err(ErrorCode::OffsetOutOfRange);
            }
            if !state.on_fetch(follower, fetch_offset, end, now) {
                return Err(ErrorCode::NotLeaderOrFollower);
            }
            state.high_watermark_bound()
        };
        self.log.set_high_watermark_bound(bound);
        if self.log.high_watermark() > before {
            self.wake_all();
        }
        Ok(())
    }

    /// The ISR change due now (followers lagging more than `lag_max` leave,
    /// caught-up ones join), marked as proposed: no other is decided until
    /// [`Partition::isr_change_settled`].
    pub fn take_isr_change(&self, now: Instant, lag_max: Duration) -> Option<IsrProposal> {
        let high_watermark = self.log.high_watermark();
        let mut role = self.role.borrow_mut();
        let Role::Leader(state) = &mut *role else {
            return None;
        };
        let proposal = state.change_due(high_watermark, now, lag_max)?;
        state.proposed(&proposal);
        Some(proposal)
    }

    /// The proposed change is no longer in flight: committed (and in the
    /// image applied here by now) or refused.
    pub fn isr_change_settled(&self) {
        if let Role::Leader(state) = &mut *self.role.borrow_mut() {
            state.proposal_settled();
        }
    }

    /// KIP-207: a new leader answers offsets only once its high watermark has
    /// reached the start of its epoch (before that it may be behind what the
    /// previous leader acknowledged): OFFSET_NOT_AVAILABLE meanwhile.
    pub(super) fn check_offsets_available(&self) -> Result<(), ErrorCode> {
        match &*self.role.borrow() {
            Role::Leader(state) if self.log.high_watermark() < state.epoch_start() => {
                Err(ErrorCode::OffsetNotAvailable)
            }
            _ => Ok(()),
        }
    }
}
