//! What a record's value holds: a fixed header the consumers read back (which
//! run, topic and producer wrote it, its sequence number and when it was due),
//! then filler bytes that no codec can shrink.

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// Bytes of [`Header`] at the start of every record value.
pub const HEADER_LEN: usize = 32;

/// The first [`HEADER_LEN`] bytes of every record value, little-endian:
/// run id (8), due time in µs on the run's clock (8), topic index (4),
/// producer id (4), sequence number within the producer (8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Random per run: records of other runs in a reused topic are ignored.
    pub run_id: u64,
    pub due_us: u64,
    pub topic: u32,
    pub producer: u32,
    /// 0, 1, 2, .. per producer, in send order.
    pub seq: u64,
}

impl Header {
    /// Writes the header into the start of `value` (at least [`HEADER_LEN`] bytes).
    pub fn write(&self, value: &mut [u8]) {
        value[0..8].copy_from_slice(&self.run_id.to_le_bytes());
        value[8..16].copy_from_slice(&self.due_us.to_le_bytes());
        value[16..20].copy_from_slice(&self.topic.to_le_bytes());
        value[20..24].copy_from_slice(&self.producer.to_le_bytes());
        value[24..32].copy_from_slice(&self.seq.to_le_bytes());
    }

    /// The header at the start of `value`, if it is long enough.
    pub fn read(value: &[u8]) -> Option<Header> {
        let header: &[u8; HEADER_LEN] = value.get(..HEADER_LEN)?.try_into().ok()?;
        let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
        Some(Header {
            run_id: u64_at(0),
            due_us: u64_at(8),
            topic: u32_at(16),
            producer: u32_at(20),
            seq: u64_at(24),
        })
    }
}

/// Random bytes for record values, so compression ratios are those of
/// incompressible data rather than of a repeated pattern.
///
/// Generating fresh random bytes for every record would cost a good part of a
/// core at a few hundred MB/s, so the filler walks through a random pool
/// instead. The pool is at least twice the producer's `batch.size`: codecs
/// compress one batch at a time, and no batch can hold the same pool bytes
/// twice.
pub struct Filler {
    pool: Vec<u8>,
    next: usize,
}

impl Filler {
    pub fn new(seed: u64, message_size: usize, batch_size: usize) -> Filler {
        let len = 2 * batch_size.max(512 << 10) + message_size;
        let mut pool = vec![0; len];
        SmallRng::seed_from_u64(seed).fill_bytes(&mut pool);
        Filler { pool, next: 0 }
    }

    /// Fills `value` with the next bytes of the pool (wrapping around).
    pub fn fill(&mut self, value: &mut [u8]) {
        if self.next + value.len() > self.pool.len() {
            self.next = 0;
        }
        value.copy_from_slice(&self.pool[self.next..self.next + value.len()]);
        self.next += value.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_as_written() {
        let header = Header {
            run_id: 0x0123_4567_89ab_cdef,
            due_us: 42_000_123,
            topic: 3,
            producer: 7,
            seq: u64::MAX - 1,
        };
        let mut value = vec![0xee; 100];
        header.write(&mut value);
        assert_eq!(Header::read(&value), Some(header));
        assert_eq!(&value[HEADER_LEN..], &[0xee; 100 - HEADER_LEN][..]);
        assert_eq!(Header::read(&value[..HEADER_LEN - 1]), None);
    }

    #[test]
    fn filler_bytes_do_not_repeat_within_a_batch() {
        let batch_size = 1 << 20;
        let mut filler = Filler::new(1, 1000, batch_size);
        let mut seen = std::collections::HashSet::new();
        let mut value = [0u8; 1000];
        for _ in 0..batch_size / 1000 {
            filler.fill(&mut value);
            assert!(seen.insert(value), "a value repeated within one batch");
        }
        // The pool wraps instead of running off its end.
        for _ in 0..10 * batch_size / 1000 {
            filler.fill(&mut value);
        }
    }
}
