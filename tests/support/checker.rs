//! A Jepsen-style checker for replicated partitions, in the manner of Jepsen's
//! Kafka workload: idempotent acks=all producers send sequenced records while a
//! test injects faults; afterwards every partition is read from its start to its
//! high watermark and the history is checked.
//!
//! Include it after the Kafka client harness:
//! `#[path = "support/kafka.rs"] mod kafka;`
//! `#[path = "support/checker.rs"] mod checker;`
//!
//! Each producer `p` sends, to each partition `q` in turn, the records
//! key `p{p}-q{q}`, value `p{p}-q{q}-s{seq}` with `seq` counting from 0 per
//! (producer, partition). Every acknowledgement (partition, offset) and every
//! failure is recorded. The check fails on:
//! - a lost record: acknowledged, never read;
//! - a moved record: acknowledged at one offset, read at another;
//! - a duplicated record: one value read at two offsets;
//! - a reordered record: for one producer in one partition, a sequence number
//!   not above the one read before it at a lower offset;
//! - an unknown record: a value no producer sent.
//!
//! A record whose send failed may or may not be in the log (a timed-out produce
//! is indeterminate), so failures are counted, never held against the broker.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::kafka::TestContext;

/// How long a producer's record may take to be acknowledged, retries included:
/// generous, so that a leader change is ridden out rather than reported.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long reading every partition back may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Records of each kind named in a failure message.
const SHOWN: usize = 20;
/// Pause between two attempts to learn a partition's high watermark.
const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// What the producers do.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Producer threads, each with its own idempotent producer.
    pub producers: usize,
    /// Partitions of the topic the producers write to, 0 to `partitions - 1`.
    pub partitions: i32,
    /// How long the producers send.
    pub duration: Duration,
    /// Records per second per producer, at most.
    pub rate: u32,
}

/// One record the producers sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sent {
    pub producer: usize,
    pub partition: i32,
    pub seq: u64,
}

impl Sent {
    pub fn key(&self) -> String {
        format!("p{}-q{}", self.producer, self.partition)
    }

    pub fn value(&self) -> String {
        format!("p{}-q{}-s{}", self.producer, self.partition, self.seq)
    }

    /// The record a value names, if it is one of the workload's values.
    pub fn parse(value: &str) -> Option<Sent> {
        let mut fields = value.split('-');
        let producer = fields.next()?.strip_prefix('p')?.parse().ok()?;
        let partition = fields.next()?.strip_prefix('q')?.parse().ok()?;
        let seq = fields.next()?.strip_prefix('s')?.parse().ok()?;
        fields.next().is_none().then_some(Sent {
            producer,
            partition,
            seq,
        })
    }
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value())
    }
}

/// Every outcome the producers saw.
#[derive(Debug, Default)]
pub struct History {
    /// Acknowledged records and the offset each was acknowledged at.
    pub acked: BTreeMap<Sent, i64>,
    /// Records whose send failed, with the error.
    pub failed: BTreeMap<Sent, String>,
}

/// Delivery callbacks of one producer write into the shared history.
struct Recorder {
    history: Arc<Mutex<History>>,
}

impl ClientContext for Recorder {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        TestContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TestContext.error(error, reason);
    }
}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        let mut history = self.history.lock().expect("history lock");
        match result {
            Ok(message) => {
                history.acked.insert(*sent, message.offset());
            }
            Err((error, _)) => {
                history.failed.insert(*sent, error.to_string());
            }
        }
    }
}

/// Producers at work; [`Running::finish`] waits for them and gives the history.
pub struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    history: Arc<Mutex<History>>,
    started: Instant,
}

impl Running {
    /// How many records have been acknowledged so far.
    pub fn acked(&self) -> usize {
        self.history.lock().expect("history lock").acked.len()
    }

    /// Waits until at least `more` further records are acknowledged (true) or
    /// `timeout` passes (false): proof that the cluster accepts writes now.
    pub fn wait_for_progress(&self, more: usize, timeout: Duration) -> bool {
        let target = self.acked() + more;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.acked() >= target {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Stops the producers now (even before the workload's duration) once each
    /// has every record it sent acknowledged or failed, and returns the history.
    pub fn finish(self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().expect("a producer thread panicked");
        }
        eprintln!(
            "checker: producers ran {:?}",
            self.started.elapsed().as_secs_f64()
        );
        std::mem::take(&mut *self.history.lock().expect("history lock"))
    }

    /// Whether the workload's duration has passed for the producers.
    pub fn done(&self) -> bool {
        self.threads.iter().all(|thread| thread.is_finished())
    }
}

/// A producer as the checker runs it: idempotent, acks=all, retrying for up to
/// [`MESSAGE_TIMEOUT`].
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        )
        .set("request.timeout.ms", "5000")
        .set("retry.backoff.ms", "100")
        .set("linger.ms", "5");
    config
}

/// Starts `workload.producers` producer threads against `topic` through
/// `bootstrap`; they stop after `workload.duration` or at [`Running::finish`].
pub fn start(bootstrap: &str, topic: &str, workload: &Workload) -> Running {
    assert!(workload.producers > 0 && workload.partitions > 0 && workload.rate > 0);
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(History::default()));
    let started = Instant::now();
    let threads = (0..workload.producers)
        .map(|producer| {
            let recorder = Recorder {
                history: Arc::clone(&history),
            };
            let client: ThreadedProducer<Recorder> = producer_config(bootstrap)
                .create_with_context(recorder)
                .expect("create a checker producer");
            let stop = Arc::clone(&stop);
            let history = Arc::clone(&history);
            let topic = topic.to_string();
            let workload = workload.clone();
            thread::Builder::new()
                .name(format!("checker-producer-{producer}"))
                .spawn(move || {
                    produce(&client, &topic, producer, &workload, &stop, &history);
                })
                .expect("spawn a producer thread")
        })
        .collect();
    Running {
        stop,
        threads,
        history,
        started,
    }
}

fn produce(
    client: &ThreadedProducer<Recorder>,
    topic: &str,
    producer: usize,
    workload: &Workload,
    stop: &AtomicBool,
    history: &Mutex<History>,
) {
    let interval = Duration::from_secs(1) / workload.rate;
    let end = Instant::now() + workload.duration;
    let mut next_seq = vec![0u64; usize::try_from(workload.partitions).expect("partitions")];
    let mut partition = 0;
    let mut next_send = Instant::now();
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        let sent = Sent {
            producer,
            partition,
            seq: next_seq[usize::try_from(partition).expect("partition")],
        };
        let (key, value) = (sent.key(), sent.value());
        let record = BaseRecord::with_opaque_to(topic, Box::new(sent))
            .partition(partition)
            .key(&key)
            .payload(&value);
        match client.send(record) {
            Ok(()) => {
                next_seq[usize::try_from(partition).expect("partition")] += 1;
                partition = (partition + 1) % workload.partitions;
            }
            // The local queue is full: let deliveries drain, then retry.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err((error, record)) => {
                history
                    .lock()
                    .expect("history lock")
                    .failed
                    .insert(*record.delivery_opaque, error.to_string());
                next_seq[usize::try_from(partition).expect("partition")] += 1;
            }
        }
        next_send += interval;
        let now = Instant::now();
        if next_send > now {
            thread::sleep(next_send - now);
        } else {
            next_send = now;
        }
    }
    let flushed = client.flush(MESSAGE_TIMEOUT + Duration::from_secs(10));
    assert!(
        flushed.is_ok(),
        "producer {producer}: records still undelivered {:?} after the message timeout: {flushed:?}",
        MESSAGE_TIMEOUT
    );
}

/// One record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
}

/// Reads partitions `0..partitions` of `topic` from their start to their high
/// watermark (read_uncommitted), as one consumer assigned every partition,
/// retrying while leaders move. Panics if that takes longer than
/// [`READ_TIMEOUT`].
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<Read> {
    let consumer: BaseConsumer<TestContext> = client_config(bootstrap)
        .set("group.id", "sluice-checker-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_uncommitted")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create the checker's consumer");
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let (low, high) = watermarks(&consumer, topic, partition, deadline);
        if high > low {
            ends.insert(partition, high);
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("assign a partition");
        }
    }
    consumer.assign(&assignment).expect("assign the partitions");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut reads = Vec::new();
    let mut errors = Vec::new();
    while ends
        .iter()
        .any(|(partition, end)| next.get(partition).copied().unwrap_or(0) < *end)
    {
        assert!(
            Instant::now() < deadline,
            "read partitions up to their high watermarks {ends:?} within {READ_TIMEOUT:?}, \
             got to {next:?}; errors: {errors:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            // A position read already (a fetch repeated after a leader change)
            // is the same record, not a duplicate.
            Some(Ok(message))
                if message.offset() < next.get(&message.partition()).copied().unwrap_or(0) => {}
            Some(Ok(message)) => {
                let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
                next.insert(message.partition(), message.offset() + 1);
                reads.push(Read {
                    partition: message.partition(),
                    offset: message.offset(),
                    value: value.into_owned(),
                });
            }
            Some(Err(error)) if errors.len() < SHOWN => errors.push(error.to_string()),
            Some(Err(_)) | None => {}
        }
    }
    reads.retain(|read| read.offset < ends[&read.partition]);
    reads
}

/// The low and high watermarks of one partition, asked of its leader until it
/// answers or `deadline` passes.
fn watermarks(
    consumer: &BaseConsumer<TestContext>,
    topic: &str,
    partition: i32,
    deadline: Instant,
) -> (i64, i64) {
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok(marks) => return marks,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the watermarks of {topic}/{partition} within {READ_TIMEOUT:?}: {error}"
                );
                thread::sleep(RETRY_INTERVAL);
            }
        }
    }
}

/// Where a record was read: (partition, offset).
pub type Position = (i32, i64);

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    pub acked: usize,
    pub failed: usize,
    pub read: usize,
    /// Records whose send failed but which were read anyway (indeterminate
    /// failures that in fact succeeded): allowed, counted for the record.
    pub failed_but_read: usize,
    /// Acknowledged, never read.
    pub lost: Vec<(Sent, i64)>,
    /// Acknowledged at one offset, read at others (and not at that one).
    pub moved: Vec<(Sent, i64, Vec<Position>)>,
    /// Read at more than one position.
    pub duplicated: Vec<(Sent, Vec<Position>)>,
    /// Read at a position after a record of the same producer and partition
    /// with an equal or higher sequence: (earlier, later) with their offsets.
    pub reordered: Vec<((Sent, i64), (Sent, i64))>,
    /// Values read that no producer sent, or in the wrong partition.
    pub unknown: Vec<Read>,
}

impl Report {
    pub fn valid(&self) -> bool {
        self.lost.is_empty()
            && self.moved.is_empty()
            && self.duplicated.is_empty()
            && self.reordered.is_empty()
            && self.unknown.is_empty()
    }

    /// Panics, naming the offending records, unless the history is valid.
    pub fn assert_valid(&self) {
        assert!(self.valid(), "the checker found anomalies:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "acked {}, failed {} ({} of them read anyway), read {}, lost {}, moved {}, \
             duplicated {}, reordered {}, unknown {}",
            self.acked,
            self.failed,
            self.failed_but_read,
            self.read,
            self.lost.len(),
            self.moved.len(),
            self.duplicated.len(),
            self.reordered.len(),
            self.unknown.len()
        )?;
        for (sent, offset) in self.lost.iter().take(SHOWN) {
            writeln!(f, "  lost: {sent} acked at offset {offset}, never read")?;
        }
        for (sent, offset, read_at) in self.moved.iter().take(SHOWN) {
            writeln!(
                f,
                "  moved: {sent} acked at offset {offset}, read at (partition, offset) {read_at:?}"
            )?;
        }
        for (sent, read_at) in self.duplicated.iter().take(SHOWN) {
            writeln!(
                f,
                "  duplicated: {sent} read at (partition, offset) {read_at:?}"
            )?;
        }
        for ((earlier, at), (later, later_at)) in self.reordered.iter().take(SHOWN) {
            writeln!(
                f,
                "  reordered: {later} at offset {later_at} follows {earlier} at offset {at}"
            )?;
        }
        for read in self.unknown.iter().take(SHOWN) {
            writeln!(
                f,
                "  unknown: {:?} at partition {} offset {}",
                read.value, read.partition, read.offset
            )?;
        }
        Ok(())
    }
}

/// Checks what the producers saw against what was read back.
pub fn check(history: &History, reads: &[Read]) -> Report {
    let mut report = Report {
        acked: history.acked.len(),
        failed: history.failed.len(),
        read: reads.len(),
        ..Report::default()
    };
    let mut positions: BTreeMap<Sent, Vec<Position>> = BTreeMap::new();
    let mut by_stream: BTreeMap<(usize, i32), Vec<(i64, Sent)>> = BTreeMap::new();
    const OFFSET_UNKNOWN: i64 = -1001;
    for read in reads {
        match Sent::parse(&read.value) {
            Some(sent) if sent.partition == read.partition => {
                positions
                    .entry(sent)
                    .or_default()
                    .push((read.partition, read.offset));
                by_stream
                    .entry((sent.producer, sent.partition))
                    .or_default()
                    .push((read.offset, sent));
            }
            _ => report.unknown.push(read.clone()),
        }
    }
    for (sent, offset) in &history.acked {
        match positions.get(sent) {
            None => report.lost.push((*sent, *offset)),
            // librdkafka acknowledges some records implicitly, without their
            // offset (-1001): a later batch's success proves they were written
            // when their own answer was lost. Only their presence is checked.
            Some(_) if *offset == OFFSET_UNKNOWN => {}
            Some(read_at) if !read_at.contains(&(sent.partition, *offset)) => {
                report.moved.push((*sent, *offset, read_at.clone()));
            }
            Some(_) => {}
        }
    }
    report.failed_but_read = history
        .failed
        .keys()
        .filter(|sent| positions.contains_key(sent))
        .count();
    for (sent, read_at) in &positions {
        if read_at.len() > 1 {
            report.duplicated.push((*sent, read_at.clone()));
        }
    }
    for stream in by_stream.values_mut() {
        stream.sort();
        for pair in stream.windows(2) {
            let ((at, earlier), (later_at, later)) = (pair[0], pair[1]);
            if later.seq <= earlier.seq {
                report.reordered.push(((earlier, at), (later, later_at)));
            }
        }
    }
    report
}

/// Reads `topic` back through `bootstrap` and checks `history` against it;
/// prints the report's counts.
pub fn read_and_check(bootstrap: &str, topic: &str, partitions: i32, history: &History) -> Report {
    let reads = read_all(bootstrap, topic, partitions);
    let report = check(history, &reads);
    eprintln!("checker: {report}");
    report
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set_log_level(RDKafkaLogLevel::Warning);
    if let Ok(contexts) = std::env::var("SLUICE_TEST_RDKAFKA_DEBUG")
        && !contexts.is_empty()
    {
        config
            .set("debug", contexts)
            .set_log_level(RDKafkaLogLevel::Debug);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::{History, Read, Sent, check};

    fn read(partition: i32, offset: i64, sent: Sent) -> Read {
        Read {
            partition,
            offset,
            value: sent.value(),
        }
    }

    #[test]
    fn values_round_trip() {
        let sent = Sent {
            producer: 2,
            partition: 5,
            seq: 17,
        };
        assert_eq!(Sent::parse(&sent.value()), Some(sent));
        assert_eq!(Sent::parse("p2-q5"), None);
        assert_eq!(Sent::parse("p2-q5-s1-x"), None);
    }

    #[test]
    fn every_anomaly_is_found() {
        let s = |producer, seq| Sent {
            producer,
            partition: 0,
            seq,
        };
        let mut history = History::default();
        history.acked.insert(s(0, 0), 0);
        history.acked.insert(s(0, 1), 1);
        history.acked.insert(s(0, 2), 2);
        history.acked.insert(s(1, 0), 3);
        history.failed.insert(s(1, 1), "timed out".into());
        let reads = vec![
            read(0, 0, s(0, 0)),
            read(0, 1, s(0, 2)),
            read(0, 2, s(0, 1)),
            read(0, 4, s(1, 1)),
            read(0, 5, s(1, 1)),
            Read {
                partition: 0,
                offset: 6,
                value: "garbage".into(),
            },
        ];
        let report = check(&history, &reads);
        assert_eq!(report.lost, vec![(s(1, 0), 3)]);
        assert_eq!(report.moved.len(), 2, "{report}");
        assert_eq!(report.duplicated, vec![(s(1, 1), vec![(0, 4), (0, 5)])]);
        assert_eq!(
            report.reordered,
            vec![((s(0, 2), 1), (s(0, 1), 2)), ((s(1, 1), 4), (s(1, 1), 5))]
        );
        assert_eq!(report.unknown.len(), 1);
        assert_eq!(report.failed_but_read, 1);
        assert!(!report.valid());
    }

    #[test]
    fn a_clean_history_is_valid() {
        let s = |seq| Sent {
            producer: 0,
            partition: 1,
            seq,
        };
        let mut history = History::default();
        history.acked.insert(s(0), 0);
        history.acked.insert(s(1), 1);
        history.acked.insert(s(2), -1001);
        let reads = [read(1, 0, s(0)), read(1, 1, s(1)), read(1, 2, s(2))];
        let report = check(&history, &reads);
        assert!(report.valid(), "an implicit ack has no offset: {report}");
    }
}
