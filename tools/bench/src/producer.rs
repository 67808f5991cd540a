//! One producer: a thread that sends its topic's records on schedule (or as
//! fast as librdkafka takes them) and meters their acknowledgements, which
//! librdkafka reports on its own polling thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::{Connection, LogContext};
use crate::error::BenchError;
use crate::payload::{Filler, HEADER_LEN, Header};
use crate::schedule::{Clock, Pace};
use crate::stats::{SharedMeter, Window};
use crate::verify::{Produced, SeqSet};
use crate::workload::{KeyDistribution, Workload};

/// How long the producer waits for its last acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long starting, committing or aborting a transaction may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a record may wait in librdkafka before it fails (librdkafka's
/// default is 5 minutes, longer than any drain should take).
const MESSAGE_TIMEOUT_MS: &str = "30000";
/// The pause before retrying a send that librdkafka refused because its queue
/// (`queue.buffering.max.messages`, 100,000 by default) was full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_micros(200);
/// Delivery errors printed per producer; the rest are only counted.
const PRINTED_ERRORS: u64 = 5;

/// What one producer does.
#[derive(Clone, Debug)]
pub struct ProducerPlan {
    /// Unique within the run; carried in every record.
    pub id: u32,
    pub topic_index: u32,
    pub topic: String,
    pub run_id: u64,
    pub pace: Pace,
    /// The measurement; nothing is sent after its end.
    pub window: Window,
}

/// What a finished producer reports.
#[derive(Clone, Debug)]
pub struct ProducerOutcome {
    pub produced: Produced,
    /// Records the schedule had due before the end but that were never sent
    /// because the producer had fallen behind (fixed rate only).
    pub behind_schedule: u64,
    /// How long each transaction commit that began in the measurement took.
    pub commit_latency: Histogram<u64>,
}

/// Meters each acknowledgement, and remembers which records failed.
struct DeliveryContext {
    clock: Clock,
    window: Window,
    meter: SharedMeter,
    failed: Mutex<SeqSet>,
    errors_printed: AtomicU64,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        LogContext.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        LogContext.error(error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let now = self.clock.now_us();
        match result {
            Ok(message) => {
                let bytes = message.payload_len() + message.key_len();
                match message.payload().and_then(Header::read) {
                    Some(header) => {
                        self.meter
                            .lock()
                            .record(bytes, header.due_us, now, self.window)
                    }
                    None => self.meter.lock().errors += 1,
                }
            }
            Err((error, message)) => {
                self.meter.lock().errors += 1;
                if let Some(header) = message.payload().and_then(Header::read) {
                    self.failed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(header.seq);
                }
                if self.errors_printed.fetch_add(1, Ordering::Relaxed) < PRINTED_ERRORS {
                    eprintln!(
                        "delivery to {} [{}] failed: {error}",
                        message.topic(),
                        message.partition()
                    );
                }
            }
        }
    }
}

/// The producer configuration of `workload`.
/// A transactional workload gets an idempotent producer with a transactional
/// id unique to the run and the producer.
fn config(
    connection: &Connection,
    workload: &Workload,
    plan: &ProducerPlan,
) -> rdkafka::ClientConfig {
    let transactional_id = format!("sluice-bench-{:016x}-{}", plan.run_id, plan.id);
    let linger_ms = workload.linger_ms.to_string();
    let batch_size = workload.batch_size.to_string();
    let mut properties = vec![
        ("acks", workload.acks.as_config()),
        ("compression.type", workload.compression.as_config()),
        ("linger.ms", &linger_ms),
        ("batch.size", &batch_size),
        ("message.timeout.ms", MESSAGE_TIMEOUT_MS),
    ];
    if workload.transactional() {
        properties.push(("enable.idempotence", "true"));
        properties.push(("transactional.id", &transactional_id));
    } else {
        properties.push(("enable.idempotence", "false"));
    }
    connection.config(&properties)
}

/// How often a committing producer looks whether its records are acknowledged.
const ACK_POLL: Duration = Duration::from_micros(50);

/// Waits (at most `TRANSACTION_TIMEOUT`) until every record sent is acknowledged
/// and its delivery report served. rdkafka's `commit_transaction` first flushes,
/// and its flush polls the delivery queue for up to 100 ms at a time, a queue
/// the `ThreadedProducer`'s own thread is already serving: without this wait,
/// every commit took 100 ms more than the broker needed.
fn wait_for_acknowledgements(producer: &ThreadedProducer<DeliveryContext>) {
    let polls = TRANSACTION_TIMEOUT.as_micros() / ACK_POLL.as_micros();
    for _ in 0..polls {
        if producer.in_flight_count() == 0 {
            return;
        }
        std::thread::sleep(ACK_POLL);
    }
}

/// A producer's open transaction: the sequence numbers it holds.
struct Transaction {
    first_seq: u64,
    records: u32,
}

/// Commits the open transaction and begins the next; a failed commit is aborted
/// and its records count as failed (read_committed consumers never see them).
fn commit(
    producer: &ThreadedProducer<DeliveryContext>,
    open: &mut Transaction,
    next_seq: u64,
    clock: Clock,
    window: Window,
    latency: &mut Histogram<u64>,
) -> Result<(), BenchError> {
    let started = clock.now_us();
    wait_for_acknowledgements(producer);
    match producer.commit_transaction(TRANSACTION_TIMEOUT) {
        Ok(()) => {
            if window.contains(started) {
                let _ = latency.record(clock.now_us().saturating_sub(started).max(1));
            }
        }
        Err(error) => {
            eprintln!("transaction commit failed: {error}; aborting it");
            let context = producer.context();
            context.meter.lock().errors += 1;
            let mut failed = context.failed.lock().unwrap_or_else(|p| p.into_inner());
            for seq in open.first_seq..next_seq {
                failed.insert(seq);
            }
            drop(failed);
            producer
                .abort_transaction(TRANSACTION_TIMEOUT)
                .map_err(BenchError::kafka("abort a transaction"))?;
        }
    }
    producer
        .begin_transaction()
        .map_err(BenchError::kafka("begin a transaction"))?;
    *open = Transaction {
        first_seq: next_seq,
        records: 0,
    };
    Ok(())
}

/// Sends `plan`'s records until its end, waits for their acknowledgements and
/// reports what was sent. Runs on the calling thread.
pub fn run(
    plan: &ProducerPlan,
    connection: &Connection,
    workload: &Workload,
    clock: Clock,
    meter: SharedMeter,
) -> Result<ProducerOutcome, BenchError> {
    let context = DeliveryContext {
        clock,
        window: plan.window,
        meter: meter.clone(),
        failed: Mutex::new(SeqSet::default()),
        errors_printed: AtomicU64::new(0),
    };
    let producer: ThreadedProducer<DeliveryContext> = config(connection, workload, plan)
        .create_with_context(context)
        .map_err(BenchError::kafka(format!("create producer {}", plan.id)))?;
    let mut commit_latency = crate::stats::new_histogram();
    let mut transaction = None;
    if workload.transactional() {
        producer
            .init_transactions(TRANSACTION_TIMEOUT)
            .map_err(BenchError::kafka(format!(
                "init transactions of producer {}",
                plan.id
            )))?;
        producer
            .begin_transaction()
            .map_err(BenchError::kafka("begin a transaction"))?;
        transaction = Some(Transaction {
            first_seq: 0,
            records: 0,
        });
    }

    let seed = plan.run_id ^ u64::from(plan.id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut filler = Filler::new(
        seed,
        workload.message_size as usize,
        workload.batch_size as usize,
    );
    let mut key_rng = SmallRng::seed_from_u64(!seed);
    let mut value = vec![0u8; workload.message_size as usize];
    let mut seq = 0u64;
    loop {
        let now = clock.now_us();
        if now >= plan.window.end_us {
            break;
        }
        let due = plan.pace.due_us(seq, now);
        if due >= plan.window.end_us {
            break;
        }
        if due > now {
            std::thread::sleep(Duration::from_micros(due - now));
            continue;
        }
        filler.fill(&mut value[HEADER_LEN..]);
        let key = match workload.key_distribution {
            KeyDistribution::None => None,
            KeyDistribution::RoundRobin => {
                Some((seq % u64::from(workload.partitions_per_topic)).to_be_bytes())
            }
            KeyDistribution::Random => {
                let key = key_rng.next_u64();
                let key = match workload.key_space {
                    0 => key,
                    space => key % space,
                };
                Some(key.to_be_bytes())
            }
        };
        let mut header = Header {
            run_id: plan.run_id,
            due_us: due,
            topic: plan.topic_index,
            producer: plan.id,
            seq,
        };
        loop {
            header.write(&mut value);
            let mut record = BaseRecord::to(&plan.topic).payload(&value[..]);
            if let Some(key) = &key {
                record = record.key(&key[..]);
            }
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(QUEUE_FULL_PAUSE);
                    if plan.pace == Pace::Max {
                        // No schedule: the record is due when the client takes it.
                        header.due_us = clock.now_us();
                    }
                }
                Err((error, _)) => {
                    producer.context().meter.lock().errors += 1;
                    producer
                        .context()
                        .failed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(seq);
                    eprintln!("producer {}: send failed: {error}", plan.id);
                    break;
                }
            }
        }
        seq += 1;
        if let Some(open) = &mut transaction {
            open.records += 1;
            if open.records >= workload.transaction_records {
                commit(
                    &producer,
                    open,
                    seq,
                    clock,
                    plan.window,
                    &mut commit_latency,
                )?;
            }
        }
    }
    if let Some(open) = &mut transaction {
        commit(
            &producer,
            open,
            seq,
            clock,
            plan.window,
            &mut commit_latency,
        )?;
    }
    let behind_schedule = plan
        .pace
        .due_before(plan.window.end_us)
        .map_or(0, |due| due - seq);

    if producer.flush(FLUSH_TIMEOUT).is_err() {
        eprintln!(
            "producer {}: {} records still unacknowledged after {FLUSH_TIMEOUT:?}; purging them",
            plan.id,
            producer.in_flight_count()
        );
        // Purged records get a failed delivery report, so they land in
        // `failed` and the errors.
        producer.purge(PurgeConfig::default().queue().inflight());
        let _ = producer.flush(Duration::from_secs(1));
    }
    let failed = std::mem::take(
        &mut *producer
            .context()
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    Ok(ProducerOutcome {
        produced: Produced {
            producer: plan.id,
            sent: seq,
            failed,
        },
        behind_schedule,
        commit_latency,
    })
}
