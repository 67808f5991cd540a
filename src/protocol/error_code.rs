//! Kafka protocol error codes, as numbered by Apache Kafka's `Errors` enum.

/// A Kafka error code, sent in responses as an INT16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ErrorCode {
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    MessageTooLarge = 10,
    KafkaStorageError = 56,
    UnsupportedForMessageFormat = 43,
    UnsupportedCompressionType = 76,
    InvalidRecord = 87,
    InvalidTimestamp = 32,
    InvalidConfig = 40,
}

impl ErrorCode {
    pub fn code(self) -> i16 {
        self as i16
    }
}
