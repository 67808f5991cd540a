//! One consumer: a thread that reads its share of a topic (assigned partitions,
//! or whatever its consumer group gives it), meters end-to-end latency and
//! feeds every record of the run to its own verifier.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{Connection, LogContext};
use crate::error::BenchError;
use crate::payload::Header;
use crate::schedule::Clock;
use crate::stats::{SharedMeter, Window};
use crate::verify::Observed;

/// Bound on each poll, so the stop flag is seen soon.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Bound on the watermark query that finds where an assigned partition ends.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a group member reports how many partitions it holds.
const ASSIGNMENT_CHECK: Duration = Duration::from_millis(100);
/// Consumer errors printed per consumer; the rest are only counted.
const PRINTED_ERRORS: u64 = 5;

/// Where a consumer's partitions come from.
#[derive(Clone, Debug)]
pub enum Partitions {
    /// These partitions, from their end at the start of the run: no group
    /// coordinator is involved.
    Assigned(Vec<i32>),
    /// A share of the topic from this consumer group, from the beginning (the
    /// group is new, and records of earlier runs are recognised and skipped).
    Group(String),
}

/// What one consumer does.
#[derive(Clone, Debug)]
pub struct ConsumerPlan {
    /// Position among all the run's consumers.
    pub index: usize,
    pub topic_index: u32,
    pub topic: String,
    pub partitions: Partitions,
    pub run_id: u64,
    /// Read only committed records (`isolation.level=read_committed`).
    pub read_committed: bool,
}

/// What a stopped consumer reports.
#[derive(Debug, Default)]
pub struct ConsumerOutcome {
    pub observed: Observed,
    /// Records that were not this run's (earlier runs in a reused topic).
    pub foreign: u64,
}

/// Flags and counters the consumers share with the run.
#[derive(Debug)]
pub struct Coordination {
    /// Partitions each consumer holds.
    held: Vec<AtomicU64>,
    /// The measurement window, set when the producers start.
    window_start_us: AtomicU64,
    window_end_us: AtomicU64,
    /// Set when the run has drained.
    pub stop: AtomicBool,
}

impl Coordination {
    pub fn new(consumers: usize) -> Coordination {
        Coordination {
            held: (0..consumers).map(|_| AtomicU64::new(0)).collect(),
            window_start_us: AtomicU64::new(u64::MAX),
            window_end_us: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
        }
    }

    /// Whether every consumer holds partitions and together they hold all
    /// `partitions`: the moment producers may start. (Every consumer, so that
    /// a group still waiting for members to join does not look ready.)
    pub fn ready(&self, partitions: u64) -> bool {
        let held: Vec<u64> = self.held.iter().map(|h| h.load(Ordering::SeqCst)).collect();
        held.iter().all(|&h| h > 0) && held.iter().sum::<u64>() == partitions
    }

    /// Sets the window, before the first record is sent.
    pub fn set_window(&self, window: Window) {
        self.window_start_us
            .store(window.start_us, Ordering::SeqCst);
        self.window_end_us.store(window.end_us, Ordering::SeqCst);
    }

    fn window(&self) -> Window {
        Window {
            start_us: self.window_start_us.load(Ordering::Relaxed),
            end_us: self.window_end_us.load(Ordering::Relaxed),
        }
    }
}

/// Consumes until `coordination.stop`. Runs on the calling thread.
pub fn run(
    plan: &ConsumerPlan,
    connection: &Connection,
    clock: Clock,
    meter: SharedMeter,
    coordination: &Coordination,
) -> Result<ConsumerOutcome, BenchError> {
    let group_id = match &plan.partitions {
        Partitions::Group(group) => group.clone(),
        // librdkafka wants a group.id even for assign(); this group is never joined.
        Partitions::Assigned(_) => format!("sluice-bench-assign-{:016x}", plan.run_id),
    };
    let consumer: BaseConsumer<LogContext> = connection
        .config(&[
            ("group.id", &group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            (
                "isolation.level",
                if plan.read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            ),
        ])
        .create_with_context(LogContext)
        .map_err(BenchError::kafka("create a consumer"))?;

    let held = &coordination.held[plan.index];
    match &plan.partitions {
        Partitions::Assigned(partitions) => {
            let mut assignment = TopicPartitionList::new();
            for &partition in partitions {
                let (_, high) = consumer
                    .fetch_watermarks(&plan.topic, partition, WATERMARK_TIMEOUT)
                    .map_err(BenchError::kafka(format!(
                        "watermarks of {} [{partition}]",
                        plan.topic
                    )))?;
                assignment
                    .add_partition_offset(&plan.topic, partition, Offset::Offset(high))
                    .map_err(BenchError::kafka("build the assignment"))?;
            }
            consumer
                .assign(&assignment)
                .map_err(BenchError::kafka(format!("assign {}", plan.topic)))?;
            held.store(partitions.len() as u64, Ordering::SeqCst);
        }
        Partitions::Group(_) => consumer
            .subscribe(&[&plan.topic])
            .map_err(BenchError::kafka(format!("subscribe to {}", plan.topic)))?,
    }

    let mut outcome = ConsumerOutcome::default();
    let mut errors_printed = 0;
    let mut next_check = Instant::now();
    while !coordination.stop.load(Ordering::SeqCst) {
        if matches!(plan.partitions, Partitions::Group(_)) && Instant::now() >= next_check {
            next_check += ASSIGNMENT_CHECK;
            let now_held = consumer.assignment().map_or(0, |a| a.count() as u64);
            held.store(now_held, Ordering::SeqCst);
        }
        let message = match consumer.poll(POLL_TIMEOUT) {
            None => continue,
            Some(Err(error)) => {
                meter.lock().errors += 1;
                if errors_printed < PRINTED_ERRORS {
                    errors_printed += 1;
                    eprintln!("consumer of {}: {error}", plan.topic);
                }
                continue;
            }
            Some(Ok(message)) => message,
        };
        let now = clock.now_us();
        let header = message
            .payload()
            .and_then(Header::read)
            .filter(|h| h.run_id == plan.run_id);
        let Some(header) = header else {
            outcome.foreign += 1;
            continue;
        };
        outcome
            .observed
            .record(plan.topic_index, message.partition(), &header);
        meter.lock().record(
            message.payload_len() + message.key_len(),
            header.due_us,
            now,
            coordination.window(),
        );
    }
    Ok(outcome)
}
