//! The verifier: every record a producer had acknowledged is consumed exactly
//! once (once per topic's consumer group, or once overall in assign mode), and
//! each producer's records arrive in send order within every partition.
//!
//! Each consumer thread keeps an [`Observed`] of its own (no locking per
//! record); after the run drains they are merged and compared with what the
//! producers sent ([`Produced`]) into a [`Verdict`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde::Serialize;

use crate::payload::Header;

/// Sequence numbers at or above this are counted as corrupt instead of growing
/// a bitmap without bound: 2^32 records per producer is over an hour at a
/// million records per second, and the bitmap for it 512 MiB.
pub const MAX_SEQ: u64 = 1 << 32;

/// A set of sequence numbers below [`MAX_SEQ`], one bit each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`; false if it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        assert!(seq < MAX_SEQ, "sequence {seq} out of range");
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let fresh = self.words[word] & (1 << bit) == 0;
        self.words[word] |= 1 << bit;
        self.len += u64::from(fresh);
        fresh
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Members below `end`.
    pub fn count_below(&self, end: u64) -> u64 {
        self.len - self.count_from(end)
    }

    /// Members at or above `start`.
    pub fn count_from(&self, start: u64) -> u64 {
        let first = (start / 64) as usize;
        let Some(partial) = self.words.get(first) else {
            return 0;
        };
        let head = u64::from((partial >> (start % 64)).count_ones());
        head + self.words[first + 1..]
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum::<u64>()
    }

    /// Adds every member of `other`; returns how many were already here.
    fn absorb(&mut self, other: &SeqSet) -> u64 {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        let mut common = 0;
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            common += u64::from((*mine & theirs).count_ones());
            *mine |= theirs;
        }
        self.len += other.len - common;
        common
    }
}

/// One partition's records from one producer.
type Stream = (u32, i32, u32); // topic, partition, producer

/// What consumers saw.
#[derive(Debug, Default)]
pub struct Observed {
    /// Sequence numbers consumed, per producer.
    seen: HashMap<u32, SeqSet>,
    /// The highest sequence number consumed so far, per stream.
    last: HashMap<Stream, u64>,
    duplicated: u64,
    reordered: u64,
    misrouted: u64,
    corrupt: u64,
    /// Streams that more than one consumer read (a rebalance during the run):
    /// their order can no longer be checked.
    moved_streams: u64,
}

impl Observed {
    /// Takes note of one record of this run, read from `partition` of the topic
    /// with index `topic`.
    pub fn record(&mut self, topic: u32, partition: i32, header: &Header) {
        if header.topic != topic {
            self.misrouted += 1;
            return;
        }
        if header.seq >= MAX_SEQ {
            self.corrupt += 1;
            return;
        }
        let fresh = self
            .seen
            .entry(header.producer)
            .or_default()
            .insert(header.seq);
        let in_order = match self.last.entry((topic, partition, header.producer)) {
            Entry::Vacant(entry) => {
                entry.insert(header.seq);
                true
            }
            Entry::Occupied(mut entry) => {
                let later = header.seq > *entry.get();
                if later {
                    entry.insert(header.seq);
                }
                later
            }
        };
        if !fresh {
            self.duplicated += 1;
        } else if !in_order {
            self.reordered += 1;
        }
    }

    /// Records this consumer has seen, distinct.
    pub fn distinct(&self) -> u64 {
        self.seen.values().map(SeqSet::len).sum()
    }

    /// All consumers' observations as one: a record two consumers both saw is a
    /// duplicate.
    pub fn merge(all: impl IntoIterator<Item = Observed>) -> Observed {
        let mut merged = Observed::default();
        for part in all {
            for (producer, seen) in &part.seen {
                merged.duplicated += merged.seen.entry(*producer).or_default().absorb(seen);
            }
            for (stream, last) in part.last {
                match merged.last.entry(stream) {
                    Entry::Vacant(entry) => {
                        entry.insert(last);
                    }
                    Entry::Occupied(_) => merged.moved_streams += 1,
                }
            }
            merged.duplicated += part.duplicated;
            merged.reordered += part.reordered;
            merged.misrouted += part.misrouted;
            merged.corrupt += part.corrupt;
            merged.moved_streams += part.moved_streams;
        }
        merged
    }
}

/// What one producer sent.
#[derive(Clone, Debug, Default)]
pub struct Produced {
    pub producer: u32,
    /// Sequence numbers 0..sent were handed to the client.
    pub sent: u64,
    /// Of those, the ones whose delivery failed: not expected, and not
    /// an error if they show up anyway (a timed-out request may have landed).
    pub failed: SeqSet,
}

/// The outcome of verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// False when there were no consumers to check with.
    pub checked: bool,
    pub passed: bool,
    /// Acknowledged records, which must each be consumed once.
    pub expected: u64,
    /// Distinct records of this run consumed.
    pub consumed: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Records read from a topic other than the one they were sent to.
    pub misrouted: u64,
    /// Records whose header names a producer or sequence number never sent.
    pub unexpected: u64,
    pub moved_streams: u64,
    /// The consumers were still behind when the drain timeout ended the run: the
    /// records not consumed may only be late, not lost.
    pub drain_timed_out: bool,
}

impl Verdict {
    /// The verdict of a run without consumers.
    pub fn unchecked() -> Verdict {
        Verdict {
            passed: true,
            ..Verdict::default()
        }
    }

    pub fn new(observed: &Observed, produced: &[Produced]) -> Verdict {
        let empty = SeqSet::default();
        let mut verdict = Verdict {
            checked: true,
            consumed: observed.distinct(),
            duplicated: observed.duplicated,
            reordered: observed.reordered,
            misrouted: observed.misrouted,
            unexpected: observed.corrupt,
            moved_streams: observed.moved_streams,
            ..Verdict::default()
        };
        for p in produced {
            let seen = observed.seen.get(&p.producer).unwrap_or(&empty);
            let failed = p.failed.count_below(p.sent);
            verdict.expected += p.sent - failed;
            // Below `sent`: neither consumed nor failed = lost.
            let mut covered = seen.clone();
            covered.absorb(&p.failed);
            verdict.lost += p.sent - covered.count_below(p.sent);
            verdict.unexpected += seen.count_from(p.sent);
        }
        for (producer, seen) in &observed.seen {
            if !produced.iter().any(|p| p.producer == *producer) {
                verdict.unexpected += seen.len();
            }
        }
        verdict.passed = verdict.lost == 0
            && verdict.duplicated == 0
            && verdict.reordered == 0
            && verdict.misrouted == 0
            && verdict.unexpected == 0
            && verdict.moved_streams == 0;
        verdict
    }

    /// What went wrong, one phrase per kind of failure.
    pub fn failures(&self) -> Vec<String> {
        let lost = if self.drain_timed_out {
            "not consumed before the drain timeout (consumers fell behind; raise --drain-timeout)"
        } else {
            "lost"
        };
        [
            (self.lost, lost),
            (self.duplicated, "duplicated"),
            (self.reordered, "out of order"),
            (self.misrouted, "in the wrong topic"),
            (self.unexpected, "never sent (corrupt)"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} records {what}"))
        .chain((self.moved_streams > 0).then(|| {
            format!(
                "{} partition streams moved between consumers (a rebalance): order unverifiable",
                self.moved_streams
            )
        }))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer: u32, seq: u64) -> Header {
        Header {
            run_id: 1,
            due_us: 0,
            topic: 0,
            producer,
            seq,
        }
    }

    fn produced(producer: u32, sent: u64) -> Produced {
        Produced {
            producer,
            sent,
            failed: SeqSet::default(),
        }
    }

    /// Producer 0 sends 0..n round-robin over `partitions`, consumed in order.
    fn clean(n: u64, partitions: i32) -> Observed {
        let mut observed = Observed::default();
        for seq in 0..n {
            observed.record(0, (seq % partitions as u64) as i32, &header(0, seq));
        }
        observed
    }

    #[test]
    fn seq_sets_count_ranges_and_merge() {
        let mut a = SeqSet::default();
        for seq in [0, 5, 63, 64, 200] {
            assert!(a.insert(seq));
        }
        assert!(!a.insert(5));
        assert_eq!(a.len(), 5);
        assert_eq!(a.count_from(63) - a.count_from(64), 1, "63 is in");
        assert_eq!(a.count_from(62) - a.count_from(63), 0, "62 is not");
        assert_eq!(a.count_below(64), 3);
        assert_eq!(a.count_from(64), 2);
        assert_eq!(a.count_from(201), 0);
        assert_eq!(a.count_from(100_000), 0);
        let mut b = SeqSet::default();
        b.insert(5);
        b.insert(1000);
        assert_eq!(a.absorb(&b), 1);
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn a_clean_run_passes() {
        let verdict = Verdict::new(&clean(1000, 4), &[produced(0, 1000)]);
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!((verdict.expected, verdict.consumed), (1000, 1000));
        assert!(verdict.failures().is_empty());
    }

    #[test]
    fn loss_is_detected_in_the_middle_and_at_the_tail() {
        let mut observed = Observed::default();
        for seq in (0..100).filter(|s| *s != 40) {
            observed.record(0, 0, &header(0, seq));
        }
        let verdict = Verdict::new(&observed, &[produced(0, 103)]);
        assert!(!verdict.passed);
        assert_eq!(verdict.lost, 4, "seq 40 and the last three");
        assert_eq!(verdict.failures(), ["4 records lost"]);
        let late = Verdict {
            drain_timed_out: true,
            ..verdict
        };
        assert!(!late.passed);
        assert!(late.failures()[0].starts_with("4 records not consumed before the drain timeout"));
    }

    #[test]
    fn failed_deliveries_are_not_expected_and_may_show_up() {
        let mut observed = Observed::default();
        for seq in [0, 1, 3] {
            observed.record(0, 0, &header(0, seq));
        }
        let mut failed = SeqSet::default();
        failed.insert(2);
        failed.insert(3);
        let verdict = Verdict::new(
            &observed,
            &[Produced {
                producer: 0,
                sent: 4,
                failed,
            }],
        );
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.expected, 2);
    }

    #[test]
    fn duplicates_are_detected_within_and_across_consumers() {
        let mut observed = clean(10, 1);
        observed.record(0, 0, &header(0, 7));
        let verdict = Verdict::new(&observed, &[produced(0, 10)]);
        assert_eq!((verdict.duplicated, verdict.reordered), (1, 0));
        assert!(!verdict.passed);

        // Two consumers of different partitions both got record 3 (it is
        // also out of place in partition 1).
        let mut first = Observed::default();
        let mut second = Observed::default();
        for seq in 0..6 {
            first.record(0, 0, &header(0, seq));
        }
        second.record(0, 1, &header(0, 3));
        let merged = Observed::merge([first, second]);
        let verdict = Verdict::new(&merged, &[produced(0, 6)]);
        assert_eq!(verdict.duplicated, 1);
        assert_eq!(verdict.moved_streams, 0);
    }

    #[test]
    fn reordering_within_a_partition_is_detected() {
        let mut observed = Observed::default();
        for seq in [0, 1, 3, 2, 4] {
            observed.record(0, 0, &header(0, seq));
        }
        let verdict = Verdict::new(&observed, &[produced(0, 5)]);
        assert_eq!(
            (verdict.reordered, verdict.lost, verdict.duplicated),
            (1, 0, 0)
        );
        assert_eq!(verdict.failures(), ["1 records out of order"]);
        // Interleaving across partitions is no reordering.
        let mut observed = Observed::default();
        for (partition, seq) in [(1, 1), (0, 0), (1, 3), (0, 2)] {
            observed.record(0, partition, &header(0, seq));
        }
        assert!(Verdict::new(&observed, &[produced(0, 4)]).passed);
    }

    #[test]
    fn wrong_topics_unknown_producers_and_moved_streams_fail() {
        let mut observed = clean(3, 1);
        observed.record(1, 0, &header(0, 1)); // header says topic 0
        observed.record(0, 0, &header(9, 0)); // no producer 9
        observed.record(0, 0, &header(0, 3)); // producer 0 sent 3
        observed.record(
            0,
            0,
            &Header {
                seq: MAX_SEQ,
                ..header(0, 0)
            },
        );
        let verdict = Verdict::new(&observed, &[produced(0, 3)]);
        assert_eq!((verdict.misrouted, verdict.unexpected), (1, 3));

        let mut a = Observed::default();
        let mut b = Observed::default();
        a.record(0, 0, &header(0, 0));
        b.record(0, 0, &header(0, 1));
        let verdict = Verdict::new(&Observed::merge([a, b]), &[produced(0, 2)]);
        assert_eq!(verdict.moved_streams, 1);
        assert!(!verdict.passed);
    }
}
