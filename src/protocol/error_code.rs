//! Kafka protocol error codes, as numbered by Apache Kafka's `Errors` enum.

/// A Kafka error code, sent in responses as an INT16 (and between nodes by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(i16)]
pub enum ErrorCode {
    UnknownServerError = -1,
    None = 0,
    NotController = 41,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    LeaderNotAvailable = 5,
    NotLeaderOrFollower = 6,
    NetworkException = 13,
    MessageTooLarge = 10,
    KafkaStorageError = 56,
    UnsupportedForMessageFormat = 43,
    UnsupportedCompressionType = 76,
    InvalidRecord = 87,
    InvalidTimestamp = 32,
    InvalidConfig = 40,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidRequest = 42,
    InvalidTopicException = 17,
    RecordListTooLarge = 18,
    NotEnoughReplicas = 19,
    NotEnoughReplicasAfterAppend = 20,
    OffsetNotAvailable = 78,
    InvalidRequiredAcks = 21,
    RequestTimedOut = 7,
    UnknownTopicId = 100,
    OutOfOrderSequenceNumber = 45,
    InvalidProducerEpoch = 47,
    InvalidTxnState = 48,
    InvalidProducerIdMapping = 49,
    InvalidTransactionTimeout = 50,
    ConcurrentTransactions = 51,
    TransactionCoordinatorFenced = 52,
    ProducerFenced = 90,
    TransactionalIdNotFound = 105,
    TransactionAbortable = 120,
    UnknownProducerId = 59,
    FetchSessionIdNotFound = 70,
    FencedLeaderEpoch = 74,
    UnknownLeaderEpoch = 75,
    InvalidFetchSessionEpoch = 71,
    OffsetMetadataTooLarge = 12,
    CoordinatorLoadInProgress = 14,
    CoordinatorNotAvailable = 15,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    InvalidCommitOffsetSize = 28,
    UnstableOffsetCommit = 88,
    NotCoordinator = 16,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    MemberIdRequired = 79,
    GroupMaxSizeReached = 81,
    FencedInstanceId = 82,
    GroupSubscribedToTopic = 86,
    OperationNotAttempted = 55,
    NoReassignmentInProgress = 85,
    StaleBrokerEpoch = 77,
    InvalidUpdateVersion = 95,
    IneligibleReplica = 107,
    PreferredLeaderNotAvailable = 80,
    EligibleLeadersNotAvailable = 83,
    ElectionNotNeeded = 84,
}

impl ErrorCode {
    /// Every code this broker knows, for reading other brokers' answers.
    const KNOWN: &'static [ErrorCode] = &[
        ErrorCode::UnknownServerError,
        ErrorCode::None,
        ErrorCode::NotController,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::CorruptMessage,
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::LeaderNotAvailable,
        ErrorCode::NotLeaderOrFollower,
        ErrorCode::NetworkException,
        ErrorCode::MessageTooLarge,
        ErrorCode::KafkaStorageError,
        ErrorCode::UnsupportedForMessageFormat,
        ErrorCode::UnsupportedCompressionType,
        ErrorCode::InvalidRecord,
        ErrorCode::InvalidTimestamp,
        ErrorCode::InvalidConfig,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::InvalidPartitions,
        ErrorCode::InvalidReplicationFactor,
        ErrorCode::InvalidReplicaAssignment,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidTopicException,
        ErrorCode::RecordListTooLarge,
        ErrorCode::NotEnoughReplicas,
        ErrorCode::NotEnoughReplicasAfterAppend,
        ErrorCode::OffsetNotAvailable,
        ErrorCode::InvalidRequiredAcks,
        ErrorCode::RequestTimedOut,
        ErrorCode::UnknownTopicId,
        ErrorCode::OutOfOrderSequenceNumber,
        ErrorCode::InvalidProducerEpoch,
        ErrorCode::InvalidTxnState,
        ErrorCode::InvalidProducerIdMapping,
        ErrorCode::InvalidTransactionTimeout,
        ErrorCode::ConcurrentTransactions,
        ErrorCode::TransactionCoordinatorFenced,
        ErrorCode::ProducerFenced,
        ErrorCode::TransactionalIdNotFound,
        ErrorCode::TransactionAbortable,
        ErrorCode::UnknownProducerId,
        ErrorCode::FetchSessionIdNotFound,
        ErrorCode::FencedLeaderEpoch,
        ErrorCode::UnknownLeaderEpoch,
        ErrorCode::InvalidFetchSessionEpoch,
        ErrorCode::OffsetMetadataTooLarge,
        ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::CoordinatorNotAvailable,
        ErrorCode::IllegalGeneration,
        ErrorCode::InconsistentGroupProtocol,
        ErrorCode::InvalidGroupId,
        ErrorCode::UnknownMemberId,
        ErrorCode::InvalidSessionTimeout,
        ErrorCode::RebalanceInProgress,
        ErrorCode::InvalidCommitOffsetSize,
        ErrorCode::UnstableOffsetCommit,
        ErrorCode::NotCoordinator,
        ErrorCode::NonEmptyGroup,
        ErrorCode::GroupIdNotFound,
        ErrorCode::MemberIdRequired,
        ErrorCode::GroupMaxSizeReached,
        ErrorCode::FencedInstanceId,
        ErrorCode::GroupSubscribedToTopic,
        ErrorCode::OperationNotAttempted,
        ErrorCode::NoReassignmentInProgress,
        ErrorCode::StaleBrokerEpoch,
        ErrorCode::InvalidUpdateVersion,
        ErrorCode::IneligibleReplica,
        ErrorCode::PreferredLeaderNotAvailable,
        ErrorCode::EligibleLeadersNotAvailable,
        ErrorCode::ElectionNotNeeded,
    ];

    pub fn code(self) -> i16 {
        self as i16
    }

    /// The code a response carries; one this broker does not know reads as
    /// UNKNOWN_SERVER_ERROR.
    pub fn from_code(code: i16) -> ErrorCode {
        ErrorCode::KNOWN
            .iter()
            .copied()
            .find(|known| known.code() == code)
            .unwrap_or(ErrorCode::UnknownServerError)
    }
}

/// Kafka's name of error `code` (`UNKNOWN_TOPIC_OR_PARTITION`), as its tools and
/// logs print it; every code the protocol defines has one, not only those this
/// broker sends.
pub fn kafka_name(code: i16) -> String {
    let Some(error) = kafka_protocol::ResponseError::try_from_code(code) else {
        return "NONE".to_string();
    };
    if let kafka_protocol::ResponseError::Unknown(code) = error {
        return format!("UNKNOWN_ERROR_CODE_{code}");
    }
    screaming_snake(&error.to_string())
}

/// `TopicAlreadyExists` -> `TOPIC_ALREADY_EXISTS`: Kafka's form of a name.
pub fn screaming_snake(camel: &str) -> String {
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_are_screaming_snake_case() {
        assert_eq!(kafka_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(kafka_name(0), "NONE");
        assert_eq!(kafka_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(kafka_name(32_000), "UNKNOWN_ERROR_CODE_32000");
    }

    #[test]
    fn codes_read_back_as_themselves_and_unknown_ones_as_unknown_server_error() {
        for &known in ErrorCode::KNOWN {
            assert_eq!(ErrorCode::from_code(known.code()), known);
        }
        assert_eq!(ErrorCode::from_code(6), ErrorCode::NotLeaderOrFollower);
        assert_eq!(ErrorCode::from_code(999), ErrorCode::UnknownServerError);
    }
}
