//! Log compaction (`cleanup.policy=compact`) against the real `sluice serve`,
//! driven by librdkafka: keyed updates shrink to the latest value per key at its
//! original offset, tombstones stay for `delete.retention.ms` and then go,
//! `compact,delete` also applies time retention while `compact` alone does not,
//! compressed batches are cleaned and still decode, `__consumer_offsets` shrinks
//! under repeated commits, and the cleaner's topic configs are accepted,
//! described and validated.
//!
//! Only sealed segments are cleaned, so every test makes segments roll (small
//! `segment.bytes` or `segment.ms`) and, after the records it checks, writes
//! fillers to another key until a segment starts after them. Cleaning runs in
//! the background: the tests poll for the state they expect, with a generous
//! deadline, and check on every read what must always hold (offsets strictly
//! increase, every record is one that was produced at that offset).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/compacted.rs"]
mod compacted;
#[path = "support/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use broker::Broker;
use compacted::{
    Record, assert_offsets_increase, files, partition_dir, read_partition, segment_bases,
    watermarks,
};
use kafka::{
    OP_TIMEOUT, TestContext, admin, admin_options, client_config, committed, create_topic,
};
use rdkafka::admin::{NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use sluice::cli::topic::source_name;

/// How long the cleaner may take to reach a state a test waits for.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(60);
/// The key of the records written after the checked ones, to seal them.
const FILLER: &str = "filler";

/// A broker whose cleaner sleeps 200 ms when no log needs cleaning.
fn start_broker(extra_args: &[&str]) -> Broker {
    let mut args = vec!["--log-cleaner-backoff-ms", "200"];
    args.extend_from_slice(extra_args);
    Broker::start_with_args(&args)
}

/// An idempotent producer (so offsets follow the send order and nothing is
/// written twice), acks=all, with `extra` settings.
fn producer(broker: &Broker, extra: &[(&str, &str)]) -> FutureProducer<TestContext> {
    let mut config = client_config(broker);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "20000")
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "5");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
        .create_with_context(TestContext)
        .expect("create producer")
}

/// What was produced to one partition: offset -> (key, value; `None` a tombstone).
type Produced = BTreeMap<i64, (String, Option<String>)>;

/// Sends `records` to partition 0 of `topic` without waiting between sends, then
/// waits for every delivery and adds each record at its offset to `produced`.
async fn send(
    producer: &FutureProducer<TestContext>,
    topic: &str,
    records: Vec<(String, Option<String>)>,
    produced: &mut Produced,
) {
    let mut deliveries = Vec::with_capacity(records.len());
    for (key, value) in records {
        let mut record = FutureRecord::<str, str>::to(topic).key(&key).partition(0);
        if let Some(value) = &value {
            record = record.payload(value);
        }
        let delivery = producer
            .send_result(record)
            .unwrap_or_else(|(error, _)| panic!("enqueue {key} to {topic}: {error}"));
        deliveries.push((key, value, delivery));
    }
    for (key, value, delivery) in deliveries {
        let delivered = tokio::time::timeout(OP_TIMEOUT, delivery)
            .await
            .unwrap_or_else(|_| panic!("no delivery report for {key} within {OP_TIMEOUT:?}"))
            .expect("delivery future cancelled")
            .unwrap_or_else(|(error, _)| panic!("{key} not delivered to {topic}: {error}"));
        let offset = delivered.offset;
        assert!(
            produced.insert(offset, (key, value)).is_none(),
            "{topic}: offset {offset} delivered twice"
        );
    }
}

/// `rounds` updates of each of `keys` keys, round after round; each value names
/// its key and round and is padded to about `value_len` bytes.
fn updates(keys: usize, rounds: usize, value_len: usize) -> Vec<(String, Option<String>)> {
    let mut records = Vec::with_capacity(keys * rounds);
    for round in 0..rounds {
        for key in 0..keys {
            let mut value = format!("key-{key:03} round-{round:04} ");
            while value.len() < value_len {
                write!(value, "{round:04}{key:03}.").expect("write to a String");
            }
            records.push((format!("key-{key:03}"), Some(value)));
        }
    }
    records
}

/// Writes fillers (key [`FILLER`]) to partition 0 of `topic` until a segment
/// starts after offset `last`: then the records up to `last` are all in sealed
/// segments, which the cleaner may clean.
async fn seal(
    broker: &Broker,
    producer: &FutureProducer<TestContext>,
    topic: &str,
    last: i64,
    produced: &mut Produced,
) {
    let dir = partition_dir(broker, topic, 0);
    let deadline = Instant::now() + CLEAN_TIMEOUT;
    for n in 0.. {
        if segment_bases(&dir).iter().any(|&base| base > last) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: no segment after offset {last} within {CLEAN_TIMEOUT:?}; segments {:?}",
            segment_bases(&dir)
        );
        let fillers = (0..20)
            .map(|i| (FILLER.to_string(), Some(format!("filler {n}.{i}"))))
            .collect();
        send(producer, topic, fillers, produced).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks what holds whenever the partition is read, cleaned or not: offsets
/// strictly increase and each record is exactly the one produced at its offset.
fn check_read(topic: &str, records: &[Record], produced: &Produced) {
    assert_offsets_increase(topic, records);
    for record in records {
        let (key, value) = produced.get(&record.offset).unwrap_or_else(|| {
            panic!(
                "{topic}: a record at offset {} that was not produced",
                record.offset
            )
        });
        assert_eq!(
            (record.key.as_deref(), record.value.as_deref()),
            (Some(key.as_bytes()), value.as_ref().map(String::as_bytes)),
            "{topic}: the record at offset {}",
            record.offset
        );
    }
}

/// The last record of each key of `produced` except [`FILLER`], in offset order:
/// (offset, key, value).
fn latest_per_key(produced: &Produced) -> Vec<(i64, String, Option<String>)> {
    let mut latest: BTreeMap<&str, (i64, &Option<String>)> = BTreeMap::new();
    for (&offset, (key, value)) in produced {
        if key != FILLER {
            latest.insert(key, (offset, value));
        }
    }
    let mut latest: Vec<_> = latest
        .into_iter()
        .map(|(key, (offset, value))| (offset, key.to_string(), value.clone()))
        .collect();
    latest.sort();
    latest
}

/// The records read, except [`FILLER`]'s, as (offset, key, value).
fn checked_records(records: &[Record]) -> Vec<(i64, String, Option<String>)> {
    records
        .iter()
        .filter(|r| r.key.as_deref() != Some(FILLER.as_bytes()))
        .map(|r| {
            let text = |bytes: &Vec<u8>| String::from_utf8(bytes.clone()).expect("UTF-8");
            (
                r.offset,
                text(r.key.as_ref().expect("keyed")),
                r.value.as_ref().map(text),
            )
        })
        .collect()
}

/// Reads partition 0 of `topic` again and again (checking each read with
/// [`check_read`]), calling `between` after each read that is not yet done,
/// until its records other than [`FILLER`]'s are exactly `expected` (offset,
/// key, value); panics after [`CLEAN_TIMEOUT`], saying what `what` was.
async fn wait_for_records<F, Fut>(
    broker: &Broker,
    topic: &str,
    produced: &mut Produced,
    expected: &[(i64, String, Option<String>)],
    what: &str,
    mut between: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Produced>,
{
    let deadline = Instant::now() + CLEAN_TIMEOUT;
    loop {
        let records = read_partition(broker, topic, 0);
        check_read(topic, &records, produced);
        let checked = checked_records(&records);
        if checked == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: not {what} within {CLEAN_TIMEOUT:?}: {} records of the checked keys read \
             (of {} produced), {} expected; the first read: {:?}, the first expected: {:?}",
            checked.len(),
            produced.values().filter(|(k, _)| k != FILLER).count(),
            expected.len(),
            checked.first(),
            expected.first()
        );
        let more = between().await;
        produced.extend(more);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing to do between two reads.
async fn no_writes() -> Produced {
    Produced::new()
}

/// Configs of a compacted test topic that cleans as soon as possible.
const COMPACTED: [(&str, &str); 4] = [
    ("cleanup.policy", "compact"),
    ("segment.bytes", "16384"),
    ("min.cleanable.dirty.ratio", "0.01"),
    ("delete.retention.ms", "86400000"),
];

/// 50 keys updated 40 times each (2000 records in about 20 segments) compact to
/// exactly one record per key once their segments are sealed: the key's last
/// value, at the offset it was written at; the earlier 39 updates of every key
/// are gone, and a consumer reading from the start sees nothing else (the
/// fillers written after them aside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_updates_compact_to_the_latest_value_per_key() {
    let broker = start_broker(&[]);
    let topic = "compacted-updates";
    create_topic(&broker, topic, 1, &COMPACTED).await;
    let producer = producer(&broker, &[]);
    let mut produced = Produced::new();
    for round in updates(50, 40, 100).chunks(50) {
        send(&producer, topic, round.to_vec(), &mut produced).await;
    }
    let latest = latest_per_key(&produced);
    assert_eq!(latest.len(), 50);
    let last = latest.last().expect("records").0;
    seal(&broker, &producer, topic, last, &mut produced).await;
    wait_for_records(
        &broker,
        topic,
        &mut produced,
        &latest,
        "compacted to the latest value per key",
        no_writes,
    )
    .await;
}

/// A tombstone (null value) deletes its key in two steps: the first cleaning
/// removes the key's earlier values and keeps the tombstone, which consumers
/// still read; `delete.retention.ms` (5 s) after that the tombstone goes too,
/// while the keys that were not deleted keep their latest values throughout.
///
/// The first step lasts at least `delete.retention.ms`, and the test reads the
/// partition about every 100 ms (plus the time a read takes) to see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_disappear_after_delete_retention() {
    let broker = start_broker(&[]);
    let topic = "compacted-tombstones";
    create_topic(
        &broker,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "5000"),
        ],
    )
    .await;
    let producer = producer(&broker, &[]);
    let mut produced = Produced::new();
    for round in updates(20, 5, 60).chunks(20) {
        send(&producer, topic, round.to_vec(), &mut produced).await;
    }
    let tombstones = (0..20)
        .step_by(2)
        .map(|key| (format!("key-{key:03}"), None))
        .collect();
    send(&producer, topic, tombstones, &mut produced).await;
    let with_tombstones = latest_per_key(&produced);
    let survivors: Vec<_> = with_tombstones
        .iter()
        .filter(|(_, _, value)| value.is_some())
        .cloned()
        .collect();
    assert_eq!((with_tombstones.len(), survivors.len()), (20, 10));

    // Before any cleaning, a consumer reads every tombstone.
    let records = read_partition(&broker, topic, 0);
    check_read(topic, &records, &produced);
    let read = checked_records(&records);
    for tombstone in with_tombstones.iter().filter(|(_, _, v)| v.is_none()) {
        assert!(
            read.contains(tombstone),
            "{topic}: tombstone {tombstone:?} not read"
        );
    }

    let last = with_tombstones.last().expect("records").0;
    seal(&broker, &producer, topic, last, &mut produced).await;
    wait_for_records(
        &broker,
        topic,
        &mut produced,
        &with_tombstones,
        "cleaned to the latest value or tombstone per key",
        no_writes,
    )
    .await;
    // Fillers keep arriving, as on a live topic, so the cleaner has work after
    // the tombstones' delete horizon whatever it checks to start a pass.
    let mut fillers = 0;
    wait_for_records(
        &broker,
        topic,
        &mut produced,
        &survivors,
        "rid of its tombstones",
        || {
            fillers += 1;
            let record = (FILLER.to_string(), Some(format!("late filler {fillers}")));
            let producer = &producer;
            async move {
                let mut more = Produced::new();
                send(producer, topic, vec![record], &mut more).await;
                more
            }
        },
    )
    .await;
}

/// `cleanup.policy=compact,delete` deletes segments older than `retention.ms`
/// (2 s) as `delete` does: the log start offset moves past the first records,
/// and then past records written after that. A `compact` topic with the same
/// `retention.ms`, written alongside, keeps its first records (unique keys, so
/// compaction keeps them too): without `delete`, time retention does not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_delete_applies_retention_too() {
    let broker = start_broker(&["--log-retention-check-interval-ms", "200"]);
    let retained = "compact-delete";
    let kept = "compact-only";
    for (topic, policy) in [(retained, "compact,delete"), (kept, "compact")] {
        create_topic(
            &broker,
            topic,
            1,
            &[
                ("cleanup.policy", policy),
                ("retention.ms", "2000"),
                ("segment.ms", "100"),
                ("min.cleanable.dirty.ratio", "0.01"),
            ],
        )
        .await;
    }
    let producer = producer(&broker, &[]);
    let first: Vec<(String, Option<String>)> = (0..10)
        .map(|i| (format!("first-{i}"), Some(format!("first value {i}"))))
        .collect();
    let mut produced = BTreeMap::from([(retained, Produced::new()), (kept, Produced::new())]);
    for (topic, records) in produced.iter_mut() {
        send(&producer, topic, first.clone(), records).await;
    }
    let first_end = produced[kept].keys().last().expect("records") + 1;
    assert_eq!(first_end, 10);

    // Writes go on (unique keys), so segments roll and age; the log start offset
    // of `retained` must pass the first records, then the records written up to
    // the moment it did.
    let mut past = first_end;
    let mut passes = 0;
    let deadline = Instant::now() + CLEAN_TIMEOUT;
    for n in 0.. {
        let (low, _) = watermarks(&broker, retained, 0);
        if low >= past {
            passes += 1;
            if passes == 2 {
                break;
            }
            past = produced[retained].keys().last().expect("records") + 1;
        }
        assert!(
            Instant::now() < deadline,
            "{retained}: log start offset {low}, not past {past} within {CLEAN_TIMEOUT:?}"
        );
        for (topic, records) in produced.iter_mut() {
            let record = (format!("later-{n}"), Some(format!("later value {n}")));
            send(&producer, topic, vec![record], records).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (low, _) = watermarks(&broker, kept, 0);
    assert_eq!(low, 0, "{kept}: the log start offset moved");
    let records = read_partition(&broker, kept, 0);
    check_read(kept, &records, &produced[kept]);
    let offsets: Vec<i64> = records.iter().take(10).map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        (0..10).collect::<Vec<_>>(),
        "{kept}: the first records are still there"
    );
}

/// For each codec (gzip, snappy, lz4, zstd) a compacted topic gets 8 keys
/// updated 250 times, produced with linger so that batches hold many records of
/// several keys (at most 8 KiB of them: a batch must fit a 16 KiB segment);
/// cleaning rewrites those batches, and a librdkafka consumer then reads exactly
/// the latest value of each key at its original offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_batches_are_compacted_and_still_decode() {
    let broker = start_broker(&[]);
    let mut produced = BTreeMap::new();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("compacted-{codec}");
        create_topic(&broker, &topic, 1, &COMPACTED).await;
        let producer = producer(
            &broker,
            &[
                ("compression.type", codec),
                ("linger.ms", "50"),
                ("batch.size", "8192"),
            ],
        );
        let mut records = Produced::new();
        send(&producer, &topic, updates(8, 250, 80), &mut records).await;
        let last = latest_per_key(&records).last().expect("records").0;
        seal(&broker, &producer, &topic, last, &mut records).await;
        produced.insert(topic, records);
    }
    for (topic, records) in produced.iter_mut() {
        let latest = latest_per_key(records);
        assert_eq!(latest.len(), 8);
        wait_for_records(
            &broker,
            topic,
            records,
            &latest,
            "compacted to the latest value per key",
            no_writes,
        )
        .await;
    }
}

/// A consumer of `group` that only commits and fetches commits (no subscription).
fn committer(broker: &Broker, group: &str) -> BaseConsumer<TestContext> {
    client_config(broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(TestContext)
        .expect("create consumer")
}

/// Total bytes of the `.log` files of every `__consumer_offsets` partition.
fn offsets_log_bytes(data_dir: &Path) -> u64 {
    files(data_dir)
        .iter()
        .filter(|dir| {
            dir.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("__consumer_offsets-"))
        })
        .flat_map(|dir| files(dir))
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// 3000 synchronous commits of one group for one partition fill many 16 KiB
/// segments of `__consumer_offsets`, all with the same key, while the cleaner
/// runs; the total size of its `.log` files falls below half of what the commits
/// wrote, and the group's committed offset is still the last one committed, also
/// after a restart.
///
/// Each commit wrote at least 100 bytes (a batch: its 61-byte header and a
/// record whose key holds the group and topic names), so the files hold at least
/// `COMMITS * 100` bytes unless cleaned; the cleaner runs during the commits
/// too, so no size measured at one moment is the peak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_offsets_shrink_after_many_commits() {
    const COMMITS: i64 = 3000;
    const WRITTEN_AT_LEAST: u64 = COMMITS as u64 * 100;
    let mut broker = start_broker(&[
        "--offsets-topic-segment-bytes",
        "16384",
        "--offsets-topic-num-partitions",
        "1",
    ]);
    let topic = "committed-often";
    let group = "compacted-commits";
    create_topic(&broker, topic, 1, &[]).await;
    let consumer = committer(&broker, group);
    for offset in 1..=COMMITS {
        let mut position = TopicPartitionList::new();
        position
            .add_partition_offset(topic, 0, Offset::Offset(offset))
            .expect("add partition");
        consumer
            .commit(&position, CommitMode::Sync)
            .unwrap_or_else(|error| panic!("commit {offset}: {error}"));
    }
    drop(consumer);

    let deadline = Instant::now() + CLEAN_TIMEOUT;
    loop {
        let now = offsets_log_bytes(&broker.data_dir());
        if now < WRITTEN_AT_LEAST / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets still holds {now} bytes of .log files {CLEAN_TIMEOUT:?} after \
             {COMMITS} commits (at least {WRITTEN_AT_LEAST} bytes written)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        committed(&committer(&broker, group), topic, CLEAN_TIMEOUT),
        Offset::Offset(COMMITS),
        "the last commit after cleaning"
    );

    broker.stop_gracefully();
    broker.start_again();
    assert_eq!(
        committed(&committer(&broker, group), topic, CLEAN_TIMEOUT),
        Offset::Offset(COMMITS),
        "the last commit after cleaning and a restart"
    );
}

/// Creates `topic` with `configs`; the outcome of CreateTopics for it.
async fn try_create(
    broker: &Broker,
    topic: &str,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let results = tokio::time::timeout(
        OP_TIMEOUT,
        admin(broker).create_topics(&[new_topic], &admin_options()),
    )
    .await
    .expect("CreateTopics within the timeout")
    .expect("CreateTopics request");
    assert_eq!(results.len(), 1);
    match &results[0] {
        Ok(name) => {
            assert_eq!(name, topic);
            Ok(())
        }
        Err((name, code)) => {
            assert_eq!(name, topic);
            Err(*code)
        }
    }
}

/// The described value and source of each config of `topic`.
async fn describe(
    broker: &Broker,
    topic: &str,
) -> BTreeMap<String, (Option<String>, &'static str)> {
    let results = tokio::time::timeout(
        OP_TIMEOUT,
        admin(broker).describe_configs(&[ResourceSpecifier::Topic(topic)], &admin_options()),
    )
    .await
    .expect("DescribeConfigs within the timeout")
    .expect("DescribeConfigs request");
    let resource = results[0]
        .as_ref()
        .unwrap_or_else(|error| panic!("DescribeConfigs of {topic}: {error:?}"));
    resource
        .entries
        .iter()
        .map(|entry| {
            (
                entry.name.clone(),
                (entry.value.clone(), source_name(&entry.source)),
            )
        })
        .collect()
}

/// The topic configs Kafka Streams and Connect send for changelog and internal
/// topics are accepted together by CreateTopics and described back as topic
/// overrides (DYNAMIC_TOPIC_CONFIG); the cleaner's configs a topic does not set
/// are described with Kafka's defaults (DEFAULT_CONFIG); and out-of-range
/// values of the cleaner's configs are refused with INVALID_CONFIG.
#[tokio::test]
async fn configs_of_the_cleaner_are_accepted_and_described() {
    let broker = Broker::start();
    let full = [
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("min.compaction.lag.ms", "100"),
        ("max.compaction.lag.ms", "600000"),
        ("delete.retention.ms", "3600000"),
        ("segment.bytes", "52428800"),
        ("min.insync.replicas", "1"),
        ("unclean.leader.election.enable", "false"),
        ("message.timestamp.type", "CreateTime"),
        ("compression.type", "lz4"),
        ("retention.ms", "-1"),
        ("remote.storage.enable", "false"),
        ("local.retention.ms", "-2"),
        ("compression.zstd.level", "5"),
    ];
    let topic = "streams-changelog";
    assert_eq!(try_create(&broker, topic, &full).await, Ok(()));
    let described = describe(&broker, topic).await;
    for (name, value) in full {
        assert_eq!(
            described.get(name),
            Some(&(Some(value.to_string()), "DYNAMIC_TOPIC_CONFIG")),
            "{topic}: {name}"
        );
    }

    let plain = "compact-defaults";
    assert_eq!(
        try_create(&broker, plain, &[("cleanup.policy", "compact")]).await,
        Ok(())
    );
    let described = describe(&broker, plain).await;
    for (name, value) in [
        ("delete.retention.ms", "86400000"),
        ("min.cleanable.dirty.ratio", "0.5"),
        ("min.compaction.lag.ms", "0"),
        ("max.compaction.lag.ms", "9223372036854775807"),
    ] {
        assert_eq!(
            described.get(name),
            Some(&(Some(value.to_string()), "DEFAULT_CONFIG")),
            "{plain}: {name}"
        );
    }

    for (name, value) in [
        ("min.cleanable.dirty.ratio", "1.5"),
        ("max.compaction.lag.ms", "0"),
    ] {
        let refused = "compact-invalid";
        assert_eq!(
            try_create(
                &broker,
                refused,
                &[("cleanup.policy", "compact"), (name, value)]
            )
            .await,
            Err(RDKafkaErrorCode::InvalidConfig),
            "{name}={value}"
        );
        let metadata = admin(&broker)
            .inner()
            .fetch_metadata(None, OP_TIMEOUT)
            .expect("fetch metadata");
        assert!(
            metadata.topics().iter().all(|t| t.name() != refused),
            "{refused} exists after {name}={value} was refused"
        );
    }
}
