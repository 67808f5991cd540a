//! Shard-wide commit rounds (`group_commit = "shard"`): the partitions of a shard
//! with appends waiting are flushed in one round. Every member submits its write,
//! waits until every member's write is done, submits its fdatasync, waits until
//! every member's sync is done, and then acknowledges its appends, so a round's
//! writes reach io_uring together, then its syncs, and its appends are answered
//! together.
//!
//! Rounds run one at a time: while one is in flight, the partitions that become
//! ready join the next, which starts as soon as the one in flight is synced. A
//! member holds its log's flush lock for the whole round, so a log is in at most
//! one round, and rounds never wait on each other in a cycle.
//!
//! One set of rounds per shard thread; nothing here crosses threads.

use std::cell::RefCell;
use std::rc::Rc;

use crate::storage::wake_list::WakeList;

thread_local! {
    static ROUNDS: Rc<Rounds> = Rc::new(Rounds::default());
}

#[derive(Default)]
struct Rounds {
    state: RefCell<RoundState>,
    /// Woken when a round starts, when its last write is done, and when its last
    /// sync is done.
    changed: WakeList,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct RoundState {
    /// The round now taking members.
    gathering: u64,
    gathering_members: usize,
    /// The round whose writes and syncs are under way.
    flight: Option<Flight>,
    /// Rounds finished on this shard so far.
    completed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flight {
    round: u64,
    /// Members whose write is not done yet.
    writing: usize,
    /// Members whose sync is not done yet.
    syncing: usize,
}

/// What a member has done so far in its round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Joined,
    Started,
    Written,
    Synced,
}

impl RoundState {
    /// Starts the gathering round if none is in flight and it has members.
    fn try_start(&mut self) -> bool {
        if self.flight.is_some() || self.gathering_members == 0 {
            return false;
        }
        self.flight = Some(Flight {
            round: self.gathering,
            writing: self.gathering_members,
            syncing: self.gathering_members,
        });
        self.gathering += 1;
        self.gathering_members = 0;
        true
    }

    fn in_flight(&self, round: u64) -> Option<Flight> {
        self.flight.filter(|flight| flight.round == round)
    }

    /// A member of `round` is done with its write; true if it was the last.
    fn write_done(&mut self, round: u64) -> bool {
        let flight = self.flight.as_mut().expect("a member writes in flight");
        assert_eq!(flight.round, round, "a member writes in its own round");
        assert!(flight.writing > 0, "more writes done than members");
        flight.writing -= 1;
        flight.writing == 0
    }

    /// A member of `round` is done with its sync; true if the round is over.
    fn sync_done(&mut self, round: u64) -> bool {
        let flight = self.flight.as_mut().expect("a member syncs in flight");
        assert_eq!(flight.round, round, "a member syncs in its own round");
        assert!(flight.syncing > 0, "more syncs done than members");
        flight.syncing -= 1;
        if flight.syncing > 0 {
            return false;
        }
        assert_eq!(flight.writing, 0, "every write ends before the round does");
        self.flight = None;
        self.completed += 1;
        true
    }

    /// Takes a member out wherever it is, as if it had done what it still owed.
    fn leave(&mut self, round: u64, stage: Stage) -> bool {
        if self.in_flight(round).is_none() {
            // Still gathering: the round has not counted on this member yet.
            debug_assert_eq!(self.gathering, round);
            debug_assert!(stage <= Stage::Joined);
            self.gathering_members -= 1;
            return false;
        }
        let mut changed = false;
        if stage < Stage::Written {
            changed |= self.write_done(round);
        }
        if stage < Stage::Synced {
            changed |= self.sync_done(round);
        }
        changed
    }
}

/// A log's place in a commit round, from joining until its sync is done. Dropping
/// it early (an error, a cancelled flush) releases the round from waiting on it.
pub struct Member {
    rounds: Rc<Rounds>,
    round: u64,
    stage: Stage,
}

/// Rounds finished on this shard so far.
pub fn completed() -> u64 {
    ROUNDS.with(|rounds| rounds.state.borrow().completed)
}

/// Joins the round now gathering members.
pub fn join() -> Member {
    let rounds = ROUNDS.with(Rc::clone);
    let round = {
        let mut state = rounds.state.borrow_mut();
        state.gathering_members += 1;
        state.gathering
    };
    Member {
        rounds,
        round,
        stage: Stage::Joined,
    }
}

impl Member {
    /// Waits until this member's round is in flight: first lets every task that
    /// is ready now join it, then waits for the round before it to be synced.
    pub async fn start(&mut self) {
        debug_assert_eq!(self.stage, Stage::Joined);
        futures_lite::future::yield_now().await;
        loop {
            {
                let mut state = self.rounds.state.borrow_mut();
                if state.try_start() {
                    self.rounds.changed.wake_all();
                }
                if state.in_flight(self.round).is_some() {
                    break;
                }
            }
            self.rounds.changed.wait().await;
        }
        self.stage = Stage::Started;
    }

    /// This member's write is done (or it had none): waits for every member's.
    pub async fn written(&mut self) {
        debug_assert_eq!(self.stage, Stage::Started);
        self.stage = Stage::Written;
        if self.rounds.state.borrow_mut().write_done(self.round) {
            self.rounds.changed.wake_all();
        }
        loop {
            let writing = {
                let state = self.rounds.state.borrow();
                state
                    .in_flight(self.round)
                    .map_or(0, |flight| flight.writing)
            };
            if writing == 0 {
                return;
            }
            self.rounds.changed.wait().await;
        }
    }

    /// This member's sync is done (or it had none): waits for every member's.
    pub async fn synced(&mut self) {
        debug_assert_eq!(self.stage, Stage::Written);
        self.stage = Stage::Synced;
        if self.rounds.state.borrow_mut().sync_done(self.round) {
            self.rounds.changed.wake_all();
        }
        while self.rounds.state.borrow().in_flight(self.round).is_some() {
            self.rounds.changed.wait().await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if self.stage == Stage::Synced {
            return;
        }
        if self.rounds.state.borrow_mut().leave(self.round, self.stage) {
            self.rounds.changed.wake_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_round_starts_with_its_members_and_ends_with_the_last_sync() {
        let mut state = RoundState::default();
        assert!(!state.try_start(), "nothing to start without members");
        state.gathering_members = 3;
        assert!(state.try_start());
        assert_eq!(
            state.flight,
            Some(Flight {
                round: 0,
                writing: 3,
                syncing: 3
            })
        );
        state.gathering_members = 1;
        assert!(!state.try_start(), "one round at a time");
        assert!(!state.write_done(0));
        assert!(!state.write_done(0));
        assert!(state.write_done(0), "the last write");
        assert!(!state.sync_done(0));
        assert!(!state.sync_done(0));
        assert!(state.sync_done(0), "the last sync ends the round");
        assert_eq!(state.flight, None);
        assert!(state.try_start(), "the next round starts");
        assert_eq!(state.in_flight(1).map(|f| f.writing), Some(1));
    }

    #[test]
    fn a_member_leaving_owes_nothing_more() {
        let mut state = RoundState {
            gathering_members: 2,
            ..RoundState::default()
        };
        assert!(!state.leave(0, Stage::Joined), "left while gathering");
        assert_eq!(state.gathering_members, 1);
        assert!(state.try_start());
        assert!(
            state.leave(0, Stage::Started),
            "its write and sync were the last"
        );
        assert_eq!(state.flight, None);
    }

    fn run<F: std::future::Future<Output = ()> + 'static>(
        test: impl FnOnce() -> F + Send + 'static,
    ) {
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move { test().await })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn every_write_of_a_round_ends_before_any_sync_starts() {
        run(|| async {
            let log: Rc<RefCell<Vec<(usize, &str)>>> = Rc::default();
            let tasks: Vec<_> = (0..5)
                .map(|member| {
                    let log = Rc::clone(&log);
                    glommio::spawn_local(async move {
                        let mut round = join();
                        round.start().await;
                        // Members take different times to write.
                        for _ in 0..member {
                            futures_lite::future::yield_now().await;
                        }
                        log.borrow_mut().push((member, "written"));
                        round.written().await;
                        log.borrow_mut().push((member, "synced"));
                        round.synced().await;
                        log.borrow_mut().push((member, "acknowledged"));
                    })
                })
                .collect();
            for task in tasks {
                task.await;
            }
            let events: Vec<&str> = log.borrow().iter().map(|&(_, event)| event).collect();
            let expected: Vec<&str> = ["written", "synced", "acknowledged"]
                .iter()
                .flat_map(|&event| std::iter::repeat_n(event, 5))
                .collect();
            assert_eq!(events, expected, "{:?}", log.borrow());
        });
    }

    #[test]
    fn a_member_joining_during_a_round_waits_for_the_next_and_a_dropped_one_does_not_block() {
        run(|| async {
            let second_started = Rc::new(Cell::new(false));
            let mut first = join();
            first.start().await;
            let late = {
                let second_started = Rc::clone(&second_started);
                glommio::spawn_local(async move {
                    let mut round = join();
                    round.start().await;
                    second_started.set(true);
                    round.written().await;
                    round.synced().await;
                })
            };
            let abandoned = glommio::spawn_local(async {
                let mut round = join();
                round.start().await;
            });
            futures_lite::future::yield_now().await;
            futures_lite::future::yield_now().await;
            assert!(!second_started.get(), "the next round waits for this one");
            first.written().await;
            first.synced().await;
            abandoned.await;
            late.await;
            assert!(second_started.get());
            ROUNDS.with(|rounds| {
                let state = rounds.state.borrow();
                assert_eq!(state.flight, None);
                assert_eq!(state.gathering_members, 0);
            });
        });
    }
}
