//! The group work a shard does for the groups it coordinates, whoever asked:
//! one request type per group API, each carrying one API request's work for the
//! coordinating shard and serving it there with its own reply type. JoinGroup and
//! SyncGroup wait here until the rebalance answers them.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Instant;

use crate::group::coordinator::{
    MAX_GROUPS_PER_SHARD, OffsetsRecord, append, append_transactional, ensure_tasks,
    owned_partition,
};
use crate::group::host::GroupHost;
use crate::group::ids::{GenerationId, GroupId, InstanceId, MemberId};
use crate::group::offsets::TopicPartition;
use crate::group::records::{OffsetValue, RecordKey};
use crate::group::state::{
    Answer, Group, GroupState, JoinRequest, JoinResult, MemberSummary, SyncAnswer, SyncRequest,
    SyncResult,
};
use crate::protocol::error_code::ErrorCode;
use crate::types::{ProducerEpoch, ProducerId, TimestampMs};

/// JoinGroup: answered when the rebalance completes.
#[derive(Debug)]
pub struct JoinGroup {
    pub group: GroupId,
    pub request: JoinRequest,
}

/// SyncGroup: answered once the leader's assignment is stored.
#[derive(Debug)]
pub struct SyncGroup {
    pub group: GroupId,
    pub request: SyncRequest,
}

#[derive(Debug)]
pub struct GroupHeartbeat {
    pub group: GroupId,
    pub member: MemberId,
    pub instance: Option<InstanceId>,
    pub generation: GenerationId,
}

#[derive(Debug)]
pub struct LeaveGroup {
    pub group: GroupId,
    pub members: Vec<(MemberId, Option<InstanceId>)>,
}

#[derive(Debug)]
pub struct CommitOffsets {
    pub group: GroupId,
    pub member: MemberId,
    pub instance: Option<InstanceId>,
    pub generation: GenerationId,
    pub offsets: Vec<(TopicPartition, OffsetValue)>,
}

/// TxnOffsetCommit: offsets a transactional producer commits for a group,
/// pending until its transaction ends. Versions 0-2 carry no member:
/// generation -1 and an unknown member id.
#[derive(Debug)]
pub struct TxnCommitOffsets {
    pub group: GroupId,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub member: MemberId,
    pub instance: Option<InstanceId>,
    pub generation: GenerationId,
    pub offsets: Vec<(TopicPartition, OffsetValue)>,
}

/// Committed offsets of each group: of these partitions, or all (`None`).
/// With `require_stable`, a partition with a transactional offset pending
/// answers UNSTABLE_OFFSET_COMMIT instead (KIP-447).
#[derive(Debug)]
pub struct FetchOffsets {
    pub groups: Vec<(GroupId, Option<Vec<TopicPartition>>)>,
    pub require_stable: bool,
}

#[derive(Debug)]
pub struct DescribeGroups(pub Vec<GroupId>);

/// Every group of the shard, in one of `states` if any are given.
#[derive(Debug)]
pub struct ListGroups {
    pub states: Vec<GroupState>,
}

#[derive(Debug)]
pub struct DeleteGroups(pub Vec<GroupId>);

#[derive(Debug)]
pub struct DeleteOffsets {
    pub group: GroupId,
    pub partitions: Vec<TopicPartition>,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub error: ErrorCode,
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol when Stable, else empty (as Kafka reports it).
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub id: GroupId,
    pub protocol_type: String,
    pub state: GroupState,
}

/// One partition's committed offset (`None`: nothing committed), or its error.
pub type FetchedOffset = Result<Option<OffsetValue>, ErrorCode>;

/// One group's committed offsets, in request order, or the group's error.
pub type FetchedOffsets = Result<Vec<(TopicPartition, FetchedOffset)>, ErrorCode>;

impl JoinGroup {
    pub async fn serve(self, host: &Rc<dyn GroupHost>) -> JoinResult {
        ensure_tasks(host);
        join(host, self.group, self.request).await
    }
}

impl SyncGroup {
    pub async fn serve(self, host: &Rc<dyn GroupHost>) -> SyncResult {
        ensure_tasks(host);
        sync(host, self.group, self.request).await
    }
}

impl GroupHeartbeat {
    pub fn serve(self, host: &Rc<dyn GroupHost>) -> ErrorCode {
        ensure_tasks(host);
        heartbeat(
            host,
            &self.group,
            &self.member,
            self.instance.as_ref(),
            self.generation,
        )
    }
}

impl LeaveGroup {
    /// Per member, or a group-level error.
    pub fn serve(self, host: &Rc<dyn GroupHost>) -> Result<Vec<ErrorCode>, ErrorCode> {
        ensure_tasks(host);
        leave(host, &self.group, &self.members)
    }
}

impl CommitOffsets {
    pub async fn serve(self, host: &Rc<dyn GroupHost>) -> ErrorCode {
        ensure_tasks(host);
        commit(
            host,
            self.group,
            &self.member,
            self.instance.as_ref(),
            self.generation,
            self.offsets,
        )
        .await
    }
}

impl TxnCommitOffsets {
    pub async fn serve(self, host: &Rc<dyn GroupHost>) -> ErrorCode {
        ensure_tasks(host);
        txn_commit(host, self).await
    }
}

impl FetchOffsets {
    pub fn serve(self, host: &Rc<dyn GroupHost>) -> Vec<FetchedOffsets> {
        ensure_tasks(host);
        let require_stable = self.require_stable;
        self.groups
            .into_iter()
            .map(|(group, partitions)| fetch(host, &group, partitions, require_stable))
            .collect()
    }
}

impl DescribeGroups {
    pub fn serve(self, host: &Rc<dyn GroupHost>) -> Vec<GroupDescription> {
        ensure_tasks(host);
        self.0.iter().map(|g| describe(host, g)).collect()
    }
}

impl ListGroups {
    pub fn serve(self, host: &Rc<dyn GroupHost>) -> Vec<ListedGroup> {
        ensure_tasks(host);
        list(host, &self.states)
    }
}

impl DeleteGroups {
    pub async fn serve(self, host: &Rc<dyn GroupHost>) -> Vec<ErrorCode> {
        ensure_tasks(host);
        let mut results = Vec::with_capacity(self.0.len());
        for group in self.0 {
            results.push(delete(host, &group).await);
        }
        results
    }
}

impl DeleteOffsets {
    /// Per partition, or a group-level error.
    pub async fn serve(self, host: &Rc<dyn GroupHost>) -> Result<Vec<ErrorCode>, ErrorCode> {
        ensure_tasks(host);
        delete_offsets(host, &self.group, self.partitions).await
    }
}

async fn join(host: &Rc<dyn GroupHost>, id: GroupId, request: JoinRequest) -> JoinResult {
    let coordinator = host.coordinator();
    let member = request.member_id.clone();
    if let Err(error) = host
        .config()
        .group_limits()
        .check_session_timeout(request.session_timeout)
    {
        return JoinResult::failed(member, error);
    }
    if let Err(error) = owned_partition(host.as_ref(), &id) {
        return JoinResult::failed(member, error);
    }
    let mut out = Vec::new();
    let answer = {
        let mut groups = coordinator.groups.borrow_mut();
        if !groups.contains_key(&id) {
            if !member.is_unknown() {
                return JoinResult::failed(member, ErrorCode::UnknownMemberId);
            }
            if groups.len() >= MAX_GROUPS_PER_SHARD {
                return JoinResult::failed(member, ErrorCode::CoordinatorNotAvailable);
            }
            let group = Group::new(
                id.clone(),
                host.config().group_limits(),
                TimestampMs::now().0,
            );
            groups.insert(id.clone(), group);
        }
        let group = groups.get_mut(&id).expect("inserted above");
        group.join(request, Instant::now(), TimestampMs::now().0, &mut out)
    };
    let waiter = match answer {
        Answer::Now(result) => {
            coordinator.deliver(&id, out);
            coordinator.deadlines_changed();
            return result;
        }
        Answer::Wait(waiting) => {
            let receiver = coordinator.wait_join(&id, waiting.clone());
            coordinator.deliver(&id, out);
            coordinator.deadlines_changed();
            (receiver, waiting)
        }
    };
    let (receiver, waiting) = waiter;
    receiver
        .recv()
        .await
        .unwrap_or_else(|| JoinResult::failed(waiting, ErrorCode::RebalanceInProgress))
}

async fn sync(host: &Rc<dyn GroupHost>, id: GroupId, request: SyncRequest) -> SyncResult {
    let coordinator = host.coordinator();
    let partition = match owned_partition(host.as_ref(), &id) {
        Ok(partition) => partition,
        Err(error) => return SyncResult::failed(error),
    };
    let (answer, value) = {
        let mut groups = coordinator.groups.borrow_mut();
        let Some(group) = groups.get_mut(&id) else {
            return SyncResult::failed(ErrorCode::UnknownMemberId);
        };
        let answer = group.sync(request, Instant::now());
        let value = match &answer {
            SyncAnswer::Store { assignment, .. } => {
                Some(group.to_value(assignment, TimestampMs::now().0))
            }
            SyncAnswer::Now(_) | SyncAnswer::Wait(_) => None,
        };
        (answer, value)
    };
    let receiver = match answer {
        SyncAnswer::Now(result) => return result,
        SyncAnswer::Wait(member) => coordinator.wait_sync(&id, member),
        SyncAnswer::Store {
            leader,
            generation,
            assignment,
        } => {
            // Kafka's order: the group is stored with the new assignment before
            // anybody receives it.
            let receiver = coordinator.wait_sync(&id, leader);
            let key = RecordKey::Group {
                group: id.0.clone(),
            }
            .encode();
            let value = value.expect("computed for a store").encode();
            let stored = append(host.as_ref(), partition, &[(key, Some(value))])
                .await
                .map(|_| ());
            let mut out = Vec::new();
            if let Some(group) = coordinator.groups.borrow_mut().get_mut(&id) {
                group.complete_sync(
                    generation,
                    assignment,
                    stored,
                    Instant::now(),
                    TimestampMs::now().0,
                    &mut out,
                );
            }
            coordinator.deliver(&id, out);
            coordinator.deadlines_changed();
            receiver
        }
    };
    receiver
        .recv()
        .await
        .unwrap_or_else(|| SyncResult::failed(ErrorCode::RebalanceInProgress))
}

fn heartbeat(
    host: &Rc<dyn GroupHost>,
    id: &GroupId,
    member: &MemberId,
    instance: Option<&InstanceId>,
    generation: GenerationId,
) -> ErrorCode {
    if let Err(error) = owned_partition(host.as_ref(), id) {
        return error;
    }
    match host.coordinator().groups.borrow_mut().get_mut(id) {
        None => ErrorCode::UnknownMemberId,
        Some(group) => group.heartbeat(member, instance, generation, Instant::now()),
    }
}

fn leave(
    host: &Rc<dyn GroupHost>,
    id: &GroupId,
    members: &[(MemberId, Option<InstanceId>)],
) -> Result<Vec<ErrorCode>, ErrorCode> {
    owned_partition(host.as_ref(), id)?;
    let coordinator = host.coordinator();
    let mut out = Vec::new();
    let errors = match coordinator.groups.borrow_mut().get_mut(id) {
        None => vec![ErrorCode::UnknownMemberId; members.len()],
        Some(group) => group.leave(members, Instant::now(), TimestampMs::now().0, &mut out),
    };
    coordinator.deliver(id, out);
    coordinator.deadlines_changed();
    Ok(errors)
}

async fn commit(
    host: &Rc<dyn GroupHost>,
    id: GroupId,
    member: &MemberId,
    instance: Option<&InstanceId>,
    generation: GenerationId,
    offsets: Vec<(TopicPartition, OffsetValue)>,
) -> ErrorCode {
    let partition = match owned_partition(host.as_ref(), &id) {
        Ok(partition) => partition,
        Err(error) => return error,
    };
    {
        let mut groups = host.coordinator().groups.borrow_mut();
        if !groups.contains_key(&id) {
            // Kafka creates the group for "simple" commits (no group management).
            if generation.0 >= 0 {
                return ErrorCode::IllegalGeneration;
            }
            if groups.len() >= MAX_GROUPS_PER_SHARD {
                return ErrorCode::CoordinatorNotAvailable;
            }
            let group = Group::new(
                id.clone(),
                host.config().group_limits(),
                TimestampMs::now().0,
            );
            groups.insert(id.clone(), group);
        }
        let group = groups.get_mut(&id).expect("inserted above");
        if let Err(error) = group.validate_commit(member, instance, generation, Instant::now()) {
            return error;
        }
        if !offsets
            .iter()
            .all(|(key, _)| group.offsets.has_room_for(key))
        {
            return ErrorCode::InvalidCommitOffsetSize;
        }
    }
    if offsets.is_empty() {
        return ErrorCode::None;
    }
    let records: Vec<OffsetsRecord> = offsets
        .iter()
        .map(|((topic, index), value)| {
            let key = RecordKey::Offset {
                group: id.0.clone(),
                topic: topic.clone(),
                partition: *index,
            };
            (key.encode(), Some(value.encode()))
        })
        .collect();
    let record_offset = match append(host.as_ref(), partition, &records).await {
        Ok(offset) => offset,
        Err(error) => return error,
    };
    if let Some(group) = host.coordinator().groups.borrow_mut().get_mut(&id) {
        // A transaction committed during the append may have stored an offset
        // from a later batch: the log's order decides, as in Kafka's
        // onOffsetCommitAppend.
        for (key, value) in offsets {
            group.offsets.put_if_newer(key, value, record_offset);
        }
    }
    ErrorCode::None
}

/// Kafka's TxnOffsetCommit: an unknown group is created for a generation -1
/// commit (a producer outside group management) and refused ILLEGAL_GENERATION
/// otherwise; a known one checks member and generation (v3+). The offsets are
/// appended as one transactional batch of the producer and held pending.
async fn txn_commit(host: &Rc<dyn GroupHost>, request: TxnCommitOffsets) -> ErrorCode {
    let id = request.group;
    let partition = match owned_partition(host.as_ref(), &id) {
        Ok(partition) => partition,
        Err(error) => return error,
    };
    let coordinator = host.coordinator();
    {
        let mut groups = coordinator.groups.borrow_mut();
        if !groups.contains_key(&id) {
            if request.generation.0 >= 0 {
                return ErrorCode::IllegalGeneration;
            }
            if groups.len() >= MAX_GROUPS_PER_SHARD {
                return ErrorCode::CoordinatorNotAvailable;
            }
            let group = Group::new(
                id.clone(),
                host.config().group_limits(),
                TimestampMs::now().0,
            );
            groups.insert(id.clone(), group);
        }
        let group = groups.get_mut(&id).expect("inserted above");
        if let Err(error) = group.validate_txn_commit(
            &request.member,
            request.instance.as_ref(),
            request.generation,
        ) {
            return error;
        }
        let keys: Vec<TopicPartition> = request.offsets.iter().map(|(k, _)| k.clone()).collect();
        if let Err(limit) =
            coordinator
                .txn_offsets
                .borrow()
                .check_room(&id, request.producer_id, &keys)
        {
            tracing::warn!(group = %id.0, %limit, "refusing a transactional offset commit");
            return limit.error_code();
        }
    }
    if request.offsets.is_empty() {
        return ErrorCode::None;
    }
    let producer = request.producer_id;
    // Pending from now, before the append: a marker written meanwhile (the
    // transaction timing out) ends these offsets too.
    coordinator.txn_offsets.borrow_mut().add(
        partition,
        &id,
        producer,
        request.offsets.iter().cloned(),
        None,
    );
    let records: Vec<OffsetsRecord> = request
        .offsets
        .iter()
        .map(|((topic, index), value)| {
            let key = RecordKey::Offset {
                group: id.0.clone(),
                topic: topic.clone(),
                partition: *index,
            };
            (key.encode(), Some(value.encode()))
        })
        .collect();
    let appended = append_transactional(
        host.as_ref(),
        partition,
        &records,
        producer,
        request.producer_epoch,
    )
    .await;
    let mut pending = coordinator.txn_offsets.borrow_mut();
    match appended {
        Ok(record_offset) => {
            pending.appended(&id, producer, &request.offsets, record_offset);
            ErrorCode::None
        }
        Err(error) => {
            pending.failed(&id, producer, &request.offsets);
            error
        }
    }
}

fn fetch(
    host: &Rc<dyn GroupHost>,
    id: &GroupId,
    partitions: Option<Vec<TopicPartition>>,
    require_stable: bool,
) -> FetchedOffsets {
    owned_partition(host.as_ref(), id)?;
    let coordinator = host.coordinator();
    let groups = coordinator.groups.borrow();
    let pending = coordinator.txn_offsets.borrow();
    let group = groups.get(id);
    let answer = |key: &TopicPartition| -> FetchedOffset {
        if require_stable && pending.is_pending(id, key) {
            return Err(ErrorCode::UnstableOffsetCommit);
        }
        Ok(group.and_then(|g| g.offsets.get(&key.0, key.1)).cloned())
    };
    Ok(match partitions {
        Some(partitions) => partitions
            .into_iter()
            .map(|key| {
                let value = answer(&key);
                (key, value)
            })
            .collect(),
        None => group
            .map(|g| {
                g.offsets
                    .iter()
                    .map(|(key, _)| (key.clone(), answer(key)))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn describe(host: &Rc<dyn GroupHost>, id: &GroupId) -> GroupDescription {
    let dead = |error| GroupDescription {
        error,
        state: GroupState::Dead,
        protocol_type: String::new(),
        protocol: String::new(),
        members: Vec::new(),
    };
    if let Err(error) = owned_partition(host.as_ref(), id) {
        return dead(error);
    }
    let groups = host.coordinator().groups.borrow();
    let Some(group) = groups.get(id) else {
        // Kafka describes an unknown group as Dead, without an error.
        return dead(ErrorCode::None);
    };
    let stable = group.state() == GroupState::Stable;
    GroupDescription {
        error: ErrorCode::None,
        state: group.state(),
        protocol_type: group.protocol_type().unwrap_or_default().to_string(),
        protocol: if stable {
            group.protocol().unwrap_or_default().to_string()
        } else {
            String::new()
        },
        members: group.describe_members(),
    }
}

fn list(host: &Rc<dyn GroupHost>, states: &[GroupState]) -> Vec<ListedGroup> {
    host.coordinator()
        .groups
        .borrow()
        .values()
        .filter(|g| states.is_empty() || states.contains(&g.state()))
        .map(|g| ListedGroup {
            id: g.id().clone(),
            protocol_type: g.protocol_type().unwrap_or_default().to_string(),
            state: g.state(),
        })
        .collect()
}

async fn delete(host: &Rc<dyn GroupHost>, id: &GroupId) -> ErrorCode {
    let partition = match owned_partition(host.as_ref(), id) {
        Ok(partition) => partition,
        Err(error) => return error,
    };
    let records = {
        let mut groups = host.coordinator().groups.borrow_mut();
        let Some(group) = groups.get_mut(id) else {
            return ErrorCode::GroupIdNotFound;
        };
        match group.state() {
            GroupState::Dead => return ErrorCode::GroupIdNotFound,
            GroupState::Empty => {}
            _ => return ErrorCode::NonEmptyGroup,
        }
        let mut records = tombstones(id, group.offsets.keys());
        records.push((
            RecordKey::Group {
                group: id.0.clone(),
            }
            .encode(),
            None,
        ));
        // Dead at once, so requests arriving during the append retry elsewhere.
        group.set_dead();
        host.coordinator().txn_offsets.borrow_mut().remove_group(id);
        records
    };
    let result = append(host.as_ref(), partition, &records).await;
    host.coordinator().groups.borrow_mut().remove(id);
    match result {
        Ok(_) => ErrorCode::None,
        Err(error) => error,
    }
}

async fn delete_offsets(
    host: &Rc<dyn GroupHost>,
    id: &GroupId,
    partitions: Vec<TopicPartition>,
) -> Result<Vec<ErrorCode>, ErrorCode> {
    let partition = owned_partition(host.as_ref(), id)?;
    let (errors, deletable) = {
        let groups = host.coordinator().groups.borrow();
        let group = groups.get(id).ok_or(ErrorCode::GroupIdNotFound)?;
        let subscribed: BTreeSet<String> = match group.state() {
            GroupState::Dead => return Err(ErrorCode::GroupIdNotFound),
            GroupState::Empty => BTreeSet::new(),
            // Kafka: a group with members may only lose offsets of topics it
            // does not consume, which it can tell for consumer groups only.
            _ => group.subscribed_topics().ok_or(ErrorCode::NonEmptyGroup)?,
        };
        let mut errors = Vec::with_capacity(partitions.len());
        let mut deletable = Vec::new();
        for key in partitions {
            if subscribed.contains(&key.0) {
                errors.push(ErrorCode::GroupSubscribedToTopic);
            } else {
                errors.push(ErrorCode::None);
                if group.offsets.get(&key.0, key.1).is_some() {
                    deletable.push(key);
                }
            }
        }
        (errors, deletable)
    };
    if deletable.is_empty() {
        return Ok(errors);
    }
    append(host.as_ref(), partition, &tombstones(id, deletable.clone())).await?;
    if let Some(group) = host.coordinator().groups.borrow_mut().get_mut(id) {
        for key in &deletable {
            group.offsets.remove(key);
        }
    }
    host.coordinator()
        .txn_offsets
        .borrow_mut()
        .remove_partitions(id, &deletable);
    Ok(errors)
}

fn tombstones(id: &GroupId, keys: Vec<TopicPartition>) -> Vec<OffsetsRecord> {
    keys.into_iter()
        .map(|(topic, partition)| {
            let key = RecordKey::Offset {
                group: id.0.clone(),
                topic,
                partition,
            };
            (key.encode(), None)
        })
        .collect()
}
