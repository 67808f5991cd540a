//! The API versions this broker advertises: a hand-written table, roughly Apache
//! Kafka 3.9's ranges for the APIs implemented so far.

use kafka_protocol::messages::ApiKey;

/// (API, min version, max version).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    // librdkafka checks that Produce starts at 0; v0-2 are refused when used.
    // v12 is transaction.version 2 (a transactional produce adds its partition).
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 9),
    // Kafka 3.9 has v0-4; the codec decodes v2-4 (Kafka 4.0's range, KIP-896),
    // and clients validating positions (KIP-320) send v2+.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    // librdkafka checks that JoinGroup starts at 0.
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    // v4 only adds TRANSACTION_ABORTABLE; v5 adds the offsets partition.
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // v4-5 are the broker-to-coordinator form (a batch, `verify_only`).
    (ApiKey::AddPartitionsToTxn, 0, 5),
    // v4 only allows TRANSACTION_ABORTABLE, which this coordinator never sends.
    (ApiKey::AddOffsetsToTxn, 0, 4),
    // v5 is transaction.version 2: an epoch bump on every commit and abort.
    (ApiKey::EndTxn, 0, 5),
    // Inter-broker: coordinators on other brokers send their markers. Kafka 3.9
    // has v0-1; the codec decodes v1 only (Kafka 4.0's range, KIP-896), the
    // version every Kafka broker sends.
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
];

/// The feature KIP-890 part 2 clients look for in ApiVersions v3+.
pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
/// The `transaction.version` levels the broker speaks.
pub const TRANSACTION_VERSION_SUPPORTED: (i16, i16) = (0, 2);
/// The finalized level: 2, so Kafka 4 clients use Produce v12, TxnOffsetCommit
/// v5 and EndTxn v5; older clients (librdkafka) cap their versions and keep
/// the level 0 protocol, which the coordinator still serves.
pub const TRANSACTION_VERSION_FINALIZED: i16 = 2;
/// The epoch of the finalized features. They never change on a running broker,
/// and clients only compare epochs, so any fixed non-negative value works.
pub const FINALIZED_FEATURES_EPOCH: i64 = 1;

/// The advertised range of `key`, if the broker serves it.
pub fn range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(api, _, _)| *api == key)
        .map(|&(_, min, max)| (min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_stays_within_what_the_codec_can_decode() {
        for &(key, min, max) in SUPPORTED {
            let codec = key.valid_versions();
            assert!(
                max <= codec.max,
                "{key:?} advertises v{max}, codec stops at v{}",
                codec.max
            );
            assert!(min <= max);
        }
        assert_eq!(range(ApiKey::Produce), Some((0, 12)));
        assert_eq!(range(ApiKey::JoinGroup), Some((0, 9)));
        assert_eq!(range(ApiKey::DescribeProducers), Some((0, 0)));
        assert_eq!(range(ApiKey::WriteTxnMarkers), Some((1, 1)));
        let (min, _) = range(ApiKey::OffsetForLeaderEpoch).unwrap();
        assert!(min >= ApiKey::OffsetForLeaderEpoch.valid_versions().min);
        assert_eq!(range(ApiKey::ConsumerGroupHeartbeat), None);
    }
}
