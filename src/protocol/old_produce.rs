//! Produce v0-2 (message format v0/v1): advertised because librdkafka checks that
//! Produce starts at version 0, but refused, as Kafka 4 does, with
//! UNSUPPORTED_VERSION for every partition. The kafka-protocol crate only knows
//! v3+, so this module reads the old request and writes the old response itself.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::protocol::error_code::ErrorCode;

/// The highest Produce version this module answers.
pub const MAX_VERSION: i16 = 2;

/// At most this many topics and partitions are read from one request: a frame
/// that claims more is malformed (the frame limit bounds it anyway).
const MAX_ENTRIES: usize = 100_000;

/// What to do with an old Produce request.
#[derive(Debug, PartialEq, Eq)]
pub enum OldProduce {
    /// acks=0: the client expects no response.
    NoResponse,
    /// A complete response frame (size prefix reserved, as `write_frame` expects).
    Respond(BytesMut),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed Produce v{version} request: {reason}")]
pub struct Malformed {
    pub version: i16,
    pub reason: &'static str,
}

/// Answers a whole Produce v0-2 frame (request header v1 included).
pub fn answer(mut frame: Bytes) -> Result<OldProduce, Malformed> {
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    debug_assert!((0..=MAX_VERSION).contains(&version));
    let fail = |reason| Malformed { version, reason };
    frame.advance(4);
    let correlation_id = get_i32(&mut frame).ok_or(fail("header"))?;
    skip_nullable_string(&mut frame).ok_or(fail("client id"))?;
    let acks = get_i16(&mut frame).ok_or(fail("acks"))?;
    get_i32(&mut frame).ok_or(fail("timeout"))?;
    let topic_count = get_count(&mut frame).ok_or(fail("topic count"))?;
    let mut out = BytesMut::with_capacity(64);
    out.put_i32(0);
    out.put_i32(correlation_id);
    out.put_i32(topic_count as i32);
    for _ in 0..topic_count {
        let name = get_string(&mut frame).ok_or(fail("topic name"))?;
        out.put_i16(name.len() as i16);
        out.put_slice(&name);
        let partition_count = get_count(&mut frame).ok_or(fail("partition count"))?;
        out.put_i32(partition_count as i32);
        for _ in 0..partition_count {
            let partition = get_i32(&mut frame).ok_or(fail("partition"))?;
            let records = get_i32(&mut frame).ok_or(fail("records size"))?;
            let records = usize::try_from(records).unwrap_or(0);
            if frame.remaining() < records {
                return Err(fail("records"));
            }
            frame.advance(records);
            out.put_i32(partition);
            out.put_i16(ErrorCode::UnsupportedVersion.code());
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    if acks == 0 {
        return Ok(OldProduce::NoResponse);
    }
    Ok(OldProduce::Respond(out))
}

fn get_i16(buf: &mut Bytes) -> Option<i16> {
    (buf.remaining() >= 2).then(|| buf.get_i16())
}

fn get_i32(buf: &mut Bytes) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

fn get_count(buf: &mut Bytes) -> Option<usize> {
    usize::try_from(get_i32(buf)?)
        .ok()
        .filter(|&n| n <= MAX_ENTRIES)
}

fn get_string(buf: &mut Bytes) -> Option<Bytes> {
    let len = usize::try_from(get_i16(buf)?).ok()?;
    get_string_body(buf, len)
}

fn skip_nullable_string(buf: &mut Bytes) -> Option<()> {
    let len = get_i16(buf)?;
    if len >= 0 {
        get_string_body(buf, len as usize)?;
    }
    Some(())
}

fn get_string_body(buf: &mut Bytes, len: usize) -> Option<Bytes> {
    (buf.remaining() >= len).then(|| buf.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: i16, acks: i16) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i16(version);
        b.put_i32(77);
        b.put_i16(3);
        b.put_slice(b"cli");
        b.put_i16(acks);
        b.put_i32(1000);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(2);
        for p in [0, 5] {
            b.put_i32(p);
            b.put_i32(3);
            b.put_slice(b"abc");
        }
        b.freeze()
    }

    #[test]
    fn every_partition_gets_unsupported_version() {
        for version in 0..=MAX_VERSION {
            let OldProduce::Respond(out) = answer(request(version, 1)).unwrap() else {
                panic!("acks=1 must be answered");
            };
            let mut r = out.freeze();
            r.advance(4);
            assert_eq!(r.get_i32(), 77);
            assert_eq!(r.get_i32(), 1);
            assert_eq!(r.get_i16(), 1);
            assert_eq!(r.get_u8(), b't');
            assert_eq!(r.get_i32(), 2);
            for p in [0, 5] {
                assert_eq!(r.get_i32(), p);
                assert_eq!(r.get_i16(), ErrorCode::UnsupportedVersion.code());
                assert_eq!(r.get_i64(), -1);
                if version >= 2 {
                    assert_eq!(r.get_i64(), -1);
                }
            }
            if version >= 1 {
                assert_eq!(r.get_i32(), 0);
            }
            assert!(!r.has_remaining());
        }
    }

    #[test]
    fn acks_zero_gets_nothing_and_truncation_is_malformed() {
        assert_eq!(answer(request(1, 0)).unwrap(), OldProduce::NoResponse);
        let full = request(2, 1);
        for cut in 8..full.len() {
            assert!(answer(full.slice(..cut)).is_err(), "cut at {cut}");
        }
    }
}
