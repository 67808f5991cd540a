//! Recently written bytes of the active segment, kept in memory to serve tail reads
//! without a disk read. Holds the very buffers the group commit wrote (no copy),
//! bounded by a byte budget, oldest evicted first.

use std::collections::VecDeque;
use std::rc::Rc;

use glommio::io::DmaBuffer;

use crate::storage::read::ReadChunk;
use crate::storage::write_buffer::PendingWrite;

#[derive(Clone)]
struct CachedWrite {
    buf: Rc<DmaBuffer>,
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
        self.bytes += write.buf.len();
        self.writes.push_back(CachedWrite {
            buf: Rc::clone(&write.buf),
            buf_start: write.start,
            from: write.new_from,
            end: write.end,
        });
        while self.bytes > self.budget && self.writes.len() > 1 {
            let evicted = self.writes.pop_front().expect("more than one cached write");
            self.bytes -= evicted.buf.len();
        }
    }

    pub fn clear(&mut self) {
        self.writes.clear();
        self.bytes = 0;
    }

    pub fn snapshot(&self) -> TailSnapshot {
        TailSnapshot {
            writes: self.writes.iter().cloned().collect(),
        }
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
