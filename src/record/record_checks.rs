//! Checks on the records inside a batch, which the header alone cannot answer:
//! inner offset deltas, keys on compacted topics, timestamps against the topic's
//! `message.timestamp.before.max.ms` / `after.max.ms`. Uncompressed batches are
//! always walked (no copy, a few varints per record). A compressed batch is
//! inflated only when a rule needs every record: a compacted topic (keys) or a
//! finite `before.max.ms` (the smallest timestamp is not in the header). Otherwise
//! its header's max timestamp answers `after.max.ms`, as it does for Redpanda.

use crate::protocol::error_code::ErrorCode;
use crate::record::attributes::{Compression, TimestampType};
use crate::record::batch::RecordBatch;
use crate::record::compression::DecompressError;
use crate::record::records::{RecordIter, records_section};
use crate::types::TimestampMs;

/// What the topic requires of each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRules {
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub require_keys: bool,
    /// Lowest allowed CreateTime timestamp (`now - before.max.ms`), if any.
    pub min_timestamp: Option<TimestampMs>,
    /// Highest allowed CreateTime timestamp (`now + after.max.ms`), if any.
    pub max_timestamp: Option<TimestampMs>,
    /// Largest inflated records section accepted.
    pub inflate_limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error("the records do not parse as the {count} records the header announces")]
    Malformed { count: i32 },
    #[error("record {index} has offset delta {delta}")]
    InnerOffset { index: i64, delta: i64 },
    #[error("record {index} has no key, which a compacted topic requires")]
    MissingKey { index: i32 },
    #[error("timestamp {timestamp} is outside the topic's bounds {min:?}..={max:?}")]
    TimestampOutOfRange {
        /// The record, when the batch was walked (a compressed batch checked by
        /// its header names none).
        index: Option<i32>,
        timestamp: i64,
        min: Option<i64>,
        max: Option<i64>,
    },
}

impl RecordError {
    /// The codes Kafka's LogValidator answers with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            RecordError::Decompress(_) => ErrorCode::CorruptMessage,
            RecordError::Malformed { .. }
            | RecordError::InnerOffset { .. }
            | RecordError::MissingKey { .. } => ErrorCode::InvalidRecord,
            RecordError::TimestampOutOfRange { .. } => ErrorCode::InvalidTimestamp,
        }
    }

    /// The record to blame, for Produce's per-record errors (KIP-467).
    pub fn record_index(&self) -> Option<i32> {
        match self {
            RecordError::InnerOffset { index, .. } => i32::try_from(*index).ok(),
            RecordError::MissingKey { index } => Some(*index),
            RecordError::TimestampOutOfRange { index, .. } => *index,
            RecordError::Decompress(_) | RecordError::Malformed { .. } => None,
        }
    }
}

/// Most per-record faults reported for one batch; the batch fails either way.
pub const MAX_RECORD_FAULTS: usize = 1024;

/// Why a batch's records were refused: a fault of the whole batch, or every record
/// that broke a rule (missing key, timestamp out of bounds), in record order, as
/// Kafka's LogValidator collects them for Produce's `record_errors` (KIP-467).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFaults(Vec<RecordError>);

impl RecordFaults {
    fn one(error: RecordError) -> RecordFaults {
        RecordFaults(vec![error])
    }

    /// Every fault found, at least one.
    pub fn errors(&self) -> &[RecordError] {
        debug_assert!(!self.0.is_empty());
        &self.0
    }

    /// The partition's error code: INVALID_TIMESTAMP if any timestamp was out of
    /// bounds, as Kafka decides, else the first fault's.
    pub fn error_code(&self) -> ErrorCode {
        if self
            .0
            .iter()
            .any(|e| matches!(e, RecordError::TimestampOutOfRange { .. }))
        {
            return ErrorCode::InvalidTimestamp;
        }
        self.0
            .first()
            .map_or(ErrorCode::InvalidRecord, RecordError::error_code)
    }
}

impl From<RecordError> for RecordFaults {
    fn from(error: RecordError) -> RecordFaults {
        RecordFaults::one(error)
    }
}

/// Checks `batch` (already frame- and CRC-validated) against `rules`.
pub fn check_records(batch: RecordBatch<'_>, rules: &RecordRules) -> Result<(), RecordFaults> {
    let header = batch.header();
    let attributes = header.attributes();
    let check_timestamps = attributes.timestamp_type() == TimestampType::CreateTime;
    let compressed = attributes.compression() != Some(Compression::None);
    let in_bounds = |timestamp: TimestampMs, index: Option<i32>| {
        let below = rules.min_timestamp.is_some_and(|min| timestamp < min);
        let above = rules.max_timestamp.is_some_and(|max| timestamp > max);
        if check_timestamps && (below || above) {
            return Err(RecordError::TimestampOutOfRange {
                index,
                timestamp: timestamp.0,
                min: rules.min_timestamp.map(|t| t.0),
                max: rules.max_timestamp.map(|t| t.0),
            });
        }
        Ok(())
    };
    let needs_every_record =
        rules.require_keys || (check_timestamps && rules.min_timestamp.is_some());
    if compressed && !needs_every_record {
        return in_bounds(header.max_timestamp(), None).map_err(RecordFaults::one);
    }
    let inflated;
    let records = if compressed {
        inflated = records_section(batch, rules.inflate_limit).map_err(RecordError::from)?;
        &inflated[..]
    } else {
        batch.records()
    };
    let count = header.records_count.get();
    let mut iter = RecordIter::over(header, records);
    let mut index = 0i64;
    let mut faults = Vec::new();
    for record in iter.by_ref() {
        if record.offset_delta != index {
            return Err(RecordFaults::one(RecordError::InnerOffset {
                index,
                delta: record.offset_delta,
            }));
        }
        // Bounded by the header's record count, an i32.
        let record_index = i32::try_from(index).unwrap_or(i32::MAX);
        if rules.require_keys && !record.has_key {
            faults.push(RecordError::MissingKey {
                index: record_index,
            });
        } else if let Err(fault) = in_bounds(record.timestamp, Some(record_index)) {
            faults.push(fault);
        }
        if faults.len() >= MAX_RECORD_FAULTS {
            return Err(RecordFaults(faults));
        }
        index += 1;
    }
    if index != i64::from(count) || !iter.is_exhausted() {
        return Err(RecordFaults::one(RecordError::Malformed { count }));
    }
    if !faults.is_empty() {
        return Err(RecordFaults(faults));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::record::batch::{BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, compute_crc};
    use crate::record::builder::{NewRecord, build_batch};
    use zerocopy::FromBytes;

    fn rules() -> RecordRules {
        RecordRules {
            require_keys: false,
            min_timestamp: None,
            max_timestamp: None,
            inflate_limit: 1 << 20,
        }
    }

    fn batch(keys: &[Option<&[u8]>], timestamps: &[i64]) -> Vec<u8> {
        let records: Vec<NewRecord<'_>> = keys
            .iter()
            .zip(timestamps)
            .map(|(&key, &timestamp_ms)| NewRecord {
                key,
                value: Some(b"v"),
                timestamp_ms,
            })
            .collect();
        build_batch(&records)
    }

    /// The same batch with its records section lz4-compressed.
    fn lz4(plain: &[u8]) -> Vec<u8> {
        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
        encoder.write_all(&plain[BATCH_HEADER_LEN..]).unwrap();
        let mut out = plain[..BATCH_HEADER_LEN].to_vec();
        out.extend_from_slice(&encoder.finish().unwrap());
        let length = (out.len() - LOG_OVERHEAD) as i32;
        let (header, _) = BatchHeader::mut_from_prefix(&mut out).unwrap();
        header.batch_length.set(length);
        header.attributes.set(3);
        let crc = compute_crc(&out);
        BatchHeader::mut_from_prefix(&mut out)
            .unwrap()
            .0
            .crc
            .set(crc);
        out
    }

    /// The first fault, as the checks below expect one.
    fn check(bytes: &[u8], rules: &RecordRules) -> Result<(), RecordError> {
        check_records(RecordBatch::new_unchecked(bytes), rules).map_err(|f| f.errors()[0].clone())
    }

    #[test]
    fn every_keyless_record_is_reported_and_timestamps_decide_the_code() {
        let compact = RecordRules {
            require_keys: true,
            ..rules()
        };
        let keys: Vec<Option<&[u8]>> = (0..10)
            .map(|i| if i % 3 == 0 { None } else { Some(&b"k"[..]) })
            .collect();
        let bytes = batch(&keys, &[1; 10]);
        let faults = check_records(RecordBatch::new_unchecked(&bytes), &compact).unwrap_err();
        let indexes: Vec<Option<i32>> = faults.errors().iter().map(|e| e.record_index()).collect();
        assert_eq!(indexes, vec![Some(0), Some(3), Some(6), Some(9)]);
        assert_eq!(faults.error_code(), ErrorCode::InvalidRecord);
        let bounded = RecordRules {
            require_keys: true,
            min_timestamp: Some(TimestampMs(5)),
            ..rules()
        };
        let mixed = batch(&[None, Some(b"k")], &[10, 1]);
        let faults = check_records(RecordBatch::new_unchecked(&mixed), &bounded).unwrap_err();
        assert_eq!(faults.errors().len(), 2);
        assert_eq!(faults.error_code(), ErrorCode::InvalidTimestamp);
    }

    #[test]
    fn compacted_topics_need_keys_also_inside_compressed_batches() {
        let compact = RecordRules {
            require_keys: true,
            ..rules()
        };
        let keyed = batch(&[Some(b"a"), Some(b"b")], &[1, 2]);
        let keyless = batch(&[Some(b"a"), None], &[1, 2]);
        for bytes in [keyed.clone(), lz4(&keyed)] {
            assert_eq!(check(&bytes, &compact), Ok(()));
        }
        for bytes in [keyless.clone(), lz4(&keyless)] {
            assert_eq!(
                check(&bytes, &compact),
                Err(RecordError::MissingKey { index: 1 })
            );
            assert_eq!(check(&bytes, &rules()), Ok(()));
        }
    }

    #[test]
    fn timestamps_outside_the_bounds_are_refused() {
        let bounded = RecordRules {
            min_timestamp: Some(TimestampMs(100)),
            max_timestamp: Some(TimestampMs(200)),
            ..rules()
        };
        let inside = batch(&[None, None], &[150, 200]);
        // The first timestamp is in bounds; a later, older one is not.
        let too_old = batch(&[None, None], &[150, 99]);
        let too_new = batch(&[None, None], &[150, 201]);
        for bytes in [inside.clone(), lz4(&inside)] {
            assert_eq!(check(&bytes, &bounded), Ok(()));
        }
        for bytes in [
            too_old.clone(),
            lz4(&too_old),
            too_new.clone(),
            lz4(&too_new),
        ] {
            let error = check(&bytes, &bounded).unwrap_err();
            assert_eq!(error.error_code(), ErrorCode::InvalidTimestamp, "{error}");
        }
        let only_future = RecordRules {
            min_timestamp: None,
            ..bounded
        };
        let error = check(&lz4(&too_new), &only_future).unwrap_err();
        assert_eq!(error.error_code(), ErrorCode::InvalidTimestamp);
        assert_eq!(check(&lz4(&too_old), &only_future), Ok(()));
    }

    #[test]
    fn wrong_inner_offsets_and_bad_compression_are_refused() {
        let mut bytes = batch(&[None, None], &[1, 2]);
        // The second record's offset delta (after length, attributes, ts delta).
        let second = BATCH_HEADER_LEN + 1 + bytes[BATCH_HEADER_LEN] as usize / 2;
        assert_eq!(bytes[second + 3], 2, "zigzag offset delta 1");
        bytes[second + 3] = 4;
        assert!(matches!(
            check(&bytes, &rules()),
            Err(RecordError::InnerOffset { index: 1, delta: 2 })
        ));
        let mut compressed = lz4(&batch(&[None], &[1]));
        let last = compressed.len() - 3;
        compressed[last] ^= 0xFF;
        let compact = RecordRules {
            require_keys: true,
            ..rules()
        };
        let error = check(&compressed, &compact).unwrap_err();
        assert_eq!(error.error_code(), ErrorCode::CorruptMessage, "{error}");
    }
}
