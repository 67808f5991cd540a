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
    Producer(#[from] crate::storage::producer_state::ProducerError),
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
        }
    }
}

/// glommio errors carry the path and operation; keep them as `io::Error`.
pub fn io<T>(error: glommio::GlommioError<T>) -> LogError {
    LogError::Io(std::io::Error::from(error))
}
