//! The driver: owns raft-rs's `RawNode`, ticks it, feeds it the inbox, and handles
//! each `Ready` in the order raft-rs documents — send `messages()`, install a
//! snapshot, apply committed entries, append and fsync entries, persist the hard
//! state, send `persisted_messages()`, `advance`, then the `LightReady` likewise —
//! so nothing is acknowledged or voted before it is durable.

use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future::or;
use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use raft::eraftpb::{Entry, EntryType, Message, MessageType};
use raft::{RawNode, SnapshotStatus, StateRole};

use super::storage::DiskLog;
use super::transport::Peers;
use super::{
    Input, ProposeError, QuorumConfig, QuorumError, Shared, StateMachine, node_id, raft_id,
};

/// Proposals waiting for their entry to be applied; more are refused as `Dropped`.
const MAX_PENDING: usize = 1024;
/// Largest append message (raft-rs batches entries up to this size).
const MAX_MSG_BYTES: u64 = 1 << 20;
/// Append messages in flight to one follower.
const MAX_INFLIGHT_MSGS: usize = 256;
/// Readies handled while a single voter makes itself leader at start-up.
const MAX_STARTUP_READIES: usize = 64;

struct Pending {
    index: u64,
    term: u64,
    reply: LocalSender<Result<u64, ProposeError>>,
}

pub struct Driver {
    raw: RawNode<DiskLog>,
    shared: Rc<Shared>,
    state: Rc<dyn StateMachine>,
    peers: Peers,
    pending: VecDeque<Pending>,
    applied: u64,
    snapshot_after: u64,
    tick: Duration,
    dir: std::path::PathBuf,
}

impl Driver {
    /// Opens the log, restores the snapshot into `state` and re-applies the committed
    /// entries after it, so the state is current before Raft starts.
    pub fn open(
        config: &QuorumConfig,
        state: Rc<dyn StateMachine>,
        shared: Rc<Shared>,
        peers: Peers,
    ) -> Result<Driver, QuorumError> {
        let storage_err = |source| QuorumError::Storage {
            dir: config.dir.clone(),
            source,
        };
        let voters = config.voters.iter().map(|(id, _)| raft_id(*id)).collect();
        let log = DiskLog::open(&config.dir, voters).map_err(storage_err)?;
        let snap = log.snapshot_ref();
        let snap_index = snap.get_metadata().index;
        if snap_index > 0 {
            state.restore(snap_index, snap.get_data());
        }
        let commit = log.hard_state().commit;
        for e in log.slice(snap_index + 1, commit + 1) {
            apply_one(&*state, e);
        }
        let raft_config = raft::Config {
            id: raft_id(config.node_id),
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied: commit,
            max_size_per_msg: MAX_MSG_BYTES,
            max_inflight_msgs: MAX_INFLIGHT_MSGS,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        raft_config.validate()?;
        let raw = RawNode::new(&raft_config, log, &super::logger::logger())?;
        shared.applied.advance(commit);
        Ok(Driver {
            raw,
            shared,
            state,
            peers,
            pending: VecDeque::new(),
            applied: commit,
            snapshot_after: config.snapshot_after_entries,
            tick: config.tick,
            dir: config.dir.clone(),
        })
    }

    /// A quorum of one elects itself at once and applies its no-op entry, so the
    /// single-node broker is ready as soon as `start` returns.
    pub async fn become_single_leader(&mut self) -> io::Result<()> {
        self.raw
            .campaign()
            .map_err(|e| io::Error::other(e.to_string()))?;
        for _ in 0..MAX_STARTUP_READIES {
            self.on_ready().await?;
            let last = self.raw.raft.raft_log.last_index();
            if self.raw.raft.state == StateRole::Leader && self.applied >= last {
                return Ok(());
            }
        }
        Err(io::Error::other("a single voter did not become leader"))
    }

    pub async fn run(mut self, inbox: LocalReceiver<Input>) {
        enum Event {
            Input(Input),
            Tick,
            Stop,
        }
        let shared = self.shared.clone();
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let event = or(
                async {
                    shared.stop.wait().await;
                    Event::Stop
                },
                or(
                    async { inbox.recv().await.map_or(Event::Stop, Event::Input) },
                    async {
                        glommio::timer::sleep(wait).await;
                        Event::Tick
                    },
                ),
            )
            .await;
            match event {
                Event::Stop => break,
                Event::Tick => {
                    self.raw.tick();
                    next_tick += self.tick;
                    // After a long stall, resume ticking from now rather than
                    // firing a burst of ticks that would start a needless election.
                    if next_tick < Instant::now() {
                        next_tick = Instant::now() + self.tick;
                    }
                }
                Event::Input(input) => self.on_input(input),
            }
            if let Err(e) = self.on_ready().await {
                self.shared.fatal.set(format!(
                    "the metadata log in {} could not be written: {e}",
                    self.dir.display()
                ));
                break;
            }
        }
        if let Err(e) = self.raw.store().sync().await {
            tracing::warn!(error = %e, "flushing the metadata log at stop failed");
        }
        self.shared.is_leader.set(false);
        self.fail_pending(ProposeError::Stopped);
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Raft(msg) => {
                if let Err(e) = self.raw.step(msg) {
                    tracing::debug!(error = %e, "raft message ignored");
                }
            }
            Input::Propose { data, reply } => self.propose(data, reply),
            Input::Unreachable(to) => self.raw.report_unreachable(to),
            Input::SnapshotSent { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
        }
    }

    fn propose(&mut self, data: Vec<u8>, reply: LocalSender<Result<u64, ProposeError>>) {
        // A follower's raft-rs would forward the proposal to the leader, where we could
        // not follow it: only the leader accepts proposals here.
        if self.raw.raft.state != StateRole::Leader {
            let leader = self.shared.leader.get();
            let _ = reply.try_send(Err(ProposeError::NotLeader { leader }));
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            let _ = reply.try_send(Err(ProposeError::Dropped));
            return;
        }
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => self.pending.push_back(Pending {
                index: self.raw.raft.raft_log.last_index(),
                term: self.raw.raft.term,
                reply,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "metadata proposal dropped");
                let _ = reply.try_send(Err(ProposeError::Dropped));
            }
        }
    }

    async fn on_ready(&mut self) -> io::Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            let index = snap.get_metadata().index;
            self.raw.mut_store().install_snapshot(snap.clone()).await?;
            self.state.restore(index, snap.get_data());
            self.applied = index;
            self.shared.applied.advance(index);
        }
        self.apply(ready.take_committed_entries());
        if !ready.entries().is_empty() {
            let store = self.raw.mut_store();
            store.append(ready.entries())?;
            store.sync().await?;
        }
        if let Some(hs) = ready.hs() {
            self.raw.mut_store().set_hard_state(hs.clone()).await?;
        }
        self.send(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit).await?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries());
        self.raw.advance_apply();
        self.update_role();
        self.maybe_snapshot().await
    }

    fn send(&mut self, msgs: Vec<Message>) {
        for msg in msgs {
            if self.peers.send(&msg) {
                continue;
            }
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                self.raw.report_snapshot(msg.to, SnapshotStatus::Failure);
            } else {
                self.raw.report_unreachable(msg.to);
            }
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for e in entries {
            apply_one(&*self.state, &e);
            self.applied = e.index;
            self.shared.applied.advance(e.index);
            while let Some(p) = self.pending.front() {
                if p.index > e.index {
                    break;
                }
                let p = self.pending.pop_front().expect("front exists");
                let answer = if p.index == e.index && p.term == e.term {
                    Ok(e.index)
                } else {
                    Err(ProposeError::Dropped)
                };
                let _ = p.reply.try_send(answer);
            }
        }
    }

    fn update_role(&mut self) {
        let leader_id = self.raw.raft.leader_id;
        self.shared
            .leader
            .set((leader_id != raft::INVALID_ID).then(|| node_id(leader_id)));
        let is_leader = self.raw.raft.state == StateRole::Leader;
        self.shared.is_leader.set(is_leader);
        if !is_leader {
            self.fail_pending(ProposeError::Dropped);
        }
    }

    fn fail_pending(&mut self, err: ProposeError) {
        for p in self.pending.drain(..) {
            let _ = p.reply.try_send(Err(err.clone()));
        }
    }

    async fn maybe_snapshot(&mut self) -> io::Result<()> {
        let snap_index = self.raw.store().snapshot_ref().get_metadata().index;
        if self.applied < snap_index + self.snapshot_after {
            return Ok(());
        }
        let data = self.state.snapshot();
        self.raw.mut_store().compact(self.applied, data).await?;
        tracing::info!(
            index = self.applied,
            "metadata snapshot taken, log compacted"
        );
        Ok(())
    }
}

fn apply_one(state: &dyn StateMachine, e: &Entry) {
    if e.get_entry_type() == EntryType::EntryNormal && !e.get_data().is_empty() {
        state.apply(e.index, e.get_data());
    }
}
