//! The records of `__consumer_offsets`, in Apache Kafka's byte layout so the
//! partition reads the same as one written by Kafka: big-endian, strings with an
//! INT16 length (-1 for null), bytes with an INT32 length, every key and value
//! starting with its INT16 schema version.
//!
//! Written: OffsetCommitKey v1 (group, topic, partition) with OffsetCommitValue v3
//! (offset, leader epoch, metadata, commit timestamp); GroupMetadataKey v2 (group)
//! with GroupMetadataValue v3. A null value is a tombstone. Read: value versions
//! 0-3, the non-flexible ones.

use bytes::Bytes;

/// Key versions 0 and 1 are offset commits, 2 is group metadata.
const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record truncated")]
    Truncated,
    #[error("invalid UTF-8 in a string")]
    Utf8,
    #[error("unsupported {what} version {version}")]
    Version { what: &'static str, version: i16 },
    #[error("negative length")]
    Length,
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A committed offset as stored (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client sent none.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member in GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's state as stored after each completed rebalance (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

impl RecordKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                put_i16(&mut out, OFFSET_KEY_VERSION);
                put_str(&mut out, group);
                put_str(&mut out, topic);
                out.extend_from_slice(&partition.to_be_bytes());
            }
            RecordKey::Group { group } => {
                put_i16(&mut out, GROUP_KEY_VERSION);
                put_str(&mut out, group);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<RecordKey, RecordError> {
        let mut reader = Reader(bytes);
        match reader.i16()? {
            0 | 1 => Ok(RecordKey::Offset {
                group: reader.string()?,
                topic: reader.string()?,
                partition: reader.i32()?,
            }),
            2 => Ok(RecordKey::Group {
                group: reader.string()?,
            }),
            version => Err(RecordError::Version {
                what: "key",
                version,
            }),
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.metadata.len());
        put_i16(&mut out, OFFSET_VALUE_VERSION);
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.leader_epoch.to_be_bytes());
        put_str(&mut out, &self.metadata);
        out.extend_from_slice(&self.commit_timestamp.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
        let mut reader = Reader(bytes);
        let version = reader.i16()?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::Version {
                what: "offset value",
                version,
            });
        }
        let offset = reader.i64()?;
        let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
        let metadata = reader.string()?;
        let commit_timestamp = reader.i64()?;
        if version == 1 {
            // The expire timestamp of v1: retention is the broker's business now.
            reader.i64()?;
        }
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_i16(&mut out, GROUP_VALUE_VERSION);
        put_str(&mut out, &self.protocol_type);
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_nullable_str(&mut out, self.protocol.as_deref());
        put_nullable_str(&mut out, self.leader.as_deref());
        out.extend_from_slice(&self.current_state_timestamp.to_be_bytes());
        let count = i32::try_from(self.members.len()).expect("member count fits in i32");
        out.extend_from_slice(&count.to_be_bytes());
        for member in &self.members {
            put_str(&mut out, &member.member_id);
            put_nullable_str(&mut out, member.group_instance_id.as_deref());
            put_str(&mut out, &member.client_id);
            put_str(&mut out, &member.client_host);
            out.extend_from_slice(&member.rebalance_timeout_ms.to_be_bytes());
            out.extend_from_slice(&member.session_timeout_ms.to_be_bytes());
            put_bytes(&mut out, &member.subscription);
            put_bytes(&mut out, &member.assignment);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<GroupValue, RecordError> {
        let mut reader = Reader(bytes);
        let version = reader.i16()?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::Version {
                what: "group value",
                version,
            });
        }
        let protocol_type = reader.string()?;
        let generation = reader.i32()?;
        let protocol = reader.nullable_string()?;
        let leader = reader.nullable_string()?;
        let current_state_timestamp = if version >= 2 { reader.i64()? } else { -1 };
        let count = reader.i32()?;
        let count = usize::try_from(count).map_err(|_| RecordError::Length)?;
        // Each member takes at least 24 bytes: refuse counts the bytes cannot hold.
        if count > reader.0.len() / 24 + 1 {
            return Err(RecordError::Truncated);
        }
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            let member_id = reader.string()?;
            let group_instance_id = if version >= 3 {
                reader.nullable_string()?
            } else {
                None
            };
            let client_id = reader.string()?;
            let client_host = reader.string()?;
            let rebalance_timeout_ms = if version >= 1 { reader.i32()? } else { -1 };
            let session_timeout_ms = reader.i32()?;
            let subscription = reader.bytes()?;
            let assignment = reader.bytes()?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

fn put_i16(out: &mut Vec<u8>, value: i16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    // Kafka strings are at most i16::MAX bytes; callers bound what they store.
    let len = i16::try_from(text.len()).expect("string under 32 KiB");
    put_i16(out, len);
    out.extend_from_slice(text.as_bytes());
}

fn put_nullable_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => put_str(out, text),
        None => put_i16(out, -1),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = i32::try_from(bytes.len()).expect("bytes under 2 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < len {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError::Utf8)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?.ok_or(RecordError::Length)
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = usize::try_from(self.i32()?).map_err(|_| RecordError::Length)?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_key_has_kafkas_layout() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t1".into(),
            partition: 7,
        };
        let bytes = key.encode();
        assert_eq!(
            bytes,
            [0, 1, 0, 1, b'g', 0, 2, b't', b'1', 0, 0, 0, 7],
            "version 1, group, topic, partition"
        );
        assert_eq!(RecordKey::decode(&bytes).unwrap(), key);
        // Version 0 keys have the same fields.
        let mut v0 = bytes.clone();
        v0[1] = 0;
        assert_eq!(RecordKey::decode(&v0).unwrap(), key);
    }

    #[test]
    fn group_key_has_kafkas_layout() {
        let key = RecordKey::Group { group: "ab".into() };
        assert_eq!(key.encode(), [0, 2, 0, 2, b'a', b'b']);
        assert_eq!(RecordKey::decode(&key.encode()).unwrap(), key);
        assert!(matches!(
            RecordKey::decode(&[0, 3, 0, 0]),
            Err(RecordError::Version { version: 3, .. })
        ));
    }

    #[test]
    fn offset_value_v3_layout_and_older_versions() {
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 5,
            metadata: "m".into(),
            commit_timestamp: 1_000,
        };
        let bytes = value.encode();
        let mut expected = vec![0, 3];
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&5i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'm']);
        expected.extend_from_slice(&1_000i64.to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(OffsetValue::decode(&bytes).unwrap(), value);

        // v1: offset, metadata, commit timestamp, expire timestamp; no epoch.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&9i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&7i64.to_be_bytes());
        v1.extend_from_slice(&(-1i64).to_be_bytes());
        let decoded = OffsetValue::decode(&v1).unwrap();
        assert_eq!(
            (
                decoded.offset,
                decoded.leader_epoch,
                decoded.commit_timestamp
            ),
            (9, -1, 7)
        );
        assert_eq!(
            OffsetValue::decode(&bytes[..10]),
            Err(RecordError::Truncated)
        );
    }

    #[test]
    fn group_value_round_trips_with_nulls_and_members() {
        let value = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: None,
            current_state_timestamp: 77,
            members: vec![MemberValue {
                member_id: "c-1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::new(),
            }],
        };
        let bytes = value.encode();
        assert_eq!(&bytes[..2], &[0, 3]);
        // protocol type, generation, protocol, null leader (-1), timestamp, count.
        assert_eq!(
            &bytes[2..12],
            &[0, 8, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r']
        );
        assert_eq!(&bytes[12..16], &3i32.to_be_bytes());
        assert_eq!(&bytes[16..23], &[0, 5, b'r', b'a', b'n', b'g', b'e']);
        assert_eq!(&bytes[23..25], &(-1i16).to_be_bytes());
        assert_eq!(GroupValue::decode(&bytes).unwrap(), value);
        assert!(GroupValue::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
