//! Transaction markers: the control batches a partition appends when a
//! transaction commits or aborts, in Kafka's format so every client recognises
//! them (and skips them, or uses an abort to drop the aborted data).
//!
//! A marker batch has the transactional and control attribute bits, the
//! producer's id and epoch, base sequence -1 and one record whose key is the
//! control record key (version INT16 = 0, type INT16: 0 abort, 1 commit) and whose
//! value is the EndTransactionMarker (version INT16 = 0, coordinator epoch INT32).
//! Like Kafka, newer key and value versions are read as version 0 (fields are only
//! ever appended) and negative versions are refused as corruption.

use crate::record::attributes::{Attributes, Compression};
use crate::record::batch::RecordBatch;
use crate::record::builder::{BatchWriter, NewRecord, build_batch_with};
use crate::record::varint::read_varlong;
use crate::types::{ProducerEpoch, ProducerId, TimestampMs};

const CONTROL_KEY_VERSION: i16 = 0;
const MARKER_VALUE_VERSION: i16 = 0;
const KEY_LEN: usize = 4;
const VALUE_LEN: usize = 6;

/// How a transaction ended (the control record type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerKind {
    Abort,
    Commit,
}

impl MarkerKind {
    /// The control record type id.
    pub fn type_id(self) -> i16 {
        match self {
            MarkerKind::Abort => 0,
            MarkerKind::Commit => 1,
        }
    }
}

/// One end-of-transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub kind: MarkerKind,
    /// The epoch of the coordinator that decided the transaction; a partition
    /// refuses markers from an older coordinator.
    pub coordinator_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("not a control batch")]
    NotControl,
    #[error("a compressed control batch")]
    Compressed,
    #[error("a control batch holds one record, this one {0}")]
    RecordCount(i32),
    #[error("malformed control record")]
    Malformed,
    #[error("control record {what} has {len} bytes, at least {min} expected")]
    TooShort {
        what: &'static str,
        len: usize,
        min: usize,
    },
    #[error("negative control record {what} version {version}")]
    NegativeVersion { what: &'static str, version: i16 },
    /// A KRaft control record (leader change, snapshot header...), not a marker.
    #[error("control record type {0} is not a transaction marker")]
    NotAMarker(i16),
}

impl EndTxnMarker {
    /// The control record key.
    pub fn encode_key(&self) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        key[..2].copy_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
        key[2..].copy_from_slice(&self.kind.type_id().to_be_bytes());
        key
    }

    /// The EndTransactionMarker value.
    pub fn encode_value(&self) -> [u8; VALUE_LEN] {
        let mut value = [0u8; VALUE_LEN];
        value[..2].copy_from_slice(&MARKER_VALUE_VERSION.to_be_bytes());
        value[2..].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        value
    }

    pub fn decode(key: &[u8], value: &[u8]) -> Result<EndTxnMarker, ControlError> {
        let kind = match read_versioned(key, "key", KEY_LEN)? {
            0 => MarkerKind::Abort,
            1 => MarkerKind::Commit,
            other => return Err(ControlError::NotAMarker(other)),
        };
        read_versioned(value, "value", VALUE_LEN)?;
        let coordinator_epoch = i32::from_be_bytes(value[2..6].try_into().expect("4 bytes"));
        Ok(EndTxnMarker {
            kind,
            coordinator_epoch,
        })
    }

    /// A whole marker batch at base offset 0 (the log assigns the offset and
    /// leader epoch on append, as for any batch).
    pub fn build_batch(
        &self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        timestamp: TimestampMs,
    ) -> Vec<u8> {
        let key = self.encode_key();
        let value = self.encode_value();
        let record = NewRecord {
            key: Some(&key),
            value: Some(&value),
            timestamp_ms: timestamp.0,
        };
        build_batch_with(
            &[record],
            BatchWriter {
                attributes: Attributes(0).with_transactional().with_control(),
                producer_id,
                producer_epoch,
                base_sequence: -1,
            },
        )
    }

    /// The marker of a control batch (already validated: header, CRC, sizes).
    pub fn from_batch(batch: RecordBatch<'_>) -> Result<EndTxnMarker, ControlError> {
        let header = batch.header();
        let attributes = header.attributes();
        if !attributes.is_control() {
            return Err(ControlError::NotControl);
        }
        if attributes.compression() != Some(Compression::None) {
            return Err(ControlError::Compressed);
        }
        let count = header.records_count.get();
        if count != 1 {
            return Err(ControlError::RecordCount(count));
        }
        let (key, value) =
            single_record_key_value(batch.records()).ok_or(ControlError::Malformed)?;
        EndTxnMarker::decode(key, value)
    }
}

/// The INT16 after the INT16 version at the start of `bytes`.
fn read_versioned(bytes: &[u8], what: &'static str, min: usize) -> Result<i16, ControlError> {
    if bytes.len() < min {
        return Err(ControlError::TooShort {
            what,
            len: bytes.len(),
            min,
        });
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version < 0 {
        return Err(ControlError::NegativeVersion { what, version });
    }
    Ok(i16::from_be_bytes([bytes[2], bytes[3]]))
}

/// Key and value of the only record of an uncompressed records section:
/// length, attributes, timestamp delta, offset delta, key, value, headers.
fn single_record_key_value(records: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, used) = read_varlong(records)?;
    let body = records.get(used..used + usize::try_from(length).ok()?)?;
    let mut rest = body.get(1..)?;
    for _ in 0..2 {
        let (_, used) = read_varlong(rest)?;
        rest = &rest[used..];
    }
    let mut field = || -> Option<&[u8]> {
        let (len, used) = read_varlong(rest)?;
        let len = usize::try_from(len).ok()?;
        let bytes = rest.get(used..used + len)?;
        rest = &rest[used + len..];
        Some(bytes)
    };
    let key = field()?;
    let value = field()?;
    Some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::validate::check_frame;
    use crate::record::{BatchError, validate_batch};

    #[test]
    fn key_and_value_have_kafkas_layout() {
        let commit = EndTxnMarker {
            kind: MarkerKind::Commit,
            coordinator_epoch: 7,
        };
        assert_eq!(commit.encode_key(), [0, 0, 0, 1]);
        assert_eq!(commit.encode_value(), [0, 0, 0, 0, 0, 7]);
        let abort = EndTxnMarker {
            kind: MarkerKind::Abort,
            coordinator_epoch: -1,
        };
        assert_eq!(abort.encode_key(), [0, 0, 0, 0]);
        assert_eq!(abort.encode_value(), [0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(
            EndTxnMarker::decode(&abort.encode_key(), &abort.encode_value()),
            Ok(abort)
        );
    }

    #[test]
    fn newer_versions_parse_and_bad_records_are_refused() {
        // Version 1 with an extra trailing field reads as version 0.
        let marker = EndTxnMarker::decode(&[0, 1, 0, 1], &[0, 1, 0, 0, 0, 3, 9, 9]).unwrap();
        assert_eq!(marker.coordinator_epoch, 3);
        assert_eq!(
            EndTxnMarker::decode(&[0, 0, 0, 2], &[0, 0, 0, 0, 0, 0]),
            Err(ControlError::NotAMarker(2))
        );
        assert!(matches!(
            EndTxnMarker::decode(&[0xFF, 0xFF, 0, 1], &[0, 0, 0, 0, 0, 0]),
            Err(ControlError::NegativeVersion { what: "key", .. })
        ));
        assert!(matches!(
            EndTxnMarker::decode(&[0, 0, 0, 1], &[0, 0, 0, 0]),
            Err(ControlError::TooShort { what: "value", .. })
        ));
    }

    #[test]
    fn marker_batches_round_trip() {
        let marker = EndTxnMarker {
            kind: MarkerKind::Abort,
            coordinator_epoch: 12,
        };
        let bytes = marker.build_batch(ProducerId(4000), ProducerEpoch(3), TimestampMs(1_234));
        // Clients may not send control batches: check only frame and CRC here.
        assert_eq!(
            validate_batch(&bytes).err(),
            Some(BatchError::ControlBatchFromClient)
        );
        let batch = RecordBatch::new_unchecked(&bytes);
        check_frame(batch.header(), bytes.len()).unwrap();
        assert!(batch.crc_is_valid());
        let header = batch.header();
        assert_eq!(header.attributes(), Attributes(0x30));
        assert!(header.attributes().is_transactional());
        assert_eq!(header.producer_id.get(), 4000);
        assert_eq!(header.producer_epoch.get(), 3);
        assert_eq!(header.base_sequence.get(), -1);
        assert_eq!(header.records_count.get(), 1);
        assert_eq!(header.last_offset_delta.get(), 0);
        assert_eq!(header.max_timestamp.get(), 1_234);
        assert_eq!(EndTxnMarker::from_batch(batch), Ok(marker));
        // The record (zigzag varints): length 16, attributes, timestamp and
        // offset deltas, key length 4 and key, value length 6 and value, no headers.
        assert_eq!(
            batch.records(),
            [32, 0, 0, 0, 8, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0, 12, 0]
        );
    }

    #[test]
    fn data_batches_are_not_markers() {
        let bytes = crate::record::builder::build_batch(&[NewRecord {
            key: Some(&[0, 0, 0, 1]),
            value: Some(&[0, 0, 0, 0, 0, 1]),
            timestamp_ms: 0,
        }]);
        let batch = validate_batch(&bytes).unwrap();
        assert_eq!(
            EndTxnMarker::from_batch(batch),
            Err(ControlError::NotControl)
        );
    }
}
