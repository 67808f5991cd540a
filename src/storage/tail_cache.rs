//! Recently written bytes of the active segment, kept in memory to serve tail reads
//! without a disk read. Holds the very buffers the group commit wrote (no copy),
//! bounded by a byte budget per segment and by one per shard, oldest evicted first.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use glommio::io::DmaBuffer;

use crate::storage::read::ReadChunk;
use crate::storage::write_buffer::PendingWrite;

/// What all tail caches of one shard may hold together. Past it, a cache keeps
/// only its newest write: with thousands of partitions, per-partition budgets
/// alone would add up to more memory than the machine has.
pub const SHARD_BUDGET: usize = 256 << 20;

thread_local! {
    /// Bytes held by every tail cache of this shard (thread).
    static SHARD_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// Bytes held by every tail cache of this shard.
pub fn shard_bytes() -> usize {
    SHARD_BYTES.with(Cell::get)
}

fn add_shard_bytes(bytes: usize) {
    SHARD_BYTES.with(|total| total.set(total.get() + bytes));
}

fn remove_shard_bytes(bytes: usize) {
    SHARD_BYTES.with(|total| {
        debug_assert!(total.get() >= bytes);
        total.set(total.get() - bytes);
    });
}

#[derive(Clone)]
struct CachedWrite {
    buf: Rc<DmaBuffer>,
    /// What holding `buf` costs (its allocation).
    allocated: usize,
    /// File position of `buf[0]`.
    buf_start: u64,
    /// The data range this write added: `[from, end)`.
    from: u64,
    end: u64,
}

impl CachedWrite {
    fn slice(&self, from: u64, to: u64) -> (usize, usize) {
        debug_assert!(from >= self.from && to <= self.end && from <= to);
        ((from - self.buf_start) as usize, (to - from) as usize)
    }
}

/// The cache of one segment.
pub struct TailCache {
    writes: VecDeque<CachedWrite>,
    bytes: usize,
    budget: usize,
}

/// A cheap copy of the cache taken before a read awaits, so appends can go on.
#[derive(Clone, Default)]
pub struct TailSnapshot {
    writes: Vec<CachedWrite>,
}

impl TailCache {
    pub fn new(budget: usize) -> TailCache {
        TailCache {
            writes: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Remembers a completed write. Writes must arrive in file order.
    pub fn insert(&mut self, write: &PendingWrite) {
        if self.budget == 0 {
            return;
        }
        if self
            .writes
            .back()
            .is_some_and(|last| last.end != write.new_from)
        {
            self.clear();
        }
        self.bytes += write.allocated;
        add_shard_bytes(write.allocated);
        self.writes.push_back(CachedWrite {
            buf: Rc::clone(&write.buf),
            allocated: write.allocated,
            buf_start: write.start,
            from: write.new_from,
            end: write.end,
        });
        while (self.bytes > self.budget || shard_bytes() > SHARD_BUDGET) && self.writes.len() > 1 {
            let evicted = self.writes.pop_front().expect("more than one cached write");
            self.bytes -= evicted.allocated;
            remove_shard_bytes(evicted.allocated);
        }
    }

    pub fn clear(&mut self) {
        self.writes.clear();
        remove_shard_bytes(self.bytes);
        self.bytes = 0;
    }

    pub fn snapshot(&self) -> TailSnapshot {
        TailSnapshot {
            writes: self.writes.iter().cloned().collect(),
        }
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.clear();
    }
}

impl TailSnapshot {
    fn first_index(&self, from: u64) -> Option<usize> {
        let first = self.writes.first()?;
        if from < first.from {
            return None;
        }
        let index = self.writes.partition_point(|w| w.end <= from);
        (index < self.writes.len()).then_some(index)
    }

    /// Memory chunks covering `[from, to)`, if the cache holds all of it.
    pub fn chunks(&self, from: u64, to: u64) -> Option<Vec<ReadChunk>> {
        let mut index = self.first_index(from)?;
        if self.writes.last()?.end < to {
            return None;
        }
        let mut chunks = Vec::new();
        let mut at = from;
        while at < to {
            let write = &self.writes[index];
            let until = write.end.min(to);
            let (offset, len) = write.slice(at, until);
            chunks.push(ReadChunk::Memory {
                buf: Rc::clone(&write.buf),
                offset,
                len,
            });
            at = until;
            index += 1;
        }
        Some(chunks)
    }

    /// Copies `[from, to)` out of the cache, if it holds all of it.
    pub fn copy(&self, from: u64, to: u64, out: &mut Vec<u8>) -> bool {
        let Some(chunks) = self.chunks(from, to) else {
            return false;
        };
        for chunk in &chunks {
            if let ReadChunk::Memory { buf, offset, len } = chunk {
                out.extend_from_slice(&buf.as_bytes()[*offset..*offset + *len]);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write of `len` bytes at `at`, in a buffer of `allocated` bytes.
    fn write(at: u64, len: u64, allocated: usize) -> PendingWrite {
        let mut buf = glommio::allocate_dma_buffer(allocated);
        buf.trim_to_size(4096);
        PendingWrite {
            buf: Rc::new(buf),
            allocated,
            start: at,
            new_from: at,
            end: at + len,
        }
    }

    #[test]
    fn a_cache_counts_what_its_buffers_hold_not_what_they_were_trimmed_to() {
        crate::storage::test_support::run(|| async {
            let mut cache = TailCache::new(256 << 10);
            for n in 0..8 {
                cache.insert(&write(n * 100, 100, 64 << 10));
            }
            assert_eq!(cache.bytes, 256 << 10, "four 64 KiB buffers fit the budget");
            assert_eq!(cache.writes.len(), 4);
            assert_eq!(shard_bytes(), 256 << 10);
            drop(cache);
            assert_eq!(shard_bytes(), 0, "a dropped cache gives its bytes back");
        });
    }

    #[test]
    fn past_the_shard_budget_each_cache_keeps_only_its_newest_write() {
        crate::storage::test_support::run(|| async {
            let big = SHARD_BUDGET / 2;
            let mut first = TailCache::new(usize::MAX);
            let mut second = TailCache::new(usize::MAX);
            first.insert(&write(0, 100, big));
            second.insert(&write(0, 100, big));
            assert_eq!(shard_bytes(), SHARD_BUDGET);
            first.insert(&write(100, 100, 4096));
            assert_eq!(
                first.writes.len(),
                1,
                "over the shard budget: the oldest went"
            );
            assert_eq!(shard_bytes(), big + 4096);
            let snapshot = first.snapshot();
            assert!(snapshot.chunks(100, 200).is_some());
            assert!(snapshot.chunks(0, 100).is_none());
            second.clear();
            assert_eq!(shard_bytes(), 4096);
        });
    }
}
