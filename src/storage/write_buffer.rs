//! The 4 KiB-aligned buffer appends are copied into before a group-commit write.
//!
//! The buffer starts at a block-aligned file position. Its front holds the partial
//! tail block that is already on disk (it must be rewritten whole, O_DIRECT writes
//! whole blocks); the rest is pending bytes. Taking the buffer for a write leaves a
//! fresh buffer that starts with the new partial tail block.

use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile};

/// O_DIRECT block size used for every write and position.
pub const BLOCK: u64 = 4096;
/// Smallest buffer: the partial tail block and a few small batches. A partition
/// that is idle or slow holds no more than this between writes (10,000 of them
/// held 64 KiB each before, 640 MB).
const MIN_CAPACITY: usize = 16 << 10;
const MAX_REUSED_CAPACITY: usize = 4 << 20;

pub fn align_down(value: u64) -> u64 {
    value & !(BLOCK - 1)
}

pub fn align_up(value: u64) -> u64 {
    align_down(value + BLOCK - 1)
}

/// One block-aligned write taken out of the buffer.
pub struct PendingWrite {
    /// Whole blocks; bytes past `end` are zero.
    pub buf: Rc<DmaBuffer>,
    /// Bytes allocated for `buf`, which is trimmed to whole blocks but keeps its
    /// allocation: what holding it costs.
    pub allocated: usize,
    /// File position of `buf[0]`, block-aligned.
    pub start: u64,
    /// First byte of this write that was not on disk before.
    pub new_from: u64,
    /// Logical end of the data after this write.
    pub end: u64,
}

pub struct WriteBuffer {
    buf: DmaBuffer,
    start: u64,
    len: usize,
    on_disk: usize,
}

impl WriteBuffer {
    /// A buffer continuing a file whose data ends at `end`; `tail` holds the bytes
    /// from `align_down(end)` to `end`.
    pub fn new(file: &DmaFile, end: u64, tail: &[u8]) -> WriteBuffer {
        let start = align_down(end);
        assert_eq!(
            tail.len() as u64,
            end - start,
            "tail block must cover align_down(end)..end"
        );
        let mut buf = file.alloc_dma_buffer(MIN_CAPACITY);
        buf.as_bytes_mut()[..tail.len()].copy_from_slice(tail);
        WriteBuffer {
            buf,
            start,
            len: tail.len(),
            on_disk: tail.len(),
        }
    }

    /// Logical end of the data, pending bytes included.
    pub fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    /// Logical end of the data already on disk.
    pub fn on_disk_end(&self) -> u64 {
        self.start + self.on_disk as u64
    }

    pub fn pending(&self) -> usize {
        self.len - self.on_disk
    }

    /// Copies `bytes` in at the end; returns the file position they will land at
    /// and the copy, which the caller may patch until the buffer is taken.
    pub fn push(&mut self, file: &DmaFile, bytes: &[u8]) -> (u64, &mut [u8]) {
        let position = self.end();
        let needed = self.len + bytes.len();
        if needed > self.buf.len() {
            let capacity = align_up(needed.max(self.buf.len() * 2) as u64) as usize;
            let mut grown = file.alloc_dma_buffer(capacity);
            grown.as_bytes_mut()[..self.len].copy_from_slice(&self.buf.as_bytes()[..self.len]);
            self.buf = grown;
        }
        let at = self.len;
        self.len = needed;
        let copy = &mut self.buf.as_bytes_mut()[at..needed];
        copy.copy_from_slice(bytes);
        (position, copy)
    }

    /// The bytes in `[from, end())`, for reading back what is pending.
    pub fn bytes_from(&self, from: u64) -> &[u8] {
        debug_assert!(from >= self.start && from <= self.end());
        &self.buf.as_bytes()[(from - self.start) as usize..self.len]
    }

    /// Takes every pending byte for one write, leaving a buffer that starts with
    /// the new tail block. `None` when nothing is pending.
    pub fn take(&mut self, file: &DmaFile) -> Option<PendingWrite> {
        if self.pending() == 0 {
            return None;
        }
        let end = self.end();
        let next_start = align_down(end);
        let tail_from = (next_start - self.start) as usize;
        // Grows at once (twice this write leaves room for the same rate to come
        // again: growing copies the pending bytes) and shrinks by halves, so a
        // busy partition keeps its size and one that went idle gives it back.
        let wanted = (self.len * 2).max(self.buf.len() / 2);
        let capacity = align_up(wanted.clamp(MIN_CAPACITY, MAX_REUSED_CAPACITY) as u64);
        let mut next = file.alloc_dma_buffer(capacity as usize);
        let tail_len = self.len - tail_from;
        next.as_bytes_mut()[..tail_len].copy_from_slice(&self.buf.as_bytes()[tail_from..self.len]);

        let mut taken = std::mem::replace(&mut self.buf, next);
        let allocated = taken.len();
        let whole_blocks = align_up(self.len as u64) as usize;
        taken.as_bytes_mut()[self.len..whole_blocks].fill(0);
        taken.trim_to_size(whole_blocks);
        let write = PendingWrite {
            buf: Rc::new(taken),
            allocated,
            start: self.start,
            new_from: self.on_disk_end(),
            end,
        };
        self.start = next_start;
        self.len = tail_len;
        self.on_disk = tail_len;
        Some(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_down(4095), 0);
        assert_eq!(align_down(4096), 4096);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_up(0), 0);
    }

    #[test]
    fn take_keeps_the_tail_block() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let dir = tempfile::tempdir().unwrap();
                let file = DmaFile::create(dir.path().join("f")).await.unwrap();
                let mut buffer = WriteBuffer::new(&file, 0, &[]);
                assert_eq!(buffer.push(&file, &[1u8; 5000]).0, 0);
                assert_eq!(buffer.push(&file, &[2u8; 100]).0, 5000);
                let write = buffer.take(&file).unwrap();
                assert_eq!((write.start, write.new_from, write.end), (0, 0, 5100));
                assert_eq!(write.buf.len(), 8192);
                assert!(write.buf.as_bytes()[5100..].iter().all(|&b| b == 0));
                assert_eq!(buffer.pending(), 0);
                assert_eq!(buffer.end(), 5100);
                assert_eq!(buffer.bytes_from(4096).len(), 1004);
                assert!(buffer.take(&file).is_none());
                buffer.push(&file, &[3u8; 10]);
                let write = buffer.take(&file).unwrap();
                assert_eq!((write.start, write.new_from, write.end), (4096, 5100, 5110));
                assert_eq!(write.buf.as_bytes()[1003], 2);
                assert_eq!(write.buf.as_bytes()[1004], 3);
                file.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
