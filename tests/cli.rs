//! The admin command-line tools (`sluice topic|group|produce|consume|cluster`)
//! run as the real binary against a real `sluice serve`: topics are created,
//! described, altered and deleted; lines produced with keys and headers come
//! back field by field through `-f` and `--json`; a librdkafka consumer group's
//! lag, reset and deletion show in `sluice group`; errors carry Kafka's names
//! and the documented exit codes.

#[path = "support/broker.rs"]
mod broker;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use broker::Broker;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Message};
use serde_json::Value;

/// How long one CLI command may run before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished `sluice` command left behind.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "stderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        self.stdout
    }

    /// Asserts success and parses stdout as one JSON document.
    fn json(self) -> Value {
        let stdout = self.ok();
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Asserts success and parses stdout as JSON lines.
    fn json_lines(self) -> Vec<Value> {
        self.ok()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

/// Runs `sluice ARGS --bootstrap BOOTSTRAP` with `stdin` as its input, bounded by
/// [`COMMAND_TIMEOUT`].
fn sluice_at(bootstrap: &str, args: &[&str], stdin: &str) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .args(["--bootstrap", bootstrap])
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn sluice");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let status = match broker::wait_timeout(&mut child, COMMAND_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`sluice {}` ran longer than {COMMAND_TIMEOUT:?}",
                args.join(" ")
            );
        }
    };
    Run {
        code: status.code().expect("exited, not killed by a signal"),
        stdout: std::fs::read_to_string(&out_path).expect("read stdout"),
        stderr: std::fs::read_to_string(&err_path).expect("read stderr"),
    }
}

fn sluice(broker: &Broker, args: &[&str]) -> Run {
    sluice_at(&broker.bootstrap(), args, "")
}

fn sluice_with_input(broker: &Broker, args: &[&str], stdin: &str) -> Run {
    sluice_at(&broker.bootstrap(), args, stdin)
}

fn start_broker() -> Broker {
    Broker::start_with_args(&[
        "--shards",
        "1",
        "--group-initial-rebalance-delay-ms",
        "100",
        "--group-min-session-timeout-ms",
        "1000",
        "--offsets-topic-num-partitions",
        "2",
    ])
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

#[test]
fn topics_are_created_described_altered_and_deleted() {
    let broker = start_broker();
    let created = sluice(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
            "--config",
            "max.message.bytes=200000",
            "--json",
        ],
    )
    .json();
    assert_eq!(created["name"], "orders");
    assert_eq!(created["partitions"], 3);
    assert_eq!(created["replication_factor"], 1);
    assert_eq!(created["configs"]["retention.ms"], "3600000");

    let again = sluice(&broker, &["topic", "create", "orders"]);
    assert_eq!(again.code, 1, "stderr: {}", again.stderr);
    assert!(
        again.stderr.contains("TOPIC_ALREADY_EXISTS"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("advice:"), "{}", again.stderr);

    let listed = sluice(&broker, &["topic", "list", "--json"]).json();
    let orders = listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .expect("orders is listed");
    assert_eq!(orders["partitions"], 3);
    assert_eq!(orders["replication_factor"], 1);
    let table = sluice(&broker, &["topic", "list"]).ok();
    assert!(table.starts_with("TOPIC"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["orders", "3", "1"])
    );

    let described = sluice(&broker, &["topic", "describe", "orders", "--json"]).json();
    let topic = &described["topics"][0];
    assert_eq!(topic["name"], "orders");
    let partitions = topic["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["leader"], 0);
        assert_eq!(p["replicas"], serde_json::json!([0]));
        assert_eq!(p["isr"], serde_json::json!([0]));
    }
    let configs = |topic: &Value| -> Vec<(String, String)> {
        topic["configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert_eq!(c["source"], "DYNAMIC_TOPIC_CONFIG", "{c}");
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        configs(topic),
        [
            ("max.message.bytes".to_string(), "200000".to_string()),
            ("retention.ms".to_string(), "3600000".to_string())
        ]
    );
    let text = sluice(&broker, &["topic", "describe", "orders"]).ok();
    assert!(text.contains("PARTITION  LEADER  REPLICAS  ISR"), "{text}");
    assert!(text.contains("retention.ms"), "{text}");

    let altered = sluice(
        &broker,
        &[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "retention.ms=7200000",
            "--set",
            "cleanup.policy=compact",
            "--delete",
            "max.message.bytes",
            "--json",
        ],
    )
    .json();
    assert_eq!(
        altered,
        serde_json::json!({
            "name": "orders",
            "configs": {"cleanup.policy": "compact", "retention.ms": "7200000"}
        })
    );
    let described = sluice(&broker, &["topic", "describe", "orders", "--json"]).json();
    assert_eq!(
        configs(&described["topics"][0]),
        [
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("retention.ms".to_string(), "7200000".to_string())
        ]
    );

    let deleted = sluice(&broker, &["topic", "delete", "orders", "--json"]).json();
    assert_eq!(deleted["deleted"], serde_json::json!(["orders"]));
    let gone = sluice(&broker, &["topic", "describe", "orders"]);
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        gone.stderr
    );

    let bad_rf = sluice(
        &broker,
        &[
            "topic",
            "create",
            "wide",
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ],
    );
    assert_eq!(bad_rf.code, 1);
    assert!(
        bad_rf.stderr.contains("INVALID_REPLICATION_FACTOR"),
        "{}",
        bad_rf.stderr
    );
}

#[test]
fn produced_lines_come_back_field_by_field() {
    let broker = start_broker();
    sluice(&broker, &["topic", "create", "lines", "--partitions", "2"]).ok();
    let before = now_ms();
    let produced = sluice_with_input(
        &broker,
        &[
            "produce",
            "lines",
            "--partition",
            "1",
            "--key-delimiter",
            ":",
            "--header",
            "source=cli",
            "--header",
            "n=1",
            "--compression",
            "zstd",
            "--json",
        ],
        "k1:first\nk2:second:with colon\nno key here\n",
    )
    .json();
    let after = now_ms();
    assert_eq!(
        produced,
        serde_json::json!({"topic": "lines", "records": 3})
    );

    let formatted = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--partition",
            "1",
            "--from-beginning",
            "--exit",
            "-f",
            "%t|%p|%o|%k|%s|%h|%K|%S\\n",
        ],
    )
    .ok();
    assert_eq!(
        formatted,
        "lines|1|0|k1|first|source=cli,n=1|2|5\n\
         lines|1|1|k2|second:with colon|source=cli,n=1|2|17\n\
         lines|1|2||no key here|source=cli,n=1|-1|11\n"
    );

    let records = sluice(
        &broker,
        &["consume", "lines", "--from-beginning", "--exit", "--json"],
    )
    .json_lines();
    assert_eq!(records.len(), 3, "{records:?}");
    let expected = [
        (0, Value::from("k1"), "first"),
        (1, Value::from("k2"), "second:with colon"),
        (2, Value::Null, "no key here"),
    ];
    for (record, (offset, key, value)) in records.iter().zip(expected) {
        assert_eq!(record["topic"], "lines");
        assert_eq!(record["partition"], 1);
        assert_eq!(record["offset"], offset);
        assert_eq!(record["key"], key);
        assert_eq!(record["value"], value);
        assert_eq!(
            record["headers"],
            serde_json::json!([{"key": "source", "value": "cli"}, {"key": "n", "value": "1"}])
        );
        assert_eq!(record["timestamp_type"], "CreateTime");
        let timestamp = record["timestamp"].as_i64().expect("a timestamp");
        assert!(
            (before..=after).contains(&timestamp),
            "{timestamp} not in {before}..={after}"
        );
    }

    // Offsets, counts and end offsets.
    let from_one = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--partition",
            "1",
            "--offset",
            "1",
            "--count",
            "1",
            "-f",
            "%o %s\\n",
        ],
    )
    .ok();
    assert_eq!(from_one, "1 second:with colon\n");
    let up_to_two = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--partition",
            "1",
            "--from-beginning",
            "--to-offset",
            "2",
            "-f",
            "%o\\n",
        ],
    )
    .ok();
    assert_eq!(up_to_two, "0\n1\n");
    let last = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--partition",
            "1",
            "--offset",
            "-1",
            "--exit",
            "-f",
            "%o\\n",
        ],
    )
    .ok();
    assert_eq!(last, "2\n");

    // Records from a time on.
    std::thread::sleep(Duration::from_millis(20));
    let since = now_ms();
    std::thread::sleep(Duration::from_millis(20));
    sluice(
        &broker,
        &[
            "produce",
            "lines",
            "--partition",
            "1",
            "--value",
            "late",
            "--key",
            "k",
        ],
    )
    .ok();
    let late = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--from-timestamp",
            &since.to_string(),
            "--exit",
            "--json",
        ],
    )
    .json_lines();
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0]["offset"], 3);
    assert_eq!(late[0]["key"], "k");
    assert_eq!(late[0]["value"], "late");
    assert_eq!(late[0]["headers"], serde_json::json!([]));
    // Records up to a time: those before it, and no --exit needed to stop.
    let before_late = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--partition",
            "1",
            "--from-beginning",
            "--to-timestamp",
            &since.to_string(),
            "-f",
            "%o\\n",
        ],
    )
    .ok();
    assert_eq!(before_late, "0\n1\n2\n");
    let up_to_now = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--partition",
            "1",
            "--from-beginning",
            "--to-timestamp",
            &(now_ms() + 3_600_000).to_string(),
            "-f",
            "%o\\n",
        ],
    )
    .ok();
    assert_eq!(up_to_now, "0\n1\n2\n3\n");

    // As a group member: reads from the beginning, commits what it printed.
    let grouped = sluice(
        &broker,
        &[
            "consume",
            "lines",
            "--group",
            "line-readers",
            "--from-beginning",
            "--exit",
            "-f",
            "%o\\n",
        ],
    )
    .ok();
    assert_eq!(grouped, "0\n1\n2\n3\n");
    let described = sluice(&broker, &["group", "describe", "line-readers", "--json"]).json();
    let committed: Vec<(Value, Value, Value)> = described["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["partition"].clone(),
                o["current_offset"].clone(),
                o["lag"].clone(),
            )
        })
        .collect();
    assert_eq!(
        committed,
        [(Value::from(1), Value::from(4), Value::from(0))]
    );

    // Without a bound, SIGINT stops it cleanly.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["consume", "lines", "--bootstrap", &broker.bootstrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice consume");
    std::thread::sleep(Duration::from_secs(2));
    let pid = libc::pid_t::try_from(follower.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on our own child, not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = broker::wait_timeout(&mut follower, Duration::from_secs(10));
    if status.is_none() {
        let _ = follower.kill();
        let _ = follower.wait();
    }
    assert!(status.expect("exits soon after SIGINT").success());

    let empty = sluice(&broker, &["consume", "lines", "--partition", "0", "--exit"]).ok();
    assert_eq!(empty, "");

    let unknown = sluice(&broker, &["consume", "nope", "--exit"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        unknown.stderr
    );
    let bad_format = sluice(&broker, &["consume", "lines", "-f", "%x"]);
    assert_eq!(bad_format.code, 2);
    assert!(
        bad_format.stderr.contains("INVALID_ARGUMENT"),
        "{}",
        bad_format.stderr
    );
}

/// A librdkafka group member of `group` reading `topic`.
fn member(broker: &Broker, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("client.id", "lag-test-client")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("create a group consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

fn offsets_by_partition(described: &Value) -> Vec<(i64, Value, Value, Value)> {
    described["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["topic"], "events");
            (
                o["partition"].as_i64().unwrap(),
                o["current_offset"].clone(),
                o["log_end_offset"].clone(),
                o["lag"].clone(),
            )
        })
        .collect()
}

#[test]
fn group_lag_reset_and_delete() {
    let broker = start_broker();
    sluice(&broker, &["topic", "create", "events", "--partitions", "2"]).ok();
    sluice_with_input(
        &broker,
        &["produce", "events", "--partition", "0"],
        "a\nb\nc\nd\ne\nf\n",
    )
    .ok();
    sluice_with_input(
        &broker,
        &["produce", "events", "--partition", "1"],
        "g\nh\ni\nj\n",
    )
    .ok();

    let consumer = member(&broker, "readers", "events");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < 10 {
        assert!(Instant::now() < deadline, "read only {read} of 10 records");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                assert!(message.payload().is_some());
                read += 1;
            }
            Some(Err(error)) => panic!("consumer error: {error}"),
            None => {}
        }
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    sluice_with_input(
        &broker,
        &["produce", "events", "--partition", "0"],
        "x\ny\nz\n",
    )
    .ok();

    // With the member still in the group: members, assignment, lag.
    let described = sluice(&broker, &["group", "describe", "readers", "--json"]).json();
    assert_eq!(described["group"], "readers");
    assert_eq!(described["state"], "Stable");
    assert_eq!(described["protocol_type"], "consumer");
    let members = described["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{described}");
    assert_eq!(members[0]["client_id"], "lag-test-client");
    assert!(!members[0]["host"].as_str().unwrap().is_empty());
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!([{"topic": "events", "partitions": [0, 1]}])
    );
    let member_id = members[0]["member_id"].clone();
    assert_eq!(
        offsets_by_partition(&described),
        [
            (0, Value::from(6), Value::from(9), Value::from(3)),
            (1, Value::from(4), Value::from(4), Value::from(0)),
        ]
    );
    for o in described["offsets"].as_array().unwrap() {
        assert_eq!(o["consumer_id"], member_id);
        assert_eq!(o["client_id"], "lag-test-client");
    }
    let table = sluice(&broker, &["group", "describe", "readers"]).ok();
    assert!(
        table.contains(
            "GROUP    TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID"
        ),
        "{table}"
    );
    let listed = sluice(&broker, &["group", "list", "--json"]).json();
    assert!(
        listed["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group"] == "readers" && g["state"] == "Stable" && g["members"] == 1),
        "{listed}"
    );

    // Kafka's rule: no reset while the group has members.
    let refused = sluice(
        &broker,
        &[
            "group",
            "reset-offsets",
            "readers",
            "--topic",
            "events",
            "--to-earliest",
        ],
    );
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("NON_EMPTY_GROUP"),
        "{}",
        refused.stderr
    );
    let busy = sluice(&broker, &["group", "delete", "readers"]);
    assert_eq!(busy.code, 1);
    assert!(busy.stderr.contains("NON_EMPTY_GROUP"), "{}", busy.stderr);

    drop(consumer);
    let described = sluice(&broker, &["group", "describe", "readers", "--json"]).json();
    assert_eq!(described["state"], "Empty");
    assert_eq!(described["members"], serde_json::json!([]));
    for o in described["offsets"].as_array().unwrap() {
        assert_eq!(o["consumer_id"], Value::Null);
    }

    // A dry run shows the plan and changes nothing.
    let plan = sluice(
        &broker,
        &[
            "group",
            "reset-offsets",
            "readers",
            "--topic",
            "events:0",
            "--shift-by",
            "-2",
            "--json",
        ],
    )
    .json();
    assert_eq!(
        plan,
        serde_json::json!({
            "group": "readers",
            "executed": false,
            "offsets": [{"topic": "events", "partition": 0, "current_offset": 6, "new_offset": 4}]
        })
    );
    let described = sluice(&broker, &["group", "describe", "readers", "--json"]).json();
    assert_eq!(offsets_by_partition(&described)[0].1, Value::from(6));

    // --execute commits it.
    let done = sluice(
        &broker,
        &[
            "group",
            "reset-offsets",
            "readers",
            "--topic",
            "events",
            "--to-earliest",
            "--execute",
            "--json",
        ],
    )
    .json();
    assert_eq!(done["executed"], true);
    let described = sluice(&broker, &["group", "describe", "readers", "--json"]).json();
    assert_eq!(
        offsets_by_partition(&described),
        [
            (0, Value::from(0), Value::from(9), Value::from(9)),
            (1, Value::from(0), Value::from(4), Value::from(4)),
        ]
    );
    sluice(
        &broker,
        &[
            "group",
            "reset-offsets",
            "readers",
            "--topic",
            "events:1",
            "--to-offset",
            "3",
            "--execute",
        ],
    )
    .ok();
    let described = sluice(&broker, &["group", "describe", "readers", "--json"]).json();
    assert_eq!(offsets_by_partition(&described)[1].1, Value::from(3));

    let deleted = sluice(&broker, &["group", "delete", "readers", "--json"]).json();
    assert_eq!(deleted["deleted"], serde_json::json!(["readers"]));
    let gone = sluice(&broker, &["group", "describe", "readers"]);
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains("GROUP_ID_NOT_FOUND"),
        "{}",
        gone.stderr
    );
}

#[test]
fn cluster_info_and_an_unreachable_broker() {
    let broker = start_broker();
    sluice(&broker, &["topic", "create", "a", "--partitions", "2"]).ok();
    sluice(&broker, &["topic", "create", "b", "--partitions", "3"]).ok();
    let info = sluice(&broker, &["cluster", "info", "--json"]).json();
    assert!(
        !info["cluster_id"]
            .as_str()
            .expect("a cluster id")
            .is_empty()
    );
    assert_eq!(info["controller"], 0);
    assert_eq!(
        info["brokers"],
        serde_json::json!([{"id": 0, "host": "127.0.0.1", "port": broker.port(), "rack": null}])
    );
    assert_eq!(info["topics"], 2);
    assert_eq!(info["partitions"], 5);
    let text = sluice(&broker, &["cluster", "info"]).ok();
    assert!(
        text.contains(&format!("127.0.0.1:{}", broker.port())),
        "{text}"
    );

    // A reserved port nobody listens on: connections are refused.
    let (port, _reservation) = broker::reserve_port();
    let started = Instant::now();
    let unreachable = sluice_at(
        &format!("127.0.0.1:{port}"),
        &["topic", "list", "--timeout", "2"],
        "",
    );
    assert_eq!(unreachable.code, 3, "stderr: {}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("BROKER_UNREACHABLE"),
        "{}",
        unreachable.stderr
    );
    assert!(
        unreachable.stderr.contains("--bootstrap"),
        "{}",
        unreachable.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
