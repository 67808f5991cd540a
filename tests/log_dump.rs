//! `sluice log dump` on a partition the real broker wrote (plain, gzip and
//! transactional batches), then on the same files with a flipped byte and a
//! torn tail; and `sluice serve --log-format json` writing JSON lines.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/kafka.rs"]
mod kafka;

use std::path::Path;
use std::process::Command;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::Value;

use broker::Broker;
use kafka::{OP_TIMEOUT, TestContext, client_config, create_topic, producer};

const TOPIC: &str = "dumped";
/// Compresses well, so the gzip batch is visibly smaller than its records.
const COMPRESSED_VALUE: &str = "gzip gzip gzip gzip gzip gzip gzip gzip gzip gzip gzip gzip";

/// Few internal partitions: the broker starts quickly and the transaction
/// coordinator is ready soon.
fn start_broker(extra: &[&str]) -> Broker {
    let mut args = vec![
        "--transaction-state-log-num-partitions",
        "2",
        "--offsets-topic-num-partitions",
        "2",
    ];
    args.extend_from_slice(extra);
    Broker::start_with_args(&args)
}

async fn send(producer: &FutureProducer<TestContext>, key: &str, value: &str) {
    producer
        .send(
            FutureRecord::to(TOPIC).partition(0).key(key).payload(value),
            OP_TIMEOUT,
        )
        .await
        .unwrap_or_else(|(error, _)| panic!("send {value}: {error}"));
}

/// Runs `sluice log dump` with `args`; its exit code and stdout.
fn run_dump(args: &[&str], dir: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["log", "dump"])
        .args(args)
        .arg(dir)
        .output()
        .expect("run sluice log dump");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let code = output.status.code().expect("exited, not killed");
    // Shown by libtest for a failing test only.
    eprintln!("sluice log dump {args:?}: exit {code}\n{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    (code, stdout)
}

fn dump_json(dir: &Path) -> (i32, Value) {
    let (code, stdout) = run_dump(&["--json", "--records"], dir);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code, value)
}

/// Writes three plain batches, one gzip batch and a committed transaction of
/// two records, then stops the broker cleanly.
async fn produce_and_stop(broker: &mut Broker) {
    create_topic(broker, TOPIC, 1, &[]).await;
    let plain = producer(broker);
    for n in 0..3 {
        send(&plain, &format!("k{n}"), &format!("v{n}")).await;
    }
    let gzip: FutureProducer<TestContext> = client_config(broker)
        .set("compression.type", "gzip")
        .set("linger.ms", "5")
        .create_with_context(TestContext)
        .expect("create a gzip producer");
    send(&gzip, "z", COMPRESSED_VALUE).await;
    let transactional: FutureProducer<TestContext> = client_config(broker)
        .set("transactional.id", "log-dump-test")
        .set("linger.ms", "5")
        .create_with_context(TestContext)
        .expect("create a transactional producer");
    transactional.init_transactions(OP_TIMEOUT).expect("init");
    transactional.begin_transaction().expect("begin");
    send(&transactional, "t0", "in a transaction").await;
    send(&transactional, "t1", "also in it").await;
    transactional
        .commit_transaction(OP_TIMEOUT)
        .expect("commit");
    drop((plain, gzip, transactional));
    broker.stop_gracefully();
}

fn flip_byte(path: &Path, position: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[position as usize] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_shows_what_the_broker_wrote_and_finds_a_flipped_byte_and_a_torn_tail() {
    let mut broker = start_broker(&[]);
    produce_and_stop(&mut broker).await;
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));

    let (code, dump) = dump_json(&dir);
    assert_eq!(code, 0, "{dump:#}");
    assert_eq!(dump["topic"], TOPIC);
    assert_eq!(dump["partition"], 0);
    assert_eq!(dump["summary"]["consistent"], true, "{dump:#}");
    let segments = dump["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1);
    let segment = &segments[0];
    assert_eq!(segment["file"], "00000000000000000000.log");
    assert_eq!(
        segment["zero_filled_bytes"], 0,
        "a clean stop cuts the fill"
    );
    assert_eq!(segment["valid_bytes"], segment["size"]);
    let batches = segment["batches"].as_array().unwrap();
    // 3 plain, 1 gzip, 2 transactional, 1 commit marker.
    assert_eq!(batches.len(), 7, "{dump:#}");
    let mut position = 0;
    for (offset, batch) in batches.iter().enumerate() {
        assert_eq!(batch["crc_ok"], true);
        assert_eq!(batch["crc"], batch["computed_crc"]);
        assert_eq!(batch["magic"], 2);
        assert_eq!(batch["base_offset"], offset);
        assert_eq!(batch["last_offset"], offset);
        assert_eq!(batch["count"], 1);
        assert_eq!(batch["position"], position);
        position += batch["size"].as_u64().unwrap();
    }
    assert_eq!(segment["next_offset"], 7);
    assert_eq!(dump["summary"]["next_offset"], 7);
    assert_eq!(dump["summary"]["batches"], 7);
    assert_eq!(dump["summary"]["records"], 7);
    assert_eq!(batches[1]["records"][0]["key"], "k1");
    assert_eq!(batches[1]["records"][0]["value"], "v1");
    assert_eq!(batches[1]["compression"], "none");
    assert_eq!(batches[3]["compression"], "gzip");
    assert!(batches[3]["size"].as_u64().unwrap() < 61 + COMPRESSED_VALUE.len() as u64);
    assert_eq!(batches[3]["records"][0]["value"], COMPRESSED_VALUE);
    for batch in &batches[4..6] {
        assert_eq!(batch["transactional"], true);
        assert_eq!(batch["control"], false);
        assert!(batch["producer_id"].as_i64().unwrap() >= 0);
    }
    assert_eq!(batches[4]["base_sequence"], 0);
    assert_eq!(batches[5]["base_sequence"], 1);
    assert_eq!(batches[6]["control"], true);
    assert_eq!(batches[6]["marker"]["type"], "COMMIT");
    assert_eq!(batches[6]["records"][0]["marker"]["type"], "COMMIT");
    assert_eq!(batches[6]["producer_id"], batches[4]["producer_id"]);
    let kinds: Vec<&str> = segment["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|index| index["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.starts_with(&["offset", "time"]), "{kinds:?}");
    let checkpoints: Vec<&str> = dump["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect();
    for file in [
        "high-watermark.checkpoint",
        "leader-epoch-checkpoint",
        "log-start-offset.checkpoint",
        "partition.metadata",
        "recovery-point.checkpoint",
    ] {
        assert!(checkpoints.contains(&file), "{file} in {checkpoints:?}");
    }

    let (code, text) = run_dump(&["--records"], &dir);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("batch position=0 base_offset=0 last_offset=0 count=1"),
        "{text}"
    );
    assert!(
        text.contains(r#"| offset=1 "#) && text.contains(r#"key="k1" value="v1""#),
        "{text}"
    );
    assert!(text.contains("COMMIT coordinator_epoch="), "{text}");
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("Summary: consistent: 1 segments, 7 batches, 7 records, offsets 0..7"),
        "{text}"
    );

    // A flipped byte in the records of offset 1.
    let log = dir.join("00000000000000000000.log");
    let bad_position = batches[1]["position"].as_u64().unwrap();
    flip_byte(&log, bad_position + 61 + 3);
    let (code, dump) = dump_json(&dir);
    assert_eq!(code, 1, "{dump:#}");
    assert_eq!(dump["summary"]["consistent"], false);
    let first = &dump["summary"]["problems"][0];
    assert_eq!(first["kind"], "crc_mismatch", "{dump:#}");
    assert_eq!(first["file"], "00000000000000000000.log");
    assert_eq!(first["position"], bad_position);
    assert_eq!(first["offset"], 1);
    let batches_now = dump["segments"][0]["batches"].as_array().unwrap();
    assert_eq!(
        batches_now.len(),
        7,
        "the walk goes on after a CRC mismatch"
    );
    assert_eq!(batches_now[1]["crc_ok"], false);
    assert_ne!(batches_now[1]["crc"], batches_now[1]["computed_crc"]);
    let (code, text) = run_dump(&[], &dir);
    assert_eq!(code, 1);
    assert!(
        text.contains(&format!(
            "CORRUPT 00000000000000000000.log position {bad_position} offset 1: crc_mismatch"
        )),
        "{text}"
    );
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("Summary: CORRUPT: 1 problems, first: 00000000000000000000.log"),
        "{text}"
    );

    // A torn tail: the last batch loses its last bytes.
    let len = std::fs::metadata(&log).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.set_len(len - 3).unwrap();
    drop(file);
    let last_position = batches[6]["position"].as_u64().unwrap();
    let (code, dump) = dump_json(&dir);
    assert_eq!(code, 1);
    let problems = dump["summary"]["problems"].as_array().unwrap();
    let torn = problems
        .iter()
        .find(|p| p["kind"] == "torn_tail")
        .unwrap_or_else(|| panic!("no torn tail in {problems:#?}"));
    assert_eq!(torn["position"], last_position);
    assert_eq!(torn["offset"], 6);
    assert_eq!(dump["segments"][0]["batches"].as_array().unwrap().len(), 6);
    assert_eq!(dump["summary"]["next_offset"], 6);
}

/// A broker killed while it runs leaves the zero fill after its data, and
/// indexes and checkpoints from before: all of it consistent, nothing to report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_brokers_partition_is_consistent() {
    let mut broker = start_broker(&[]);
    create_topic(&broker, TOPIC, 1, &[]).await;
    let plain = producer(&broker);
    for n in 0..5 {
        send(&plain, &format!("k{n}"), &format!("v{n}")).await;
    }
    broker.kill_with_sigkill();
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    let (code, dump) = dump_json(&dir);
    assert_eq!(code, 0, "{dump:#}");
    let segment = &dump["segments"][0];
    assert_eq!(segment["next_offset"], 5);
    assert_eq!(segment["batches"].as_array().unwrap().len(), 5);
    assert!(
        segment["zero_filled_bytes"].as_u64().unwrap() > 0,
        "the fill ahead of the writes is still there: {dump:#}"
    );
}

#[test]
fn a_directory_that_is_no_partition_exits_2() {
    let temp = tempfile::tempdir().unwrap();
    let (code, stdout) = run_dump(&[], temp.path());
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    let (code, _) = run_dump(&["--json"], &temp.path().join("missing-0"));
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_json_log_lines() {
    let mut broker = start_broker(&["--log-format", "json"]);
    create_topic(&broker, "logged", 2, &[]).await;
    broker.stop_gracefully();
    let stderr = broker.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|line| !line.starts_with("==== sluice test harness"))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert!(lines.len() > 5, "{stderr}");
    for line in &lines {
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&line["level"].as_str().unwrap()),
            "{line}"
        );
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let message = |line: &Value| line["fields"]["message"].as_str().unwrap().to_string();
    let created = lines
        .iter()
        .find(|line| message(line) == "topic created" && line["fields"]["topic"] == "logged")
        .unwrap_or_else(|| panic!("no topic creation line in {stderr}"));
    assert_eq!(created["level"], "INFO");
    assert_eq!(created["fields"]["partitions"], 2);
    let opened: Vec<&Value> = lines
        .iter()
        .filter(|line| message(line) == "partition opened" && line["fields"]["topic"] == "logged")
        .collect();
    assert_eq!(opened.len(), 2, "{stderr}");
    assert_eq!(opened[0]["fields"]["log_end_offset"], 0);
    for step in [
        "sluice is serving",
        "closing partitions",
        "partitions closed",
        "sluice stopped",
    ] {
        assert!(
            lines.iter().any(|line| message(line) == step),
            "{step} in {stderr}"
        );
    }
}
