//! `sluice produce TOPIC`: one record per input line (stdin or `--file`), or the
//! `--value` arguments, with optional keys (`--key-delimiter`), headers,
//! partition, acks and compression; waits until every record is acknowledged.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::json;

use super::connect::{Common, creation};
use super::errors::{CliError, exit};
use super::output::{print_json, print_text};
use super::topic::key_value;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// Topic to produce to.
    pub topic: String,
    /// Split each line at the first occurrence of this string into key and value
    /// (a line without it is a value with a null key).
    #[arg(long)]
    pub key_delimiter: Option<String>,
    /// A header on every record, NAME=VALUE (repeatable).
    #[arg(long = "header", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// Partition to produce to (default: librdkafka's partitioner, by key).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Acknowledgements to wait for: all (-1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "0", "1"])]
    pub acks: String,
    /// Compression codec of the batches.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// Produce this value instead of reading lines (repeatable: one record each).
    #[arg(long = "value", conflicts_with = "file")]
    pub values: Vec<String>,
    /// Key of the --value records.
    #[arg(long, requires = "values")]
    pub key: Option<String>,
    /// Read lines from this file instead of stdin.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Longest input line accepted, in bytes; a longer one stops the command
    /// before it is sent.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_line_bytes: usize,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(args: ProduceArgs) -> ExitCode {
    exit(produce(args))
}

/// Counts acknowledged records and keeps the first failure, from librdkafka's
/// delivery reports (run inside `poll`/`flush` on this thread).
#[derive(Default)]
struct Deliveries {
    acknowledged: AtomicU64,
    failure: Mutex<Option<KafkaError>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
                failure.get_or_insert_with(|| error.clone());
            }
        }
    }
}

/// Splits `line` into key and value at the first `delimiter`.
fn split_line<'a>(line: &'a [u8], delimiter: Option<&[u8]>) -> (Option<&'a [u8]>, &'a [u8]) {
    let Some(delimiter) = delimiter.filter(|d| !d.is_empty()) else {
        return (None, line);
    };
    match line.windows(delimiter.len()).position(|w| w == delimiter) {
        Some(at) => (Some(&line[..at]), &line[at + delimiter.len()..]),
        None => (None, line),
    }
}

/// Reads the next line (without its `\n` or `\r\n`) into `line`; `false` at the
/// end of input. Refuses lines longer than `max` bytes without buffering them.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> Result<bool, CliError> {
    line.clear();
    // One byte more than allowed tells a too-long line from one of exactly `max`.
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(2);
    let read = input.by_ref().take(limit).read_until(b'\n', line)?;
    if read == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    if line.len() > max {
        return Err(CliError::Usage(format!(
            "an input line is longer than --max-line-bytes {max}"
        )));
    }
    Ok(true)
}

fn produce(args: ProduceArgs) -> Result<(), CliError> {
    let common = &args.common;
    let acks = if args.acks == "all" {
        "-1"
    } else {
        args.acks.as_str()
    };
    let producer: BaseProducer<Deliveries> = common
        .client_config()
        .set("acks", acks)
        .set("compression.codec", &args.compression)
        .set("linger.ms", "5")
        // A record not acknowledged within --timeout fails the command.
        .set("message.timeout.ms", common.timeout_ms())
        .create_with_context(Deliveries::default())
        .map_err(creation)?;
    let metadata = common.metadata(producer.client(), Some(&args.topic))?;
    let topic = metadata.topics().iter().find(|t| t.name() == args.topic);
    let unknown = |what: String| CliError::code(RDKafkaErrorCode::UnknownTopicOrPartition, what);
    match topic {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            if let Some(p) = args.partition
                && !t.partitions().iter().any(|q| q.id() == p)
            {
                return Err(unknown(format!("partition {}:{p}", args.topic)));
            }
        }
        _ => return Err(unknown(format!("topic {:?}", args.topic))),
    }
    let mut headers = OwnedHeaders::new_with_capacity(args.headers.len());
    for (key, value) in &args.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    let headers = (!args.headers.is_empty()).then_some(headers);
    let mut sent = 0u64;
    let mut send = |key: Option<&[u8]>, value: &[u8]| -> Result<(), CliError> {
        let mut record = BaseRecord::to(&args.topic).payload(value);
        record.key = key;
        record.partition = args.partition;
        record.headers = headers.clone();
        send_record(&producer, record, common.timeout())?;
        sent += 1;
        Ok(())
    };
    if args.values.is_empty() {
        let input: Box<dyn Read> = match &args.file {
            Some(path) => Box::new(std::fs::File::open(path)?),
            None => Box::new(std::io::stdin().lock()),
        };
        let mut input = BufReader::new(input);
        let delimiter = args.key_delimiter.as_deref().map(str::as_bytes);
        let mut line = Vec::new();
        while read_line(&mut input, &mut line, args.max_line_bytes)? {
            let (key, value) = split_line(&line, delimiter);
            send(key, value)?;
        }
    } else {
        for value in &args.values {
            send(args.key.as_deref().map(str::as_bytes), value.as_bytes())?;
        }
    }
    let flushed = producer.flush(common.timeout());
    if let Some(error) = producer
        .context()
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(common.unreachable_or(&error, &format!("produce to {:?}", args.topic)));
    }
    flushed.map_err(|e| common.unreachable_or(&e, &format!("produce to {:?}", args.topic)))?;
    let acknowledged = producer.context().acknowledged.load(Ordering::Relaxed);
    if common.json {
        print_json(&json!({ "topic": args.topic, "records": acknowledged }))
    } else {
        print_text(&format!(
            "Produced {acknowledged} record(s) to {}.\n",
            args.topic
        ))
    }
}

/// Enqueues `record`, waiting (up to `timeout`) for room when librdkafka's queue
/// is full, and serves delivery reports.
fn send_record<'a>(
    producer: &BaseProducer<Deliveries>,
    mut record: BaseRecord<'a, [u8], [u8]>,
    timeout: Duration,
) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    let topic = record.topic;
    loop {
        match producer.send(record) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                if Instant::now() < deadline =>
            {
                record = returned;
                producer.poll(Duration::from_millis(100));
            }
            Err((error, _)) => return Err(CliError::kafka(&error, format!("record to {topic:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_delimiter() {
        assert_eq!(
            split_line(b"k:v:w", Some(b":")),
            (Some(&b"k"[..]), &b"v:w"[..])
        );
        assert_eq!(split_line(b"novalue", Some(b":")), (None, &b"novalue"[..]));
        assert_eq!(
            split_line(b"k::v", Some(b"::")),
            (Some(&b"k"[..]), &b"v"[..])
        );
        assert_eq!(split_line(b"a:b", None), (None, &b"a:b"[..]));
        assert_eq!(split_line(b":v", Some(b":")), (Some(&b""[..]), &b"v"[..]));
    }

    #[test]
    fn lines_are_read_without_their_ends_and_bounded() {
        let mut input = &b"one\r\ntwo\n\nlast"[..];
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while read_line(&mut input, &mut line, 8).unwrap() {
            lines.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(lines, ["one", "two", "", "last"]);
        let mut long = &b"12345678\n123456789\n"[..];
        assert!(read_line(&mut long, &mut line, 8).unwrap());
        assert_eq!(line, b"12345678");
        assert!(read_line(&mut long, &mut line, 8).is_err());
    }
}
