//! `sluice group list|describe|delete|reset-offsets`: consumer groups through
//! ListGroups, DescribeGroups, OffsetFetch, ListOffsets, OffsetCommit and
//! DeleteGroups, with per-partition lag as `kafka-consumer-groups --describe`
//! shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use futures_lite::future::block_on;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use super::connect::{Common, creation};
use super::errors::{CliError, exit};
use super::output::{Table, join, or_dash, print_json, print_text};
use super::reset::{PartitionOffsets, ResetTo, parse_datetime, target};
use super::topic::{admin, admin_options};

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state and member count.
    List(ListArgs),
    /// Show a group's state, members and per-partition offsets and lag.
    Describe(GroupArgs),
    /// Delete groups (only empty ones: Kafka refuses groups with members).
    Delete(DeleteArgs),
    /// Move an empty group's committed offsets (dry run unless --execute).
    ResetOffsets(ResetArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    /// The group id.
    pub group: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Group ids to delete.
    #[arg(required = true)]
    pub groups: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("to").required(true).multiple(false)))]
pub struct ResetArgs {
    /// The group id.
    pub group: String,
    /// Topic to reset, all its partitions (TOPIC) or some (TOPIC:0,2); repeatable.
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// To each partition's earliest offset.
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    /// To each partition's latest offset (its log end).
    #[arg(long, group = "to")]
    pub to_latest: bool,
    /// To this offset (clamped into the partition's offsets).
    #[arg(long, group = "to")]
    pub to_offset: Option<i64>,
    /// To the first offset at or after this time: RFC 3339 or milliseconds since the epoch.
    #[arg(long, group = "to")]
    pub to_datetime: Option<String>,
    /// By this many offsets from the committed one (negative: back).
    #[arg(long, group = "to", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Commit the new offsets; without it only show them (a dry run).
    #[arg(long)]
    pub execute: bool,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(command: GroupCommand) -> ExitCode {
    exit(match command {
        GroupCommand::List(args) => list(args),
        GroupCommand::Describe(args) => describe(args),
        GroupCommand::Delete(args) => delete(args),
        GroupCommand::ResetOffsets(args) => reset_offsets(args),
    })
}

/// A consumer configured with `group.id` = `group` that never subscribes: it
/// reads and commits the group's offsets without joining it.
fn group_client(common: &Common, group: &str) -> Result<(BaseConsumer, Metadata), CliError> {
    let consumer: BaseConsumer = common
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(creation)?;
    let metadata = common.metadata(consumer.client(), None)?;
    Ok((consumer, metadata))
}

/// The group as DescribeGroups tells it, `None` if no broker knows it.
fn group_info(
    consumer: &BaseConsumer,
    common: &Common,
    group: &str,
) -> Result<Option<Described>, CliError> {
    let list = consumer
        .fetch_group_list(Some(group), common.timeout())
        .map_err(|e| common.unreachable_or(&e, "DescribeGroups"))?;
    Ok(list
        .groups()
        .iter()
        .find(|g| g.name() == group && g.state() != "Dead")
        .map(Described::from))
}

/// What DescribeGroups says about a group, owned.
struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

struct Member {
    id: String,
    client_id: String,
    host: String,
    /// topic -> partitions, from the consumer protocol's assignment.
    assignment: BTreeMap<String, Vec<i32>>,
}

impl From<&GroupInfo> for Described {
    fn from(group: &GroupInfo) -> Described {
        let consumer = group.protocol_type() == "consumer";
        Described {
            state: group.state().to_string(),
            protocol_type: group.protocol_type().to_string(),
            protocol: group.protocol().to_string(),
            members: group
                .members()
                .iter()
                .map(|m| Member {
                    id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    host: m.client_host().to_string(),
                    assignment: m
                        .assignment()
                        .filter(|_| consumer)
                        .and_then(parse_assignment)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// Reads a consumer protocol Assignment (version, [topic, [partition]], user
/// data); `None` if the bytes are not one.
fn parse_assignment(bytes: &[u8]) -> Option<BTreeMap<String, Vec<i32>>> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
            let (head, rest) = self.0.split_at_checked(N)?;
            self.0 = rest;
            head.try_into().ok()
        }
        fn i16(&mut self) -> Option<i16> {
            self.take::<2>().map(i16::from_be_bytes)
        }
        fn i32(&mut self) -> Option<i32> {
            self.take::<4>().map(i32::from_be_bytes)
        }
        /// An array length, refused when it cannot fit in what is left (each
        /// element takes at least `min_size` bytes), so a corrupt one cannot make
        /// the loops below run long.
        fn len(&mut self, min_size: usize) -> Option<usize> {
            let len = usize::try_from(self.i32()?).ok()?;
            (len.checked_mul(min_size)? <= self.0.len()).then_some(len)
        }
        fn string(&mut self) -> Option<String> {
            let len = usize::try_from(self.i16()?).ok()?;
            let (text, rest) = self.0.split_at_checked(len)?;
            self.0 = rest;
            String::from_utf8(text.to_vec()).ok()
        }
    }
    let mut reader = Reader(bytes);
    let mut assignment = BTreeMap::new();
    if bytes.is_empty() {
        return Some(assignment);
    }
    reader.i16()?;
    for _ in 0..reader.len(2 + 4)? {
        let topic = reader.string()?;
        let count = reader.len(4)?;
        let partitions = (0..count)
            .map(|_| reader.i32())
            .collect::<Option<Vec<_>>>()?;
        assignment.insert(topic, partitions);
    }
    Some(assignment)
}

fn list(args: ListArgs) -> Result<(), CliError> {
    let common = &args.common;
    let admin = admin(common)?;
    let list = admin
        .inner()
        .fetch_group_list(None, common.timeout())
        .map_err(|e| common.unreachable_or(&e, "ListGroups"))?;
    let mut groups: Vec<&GroupInfo> = list.groups().iter().collect();
    groups.sort_by_key(|g| g.name());
    if common.json {
        let groups: Vec<Value> = groups
            .iter()
            .map(|g| {
                json!({
                    "group": g.name(),
                    "state": g.state(),
                    "protocol_type": g.protocol_type(),
                    "members": g.members().len(),
                })
            })
            .collect();
        return print_json(&json!({ "groups": groups }));
    }
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "MEMBERS"]);
    for g in groups {
        table.row(vec![
            g.name().to_string(),
            g.state().to_string(),
            g.protocol_type().to_string(),
            g.members().len().to_string(),
        ]);
    }
    table.print()
}

/// One row of `group describe`'s offsets.
struct OffsetRow {
    topic: String,
    partition: i32,
    current: Option<i64>,
    log_end: Option<i64>,
    member: Option<usize>,
}

impl OffsetRow {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.current?).max(0))
    }
}

/// Every partition of every topic but the internal ones (`__*`), for OffsetFetch:
/// rdkafka cannot ask for "all of the group's offsets", so it asks for these.
fn all_partitions(metadata: &Metadata) -> Vec<(String, i32)> {
    metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .flat_map(|t| {
            t.partitions()
                .iter()
                .map(|p| (t.name().to_string(), p.id()))
        })
        .collect()
}

fn tpl_of(partitions: &[(String, i32)], offset: Offset) -> Result<TopicPartitionList, CliError> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        tpl.add_partition_offset(topic, *partition, offset)
            .map_err(|e| CliError::kafka(&e, format!("{topic}:{partition}")))?;
    }
    Ok(tpl)
}

/// Offsets in `tpl` that are real offsets, by (topic, partition).
fn offsets_of(tpl: &TopicPartitionList) -> BTreeMap<(String, i32), i64> {
    tpl.elements()
        .iter()
        .filter(|e| e.error().is_ok())
        .filter_map(|e| match e.offset() {
            Offset::Offset(n) => Some(((e.topic().to_string(), e.partition()), n)),
            _ => None,
        })
        .collect()
}

fn committed(
    consumer: &BaseConsumer,
    common: &Common,
    partitions: &[(String, i32)],
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let tpl = consumer
        .committed_offsets(tpl_of(partitions, Offset::Invalid)?, common.timeout())
        .map_err(|e| common.unreachable_or(&e, "OffsetFetch"))?;
    Ok(offsets_of(&tpl))
}

/// ListOffsets for `partitions`: `Offset::Beginning`, `Offset::End` or
/// `Offset::Offset(timestamp)`.
fn list_offsets(
    consumer: &BaseConsumer,
    common: &Common,
    partitions: &[(String, i32)],
    spec: Offset,
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let tpl = consumer
        .offsets_for_times(tpl_of(partitions, spec)?, common.timeout())
        .map_err(|e| common.unreachable_or(&e, "ListOffsets"))?;
    Ok(offsets_of(&tpl))
}

fn describe(args: GroupArgs) -> Result<(), CliError> {
    let common = &args.common;
    let (consumer, metadata) = group_client(common, &args.group)?;
    let described = group_info(&consumer, common, &args.group)?;
    let committed = committed(&consumer, common, &all_partitions(&metadata))?;
    let Some(group) = described.or_else(|| {
        (!committed.is_empty()).then(|| Described {
            state: "Empty".to_string(),
            protocol_type: "consumer".to_string(),
            protocol: String::new(),
            members: Vec::new(),
        })
    }) else {
        return Err(CliError::code(
            RDKafkaErrorCode::GroupIdNotFound,
            format!("group {:?}", args.group),
        ));
    };
    let mut assigned: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (index, member) in group.members.iter().enumerate() {
        for (topic, partitions) in &member.assignment {
            for &partition in partitions {
                assigned.insert((topic.clone(), partition), index);
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(assigned.keys()).cloned().collect();
    let keys: Vec<(String, i32)> = keys.into_iter().collect();
    let log_ends = list_offsets(&consumer, common, &keys, Offset::End)?;
    let rows: Vec<OffsetRow> = keys
        .iter()
        .map(|key| OffsetRow {
            topic: key.0.clone(),
            partition: key.1,
            current: committed.get(key).copied(),
            log_end: log_ends.get(key).copied(),
            member: assigned.get(key).copied(),
        })
        .collect();
    if common.json {
        return print_json(&describe_json(&args.group, &group, &rows));
    }
    let mut text = format!(
        "Group: {}  State: {}  Protocol: {}  Members: {}\n\n",
        args.group,
        group.state,
        if group.protocol.is_empty() {
            "-"
        } else {
            &group.protocol
        },
        group.members.len()
    );
    let mut offsets = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for row in &rows {
        let member = row.member.map(|i| &group.members[i]);
        offsets.row(vec![
            args.group.clone(),
            row.topic.clone(),
            row.partition.to_string(),
            or_dash(row.current),
            or_dash(row.log_end),
            or_dash(row.lag()),
            or_dash(member.map(|m| &m.id)),
            or_dash(member.map(|m| &m.host)),
            or_dash(member.map(|m| &m.client_id)),
        ]);
    }
    text.push_str(&offsets.render());
    if !group.members.is_empty() {
        let mut members = Table::new(&["CONSUMER-ID", "HOST", "CLIENT-ID", "ASSIGNMENT"]);
        for m in &group.members {
            let assignment: Vec<String> = m
                .assignment
                .iter()
                .map(|(topic, partitions)| format!("{topic}:{}", join(partitions)))
                .collect();
            members.row(vec![
                m.id.clone(),
                m.host.clone(),
                m.client_id.clone(),
                assignment.join(" "),
            ]);
        }
        text.push('\n');
        text.push_str(&members.render());
    }
    print_text(&text)
}

fn describe_json(group_id: &str, group: &Described, rows: &[OffsetRow]) -> Value {
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|m| {
            let assignment: Vec<Value> = m
                .assignment
                .iter()
                .map(|(topic, partitions)| json!({ "topic": topic, "partitions": partitions }))
                .collect();
            json!({
                "member_id": m.id,
                "client_id": m.client_id,
                "host": m.host,
                "assignment": assignment,
            })
        })
        .collect();
    let offsets: Vec<Value> = rows
        .iter()
        .map(|row| {
            let member = row.member.map(|i| &group.members[i]);
            json!({
                "topic": row.topic,
                "partition": row.partition,
                "current_offset": row.current,
                "log_end_offset": row.log_end,
                "lag": row.lag(),
                "consumer_id": member.map(|m| &m.id),
                "host": member.map(|m| &m.host),
                "client_id": member.map(|m| &m.client_id),
            })
        })
        .collect();
    json!({
        "group": group_id,
        "state": group.state,
        "protocol_type": group.protocol_type,
        "protocol": group.protocol,
        "members": members,
        "offsets": offsets,
    })
}

fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let common = &args.common;
    let admin = admin(common)?;
    let groups: Vec<&str> = args.groups.iter().map(String::as_str).collect();
    let results = block_on(admin.delete_groups(&groups, &admin_options(common)))
        .map_err(|e| common.unreachable_or(&e, "DeleteGroups"))?;
    for result in results {
        result.map_err(|(name, code)| CliError::code(code, format!("group {name:?}")))?;
    }
    if common.json {
        print_json(&json!({ "deleted": groups }))
    } else {
        print_text(&format!("Deleted group(s) {}.\n", groups.join(", ")))
    }
}

impl ResetArgs {
    fn reset_to(&self) -> Result<ResetTo, CliError> {
        Ok(if self.to_earliest {
            ResetTo::Earliest
        } else if self.to_latest {
            ResetTo::Latest
        } else if let Some(offset) = self.to_offset {
            ResetTo::Offset(offset)
        } else if let Some(datetime) = &self.to_datetime {
            ResetTo::Datetime(parse_datetime(datetime)?)
        } else if let Some(delta) = self.shift_by {
            ResetTo::ShiftBy(delta)
        } else {
            unreachable!("clap requires one of the --to-* flags")
        })
    }
}

/// The partitions `--topic` names: TOPIC (all of them) or TOPIC:p,q.
fn chosen_partitions(
    specs: &[String],
    metadata: &Metadata,
) -> Result<Vec<(String, i32)>, CliError> {
    let mut chosen = BTreeSet::new();
    for spec in specs {
        let (name, list) = match spec.split_once(':') {
            Some((name, list)) => (name, Some(list)),
            None => (spec.as_str(), None),
        };
        let unknown =
            |what: String| CliError::code(RDKafkaErrorCode::UnknownTopicOrPartition, what);
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none())
            .ok_or_else(|| unknown(format!("topic {name:?}")))?;
        let existing: BTreeSet<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        match list {
            None => chosen.extend(existing.iter().map(|&p| (name.to_string(), p))),
            Some(list) => {
                for part in list.split(',') {
                    let partition: i32 = part.trim().parse().map_err(|_| {
                        CliError::Usage(format!("not a partition number: {part:?} in {spec:?}"))
                    })?;
                    if !existing.contains(&partition) {
                        return Err(unknown(format!("partition {name}:{partition}")));
                    }
                    chosen.insert((name.to_string(), partition));
                }
            }
        }
    }
    Ok(chosen.into_iter().collect())
}

fn reset_offsets(args: ResetArgs) -> Result<(), CliError> {
    let common = &args.common;
    let reset = args.reset_to()?;
    let (consumer, metadata) = group_client(common, &args.group)?;
    let partitions = chosen_partitions(&args.topics, &metadata)?;
    if let Some(group) = group_info(&consumer, common, &args.group)?
        && group.state != "Empty"
    {
        return Err(CliError::Refused {
            name: "NON_EMPTY_GROUP",
            detail: format!(
                "group {:?} is {} with {} member(s); offsets can only be reset while it is empty",
                args.group,
                group.state,
                group.members.len()
            ),
        });
    }
    let current = committed(&consumer, common, &partitions)?;
    let earliest = list_offsets(&consumer, common, &partitions, Offset::Beginning)?;
    let latest = list_offsets(&consumer, common, &partitions, Offset::End)?;
    let by_time = match reset {
        ResetTo::Datetime(ms) => list_offsets(&consumer, common, &partitions, Offset::Offset(ms))?,
        _ => BTreeMap::new(),
    };
    let mut plan = Vec::with_capacity(partitions.len());
    for key in &partitions {
        let subject = format!("partition {}:{}", key.0, key.1);
        let missing = || CliError::code(RDKafkaErrorCode::OffsetNotAvailable, subject.clone());
        let offsets = PartitionOffsets {
            current: current.get(key).copied(),
            earliest: *earliest.get(key).ok_or_else(missing)?,
            latest: *latest.get(key).ok_or_else(missing)?,
            by_time: by_time.get(key).copied(),
        };
        let new = target(reset, offsets).map_err(|why| CliError::Refused {
            name: "NO_COMMITTED_OFFSET",
            detail: format!("{subject}: {why}"),
        })?;
        plan.push((key, offsets.current, new));
    }
    if args.execute {
        let mut tpl = TopicPartitionList::with_capacity(plan.len());
        for ((topic, partition), _, new) in &plan {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*new))
                .map_err(|e| CliError::kafka(&e, format!("{topic}:{partition}")))?;
        }
        consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
            common.unreachable_or(&e, &format!("OffsetCommit for group {:?}", args.group))
        })?;
    } else {
        eprintln!("Dry run: nothing committed; add --execute to reset the offsets.");
    }
    if common.json {
        let offsets: Vec<Value> = plan
            .iter()
            .map(|((topic, partition), current, new)| {
                json!({
                    "topic": topic,
                    "partition": partition,
                    "current_offset": current,
                    "new_offset": new,
                })
            })
            .collect();
        return print_json(&json!({
            "group": args.group,
            "executed": args.execute,
            "offsets": offsets,
        }));
    }
    let mut table = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "NEW-OFFSET",
    ]);
    for ((topic, partition), current, new) in &plan {
        table.row(vec![
            args.group.clone(),
            topic.clone(),
            partition.to_string(),
            or_dash(*current),
            new.to_string(),
        ]);
    }
    table.print()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment_bytes(topics: &[(&str, &[i32])], user_data: &[u8]) -> Vec<u8> {
        let mut bytes = 1i16.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((user_data.len() as i32).to_be_bytes());
        bytes.extend(user_data);
        bytes
    }

    #[test]
    fn consumer_assignments_parse_into_topics_and_partitions() {
        let bytes = assignment_bytes(&[("orders", &[0, 2]), ("audit", &[1])], b"ud");
        let parsed = parse_assignment(&bytes).unwrap();
        assert_eq!(parsed["orders"], vec![0, 2]);
        assert_eq!(parsed["audit"], vec![1]);
        assert_eq!(parse_assignment(&[]).unwrap().len(), 0);
    }

    #[test]
    fn corrupt_assignments_are_refused() {
        let bytes = assignment_bytes(&[("orders", &[0, 2])], b"");
        assert!(parse_assignment(&bytes[..bytes.len() - 9]).is_none());
        let mut huge = 1i16.to_be_bytes().to_vec();
        huge.extend(i32::MAX.to_be_bytes());
        assert!(parse_assignment(&huge).is_none());
    }

    #[test]
    fn lag_is_log_end_minus_committed_when_both_are_known() {
        let row = |current, log_end| OffsetRow {
            topic: "t".into(),
            partition: 0,
            current,
            log_end,
            member: None,
        };
        assert_eq!(row(Some(3), Some(10)).lag(), Some(7));
        assert_eq!(row(None, Some(10)).lag(), None);
        assert_eq!(row(Some(12), Some(10)).lag(), Some(0));
    }
}
