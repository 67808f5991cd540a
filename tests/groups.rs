//! Consumer groups against the real `sluice serve`, driven by librdkafka (the
//! `rdkafka` crate): partitions split between members without overlap, a joining
//! member and a killed one (a child process, SIGKILLed: librdkafka heartbeats
//! from a background thread, so only killing the process silences it) move
//! partitions, commits survive a consumer restart and a broker SIGKILL, static
//! members come back without a rebalance, cooperative-sticky works, and the
//! group admin APIs list, describe and delete groups.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use broker::Broker;
use kafka::{
    OP_TIMEOUT, TestContext, admin, admin_options, client_config, committed, create_topic,
};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Set in a child process started by [`spawn_member`]: `bootstrap,group,topic`.
const HELPER_ENV: &str = "SLUICE_GROUPS_TEST_MEMBER";
/// Session timeout of the test consumers: short, so a killed member goes fast.
const SESSION_MS: &str = "3000";
/// How long a group may take to settle on an assignment.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(40);

/// A broker with small group delays, so rebalances take milliseconds.
fn start_broker() -> Broker {
    Broker::start_with_args(&[
        "--shards",
        "2",
        "--group-initial-rebalance-delay-ms",
        "200",
        "--group-min-session-timeout-ms",
        "1000",
        "--offsets-topic-num-partitions",
        "4",
    ])
}

/// Counts the rebalances a consumer goes through.
#[derive(Clone, Default)]
struct Counting {
    rebalances: Arc<AtomicUsize>,
}

impl ClientContext for Counting {}

impl ConsumerContext for Counting {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn member(broker: &Broker, group: &str, extra: &[(&str, &str)]) -> BaseConsumer<Counting> {
    let mut config = client_config(broker);
    config
        .set("group.id", group)
        .set("session.timeout.ms", SESSION_MS)
        .set("heartbeat.interval.ms", "300")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config
        .create_with_context(Counting::default())
        .expect("create a group consumer")
}

fn subscribed(
    broker: &Broker,
    group: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> BaseConsumer<Counting> {
    let consumer = member(broker, group, extra);
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

fn assigned(consumer: &BaseConsumer<Counting>) -> BTreeSet<i32> {
    consumer
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// Polls `consumers` until `done` holds for their assignments, for at least a
/// second in a row (so a rebalance in progress does not pass for a result).
fn poll_until(
    consumers: &[&BaseConsumer<Counting>],
    what: &str,
    done: impl Fn(&[BTreeSet<i32>]) -> bool,
) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut held_since: Option<Instant> = None;
    loop {
        for consumer in consumers {
            if let Some(Err(error)) = consumer.poll(Duration::from_millis(20)) {
                eprintln!("poll: {error}");
            }
        }
        let assignments: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
        if done(&assignments) {
            let since = *held_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_secs(1) {
                return assignments;
            }
        } else {
            held_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: assignments stayed {assignments:?}"
        );
    }
}

/// Whether `sets` are pairwise disjoint, each non-empty, and cover 0..`count`.
fn splits(sets: &[BTreeSet<i32>], count: i32) -> bool {
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    sets.iter().all(|s| !s.is_empty()) && total == union.len() && union == (0..count).collect()
}

/// Partitions of each member as the group describes them (ListGroups +
/// DescribeGroups through librdkafka), decoded from ConsumerProtocolAssignment.
fn described_assignments(consumer: &BaseConsumer<Counting>, group: &str) -> Vec<BTreeSet<i32>> {
    let list = consumer
        .fetch_group_list(Some(group), OP_TIMEOUT)
        .expect("describe the group");
    let info = list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .expect("group listed");
    info.members()
        .iter()
        .map(|m| decode_assignment(m.assignment().unwrap_or_default()))
        .collect()
}

/// ConsumerProtocolAssignment: version, [topic, [partition]], user data.
fn decode_assignment(bytes: &[u8]) -> BTreeSet<i32> {
    let mut partitions = BTreeSet::new();
    if bytes.len() < 6 {
        return partitions;
    }
    let i16_at = |at: usize| i16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let i32_at = |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut at = 2;
    let topics = i32_at(at);
    at += 4;
    for _ in 0..topics {
        at += 2 + i16_at(at) as usize;
        let count = i32_at(at);
        at += 4;
        for _ in 0..count {
            partitions.insert(i32_at(at));
            at += 4;
        }
    }
    partitions
}

/// A group member in a child process (this test binary, running only
/// [`group_member_process`]), so it can be SIGKILLed.
fn spawn_member(broker: &Broker, group: &str, topic: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "group_member_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HELPER_ENV,
            format!("{},{group},{topic}", broker.bootstrap()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn a member process")
}

/// Not a test of its own: the body of a [`spawn_member`] child. Without the
/// variable it returns at once.
#[test]
fn group_member_process() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(',').collect();
    let consumer: BaseConsumer<TestContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", parts[0])
        .set("group.id", parts[1])
        .set("session.timeout.ms", SESSION_MS)
        .set("heartbeat.interval.ms", "300")
        .set("enable.auto.commit", "false")
        .create_with_context(TestContext)
        .expect("create the member");
    consumer.subscribe(&[parts[2]]).expect("subscribe");
    // Runs until the parent kills it; bounded in case the parent died.
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_partitions_and_rebalance_on_join_and_on_a_killed_member() {
    let broker = start_broker();
    let topic = "split";
    create_topic(&broker, topic, 4, &[]).await;
    let group = "splitters";
    let a = subscribed(&broker, group, topic, &[]);
    let b = subscribed(&broker, group, topic, &[]);
    let two = poll_until(&[&a, &b], "two members", |s| splits(s, 4));
    assert_eq!(
        two.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        vec![2, 2]
    );

    let mut third = spawn_member(&broker, group, topic);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let _ = poll_until(&[&a, &b], "a third member joins", |s| {
            s.iter().map(BTreeSet::len).sum::<usize>() < 4 && s.iter().all(|p| !p.is_empty())
        });
        let described = described_assignments(&a, group);
        if described.len() == 3 && splits(&described, 4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "three members never split 4 partitions: {described:?}"
        );
    }

    third.kill().expect("SIGKILL the third member");
    third.wait().expect("reap the third member");
    let killed_at = Instant::now();
    poll_until(&[&a, &b], "after the killed member's session", |s| {
        splits(s, 4)
    });
    assert!(
        killed_at.elapsed() >= Duration::from_millis(2000),
        "partitions moved before the session timeout"
    );
    assert_eq!(described_assignments(&a, group).len(), 2);
}

async fn produce(broker: &Broker, topic: &str, count: usize) {
    let producer = kafka::producer(broker);
    for i in 0..count {
        let value = format!("value-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&value),
                OP_TIMEOUT,
            )
            .await
            .expect("delivered");
    }
}

/// Reads `count` records and returns their offsets.
fn read(consumer: &BaseConsumer<Counting>, count: usize) -> Vec<i64> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut offsets = Vec::new();
    while offsets.len() < count {
        assert!(Instant::now() < deadline, "read {offsets:?} of {count}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => offsets.push(message.offset()),
            Some(Err(error)) => eprintln!("poll: {error}"),
            None => {}
        }
    }
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_survive_a_consumer_restart_and_a_broker_sigkill() {
    let mut broker = start_broker();
    let topic = "commits";
    create_topic(&broker, topic, 1, &[]).await;
    produce(&broker, topic, 10).await;
    let group = "committers";
    {
        let consumer = subscribed(&broker, group, topic, &[]);
        assert_eq!(
            committed(&consumer, topic, SETTLE_TIMEOUT),
            Offset::Invalid,
            "nothing committed yet"
        );
        assert_eq!(read(&consumer, 5), vec![0, 1, 2, 3, 4]);
        let mut position = TopicPartitionList::new();
        position
            .add_partition_offset(topic, 0, Offset::Offset(5))
            .unwrap();
        consumer
            .commit(&position, CommitMode::Sync)
            .expect("commit");
        assert_eq!(
            committed(&consumer, topic, SETTLE_TIMEOUT),
            Offset::Offset(5)
        );
    }
    {
        let consumer = subscribed(&broker, group, topic, &[]);
        assert_eq!(
            read(&consumer, 1),
            vec![5],
            "resumes right after the commit"
        );
    }
    broker.restart_with_sigkill();
    let consumer = subscribed(&broker, group, topic, &[]);
    assert_eq!(
        committed(&consumer, topic, SETTLE_TIMEOUT),
        Offset::Offset(5)
    );
    assert_eq!(read(&consumer, 5), vec![5, 6, 7, 8, 9]);

    // Only the coordinator writes the internal topic.
    let refused = kafka::producer(&broker)
        .send(
            FutureRecord::<(), _>::to("__consumer_offsets")
                .partition(0)
                .payload("forged"),
            OP_TIMEOUT,
        )
        .await;
    match refused {
        Err((error, _)) => assert_eq!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::InvalidTopic),
            "{error}"
        ),
        Ok(delivered) => panic!("a client wrote __consumer_offsets: {delivered:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_comes_back_to_its_partitions_without_a_rebalance() {
    let broker = start_broker();
    let topic = "statics";
    create_topic(&broker, topic, 4, &[]).await;
    let group = "static-group";
    let one = subscribed(
        &broker,
        group,
        topic,
        &[
            ("group.instance.id", "one"),
            ("session.timeout.ms", "10000"),
        ],
    );
    let two = subscribed(
        &broker,
        group,
        topic,
        &[
            ("group.instance.id", "two"),
            ("session.timeout.ms", "10000"),
        ],
    );
    let before = poll_until(&[&one, &two], "two static members", |s| splits(s, 4));
    let rebalances_of_two = two.context().rebalances.load(Ordering::SeqCst);
    // Static members do not leave the group when they close.
    drop(one);
    let one = subscribed(
        &broker,
        group,
        topic,
        &[
            ("group.instance.id", "one"),
            ("session.timeout.ms", "10000"),
        ],
    );
    let after = poll_until(&[&one, &two], "the static member returns", |s| splits(s, 4));
    assert_eq!(after, before, "same partitions for the same instances");
    assert_eq!(
        two.context().rebalances.load(Ordering::SeqCst),
        rebalances_of_two,
        "the other member saw no rebalance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_share_partitions_incrementally() {
    let broker = start_broker();
    let topic = "coop";
    create_topic(&broker, topic, 6, &[]).await;
    let group = "cooperative";
    let strategy = [("partition.assignment.strategy", "cooperative-sticky")];
    let a = subscribed(&broker, group, topic, &strategy);
    let first = poll_until(&[&a], "one member", |s| splits(s, 6));
    assert_eq!(first[0].len(), 6);
    let b = subscribed(&broker, group, topic, &strategy);
    let two = poll_until(&[&a, &b], "two cooperative members", |s| splits(s, 6));
    assert!(
        two[0].is_subset(&first[0]),
        "sticky: the first member kept part of its share"
    );
    let c = subscribed(&broker, group, topic, &strategy);
    let three = poll_until(&[&a, &b, &c], "three cooperative members", |s| splits(s, 6));
    assert_eq!(
        three.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_listed_described_and_deleted_through_the_admin_apis() {
    let broker = start_broker();
    let topic = "admin";
    create_topic(&broker, topic, 2, &[]).await;
    let group = "administered";
    let consumer = subscribed(&broker, group, topic, &[]);
    poll_until(&[&consumer], "one member", |s| splits(s, 2));

    let list = consumer
        .fetch_group_list(None, OP_TIMEOUT)
        .expect("ListGroups");
    assert!(list.groups().iter().any(|g| g.name() == group), "listed");
    let described = consumer
        .fetch_group_list(Some(group), OP_TIMEOUT)
        .expect("DescribeGroups");
    let info = &described.groups()[0];
    assert_eq!(
        (info.state(), info.protocol_type(), info.protocol()),
        ("Stable", "consumer", "range")
    );
    assert_eq!(info.members().len(), 1);
    assert_eq!(info.members()[0].client_host(), "/127.0.0.1");
    assert_eq!(
        decode_assignment(info.members()[0].assignment().unwrap()),
        BTreeSet::from([0, 1])
    );

    let admin = admin(&broker);
    let refused = admin
        .delete_groups(&[group], &admin_options())
        .await
        .expect("DeleteGroups");
    assert_eq!(
        refused,
        vec![Err((group.to_string(), RDKafkaErrorCode::NonEmptyGroup))]
    );
    let mut position = TopicPartitionList::new();
    position
        .add_partition_offset(topic, 0, Offset::Offset(0))
        .unwrap();
    consumer
        .commit(&position, CommitMode::Sync)
        .expect("commit");
    drop(consumer);

    // The member left on close: the group is empty and can go.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let deleted = admin
            .delete_groups(&[group], &admin_options())
            .await
            .expect("DeleteGroups");
        if deleted == vec![Ok(group.to_string())] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group never deletable: {deleted:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gone = admin
        .delete_groups(&[group], &admin_options())
        .await
        .expect("DeleteGroups");
    assert_eq!(
        gone,
        vec![Err((group.to_string(), RDKafkaErrorCode::GroupIdNotFound))]
    );
    let fresh = member(&broker, group, &[]);
    assert_eq!(
        committed(&fresh, topic, SETTLE_TIMEOUT),
        Offset::Invalid,
        "offsets went with the group"
    );
}
