//! Zero-fills the active segment ahead of its writes, in the background.
//!
//! Writing into blocks a file already has (and that an earlier fdatasync made
//! durable) means the fdatasync after each group commit only flushes data; writing
//! past them makes every fdatasync commit an ext4 journal transaction for the new
//! size and extents. A background task writes zeros a step ahead and syncs them, off
//! the acknowledgement path.
//!
//! What it costs is bounded per partition and per shard:
//! - the step grows with the partition's write rate ([`FillPace`]): it starts at
//!   [`MIN_STEP`] and doubles while each step is used up within [`GROW_WITHIN`], up to
//!   `zero_fill_step_bytes`, so an idle partition keeps one small step ahead and a
//!   busy one about a second of its writes;
//! - all logs of a shard share one budget of zero bytes written but not yet synced
//!   ([`FillBudget`]); a fill that cannot get at least a minimum step of it is
//!   skipped, and the next data write asks again.
//!
//! The zeros come from a few buffers per shard (one per chunk length), shared by
//! every fill. Data writes never wait for budget or for a fill's fdatasync. A fill writes in
//! chunks and never starts a chunk below the data (the writer announces its end
//! first), so a data write waits at most for the one zero chunk in flight that it
//! overlaps.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::{DmaBuffer, DmaFile};

use crate::storage::error::{LogError, io};
use crate::storage::wake_list::WakeList;
use crate::storage::write_buffer::{BLOCK, align_down};

/// Bytes of zeros per write.
const FILL_CHUNK: u64 = 128 << 10;
/// The first step of a segment that starts without a pace, and the smallest step.
pub const MIN_STEP: u64 = 64 << 10;
/// A step used up within this long after its fill started is followed by a step
/// twice as large.
pub const GROW_WITHIN: Duration = Duration::from_secs(1);
/// A step that lasted longer than this is followed by one half as large.
pub const SHRINK_AFTER: Duration = Duration::from_secs(8);
/// Zero bytes written but not yet synced, per shard: two full default steps.
pub const SHARD_BUDGET: u64 = 32 << 20;

/// How far ahead of its data one partition fills: a step that follows the
/// partition's write rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillPace {
    step: u64,
    min: u64,
    max: u64,
    last_start: Option<Instant>,
}

impl FillPace {
    /// A pace starting at `start`, never leaving `[MIN_STEP, max]` (`max` itself
    /// when it is smaller). 0 turns filling off.
    pub fn new(start: u64, max: u64) -> FillPace {
        let min = MIN_STEP.min(max);
        FillPace {
            step: align_down(start.clamp(min, max)),
            min,
            max,
            last_start: None,
        }
    }

    pub fn is_off(&self) -> bool {
        self.max == 0
    }

    /// The current step: a fill is due when less than half of it is left ahead.
    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn min(&self) -> u64 {
        self.min
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The step of a fill due at `now`: doubled if the previous step was used up
    /// within [`GROW_WITHIN`], halved if it lasted longer than [`SHRINK_AFTER`].
    pub fn next_step(&self, now: Instant) -> u64 {
        let Some(last_start) = self.last_start else {
            return self.step;
        };
        let lasted = now.saturating_duration_since(last_start);
        if lasted < GROW_WITHIN {
            (self.step * 2).min(self.max)
        } else if lasted > SHRINK_AFTER {
            align_down(self.step / 2).max(self.min)
        } else {
            self.step
        }
    }

    /// Records that a fill of `step` bytes started at `now`.
    pub fn started(&mut self, step: u64, now: Instant) {
        self.step = step;
        self.last_start = Some(now);
    }
}

/// The zero bytes a shard may have written but not yet synced, shared by every
/// log on the shard (one shard is one thread).
#[derive(Debug)]
pub struct FillBudget {
    limit: u64,
    in_flight: Cell<u64>,
}

thread_local! {
    static SHARD: Rc<FillBudget> = FillBudget::new(SHARD_BUDGET);
    /// Buffers of zeros by length in blocks, shared by every fill of the shard:
    /// allocating and clearing one per fill left the freed pages resident.
    static ZEROS: RefCell<Vec<Option<Rc<DmaBuffer>>>> =
        RefCell::new(vec![None; (FILL_CHUNK / BLOCK) as usize + 1]);
}

/// A shared buffer of `len` zeros (a whole number of blocks, at most a chunk).
fn zeros(file: &DmaFile, len: u64) -> Rc<DmaBuffer> {
    debug_assert!(len.is_multiple_of(BLOCK) && len <= FILL_CHUNK);
    ZEROS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let slot = &mut cache[(len / BLOCK) as usize];
        Rc::clone(slot.get_or_insert_with(|| {
            let mut zeros = file.alloc_dma_buffer(len as usize);
            zeros.as_bytes_mut().fill(0);
            Rc::new(zeros)
        }))
    })
}

impl FillBudget {
    pub fn new(limit: u64) -> Rc<FillBudget> {
        Rc::new(FillBudget {
            limit,
            in_flight: Cell::new(0),
        })
    }

    /// The budget of the current thread's shard.
    pub fn shard() -> Rc<FillBudget> {
        SHARD.with(Rc::clone)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Zero bytes granted and not yet released.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.get()
    }

    /// Grants up to `want` bytes (whole blocks), at least `min`; `None` when less
    /// than `min` is left.
    pub fn try_take(self: &Rc<Self>, want: u64, min: u64) -> Option<FillGrant> {
        let left = self.limit.saturating_sub(self.in_flight.get());
        let bytes = align_down(want.min(left));
        if bytes == 0 || bytes < min {
            return None;
        }
        self.in_flight.set(self.in_flight.get() + bytes);
        Some(FillGrant {
            budget: Rc::clone(self),
            bytes,
        })
    }
}

/// Budget held by one fill until its zeros are synced; released on drop.
#[derive(Debug)]
pub struct FillGrant {
    budget: Rc<FillBudget>,
    bytes: u64,
}

impl FillGrant {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for FillGrant {
    fn drop(&mut self) {
        let in_flight = &self.budget.in_flight;
        debug_assert!(in_flight.get() >= self.bytes);
        in_flight.set(in_flight.get() - self.bytes);
    }
}

struct FillState {
    /// Bytes of the file whose blocks exist and whose allocation is synced.
    filled_to: u64,
    /// Block-aligned end of the data the writer has written or is writing: a fill
    /// never writes below it.
    data_end: u64,
    /// The zero write in flight; a data write overlapping it waits for it.
    chunk_in_flight: Option<(u64, u64)>,
    /// A fill task is running (writing or syncing).
    filling: bool,
    /// Set after a failed fill (the segment then grows with its data writes) and
    /// when the segment stops being active.
    stopped: bool,
    pace: FillPace,
}

/// The zero-filler of one segment; clones share it.
#[derive(Clone)]
pub struct ZeroFiller {
    state: Rc<RefCell<FillState>>,
    changed: Rc<WakeList>,
    file: Rc<DmaFile>,
    budget: Rc<FillBudget>,
    limit: u64,
}

/// How a fill ended.
enum FillEnd {
    Synced,
    Stopped,
}

impl ZeroFiller {
    /// `filled_to`: block-aligned end of the file's existing blocks; `limit`: never
    /// fill past this.
    pub fn new(
        file: Rc<DmaFile>,
        filled_to: u64,
        pace: FillPace,
        limit: u64,
        budget: Rc<FillBudget>,
    ) -> ZeroFiller {
        ZeroFiller {
            state: Rc::new(RefCell::new(FillState {
                filled_to,
                data_end: filled_to,
                chunk_in_flight: None,
                filling: false,
                stopped: pace.is_off(),
                pace,
            })),
            changed: Rc::new(WakeList::default()),
            file,
            budget,
            limit,
        }
    }

    /// The pace, for the next segment to start from.
    pub fn pace(&self) -> FillPace {
        self.state.borrow().pace
    }

    /// Before data is written up to `end` (block-aligned): keeps fills above it and
    /// waits for a zero write in flight below it.
    pub async fn before_write(&self, end: u64) {
        {
            let mut state = self.state.borrow_mut();
            state.data_end = state.data_end.max(end);
        }
        const MAX_WAITS: usize = 1 << 20;
        for _ in 0..MAX_WAITS {
            let blocked = self
                .state
                .borrow()
                .chunk_in_flight
                .is_some_and(|(from, _)| from < end);
            if !blocked {
                return;
            }
            self.changed.wait().await;
        }
    }

    /// Stops filling and waits for the fill in flight to end (before the file is
    /// truncated).
    pub async fn stop(&self) {
        self.state.borrow_mut().stopped = true;
        const MAX_WAITS: usize = 1 << 20;
        for _ in 0..MAX_WAITS {
            if !self.state.borrow().filling {
                return;
            }
            self.changed.wait().await;
        }
    }

    /// After data was written up to `data_end` (block-aligned), starts the next fill
    /// when less than half a step of zeroed space is left ahead of the data and the
    /// shard's budget has room for it.
    pub fn maybe_start(&self, data_end: u64) {
        let (from, to, grant) = {
            let mut state = self.state.borrow_mut();
            state.data_end = state.data_end.max(data_end);
            if state.stopped || state.filling {
                return;
            }
            let from = state.filled_to.max(state.data_end);
            if from - state.data_end >= state.pace.step() / 2 || from >= self.limit {
                return;
            }
            let now = Instant::now();
            let step = state.pace.next_step(now);
            let room = self.limit - from;
            let Some(grant) = self
                .budget
                .try_take(step.min(room), state.pace.min().min(room))
            else {
                return;
            };
            state.pace.started(step, now);
            state.filling = true;
            (from, from + grant.bytes(), grant)
        };
        let filler = self.clone();
        glommio::spawn_local(async move {
            let outcome = filler.fill(from, to).await;
            drop(grant);
            {
                let mut state = filler.state.borrow_mut();
                state.filling = false;
                state.chunk_in_flight = None;
                match outcome {
                    Ok(FillEnd::Synced) => state.filled_to = state.filled_to.max(to),
                    Ok(FillEnd::Stopped) => {}
                    Err(error) => {
                        tracing::warn!(%error, "zero-filling a segment failed; it grows with its writes instead");
                        state.stopped = true;
                    }
                }
            }
            filler.changed.wake_all();
        })
        .detach();
    }

    /// The next chunk to write at or after `position`, above the data; `None` when
    /// the fill is done or stopped.
    fn next_chunk(&self, position: u64, to: u64) -> Option<(u64, u64)> {
        let mut state = self.state.borrow_mut();
        if state.stopped {
            return None;
        }
        let start = position.max(state.data_end);
        if start >= to {
            return None;
        }
        let chunk = (start, (start + FILL_CHUNK).min(to));
        state.chunk_in_flight = Some(chunk);
        Some(chunk)
    }

    /// Writes zeros over `[from, to)` one chunk at a time (a data write waits for
    /// the chunk it overlaps, so chunks keep that wait short), then syncs.
    async fn fill(&self, from: u64, to: u64) -> Result<FillEnd, LogError> {
        let mut position = from;
        while let Some((start, end)) = self.next_chunk(position, to) {
            let len = (end - start) as usize;
            let written = self
                .file
                .write_rc_at(zeros(&self.file, end - start), start)
                .await;
            self.state.borrow_mut().chunk_in_flight = None;
            self.changed.wake_all();
            let written = written.map_err(io)?;
            if written != len {
                return Err(LogError::Io(std::io::Error::other(format!(
                    "short zero-fill write at {start}: {written} of {len} bytes"
                ))));
            }
            position = end;
        }
        if self.state.borrow().stopped {
            return Ok(FillEnd::Stopped);
        }
        self.file.fdatasync().await.map_err(io)?;
        Ok(FillEnd::Synced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_support::{new_file, run};

    const MAX: u64 = 16 << 20;

    #[test]
    fn the_pace_starts_small_and_doubles_while_steps_go_fast() {
        let mut pace = FillPace::new(0, MAX);
        assert_eq!(pace.step(), MIN_STEP);
        let start = Instant::now();
        assert_eq!(
            pace.next_step(start),
            MIN_STEP,
            "the first fill is a minimum step"
        );
        pace.started(MIN_STEP, start);
        let mut now = start;
        let mut steps = Vec::new();
        for _ in 0..10 {
            now += Duration::from_millis(100);
            let step = pace.next_step(now);
            pace.started(step, now);
            steps.push(step >> 10);
        }
        assert_eq!(
            steps,
            [128, 256, 512, 1024, 2048, 4096, 8192, 16384, 16384, 16384]
        );
    }

    #[test]
    fn the_pace_holds_at_a_moderate_rate_and_shrinks_when_idle() {
        let mut pace = FillPace::new(1 << 20, MAX);
        let start = Instant::now();
        pace.started(1 << 20, start);
        let steady = start + Duration::from_secs(3);
        assert_eq!(pace.next_step(steady), 1 << 20);
        pace.started(1 << 20, steady);
        let idle = steady + Duration::from_secs(60);
        assert_eq!(pace.next_step(idle), 512 << 10);
        let mut pace = FillPace::new(MIN_STEP, MAX);
        pace.started(MIN_STEP, start);
        assert_eq!(
            pace.next_step(idle),
            MIN_STEP,
            "never below the minimum step"
        );
    }

    #[test]
    fn the_pace_respects_a_small_maximum_and_off() {
        let mut pace = FillPace::new(0, 8192);
        assert_eq!((pace.step(), pace.min()), (8192, 8192));
        let now = Instant::now();
        pace.started(8192, now);
        assert_eq!(pace.next_step(now), 8192);
        assert!(FillPace::new(MIN_STEP, 0).is_off());
        assert_eq!(FillPace::new(3 << 20, MAX).step(), 3 << 20);
        assert_eq!(FillPace::new(64 << 20, MAX).step(), MAX);
    }

    #[test]
    fn the_budget_grants_what_is_left_and_takes_it_back_on_drop() {
        let budget = FillBudget::new(1 << 20);
        let big = budget.try_take(768 << 10, MIN_STEP).unwrap();
        assert_eq!(big.bytes(), 768 << 10);
        let rest = budget.try_take(1 << 20, MIN_STEP).unwrap();
        assert_eq!(rest.bytes(), 256 << 10, "a partial grant of what is left");
        assert_eq!(budget.in_flight(), 1 << 20);
        assert!(budget.try_take(MIN_STEP, MIN_STEP).is_none());
        drop(big);
        assert_eq!(budget.in_flight(), 256 << 10);
        let small = budget.try_take(5000, BLOCK).unwrap();
        assert_eq!(small.bytes(), 4096, "grants whole blocks");
        drop((rest, small));
        assert_eq!(budget.in_flight(), 0);
        let tight = FillBudget::new(MIN_STEP - BLOCK);
        assert!(
            tight.try_take(MIN_STEP, MIN_STEP).is_none(),
            "less than the minimum is refused"
        );
    }

    async fn settle(filler: &ZeroFiller) {
        for _ in 0..1000 {
            if !filler.state.borrow().filling {
                return;
            }
            filler.changed.wait().await;
        }
    }

    #[test]
    fn fills_one_step_ahead_within_the_budget_and_releases_it_once_synced() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let file = Rc::new(new_file(dir.path()).await);
            let budget = FillBudget::new(MIN_STEP);
            let filler = ZeroFiller::new(
                Rc::clone(&file),
                0,
                FillPace::new(0, MAX),
                1 << 30,
                Rc::clone(&budget),
            );
            filler.before_write(BLOCK).await;
            filler.maybe_start(BLOCK);
            assert_eq!(budget.in_flight(), MIN_STEP);
            let other = ZeroFiller::new(
                Rc::clone(&file),
                0,
                FillPace::new(0, MAX),
                1 << 30,
                Rc::clone(&budget),
            );
            other.maybe_start(BLOCK);
            assert!(
                !other.state.borrow().filling,
                "no budget left: the fill is skipped"
            );
            settle(&filler).await;
            assert_eq!(budget.in_flight(), 0);
            assert_eq!(filler.state.borrow().filled_to, BLOCK + MIN_STEP);
            assert_eq!(file.file_size().await.unwrap(), BLOCK + MIN_STEP);
            filler.maybe_start(2 * BLOCK);
            assert!(
                !filler.state.borrow().filling,
                "more than half a step is still ahead"
            );
            file.close_rc().await.unwrap();
        });
    }

    #[test]
    fn a_fill_never_writes_below_the_data() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let file = Rc::new(new_file(dir.path()).await);
            let budget = FillBudget::new(MAX);
            let filler = ZeroFiller::new(
                Rc::clone(&file),
                0,
                FillPace::new(1 << 20, MAX),
                1 << 30,
                budget,
            );
            filler.maybe_start(0);
            // The data overtakes the fill: the writer announces its end, waits for the
            // zero chunk it overlaps, and writes; the fill skips past it.
            let data_end = 512 << 10;
            filler.before_write(data_end).await;
            let mut data = file.alloc_dma_buffer(data_end as usize);
            data.as_bytes_mut().fill(7);
            file.write_at(data, 0).await.unwrap();
            settle(&filler).await;
            let read = file.read_at(0, data_end as usize).await.unwrap();
            assert!(read.iter().all(|&b| b == 7), "zeros over the data");
            assert_eq!(filler.state.borrow().filled_to, 1 << 20);
            filler.stop().await;
            filler.maybe_start(1 << 20);
            assert!(
                !filler.state.borrow().filling,
                "a stopped filler stays stopped"
            );
            file.close_rc().await.unwrap();
        });
    }
}
