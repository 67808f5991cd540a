//! The keys and values of the records in log bytes, for coordinators replaying
//! their internal topic: whole batches as the log returns them, then the key and
//! value of each record of an uncompressed batch.

use crate::record::batch::{BatchHeader, RecordBatch};
use crate::record::varint::read_varlong;

/// A record's key and value (`None`: null).
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// The whole batches in `bytes`; a torn last batch is left out.
pub fn batches(mut bytes: &[u8]) -> impl Iterator<Item = RecordBatch<'_>> {
    std::iter::from_fn(move || {
        let len = BatchHeader::parse(bytes)?.total_len()?;
        if len > bytes.len() {
            return None;
        }
        let (batch, rest) = bytes.split_at(len);
        bytes = rest;
        Some(RecordBatch::new_unchecked(batch))
    })
}

/// The key and value of each record of an uncompressed batch; stops at the
/// first malformed record and after the header's record count.
pub fn key_values(batch: RecordBatch<'_>) -> Vec<KeyValue<'_>> {
    let mut rest = batch.records();
    let count = batch.header().records_count.get().max(0);
    let mut out = Vec::new();
    for _ in 0..count {
        let Some(record) = next_record(&mut rest) else {
            break;
        };
        out.push(record);
    }
    out
}

fn next_record<'a>(rest: &mut &'a [u8]) -> Option<KeyValue<'a>> {
    let (length, used) = read_varlong(rest)?;
    let length = usize::try_from(length).ok()?;
    let mut body = rest.get(used..used + length)?;
    *rest = &rest[used + length..];
    // Attributes (1 byte), timestamp delta, offset delta, key, value, headers.
    body = body.get(1..)?;
    for _ in 0..2 {
        let (_, used) = read_varlong(body)?;
        body = &body[used..];
    }
    let key = read_bytes(&mut body)?;
    let value = read_bytes(&mut body)?;
    Some((key, value))
}

fn read_bytes<'a>(body: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let (len, used) = read_varlong(body)?;
    *body = &body[used..];
    if len < 0 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let bytes = body.get(..len)?;
    *body = &body[len..];
    Some(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::builder::{NewRecord, build_batch};

    #[test]
    fn records_of_built_batches_read_back_with_tombstones() {
        let mut bytes = build_batch(&[
            NewRecord {
                key: Some(b"k1"),
                value: Some(b"v1"),
                timestamp_ms: 1,
            },
            NewRecord {
                key: Some(b"k2"),
                value: None,
                timestamp_ms: 2,
            },
        ]);
        bytes.extend_from_slice(&build_batch(&[NewRecord {
            key: None,
            value: Some(b"v3"),
            timestamp_ms: 3,
        }]));
        let found: Vec<_> = batches(&bytes).flat_map(key_values).collect();
        assert_eq!(
            found,
            vec![
                (Some(&b"k1"[..]), Some(&b"v1"[..])),
                (Some(&b"k2"[..]), None),
                (None, Some(&b"v3"[..])),
            ]
        );
        assert_eq!(batches(&bytes[..bytes.len() - 1]).count(), 1);
    }
}
