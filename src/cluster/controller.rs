//! The controller's decisions, KRaft style: each request is checked against the
//! committed [`ClusterState`] and turned into the metadata records that carry it
//! out, plus the answer per topic. Pure functions that never change the state:
//! the active controller appends the records to the metadata log, and the
//! change happens when every node applies the committed batch.
//!
//! Each decision must see every earlier one: the active controller decides
//! against the committed state with its own appended-but-uncommitted batches
//! applied (as Kafka's controller does), or keeps one decision in flight.
//! Two decisions made against the same state could both create a topic or
//! the same partition index, and a Partition record out of order is a broken
//! log ([`ClusterState::apply`] asserts on it).

use std::collections::BTreeMap;

use crate::cluster::placement;
use crate::cluster::records::MetadataRecord;
use crate::cluster::state::{ClusterState, PartitionState, TopicState};
use crate::cluster::topic_table::{new_topic_id, validate_topic_name};
use crate::protocol::error_code::ErrorCode;
use crate::types::{LeaderEpoch, NodeId};

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: i32 = 100_000;

/// Fresh topic ids tried before giving up: a random 128-bit id colliding even
/// twice means the generator is broken.
const TOPIC_ID_ATTEMPTS: usize = 8;

/// A topic to create.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual replica assignment: (partition, broker ids); when given, it sets
    /// the partition count and replication factor, which must then be -1.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, Option<String>)>,
    pub validate_only: bool,
}

/// A topic to grow to `count` partitions; `assignments`, when given, names
/// the replicas of each new partition (CreatePartitions' assignments).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PartitionGrowth {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// The outcome of one topic's change.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TopicChangeResult {
    pub name: String,
    pub error: ErrorCode,
    pub message: Option<String>,
}

/// Why a topic change is refused: the Kafka error code and a message for the
/// client.
type Refusal = (ErrorCode, String);

impl TopicChangeResult {
    fn of(name: String, outcome: Result<(), Refusal>) -> TopicChangeResult {
        match outcome {
            Ok(()) => TopicChangeResult {
                name,
                error: ErrorCode::None,
                message: None,
            },
            Err((error, message)) => TopicChangeResult {
                name,
                error,
                message: Some(message),
            },
        }
    }
}

/// The broker configs topic changes depend on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub default_partitions: i32,
    pub default_replication_factor: i16,
}

/// The records to append (empty: nothing to commit) and each topic's answer,
/// to send once the records are committed.
#[derive(Debug, Clone)]
pub struct Decision {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<TopicChangeResult>,
}

/// A broker asking to join, as it sends itself on start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerRegistration {
    pub id: NodeId,
    /// Random per process start.
    pub incarnation: String,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// Decides each topic in order; a topic sees the ones accepted before it in the
/// same request (a repeated name is TOPIC_ALREADY_EXISTS, placement counts
/// their replicas).
pub fn create_topics(state: &ClusterState, topics: Vec<NewTopic>, limits: Limits) -> Decision {
    let mut scratch = state.clone();
    let mut records = Vec::new();
    let results = topics
        .into_iter()
        .map(|topic| {
            let outcome = check_new_topic(&scratch, &topic, limits).map(|created| {
                if !topic.validate_only {
                    replay(&mut scratch, &created);
                    records.extend(created);
                }
            });
            TopicChangeResult::of(topic.name, outcome)
        })
        .collect();
    Decision { records, results }
}

/// Applies records decided earlier in the same request to the scratch copy.
fn replay(scratch: &mut ClusterState, records: &[MetadataRecord]) {
    let offset = scratch.offset;
    for record in records {
        scratch.apply_record(offset, record);
    }
}

fn check_new_topic(
    state: &ClusterState,
    topic: &NewTopic,
    limits: Limits,
) -> Result<Vec<MetadataRecord>, Refusal> {
    validate_topic_name(&topic.name).map_err(|m| (ErrorCode::InvalidTopicException, m))?;
    if state.topics.contains_key(&topic.name) {
        return Err((
            ErrorCode::TopicAlreadyExists,
            format!("topic '{}' already exists", topic.name),
        ));
    }
    let assignment = if topic.assignments.is_empty() {
        let partitions = match topic.partitions {
            -1 => limits.default_partitions,
            n => n,
        };
        check_partition_count(partitions)?;
        let replication_factor = match topic.replication_factor {
            -1 => limits.default_replication_factor,
            n => n,
        };
        let replication_factor = check_replication_factor(state, replication_factor)?;
        placement::place(state, partitions as usize, 0, replication_factor)
            .map_err(|m| (ErrorCode::InvalidReplicationFactor, m))?
    } else {
        check_assignments(state, topic)?
    };
    let configs = check_new_configs(&topic.configs)?;
    let mut records = vec![MetadataRecord::Topic {
        name: topic.name.clone(),
        id: unique_topic_id(state),
    }];
    records.extend(new_partitions(state, &topic.name, 0, assignment));
    if !configs.is_empty() {
        records.push(MetadataRecord::TopicConfigs {
            name: topic.name.clone(),
            configs,
        });
    }
    Ok(records)
}

fn check_partition_count(partitions: i32) -> Result<(), Refusal> {
    if (1..=MAX_PARTITIONS).contains(&partitions) {
        Ok(())
    } else {
        Err((
            ErrorCode::InvalidPartitions,
            format!("{partitions} partitions: must be in 1..={MAX_PARTITIONS}"),
        ))
    }
}

/// A replication factor the cluster can hold now: positive and no more than
/// the live brokers (Kafka's only limit).
fn check_replication_factor(
    state: &ClusterState,
    replication_factor: i16,
) -> Result<usize, Refusal> {
    let refuse = |message: String| Err((ErrorCode::InvalidReplicationFactor, message));
    if replication_factor < 1 {
        return refuse(format!(
            "replication factor {replication_factor}: must be at least 1"
        ));
    }
    let live = state.live_brokers().count();
    if live == 0 {
        return refuse("no live broker to place replicas on".into());
    }
    let replication_factor = usize::try_from(replication_factor).expect("checked positive");
    if replication_factor > live {
        return refuse(format!(
            "replication factor {replication_factor} is larger than the cluster: only {live} live broker{}",
            if live == 1 { "" } else { "s" }
        ));
    }
    Ok(replication_factor)
}

/// A manual assignment as Kafka checks it: partitions 0..n each exactly once,
/// every replica list non-empty, without repeats, of one length, on registered
/// brokers (fenced ones too, as Kafka allows); returns the lists by partition.
fn check_assignments(state: &ClusterState, topic: &NewTopic) -> Result<Vec<Vec<NodeId>>, Refusal> {
    let refuse = |message: String| Err((ErrorCode::InvalidReplicaAssignment, message));
    if topic.partitions != -1 || topic.replication_factor != -1 {
        return Err((
            ErrorCode::InvalidRequest,
            "both a replica assignment and a partition count or replication factor".into(),
        ));
    }
    let count = i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX);
    check_partition_count(count)?;
    let mut by_index: Vec<Option<Vec<NodeId>>> = vec![None; topic.assignments.len()];
    for (partition, brokers) in &topic.assignments {
        let slot = usize::try_from(*partition)
            .ok()
            .and_then(|index| by_index.get_mut(index));
        match slot {
            Some(slot @ None) => *slot = Some(brokers.iter().copied().map(NodeId).collect()),
            _ => return refuse("partitions must be assigned 0..n, each once".into()),
        }
    }
    let lists: Vec<Vec<NodeId>> = by_index
        .into_iter()
        .map(|list| list.expect("every index 0..n seen once"))
        .collect();
    let length = lists[0].len();
    for (partition, replicas) in lists.iter().enumerate() {
        check_replica_list(state, partition, replicas, length)?;
    }
    Ok(lists)
}

/// One partition's replica list of an assignment: `length` distinct
/// registered brokers.
fn check_replica_list(
    state: &ClusterState,
    partition: usize,
    replicas: &[NodeId],
    length: usize,
) -> Result<(), Refusal> {
    let refuse = |message: String| Err((ErrorCode::InvalidReplicaAssignment, message));
    if replicas.is_empty() {
        return refuse(format!("partition {partition} has no replicas"));
    }
    if replicas.len() != length {
        return refuse(format!(
            "partition {partition} has {} replicas, the topic has {length}: all must have the same number",
            replicas.len()
        ));
    }
    if let Some(repeated) = replicas
        .iter()
        .enumerate()
        .find_map(|(i, id)| replicas[..i].contains(id).then_some(id))
    {
        return refuse(format!(
            "partition {partition} lists broker {repeated} twice"
        ));
    }
    if let Some(unknown) = replicas.iter().find(|id| !state.brokers.contains_key(id)) {
        return refuse(format!(
            "partition {partition} is assigned to broker {unknown}, which is not registered"
        ));
    }
    Ok(())
}

fn check_new_configs(
    configs: &[(String, Option<String>)],
) -> Result<BTreeMap<String, String>, Refusal> {
    configs
        .iter()
        .map(|(name, value)| {
            let value = value.clone().ok_or((
                ErrorCode::InvalidConfig,
                format!("config {name} has no value"),
            ))?;
            crate::cluster::topic_config::validate(name, &value)
                .map_err(|m| (ErrorCode::InvalidConfig, m))?;
            Ok((name.clone(), value))
        })
        .collect()
}

/// A topic id no existing topic has.
fn unique_topic_id(state: &ClusterState) -> String {
    (0..TOPIC_ID_ATTEMPTS)
        .map(|_| new_topic_id())
        .find(|id| state.topics.values().all(|topic| &topic.id != id))
        .expect("the random topic id generator keeps repeating existing ids")
}

/// Partition records for new partitions from `first` on: every replica in sync
/// (they are all empty), led by the first live one.
fn new_partitions(
    state: &ClusterState,
    topic: &str,
    first: i32,
    assignment: Vec<Vec<NodeId>>,
) -> impl Iterator<Item = MetadataRecord> {
    let leaders: Vec<NodeId> = assignment
        .iter()
        .map(|replicas| {
            replicas
                .iter()
                .copied()
                .find(|&id| state.is_live(id))
                .unwrap_or(NodeId::NONE)
        })
        .collect();
    let topic = topic.to_string();
    (first..).zip(assignment.into_iter().zip(leaders)).map(
        move |(partition, (replicas, leader))| MetadataRecord::Partition {
            topic: topic.clone(),
            partition,
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: LeaderEpoch(0),
        },
    )
}

/// Grows topics to the given partition counts (never shrinks them), with the
/// replication factor each topic already has.
pub fn create_partitions(
    state: &ClusterState,
    topics: Vec<PartitionGrowth>,
    validate_only: bool,
    limits: Limits,
) -> Decision {
    let mut scratch = state.clone();
    let mut records = Vec::new();
    let results = topics
        .into_iter()
        .map(|growth| {
            let name = growth.name.clone();
            let outcome = grow(&scratch, growth, limits).map(|added| {
                if !validate_only {
                    replay(&mut scratch, &added);
                    records.extend(added);
                }
            });
            TopicChangeResult::of(name, outcome)
        })
        .collect();
    Decision { records, results }
}

fn grow(
    state: &ClusterState,
    growth: PartitionGrowth,
    limits: Limits,
) -> Result<Vec<MetadataRecord>, Refusal> {
    let PartitionGrowth {
        name,
        count,
        assignments,
    } = growth;
    let name = name.as_str();
    let Some(topic) = state.topics.get(name) else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("topic {name} does not exist"),
        ));
    };
    let current = i32::try_from(topic.partitions.len()).expect("partition counts fit in i32");
    if count <= current {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("topic {name} has {current} partitions; {count} would not add any"),
        ));
    }
    if count > MAX_PARTITIONS {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("{count} partitions: at most {MAX_PARTITIONS}"),
        ));
    }
    let replication_factor = topic
        .partitions
        .first()
        .map_or(limits.default_replication_factor, |p| {
            i16::try_from(p.replicas.len()).unwrap_or(i16::MAX)
        });
    let added = (count - current) as usize;
    let assignment = match assignments {
        // As Kafka: one list per new partition, each of the topic's factor.
        Some(lists) => {
            if lists.len() != added {
                return Err((
                    ErrorCode::InvalidReplicaAssignment,
                    format!(
                        "increasing the number of partitions by {added} but {} assignments provided",
                        lists.len()
                    ),
                ));
            }
            let length = usize::try_from(replication_factor).unwrap_or(0);
            let lists: Vec<Vec<NodeId>> = lists
                .into_iter()
                .map(|list| list.into_iter().map(NodeId).collect())
                .collect();
            for (offset, replicas) in lists.iter().enumerate() {
                check_replica_list(state, current as usize + offset, replicas, length)?;
            }
            lists
        }
        None => {
            let replication_factor = check_replication_factor(state, replication_factor)?;
            placement::place(state, added, current, replication_factor)
                .map_err(|m| (ErrorCode::InvalidReplicationFactor, m))?
        }
    };
    Ok(new_partitions(state, name, current, assignment).collect())
}

/// Replaces the config overrides of `topic`.
pub fn set_topic_configs(
    state: &ClusterState,
    topic: String,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Decision {
    let outcome = if state.topics.contains_key(&topic) {
        configs
            .iter()
            .try_for_each(|(name, value)| crate::cluster::topic_config::validate(name, value))
            .map_err(|m| (ErrorCode::InvalidConfig, m))
    } else {
        Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("topic {topic} does not exist"),
        ))
    };
    let records = if outcome.is_ok() && !validate_only {
        vec![MetadataRecord::TopicConfigs {
            name: topic.clone(),
            configs,
        }]
    } else {
        Vec::new()
    };
    Decision {
        records,
        results: vec![TopicChangeResult::of(topic, outcome)],
    }
}

/// Removes each named topic; a name repeated in the request is unknown the
/// second time, as the first already removed it.
pub fn delete_topics(state: &ClusterState, names: Vec<String>) -> Decision {
    let mut records = Vec::new();
    let results = names
        .into_iter()
        .map(|name| {
            let removed = MetadataRecord::RemoveTopic { name: name.clone() };
            let error = if state.topics.contains_key(&name) && !records.contains(&removed) {
                records.push(removed);
                ErrorCode::None
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            TopicChangeResult {
                name,
                error,
                message: None,
            }
        })
        .collect();
    Decision { records, results }
}

/// Registers a broker (fenced until it has caught up). The same registration
/// sent again (a retry after a lost answer) writes nothing: the broker keeps
/// the epoch it has. A new incarnation gets a new registration and epoch; if
/// the old one was still unfenced, its leaderships move away first, as on
/// fencing, since the restarted broker leads nothing until it is unfenced.
pub fn register_broker(state: &ClusterState, r: BrokerRegistration) -> Vec<MetadataRecord> {
    let current = state.brokers.get(&r.id);
    let retried = current.is_some_and(|current| {
        current.incarnation == r.incarnation
            && current.host == r.host
            && current.port == r.port
            && current.rack == r.rack
    });
    if retried {
        return Vec::new();
    }
    // A restarted broker hands its leaderships to other live ISR members; one
    // that is the only live replica keeps it (while fenced, nobody is served;
    // unfenced, the same log leads again in the same epoch). Moving it to no
    // leader and back would only bump every such partition's epoch twice, and
    // cost a restart with thousands of single-replica partitions seconds.
    let mut records = if current.is_some_and(|current| !current.fenced) {
        move_away(state, r.id, KeepSole::Yes, false)
    } else {
        Vec::new()
    };
    records.push(MetadataRecord::RegisterBroker {
        id: r.id,
        incarnation: r.incarnation,
        host: r.host,
        port: r.port,
        rack: r.rack,
    });
    records
}

/// Whether `epoch` is the current registration of `id`: requests from an
/// older incarnation change nothing.
fn current_registration(state: &ClusterState, id: NodeId, epoch: i64) -> Option<bool> {
    state
        .brokers
        .get(&id)
        .filter(|broker| broker.epoch == epoch)
        .map(|broker| broker.fenced)
}

/// Whether an out-of-sync replica may lead `topic` when no ISR member can:
/// its `unclean.leader.election.enable` override, else the broker's
/// (`unclean_default`).
fn unclean_allowed(topic: &TopicState, unclean_default: bool) -> bool {
    topic
        .configs
        .get("unclean.leader.election.enable")
        .map_or(unclean_default, |value| value.eq_ignore_ascii_case("true"))
}

/// Unfences a caught-up broker and gives it the leadership of every partition
/// left without a leader whose ISR still holds it, and, where unclean election
/// is allowed (`unclean_default`: the broker's
/// `unclean.leader.election.enable`, for topics without an override), of every
/// leaderless partition it is a replica of, with an ISR of itself alone.
pub fn unfence_broker(
    state: &ClusterState,
    id: NodeId,
    epoch: i64,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    if current_registration(state, id, epoch) != Some(true) {
        return Vec::new();
    }
    let mut records = vec![MetadataRecord::UnfenceBroker { id, epoch }];
    records.extend(changes(state, |topic, partition| {
        if partition.leader != NodeId::NONE || !partition.replicas.contains(&id) {
            None
        } else if partition.isr.contains(&id) {
            Some((Some(id), None))
        } else {
            unclean_allowed(topic, unclean_default).then(|| (Some(id), Some(vec![id])))
        }
    }));
    records
}

/// Fences a broker (its session expired) and moves its leaderships away
/// (`unclean_default` as for [`unfence_broker`]).
pub fn fence_broker(
    state: &ClusterState,
    id: NodeId,
    epoch: i64,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    if current_registration(state, id, epoch) != Some(false) {
        return Vec::new();
    }
    let mut records = vec![MetadataRecord::FenceBroker { id, epoch }];
    records.extend(move_away(state, id, KeepSole::No, unclean_default));
    records
}

/// A clean shutdown: leaderships are handed over first, then the broker is
/// fenced, all in one batch (`unclean_default` as for [`unfence_broker`]).
pub fn controlled_shutdown(
    state: &ClusterState,
    id: NodeId,
    epoch: i64,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    if current_registration(state, id, epoch) != Some(false) {
        return Vec::new();
    }
    let mut records = move_away(state, id, KeepSole::No, unclean_default);
    records.push(MetadataRecord::FenceBroker { id, epoch });
    records
}

/// Whether a broker leaving keeps the partitions no other live ISR member can lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeepSole {
    Yes,
    No,
}

/// Takes `id` out of every partition: a partition it leads goes to the first
/// other unfenced ISR member in replica order; failing that, where unclean
/// election is allowed (and the leadership is not kept), to the first other
/// unfenced replica with an ISR of itself alone; else to no leader. `id`
/// leaves the ISR unless it is the last member (KRaft keeps the last one, so
/// the partition knows which replica has every acknowledged record).
fn move_away(
    state: &ClusterState,
    id: NodeId,
    keep_sole: KeepSole,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    changes(state, |topic, partition| {
        let other_live = |r: &NodeId| *r != id && state.is_live(*r);
        let successor = partition
            .replicas
            .iter()
            .copied()
            .find(|r| other_live(r) && partition.isr.contains(r));
        if partition.leader == id
            && successor.is_none()
            && keep_sole == KeepSole::No
            && unclean_allowed(topic, unclean_default)
            && let Some(unclean) = partition.replicas.iter().copied().find(other_live)
        {
            return Some((Some(unclean), Some(vec![unclean])));
        }
        let leader = match (partition.leader == id, successor, keep_sole) {
            (false, _, _) | (true, None, KeepSole::Yes) => None,
            (true, successor, _) => Some(successor.unwrap_or(NodeId::NONE)),
        };
        let isr = (partition.isr.contains(&id) && partition.isr.len() > 1)
            .then(|| partition.isr.iter().copied().filter(|&r| r != id).collect());
        (leader.is_some() || isr.is_some()).then_some((leader, isr))
    })
}

/// A PartitionChange for every partition `change` returns a new leader and/or
/// ISR for, in topic and partition order.
fn changes(
    state: &ClusterState,
    change: impl Fn(&TopicState, &PartitionState) -> Option<(Option<NodeId>, Option<Vec<NodeId>>)>,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for (topic, topic_state) in &state.topics {
        for (partition, current) in (0..).zip(&topic_state.partitions) {
            if let Some((leader, isr)) = change(topic_state, current) {
                records.push(MetadataRecord::PartitionChange {
                    topic: topic.clone(),
                    partition,
                    leader,
                    isr,
                    replicas: None,
                });
            }
        }
    }
    records
}

/// A partition leader asking to change the partition's ISR (Kafka's
/// AlterPartition, KIP-497): the ISR it wants, decided against the leader and
/// partition epochs it last saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionRequest {
    pub broker: NodeId,
    /// The requesting broker's epoch: a request from an earlier registration
    /// (a restarted broker's old process) changes nothing.
    pub broker_epoch: i64,
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub isr: Vec<NodeId>,
}

/// Checks an ISR change as KRaft's controller does and returns the record that
/// makes it (none when the ISR already is the one asked for), or the Kafka
/// error the leader gets: STALE_BROKER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION,
/// NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION (the
/// partition changed since the leader saw it), INVALID_REQUEST (an ISR that is
/// empty, repeats a broker, leaves out the leader or names a non-replica) or
/// INELIGIBLE_REPLICA (a new member that is fenced or not registered).
pub fn alter_partition(
    state: &ClusterState,
    request: &AlterPartitionRequest,
) -> Result<Vec<MetadataRecord>, ErrorCode> {
    if current_registration(state, request.broker, request.broker_epoch).is_none() {
        return Err(ErrorCode::StaleBrokerEpoch);
    }
    let partition = state
        .partition(&request.topic, request.partition)
        .ok_or(ErrorCode::UnknownTopicOrPartition)?;
    if partition.leader != request.broker {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    if partition.leader_epoch != request.leader_epoch {
        return Err(ErrorCode::FencedLeaderEpoch);
    }
    if partition.partition_epoch != request.partition_epoch {
        return Err(ErrorCode::InvalidUpdateVersion);
    }
    let isr = &request.isr;
    let repeats = isr.iter().enumerate().any(|(i, id)| isr[..i].contains(id));
    if isr.is_empty()
        || repeats
        || !isr.contains(&request.broker)
        || isr.iter().any(|id| !partition.replicas.contains(id))
    {
        return Err(ErrorCode::InvalidRequest);
    }
    if isr
        .iter()
        .any(|&id| !partition.isr.contains(&id) && !state.is_live(id))
    {
        return Err(ErrorCode::IneligibleReplica);
    }
    if *isr == partition.isr {
        return Ok(Vec::new());
    }
    Ok(vec![MetadataRecord::PartitionChange {
        topic: request.topic.clone(),
        partition: request.partition,
        leader: None,
        isr: Some(isr.clone()),
        replicas: None,
    }])
}

/// Kafka's `leader.imbalance.per.broker.percentage` default: the share of a
/// broker's preferred partitions it may not lead before a rebalance.
pub const LEADER_IMBALANCE_PERCENTAGE: usize = 10;

/// The automatic leader rebalance (Kafka's `auto.leader.rebalance.enable`):
/// for each broker that does not lead more than
/// [`LEADER_IMBALANCE_PERCENTAGE`] of the partitions it is the preferred
/// replica (the first) of, every such partition where it is live and in the
/// ISR gets it back as leader.
pub fn rebalance_leaders(state: &ClusterState) -> Vec<MetadataRecord> {
    // Per preferred replica: its partitions, and those it does not lead.
    let mut preferred: BTreeMap<NodeId, (usize, usize)> = BTreeMap::new();
    for partition in state.topics.values().flat_map(|t| &t.partitions) {
        if let Some(&first) = partition.replicas.first() {
            let counts = preferred.entry(first).or_default();
            counts.0 += 1;
            counts.1 += usize::from(partition.leader != first);
        }
    }
    let imbalanced = |id: NodeId| {
        preferred.get(&id).is_some_and(|&(total, elsewhere)| {
            elsewhere * 100 > total * LEADER_IMBALANCE_PERCENTAGE
        })
    };
    changes(state, |_, partition| {
        let first = *partition.replicas.first()?;
        (partition.leader != first
            && partition.isr.contains(&first)
            && state.is_live(first)
            && imbalanced(first))
        .then_some((Some(first), None))
    })
}

/// Which leader an ElectLeaders request asks for (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Election {
    /// The preferred replica (the first) leads again, if it is live and in sync.
    Preferred,
    /// A partition without a leader gets one, out of sync if need be (KIP-460).
    Unclean,
}

/// The outcome of an election for one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    pub error: ErrorCode,
}

/// Kafka's ElectLeaders (KIP-183, KIP-460) as KRaft's controller decides it,
/// for `partitions` (each once, in request order), or for every partition when
/// `None`, reporting then only the partitions that needed an election.
/// A preferred election makes the first replica leader when it is live and in
/// the ISR (PREFERRED_LEADER_NOT_AVAILABLE otherwise; ELECTION_NOT_NEEDED when
/// it already leads). An unclean election gives a partition without a leader
/// its first live ISR member in replica order, else its first live replica with
/// an ISR of itself alone, whatever `unclean.leader.election.enable` says: the
/// operator asked for it (ELECTION_NOT_NEEDED when it has a leader,
/// ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is live).
pub fn elect_leaders(
    state: &ClusterState,
    election: Election,
    partitions: Option<Vec<(String, i32)>>,
) -> (Vec<ElectionResult>, Vec<MetadataRecord>) {
    let all = partitions.is_none();
    let partitions = partitions.unwrap_or_else(|| {
        state
            .topics
            .iter()
            .flat_map(|(name, topic)| (0..).zip(&topic.partitions).map(|(p, _)| (name.clone(), p)))
            .collect()
    });
    let mut results = Vec::new();
    let mut records = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (topic, partition) in partitions {
        if !seen.insert((topic.clone(), partition)) {
            continue;
        }
        let outcome = state
            .partition(&topic, partition)
            .ok_or(ErrorCode::UnknownTopicOrPartition)
            .and_then(|current| elect(state, election, current));
        let error = match outcome {
            Ok((leader, isr)) => {
                records.push(MetadataRecord::PartitionChange {
                    topic: topic.clone(),
                    partition,
                    leader: Some(leader),
                    isr,
                    replicas: None,
                });
                ErrorCode::None
            }
            Err(error) => error,
        };
        if !(all && error == ErrorCode::ElectionNotNeeded) {
            results.push(ElectionResult {
                topic,
                partition,
                error,
            });
        }
    }
    (results, records)
}

/// The new leader of `partition` (and its new ISR, if it changes) for one
/// [`elect_leaders`] election, or why there is none.
fn elect(
    state: &ClusterState,
    election: Election,
    partition: &PartitionState,
) -> Result<(NodeId, Option<Vec<NodeId>>), ErrorCode> {
    match election {
        Election::Preferred => {
            let &first = partition
                .replicas
                .first()
                .ok_or(ErrorCode::PreferredLeaderNotAvailable)?;
            if partition.leader == first {
                Err(ErrorCode::ElectionNotNeeded)
            } else if partition.isr.contains(&first) && state.is_live(first) {
                Ok((first, None))
            } else {
                Err(ErrorCode::PreferredLeaderNotAvailable)
            }
        }
        Election::Unclean => {
            if partition.leader != NodeId::NONE {
                return Err(ErrorCode::ElectionNotNeeded);
            }
            let live = |r: &&NodeId| state.is_live(**r);
            if let Some(&clean) = partition
                .replicas
                .iter()
                .filter(live)
                .find(|r| partition.isr.contains(r))
            {
                return Ok((clean, None));
            }
            partition
                .replicas
                .iter()
                .find(live)
                .map(|&unclean| (unclean, Some(vec![unclean])))
                .ok_or(ErrorCode::EligibleLeadersNotAvailable)
        }
    }
}

/// Hands `broker` the next block of `block_size` producer ids; returns the
/// first id of the block. Blocks never overlap once the record is applied.
pub fn allocate_producer_ids(
    state: &ClusterState,
    broker: NodeId,
    block_size: i64,
) -> (i64, Vec<MetadataRecord>) {
    assert!(block_size > 0, "producer id block of {block_size}");
    let first = state.next_producer_id;
    let next = first
        .checked_add(block_size)
        .expect("2^63 producer ids are never handed out");
    (first, vec![MetadataRecord::ProducerIds { broker, next }])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        default_partitions: 3,
        default_replication_factor: 1,
    };

    /// Replicated by default.
    const REPLICATED: Limits = Limits {
        default_partitions: 6,
        default_replication_factor: 3,
    };

    fn growth(name: &str, count: i32) -> PartitionGrowth {
        PartitionGrowth {
            name: name.into(),
            count,
            assignments: None,
        }
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
            validate_only: false,
        }
    }

    fn registration(id: i32, incarnation: &str) -> BrokerRegistration {
        BrokerRegistration {
            id: NodeId(id),
            incarnation: incarnation.into(),
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        }
    }

    /// Commits `records` as the next batch.
    fn commit(state: &mut ClusterState, records: &[MetadataRecord]) {
        let offset = state.offset + 1;
        state.apply(offset, records);
    }

    /// A cluster of `brokers` registered and unfenced brokers, ids 1..=n.
    fn cluster(brokers: i32) -> ClusterState {
        let mut state = ClusterState::default();
        for id in 1..=brokers {
            let records = register_broker(&state, registration(id, "first"));
            commit(&mut state, &records);
            let epoch = state.brokers[&NodeId(id)].epoch;
            let records = unfence_broker(&state, NodeId(id), epoch, false);
            commit(&mut state, &records);
        }
        state
    }

    fn errors(decision: &Decision) -> Vec<ErrorCode> {
        decision.results.iter().map(|r| r.error).collect()
    }

    fn epoch(state: &ClusterState, id: i32) -> i64 {
        state.brokers[&NodeId(id)].epoch
    }

    #[test]
    fn topics_are_created_with_the_default_replication_factor_and_checked() {
        let mut state = cluster(3);
        let decision = create_topics(
            &state,
            vec![new_topic("a", -1), new_topic("a", 1), new_topic("b c", 1)],
            LIMITS,
        );
        assert_eq!(
            errors(&decision),
            vec![
                ErrorCode::None,
                ErrorCode::TopicAlreadyExists,
                ErrorCode::InvalidTopicException
            ]
        );
        assert!(state.topics.is_empty(), "decisions never change the state");
        commit(&mut state, &decision.records);
        let topic = &state.topics["a"];
        assert_eq!(topic.id.len(), 32);
        assert_eq!(topic.partitions.len(), 3);
        let mut leaders: Vec<NodeId> = topic.partitions.iter().map(|p| p.leader).collect();
        leaders.sort();
        assert_eq!(leaders, vec![NodeId(1), NodeId(2), NodeId(3)]);
        for partition in &topic.partitions {
            assert_eq!(partition.replicas, vec![partition.leader]);
            assert_eq!(partition.isr, partition.replicas);
            assert_eq!(partition.leader_epoch, LeaderEpoch(0));
        }
        let again = create_topics(&state, vec![new_topic("a", 1)], LIMITS);
        assert_eq!(errors(&again), vec![ErrorCode::TopicAlreadyExists]);
        assert!(again.records.is_empty());
        for bad in [0, -2, MAX_PARTITIONS + 1] {
            let refused = create_topics(&state, vec![new_topic("p", bad)], LIMITS);
            assert_eq!(errors(&refused), vec![ErrorCode::InvalidPartitions]);
        }
    }

    #[test]
    fn validate_only_and_bad_configs_write_nothing() {
        let state = cluster(1);
        let checked = create_topics(
            &state,
            vec![NewTopic {
                validate_only: true,
                ..new_topic("v", 2)
            }],
            LIMITS,
        );
        assert_eq!(errors(&checked), vec![ErrorCode::None]);
        assert!(checked.records.is_empty());
        for value in [Some("soon".to_string()), None] {
            let refused = create_topics(
                &state,
                vec![NewTopic {
                    configs: vec![("retention.ms".into(), value)],
                    ..new_topic("c", 1)
                }],
                LIMITS,
            );
            assert_eq!(errors(&refused), vec![ErrorCode::InvalidConfig]);
            assert!(refused.records.is_empty());
        }
        let configured = create_topics(
            &state,
            vec![NewTopic {
                configs: vec![("retention.ms".into(), Some("1000".into()))],
                ..new_topic("c", 1)
            }],
            LIMITS,
        );
        let mut state = state;
        commit(&mut state, &configured.records);
        assert_eq!(state.topics["c"].configs["retention.ms"], "1000");
    }

    #[test]
    fn a_replication_factor_beyond_the_live_brokers_is_refused() {
        let mut state = cluster(2);
        let refused = create_topics(
            &state,
            vec![NewTopic {
                replication_factor: 3,
                ..new_topic("r", 1)
            }],
            REPLICATED,
        );
        assert_eq!(errors(&refused), vec![ErrorCode::InvalidReplicationFactor]);
        let message = refused.results[0].message.clone().unwrap();
        assert!(message.contains("only 2 live brokers"), "{message}");
        let refused = create_topics(
            &state,
            vec![NewTopic {
                replication_factor: 0,
                ..new_topic("r", 1)
            }],
            LIMITS,
        );
        assert_eq!(errors(&refused), vec![ErrorCode::InvalidReplicationFactor]);
        let records = fence_broker(&state, NodeId(1), epoch(&state, 1), false);
        commit(&mut state, &records);
        let records = fence_broker(&state, NodeId(2), epoch(&state, 2), false);
        commit(&mut state, &records);
        let refused = create_topics(&state, vec![new_topic("r", 1)], LIMITS);
        assert_eq!(errors(&refused), vec![ErrorCode::InvalidReplicationFactor]);
        assert!(
            refused.results[0]
                .message
                .clone()
                .unwrap()
                .contains("no live broker")
        );
    }

    #[test]
    fn replicated_topics_spread_over_three_brokers() {
        let mut state = cluster(3);
        let decision = create_topics(&state, vec![new_topic("r", -1)], REPLICATED);
        assert_eq!(errors(&decision), vec![ErrorCode::None]);
        commit(&mut state, &decision.records);
        let mut led = BTreeMap::new();
        for partition in &state.topics["r"].partitions {
            let mut replicas = partition.replicas.clone();
            replicas.sort();
            assert_eq!(replicas, vec![NodeId(1), NodeId(2), NodeId(3)]);
            assert_eq!(partition.leader, partition.replicas[0]);
            *led.entry(partition.leader).or_insert(0) += 1;
        }
        assert_eq!(led.into_values().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn manual_assignments_are_checked_as_kafka_does() {
        let mut state = cluster(2);
        let records = register_broker(&state, registration(3, "fenced"));
        commit(&mut state, &records);
        let assigned = |assignments: Vec<(i32, Vec<i32>)>| NewTopic {
            assignments,
            ..new_topic("m", -1)
        };
        let created = create_topics(
            &state,
            vec![assigned(vec![(1, vec![2]), (0, vec![3]), (2, vec![1])])],
            LIMITS,
        );
        assert_eq!(errors(&created), vec![ErrorCode::None]);
        let mut applied = state.clone();
        commit(&mut applied, &created.records);
        let partitions = &applied.topics["m"].partitions;
        let leaders: Vec<NodeId> = partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, vec![NodeId::NONE, NodeId(2), NodeId(1)]);
        assert_eq!(partitions[0].isr, vec![NodeId(3)]);
        for bad in [
            vec![(0, vec![9])],
            vec![(0, vec![1]), (2, vec![1])],
            vec![(0, vec![1]), (0, vec![2])],
            vec![(0, vec![])],
            vec![(-1, vec![1])],
        ] {
            let refused = create_topics(&state, vec![assigned(bad.clone())], LIMITS);
            assert_eq!(
                errors(&refused),
                vec![ErrorCode::InvalidReplicaAssignment],
                "{bad:?}"
            );
        }
        for bad in [vec![(0, vec![1, 1])], vec![(0, vec![1, 2]), (1, vec![1])]] {
            let refused = create_topics(&state, vec![assigned(bad.clone())], REPLICATED);
            assert_eq!(
                errors(&refused),
                vec![ErrorCode::InvalidReplicaAssignment],
                "{bad:?}"
            );
        }
        let replicated = create_topics(&state, vec![assigned(vec![(0, vec![2, 1])])], REPLICATED);
        assert_eq!(errors(&replicated), vec![ErrorCode::None]);
        let both = NewTopic {
            partitions: 2,
            ..assigned(vec![(0, vec![1])])
        };
        let refused = create_topics(&state, vec![both], LIMITS);
        assert_eq!(errors(&refused), vec![ErrorCode::InvalidRequest]);
    }

    #[test]
    fn partitions_grow_with_the_topics_replication_factor_and_stay_balanced() {
        let mut state = cluster(3);
        let created = create_topics(&state, vec![new_topic("a", 1)], REPLICATED);
        commit(&mut state, &created.records);
        let created = create_topics(
            &state,
            vec![NewTopic {
                replication_factor: 2,
                ..new_topic("b", 2)
            }],
            REPLICATED,
        );
        commit(&mut state, &created.records);
        let refused = create_partitions(
            &state,
            vec![
                growth("b", 2),
                growth("zz", 4),
                growth("b", MAX_PARTITIONS + 1),
            ],
            false,
            REPLICATED,
        );
        assert_eq!(
            errors(&refused),
            vec![
                ErrorCode::InvalidPartitions,
                ErrorCode::UnknownTopicOrPartition,
                ErrorCode::InvalidPartitions
            ]
        );
        assert!(refused.records.is_empty());
        let assigned = |lists: Vec<Vec<i32>>| PartitionGrowth {
            assignments: Some(lists),
            ..growth("b", 4)
        };
        let wrong = create_partitions(
            &state,
            vec![
                assigned(vec![vec![1, 2]]),
                assigned(vec![vec![1, 2], vec![3]]),
                assigned(vec![vec![1, 1], vec![2, 3]]),
                assigned(vec![vec![1, 2], vec![2, 9]]),
            ],
            true,
            REPLICATED,
        );
        assert_eq!(
            errors(&wrong),
            vec![ErrorCode::InvalidReplicaAssignment; 4],
            "too few lists, a short one, a repeated broker, an unknown broker"
        );
        let given = create_partitions(
            &state,
            vec![assigned(vec![vec![3, 1], vec![2, 3]])],
            true,
            REPLICATED,
        );
        assert_eq!(errors(&given), vec![ErrorCode::None]);
        let mut scratch = state.clone();
        commit(
            &mut scratch,
            &create_partitions(
                &state,
                vec![assigned(vec![vec![3, 1], vec![2, 3]])],
                false,
                REPLICATED,
            )
            .records,
        );
        let replicas: Vec<Vec<NodeId>> = scratch.topics["b"].partitions[2..]
            .iter()
            .map(|p| p.replicas.clone())
            .collect();
        assert_eq!(
            replicas,
            vec![vec![NodeId(3), NodeId(1)], vec![NodeId(2), NodeId(3)]],
            "the assignment is kept as given"
        );
        let checked = create_partitions(&state, vec![growth("b", 6)], true, REPLICATED);
        assert_eq!(errors(&checked), vec![ErrorCode::None]);
        assert!(checked.records.is_empty());
        let grown = create_partitions(&state, vec![growth("b", 6)], false, REPLICATED);
        commit(&mut state, &grown.records);
        let b = &state.topics["b"].partitions;
        assert_eq!(b.len(), 6);
        assert!(b.iter().all(|p| p.replicas.len() == 2));
        let mut led = BTreeMap::new();
        for partition in state.topics.values().flat_map(|t| &t.partitions) {
            *led.entry(partition.leader).or_insert(0) += 1;
        }
        let mut led: Vec<i32> = led.into_values().collect();
        led.sort();
        assert_eq!(led, vec![2, 2, 3]);
        let records = fence_broker(&state, NodeId(3), epoch(&state, 3), false);
        commit(&mut state, &records);
        let refused = create_partitions(&state, vec![growth("a", 2)], false, LIMITS);
        assert_eq!(
            errors(&refused),
            vec![ErrorCode::InvalidReplicationFactor],
            "topic a has 3 replicas, only 2 brokers are live"
        );
    }

    #[test]
    fn configs_are_replaced_and_topics_deleted() {
        let mut state = cluster(1);
        let created = create_topics(&state, vec![new_topic("a", 1)], LIMITS);
        commit(&mut state, &created.records);
        let refused = set_topic_configs(
            &state,
            "a".into(),
            [("retention.ms".to_string(), "soon".to_string())].into(),
            false,
        );
        assert_eq!(errors(&refused), vec![ErrorCode::InvalidConfig]);
        assert!(refused.records.is_empty());
        let unknown = set_topic_configs(&state, "zz".into(), BTreeMap::new(), false);
        assert_eq!(errors(&unknown), vec![ErrorCode::UnknownTopicOrPartition]);
        let configs: BTreeMap<String, String> =
            [("retention.ms".to_string(), "1000".to_string())].into();
        let checked = set_topic_configs(&state, "a".into(), configs.clone(), true);
        assert!(checked.records.is_empty() && errors(&checked) == vec![ErrorCode::None]);
        let set = set_topic_configs(&state, "a".into(), configs.clone(), false);
        commit(&mut state, &set.records);
        assert_eq!(state.topics["a"].configs, configs);
        let deleted = delete_topics(&state, vec!["a".into(), "zz".into(), "a".into()]);
        assert_eq!(
            errors(&deleted),
            vec![
                ErrorCode::None,
                ErrorCode::UnknownTopicOrPartition,
                ErrorCode::UnknownTopicOrPartition
            ]
        );
        commit(&mut state, &deleted.records);
        assert!(state.topics.is_empty());
    }

    #[test]
    fn a_new_incarnation_registers_again_with_a_new_epoch() {
        let mut state = cluster(2);
        let first = epoch(&state, 1);
        assert!(register_broker(&state, registration(1, "first")).is_empty());
        let sole = NewTopic {
            assignments: vec![(0, vec![1])],
            ..new_topic("sole", -1)
        };
        let created = create_topics(&state, vec![sole], LIMITS);
        commit(&mut state, &created.records);
        let records = register_broker(&state, registration(1, "second"));
        assert_eq!(
            records.len(),
            1,
            "the only replica keeps its leadership: {records:?}"
        );
        commit(&mut state, &records);
        let partition = state.partition("sole", 0).unwrap();
        assert_eq!(partition.leader, NodeId(1));
        assert_eq!(partition.leader_epoch, LeaderEpoch(0), "no epoch churn");
        let broker = &state.brokers[&NodeId(1)];
        assert!(broker.epoch > first);
        assert!(broker.fenced, "fenced until caught up");
        assert!(!state.is_live(NodeId(1)), "so it serves nothing meanwhile");
        assert_eq!(broker.incarnation, "second");
        assert!(unfence_broker(&state, NodeId(1), first, false).is_empty());
        assert!(fence_broker(&state, NodeId(1), first, false).is_empty());
        let records = unfence_broker(&state, NodeId(1), broker.epoch, false);
        commit(&mut state, &records);
        assert!(state.is_live(NodeId(1)));
        let partition = state.partition("sole", 0).unwrap();
        assert_eq!(
            (partition.leader, partition.leader_epoch),
            (NodeId(1), LeaderEpoch(0))
        );
        let mut fenced = state.clone();
        let records = fence_broker(&fenced, NodeId(1), epoch(&fenced, 1), false);
        commit(&mut fenced, &records);
        assert_eq!(fenced.partition("sole", 0).unwrap().leader, NodeId::NONE);
        let reregistered = register_broker(&fenced, registration(1, "third"));
        assert_eq!(
            reregistered.len(),
            1,
            "a fenced broker's partitions already moved"
        );
    }

    #[test]
    fn fencing_moves_leadership_and_unfencing_gives_it_back() {
        let mut state = cluster(3);
        let created = create_topics(
            &state,
            vec![
                NewTopic {
                    replication_factor: 1,
                    ..new_topic("single", 3)
                },
                NewTopic {
                    replication_factor: 3,
                    ..new_topic("triple", 3)
                },
            ],
            REPLICATED,
        );
        commit(&mut state, &created.records);
        let single = state.topics["single"].partitions.clone();
        let lost = single.iter().position(|p| p.leader == NodeId(1)).unwrap();
        let triple = state.topics["triple"].partitions.clone();
        let moved = triple.iter().position(|p| p.leader == NodeId(1)).unwrap();

        let records = fence_broker(&state, NodeId(1), epoch(&state, 1), false);
        commit(&mut state, &records);
        assert!(!state.is_live(NodeId(1)));
        let offline = &state.topics["single"].partitions[lost];
        assert_eq!(offline.leader, NodeId::NONE);
        assert_eq!(offline.isr, vec![NodeId(1)], "the last ISR member stays");
        assert_eq!(offline.leader_epoch, LeaderEpoch(1));
        let failed_over = state.topics["triple"].partitions[moved].clone();
        assert_eq!(failed_over.leader, triple[moved].replicas[1]);
        assert_eq!(failed_over.leader_epoch, LeaderEpoch(1));
        assert!(!failed_over.isr.contains(&NodeId(1)));
        assert_eq!(failed_over.isr.len(), 2);
        assert!(fence_broker(&state, NodeId(1), epoch(&state, 1), false).is_empty());

        let records = unfence_broker(&state, NodeId(1), epoch(&state, 1), false);
        commit(&mut state, &records);
        let back = &state.topics["single"].partitions[lost];
        assert_eq!(back.leader, NodeId(1));
        assert_eq!(back.leader_epoch, LeaderEpoch(2));
        assert_eq!(
            state.topics["triple"].partitions[moved].leader, failed_over.leader,
            "a partition with a leader keeps it"
        );
    }

    #[test]
    fn controlled_shutdown_hands_over_leadership_then_fences() {
        let mut state = cluster(2);
        let created = create_topics(
            &state,
            vec![NewTopic {
                replication_factor: 2,
                ..new_topic("t", 2)
            }],
            REPLICATED,
        );
        commit(&mut state, &created.records);
        let records = controlled_shutdown(&state, NodeId(2), epoch(&state, 2), false);
        assert!(matches!(
            records.last(),
            Some(MetadataRecord::FenceBroker { id: NodeId(2), .. })
        ));
        commit(&mut state, &records);
        assert!(!state.is_live(NodeId(2)));
        for partition in &state.topics["t"].partitions {
            assert_eq!(partition.leader, NodeId(1));
            assert_eq!(partition.isr, vec![NodeId(1)]);
        }
        assert!(controlled_shutdown(&state, NodeId(2), epoch(&state, 2), false).is_empty());
    }

    /// Three brokers and one partition on all three, led by its first replica.
    fn replicated_partition() -> ClusterState {
        let mut state = cluster(3);
        let created = create_topics(&state, vec![new_topic("r", 1)], REPLICATED);
        commit(&mut state, &created.records);
        state
    }

    /// What the partition's leader would send to make the ISR `isr`.
    fn isr_request(state: &ClusterState, isr: Vec<NodeId>) -> AlterPartitionRequest {
        let partition = state.partition("r", 0).unwrap();
        AlterPartitionRequest {
            broker: partition.leader,
            broker_epoch: state.brokers.get(&partition.leader).map_or(-1, |b| b.epoch),
            topic: "r".into(),
            partition: 0,
            leader_epoch: partition.leader_epoch,
            partition_epoch: partition.partition_epoch,
            isr,
        }
    }

    #[test]
    fn the_leader_shrinks_and_expands_the_isr() {
        let mut state = replicated_partition();
        let before = state.partition("r", 0).unwrap().clone();
        let (leader, others) = (before.replicas[0], &before.replicas[1..]);
        let records = alter_partition(&state, &isr_request(&state, vec![leader])).unwrap();
        commit(&mut state, &records);
        let shrunk = state.partition("r", 0).unwrap().clone();
        assert_eq!(shrunk.isr, vec![leader]);
        assert_eq!(shrunk.leader, leader);
        assert_eq!(shrunk.leader_epoch, before.leader_epoch, "same leader");
        assert_eq!(shrunk.partition_epoch, before.partition_epoch + 1);
        let expanded = vec![leader, others[1], others[0]];
        let records = alter_partition(&state, &isr_request(&state, expanded.clone())).unwrap();
        commit(&mut state, &records);
        let partition = state.partition("r", 0).unwrap();
        assert_eq!(partition.isr, expanded, "in the order the leader gave");
        assert_eq!(partition.partition_epoch, before.partition_epoch + 2);
        assert_eq!(
            alter_partition(&state, &isr_request(&state, expanded)),
            Ok(Vec::new()),
            "the ISR it already has: nothing to commit"
        );
    }

    #[test]
    fn an_isr_change_from_anyone_but_the_current_leader_is_refused() {
        let mut state = replicated_partition();
        let asked = isr_request(&state, vec![NodeId(1), NodeId(2)]);
        let leader = asked.broker;
        let follower = state.partition("r", 0).unwrap().replicas[1];
        let refused = |request: AlterPartitionRequest| alter_partition(&state, &request);
        assert_eq!(
            refused(AlterPartitionRequest {
                broker_epoch: asked.broker_epoch - 1,
                ..asked.clone()
            }),
            Err(ErrorCode::StaleBrokerEpoch)
        );
        assert_eq!(
            refused(AlterPartitionRequest {
                broker: NodeId(9),
                ..asked.clone()
            }),
            Err(ErrorCode::StaleBrokerEpoch),
            "not registered"
        );
        for (topic, partition) in [("zz", 0), ("r", 1), ("r", -1)] {
            assert_eq!(
                refused(AlterPartitionRequest {
                    topic: topic.into(),
                    partition,
                    ..asked.clone()
                }),
                Err(ErrorCode::UnknownTopicOrPartition)
            );
        }
        assert_eq!(
            refused(AlterPartitionRequest {
                broker: follower,
                broker_epoch: epoch(&state, follower.0),
                ..asked.clone()
            }),
            Err(ErrorCode::NotLeaderOrFollower)
        );
        assert_eq!(
            refused(AlterPartitionRequest {
                leader_epoch: LeaderEpoch(asked.leader_epoch.0 + 1),
                ..asked.clone()
            }),
            Err(ErrorCode::FencedLeaderEpoch)
        );
        assert_eq!(
            refused(AlterPartitionRequest {
                partition_epoch: asked.partition_epoch + 1,
                ..asked.clone()
            }),
            Err(ErrorCode::InvalidUpdateVersion)
        );
        let shrink = isr_request(&state, vec![leader]);
        let records = alter_partition(&state, &shrink).unwrap();
        commit(&mut state, &records);
        assert_eq!(
            alter_partition(&state, &shrink),
            Err(ErrorCode::InvalidUpdateVersion),
            "decided against a partition epoch that has changed since"
        );
        let records = fence_broker(&state, leader, epoch(&state, leader.0), false);
        commit(&mut state, &records);
        let partition = state.partition("r", 0).unwrap();
        assert_eq!(
            partition.leader,
            NodeId::NONE,
            "its only ISR member is gone"
        );
        assert_eq!(
            alter_partition(
                &state,
                &AlterPartitionRequest {
                    broker: leader,
                    broker_epoch: epoch(&state, leader.0),
                    ..isr_request(&state, vec![leader])
                }
            ),
            Err(ErrorCode::NotLeaderOrFollower),
            "a fenced broker leads nothing"
        );
    }

    #[test]
    fn an_isr_must_hold_the_leader_and_only_eligible_replicas() {
        let mut state = replicated_partition();
        let partition = state.partition("r", 0).unwrap().clone();
        let (leader, a, b) = (
            partition.replicas[0],
            partition.replicas[1],
            partition.replicas[2],
        );
        for isr in [
            vec![],
            vec![a, b],
            vec![leader, NodeId(9)],
            vec![leader, a, a],
        ] {
            assert_eq!(
                alter_partition(&state, &isr_request(&state, isr.clone())),
                Err(ErrorCode::InvalidRequest),
                "{isr:?}"
            );
        }
        let records = alter_partition(&state, &isr_request(&state, vec![leader, a])).unwrap();
        commit(&mut state, &records);
        let records = fence_broker(&state, b, epoch(&state, b.0), false);
        commit(&mut state, &records);
        assert_eq!(
            alter_partition(&state, &isr_request(&state, vec![leader, a, b])),
            Err(ErrorCode::IneligibleReplica),
            "a fenced broker does not join the ISR"
        );
        let mut fenced_member = state.clone();
        fenced_member.brokers.get_mut(&a).unwrap().fenced = true;
        assert_eq!(
            alter_partition(
                &fenced_member,
                &isr_request(&fenced_member, vec![a, leader])
            ),
            Ok(vec![MetadataRecord::PartitionChange {
                topic: "r".into(),
                partition: 0,
                leader: None,
                isr: Some(vec![a, leader]),
                replicas: None,
            }]),
            "only members joining the ISR must be live"
        );
        let records = unfence_broker(&state, b, epoch(&state, b.0), false);
        commit(&mut state, &records);
        let records = alter_partition(&state, &isr_request(&state, vec![leader, a, b])).unwrap();
        commit(&mut state, &records);
        assert_eq!(state.partition("r", 0).unwrap().isr, vec![leader, a, b]);
    }

    /// Three brokers, one partition on all three whose ISR the leader shrank
    /// to itself; returns the state and the replicas in order.
    fn leader_alone_in_the_isr() -> (ClusterState, Vec<NodeId>) {
        let mut state = replicated_partition();
        let replicas = state.partition("r", 0).unwrap().replicas.clone();
        let records = alter_partition(&state, &isr_request(&state, vec![replicas[0]])).unwrap();
        commit(&mut state, &records);
        (state, replicas)
    }

    #[test]
    fn leadership_goes_to_the_first_live_isr_member_in_replica_order() {
        let mut state = replicated_partition();
        let replicas = state.partition("r", 0).unwrap().replicas.clone();
        let records = fence_broker(&state, replicas[0], epoch(&state, replicas[0].0), false);
        commit(&mut state, &records);
        let partition = state.partition("r", 0).unwrap().clone();
        assert_eq!(partition.leader, replicas[1]);
        assert_eq!(partition.isr, replicas[1..].to_vec());
        assert_eq!(partition.leader_epoch, LeaderEpoch(1));
        let records = unfence_broker(&state, replicas[0], epoch(&state, replicas[0].0), false);
        commit(&mut state, &records);
        assert_eq!(
            state.partition("r", 0).unwrap().leader,
            replicas[1],
            "a led partition keeps its leader"
        );
    }

    #[test]
    fn without_unclean_election_a_partition_waits_for_its_last_isr_member() {
        let (mut state, replicas) = leader_alone_in_the_isr();
        let leader = replicas[0];
        let records = fence_broker(&state, leader, epoch(&state, leader.0), false);
        commit(&mut state, &records);
        let partition = state.partition("r", 0).unwrap().clone();
        assert_eq!(partition.leader, NodeId::NONE);
        assert_eq!(partition.isr, vec![leader], "the last ISR member stays");
        let follower = replicas[1];
        let records = fence_broker(&state, follower, epoch(&state, follower.0), false);
        commit(&mut state, &records);
        let records = unfence_broker(&state, follower, epoch(&state, follower.0), false);
        commit(&mut state, &records);
        assert_eq!(
            state.partition("r", 0).unwrap().leader,
            NodeId::NONE,
            "an out-of-sync replica does not lead"
        );
        let records = unfence_broker(&state, leader, epoch(&state, leader.0), false);
        commit(&mut state, &records);
        let partition = state.partition("r", 0).unwrap();
        assert_eq!(
            (partition.leader, partition.isr.clone()),
            (leader, vec![leader])
        );
        assert_eq!(partition.leader_epoch, LeaderEpoch(2));
    }

    #[test]
    fn unclean_election_hands_a_leaderless_partition_to_a_live_replica() {
        let (state, replicas) = leader_alone_in_the_isr();
        let leader = replicas[0];
        let mut unclean = state.clone();
        let records = fence_broker(&unclean, leader, epoch(&unclean, leader.0), true);
        commit(&mut unclean, &records);
        let partition = unclean.partition("r", 0).unwrap();
        assert_eq!(
            (partition.leader, partition.isr.clone()),
            (replicas[1], vec![replicas[1]])
        );

        let mut overridden = state.clone();
        let configs = [(
            "unclean.leader.election.enable".to_string(),
            "true".to_string(),
        )];
        let set = set_topic_configs(&overridden, "r".into(), configs.into(), false);
        commit(&mut overridden, &set.records);
        let records = fence_broker(&overridden, leader, epoch(&overridden, leader.0), false);
        commit(&mut overridden, &records);
        assert_eq!(
            overridden.partition("r", 0).unwrap().leader,
            replicas[1],
            "the topic's override wins over the broker default"
        );

        let mut offline = state.clone();
        for id in [replicas[1], replicas[2], leader] {
            let records = fence_broker(&offline, id, epoch(&offline, id.0), false);
            commit(&mut offline, &records);
        }
        assert_eq!(offline.partition("r", 0).unwrap().leader, NodeId::NONE);
        let records = unfence_broker(&offline, replicas[2], epoch(&offline, replicas[2].0), true);
        commit(&mut offline, &records);
        let partition = offline.partition("r", 0).unwrap();
        assert_eq!(
            (partition.leader, partition.isr.clone()),
            (replicas[2], vec![replicas[2]]),
            "an unfenced replica leads a leaderless partition it is out of sync for"
        );
    }

    #[test]
    fn the_rebalance_gives_leadership_back_to_preferred_replicas_in_the_isr() {
        let mut state = cluster(3);
        let created = create_topics(&state, vec![new_topic("b", 6)], REPLICATED);
        commit(&mut state, &created.records);
        assert!(rebalance_leaders(&state).is_empty(), "balanced at creation");
        let moved: Vec<MetadataRecord> = (0..)
            .zip(&state.topics["b"].partitions)
            .filter(|(_, p)| p.leader == NodeId(1))
            .map(|(partition, p)| MetadataRecord::PartitionChange {
                topic: "b".into(),
                partition,
                leader: Some(p.replicas[1]),
                isr: None,
                replicas: None,
            })
            .collect();
        assert_eq!(moved.len(), 2);
        commit(&mut state, &moved);
        let mut fenced = state.clone();
        let records = fence_broker(&fenced, NodeId(1), epoch(&fenced, 1), false);
        commit(&mut fenced, &records);
        assert!(
            rebalance_leaders(&fenced).is_empty(),
            "a fenced preferred replica is not elected"
        );
        let back = rebalance_leaders(&state);
        assert_eq!(
            back.len(),
            2,
            "broker 1 leads none of its 2 partitions: {back:?}"
        );
        commit(&mut state, &back);
        for partition in &state.topics["b"].partitions {
            assert_eq!(partition.leader, partition.replicas[0]);
        }
        assert!(rebalance_leaders(&state).is_empty());
    }

    fn results(results: &[ElectionResult]) -> Vec<(&str, i32, ErrorCode)> {
        results
            .iter()
            .map(|r| (r.topic.as_str(), r.partition, r.error))
            .collect()
    }

    #[test]
    fn a_preferred_election_gives_leadership_back_to_the_first_replica() {
        let mut state = cluster(3);
        let created = create_topics(&state, vec![new_topic("b", 3)], REPLICATED);
        commit(&mut state, &created.records);
        let replicas = state.partition("b", 0).unwrap().replicas.clone();
        let preferred = replicas[0];
        let records = fence_broker(&state, preferred, epoch(&state, preferred.0), false);
        commit(&mut state, &records);
        let asked = vec![
            ("b".to_string(), 0),
            ("b".to_string(), 1),
            ("b".to_string(), 0),
            ("x".to_string(), 0),
            ("b".to_string(), 9),
        ];
        let (fenced, records) = elect_leaders(&state, Election::Preferred, Some(asked.clone()));
        assert_eq!(
            results(&fenced),
            vec![
                ("b", 0, ErrorCode::PreferredLeaderNotAvailable),
                ("b", 1, ErrorCode::ElectionNotNeeded),
                ("x", 0, ErrorCode::UnknownTopicOrPartition),
                ("b", 9, ErrorCode::UnknownTopicOrPartition),
            ],
            "each partition answered once"
        );
        assert!(records.is_empty());

        let records = unfence_broker(&state, preferred, epoch(&state, preferred.0), false);
        commit(&mut state, &records);
        let (out_of_sync, _) = elect_leaders(&state, Election::Preferred, Some(asked));
        assert_eq!(
            out_of_sync[0].error,
            ErrorCode::PreferredLeaderNotAvailable,
            "live but not in the ISR"
        );

        let caught_up = MetadataRecord::PartitionChange {
            topic: "b".into(),
            partition: 0,
            leader: None,
            isr: Some(replicas.clone()),
            replicas: None,
        };
        commit(&mut state, &[caught_up]);
        let before = state.partition("b", 0).unwrap().leader_epoch;
        let (all, records) = elect_leaders(&state, Election::Preferred, None);
        assert_eq!(
            results(&all),
            vec![("b", 0, ErrorCode::None)],
            "partitions led by their preferred replica are left out"
        );
        commit(&mut state, &records);
        let partition = state.partition("b", 0).unwrap();
        assert_eq!(
            (partition.leader, partition.isr.clone()),
            (preferred, replicas)
        );
        assert!(partition.leader_epoch > before);
        assert_eq!(
            elect_leaders(&state, Election::Preferred, None),
            (Vec::new(), Vec::new())
        );
    }

    #[test]
    fn an_unclean_election_gives_a_leaderless_partition_a_live_replica() {
        let (mut state, replicas) = leader_alone_in_the_isr();
        let asked = || Some(vec![("r".to_string(), 0)]);
        let (led, records) = elect_leaders(&state, Election::Unclean, asked());
        assert_eq!(results(&led), vec![("r", 0, ErrorCode::ElectionNotNeeded)]);
        assert!(records.is_empty());

        let mut offline = state.clone();
        let records = fence_broker(&state, replicas[0], epoch(&state, replicas[0].0), false);
        commit(&mut state, &records);
        assert_eq!(state.partition("r", 0).unwrap().leader, NodeId::NONE);
        let (preferred, _) = elect_leaders(&state, Election::Preferred, asked());
        assert_eq!(preferred[0].error, ErrorCode::PreferredLeaderNotAvailable);
        let (elected, records) = elect_leaders(&state, Election::Unclean, asked());
        assert_eq!(results(&elected), vec![("r", 0, ErrorCode::None)]);
        commit(&mut state, &records);
        let partition = state.partition("r", 0).unwrap();
        assert_eq!(
            (partition.leader, partition.isr.clone()),
            (replicas[1], vec![replicas[1]]),
            "the first live replica, alone in the ISR"
        );

        for id in [replicas[1], replicas[2], replicas[0]] {
            let records = fence_broker(&offline, id, epoch(&offline, id.0), false);
            commit(&mut offline, &records);
        }
        let (none, records) = elect_leaders(&offline, Election::Unclean, asked());
        assert_eq!(
            results(&none),
            vec![("r", 0, ErrorCode::EligibleLeadersNotAvailable)]
        );
        assert!(records.is_empty());
        // Unfenced without the election unfencing makes: the last ISR member
        // is live again, and an unclean election still prefers it.
        let last = replicas[0];
        for id in [last, replicas[2]] {
            let unfence = MetadataRecord::UnfenceBroker {
                id,
                epoch: epoch(&offline, id.0),
            };
            commit(&mut offline, &[unfence]);
        }
        let (clean, records) = elect_leaders(&offline, Election::Unclean, None);
        assert_eq!(results(&clean), vec![("r", 0, ErrorCode::None)]);
        commit(&mut offline, &records);
        let partition = offline.partition("r", 0).unwrap();
        assert_eq!(
            (partition.leader, partition.isr.clone()),
            (last, vec![last])
        );
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut state = cluster(2);
        let mut blocks = Vec::new();
        for broker in [1, 2, 1] {
            let (first, records) = allocate_producer_ids(&state, NodeId(broker), 1000);
            commit(&mut state, &records);
            blocks.push(first..first + 1000);
        }
        assert_eq!(blocks, vec![0..1000, 1000..2000, 2000..3000]);
        assert_eq!(state.next_producer_id, 3000);
    }
}
