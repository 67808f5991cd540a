//! DescribeGroups, ListGroups, DeleteGroups and OffsetDelete: the group admin
//! APIs. Requests naming groups are split by coordinating shard (one message
//! per shard); ListGroups asks every shard.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    ListGroupsRequest, ListGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::group::ids::GroupId;
use crate::group::requests::{
    DeleteGroups, DeleteOffsets, DescribeGroups, GroupDescription, ListGroups,
};
use crate::group::state::GroupState;
use crate::kafka::fan_out;
use crate::kafka::group_routing::{call, split_by_coordinator};
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;
use crate::shard::call::ShardCall;

/// Every classic group is of this type (ListGroups v5).
const CLASSIC: &str = "classic";

fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// Runs a per-group request on each coordinating shard and returns the
/// results in request order (`failed` for groups whose coordinator is missing).
async fn per_group<C, R>(
    shard: &Rc<Shard>,
    groups: Vec<String>,
    request: impl Fn(Vec<GroupId>) -> C,
    failed: impl Fn(ErrorCode) -> R,
) -> Vec<R>
where
    C: ShardCall<Reply = Vec<R>>,
    R: Clone,
{
    let count = groups.len();
    let items = groups
        .into_iter()
        .map(|g| (g.clone(), GroupId(g)))
        .collect();
    let (per_shard, errors) = split_by_coordinator(shard, items).await;
    let mut slots: Vec<Option<R>> = vec![None; count];
    for (index, error) in errors {
        slots[index] = Some(failed(error));
    }
    let mut indexes = BTreeMap::new();
    let requests = per_shard
        .into_iter()
        .map(|(owner, items)| {
            let (owner_indexes, ids): (Vec<usize>, Vec<GroupId>) = items.into_iter().unzip();
            indexes.insert(owner, owner_indexes);
            (owner, request(ids))
        })
        .collect();
    for (owner, results) in fan_out(shard, requests).await {
        for (index, result) in indexes[&owner].iter().zip(results) {
            slots[*index] = Some(result);
        }
    }
    slots
        .into_iter()
        .map(|slot| slot.unwrap_or_else(|| failed(ErrorCode::UnknownServerError)))
        .collect()
}

pub async fn describe(shard: &Rc<Shard>, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let names: Vec<String> = request.groups.iter().map(|g| g.to_string()).collect();
    let descriptions = per_group(shard, names.clone(), DescribeGroups, |error| {
        GroupDescription {
            error,
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        }
    })
    .await;
    let groups = names
        .into_iter()
        .zip(descriptions)
        .map(|(name, d)| {
            DescribedGroup::default()
                .with_group_id(kafka_protocol::messages::GroupId(str_bytes(&name)))
                .with_error_code(d.error.code())
                .with_group_state(str_bytes(d.state.name()))
                .with_protocol_type(str_bytes(&d.protocol_type))
                .with_protocol_data(str_bytes(&d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(&m.member_id.0))
                                .with_group_instance_id(m.instance_id.map(|i| str_bytes(&i.0)))
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn list(shard: &Rc<Shard>, request: ListGroupsRequest) -> ListGroupsResponse {
    // Kafka matches state names case-insensitively; unknown names match nothing.
    let all = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];
    let mut states: Vec<GroupState> = Vec::new();
    for wanted in &request.states_filter {
        states.extend(all.iter().filter(|s| s.name().eq_ignore_ascii_case(wanted)));
    }
    let nothing_matches = (!request.states_filter.is_empty() && states.is_empty())
        || (!request.types_filter.is_empty()
            && !request
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(CLASSIC)));
    if nothing_matches {
        return ListGroupsResponse::default();
    }
    let requests = shard
        .all_shards()
        .map(|owner| {
            let states = states.clone();
            (owner, ListGroups { states })
        })
        .collect();
    let mut groups = Vec::new();
    for (_, listed) in fan_out(shard, requests).await {
        groups.extend(listed.into_iter().map(|g| {
            ListedGroup::default()
                .with_group_id(kafka_protocol::messages::GroupId(str_bytes(&g.id.0)))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_group_state(str_bytes(g.state.name()))
                .with_group_type(str_bytes(CLASSIC))
        }));
    }
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn delete(shard: &Rc<Shard>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let names: Vec<String> = request.groups_names.iter().map(|g| g.to_string()).collect();
    let errors = per_group(shard, names.clone(), DeleteGroups, |error| error).await;
    DeleteGroupsResponse::default().with_results(
        names
            .into_iter()
            .zip(errors)
            .map(|(name, error)| {
                DeletableGroupResult::default()
                    .with_group_id(kafka_protocol::messages::GroupId(str_bytes(&name)))
                    .with_error_code(error.code())
            })
            .collect(),
    )
}

pub async fn delete_offsets(
    shard: &Rc<Shard>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = request.group_id.to_string();
    let mut errors: Vec<Vec<Option<ErrorCode>>> = Vec::with_capacity(request.topics.len());
    let mut partitions = Vec::new();
    {
        let image = shard.image();
        for topic in &request.topics {
            let known_topic = image.topic(topic.name.as_str());
            errors.push(
                topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let known =
                            known_topic.is_some_and(|t| t.partition(p.partition_index).is_some());
                        if known {
                            partitions.push((topic.name.to_string(), p.partition_index));
                            None
                        } else {
                            Some(ErrorCode::UnknownTopicOrPartition)
                        }
                    })
                    .collect(),
            );
        }
    }
    let deletion = DeleteOffsets {
        group: GroupId(group.clone()),
        partitions,
    };
    let outcome = call(shard, &group, deletion)
        .await
        .and_then(|outcome| outcome);
    let mut answers = match outcome {
        Err(error) => return OffsetDeleteResponse::default().with_error_code(error.code()),
        Ok(answers) => answers.into_iter(),
    };
    let topics = request
        .topics
        .into_iter()
        .zip(errors)
        .map(|(topic, topic_errors)| {
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .zip(topic_errors)
                        .map(|(p, error)| {
                            let error =
                                error.unwrap_or_else(|| answers.next().unwrap_or(ErrorCode::None));
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error.code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
