//! The records of `__transaction_state`, in Apache Kafka's byte layout so the
//! partition reads the same as one written by Kafka (and Kafka's tools can dump it).
//!
//! Key: TransactionLogKey v0, the INT16 version then the transactional id as an
//! INT16-length string. Value: TransactionLogValue, the INT16 version then
//! - v0 (Kafka before `transaction.version` 1): producer id INT64, producer epoch
//!   INT16, timeout INT32, status INT8, partitions (nullable INT32-length array of
//!   {topic STRING, partition ids INT32 array}), last update INT64, start INT64;
//! - v1 (flexible): the same fields with compact (unsigned-varint, length + 1)
//!   strings and arrays, an empty tagged-field section after each partition entry,
//!   and a tagged-field section at the end holding PreviousProducerId (tag 0,
//!   default -1), NextProducerId (tag 1, default -1) and ClientTransactionVersion
//!   (tag 2, default 0). A tagged field is written only when it differs from its
//!   default, and unknown tags are skipped on read, as Kafka's generated code does.
//!
//! A null value is a tombstone: the transactional id expired and was removed.
//! Which state a status byte means is `crate::txn::state`'s business.

use crate::types::{ProducerEpoch, ProducerId, TimestampMs};

/// The only key version Kafka defines.
const KEY_VERSION: i16 = 0;
/// Value versions this module reads and writes.
pub const VALUE_VERSION_V0: i16 = 0;
pub const VALUE_VERSION_V1: i16 = 1;

const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogRecordError {
    #[error("record truncated")]
    Truncated,
    #[error("invalid UTF-8 in a string")]
    Utf8,
    #[error("unsupported {what} version {version}")]
    Version { what: &'static str, version: i16 },
    #[error("negative or oversized length")]
    Length,
    #[error("malformed unsigned varint")]
    Varint,
    #[error("tagged field {tag} has {size} bytes, expected {expected}")]
    TagSize {
        tag: u32,
        size: usize,
        expected: usize,
    },
    #[error("{0} bytes left after the record")]
    Trailing(usize),
}

/// TransactionLogKey: which transactional id a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogKey {
    pub transactional_id: String,
}

/// The partitions of one topic in a transaction (PartitionsSchema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogTopic {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// TransactionLogValue: a transactional id's state as persisted after each
/// transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: ProducerId,
    /// v1 only (tag 0); `ProducerId::NONE` when absent.
    pub previous_producer_id: ProducerId,
    /// v1 only (tag 1); `ProducerId::NONE` when absent.
    pub next_producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub timeout_ms: i32,
    /// Kafka's TransactionState id (see `crate::txn::state::TxnState::id`).
    pub status: i8,
    /// `None` is written as a null array; Kafka writes null for Empty.
    pub topics: Option<Vec<TxnLogTopic>>,
    pub last_update_timestamp: TimestampMs,
    pub start_timestamp: TimestampMs,
    /// v1 only (tag 2): the client's `transaction.version` level; 0 when absent.
    pub client_transaction_version: i16,
}

impl TxnLogKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.transactional_id.len());
        put_i16(&mut out, KEY_VERSION);
        put_str(&mut out, &self.transactional_id);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<TxnLogKey, LogRecordError> {
        let mut reader = Reader(bytes);
        let version = reader.i16()?;
        if version != KEY_VERSION {
            return Err(LogRecordError::Version {
                what: "transaction log key",
                version,
            });
        }
        let transactional_id = reader.string()?;
        reader.finish()?;
        Ok(TxnLogKey { transactional_id })
    }
}

impl TxnLogValue {
    /// Kafka's layout for `version` (0 or 1). Version 0 has no place for the
    /// previous/next producer ids and the client transaction version: they are
    /// dropped, as Kafka drops them.
    pub fn encode(&self, version: i16) -> Vec<u8> {
        assert!(
            version == VALUE_VERSION_V0 || version == VALUE_VERSION_V1,
            "TransactionLogValue has versions 0 and 1"
        );
        let flexible = version >= VALUE_VERSION_V1;
        let mut out = Vec::with_capacity(64);
        put_i16(&mut out, version);
        out.extend_from_slice(&self.producer_id.0.to_be_bytes());
        put_i16(&mut out, self.producer_epoch.0);
        out.extend_from_slice(&self.timeout_ms.to_be_bytes());
        out.push(self.status as u8);
        match (&self.topics, flexible) {
            (None, false) => out.extend_from_slice(&(-1i32).to_be_bytes()),
            (None, true) => put_uvarint(&mut out, 0),
            (Some(topics), false) => {
                put_i32_len(&mut out, topics.len());
                for topic in topics {
                    put_str(&mut out, &topic.topic);
                    put_i32_len(&mut out, topic.partitions.len());
                    for partition in &topic.partitions {
                        out.extend_from_slice(&partition.to_be_bytes());
                    }
                }
            }
            (Some(topics), true) => {
                put_compact_len(&mut out, topics.len());
                for topic in topics {
                    put_compact_len(&mut out, topic.topic.len());
                    out.extend_from_slice(topic.topic.as_bytes());
                    put_compact_len(&mut out, topic.partitions.len());
                    for partition in &topic.partitions {
                        out.extend_from_slice(&partition.to_be_bytes());
                    }
                    // No tagged fields in PartitionsSchema.
                    put_uvarint(&mut out, 0);
                }
            }
        }
        out.extend_from_slice(&self.last_update_timestamp.0.to_be_bytes());
        out.extend_from_slice(&self.start_timestamp.0.to_be_bytes());
        if flexible {
            self.put_tagged_fields(&mut out);
        }
        out
    }

    /// Tags in ascending order, each only when it differs from its default.
    fn put_tagged_fields(&self, out: &mut Vec<u8>) {
        let previous = (self.previous_producer_id != ProducerId::NONE)
            .then(|| self.previous_producer_id.0.to_be_bytes());
        let next = (self.next_producer_id != ProducerId::NONE)
            .then(|| self.next_producer_id.0.to_be_bytes());
        let client_version = (self.client_transaction_version != 0)
            .then(|| self.client_transaction_version.to_be_bytes());
        let count = [previous.is_some(), next.is_some(), client_version.is_some()]
            .into_iter()
            .filter(|present| *present)
            .count();
        put_uvarint(out, count as u32);
        let fields: [(u32, Option<&[u8]>); 3] = [
            (TAG_PREVIOUS_PRODUCER_ID, previous.as_ref().map(|b| &b[..])),
            (TAG_NEXT_PRODUCER_ID, next.as_ref().map(|b| &b[..])),
            (
                TAG_CLIENT_TRANSACTION_VERSION,
                client_version.as_ref().map(|b| &b[..]),
            ),
        ];
        for (tag, data) in fields {
            if let Some(data) = data {
                put_uvarint(out, tag);
                put_uvarint(out, data.len() as u32);
                out.extend_from_slice(data);
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<TxnLogValue, LogRecordError> {
        let mut reader = Reader(bytes);
        let version = reader.i16()?;
        let flexible = match version {
            VALUE_VERSION_V0 => false,
            VALUE_VERSION_V1 => true,
            version => {
                return Err(LogRecordError::Version {
                    what: "transaction log value",
                    version,
                });
            }
        };
        let producer_id = ProducerId(reader.i64()?);
        let producer_epoch = ProducerEpoch(reader.i16()?);
        let timeout_ms = reader.i32()?;
        let status = reader.take(1)?[0] as i8;
        let count = if flexible {
            reader.compact_len()?
        } else {
            reader.i32_len()?
        };
        let topics = match count {
            None => None,
            Some(count) => {
                // Each entry takes at least 4 bytes (v0: two lengths) or 2 (v1):
                // refuse counts the bytes cannot hold before allocating.
                if count > reader.0.len() / 2 {
                    return Err(LogRecordError::Truncated);
                }
                let mut topics = Vec::with_capacity(count);
                for _ in 0..count {
                    topics.push(reader.topic(flexible)?);
                }
                Some(topics)
            }
        };
        let last_update_timestamp = TimestampMs(reader.i64()?);
        let start_timestamp = TimestampMs(reader.i64()?);
        let mut value = TxnLogValue {
            producer_id,
            previous_producer_id: ProducerId::NONE,
            next_producer_id: ProducerId::NONE,
            producer_epoch,
            timeout_ms,
            status,
            topics,
            last_update_timestamp,
            start_timestamp,
            client_transaction_version: 0,
        };
        if flexible {
            let tags = reader.uvarint()?;
            for _ in 0..tags {
                let tag = reader.uvarint()?;
                let size = reader.uvarint()? as usize;
                let data = reader.take(size)?;
                let expected = match tag {
                    TAG_PREVIOUS_PRODUCER_ID | TAG_NEXT_PRODUCER_ID => 8,
                    TAG_CLIENT_TRANSACTION_VERSION => 2,
                    // A field a newer Kafka added: skipped, as Kafka skips it.
                    _ => continue,
                };
                if size != expected {
                    return Err(LogRecordError::TagSize {
                        tag,
                        size,
                        expected,
                    });
                }
                match tag {
                    TAG_PREVIOUS_PRODUCER_ID => {
                        value.previous_producer_id = ProducerId(be_i64(data));
                    }
                    TAG_NEXT_PRODUCER_ID => value.next_producer_id = ProducerId(be_i64(data)),
                    _ => value.client_transaction_version = i16::from_be_bytes([data[0], data[1]]),
                }
            }
        }
        reader.finish()?;
        Ok(value)
    }
}

/// A record's value as stored: `None` (null) is a tombstone.
pub fn decode_value(value: Option<&[u8]>) -> Result<Option<TxnLogValue>, LogRecordError> {
    value.map(TxnLogValue::decode).transpose()
}

fn be_i64(data: &[u8]) -> i64 {
    i64::from_be_bytes(data.try_into().expect("8 bytes"))
}

fn put_i16(out: &mut Vec<u8>, value: i16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    // Transactional ids and topic names arrive in INT16-length strings, so they fit.
    let len = i16::try_from(text.len()).expect("string under 32 KiB");
    put_i16(out, len);
    out.extend_from_slice(text.as_bytes());
}

fn put_i32_len(out: &mut Vec<u8>, len: usize) {
    let len = i32::try_from(len).expect("array length fits in i32");
    out.extend_from_slice(&len.to_be_bytes());
}

/// Compact lengths are stored plus one, so that 0 can mean null.
fn put_compact_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len + 1).expect("length fits in u32");
    put_uvarint(out, len);
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], LogRecordError> {
        if self.0.len() < len {
            return Err(LogRecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn finish(&self) -> Result<(), LogRecordError> {
        match self.0.len() {
            0 => Ok(()),
            left => Err(LogRecordError::Trailing(left)),
        }
    }

    fn i16(&mut self) -> Result<i16, LogRecordError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, LogRecordError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, LogRecordError> {
        Ok(be_i64(self.take(8)?))
    }

    /// Kafka's unsigned varint: at most five bytes for 32 bits.
    fn uvarint(&mut self) -> Result<u32, LogRecordError> {
        let mut value: u32 = 0;
        for index in 0..5 {
            let byte = self.take(1)?[0];
            value |= u32::from(byte & 0x7F) << (7 * index);
            if byte & 0x80 == 0 {
                if index == 4 && byte > 0x0F {
                    return Err(LogRecordError::Varint);
                }
                return Ok(value);
            }
        }
        Err(LogRecordError::Varint)
    }

    /// An INT32 array length; -1 is null.
    fn i32_len(&mut self) -> Result<Option<usize>, LogRecordError> {
        match self.i32()? {
            -1 => Ok(None),
            len => usize::try_from(len)
                .map(Some)
                .map_err(|_| LogRecordError::Length),
        }
    }

    /// A compact length; 0 is null.
    fn compact_len(&mut self) -> Result<Option<usize>, LogRecordError> {
        match self.uvarint()? {
            0 => Ok(None),
            len => Ok(Some(len as usize - 1)),
        }
    }

    fn utf8(&mut self, len: usize) -> Result<String, LogRecordError> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| LogRecordError::Utf8)
    }

    fn string(&mut self) -> Result<String, LogRecordError> {
        let len = usize::try_from(self.i16()?).map_err(|_| LogRecordError::Length)?;
        self.utf8(len)
    }

    fn topic(&mut self, flexible: bool) -> Result<TxnLogTopic, LogRecordError> {
        let (topic, count) = if flexible {
            let len = self.compact_len()?.ok_or(LogRecordError::Length)?;
            let topic = self.utf8(len)?;
            (topic, self.compact_len()?.ok_or(LogRecordError::Length)?)
        } else {
            let topic = self.string()?;
            (topic, self.i32_len()?.ok_or(LogRecordError::Length)?)
        };
        if count > self.0.len() / 4 {
            return Err(LogRecordError::Truncated);
        }
        let partitions = (0..count)
            .map(|_| self.i32())
            .collect::<Result<Vec<_>, _>>()?;
        if flexible {
            // PartitionsSchema defines no tags: skip whatever a newer writer added.
            let tags = self.uvarint()?;
            for _ in 0..tags {
                self.uvarint()?;
                let size = self.uvarint()? as usize;
                self.take(size)?;
            }
        }
        Ok(TxnLogTopic { topic, partitions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnLogValue {
        TxnLogValue {
            producer_id: ProducerId(1000),
            previous_producer_id: ProducerId::NONE,
            next_producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch(3),
            timeout_ms: 60_000,
            status: 1,
            topics: Some(vec![TxnLogTopic {
                topic: "t".into(),
                partitions: vec![0, 2],
            }]),
            last_update_timestamp: TimestampMs(20),
            start_timestamp: TimestampMs(10),
            client_transaction_version: 0,
        }
    }

    #[test]
    fn key_has_kafkas_layout() {
        let key = TxnLogKey {
            transactional_id: "tx".into(),
        };
        assert_eq!(key.encode(), [0, 0, 0, 2, b't', b'x']);
        assert_eq!(TxnLogKey::decode(&key.encode()).unwrap(), key);
        assert!(matches!(
            TxnLogKey::decode(&[0, 1, 0, 0]),
            Err(LogRecordError::Version { version: 1, .. })
        ));
        assert_eq!(
            TxnLogKey::decode(&[0, 0, 0, 3, b'a']),
            Err(LogRecordError::Truncated)
        );
    }

    #[test]
    fn value_v0_matches_hand_written_bytes() {
        let mut expected = vec![0, 0];
        expected.extend_from_slice(&1000i64.to_be_bytes());
        expected.extend_from_slice(&[0, 3]); // epoch
        expected.extend_from_slice(&60_000i32.to_be_bytes());
        expected.push(1); // Ongoing
        expected.extend_from_slice(&[0, 0, 0, 1]); // one topic
        expected.extend_from_slice(&[0, 1, b't']);
        expected.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(&20i64.to_be_bytes());
        expected.extend_from_slice(&10i64.to_be_bytes());
        assert_eq!(ongoing().encode(0), expected);
        assert_eq!(TxnLogValue::decode(&expected).unwrap(), ongoing());
    }

    #[test]
    fn value_v1_matches_hand_written_bytes() {
        let value = TxnLogValue {
            previous_producer_id: ProducerId(999),
            client_transaction_version: 2,
            ..ongoing()
        };
        let mut expected = vec![0, 1];
        expected.extend_from_slice(&1000i64.to_be_bytes());
        expected.extend_from_slice(&[0, 3]);
        expected.extend_from_slice(&60_000i32.to_be_bytes());
        expected.push(1);
        // Compact array of one (2), compact string "t" (2), two partitions (3),
        // then the entry's empty tagged fields.
        expected.extend_from_slice(&[2, 2, b't', 3, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
        expected.extend_from_slice(&20i64.to_be_bytes());
        expected.extend_from_slice(&10i64.to_be_bytes());
        // Two tagged fields: tag 0 (8 bytes), tag 2 (2 bytes); tag 1 is default.
        expected.extend_from_slice(&[2, 0, 8]);
        expected.extend_from_slice(&999i64.to_be_bytes());
        expected.extend_from_slice(&[2, 2, 0, 2]);
        assert_eq!(value.encode(1), expected);
        assert_eq!(TxnLogValue::decode(&expected).unwrap(), value);
    }

    #[test]
    fn v1_round_trips_every_tag_and_a_null_partition_list() {
        let value = TxnLogValue {
            previous_producer_id: ProducerId(7),
            next_producer_id: ProducerId(8),
            client_transaction_version: 2,
            status: 0,
            topics: None,
            start_timestamp: TimestampMs::NONE,
            ..ongoing()
        };
        let bytes = value.encode(1);
        // Status 0 then a null compact array (0).
        assert_eq!(&bytes[16..18], &[0, 0]);
        assert_eq!(TxnLogValue::decode(&bytes).unwrap(), value);
        // Version 0 drops the v1-only fields and writes null as -1.
        let v0 = value.encode(0);
        assert_eq!(&v0[17..21], &(-1i32).to_be_bytes());
        let decoded = TxnLogValue::decode(&v0).unwrap();
        assert_eq!(decoded.previous_producer_id, ProducerId::NONE);
        assert_eq!(decoded.next_producer_id, ProducerId::NONE);
        assert_eq!(decoded.client_transaction_version, 0);
        assert_eq!(decoded.topics, None);
    }

    #[test]
    fn unknown_tags_are_skipped_and_bad_sizes_refused() {
        let base = ongoing().encode(1);
        // Replace the empty tag section with tag 9 (3 bytes) and tag 1.
        let mut bytes = base[..base.len() - 1].to_vec();
        bytes.extend_from_slice(&[2, 9, 3, 1, 2, 3, 1, 8]);
        bytes.extend_from_slice(&5i64.to_be_bytes());
        let decoded = TxnLogValue::decode(&bytes).unwrap();
        assert_eq!(decoded.next_producer_id, ProducerId(5));

        let mut bad = base[..base.len() - 1].to_vec();
        bad.extend_from_slice(&[1, 2, 1, 0]);
        assert!(matches!(
            TxnLogValue::decode(&bad),
            Err(LogRecordError::TagSize { tag: 2, .. })
        ));
    }

    #[test]
    fn malformed_values_are_refused() {
        let bytes = ongoing().encode(1);
        for len in 0..bytes.len() {
            assert!(TxnLogValue::decode(&bytes[..len]).is_err(), "prefix {len}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            TxnLogValue::decode(&trailing),
            Err(LogRecordError::Trailing(1))
        );
        assert!(matches!(
            TxnLogValue::decode(&[0, 2]),
            Err(LogRecordError::Version { version: 2, .. })
        ));
        // A huge array count is refused before any allocation.
        let mut huge = ongoing().encode(0);
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(TxnLogValue::decode(&huge), Err(LogRecordError::Truncated));
    }

    #[test]
    fn a_null_value_is_a_tombstone() {
        assert_eq!(decode_value(None), Ok(None));
        let bytes = ongoing().encode(0);
        assert_eq!(decode_value(Some(&bytes)), Ok(Some(ongoing())));
    }

    #[test]
    fn uvarints_use_seven_bits_per_byte() {
        let mut out = Vec::new();
        put_uvarint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        assert_eq!(Reader(&out).uvarint(), Ok(300));
        assert_eq!(
            Reader(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).uvarint(),
            Ok(u32::MAX)
        );
        assert_eq!(
            Reader(&[0xFF, 0xFF, 0xFF, 0xFF, 0x10]).uvarint(),
            Err(LogRecordError::Varint)
        );
    }
}
