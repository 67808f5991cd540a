//! The error codes a response carries, for `sluice_kafka_request_errors`: each
//! response type names its API and walks its own nesting (topics, partitions,
//! groups), calling back once per error code that is not NONE. Every response
//! a handler sends implements it, so a new handler cannot forget to.

use kafka_protocol::messages::*;

pub trait ResponseErrors {
    const API: ApiKey;

    /// Calls `error` with each non-zero error code in the response.
    fn each_error(&self, error: &mut dyn FnMut(i16));
}

/// Calls `error` for `code` unless it is NONE.
fn report(code: i16, error: &mut dyn FnMut(i16)) {
    if code != 0 {
        error(code);
    }
}

/// Responses with one top-level `error_code`.
macro_rules! top_level {
    ($($response:ident => $api:ident),* $(,)?) => {$(
        impl ResponseErrors for $response {
            const API: ApiKey = ApiKey::$api;

            fn each_error(&self, error: &mut dyn FnMut(i16)) {
                report(self.error_code, error);
            }
        }
    )*};
}

/// Responses whose items (`$items`) each carry an `error_code`.
macro_rules! per_item {
    ($($response:ident => $api:ident, $items:ident),* $(,)?) => {$(
        impl ResponseErrors for $response {
            const API: ApiKey = ApiKey::$api;

            fn each_error(&self, error: &mut dyn FnMut(i16)) {
                for item in &self.$items {
                    report(item.error_code, error);
                }
            }
        }
    )*};
}

/// Responses whose topics (`$topics`) hold partitions (`$partitions`) that each
/// carry an `error_code`.
macro_rules! per_partition {
    ($($response:ident => $api:ident, $topics:ident, $partitions:ident),* $(,)?) => {$(
        impl ResponseErrors for $response {
            const API: ApiKey = ApiKey::$api;

            fn each_error(&self, error: &mut dyn FnMut(i16)) {
                for topic in &self.$topics {
                    for partition in &topic.$partitions {
                        report(partition.error_code, error);
                    }
                }
            }
        }
    )*};
}

top_level!(
    ApiVersionsResponse => ApiVersions,
    DescribeClusterResponse => DescribeCluster,
    InitProducerIdResponse => InitProducerId,
    AddOffsetsToTxnResponse => AddOffsetsToTxn,
    ListTransactionsResponse => ListTransactions,
    EndTxnResponse => EndTxn,
    JoinGroupResponse => JoinGroup,
    SyncGroupResponse => SyncGroup,
    HeartbeatResponse => Heartbeat,
    LeaveGroupResponse => LeaveGroup,
    ListGroupsResponse => ListGroups,
    OffsetDeleteResponse => OffsetDelete,
    ElectLeadersResponse => ElectLeaders,
    AlterPartitionReassignmentsResponse => AlterPartitionReassignments,
    ListPartitionReassignmentsResponse => ListPartitionReassignments,
);

per_item!(
    CreateTopicsResponse => CreateTopics, topics,
    DeleteTopicsResponse => DeleteTopics, responses,
    CreatePartitionsResponse => CreatePartitions, results,
    DescribeConfigsResponse => DescribeConfigs, results,
    AlterConfigsResponse => AlterConfigs, responses,
    IncrementalAlterConfigsResponse => IncrementalAlterConfigs, responses,
    DescribeTransactionsResponse => DescribeTransactions, transaction_states,
    DescribeGroupsResponse => DescribeGroups, groups,
    DeleteGroupsResponse => DeleteGroups, results,
);

per_partition!(
    ProduceResponse => Produce, responses, partition_responses,
    ListOffsetsResponse => ListOffsets, topics, partitions,
    OffsetForLeaderEpochResponse => OffsetForLeaderEpoch, topics, partitions,
    DeleteRecordsResponse => DeleteRecords, topics, partitions,
    DescribeProducersResponse => DescribeProducers, topics, partitions,
    OffsetCommitResponse => OffsetCommit, topics, partitions,
    TxnOffsetCommitResponse => TxnOffsetCommit, topics, partitions,
);

impl ResponseErrors for MetadataResponse {
    const API: ApiKey = ApiKey::Metadata;

    fn each_error(&self, error: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            report(topic.error_code, error);
        }
    }
}

impl ResponseErrors for FetchResponse {
    const API: ApiKey = ApiKey::Fetch;

    fn each_error(&self, error: &mut dyn FnMut(i16)) {
        report(self.error_code, error);
        for topic in &self.responses {
            for partition in &topic.partitions {
                report(partition.error_code, error);
            }
        }
    }
}

impl ResponseErrors for FindCoordinatorResponse {
    const API: ApiKey = ApiKey::FindCoordinator;

    fn each_error(&self, error: &mut dyn FnMut(i16)) {
        report(self.error_code, error);
        for coordinator in &self.coordinators {
            report(coordinator.error_code, error);
        }
    }
}

impl ResponseErrors for OffsetFetchResponse {
    const API: ApiKey = ApiKey::OffsetFetch;

    fn each_error(&self, error: &mut dyn FnMut(i16)) {
        report(self.error_code, error);
        for topic in &self.topics {
            for partition in &topic.partitions {
                report(partition.error_code, error);
            }
        }
        for group in &self.groups {
            report(group.error_code, error);
            for topic in &group.topics {
                for partition in &topic.partitions {
                    report(partition.error_code, error);
                }
            }
        }
    }
}

impl ResponseErrors for AddPartitionsToTxnResponse {
    const API: ApiKey = ApiKey::AddPartitionsToTxn;

    fn each_error(&self, error: &mut dyn FnMut(i16)) {
        report(self.error_code, error);
        for topic in &self.results_by_topic_v3_and_below {
            for partition in &topic.results_by_partition {
                report(partition.partition_error_code, error);
            }
        }
        for transaction in &self.results_by_transaction {
            for topic in &transaction.topic_results {
                for partition in &topic.results_by_partition {
                    report(partition.partition_error_code, error);
                }
            }
        }
    }
}

impl ResponseErrors for WriteTxnMarkersResponse {
    const API: ApiKey = ApiKey::WriteTxnMarkers;

    fn each_error(&self, error: &mut dyn FnMut(i16)) {
        for marker in &self.markers {
            for topic in &marker.topics {
                for partition in &topic.partitions {
                    report(partition.error_code, error);
                }
            }
        }
    }
}

/// Counts the errors of `response` on this shard.
pub fn count<R: ResponseErrors>(response: &R) {
    response.each_error(&mut |code| crate::metrics::shard::request_error(R::API as i16, code));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_errors_are_each_reported_and_none_is_not() {
        let response = ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default().with_error_code(6),
                produce_response::PartitionProduceResponse::default(),
                produce_response::PartitionProduceResponse::default().with_error_code(3),
            ]),
        ]);
        let mut codes = Vec::new();
        response.each_error(&mut |code| codes.push(code));
        assert_eq!(codes, vec![6, 3]);
        assert_eq!(ProduceResponse::API, ApiKey::Produce);
    }
}
