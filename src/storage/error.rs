//! Errors of the storage engine, mapped onto Kafka error codes.

use crate::protocol::error_code::ErrorCode;
use crate::record::BatchError;
use crate::types::Offset;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid batch: {0}")]
    Batch(#[from] BatchError),
    #[error("{0}")]
    Producer(#[from] ProducerError),
    #[error("offset {requested} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    #[error("the log failed an earlier write and is offline: {0}")]
    Offline(String),
    #[error("batch of {size} bytes cannot fit in a segment of {segment_bytes} bytes")]
    BatchTooLarge { size: usize, segment_bytes: u64 },
    #[error("corrupt log directory: {0}")]
    Corrupt(String),
    #[error("invalid log config: {0}")]
    Config(String),
    /// Only a partition's leader appends what producers and coordinators write.
    #[error("this replica does not lead the partition")]
    NotLeader,
    /// Appended here, but the in-sync replicas did not all get it in time.
    #[error("not replicated to the in-sync replicas: {0:?}")]
    NotReplicated(ErrorCode),
}

impl LogError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            LogError::Io(_) | LogError::Offline(_) | LogError::Corrupt(_) => {
                ErrorCode::KafkaStorageError
            }
            LogError::Batch(error) => error.error_code(),
            LogError::Producer(error) => error.error_code(),
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
            LogError::Config(_) => ErrorCode::InvalidConfig,
            LogError::NotLeader => ErrorCode::NotLeaderOrFollower,
            LogError::NotReplicated(code) => *code,
        }
    }
}

/// Why a producer's batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: sequence {got} does not follow {expected_after:?}")]
    OutOfOrder {
        producer_id: i64,
        got: i32,
        expected_after: Option<i32>,
    },
    /// A plain batch from a producer whose transaction on this partition is open.
    #[error("producer {producer_id} has an open transaction: expected a transactional batch")]
    NotTransactional { producer_id: i64 },
    /// A marker from a coordinator older than one that already wrote here.
    #[error("producer {producer_id}: coordinator epoch {got} is older than {current}")]
    CoordinatorFenced {
        producer_id: i64,
        got: i32,
        current: i32,
    },
}

impl ProducerError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ProducerError::InvalidEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            ProducerError::OutOfOrder { .. } => ErrorCode::OutOfOrderSequenceNumber,
            ProducerError::NotTransactional { .. } => ErrorCode::InvalidTxnState,
            ProducerError::CoordinatorFenced { .. } => ErrorCode::TransactionCoordinatorFenced,
        }
    }
}

/// glommio errors carry the path and operation; keep them as `io::Error`.
pub fn io<T>(error: glommio::GlommioError<T>) -> LogError {
    LogError::Io(std::io::Error::from(error))
}
