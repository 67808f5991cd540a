//! The checks Kafka's `LogValidator` makes on a v2 batch before it is appended.

use crate::protocol::error_code::ErrorCode;
use crate::record::batch::{BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, MAGIC_V2, RecordBatch};

/// Why a batch was refused. Each maps onto the Kafka error code a producer expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch of {len} bytes is shorter than the {BATCH_HEADER_LEN}-byte v2 header")]
    TooShort { len: usize },
    #[error("batch length field says {declared} bytes but {actual} bytes were given")]
    LengthMismatch { declared: i64, actual: usize },
    #[error("unsupported record batch magic {0}; only v2 is stored")]
    UnsupportedMagic(i8),
    #[error("CRC32C mismatch: header says {expected:#010x}, records hash to {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    InconsistentCount { count: i32, last_offset_delta: i32 },
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    #[error("clients may not write control batches")]
    ControlBatchFromClient,
    #[error("producer id {producer_id} with invalid base sequence {base_sequence}")]
    InvalidSequence { producer_id: i64, base_sequence: i32 },
    #[error("transactional batch without a producer id")]
    TransactionalWithoutProducer,
}

impl BatchError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            BatchError::TooShort { .. }
            | BatchError::LengthMismatch { .. }
            | BatchError::UnsupportedMagic(_)
            | BatchError::CrcMismatch { .. } => ErrorCode::CorruptMessage,
            BatchError::UnknownCompression(_) => ErrorCode::UnsupportedCompressionType,
            BatchError::InconsistentCount { .. }
            | BatchError::ControlBatchFromClient
            | BatchError::InvalidSequence { .. }
            | BatchError::TransactionalWithoutProducer => ErrorCode::InvalidRecord,
        }
    }
}

/// Validates one whole batch sent by a client: exactly the bytes of one batch.
pub fn validate_batch(bytes: &[u8]) -> Result<RecordBatch<'_>, BatchError> {
    let header = BatchHeader::parse(bytes).ok_or(BatchError::TooShort { len: bytes.len() })?;
    check_frame(header, bytes.len())?;
    let batch = RecordBatch::new_unchecked(bytes);
    let actual = crate::record::batch::compute_crc(bytes);
    if actual != header.crc.get() {
        return Err(BatchError::CrcMismatch {
            expected: header.crc.get(),
            actual,
        });
    }
    check_client_fields(header)?;
    Ok(batch)
}

/// The framing checks: magic and a length that matches the bytes at hand.
/// Recovery uses this to find where a log's valid batches end.
pub fn check_frame(header: &BatchHeader, available: usize) -> Result<(), BatchError> {
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    let declared = i64::from(header.batch_length.get());
    let expected = usize::try_from(declared)
        .ok()
        .map(|len| len + LOG_OVERHEAD)
        .filter(|&total| total >= BATCH_HEADER_LEN);
    match expected {
        Some(total) if total == available => Ok(()),
        _ => Err(BatchError::LengthMismatch {
            declared,
            actual: available,
        }),
    }
}

fn check_client_fields(header: &BatchHeader) -> Result<(), BatchError> {
    let count = header.records_count.get();
    let last_offset_delta = header.last_offset_delta.get();
    if count <= 0 || last_offset_delta < 0 || i64::from(last_offset_delta) + 1 != i64::from(count)
    {
        return Err(BatchError::InconsistentCount {
            count,
            last_offset_delta,
        });
    }
    let attributes = header.attributes();
    if attributes.compression().is_none() {
        return Err(BatchError::UnknownCompression(attributes.0 & 0x07));
    }
    if attributes.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    if header.has_producer_id() && header.base_sequence.get() < 0 {
        return Err(BatchError::InvalidSequence {
            producer_id: header.producer_id.get(),
            base_sequence: header.base_sequence.get(),
        });
    }
    if attributes.is_transactional() && !header.has_producer_id() {
        return Err(BatchError::TransactionalWithoutProducer);
    }
    Ok(())
}
