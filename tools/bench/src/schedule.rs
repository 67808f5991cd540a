//! When each record is due, and latency measured from that moment: the
//! arithmetic that keeps fixed-rate runs free of coordinated omission.
//!
//! A producer that falls behind (a stalled broker, a full client queue) sends
//! the records it owes late. Measuring their latency from the late send would
//! hide the stall: the generator "coordinates" with the system under test and
//! omits exactly the slow moments. Measured from the time the schedule said the
//! record was due, every record waiting behind a stall carries its share of it,
//! as a real client with a real arrival rate would see.
//!
//! Times are microseconds on the run's [`Clock`]. Pure functions, no I/O.

use std::time::Instant;

/// Microseconds since the start of the run, shared by every thread of the run
/// (records carry these times from producer to consumer, both in this process).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    pub fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }
}

/// How one producer paces its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the client takes them: a record is due when it is sent, so
    /// latency is measured from the send (there is no schedule to fall behind).
    Max,
    /// `rate` records per second from `start_us`: record `i` is due at
    /// `start_us + i / rate` seconds.
    Fixed { start_us: u64, rate: u64 },
}

impl Pace {
    /// `rate` records/s from `start_us`; 0 means [`Pace::Max`].
    pub fn new(start_us: u64, rate: u64) -> Pace {
        if rate == 0 {
            Pace::Max
        } else {
            Pace::Fixed { start_us, rate }
        }
    }

    /// When record `index` is due, if it were sent at `now_us`.
    pub fn due_us(self, index: u64, now_us: u64) -> u64 {
        match self {
            Pace::Max => now_us,
            Pace::Fixed { start_us, rate } => {
                // u128: index * 1e6 overflows u64 after 1.8e13 records.
                start_us + (u128::from(index) * 1_000_000 / u128::from(rate)) as u64
            }
        }
    }

    /// How many records are due before `end_us` (none for [`Pace::Max`]): a
    /// producer that sent fewer had fallen behind its schedule.
    pub fn due_before(self, end_us: u64) -> Option<u64> {
        match self {
            Pace::Max => None,
            Pace::Fixed { start_us, rate } => {
                // Record i is due before the end iff i * 1e6 / rate < end - start,
                // that is iff i < (end - start) * rate / 1e6, rounded up.
                let span = u128::from(end_us.saturating_sub(start_us));
                Some((span * u128::from(rate)).div_ceil(1_000_000) as u64)
            }
        }
    }
}

/// The latency of a record due at `due_us` and completed (acknowledged or
/// consumed) at `done_us`: from the due time, never from the actual send.
pub fn latency_us(due_us: u64, done_us: u64) -> u64 {
    done_us.saturating_sub(due_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_pace_spaces_records_evenly_from_the_start() {
        let pace = Pace::new(1_000, 1_000);
        assert_eq!(pace.due_us(0, 0), 1_000);
        assert_eq!(pace.due_us(1, 0), 2_000);
        assert_eq!(pace.due_us(1_000, 0), 1_001_000);
        // Uneven divisions do not drift: record 3 of 3/s is due after exactly 1 s.
        let pace = Pace::new(0, 3);
        assert_eq!(
            [0, 1, 2, 3].map(|i| pace.due_us(i, 0)),
            [0, 333_333, 666_666, 1_000_000]
        );
        // The sender's clock plays no part in a fixed schedule.
        assert_eq!(pace.due_us(3, 42_000_000), 1_000_000);
    }

    #[test]
    fn records_due_before_the_end_are_counted_exactly() {
        let pace = Pace::new(0, 3);
        assert_eq!(pace.due_before(0), Some(0));
        assert_eq!(pace.due_before(1), Some(1));
        assert_eq!(
            pace.due_before(1_000_000),
            Some(3),
            "record 3 is due at the end"
        );
        assert_eq!(pace.due_before(1_000_001), Some(4));
        for end in [0, 1, 333_333, 333_334, 999_999, 1_000_000, 5_000_001] {
            let count = pace.due_before(end).unwrap();
            assert!(count == 0 || pace.due_us(count - 1, 0) < end);
            assert!(pace.due_us(count, 0) >= end);
        }
        assert_eq!(
            Pace::new(500, 1_000).due_before(100),
            Some(0),
            "ends before it starts"
        );
        assert_eq!(Pace::Max.due_before(1_000), None);
    }

    #[test]
    fn max_pace_is_due_when_sent() {
        assert_eq!(Pace::new(5, 0), Pace::Max);
        assert_eq!(Pace::Max.due_us(17, 123), 123);
    }

    #[test]
    fn huge_indexes_do_not_overflow() {
        let pace = Pace::new(0, 1);
        assert_eq!(pace.due_us(1 << 40, 0), (1u64 << 40) * 1_000_000);
    }

    #[test]
    fn latency_never_goes_negative() {
        assert_eq!(latency_us(100, 350), 250);
        assert_eq!(latency_us(350, 100), 0);
    }

    /// The classic example: 1,000 records/s for 10 s, each acknowledged 0.1 ms
    /// after it is sent, except that the system stalls for 1 s at t = 5 s and a
    /// synchronous sender waits it out. Measured from the actual send, only one
    /// record of 10,000 looks slow and p99 stays at 0.1 ms; measured from the
    /// schedule, the ~1,000 records due during the stall (and the ones sent
    /// while the sender catches up) are slow too.
    #[test]
    fn a_stall_shows_in_latencies_measured_from_the_schedule() {
        let pace = Pace::new(0, 1_000);
        let stall_at = 5_000_000;
        let stall = 1_000_000;
        let mut now = 0;
        let mut from_send = Vec::new();
        let mut from_due = Vec::new();
        for index in 0..10_000 {
            let due = pace.due_us(index, now);
            let sent = now.max(due);
            let service = if sent >= stall_at && sent < stall_at + 1_000 {
                stall
            } else {
                100
            };
            let acked = sent + service;
            from_send.push(latency_us(sent, acked));
            from_due.push(latency_us(due, acked));
            now = acked; // synchronous: the next send waits for this ack
        }
        let p99 = |values: &mut Vec<u64>| {
            values.sort_unstable();
            values[values.len() * 99 / 100]
        };
        assert_eq!(
            p99(&mut from_send),
            100,
            "the naive measurement hides the stall"
        );
        assert!(
            p99(&mut from_due) > 500_000,
            "the corrected p99 shows it: {}",
            p99(&mut from_due)
        );
        let slow = from_due.iter().filter(|&&l| l > 1_000).count();
        assert!(
            (1_000..=1_200).contains(&slow),
            "{slow} records waited out the stall"
        );
    }
}
