//! AlterPartitionReassignments and ListPartitionReassignments. Moving a replica
//! means copying its data to the new broker first, which needs partition
//! replication: until then no reassignment is ever in progress, a reassignment
//! to the current replicas is accepted (nothing to do), and any other is
//! refused per partition with INVALID_REPLICA_ASSIGNMENT, never half-done.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::image::{MetadataImage, PartitionKey};
use crate::protocol::error_code::ErrorCode;
use crate::types::NodeId;

pub fn alter(
    image: &MetadataImage,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|partition| {
                    let key = PartitionKey {
                        topic: topic.name.0.to_string(),
                        partition: partition.partition_index,
                    };
                    let target = partition
                        .replicas
                        .map(|replicas| replicas.into_iter().map(|b| NodeId(b.0)).collect());
                    let (error, message) = decide(image, &key, target);
                    ReassignablePartitionResponse::default()
                        .with_partition_index(key.partition)
                        .with_error_code(error.code())
                        .with_error_message(message.map(StrBytes::from_string))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}

/// No reassignment is ever in progress.
pub fn list(_request: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
}

fn decide(
    image: &MetadataImage,
    key: &PartitionKey,
    target: Option<Vec<NodeId>>,
) -> (ErrorCode, Option<String>) {
    let Some(partition) = image.partition(key) else {
        return (ErrorCode::UnknownTopicOrPartition, None);
    };
    match target {
        None => (
            ErrorCode::NoReassignmentInProgress,
            Some(format!("no reassignment of {key} is in progress")),
        ),
        Some(replicas) if replicas == partition.replicas => (ErrorCode::None, None),
        Some(replicas) => (
            ErrorCode::InvalidReplicaAssignment,
            Some(format!(
                "moving {key} from {:?} to {:?} needs partition replication, which this broker does not have yet",
                partition.replicas.iter().map(|n| n.0).collect::<Vec<_>>(),
                replicas.iter().map(|n| n.0).collect::<Vec<_>>()
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::routing::three_broker_image;

    #[test]
    fn only_a_reassignment_to_the_current_replicas_is_accepted() {
        let image = three_broker_image();
        let (name, topic) = image.topics().next().expect("a topic");
        let key = PartitionKey {
            topic: name.clone(),
            partition: 0,
        };
        let current = topic.partitions[0].replicas.clone();
        assert_eq!(
            decide(&image, &key, Some(current.clone())).0,
            ErrorCode::None
        );
        let elsewhere: Vec<NodeId> = [0, 1, 2]
            .into_iter()
            .map(NodeId)
            .filter(|n| !current.contains(n))
            .take(1)
            .collect();
        assert_eq!(
            decide(&image, &key, Some(elsewhere)).0,
            ErrorCode::InvalidReplicaAssignment
        );
        assert_eq!(
            decide(&image, &key, None).0,
            ErrorCode::NoReassignmentInProgress
        );
        let unknown = PartitionKey {
            topic: name.clone(),
            partition: 99,
        };
        assert_eq!(
            decide(&image, &unknown, None).0,
            ErrorCode::UnknownTopicOrPartition
        );
    }
}
