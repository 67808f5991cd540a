//! ElectLeaders (KIP-183, KIP-460): an administrator moves partition
//! leadership back to preferred replicas, or gives leaderless partitions an
//! out-of-sync leader. The active controller decides and commits; the answer
//! comes once this node applied the new leaders.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::controller::{Election, ElectionResult};
use crate::protocol::error_code::ErrorCode;
use crate::shard::calls::elect_leaders::ElectLeaders;
use crate::shard::{CONTROLLER_SHARD, Shard};

/// v0 has no election type (it is preferred) and no top-level error code.
pub async fn handle(
    shard: &Rc<Shard>,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let asked: Option<Vec<(String, i32)>> = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|topic| {
                let name = topic.topic.0.to_string();
                topic.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let outcome = match election(request.election_type) {
        Some(election) => {
            let call = ElectLeaders {
                election,
                partitions: asked.clone(),
            };
            shard
                .call(CONTROLLER_SHARD, call)
                .await
                .map(|results| (election, results))
        }
        None => Err((
            ErrorCode::InvalidRequest,
            format!("unknown election type {}", request.election_type),
        )),
    };
    let (error, partitions) = match outcome {
        Ok((election, results)) => {
            let partitions = results
                .into_iter()
                .map(|result| {
                    let message = message(election, &result);
                    (result.topic, result.partition, result.error, message)
                })
                .collect();
            (ErrorCode::None, partitions)
        }
        Err((error, message)) => {
            let partitions = asked
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partition)| (topic, partition, error, Some(message.clone())))
                .collect();
            (error, partitions)
        }
    };
    ElectLeadersResponse::default()
        .with_error_code(if version >= 1 { error.code() } else { 0 })
        .with_replica_election_results(by_topic(partitions))
}

/// Kafka's `ElectionType` values.
fn election(election_type: i8) -> Option<Election> {
    match election_type {
        0 => Some(Election::Preferred),
        1 => Some(Election::Unclean),
        _ => None,
    }
}

fn message(election: Election, result: &ElectionResult) -> Option<String> {
    let (topic, partition) = (&result.topic, result.partition);
    let text = match (result.error, election) {
        (ErrorCode::None, _) => return None,
        (ErrorCode::ElectionNotNeeded, Election::Preferred) => {
            "is already led by its preferred replica"
        }
        (ErrorCode::ElectionNotNeeded, Election::Unclean) => "already has a leader",
        (ErrorCode::PreferredLeaderNotAvailable, _) => {
            "has a preferred replica that is not live or not in the ISR"
        }
        (ErrorCode::EligibleLeadersNotAvailable, _) => "has no live replica",
        (ErrorCode::UnknownTopicOrPartition, _) => "does not exist",
        _ => return None,
    };
    Some(format!("{topic}-{partition} {text}"))
}

/// The results grouped per topic, topics in the order they first appear.
fn by_topic(
    partitions: Vec<(String, i32, ErrorCode, Option<String>)>,
) -> Vec<ReplicaElectionResult> {
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (topic, partition, error, message) in partitions {
        let at = *index.entry(topic.clone()).or_insert_with(|| {
            topics.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(topic))),
            );
            topics.len() - 1
        });
        topics[at].partition_result.push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(error.code())
                .with_error_message(message.map(StrBytes::from_string)),
        );
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_grouped_per_topic_in_request_order() {
        let grouped = by_topic(vec![
            ("b".into(), 1, ErrorCode::None, None),
            ("a".into(), 0, ErrorCode::UnknownTopicOrPartition, None),
            ("b".into(), 0, ErrorCode::ElectionNotNeeded, None),
        ]);
        let shape: Vec<(String, Vec<(i32, i16)>)> = grouped
            .iter()
            .map(|t| {
                let partitions = t
                    .partition_result
                    .iter()
                    .map(|p| (p.partition_id, p.error_code))
                    .collect();
                (t.topic.0.to_string(), partitions)
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("b".to_string(), vec![(1, 0), (0, 84)]),
                ("a".to_string(), vec![(0, 3)]),
            ]
        );
        assert_eq!(election(0), Some(Election::Preferred));
        assert_eq!(election(1), Some(Election::Unclean));
        assert_eq!(election(2), None);
    }
}
