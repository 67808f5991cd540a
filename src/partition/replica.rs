//! The leader's view of its followers (Kafka's `Partition` with its
//! `ReplicaState`s): how far each follower's log reaches (its last fetch
//! offset), when it was last caught up, the ISR the controller committed and a
//! change proposed and not committed yet. From them come the high watermark
//! (the lowest log end in the ISR) and the ISR changes to propose: a follower
//! that has not caught up for `replica.lag.time.max.ms` leaves, one that reaches
//! the high watermark and the start of the leader's epoch joins.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::types::{LeaderEpoch, NodeId, Offset};

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    /// The follower's log end, as its last fetch said (`None`: no fetch yet in
    /// this leader epoch).
    log_end: Option<Offset>,
    /// When its fetch last reached the leader's log end (or the end the leader
    /// had at the follower's previous fetch).
    caught_up: Option<Instant>,
    /// The leader's log end at the follower's previous fetch, and when.
    previous_fetch: Option<(Instant, Offset)>,
}

/// An ISR change sent to the controller (AlterPartition), with the versions it
/// applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub isr: Vec<NodeId>,
}

/// A partition's replicas as the controller last committed them.
#[derive(Debug, Clone, Copy)]
pub struct Members<'a> {
    pub epoch: LeaderEpoch,
    pub replicas: &'a [NodeId],
    pub isr: &'a [NodeId],
    pub partition_epoch: i32,
}

/// One leader epoch of a partition led here.
#[derive(Debug)]
pub struct LeaderState {
    node: NodeId,
    epoch: LeaderEpoch,
    /// The log end when this epoch began: a follower joins the ISR only once
    /// its log reaches it (so it holds everything of the previous epochs the
    /// leader kept).
    epoch_start: Offset,
    isr: Vec<NodeId>,
    partition_epoch: i32,
    followers: BTreeMap<NodeId, Progress>,
    /// The ISR proposed and not yet committed.
    pending: Option<Vec<NodeId>>,
    /// The high watermark never goes back within an epoch.
    floor: Offset,
}

impl LeaderState {
    /// Leadership of epoch `epoch`, beginning at `now` with the log ending at
    /// `log_end` and the high watermark at `high_watermark`. ISR members count
    /// as caught up now (as Kafka resets them on election), so they are not
    /// dropped before their first fetch could come.
    pub fn new(
        node: NodeId,
        members: Members<'_>,
        log_end: Offset,
        high_watermark: Offset,
        now: Instant,
    ) -> LeaderState {
        assert!(
            high_watermark <= log_end,
            "{high_watermark:?} > {log_end:?}"
        );
        let Members {
            epoch,
            replicas,
            isr,
            partition_epoch,
        } = members;
        LeaderState {
            node,
            epoch,
            epoch_start: log_end,
            isr: isr.to_vec(),
            partition_epoch,
            followers: replicas
                .iter()
                .filter(|&&r| r != node)
                .map(|&r| {
                    let caught_up = isr.contains(&r).then_some(now);
                    (
                        r,
                        Progress {
                            caught_up,
                            ..Progress::default()
                        },
                    )
                })
                .collect(),
            pending: None,
            floor: high_watermark,
        }
    }

    pub fn epoch(&self) -> LeaderEpoch {
        self.epoch
    }

    pub fn epoch_start(&self) -> Offset {
        self.epoch_start
    }

    pub fn isr(&self) -> &[NodeId] {
        &self.isr
    }

    /// A newer image of the same epoch: the ISR and replicas the controller
    /// committed. A committed change ends the pending proposal.
    pub fn update(&mut self, members: Members<'_>) {
        debug_assert_eq!(members.epoch, self.epoch);
        let Members {
            replicas,
            isr,
            partition_epoch,
            ..
        } = members;
        if partition_epoch != self.partition_epoch {
            self.pending = None;
        }
        self.isr = isr.to_vec();
        self.partition_epoch = partition_epoch;
        self.followers.retain(|r, _| replicas.contains(r));
        for &replica in replicas.iter().filter(|&&r| r != self.node) {
            self.followers.entry(replica).or_default();
        }
    }

    /// The members the high watermark waits for: the committed ISR and any
    /// member a pending change adds (Kafka's maximal ISR).
    fn maximal_isr(&self) -> impl Iterator<Item = NodeId> + '_ {
        let added = self
            .pending
            .iter()
            .flatten()
            .filter(|r| !self.isr.contains(r));
        self.isr.iter().chain(added).copied()
    }

    /// The high watermark's bound from the followers: `None` when no follower
    /// is in the (maximal) ISR, so the leader's own log end is the high
    /// watermark; otherwise the lowest follower log end, never below the
    /// previous one.
    pub fn high_watermark_bound(&mut self) -> Option<Offset> {
        let lowest = self
            .maximal_isr()
            .filter(|&r| r != self.node)
            .map(|r| {
                self.followers
                    .get(&r)
                    .and_then(|p| p.log_end)
                    .unwrap_or(Offset::ZERO)
            })
            .min()?;
        self.floor = self.floor.max(lowest);
        Some(self.floor)
    }

    /// A fetch from `follower` at `fetch_offset` while the leader's log ends at
    /// `leader_end`: everything before `fetch_offset` is on the follower.
    /// Returns whether the follower is a replica here.
    pub fn on_fetch(
        &mut self,
        follower: NodeId,
        fetch_offset: Offset,
        leader_end: Offset,
        now: Instant,
    ) -> bool {
        let Some(progress) = self.followers.get_mut(&follower) else {
            return false;
        };
        if fetch_offset >= leader_end {
            progress.caught_up = Some(now);
        } else if let Some((at, end)) = progress.previous_fetch
            && fetch_offset >= end
        {
            progress.caught_up = Some(progress.caught_up.map_or(at, |c| c.max(at)));
        }
        progress.previous_fetch = Some((now, leader_end));
        progress.log_end = Some(fetch_offset);
        true
    }

    /// The ISR change due now, if none is pending: followers that have not
    /// caught up within `lag_max` leave, followers whose log reaches both the
    /// high watermark and this epoch's start join.
    pub fn change_due(
        &self,
        high_watermark: Offset,
        now: Instant,
        lag_max: Duration,
    ) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let lagging = |r: &NodeId| {
            *r != self.node
                && self.followers.get(r).is_none_or(|p| {
                    p.caught_up
                        .is_none_or(|at| now.saturating_duration_since(at) > lag_max)
                })
        };
        let joins = |r: &NodeId, p: &Progress| {
            !self.isr.contains(r)
                && p.log_end
                    .is_some_and(|end| end >= high_watermark && end >= self.epoch_start)
        };
        // Checked at every follower fetch: decide without allocating first.
        if !self.isr.iter().any(&lagging) && !self.followers.iter().any(|(r, p)| joins(r, p)) {
            return None;
        }
        let joining: Vec<NodeId> = self
            .followers
            .iter()
            .filter(|(r, p)| joins(r, p))
            .map(|(&r, _)| r)
            .collect();
        let mut isr: Vec<NodeId> = self.isr.iter().copied().filter(|r| !lagging(r)).collect();
        isr.extend(joining);
        isr.sort();
        let mut current = self.isr.clone();
        current.sort();
        (isr != current).then_some(IsrProposal {
            leader_epoch: self.epoch,
            partition_epoch: self.partition_epoch,
            isr,
        })
    }

    /// Marks `proposal` as sent: no other change until it is committed or fails.
    pub fn proposed(&mut self, proposal: &IsrProposal) {
        debug_assert!(self.pending.is_none());
        self.pending = Some(proposal.isr.clone());
    }

    /// The proposal was committed (and applied) or refused: the next check
    /// decides again from the committed ISR.
    pub fn proposal_settled(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_secs(30);

    fn nodes(ids: &[i32]) -> Vec<NodeId> {
        ids.iter().copied().map(NodeId).collect()
    }

    fn leader(isr: &[i32]) -> LeaderState {
        LeaderState::new(
            NodeId(1),
            Members {
                epoch: LeaderEpoch(4),
                replicas: &nodes(&[1, 2, 3]),
                isr: &nodes(isr),
                partition_epoch: 7,
            },
            Offset(100),
            Offset(90),
            Instant::now(),
        )
    }

    #[test]
    fn the_high_watermark_is_the_lowest_isr_log_end_and_never_goes_back() {
        let mut state = leader(&[1, 2, 3]);
        let now = Instant::now();
        assert_eq!(state.high_watermark_bound(), Some(Offset(90)));
        state.on_fetch(NodeId(2), Offset(100), Offset(100), now);
        assert_eq!(state.high_watermark_bound(), Some(Offset(90)), "3 unknown");
        state.on_fetch(NodeId(3), Offset(95), Offset(100), now);
        assert_eq!(state.high_watermark_bound(), Some(Offset(95)));
        state.on_fetch(NodeId(3), Offset(80), Offset(100), now);
        assert_eq!(state.high_watermark_bound(), Some(Offset(95)));
        let mut alone = leader(&[1]);
        assert_eq!(alone.high_watermark_bound(), None);
        assert!(!alone.on_fetch(NodeId(9), Offset(1), Offset(100), now));
    }

    #[test]
    fn a_lagging_follower_leaves_and_a_caught_up_one_joins() {
        let mut state = leader(&[1, 2, 3]);
        let start = Instant::now();
        state.on_fetch(NodeId(2), Offset(100), Offset(100), start);
        state.on_fetch(NodeId(3), Offset(100), Offset(100), start);
        assert_eq!(state.change_due(Offset(100), start + LAG, LAG), None);
        let later = start + LAG + Duration::from_secs(1);
        state.on_fetch(NodeId(2), Offset(120), Offset(120), later);
        let shrink = state.change_due(Offset(100), later, LAG).unwrap();
        assert_eq!(shrink.isr, nodes(&[1, 2]));
        assert_eq!(
            (shrink.leader_epoch, shrink.partition_epoch),
            (LeaderEpoch(4), 7)
        );
        state.proposed(&shrink);
        assert_eq!(
            state.change_due(Offset(100), later, LAG),
            None,
            "one at a time"
        );
        state.update(Members {
            epoch: LeaderEpoch(4),
            replicas: &nodes(&[1, 2, 3]),
            isr: &nodes(&[1, 2]),
            partition_epoch: 8,
        });
        assert_eq!(state.high_watermark_bound(), Some(Offset(120)));
        state.on_fetch(NodeId(3), Offset(110), Offset(120), later);
        assert_eq!(
            state.change_due(Offset(120), later, LAG),
            None,
            "below the HW"
        );
        state.on_fetch(NodeId(3), Offset(120), Offset(120), later);
        let expand = state.change_due(Offset(120), later, LAG).unwrap();
        assert_eq!(expand.isr, nodes(&[1, 2, 3]));
        state.proposed(&expand);
        state.on_fetch(NodeId(2), Offset(130), Offset(130), later);
        assert_eq!(
            state.high_watermark_bound(),
            Some(Offset(120)),
            "a member being added already holds the high watermark back"
        );
        state.proposal_settled();
        assert!(state.change_due(Offset(120), later, LAG).is_some());
    }

    #[test]
    fn a_follower_joins_only_past_the_start_of_the_epoch() {
        let mut state = leader(&[1]);
        let now = Instant::now();
        state.on_fetch(NodeId(2), Offset(95), Offset(100), now);
        assert_eq!(state.change_due(Offset(90), now, LAG), None);
        state.on_fetch(NodeId(2), Offset(100), Offset(100), now);
        assert_eq!(
            state.change_due(Offset(90), now, LAG).map(|p| p.isr),
            Some(nodes(&[1, 2]))
        );
    }

    #[test]
    fn a_follower_fetching_the_previous_log_end_counts_as_caught_up_then() {
        let mut state = leader(&[1, 2]);
        let start = Instant::now();
        state.on_fetch(NodeId(2), Offset(100), Offset(100), start);
        let next = start + LAG;
        state.on_fetch(NodeId(2), Offset(100), Offset(150), next);
        let after = next + Duration::from_secs(5);
        state.on_fetch(NodeId(2), Offset(150), Offset(200), after);
        assert_eq!(
            state.change_due(Offset(100), next + LAG, LAG),
            None,
            "caught up with the end of its previous fetch"
        );
    }
}
