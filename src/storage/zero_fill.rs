//! Zero-fills the active segment ahead of its writes, in the background.
//!
//! Writing into blocks a file already has (and that an earlier fdatasync made
//! durable) means the fdatasync after each group commit only flushes data; writing
//! past them makes every fdatasync commit an ext4 journal transaction for the new
//! size and extents. A background task writes zeros a step ahead and syncs them, off
//! the acknowledgement path. A data write never overlaps a fill in flight: it waits
//! for the fill to finish first.

use std::cell::RefCell;
use std::rc::Rc;

use glommio::io::DmaFile;

use crate::storage::error::{LogError, io};
use crate::storage::wake_list::WakeList;

#[derive(Default)]
struct FillState {
    /// Bytes of the file known to be written and synced (block-aligned).
    filled_to: u64,
    in_flight: Option<(u64, u64)>,
    /// Set after a failed fill: the segment just grows with its data writes.
    disabled: bool,
}

/// Bytes of zeros per write.
const FILL_CHUNK: u64 = 128 << 10;

/// The zero-filler of one segment; clones share it.
#[derive(Clone)]
pub struct ZeroFiller {
    state: Rc<RefCell<FillState>>,
    changed: Rc<WakeList>,
    file: Rc<DmaFile>,
    step: u64,
    limit: u64,
}

impl ZeroFiller {
    /// `filled_to`: block-aligned end of the file's existing blocks; `step`: bytes
    /// per fill (0 turns filling off); `limit`: never fill past this.
    pub fn new(file: Rc<DmaFile>, filled_to: u64, step: u64, limit: u64) -> ZeroFiller {
        ZeroFiller {
            state: Rc::new(RefCell::new(FillState {
                filled_to,
                disabled: step == 0,
                ..FillState::default()
            })),
            changed: Rc::new(WakeList::default()),
            file,
            step,
            limit,
        }
    }

    /// Waits until no fill in flight starts below `end`, so data up to `end` can
    /// be written without racing a fill.
    pub async fn wait_clear_of(&self, end: u64) {
        const MAX_WAITS: usize = 1 << 20;
        for _ in 0..MAX_WAITS {
            let blocked = self
                .state
                .borrow()
                .in_flight
                .is_some_and(|(from, _)| from < end);
            if !blocked {
                return;
            }
            self.changed.wait().await;
        }
    }

    /// Waits for any fill in flight to finish (before truncating the file).
    pub async fn wait_idle(&self) {
        self.wait_clear_of(u64::MAX).await;
    }

    /// After data was written up to `data_end` (block-aligned), starts the next fill
    /// when less than half a step of zeroed space is left ahead of the data.
    pub fn maybe_start(&self, data_end: u64) {
        let (from, to) = {
            let mut state = self.state.borrow_mut();
            if state.disabled || state.in_flight.is_some() {
                return;
            }
            let from = state.filled_to.max(data_end);
            if from - data_end >= self.step / 2 {
                return;
            }
            let to = (from + self.step).min(self.limit);
            if to <= from {
                return;
            }
            state.in_flight = Some((from, to));
            (from, to)
        };
        let filler = self.clone();
        glommio::spawn_local(async move {
            let outcome = filler.fill(from, to).await;
            {
                let mut state = filler.state.borrow_mut();
                state.in_flight = None;
                match outcome {
                    Ok(()) => state.filled_to = state.filled_to.max(to),
                    Err(error) => {
                        tracing::warn!(%error, "zero-filling a segment failed; it grows with its writes instead");
                        state.disabled = true;
                    }
                }
            }
            filler.changed.wake_all();
        })
        .detach();
    }

    fn zeros(&self, len: usize) -> Rc<glommio::io::DmaBuffer> {
        let mut zeros = self.file.alloc_dma_buffer(len);
        zeros.as_bytes_mut().fill(0);
        Rc::new(zeros)
    }

    /// Writes zeros over `[from, to)` one chunk at a time (an fdatasync of the data
    /// waits for the write in flight, so chunks keep that wait short), then syncs.
    async fn fill(&self, from: u64, to: u64) -> Result<(), LogError> {
        let full_chunk = self.zeros((to - from).min(FILL_CHUNK) as usize);
        let mut position = from;
        while position < to {
            let len = (to - position).min(FILL_CHUNK) as usize;
            let zeros = if len == full_chunk.len() {
                Rc::clone(&full_chunk)
            } else {
                self.zeros(len)
            };
            let written = self.file.write_rc_at(zeros, position).await.map_err(io)?;
            if written != len {
                return Err(LogError::Io(std::io::Error::other(format!(
                    "short zero-fill write at {position}: {written} of {len} bytes"
                ))));
            }
            position += len as u64;
        }
        self.file.fdatasync().await.map_err(io)
    }
}
