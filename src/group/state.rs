//! One classic consumer group as a pure state machine: members, generations,
//! protocol selection and the Empty / PreparingRebalance / CompletingRebalance /
//! Stable / Dead transitions of Apache Kafka's GroupCoordinator.
//!
//! Nothing here waits or reads a clock: every operation takes `now`, answers at
//! once or names the member whose request must wait, and pushes the answers it
//! owes to other waiting requests into `out`. The coordinator owns the waiting
//! requests and the timers (`next_deadline`, `tick`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

use crate::group::ids::{GenerationId, GroupId, InstanceId, MemberId};
use crate::group::member::{Member, Protocol};
use crate::group::offsets::OffsetStore;
use crate::group::records::{GroupValue, MemberValue};
use crate::protocol::error_code::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    /// No members (maybe committed offsets).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    Stable,
    /// Deleted; requests that still find it retry elsewhere.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Kafka's transition rules: which states may lead to `self`.
    fn may_follow(self, from: GroupState) -> bool {
        use GroupState::*;
        match self {
            Empty => from == PreparingRebalance,
            PreparingRebalance => matches!(from, Stable | CompletingRebalance | Empty),
            CompletingRebalance => from == PreparingRebalance,
            Stable => from == CompletingRebalance,
            Dead => true,
        }
    }
}

/// The broker's group settings.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// `group.max.size`: members (and separately, members still to learn their id).
    pub max_size: usize,
}

impl GroupLimits {
    pub fn check_session_timeout(&self, timeout: Duration) -> Result<(), ErrorCode> {
        if timeout < self.min_session_timeout || timeout > self.max_session_timeout {
            return Err(ErrorCode::InvalidSessionTimeout);
        }
        Ok(())
    }
}

/// A JoinGroup as the state machine needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: MemberId,
    pub instance_id: Option<InstanceId>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may be told to skip assigning.
    pub supports_skip_assignment: bool,
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: MemberId,
    pub instance_id: Option<InstanceId>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: ErrorCode,
    pub generation: GenerationId,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: MemberId,
    pub member_id: MemberId,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn failed(member_id: MemberId, error: ErrorCode) -> JoinResult {
        JoinResult {
            error,
            generation: GenerationId(-1),
            protocol_type: None,
            protocol_name: None,
            leader: MemberId::default(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: MemberId,
    pub instance_id: Option<InstanceId>,
    pub generation: GenerationId,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment; empty from the other members.
    pub assignments: Vec<(MemberId, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn failed(error: ErrorCode) -> SyncResult {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer owed to a waiting request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(MemberId, JoinResult),
    Sync(MemberId, SyncResult),
}

/// Answer now, or wait under this member id for a [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    Now(T),
    Wait(MemberId),
}

/// What a SyncGroup leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAnswer {
    Now(SyncResult),
    Wait(MemberId),
    /// The leader's assignment: store the group with it, then call
    /// [`Group::complete_sync`]; the leader waits like the others.
    Store {
        leader: MemberId,
        generation: GenerationId,
        assignment: BTreeMap<MemberId, Bytes>,
    },
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: MemberId,
    pub instance_id: Option<InstanceId>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// The join phase's deadline. A group rebalancing from Empty first waits
/// `group.initial.rebalance.delay.ms`, again each time a new member arrives,
/// within the rebalance timeout, so a starting fleet joins in one generation.
#[derive(Debug, Clone, Copy)]
struct JoinPhase {
    deadline: Instant,
    initial_delay: Option<InitialDelay>,
}

#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    remaining: Duration,
    new_member_added: bool,
}

#[derive(Debug)]
pub struct Group {
    id: GroupId,
    state: GroupState,
    generation: GenerationId,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<MemberId>,
    members: BTreeMap<MemberId, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, until they join or expire.
    pending: BTreeMap<MemberId, Instant>,
    static_members: BTreeMap<InstanceId, MemberId>,
    /// Members of this generation that have not sent SyncGroup yet.
    pending_sync: BTreeSet<MemberId>,
    sync_deadline: Option<Instant>,
    join_phase: Option<JoinPhase>,
    /// Wall clock (ms) of the last transition to Empty: offsets expire from here.
    empty_since_ms: i64,
    pub offsets: OffsetStore,
    limits: GroupLimits,
}

impl Group {
    pub fn new(id: GroupId, limits: GroupLimits, now_ms: i64) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: GenerationId(0),
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            join_phase: None,
            empty_since_ms: now_ms,
            offsets: OffsetStore::default(),
            limits,
        }
    }

    /// A group as its last stored metadata left it. Members are not restored:
    /// they rejoin (their heartbeats get UNKNOWN_MEMBER_ID).
    pub fn restore(id: GroupId, limits: GroupLimits, value: &GroupValue, now_ms: i64) -> Group {
        let mut group = Group::new(id, limits, now_ms);
        group.generation = GenerationId(value.generation);
        group.protocol_type =
            (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
        if value.current_state_timestamp >= 0 {
            group.empty_since_ms = value.current_state_timestamp;
        }
        group
    }

    pub fn id(&self) -> &GroupId {
        &self.id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation(&self) -> GenerationId {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub fn leader(&self) -> Option<&MemberId> {
        self.leader.as_ref()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, id: &MemberId) -> Option<&Member> {
        self.members.get(id)
    }

    pub fn empty_since_ms(&self) -> i64 {
        self.empty_since_ms
    }

    pub fn set_dead(&mut self) {
        debug_assert!(self.members.is_empty(), "only groups without members die");
        self.transition(GroupState::Dead);
    }

    fn transition(&mut self, to: GroupState) {
        debug_assert!(
            to.may_follow(self.state),
            "group {}: {:?} -> {to:?} is not a valid transition",
            self.id,
            self.state
        );
        self.state = to;
    }

    /// The longest rebalance timeout of the members: how long a join phase waits.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty offer;
    /// otherwise the type must match and one protocol be supported by all.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.supports(&p.name)))
    }

    /// Kafka's `acceptJoiningMember`: is there room for `member`?
    fn accepts_joining(&self, member: &MemberId) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members.get(member).is_some_and(|m| m.awaiting_join)
                    || self.members.values().filter(|m| m.awaiting_join).count()
                        < self.limits.max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member) || self.members.len() < self.limits.max_size
            }
        }
    }

    /// Kafka's `validateCurrentMember`.
    fn validate_member(
        &self,
        member_id: &MemberId,
        instance_id: Option<&InstanceId>,
    ) -> Result<(), ErrorCode> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => Err(ErrorCode::UnknownMemberId),
                Some(current) if current != member_id => Err(ErrorCode::FencedInstanceId),
                Some(_) => Ok(()),
            },
            None if !self.members.contains_key(member_id) => Err(ErrorCode::UnknownMemberId),
            None => Ok(()),
        }
    }

    pub fn join(
        &mut self,
        request: JoinRequest,
        now: Instant,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) -> Answer<JoinResult> {
        debug_assert!(
            self.limits
                .check_session_timeout(request.session_timeout)
                .is_ok()
        );
        let answer = if !self.accepts_joining(&request.member_id) {
            Answer::Now(JoinResult::failed(
                request.member_id.clone(),
                ErrorCode::GroupMaxSizeReached,
            ))
        } else if self.state == GroupState::Dead {
            Answer::Now(JoinResult::failed(
                request.member_id.clone(),
                ErrorCode::CoordinatorNotAvailable,
            ))
        } else if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            Answer::Now(JoinResult::failed(
                request.member_id.clone(),
                ErrorCode::InconsistentGroupProtocol,
            ))
        } else if request.member_id.is_unknown() {
            self.join_new_member(request, now, out)
        } else {
            self.join_known_member(request, now, out)
        };
        self.try_complete_join(now, now_ms, out);
        answer
    }

    fn join_new_member(
        &mut self,
        request: JoinRequest,
        now: Instant,
        out: &mut Vec<Reply>,
    ) -> Answer<JoinResult> {
        let prefix = match &request.instance_id {
            Some(instance) => instance.0.clone(),
            None => request.client_id.clone(),
        };
        let member_id = MemberId::generate(&prefix);
        if let Some(instance) = request.instance_id.clone() {
            if let Some(old) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(old, member_id, request, now, out);
            }
            self.add_member(member_id.clone(), request, now, out);
            return Answer::Wait(member_id);
        }
        if request.require_known_member_id {
            if self.pending.len() >= self.limits.max_size {
                return Answer::Now(JoinResult::failed(
                    MemberId::default(),
                    ErrorCode::GroupMaxSizeReached,
                ));
            }
            self.pending
                .insert(member_id.clone(), now + request.session_timeout);
            return Answer::Now(JoinResult::failed(member_id, ErrorCode::MemberIdRequired));
        }
        self.add_member(member_id.clone(), request, now, out);
        Answer::Wait(member_id)
    }

    fn join_known_member(
        &mut self,
        request: JoinRequest,
        now: Instant,
        out: &mut Vec<Reply>,
    ) -> Answer<JoinResult> {
        let member_id = request.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            self.add_member(member_id.clone(), request, now, out);
            return Answer::Wait(member_id);
        }
        if let Err(error) = self.validate_member(&member_id, request.instance_id.as_ref()) {
            return Answer::Now(JoinResult::failed(member_id, error));
        }
        let unchanged = self.members[&member_id].protocols == request.protocols;
        let is_leader = self.leader.as_ref() == Some(&member_id);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&request, now);
                Answer::Wait(member_id)
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retried JoinGroup: answer again with this generation.
                let members = if is_leader {
                    self.current_members()
                } else {
                    Vec::new()
                };
                Answer::Now(self.current_join_result(member_id, members, false))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Answer::Now(self.current_join_result(member_id, Vec::new(), false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member(&request, now);
                self.prepare_rebalance(now, out);
                Answer::Wait(member_id)
            }
            GroupState::Empty | GroupState::Dead => {
                Answer::Now(JoinResult::failed(member_id, ErrorCode::UnknownMemberId))
            }
        }
    }

    /// A static member came back with a new member id: the old id is fenced,
    /// and in a stable group whose protocol stays the same it keeps its
    /// assignment without a rebalance.
    fn replace_static_member(
        &mut self,
        old_id: MemberId,
        new_id: MemberId,
        request: JoinRequest,
        now: Instant,
        out: &mut Vec<Reply>,
    ) -> Answer<JoinResult> {
        // Reported as leader: a v0-8 client then never thinks it is the leader
        // and simply syncs to get its old assignment back.
        let reported_leader = self.leader.clone().unwrap_or_default();
        let mut member = self
            .members
            .remove(&old_id)
            .expect("static members map to current members");
        if member.awaiting_join {
            out.push(Reply::Join(
                old_id.clone(),
                JoinResult::failed(old_id.clone(), ErrorCode::FencedInstanceId),
            ));
        }
        if member.awaiting_sync {
            out.push(Reply::Sync(
                old_id.clone(),
                SyncResult::failed(ErrorCode::FencedInstanceId),
            ));
        }
        member.id = new_id.clone();
        member.awaiting_join = false;
        member.awaiting_sync = false;
        let instance = member.instance_id.clone().expect("a static member");
        self.members.insert(new_id.clone(), member);
        self.static_members.insert(instance, new_id.clone());
        if self.leader.as_ref() == Some(&old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        let request = JoinRequest {
            member_id: new_id.clone(),
            ..request
        };
        match self.state {
            GroupState::Stable => {
                self.update_member(&request, now);
                let next_protocol = self.select_protocol();
                if next_protocol.as_deref() == self.protocol.as_deref() {
                    let member = self.members.get_mut(&new_id).expect("just inserted");
                    member.awaiting_join = false;
                    let is_leader = self.leader.as_ref() == Some(&new_id);
                    let skip = is_leader && request.supports_skip_assignment;
                    let members = if skip {
                        self.current_members()
                    } else {
                        Vec::new()
                    };
                    let mut result = self.current_join_result(new_id, members, skip);
                    result.leader = reported_leader;
                    Answer::Now(result)
                } else {
                    self.prepare_rebalance(now, out);
                    Answer::Wait(new_id)
                }
            }
            GroupState::CompletingRebalance => {
                self.update_member(&request, now);
                self.prepare_rebalance(now, out);
                Answer::Wait(new_id)
            }
            GroupState::PreparingRebalance => {
                self.update_member(&request, now);
                Answer::Wait(new_id)
            }
            GroupState::Empty | GroupState::Dead => {
                debug_assert!(false, "a group with a static member has members");
                Answer::Now(JoinResult::failed(
                    new_id,
                    ErrorCode::CoordinatorNotAvailable,
                ))
            }
        }
    }

    fn add_member(
        &mut self,
        id: MemberId,
        request: JoinRequest,
        now: Instant,
        out: &mut Vec<Reply>,
    ) {
        debug_assert!(!self.members.contains_key(&id));
        if let Some(phase) = self.join_phase.as_mut()
            && let Some(initial) = phase.initial_delay.as_mut()
        {
            initial.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if let Some(instance) = &request.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: request.instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                protocol_type: request.protocol_type,
                protocols: request.protocols,
                assignment: Bytes::new(),
                awaiting_join: true,
                awaiting_sync: false,
                last_heartbeat: now,
            },
        );
        self.maybe_prepare_rebalance(now, out);
    }

    fn update_member(&mut self, request: &JoinRequest, now: Instant) {
        let member = self
            .members
            .get_mut(&request.member_id)
            .expect("updating a current member");
        member.protocols = request.protocols.clone();
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.awaiting_join = true;
        member.last_heartbeat = now;
    }

    fn current_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    fn current_join_result(
        &self,
        member_id: MemberId,
        members: Vec<JoinedMember>,
        skip_assignment: bool,
    ) -> JoinResult {
        JoinResult {
            error: ErrorCode::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id,
            members,
            skip_assignment,
        }
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports,
    /// each member votes for its first choice; most votes wins.
    pub fn select_protocol(&self) -> Option<String> {
        select_protocol(self.members.values())
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant, out: &mut Vec<Reply>) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, out);
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, out: &mut Vec<Reply>) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_assignments(ErrorCode::RebalanceInProgress, out);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let timeout = self.rebalance_timeout();
        self.join_phase = Some(if self.state == GroupState::Empty {
            let delay = self.limits.initial_rebalance_delay;
            JoinPhase {
                deadline: now + delay,
                initial_delay: Some(InitialDelay {
                    remaining: timeout.saturating_sub(delay),
                    new_member_added: false,
                }),
            }
        } else {
            JoinPhase {
                deadline: now + timeout,
                initial_delay: None,
            }
        });
        self.transition(GroupState::PreparingRebalance);
    }

    /// Clears the assignments and fails every waiting SyncGroup with `error`.
    fn reset_assignments(&mut self, error: ErrorCode, out: &mut Vec<Reply>) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
            if member.awaiting_sync {
                member.awaiting_sync = false;
                out.push(Reply::Sync(member.id.clone(), SyncResult::failed(error)));
            }
        }
    }

    /// Completes the join phase once everybody rejoined, unless it is still in
    /// the initial delay (which always runs to its deadline).
    fn try_complete_join(&mut self, now: Instant, now_ms: i64, out: &mut Vec<Reply>) {
        let Some(phase) = self.join_phase else {
            return;
        };
        if self.state == GroupState::PreparingRebalance
            && phase.initial_delay.is_none()
            && self.pending.is_empty()
            && self.members.values().all(|m| m.awaiting_join)
        {
            self.complete_join(now, now_ms, out);
        }
    }

    fn complete_join(&mut self, now: Instant, now_ms: i64, out: &mut Vec<Reply>) {
        debug_assert_eq!(self.state, GroupState::PreparingRebalance);
        // Dynamic members that did not rejoin are gone; static ones stay until
        // their session runs out, so a restarting instance keeps its place.
        let gone: Vec<MemberId> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, out);
        }
        self.pending.clear();
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Nobody rejoined: wait for the sessions of the silent ones to end.
            self.join_phase = Some(JoinPhase {
                deadline: now + self.rebalance_timeout(),
                initial_delay: None,
            });
            return;
        }
        self.join_phase = None;
        self.generation = GenerationId(self.generation.0.wrapping_add(1));
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.empty_since_ms = now_ms;
            self.transition(GroupState::Empty);
            return;
        }
        self.protocol = self.select_protocol();
        debug_assert!(self.protocol.is_some(), "joined members share a protocol");
        self.transition(GroupState::CompletingRebalance);
        let leader = self.leader.clone().expect("elected above");
        let all = self.current_members();
        let ids: Vec<MemberId> = self.members.keys().cloned().collect();
        for id in ids {
            let members = if id == leader {
                all.clone()
            } else {
                Vec::new()
            };
            let result = self.current_join_result(id.clone(), members, false);
            let member = self.members.get_mut(&id).expect("listed above");
            if member.awaiting_join {
                member.awaiting_join = false;
                out.push(Reply::Join(id.clone(), result));
            }
            member.last_heartbeat = now;
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some(now + self.rebalance_timeout());
    }

    /// Keeps the leader if it rejoined, else picks a member that did.
    fn elect_joined_leader(&mut self) -> bool {
        if let Some(leader) = &self.leader
            && self.members.get(leader).is_some_and(|m| m.awaiting_join)
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join) {
            Some(member) => {
                self.leader = Some(member.id.clone());
                true
            }
            None => false,
        }
    }

    fn remove_member(&mut self, id: &MemberId, out: &mut Vec<Reply>) {
        let Some(member) = self.members.remove(id) else {
            return;
        };
        if member.awaiting_join {
            out.push(Reply::Join(
                id.clone(),
                JoinResult::failed(id.clone(), ErrorCode::UnknownMemberId),
            ));
        }
        if member.awaiting_sync {
            out.push(Reply::Sync(
                id.clone(),
                SyncResult::failed(ErrorCode::UnknownMemberId),
            ));
        }
        if let Some(instance) = &member.instance_id {
            self.static_members.remove(instance);
        }
        if self.leader.as_ref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_sync.remove(id);
    }

    fn remove_member_and_rebalance(
        &mut self,
        id: &MemberId,
        now: Instant,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        self.remove_member(id, out);
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now, out);
        }
        self.try_complete_join(now, now_ms, out);
    }

    pub fn sync(&mut self, request: SyncRequest, now: Instant) -> SyncAnswer {
        let fail = |error| SyncAnswer::Now(SyncResult::failed(error));
        if self.state == GroupState::Dead {
            return fail(ErrorCode::CoordinatorNotAvailable);
        }
        if let Err(error) = self.validate_member(&request.member_id, request.instance_id.as_ref()) {
            return fail(error);
        }
        if request.generation != self.generation {
            return fail(ErrorCode::IllegalGeneration);
        }
        if request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || request
                .protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != self.protocol.as_ref())
        {
            return fail(ErrorCode::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ErrorCode::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(&request.member_id);
                let member = self
                    .members
                    .get_mut(&request.member_id)
                    .expect("validated above");
                member.awaiting_sync = true;
                member.last_heartbeat = now;
                if self.leader.as_ref() != Some(&request.member_id) {
                    return SyncAnswer::Wait(request.member_id);
                }
                let mut assignment: BTreeMap<MemberId, Bytes> = request
                    .assignments
                    .into_iter()
                    .filter(|(id, _)| self.members.contains_key(id))
                    .collect();
                for id in self.members.keys() {
                    assignment.entry(id.clone()).or_default();
                }
                SyncAnswer::Store {
                    leader: request.member_id,
                    generation: self.generation,
                    assignment,
                }
            }
            GroupState::Stable => {
                self.pending_sync.remove(&request.member_id);
                let member = self
                    .members
                    .get_mut(&request.member_id)
                    .expect("validated above");
                member.last_heartbeat = now;
                SyncAnswer::Now(SyncResult {
                    error: ErrorCode::None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    assignment: member.assignment.clone(),
                })
            }
        }
    }

    /// After the leader's assignment was stored (or failed to be): hand out the
    /// assignments and become Stable, if the group is still in that generation.
    pub fn complete_sync(
        &mut self,
        generation: GenerationId,
        assignment: BTreeMap<MemberId, Bytes>,
        stored: Result<(), ErrorCode>,
        now: Instant,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        if self.state != GroupState::CompletingRebalance || generation != self.generation {
            return;
        }
        if let Err(error) = stored {
            self.reset_assignments(error, out);
            self.prepare_rebalance(now, out);
            self.try_complete_join(now, now_ms, out);
            return;
        }
        let (protocol_type, protocol_name) = (self.protocol_type.clone(), self.protocol.clone());
        for member in self.members.values_mut() {
            member.assignment = assignment.get(&member.id).cloned().unwrap_or_default();
            if member.awaiting_sync {
                member.awaiting_sync = false;
                out.push(Reply::Sync(
                    member.id.clone(),
                    SyncResult {
                        error: ErrorCode::None,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: member.assignment.clone(),
                    },
                ));
            }
        }
        self.transition(GroupState::Stable);
    }

    pub fn heartbeat(
        &mut self,
        member_id: &MemberId,
        instance_id: Option<&InstanceId>,
        generation: GenerationId,
        now: Instant,
    ) -> ErrorCode {
        if self.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if let Err(error) = self.validate_member(member_id, instance_id) {
            return error;
        }
        if generation != self.generation {
            return ErrorCode::IllegalGeneration;
        }
        let member = self.members.get_mut(member_id).expect("validated above");
        member.last_heartbeat = now;
        match self.state {
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
        }
    }

    /// LeaveGroup for each (member id, instance id); an unknown member id with
    /// an instance id removes that static member (the admin API's way).
    pub fn leave(
        &mut self,
        leaving: &[(MemberId, Option<InstanceId>)],
        now: Instant,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) -> Vec<ErrorCode> {
        leaving
            .iter()
            .map(|(member_id, instance_id)| {
                if self.state == GroupState::Dead {
                    return ErrorCode::CoordinatorNotAvailable;
                }
                if member_id.is_unknown() {
                    let current = instance_id
                        .as_ref()
                        .and_then(|i| self.static_members.get(i))
                        .cloned();
                    return match current {
                        Some(current) => {
                            self.remove_member_and_rebalance(&current, now, now_ms, out);
                            ErrorCode::None
                        }
                        None => ErrorCode::UnknownMemberId,
                    };
                }
                if self.pending.remove(member_id).is_some() {
                    self.try_complete_join(now, now_ms, out);
                    return ErrorCode::None;
                }
                match self.validate_member(member_id, instance_id.as_ref()) {
                    Err(error) => error,
                    Ok(()) => {
                        self.remove_member_and_rebalance(member_id, now, now_ms, out);
                        ErrorCode::None
                    }
                }
            })
            .collect()
    }

    /// Whether OffsetCommit from this member at this generation may store
    /// offsets (Kafka's rules; generation -1 with no member id is a "simple"
    /// commit, allowed whatever the group does).
    pub fn validate_commit(
        &mut self,
        member_id: &MemberId,
        instance_id: Option<&InstanceId>,
        generation: GenerationId,
        now: Instant,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|current| current != member_id)
        {
            return Err(ErrorCode::FencedInstanceId);
        }
        if !member_id.is_unknown() && !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        if generation.0 >= 0 && generation != self.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
        match self.state {
            // The member got this generation's JoinGroup response but not its
            // assignment yet: it must not commit for partitions it may lose.
            GroupState::CompletingRebalance => Err(ErrorCode::RebalanceInProgress),
            _ => {
                if let Some(member) = self.members.get_mut(member_id) {
                    member.last_heartbeat = now;
                }
                Ok(())
            }
        }
    }

    /// Whether TxnOffsetCommit from this member at this generation may store
    /// offsets: Kafka's ClassicGroup.validateOffsetCommit for a transactional
    /// commit, which does not look at the group's state (a producer outside
    /// group management sends generation -1 and no member).
    pub fn validate_txn_commit(
        &self,
        member_id: &MemberId,
        instance_id: Option<&InstanceId>,
        generation: GenerationId,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if generation.0 < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation.0 >= 0 || !member_id.is_unknown() || instance_id.is_some() {
            if let Some(instance) = instance_id {
                match self.static_members.get(instance) {
                    None => return Err(ErrorCode::UnknownMemberId),
                    Some(current) if current != member_id => {
                        return Err(ErrorCode::FencedInstanceId);
                    }
                    Some(_) => {}
                }
            }
            if !self.members.contains_key(member_id) {
                return Err(ErrorCode::UnknownMemberId);
            }
            if generation != self.generation {
                return Err(ErrorCode::IllegalGeneration);
            }
        }
        Ok(())
    }

    /// The earliest moment `tick` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && !m.awaiting_sync)
            .map(Member::session_deadline);
        let join = self
            .join_phase
            .filter(|_| self.state == GroupState::PreparingRebalance)
            .map(|p| p.deadline);
        sessions
            .chain(self.pending.values().copied())
            .chain(join)
            .chain(self.sync_deadline)
            .min()
    }

    /// Runs every timer due at `now`: expired pending ids and sessions, the end
    /// of a join phase, members that never synced.
    pub fn tick(&mut self, now: Instant, now_ms: i64, out: &mut Vec<Reply>) {
        let pending_before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        if self.pending.len() != pending_before {
            self.try_complete_join(now, now_ms, out);
        }
        let expired: Vec<MemberId> = self
            .members
            .values()
            .filter(|m| m.session_expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session expired; removing the member");
            self.remove_member_and_rebalance(&id, now, now_ms, out);
        }
        if self.state == GroupState::PreparingRebalance
            && let Some(mut phase) = self.join_phase
            && phase.deadline <= now
        {
            match phase.initial_delay.as_mut() {
                Some(initial) if initial.new_member_added && !initial.remaining.is_zero() => {
                    let step = self.limits.initial_rebalance_delay.min(initial.remaining);
                    initial.remaining -= step;
                    initial.new_member_added = false;
                    phase.deadline = now + step;
                    self.join_phase = Some(phase);
                }
                _ => self.complete_join(now, now_ms, out),
            }
        }
        if let Some(deadline) = self.sync_deadline
            && deadline <= now
        {
            self.sync_deadline = None;
            let laggards: Vec<MemberId> = self.pending_sync.iter().cloned().collect();
            if !laggards.is_empty()
                && matches!(
                    self.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                )
            {
                for id in &laggards {
                    self.remove_member(id, out);
                }
                self.prepare_rebalance(now, out);
                self.try_complete_join(now, now_ms, out);
            }
        }
    }

    /// The group as GroupMetadataValue, with `assignment` as the members' one.
    pub fn to_value(&self, assignment: &BTreeMap<MemberId, Bytes>, now_ms: i64) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation.0,
            protocol: self.protocol.clone(),
            leader: self.leader.as_ref().map(|l| l.0.clone()),
            current_state_timestamp: now_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.0.clone(),
                    group_instance_id: m.instance_id.as_ref().map(|i| i.0.clone()),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: duration_ms(m.rebalance_timeout),
                    session_timeout_ms: duration_ms(m.session_timeout),
                    subscription: m.metadata(&protocol),
                    assignment: assignment.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Members for DescribeGroups: metadata and assignments only when Stable,
    /// as Kafka does.
    pub fn describe_members(&self) -> Vec<MemberSummary> {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| MemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect()
    }

    /// Topics the members subscribe to, for consumer groups whose subscriptions
    /// parse; `None` when unknown.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let metadata = member.metadata(protocol);
            let mut buf = metadata.clone();
            if buf.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([buf[0], buf[1]]);
            bytes::Buf::advance(&mut buf, 2);
            let subscription =
                ConsumerProtocolSubscription::decode(&mut buf, version.clamp(0, 3)).ok()?;
            topics.extend(subscription.topics.into_iter().map(|t| t.to_string()));
        }
        Some(topics)
    }
}

fn duration_ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

/// Kafka's protocol selection over `members`: candidates are the protocols all
/// support; each member votes for its first choice among them; the most votes
/// win, ties going to the candidate the first member prefers.
pub fn select_protocol<'a>(members: impl Iterator<Item = &'a Member> + Clone) -> Option<String> {
    let first = members.clone().next()?;
    let candidates: Vec<&str> = first
        .protocols
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| members.clone().all(|m| m.supports(name)))
        .collect();
    let mut votes = vec![0usize; candidates.len()];
    for member in members {
        if let Some(choice) = member.vote(&candidates) {
            let index = candidates
                .iter()
                .position(|c| *c == choice)
                .expect("a candidate");
            votes[index] += 1;
        }
    }
    let best = votes.iter().copied().max()?;
    let index = votes.iter().position(|&v| v == best)?;
    candidates.get(index).map(|c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(10);
    const REBALANCE: Duration = Duration::from_secs(30);
    const DELAY: Duration = Duration::from_millis(100);

    fn limits() -> GroupLimits {
        GroupLimits {
            min_session_timeout: Duration::from_millis(100),
            max_session_timeout: Duration::from_secs(60),
            initial_rebalance_delay: DELAY,
            max_size: 3,
        }
    }

    fn protocols(names: &[&str]) -> Vec<Protocol> {
        names
            .iter()
            .map(|n| Protocol {
                name: n.to_string(),
                metadata: Bytes::from(format!("meta-{n}")),
            })
            .collect()
    }

    fn join_request(member: &MemberId, names: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member.clone(),
            instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: SESSION,
            rebalance_timeout: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: protocols(names),
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    fn sync_request(member: &MemberId, generation: GenerationId) -> SyncRequest {
        SyncRequest {
            member_id: member.clone(),
            instance_id: None,
            generation,
            protocol_type: Some("consumer".into()),
            protocol_name: None,
            assignments: Vec::new(),
        }
    }

    fn group() -> Group {
        Group::new(GroupId("g".into()), limits(), 0)
    }

    /// MEMBER_ID_REQUIRED, then the real join: returns the member id.
    fn join_new(group: &mut Group, now: Instant, out: &mut Vec<Reply>) -> MemberId {
        let unknown = MemberId::default();
        let Answer::Now(first) = group.join(join_request(&unknown, &["range"]), now, 0, out) else {
            panic!("a new member first learns its id");
        };
        assert_eq!(first.error, ErrorCode::MemberIdRequired);
        assert!(first.member_id.0.starts_with("client-"));
        let id = first.member_id;
        assert_eq!(
            group.join(join_request(&id, &["range"]), now, 0, out),
            Answer::Wait(id.clone())
        );
        id
    }

    fn join_replies(out: &mut Vec<Reply>) -> BTreeMap<MemberId, JoinResult> {
        let mut replies = BTreeMap::new();
        out.retain(|reply| match reply {
            Reply::Join(id, result) => {
                replies.insert(id.clone(), result.clone());
                false
            }
            Reply::Sync(..) => true,
        });
        replies
    }

    /// Two members join and sync: the group is Stable at generation 1.
    fn stable_pair(now: Instant) -> (Group, MemberId, MemberId) {
        let mut group = group();
        let mut out = Vec::new();
        let a = join_new(&mut group, now, &mut out);
        let b = join_new(&mut group, now, &mut out);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert!(out.is_empty(), "the initial delay holds the join");
        group.tick(now + DELAY, 0, &mut out);
        assert!(out.is_empty(), "the second member stretched the delay");
        group.tick(now + DELAY * 2, 0, &mut out);
        let joined = join_replies(&mut out);
        assert_eq!(joined.len(), 2);
        assert_eq!(group.state(), GroupState::CompletingRebalance);
        let generation = group.generation();
        assert_eq!(generation, GenerationId(1));
        let leader = group.leader().unwrap().clone();
        assert_eq!(joined[&leader].members.len(), 2, "the leader sees everyone");
        let follower = if leader == a { b.clone() } else { a.clone() };
        assert!(joined[&follower].members.is_empty());
        assert_eq!(joined[&follower].protocol_name.as_deref(), Some("range"));

        assert_eq!(
            group.sync(sync_request(&follower, generation), now),
            SyncAnswer::Wait(follower.clone())
        );
        let mut leader_sync = sync_request(&leader, generation);
        leader_sync.assignments = vec![
            (leader.clone(), Bytes::from_static(b"L")),
            (follower.clone(), Bytes::from_static(b"F")),
            (MemberId("stranger".into()), Bytes::from_static(b"X")),
        ];
        let SyncAnswer::Store { assignment, .. } = group.sync(leader_sync, now) else {
            panic!("the leader's sync stores the group");
        };
        assert_eq!(
            assignment.len(),
            2,
            "assignments for non-members are dropped"
        );
        assert_eq!(group.state(), GroupState::CompletingRebalance);
        group.complete_sync(generation, assignment, Ok(()), now, 0, &mut out);
        assert_eq!(group.state(), GroupState::Stable);
        assert_eq!(out.len(), 2);
        for reply in &out {
            let Reply::Sync(id, result) = reply else {
                panic!("sync replies only");
            };
            let expected: &[u8] = if *id == leader { b"L" } else { b"F" };
            assert_eq!(result.assignment.as_ref(), expected);
        }
        (group, leader, follower)
    }

    #[test]
    fn transactional_commits_check_member_and_generation_but_not_the_state() {
        let now = Instant::now();
        let unknown = MemberId::default();
        // v0-2: no member, generation -1. An empty group takes it.
        assert_eq!(
            group().validate_txn_commit(&unknown, None, GenerationId(-1)),
            Ok(())
        );
        let (mut group, leader, _) = stable_pair(now);
        let generation = group.generation();
        // Outside group management a producer commits whatever the group does.
        assert_eq!(
            group.validate_txn_commit(&unknown, None, GenerationId(-1)),
            Ok(())
        );
        assert_eq!(group.validate_txn_commit(&leader, None, generation), Ok(()));
        assert_eq!(
            group.validate_txn_commit(&leader, None, GenerationId(7)),
            Err(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            group.validate_txn_commit(&MemberId("nobody".into()), None, generation),
            Err(ErrorCode::UnknownMemberId)
        );
        assert_eq!(
            group.validate_txn_commit(&leader, Some(&InstanceId("i".into())), generation),
            Err(ErrorCode::UnknownMemberId)
        );
        // A rebalance does not stop transactional commits of the generation.
        let mut out = Vec::new();
        let _ = group.join(join_request(&leader, &["range"]), now, 0, &mut out);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(group.validate_txn_commit(&leader, None, generation), Ok(()));
        let mut dead = self::group();
        dead.set_dead();
        assert_eq!(
            dead.validate_txn_commit(&unknown, None, GenerationId(-1)),
            Err(ErrorCode::CoordinatorNotAvailable)
        );
    }

    #[test]
    fn two_members_join_sync_and_heartbeat() {
        let now = Instant::now();
        let (mut group, leader, follower) = stable_pair(now);
        let generation = group.generation();
        assert_eq!(
            group.heartbeat(&follower, None, generation, now),
            ErrorCode::None
        );
        assert_eq!(
            group.heartbeat(&follower, None, GenerationId(0), now),
            ErrorCode::IllegalGeneration
        );
        assert_eq!(
            group.heartbeat(&MemberId("nobody".into()), None, generation, now),
            ErrorCode::UnknownMemberId
        );
        // A stable follower that rejoins unchanged gets the same generation.
        let mut out = Vec::new();
        let Answer::Now(again) = group.join(join_request(&follower, &["range"]), now, 0, &mut out)
        else {
            panic!("no rebalance for an unchanged follower");
        };
        assert_eq!(
            (again.error, again.generation),
            (ErrorCode::None, generation)
        );
        assert_eq!(again.leader, leader);
        // The leader rejoining starts a rebalance; the others hear of it.
        assert_eq!(
            group.join(join_request(&leader, &["range"]), now, 0, &mut out),
            Answer::Wait(leader.clone())
        );
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(
            group.heartbeat(&follower, None, generation, now),
            ErrorCode::RebalanceInProgress
        );
        assert_eq!(
            group.validate_commit(&follower, None, generation, now),
            Ok(()),
            "commits from the current generation are fine while preparing"
        );
        assert_eq!(
            group.join(join_request(&follower, &["range"]), now, 0, &mut out),
            Answer::Wait(follower.clone())
        );
        assert_eq!(join_replies(&mut out).len(), 2, "everybody rejoined: done");
        assert_eq!(group.generation(), GenerationId(2));
        assert_eq!(
            group.validate_commit(&follower, None, GenerationId(2), now),
            Err(ErrorCode::RebalanceInProgress)
        );
        assert_eq!(
            group.validate_commit(&MemberId::default(), None, GenerationId(-1), now),
            Err(ErrorCode::RebalanceInProgress)
        );
    }

    #[test]
    fn a_silent_member_is_removed_after_its_session_and_the_group_rebalances() {
        let now = Instant::now();
        let (mut group, leader, follower) = stable_pair(now);
        let mut out = Vec::new();
        let later = now + SESSION / 2;
        assert_eq!(
            group.heartbeat(&leader, None, group.generation(), later),
            ErrorCode::None
        );
        assert_eq!(group.next_deadline(), Some(now + SESSION));
        group.tick(now + SESSION, 0, &mut out);
        assert!(group.member(&follower).is_none());
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        // The leader rejoins; the join completes at once with one member.
        assert_eq!(
            group.join(
                join_request(&leader, &["range"]),
                now + SESSION,
                0,
                &mut out
            ),
            Answer::Wait(leader.clone())
        );
        let joined = join_replies(&mut out);
        assert_eq!(joined[&leader].members.len(), 1);
        assert_eq!(group.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
        let now = Instant::now();
        let (mut group, leader, follower) = stable_pair(now);
        let mut out = Vec::new();
        let start = now + Duration::from_secs(1);
        group.join(join_request(&leader, &["range"]), start, 0, &mut out);
        // The follower keeps heartbeating but never rejoins.
        let mid = start + SESSION / 2;
        group.heartbeat(&follower, None, group.generation(), mid);
        group.tick(mid, 0, &mut out);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        let deadline = start + REBALANCE;
        group.heartbeat(&follower, None, group.generation(), deadline - SESSION / 2);
        group.tick(deadline, 0, &mut out);
        assert_eq!(group.state(), GroupState::CompletingRebalance);
        assert!(group.member(&follower).is_none());
        assert_eq!(
            join_replies(&mut out).keys().collect::<Vec<_>>(),
            vec![&leader]
        );
    }

    #[test]
    fn leaving_members_rebalance_and_the_last_one_empties_the_group() {
        let now = Instant::now();
        let (mut group, leader, follower) = stable_pair(now);
        let mut out = Vec::new();
        let errors = group.leave(
            &[(follower.clone(), None), (MemberId("ghost".into()), None)],
            now,
            0,
            &mut out,
        );
        assert_eq!(errors, vec![ErrorCode::None, ErrorCode::UnknownMemberId]);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        group.leave(&[(leader.clone(), None)], now, 5, &mut out);
        assert_eq!(group.state(), GroupState::Empty);
        assert_eq!(group.generation(), GenerationId(2));
        assert_eq!(group.empty_since_ms(), 5);
        assert_eq!(group.next_deadline(), None);
    }

    #[test]
    fn static_member_rejoining_keeps_its_assignment_without_a_rebalance() {
        let now = Instant::now();
        let mut group = group();
        let mut out = Vec::new();
        let mut request = join_request(&MemberId::default(), &["range"]);
        request.instance_id = Some(InstanceId("i-1".into()));
        let Answer::Wait(first) = group.join(request.clone(), now, 0, &mut out) else {
            panic!("static members join without MEMBER_ID_REQUIRED");
        };
        assert!(first.0.starts_with("i-1-"));
        group.tick(now + DELAY, 0, &mut out);
        assert_eq!(join_replies(&mut out).len(), 1);
        let generation = group.generation();
        let mut sync = sync_request(&first, generation);
        sync.instance_id = Some(InstanceId("i-1".into()));
        sync.assignments = vec![(first.clone(), Bytes::from_static(b"A"))];
        let SyncAnswer::Store { assignment, .. } = group.sync(sync.clone(), now) else {
            panic!("leader stores");
        };
        group.complete_sync(generation, assignment, Ok(()), now, 0, &mut out);
        out.clear();

        // The instance restarts: a new member id, same generation, same leader
        // as before (the old id), and SyncGroup hands out the old assignment.
        let Answer::Now(rejoined) = group.join(request, now, 0, &mut out) else {
            panic!("no rebalance for a returning static member");
        };
        assert_eq!(rejoined.error, ErrorCode::None);
        assert_eq!(rejoined.generation, generation);
        assert_ne!(rejoined.member_id, first);
        assert_eq!(
            rejoined.leader, first,
            "a v0-8 client must not act as leader"
        );
        assert_eq!(group.state(), GroupState::Stable);
        let mut new_sync = sync.clone();
        new_sync.member_id = rejoined.member_id.clone();
        let SyncAnswer::Now(result) = group.sync(new_sync, now) else {
            panic!("stable groups answer SyncGroup at once");
        };
        assert_eq!(result.assignment.as_ref(), b"A");
        // The old id is fenced.
        let instance = InstanceId("i-1".into());
        assert_eq!(
            group.heartbeat(&first, Some(&instance), generation, now),
            ErrorCode::FencedInstanceId
        );
        assert_eq!(
            group.validate_commit(&first, Some(&instance), generation, now),
            Err(ErrorCode::FencedInstanceId)
        );
    }

    #[test]
    fn protocol_selection_follows_kafkas_vote() {
        let now = Instant::now();
        let member = |id: &str, names: &[&str]| Member {
            id: MemberId(id.into()),
            instance_id: None,
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout: SESSION,
            rebalance_timeout: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: protocols(names),
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            last_heartbeat: now,
        };
        let members = [
            member("a", &["range", "roundrobin", "sticky"]),
            member("b", &["roundrobin", "range"]),
            member("c", &["roundrobin", "sticky", "range"]),
        ];
        // Only range and roundrobin are common; roundrobin gets two votes.
        assert_eq!(
            select_protocol(members.iter()).as_deref(),
            Some("roundrobin")
        );
        let disjoint = [member("a", &["x"]), member("b", &["y"])];
        assert_eq!(select_protocol(disjoint.iter()), None);
        assert_eq!(select_protocol([].iter()), None);
    }

    #[test]
    fn joins_are_refused_when_they_cannot_fit() {
        let now = Instant::now();
        let mut group = group();
        let mut out = Vec::new();
        join_new(&mut group, now, &mut out);
        let unknown = MemberId::default();
        let mut other_type = join_request(&unknown, &["range"]);
        other_type.protocol_type = "connect".into();
        let Answer::Now(refused) = group.join(other_type, now, 0, &mut out) else {
            panic!("a mismatched protocol type answers at once");
        };
        assert_eq!(refused.error, ErrorCode::InconsistentGroupProtocol);
        let Answer::Now(refused) =
            group.join(join_request(&unknown, &["roundrobin"]), now, 0, &mut out)
        else {
            panic!("a protocol nobody shares answers at once");
        };
        assert_eq!(refused.error, ErrorCode::InconsistentGroupProtocol);
        for _ in 0..2 {
            join_new(&mut group, now, &mut out);
        }
        let Answer::Now(full) = group.join(join_request(&unknown, &["range"]), now, 0, &mut out)
        else {
            panic!("a full group answers at once");
        };
        assert_eq!(full.error, ErrorCode::GroupMaxSizeReached);
        assert!(
            limits()
                .check_session_timeout(Duration::from_millis(10))
                .is_err()
        );
        assert!(limits().check_session_timeout(SESSION).is_ok());
    }

    #[test]
    fn the_initial_delay_stretches_while_members_keep_arriving() {
        let now = Instant::now();
        let mut group = group();
        let mut out = Vec::new();
        join_new(&mut group, now, &mut out);
        assert_eq!(group.next_deadline(), Some(now + DELAY));
        let later = now + DELAY / 2;
        join_new(&mut group, later, &mut out);
        group.tick(now + DELAY, 0, &mut out);
        assert_eq!(
            group.state(),
            GroupState::PreparingRebalance,
            "a newcomer extends the delay"
        );
        assert_eq!(group.next_deadline(), Some(now + DELAY * 2));
        group.tick(now + DELAY * 2, 0, &mut out);
        assert_eq!(group.state(), GroupState::CompletingRebalance);
        assert_eq!(join_replies(&mut out).len(), 2);
    }
}
