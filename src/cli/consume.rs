//! `sluice consume TOPIC`: prints records from chosen partitions and offsets (or
//! as a member of a consumer group) with kcat's `-f` format or as JSON lines,
//! until a bound (`--count`, `--to-offset`, `--exit` at the end of the
//! partitions) or SIGINT/SIGTERM stops it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, ErrorKind, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, Timestamp, TopicPartitionList};
use serde_json::{Value, json};

use super::connect::{Common, creation};
use super::errors::{CliError, exit, is_transport};
use super::format::{Format, Record};

/// How long one poll waits before the loop checks its stop conditions again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("start").multiple(false)))]
pub struct ConsumeArgs {
    /// Topic to consume.
    pub topic: String,
    /// Only this partition (default: all of them).
    #[arg(long, conflicts_with = "group")]
    pub partition: Option<i32>,
    /// Start at each partition's first offset (default: its end, only new records).
    #[arg(long, group = "start")]
    pub from_beginning: bool,
    /// Start at this offset; a negative N starts N records before the end.
    #[arg(
        long,
        group = "start",
        allow_negative_numbers = true,
        conflicts_with = "group"
    )]
    pub offset: Option<i64>,
    /// Start at the first record whose timestamp is at or after this time (ms since the epoch).
    #[arg(long, group = "start", conflicts_with = "group")]
    pub from_timestamp: Option<i64>,
    /// Stop each partition before this offset (exclusive).
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Stop each partition before its first record at or after this time (ms
    /// since the epoch), as ListOffsets finds it.
    #[arg(long, conflicts_with = "group")]
    pub to_timestamp: Option<i64>,
    /// Stop after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop when every partition has been read to its end (as kcat -e).
    #[arg(short = 'e', long)]
    pub exit: bool,
    /// Consume as a member of this consumer group (subscribe, start at its
    /// committed offsets, commit what was printed).
    #[arg(long)]
    pub group: Option<String>,
    /// Output format with kcat's tokens: %t %p %o %k %s %h %T %K %S, \n \t (default "%s\n").
    #[arg(short = 'f', long, conflicts_with = "json")]
    pub format: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(args: ConsumeArgs) -> ExitCode {
    exit(consume(args))
}

/// Set by SIGINT or SIGTERM: the poll loop stops, output is flushed, group
/// offsets committed.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_stop_handlers() {
    let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// What one record prints as.
enum Output {
    Format(Format),
    Json,
}

fn consume(args: ConsumeArgs) -> Result<(), CliError> {
    let common = &args.common;
    let output = if common.json {
        Output::Json
    } else {
        Output::Format(Format::parse(args.format.as_deref().unwrap_or("%s\\n"))?)
    };
    let mut config = common.client_config();
    config
        .set(
            "enable.partition.eof",
            // Bounded reads also learn at a partition's end that nothing
            // below their bound is left.
            if args.exit || args.to_offset.is_some() || args.to_timestamp.is_some() {
                "true"
            } else {
                "false"
            },
        )
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        );
    match &args.group {
        Some(group) => config
            .set("group.id", group)
            .set("enable.auto.commit", "true"),
        // librdkafka's assign needs a group id; this one never joins a group
        // nor commits, it only names the client.
        None => config
            .set("group.id", "sluice-cli-consume")
            .set("enable.auto.commit", "false"),
    };
    let consumer: BaseConsumer = config.create().map_err(creation)?;
    let metadata = common.metadata(consumer.client(), Some(&args.topic))?;
    let unknown = |what: String| CliError::code(RDKafkaErrorCode::UnknownTopicOrPartition, what);
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == args.topic && t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| unknown(format!("topic {:?}", args.topic)))?;
    let mut partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            return Err(unknown(format!("partition {}:{p}", args.topic)));
        }
        partitions = vec![p];
    }
    if args.group.is_some() {
        consumer
            .subscribe(&[&args.topic])
            .map_err(|e| CliError::kafka(&e, format!("subscribe to {:?}", args.topic)))?;
    } else {
        let start = start_offsets(&consumer, &args, &partitions)?;
        consumer
            .assign(&start)
            .map_err(|e| CliError::kafka(&e, format!("assign {:?}", args.topic)))?;
    }
    let ends = end_offsets(&consumer, &args, &partitions)?;
    install_stop_handlers();
    let printed = poll_loop(&consumer, &args, &output, &partitions, &ends)?;
    if args.group.is_some() && printed > 0 {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) | Ok(()) => {}
            Err(e) => return Err(common.unreachable_or(&e, "OffsetCommit")),
        }
    }
    Ok(())
}

/// Where each partition starts, for a consumer that assigns itself partitions.
fn start_offsets(
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
    partitions: &[i32],
) -> Result<TopicPartitionList, CliError> {
    let common = &args.common;
    let start = if args.from_beginning {
        Offset::Beginning
    } else if let Some(offset) = args.offset {
        if offset >= 0 {
            Offset::Offset(offset)
        } else {
            Offset::OffsetTail(offset.unsigned_abs() as i64)
        }
    } else if let Some(ms) = args.from_timestamp {
        Offset::Offset(ms)
    } else {
        Offset::End
    };
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for &p in partitions {
        tpl.add_partition_offset(&args.topic, p, start)
            .map_err(|e| CliError::kafka(&e, format!("{}:{p}", args.topic)))?;
    }
    if args.from_timestamp.is_some() {
        // The offsets now hold the timestamp; ListOffsets turns them into offsets
        // (`End` where no record is that recent).
        tpl = consumer
            .offsets_for_times(tpl, common.timeout())
            .map_err(|e| common.unreachable_or(&e, "ListOffsets"))?;
    }
    Ok(tpl)
}

/// Where each partition stops (exclusive), from `--to-offset` and
/// `--to-timestamp` (the earlier of the two); empty when neither is given.
fn end_offsets(
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, CliError> {
    let common = &args.common;
    let mut ends: BTreeMap<i32, i64> = match args.to_offset {
        Some(end) => partitions.iter().map(|&p| (p, end)).collect(),
        None => BTreeMap::new(),
    };
    let Some(ms) = args.to_timestamp else {
        return Ok(ends);
    };
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for &p in partitions {
        tpl.add_partition_offset(&args.topic, p, Offset::Offset(ms))
            .map_err(|e| CliError::kafka(&e, format!("{}:{p}", args.topic)))?;
    }
    let found = consumer
        .offsets_for_times(tpl, common.timeout())
        .map_err(|e| common.unreachable_or(&e, "ListOffsets"))?;
    for element in found.elements() {
        let p = element.partition();
        let end = match element.offset() {
            Offset::Offset(offset) => offset,
            // No record that recent: everything there is now.
            _ => {
                consumer
                    .fetch_watermarks(&args.topic, p, common.timeout())
                    .map_err(|e| common.unreachable_or(&e, "ListOffsets"))?
                    .1
            }
        };
        ends.entry(p)
            .and_modify(|bound| *bound = (*bound).min(end))
            .or_insert(end);
    }
    Ok(ends)
}

/// Polls and prints until a stop condition holds; returns how many records it
/// printed.
fn poll_loop(
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
    output: &Output,
    partitions: &[i32],
    ends: &BTreeMap<i32, i64>,
) -> Result<u64, CliError> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut line = Vec::new();
    let mut printed = 0u64;
    // Partitions read to their end (--exit) or to --to-offset.
    let mut done: BTreeSet<i32> = BTreeSet::new();
    loop {
        if STOP.load(Ordering::Relaxed) || args.count.is_some_and(|n| printed >= n) {
            break;
        }
        if (args.exit || !ends.is_empty()) && all_done(consumer, args, partitions, &done) {
            break;
        }
        let message = match consumer.poll(POLL_INTERVAL) {
            None => {
                if !flush(&mut out)? {
                    return Ok(printed);
                }
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                if args.exit || read_to_bound(consumer, &args.topic, partition, ends) {
                    done.insert(partition);
                }
                continue;
            }
            Some(Err(error)) => {
                // librdkafka reconnects by itself; anything else stops the command.
                match error.rdkafka_error_code() {
                    Some(code) if is_transport(code) => continue,
                    _ => return Err(CliError::kafka(&error, format!("consume {:?}", args.topic))),
                }
            }
            Some(Ok(message)) => message,
        };
        if args.exit {
            // A record after an end of partition means the partition grew.
            done.remove(&message.partition());
        }
        if ends
            .get(&message.partition())
            .is_some_and(|&end| message.offset() >= end)
        {
            done.insert(message.partition());
            let mut paused = TopicPartitionList::new();
            paused.add_partition(&args.topic, message.partition());
            consumer
                .pause(&paused)
                .map_err(|e| CliError::kafka(&e, format!("pause {:?}", args.topic)))?;
            continue;
        }
        line.clear();
        render(&message, output, &mut line);
        if let Err(error) = out.write_all(&line) {
            return stopped_writing(error, printed);
        }
        printed += 1;
    }
    flush(&mut out)?;
    Ok(printed)
}

/// At the end of `partition`: whether its position has reached its bound, so
/// nothing below the bound is left to read.
fn read_to_bound(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    ends: &BTreeMap<i32, i64>,
) -> bool {
    let Some(&end) = ends.get(&partition) else {
        return false;
    };
    consumer.position().is_ok_and(|positions| {
        positions
            .find_partition(topic, partition)
            .is_some_and(|p| matches!(p.offset(), Offset::Offset(at) if at >= end))
    })
}

/// Whether every partition being read is done; with a group, the partitions
/// are the ones currently assigned (none yet means not done).
fn all_done(
    consumer: &BaseConsumer,
    args: &ConsumeArgs,
    partitions: &[i32],
    done: &BTreeSet<i32>,
) -> bool {
    if args.group.is_none() {
        return partitions.iter().all(|p| done.contains(p));
    }
    match consumer.assignment() {
        Ok(assigned) if assigned.count() > 0 => assigned
            .elements()
            .iter()
            .all(|e| done.contains(&e.partition())),
        _ => false,
    }
}

/// Flushes stdout; `false` when the reader has gone (a closed pipe).
fn flush(out: &mut impl Write) -> Result<bool, CliError> {
    match out.flush() {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// A write to stdout failed: a closed pipe (`| head`) ends the command quietly.
fn stopped_writing(error: std::io::Error, printed: u64) -> Result<u64, CliError> {
    if error.kind() == ErrorKind::BrokenPipe {
        Ok(printed)
    } else {
        Err(error.into())
    }
}

fn render(message: &BorrowedMessage<'_>, output: &Output, out: &mut Vec<u8>) {
    let headers: Vec<(&str, Option<&[u8]>)> = message
        .headers()
        .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
        .unwrap_or_default();
    let (timestamp, timestamp_type) = match message.timestamp() {
        Timestamp::NotAvailable => (None, None),
        Timestamp::CreateTime(ms) => (Some(ms), Some("CreateTime")),
        Timestamp::LogAppendTime(ms) => (Some(ms), Some("LogAppendTime")),
    };
    let record = Record {
        topic: message.topic(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp,
        key: message.key(),
        value: message.payload(),
        headers,
    };
    match output {
        Output::Format(format) => format.render(&record, out),
        Output::Json => {
            let text =
                |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
            let headers: Vec<Value> = record
                .headers
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": text(*value) }))
                .collect();
            let value = json!({
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp,
                "timestamp_type": timestamp_type,
                "key": text(record.key),
                "value": text(record.value),
                "headers": headers,
            });
            out.extend_from_slice(value.to_string().as_bytes());
            out.push(b'\n');
        }
    }
}
