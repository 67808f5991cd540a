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
    InvalidSequence {
        producer_id: i64,
        base_sequence: i32,
    },
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
    if count <= 0 || last_offset_delta < 0 || i64::from(last_offset_delta) + 1 != i64::from(count) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::batch::{BatchHeader, compute_crc};
    use crate::record::builder::{NewRecord, build_batch};
    use zerocopy::FromBytes;

    fn sample() -> Vec<u8> {
        build_batch(&[
            NewRecord {
                key: Some(b"k1"),
                value: Some(b"v1"),
                timestamp_ms: 1_000,
            },
            NewRecord {
                key: None,
                value: Some(b"v2"),
                timestamp_ms: 1_005,
            },
        ])
    }

    /// Edits a header field and fixes the CRC, so only the edited rule can fail.
    fn edited(edit: impl FnOnce(&mut BatchHeader)) -> Vec<u8> {
        let mut bytes = sample();
        edit(BatchHeader::mut_from_prefix(&mut bytes).unwrap().0);
        let crc = compute_crc(&bytes);
        BatchHeader::mut_from_prefix(&mut bytes)
            .unwrap()
            .0
            .crc
            .set(crc);
        bytes
    }

    #[test]
    fn accepts_a_well_formed_batch() {
        let bytes = sample();
        let batch = validate_batch(&bytes).unwrap();
        assert_eq!(batch.header().records_count.get(), 2);
        assert!(batch.crc_is_valid());
    }

    #[test]
    fn refuses_framing_errors_as_corrupt_message() {
        let bytes = sample();
        let short = validate_batch(&bytes[..40]).unwrap_err();
        assert_eq!(short, BatchError::TooShort { len: 40 });
        assert_eq!(short.error_code(), ErrorCode::CorruptMessage);
        let truncated = validate_batch(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(truncated, BatchError::LengthMismatch { .. }));
        let magic = validate_batch(&edited(|h| h.magic = 1)).unwrap_err();
        assert_eq!(magic, BatchError::UnsupportedMagic(1));
        let negative = validate_batch(&edited(|h| h.batch_length.set(-5))).unwrap_err();
        assert!(matches!(
            negative,
            BatchError::LengthMismatch { declared: -5, .. }
        ));
    }

    #[test]
    fn detects_any_flipped_byte_in_the_crc_range() {
        let bytes = sample();
        for position in 21..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[position] ^= 0x01;
            let error = validate_batch(&flipped).unwrap_err();
            assert!(
                matches!(error, BatchError::CrcMismatch { .. }),
                "byte {position}: {error}"
            );
            assert_eq!(error.error_code(), ErrorCode::CorruptMessage);
        }
    }

    #[test]
    fn refuses_semantic_errors_as_invalid_record() {
        let cases = [
            edited(|h| h.records_count.set(3)),
            edited(|h| h.records_count.set(0)),
            edited(|h| h.last_offset_delta.set(-1)),
            edited(|h| h.attributes.set(0x20)),
            edited(|h| h.producer_id.set(7)),
            edited(|h| h.attributes.set(0x10)),
        ];
        for (case, bytes) in cases.iter().enumerate() {
            let error = validate_batch(bytes).unwrap_err();
            assert_eq!(
                error.error_code(),
                ErrorCode::InvalidRecord,
                "case {case}: {error}"
            );
        }
        let codec = validate_batch(&edited(|h| h.attributes.set(6))).unwrap_err();
        assert_eq!(codec, BatchError::UnknownCompression(6));
        assert_eq!(codec.error_code(), ErrorCode::UnsupportedCompressionType);
        let with_sequence = edited(|h| {
            h.producer_id.set(7);
            h.base_sequence.set(0);
        });
        assert!(validate_batch(&with_sequence).is_ok());
    }
}
