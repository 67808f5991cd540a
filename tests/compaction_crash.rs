//! Crash test of the log cleaner: the real `sluice serve` compacts a topic that
//! librdkafka keeps updating, and is SIGKILLed at random moments, so some kills
//! land in the middle of a cleaning (cleaned files written, a swap under way).
//! After every restart no cleaner file is left, and every key's latest
//! acknowledged value is still there at its offset (or a newer value that was
//! sent but not acknowledged).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/compacted.rs"]
mod compacted;
#[path = "support/kafka.rs"]
mod kafka;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use broker::Broker;
use compacted::{Record, assert_offsets_increase, cleaner_leftovers, read_partition};
use kafka::{OP_TIMEOUT, TestContext, admin, client_config, create_topic};
use rand::Rng;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};

const TOPIC: &str = "compacted-crash";
const ROUNDS: usize = 10;
const KEYS: u64 = 40;
/// Sends awaiting their acknowledgement at most.
const OUTSTANDING: usize = 200;
/// How long the cleaner may take to compact the log after the last round.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(60);
/// The broker's arguments: a cleaner that looks for work every 100 ms.
const CLEANER_ON: [&str; 2] = ["--log-cleaner-backoff-ms", "100"];
/// The broker's arguments while the test checks a restarted broker's files: no
/// cleaning starts that could write cleaner files of its own.
const CLEANER_OFF: [&str; 4] = [
    "--log-cleaner-backoff-ms",
    "100",
    "--log-cleaner-enable",
    "false",
];

/// The key of send number `n`: the sends go round the keys.
fn key_of(n: u64) -> String {
    format!("key-{:03}", n % KEYS)
}

/// The value of send number `n`: its key and number, padded to about 120 bytes.
fn value_of(n: u64) -> String {
    format!("{}:{n:010}:{}", key_of(n), "v".repeat(100))
}

/// The send number a value read back names.
fn number_of(value: &[u8]) -> u64 {
    let text = std::str::from_utf8(value).expect("UTF-8 value");
    text.split(':')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a value of this test: {text:?}"))
}

/// acks=all, not idempotent, no retries and one request in flight: the log
/// holds the sends that reached it in send order, each at most once. Batches
/// of at most 4 KiB fit the topic's 8 KiB segments.
fn producer(broker: &Broker) -> FutureProducer<TestContext> {
    client_config(broker)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .set("message.send.max.retries", "0")
        .set("message.timeout.ms", "20000")
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "5")
        .set("batch.size", "4096")
        .create_with_context(TestContext)
        .expect("create producer")
}

/// What the test knows about the log across rounds.
#[derive(Default)]
struct History {
    /// The number of the next send; every number below it was sent.
    next: u64,
    /// Send number -> offset, of every acknowledged send and of every record a
    /// restarted broker served as its key's latest: those must stay, at that
    /// offset, until a newer value of their key replaces them.
    durable: BTreeMap<u64, i64>,
    /// Key -> the newest of its sends in `durable`.
    latest: BTreeMap<String, u64>,
}

impl History {
    fn keep(&mut self, number: u64, offset: i64) {
        if let Some(known) = self.durable.insert(number, offset) {
            assert_eq!(known, offset, "send {number} at two offsets");
        }
        let latest = self.latest.entry(key_of(number)).or_insert(number);
        *latest = (*latest).max(number);
    }
}

/// Waits for one send's delivery report; returns its offset if it was
/// acknowledged.
async fn settle(number: u64, delivery: DeliveryFuture) -> Option<(u64, i64)> {
    let report = tokio::time::timeout(OP_TIMEOUT, delivery)
        .await
        .unwrap_or_else(|_| panic!("no delivery report for send {number} within {OP_TIMEOUT:?}"))
        .expect("delivery future cancelled");
    match report {
        Ok(delivered) => Some((number, delivered.offset)),
        Err((error, _)) => {
            eprintln!("send {number} not acknowledged: {error}");
            None
        }
    }
}

/// Sends updates numbered from `first` until `stop`, keeping at most
/// [`OUTSTANDING`] unacknowledged; then drops what is queued or in flight and
/// returns the next number and the acknowledged sends (number, offset).
async fn produce_until(
    producer: Arc<FutureProducer<TestContext>>,
    stop: Arc<AtomicBool>,
    first: u64,
) -> (u64, Vec<(u64, i64)>) {
    let mut pending: VecDeque<(u64, DeliveryFuture)> = VecDeque::new();
    let mut acked = Vec::new();
    let mut next = first;
    while !stop.load(Ordering::SeqCst) {
        if pending.len() >= OUTSTANDING {
            let (number, delivery) = pending.pop_front().expect("pending sends");
            acked.extend(settle(number, delivery).await);
            continue;
        }
        let (key, value) = (key_of(next), value_of(next));
        let record = FutureRecord::to(TOPIC)
            .key(&key)
            .payload(&value)
            .partition(0);
        match producer.send_result(record) {
            Ok(delivery) => {
                pending.push_back((next, delivery));
                next += 1;
            }
            Err((error, _)) => {
                eprintln!("enqueue send {next}: {error}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    producer.purge(PurgeConfig::default().queue().inflight());
    for (number, delivery) in pending {
        acked.extend(settle(number, delivery).await);
    }
    (next, acked)
}

/// Waits until the broker's metadata lists partition 0 of [`TOPIC`] with a leader.
fn wait_for_partition(broker: &Broker) {
    let admin = admin(broker);
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(TOPIC), OP_TIMEOUT)
            .expect("fetch metadata");
        let served = metadata.topics().iter().any(|t| {
            t.name() == TOPIC
                && t.error().is_none()
                && t.partitions()
                    .iter()
                    .any(|p| p.id() == 0 && p.error().is_none() && p.leader() >= 0)
        });
        if served {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{TOPIC}-0 not served within {OP_TIMEOUT:?} of a restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads the partition and checks it against `history`: offsets strictly
/// increase; every record is a send of this test under its own key; a durable
/// send read is at its offset; each key's last record is its newest durable send
/// or a newer send. Then the last records join `history` as durable. Returns the
/// records read.
fn verify(broker: &Broker, history: &mut History, round: usize) -> Vec<Record> {
    let records = read_partition(broker, TOPIC, 0);
    let mut last: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    assert_offsets_increase(&format!("round {round}"), &records);
    for record in &records {
        let value = record
            .value
            .as_deref()
            .unwrap_or_else(|| panic!("round {round}: a null value at {}", record.offset));
        let number = number_of(value);
        assert!(
            number < history.next,
            "round {round}: send {number} read at {}, never sent",
            record.offset
        );
        let key = key_of(number);
        assert_eq!(
            record.key.as_deref(),
            Some(key.as_bytes()),
            "round {round}: the key of send {number} at {}",
            record.offset
        );
        if let Some(&offset) = history.durable.get(&number) {
            assert_eq!(record.offset, offset, "round {round}: send {number} moved");
        }
        last.insert(key, (number, record.offset));
    }
    for (key, &latest) in &history.latest {
        let (number, offset) = *last
            .get(key)
            .unwrap_or_else(|| panic!("round {round}: {key} is gone; its send {latest} was kept"));
        assert!(
            number >= latest,
            "round {round}: {key} ends with send {number} at {offset}, older than its send \
             {latest} at {}",
            history.durable[&latest]
        );
    }
    for (number, offset) in last.into_values() {
        history.keep(number, offset);
    }
    records
}

/// Ten rounds of: updates to 40 keys for a random 0.3 to 2 s on a broker that
/// cleans every 100 ms (8 KiB segments, any dirty ratio), a SIGKILL at that
/// moment, a restart. After each restart no `*.cleaned` or `*.swap` file is
/// left, and reading from the start gives every key its latest acknowledged
/// value at the offset it was acknowledged with, or a newer value sent after it
/// and not acknowledged; records already read after an earlier restart stay
/// until replaced. Last, the cleaner compacts the log to far fewer records than
/// were acknowledged, so the rounds ran against a cleaning broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_cleaning_keeps_every_latest_acknowledged_value() {
    let mut broker = Broker::start_with_args(&CLEANER_ON);
    create_topic(
        &broker,
        TOPIC,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "8192"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let pauses: Vec<u64> = {
        let mut rng = rand::rng();
        (0..ROUNDS).map(|_| rng.random_range(300..=2000)).collect()
    };
    let mut history = History::default();
    let mut acknowledged = 0;
    for (round, pause) in (1..=ROUNDS).zip(pauses) {
        let producer = Arc::new(producer(&broker));
        let stop = Arc::new(AtomicBool::new(false));
        let sending = tokio::spawn(produce_until(
            Arc::clone(&producer),
            Arc::clone(&stop),
            history.next,
        ));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        broker.kill_with_sigkill();
        stop.store(true, Ordering::SeqCst);
        producer.purge(PurgeConfig::default().queue().inflight());
        let (next, acked) = sending.await.expect("the producing task");
        assert!(
            !acked.is_empty(),
            "round {round}: nothing acknowledged in {pause} ms"
        );
        acknowledged += acked.len();
        history.next = next;
        for (number, offset) in acked {
            history.keep(number, offset);
        }

        broker.start_again_with_args(&CLEANER_OFF);
        wait_for_partition(&broker);
        let leftovers = cleaner_leftovers(&broker);
        assert!(
            leftovers.is_empty(),
            "round {round}: cleaner files left after a restart: {leftovers:?}"
        );
        verify(&broker, &mut history, round);
        broker.stop_gracefully();
        broker.start_again_with_args(&CLEANER_ON);
        wait_for_partition(&broker);
    }

    let deadline = Instant::now() + CLEAN_TIMEOUT;
    loop {
        let records = verify(&broker, &mut history, ROUNDS);
        if records.len() * 2 < acknowledged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} records still read within {CLEAN_TIMEOUT:?} of the last round, of {acknowledged} \
             acknowledged",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
