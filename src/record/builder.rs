//! Builds uncompressed v2 record batches, as a producer would send them: for
//! tools, tests and benchmarks, and for the records the group coordinator writes to
//! `__consumer_offsets`.

use crate::record::attributes::Attributes;
use crate::record::batch::{BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, MAGIC_V2, compute_crc};
use crate::record::varint::write_varlong;
use crate::types::{ProducerEpoch, ProducerId};
use zerocopy::FromBytes;

/// One record to put in a batch.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp_ms: i64,
}

/// The header fields that say who wrote a batch and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchWriter {
    pub attributes: Attributes,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub base_sequence: i32,
}

impl BatchWriter {
    /// No producer id, no sequence, plain attributes.
    pub const NONE: BatchWriter = BatchWriter {
        attributes: Attributes(0),
        producer_id: ProducerId::NONE,
        producer_epoch: ProducerEpoch::NONE,
        base_sequence: -1,
    };
}

/// Encodes `records` as one batch with base offset 0 and no producer id.
pub fn build_batch(records: &[NewRecord<'_>]) -> Vec<u8> {
    build_batch_with(records, BatchWriter::NONE)
}

/// Encodes `records` as one batch with base offset 0 and `writer`'s header
/// fields (the compression bits of its attributes must be 0: records are not
/// compressed here).
pub fn build_batch_with(records: &[NewRecord<'_>], writer: BatchWriter) -> Vec<u8> {
    assert_eq!(
        writer.attributes.0 & 0x07,
        0,
        "the builder writes uncompressed batches"
    );
    assert!(!records.is_empty(), "a batch holds at least one record");
    let base_timestamp = records[0].timestamp_ms;
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp_ms)
        .max()
        .unwrap_or(base_timestamp);
    let mut out = vec![0u8; BATCH_HEADER_LEN];
    let mut body = Vec::new();
    for (index, record) in records.iter().enumerate() {
        body.clear();
        body.push(0);
        write_varlong(&mut body, record.timestamp_ms - base_timestamp);
        write_varlong(&mut body, index as i64);
        write_bytes(&mut body, record.key);
        write_bytes(&mut body, record.value);
        write_varlong(&mut body, 0);
        write_varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).expect("batch under 2 GiB");
    let count = i32::try_from(records.len()).expect("record count fits in i32");
    {
        let (header, _) = BatchHeader::mut_from_prefix(&mut out).expect("header room");
        header.base_offset.set(0);
        header.batch_length.set(batch_length);
        header.partition_leader_epoch.set(-1);
        header.magic = MAGIC_V2;
        header.attributes.set(writer.attributes.0);
        header.last_offset_delta.set(count - 1);
        header.base_timestamp.set(base_timestamp);
        header.max_timestamp.set(max_timestamp);
        header.producer_id.set(writer.producer_id.0);
        header.producer_epoch.set(writer.producer_epoch.0);
        header.base_sequence.set(writer.base_sequence);
        header.records_count.set(count);
    }
    let crc = compute_crc(&out);
    BatchHeader::mut_from_prefix(&mut out)
        .expect("header room")
        .0
        .crc
        .set(crc);
    out
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            write_varlong(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => write_varlong(out, -1),
    }
}

/// A batch of `count` records whose values fill it to about `target_len` bytes.
pub fn build_filler_batch(target_len: usize, count: usize, timestamp_ms: i64) -> Vec<u8> {
    assert!(count > 0);
    let per_record = target_len.saturating_sub(BATCH_HEADER_LEN) / count;
    let value = vec![0xA5u8; per_record.saturating_sub(8).max(1)];
    let records: Vec<NewRecord<'_>> = (0..count)
        .map(|_| NewRecord {
            key: None,
            value: Some(&value),
            timestamp_ms,
        })
        .collect();
    build_batch(&records)
}
