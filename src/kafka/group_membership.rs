//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: translated to the group state
//! machine's terms and run on the coordinating shard. JoinGroup and SyncGroup
//! answer only when the rebalance does; the connection waits meanwhile (clients
//! talk to the coordinator over a connection of its own).

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::group::ids::{GenerationId, GroupId, InstanceId, MemberId};
use crate::group::member::Protocol;
use crate::group::requests::{GroupHeartbeat, JoinGroup, LeaveGroup, SyncGroup};
use crate::group::state::{JoinRequest, JoinResult, SyncRequest, SyncResult};
use crate::kafka::group_routing::{MAX_NAME_BYTES, call};
use crate::net::context::ConnectionContext;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;

fn text(value: &StrBytes) -> String {
    value.to_string()
}

fn instance(value: &Option<StrBytes>) -> Option<InstanceId> {
    value.as_ref().map(|v| InstanceId(v.to_string()))
}

fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn ms(value: i32) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

pub async fn join(
    context: &ConnectionContext,
    shard: &Rc<Shard>,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let client_id = context.client_id();
    let member_id = MemberId(text(&request.member_id));
    let too_long = request.protocol_type.len() > MAX_NAME_BYTES
        || request
            .protocols
            .iter()
            .any(|p| p.name.len() > MAX_NAME_BYTES)
        || client_id.as_ref().is_some_and(|c| c.len() > MAX_NAME_BYTES)
        || request
            .group_instance_id
            .as_ref()
            .is_some_and(|i| i.len() > MAX_NAME_BYTES);
    let result = if request.group_id.is_empty() {
        JoinResult::failed(member_id, ErrorCode::InvalidGroupId)
    } else if too_long {
        JoinResult::failed(member_id, ErrorCode::InvalidRequest)
    } else {
        let group = text(&request.group_id);
        // JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance_timeout = if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        };
        let join = JoinRequest {
            member_id: member_id.clone(),
            instance_id: instance(&request.group_instance_id),
            client_id: client_id.unwrap_or_default(),
            client_host: context.client_host(),
            session_timeout: ms(request.session_timeout_ms),
            rebalance_timeout: ms(rebalance_timeout),
            protocol_type: text(&request.protocol_type),
            protocols: request
                .protocols
                .iter()
                .map(|p| Protocol {
                    name: text(&p.name),
                    metadata: p.metadata.clone(),
                })
                .collect(),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        };
        let request = JoinGroup {
            group: GroupId(group.clone()),
            request: join,
        };
        call(shard, &group, request)
            .await
            .unwrap_or_else(|error| JoinResult::failed(member_id, error))
    };
    // Protocol names are nullable from v7 only.
    let name = |value: Option<String>| match value {
        Some(value) => Some(str_bytes(&value)),
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(result.error.code())
        .with_generation_id(result.generation.0)
        .with_protocol_type(result.protocol_type.map(|t| str_bytes(&t)))
        .with_protocol_name(name(result.protocol_name))
        .with_leader(str_bytes(&result.leader.0))
        .with_skip_assignment(result.skip_assignment)
        .with_member_id(str_bytes(&result.member_id.0))
        .with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&m.member_id.0))
                        .with_group_instance_id(m.instance_id.map(|i| str_bytes(&i.0)))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}

pub async fn sync(shard: &Rc<Shard>, request: SyncGroupRequest) -> SyncGroupResponse {
    let result = if request.group_id.is_empty() {
        SyncResult::failed(ErrorCode::InvalidGroupId)
    } else {
        let group = text(&request.group_id);
        let sync = SyncRequest {
            member_id: MemberId(text(&request.member_id)),
            instance_id: instance(&request.group_instance_id),
            generation: GenerationId(request.generation_id),
            protocol_type: request.protocol_type.as_ref().map(text),
            protocol_name: request.protocol_name.as_ref().map(text),
            assignments: request
                .assignments
                .iter()
                .map(|a| (MemberId(text(&a.member_id)), a.assignment.clone()))
                .collect(),
        };
        let request = SyncGroup {
            group: GroupId(group.clone()),
            request: sync,
        };
        call(shard, &group, request)
            .await
            .unwrap_or_else(SyncResult::failed)
    };
    SyncGroupResponse::default()
        .with_error_code(result.error.code())
        .with_protocol_type(result.protocol_type.map(|t| str_bytes(&t)))
        .with_protocol_name(result.protocol_name.map(|p| str_bytes(&p)))
        .with_assignment(result.assignment)
}

pub async fn heartbeat(shard: &Rc<Shard>, request: HeartbeatRequest) -> HeartbeatResponse {
    let error = if request.group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else {
        let group = text(&request.group_id);
        let heartbeat = GroupHeartbeat {
            group: GroupId(group.clone()),
            member: MemberId(text(&request.member_id)),
            instance: instance(&request.group_instance_id),
            generation: GenerationId(request.generation_id),
        };
        call(shard, &group, heartbeat)
            .await
            .unwrap_or_else(|error| error)
    };
    HeartbeatResponse::default().with_error_code(error.code())
}

pub async fn leave(
    shard: &Rc<Shard>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    // v0-2 name one member; v3+ a batch, each with an optional instance id.
    let members: Vec<(MemberId, Option<InstanceId>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (MemberId(text(&m.member_id)), instance(&m.group_instance_id)))
            .collect()
    } else {
        vec![(MemberId(text(&request.member_id)), None)]
    };
    let outcome = if request.group_id.is_empty() {
        Err(ErrorCode::InvalidGroupId)
    } else {
        let group = text(&request.group_id);
        let leave = LeaveGroup {
            group: GroupId(group.clone()),
            members: members.clone(),
        };
        call(shard, &group, leave).await.and_then(|outcome| outcome)
    };
    match outcome {
        Err(error) => LeaveGroupResponse::default().with_error_code(error.code()),
        Ok(errors) if version < 3 => LeaveGroupResponse::default()
            .with_error_code(errors.first().copied().unwrap_or(ErrorCode::None).code()),
        Ok(errors) => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(errors)
                .map(|((member, instance), error)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&member.0))
                        .with_group_instance_id(instance.map(|i| str_bytes(&i.0)))
                        .with_error_code(error.code())
                })
                .collect(),
        ),
    }
}
