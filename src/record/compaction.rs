//! The record-level half of log compaction: reading the records of a batch as the
//! cleaner sees them, and rewriting a batch without the records the cleaner drops,
//! as Kafka's `filterTo` does for v2 batches (KIP-534 delete horizons included).
//!
//! This module owns the batch bytes only; which records to keep, and which empty
//! batches must stay for producer idempotence, is the cleaner's decision. It is pure
//! and synchronous: one batch in, one batch (or nothing) out.
//!
//! A rewritten batch keeps every header field a reader or a producer's sequence
//! check relies on (base offset, last offset delta, producer id, epoch and base
//! sequence, the attribute bits) and every kept record byte for byte, except its
//! timestamp delta, which follows the batch's new base timestamp.

use std::borrow::Cow;

use zerocopy::{FromBytes, IntoBytes};

use crate::record::attributes::{Compression, TimestampType};
use crate::record::batch::{BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, RecordBatch, compute_crc};
use crate::record::compression::{CompressError, DecompressError, compress, snappy_framing};
use crate::record::varint::{read_varlong, varlong_len, write_varlong};
use crate::types::{Offset, TimestampMs};

/// Attribute bit of a batch whose base timestamp holds the delete horizon (KIP-534).
pub const DELETE_HORIZON_FLAG: i16 = 0x40;

/// The codec bits of the attributes.
const COMPRESSION_BITS: i16 = 0x07;

/// Why a batch could not be read or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactionError {
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    #[error(transparent)]
    Compress(#[from] CompressError),
    #[error("negative record count {0}")]
    NegativeCount(i32),
    #[error("record {index} of {count}: {reason}")]
    MalformedRecord {
        index: i32,
        count: i32,
        reason: &'static str,
    },
    #[error("{bytes} bytes follow the {count} records the header announces")]
    TrailingBytes { count: i32, bytes: usize },
    #[error("a rewritten batch of {len} bytes does not fit the batch length field")]
    TooLarge { len: usize },
}

/// One record as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: Offset,
    /// The record's timestamp as a consumer sees it: the header's max timestamp
    /// in a LogAppendTime batch, the record's own otherwise.
    pub timestamp: TimestampMs,
    pub key: Option<&'a [u8]>,
    /// false for a tombstone (null value).
    pub has_value: bool,
    /// The value bytes; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    pub headers: RecordHeaders<'a>,
}

/// The headers of a record, checked when the record was read: each a key and
/// a nullable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordHeaders<'a> {
    count: i64,
    /// The encoded headers, after their count.
    bytes: &'a [u8],
}

impl<'a> RecordHeaders<'a> {
    pub fn len(&self) -> i64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each header's key and value (`None`: null), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + use<'a> {
        let mut cursor = Cursor(self.bytes);
        (0..self.count).map_while(move |_| {
            let key = cursor.nullable("header key").ok()??;
            let value = cursor.nullable("header value").ok()?;
            Some((key, value))
        })
    }
}

/// The records of one batch, inflated once if the batch is compressed.
#[derive(Debug)]
pub struct BatchRecords<'a> {
    header: &'a BatchHeader,
    records: Cow<'a, [u8]>,
}

impl<'a> BatchRecords<'a> {
    /// `inflate_limit` bounds the inflated size (as `records_section` does).
    pub fn new(
        batch: RecordBatch<'a>,
        inflate_limit: usize,
    ) -> Result<BatchRecords<'a>, CompactionError> {
        let header = batch.header();
        let attributes = header.attributes();
        let codec = attributes
            .compression()
            .ok_or(CompactionError::UnknownCompression(
                attributes.0 & COMPRESSION_BITS,
            ))?;
        let records = match codec {
            Compression::None => Cow::Borrowed(batch.records()),
            codec => Cow::Owned(crate::record::compression::decompress(
                codec,
                batch.records(),
                inflate_limit,
            )?),
        };
        Ok(BatchRecords { header, records })
    }

    /// Every record, in order; a malformed record is an error, and ends the walk.
    /// Bounded by the header's record count; bytes left after the last record
    /// are an error too.
    pub fn iter(&self) -> impl Iterator<Item = Result<RecordView<'_>, CompactionError>> {
        self.raw().map(|record| record.map(|record| record.view))
    }

    fn raw(&self) -> RawRecords<'_> {
        let header = self.header;
        let log_append_time = (header.attributes().timestamp_type()
            == TimestampType::LogAppendTime)
            .then(|| header.max_timestamp());
        RawRecords {
            rest: &self.records,
            base_offset: header.base_offset(),
            base_timestamp: header.base_timestamp.get(),
            last_offset_delta: i64::from(header.last_offset_delta.get()),
            log_append_time,
            count: header.records_count.get(),
            index: 0,
            previous_delta: None,
            done: false,
        }
    }
}

/// A record and the bytes a rewrite copies from it.
struct RawRecord<'a> {
    view: RecordView<'a>,
    /// The timestamp the record itself holds (base timestamp + delta).
    stored_timestamp: i64,
    attributes: u8,
    /// Offset delta, key, value and headers, copied unchanged on a rewrite.
    tail: &'a [u8],
}

struct RawRecords<'a> {
    rest: &'a [u8],
    base_offset: Offset,
    base_timestamp: i64,
    last_offset_delta: i64,
    log_append_time: Option<TimestampMs>,
    count: i32,
    index: i32,
    previous_delta: Option<i64>,
    /// Set after the last record or the first error: the iterator is fused.
    done: bool,
}

impl<'a> Iterator for RawRecords<'a> {
    type Item = Result<RawRecord<'a>, CompactionError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = if self.count < 0 {
            Err(CompactionError::NegativeCount(self.count))
        } else if self.index == self.count {
            self.done = true;
            return (!self.rest.is_empty()).then_some(Err(CompactionError::TrailingBytes {
                count: self.count,
                bytes: self.rest.len(),
            }));
        } else {
            self.read_record()
                .map_err(|reason| CompactionError::MalformedRecord {
                    index: self.index,
                    count: self.count,
                    reason,
                })
        };
        match &result {
            Ok(_) => self.index += 1,
            Err(_) => self.done = true,
        }
        Some(result)
    }
}

impl<'a> RawRecords<'a> {
    /// Reads the record at the front of `rest` and moves past it.
    fn read_record(&mut self) -> Result<RawRecord<'a>, &'static str> {
        let mut outer = Cursor(self.rest);
        let length = outer.varlong("record length")?;
        let length = usize::try_from(length).map_err(|_| "negative record length")?;
        let body = outer.take(length, "record longer than the records section")?;
        let mut cursor = Cursor(body);
        let attributes = cursor.take(1, "empty record")?[0];
        let timestamp_delta = cursor.varlong("timestamp delta")?;
        let tail = cursor.0;
        let offset_delta = cursor.varlong("offset delta")?;
        let in_order = self
            .previous_delta
            .is_none_or(|previous| offset_delta > previous);
        if !(0..=self.last_offset_delta).contains(&offset_delta) || !in_order {
            return Err("offset delta out of order or outside the batch");
        }
        let key = cursor.nullable("key")?;
        let value = cursor.nullable("value")?;
        let headers = cursor.varlong("header count")?;
        if headers < 0 {
            return Err("negative header count");
        }
        let header_bytes = cursor.0;
        // Each header takes at least two bytes, so a huge count fails early.
        for _ in 0..headers {
            if cursor.nullable("header key")?.is_none() {
                return Err("null header key");
            }
            cursor.nullable("header value")?;
        }
        if !cursor.0.is_empty() {
            return Err("bytes left inside the record after its headers");
        }
        self.rest = outer.0;
        self.previous_delta = Some(offset_delta);
        let stored_timestamp = self.base_timestamp.wrapping_add(timestamp_delta);
        Ok(RawRecord {
            view: RecordView {
                offset: self.base_offset.plus(offset_delta),
                timestamp: self
                    .log_append_time
                    .unwrap_or(TimestampMs(stored_timestamp)),
                key,
                has_value: value.is_some(),
                value,
                headers: RecordHeaders {
                    count: headers,
                    bytes: header_bytes,
                },
            },
            stored_timestamp,
            attributes,
            tail,
        })
    }
}

/// Reads the fields of one record; each error names the field.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn varlong(&mut self, what: &'static str) -> Result<i64, &'static str> {
        let (value, used) = read_varlong(self.0).ok_or(what)?;
        self.0 = &self.0[used..];
        Ok(value)
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], &'static str> {
        if len > self.0.len() {
            return Err(what);
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    /// A length-prefixed byte string, `None` for length -1.
    fn nullable(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, &'static str> {
        match self.varlong(what)? {
            -1 => Ok(None),
            len => {
                let len = usize::try_from(len).map_err(|_| what)?;
                self.take(len, what).map(Some)
            }
        }
    }
}

/// The delete horizon of a batch, if the cleaner set one (attribute bit 0x40 → base timestamp).
pub fn delete_horizon(header: &BatchHeader) -> Option<TimestampMs> {
    (header.attributes.get() & DELETE_HORIZON_FLAG != 0)
        .then(|| TimestampMs(header.base_timestamp.get()))
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every record kept and nothing to stamp: copy the original bytes.
    Unchanged,
    /// The batch rewritten (some records removed and/or the delete horizon set).
    Rewritten(Vec<u8>),
    /// Nothing of the batch remains.
    Removed,
}

/// The result of [`filter_batch`]: the batch and how many records it kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterOutcome {
    pub filtered: Filtered,
    /// Records `keep` kept.
    pub kept: u32,
    /// Records `keep` dropped.
    pub removed: u32,
}

/// Filters one batch: `keep` decides per record; `retain_empty` keeps a header-only batch when no
/// record is kept (the last batch of a producer, kept for idempotence); `new_horizon` is the delete
/// horizon to stamp on a batch that has none yet and holds a kept tombstone or is a control batch.
///
/// `keep` sees every record once, in order, keyless ones included. A batch that
/// holds no record at all (a header-only batch of an earlier pass) is `Unchanged`
/// when `retain_empty`, else `Removed`.
pub fn filter_batch(
    batch: RecordBatch<'_>,
    inflate_limit: usize,
    retain_empty: bool,
    new_horizon: Option<TimestampMs>,
    mut keep: impl FnMut(&RecordView<'_>) -> bool,
) -> Result<FilterOutcome, CompactionError> {
    let records = BatchRecords::new(batch, inflate_limit)?;
    let header = batch.header();
    // One decision per record, so `keep` runs once and the rewrite pass need not
    // ask again; one allocation per batch.
    let mut decisions = Vec::new();
    let mut kept_tombstone = false;
    let mut kept_max_timestamp = None;
    for record in records.raw() {
        let record = record?;
        let keep_it = keep(&record.view);
        if keep_it {
            kept_tombstone |= !record.view.has_value;
            kept_max_timestamp = kept_max_timestamp.max(Some(record.stored_timestamp));
        }
        decisions.push(keep_it);
    }
    let kept = decisions.iter().filter(|&&k| k).count();
    let total = decisions.len();
    // Both at most the header's record count, an i32.
    let outcome = |filtered| FilterOutcome {
        filtered,
        kept: kept as u32,
        removed: (total - kept) as u32,
    };
    let Some(kept_max_timestamp) = kept_max_timestamp else {
        return Ok(outcome(match (retain_empty, total == 0) {
            (false, _) => Filtered::Removed,
            (true, true) => Filtered::Unchanged,
            (true, false) => Filtered::Rewritten(empty_header(header)?),
        }));
    };
    let existing_horizon = delete_horizon(header);
    let stamp = new_horizon.filter(|_| {
        existing_horizon.is_none() && (kept_tombstone || header.attributes().is_control())
    });
    if kept == total && stamp.is_none() {
        return Ok(outcome(Filtered::Unchanged));
    }
    let max_timestamp = match header.attributes().timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp.get(),
        TimestampType::CreateTime => kept_max_timestamp,
    };
    let rewrite = Rewrite {
        base_timestamp: stamp
            .or(existing_horizon)
            .map_or(header.base_timestamp.get(), |h| h.0),
        max_timestamp,
        attributes: header.attributes.get() | stamp.map_or(0, |_| DELETE_HORIZON_FLAG),
        count: kept as i32,
    };
    let kept_records = records
        .raw()
        .zip(decisions)
        .filter_map(|(record, keep_it)| keep_it.then_some(record));
    Ok(outcome(Filtered::Rewritten(rewrite.write(
        batch,
        records.records.len(),
        kept_records,
    )?)))
}

/// The header fields a rewrite changes, besides the batch length and CRC.
struct Rewrite {
    base_timestamp: i64,
    max_timestamp: i64,
    attributes: i16,
    count: i32,
}

impl Rewrite {
    /// The batch with `kept` as its records, compressed as the original was.
    fn write<'a>(
        &self,
        original: RecordBatch<'_>,
        inflated_len: usize,
        kept: impl Iterator<Item = Result<RawRecord<'a>, CompactionError>>,
    ) -> Result<Vec<u8>, CompactionError> {
        let header = &original.bytes()[..BATCH_HEADER_LEN];
        let codec = original
            .header()
            .attributes()
            .compression()
            .unwrap_or(Compression::None);
        let out = if codec == Compression::None {
            // Uncompressed records go straight after the header.
            let mut out = Vec::with_capacity(original.bytes().len());
            out.extend_from_slice(header);
            self.encode(&mut out, kept)?;
            out
        } else {
            let mut plain = Vec::with_capacity(inflated_len);
            self.encode(&mut plain, kept)?;
            let framing = snappy_framing(original.records());
            let compressed = compress(codec, &plain, framing)?;
            let mut out = Vec::with_capacity(BATCH_HEADER_LEN + compressed.len());
            out.extend_from_slice(header);
            out.extend_from_slice(&compressed);
            out
        };
        finish(out, |header| {
            header.attributes.set(self.attributes);
            header.base_timestamp.set(self.base_timestamp);
            header.max_timestamp.set(self.max_timestamp);
            header.records_count.set(self.count);
        })
    }

    /// Appends the kept records to `out`, each with its timestamp delta re-encoded
    /// against the new base timestamp and every other byte as it was.
    fn encode<'a>(
        &self,
        out: &mut Vec<u8>,
        kept: impl Iterator<Item = Result<RawRecord<'a>, CompactionError>>,
    ) -> Result<(), CompactionError> {
        for record in kept {
            let record = record?;
            let timestamp_delta = record.stored_timestamp.wrapping_sub(self.base_timestamp);
            let body_len = 1 + varlong_len(timestamp_delta) + record.tail.len();
            write_varlong(out, body_len as i64);
            out.push(record.attributes);
            write_varlong(out, timestamp_delta);
            out.extend_from_slice(record.tail);
        }
        Ok(())
    }
}

/// A header-only copy of a batch that lost every record: what stays of a
/// producer's last batch so its sequence and epoch survive compaction. Its records
/// section is empty, so it claims no codec, and it has no delete horizon; both
/// timestamps are the original max timestamp.
fn empty_header(header: &BatchHeader) -> Result<Vec<u8>, CompactionError> {
    let out = header.as_bytes().to_vec();
    finish(out, |empty| {
        let attributes = empty.attributes.get() & !(COMPRESSION_BITS | DELETE_HORIZON_FLAG);
        empty.attributes.set(attributes);
        empty.base_timestamp.set(header.max_timestamp.get());
        empty.records_count.set(0);
    })
}

/// Applies `edit` to the header of `out`, then sets its batch length and CRC.
fn finish(
    mut out: Vec<u8>,
    edit: impl FnOnce(&mut BatchHeader),
) -> Result<Vec<u8>, CompactionError> {
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| CompactionError::TooLarge { len: out.len() })?;
    let (header, _) = BatchHeader::mut_from_prefix(&mut out).expect("a whole header");
    edit(header);
    header.batch_length.set(batch_length);
    let crc = compute_crc(&out);
    BatchHeader::mut_from_prefix(&mut out)
        .expect("a whole header")
        .0
        .crc
        .set(crc);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::attributes::Attributes;
    use crate::record::batch::RecordBatchMut;
    use crate::record::builder::{BatchWriter, NewRecord, build_batch_with};
    use crate::record::compression::SnappyFraming;
    use crate::record::control::{EndTxnMarker, MarkerKind};
    use crate::record::key_value::KeyValue;
    use crate::record::records::RecordIter;
    use crate::record::validate::check_frame;
    use crate::types::{LeaderEpoch, ProducerEpoch, ProducerId};

    const LIMIT: usize = 1 << 20;

    /// Offset, timestamp, key and whether the record has a value.
    type Decoded = (i64, i64, Option<Vec<u8>>, bool);

    fn writer() -> BatchWriter {
        BatchWriter {
            attributes: Attributes(0).with_transactional(),
            producer_id: ProducerId(7),
            producer_epoch: ProducerEpoch(3),
            base_sequence: 10,
        }
    }

    /// Offsets 100..=104: a, b, a again, a keyless record, then a tombstone for c.
    fn sample() -> Vec<u8> {
        let records = [
            (Some(&b"a"[..]), Some(&b"1"[..]), 1_000),
            (Some(b"b"), Some(b"2"), 990),
            (Some(b"a"), Some(b"3"), 1_020),
            (None, Some(b"4"), 1_010),
            (Some(b"c"), None, 1_030),
        ]
        .map(|(key, value, timestamp_ms)| NewRecord {
            key,
            value,
            timestamp_ms,
        });
        let mut bytes = build_batch_with(&records, writer());
        RecordBatchMut::new_unchecked(&mut bytes)
            .assign_offset_and_epoch(Offset(100), LeaderEpoch(5));
        bytes
    }

    fn codec_id(codec: Compression) -> i16 {
        match codec {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// `bytes` with its records section replaced by `section` (CRC and length fixed).
    fn with_section(bytes: &[u8], section: &[u8], edit: impl FnOnce(&mut BatchHeader)) -> Vec<u8> {
        let mut out = bytes[..BATCH_HEADER_LEN].to_vec();
        out.extend_from_slice(section);
        finish(out, edit).unwrap()
    }

    /// The uncompressed batch `bytes` with its records compressed.
    fn compressed(bytes: &[u8], codec: Compression, framing: SnappyFraming) -> Vec<u8> {
        let section = compress(codec, &bytes[BATCH_HEADER_LEN..], framing).unwrap();
        with_section(bytes, &section, |header| {
            header
                .attributes
                .set(header.attributes.get() | codec_id(codec));
        })
    }

    fn decoded(bytes: &[u8]) -> Vec<Decoded> {
        let records = BatchRecords::new(RecordBatch::new_unchecked(bytes), LIMIT).unwrap();
        records
            .iter()
            .map(|record| {
                let record = record.unwrap();
                (
                    record.offset.0,
                    record.timestamp.0,
                    record.key.map(<[u8]>::to_vec),
                    record.has_value,
                )
            })
            .collect()
    }

    fn filter(
        bytes: &[u8],
        retain_empty: bool,
        new_horizon: Option<TimestampMs>,
        keep: impl FnMut(&RecordView<'_>) -> bool,
    ) -> FilterOutcome {
        let batch = RecordBatch::new_unchecked(bytes);
        filter_batch(batch, LIMIT, retain_empty, new_horizon, keep).unwrap()
    }

    fn rewritten(outcome: FilterOutcome) -> Vec<u8> {
        match outcome.filtered {
            Filtered::Rewritten(bytes) => bytes,
            other => panic!("expected a rewrite, got {other:?}"),
        }
    }

    /// Frames and CRC as recovery and the reader check them.
    fn assert_sound(bytes: &[u8]) -> &BatchHeader {
        let header = BatchHeader::parse(bytes).unwrap();
        check_frame(header, bytes.len()).unwrap();
        assert!(RecordBatch::new_unchecked(bytes).crc_is_valid());
        header
    }

    /// Drops the first "a" (offset 100) and the tombstone (offset 104, the last).
    fn latest_without_tombstone(record: &RecordView<'_>) -> bool {
        record.offset != Offset(100) && record.has_value
    }

    #[test]
    fn a_batch_keeping_every_record_is_unchanged() {
        let bytes = sample();
        let mut seen = Vec::new();
        let outcome = filter(&bytes, false, None, |record| {
            seen.push((record.offset.0, record.key.map(<[u8]>::to_vec)));
            true
        });
        assert_eq!(
            outcome,
            FilterOutcome {
                filtered: Filtered::Unchanged,
                kept: 5,
                removed: 0
            }
        );
        assert_eq!(
            seen,
            vec![
                (100, Some(b"a".to_vec())),
                (101, Some(b"b".to_vec())),
                (102, Some(b"a".to_vec())),
                (103, None),
                (104, Some(b"c".to_vec())),
            ],
            "keyless records are offered too"
        );
        let no_tombstone = filter(&bytes, false, Some(TimestampMs(5_000)), |r| {
            r.offset.0 < 102
        });
        assert_eq!(no_tombstone.kept, 2);
        assert_eq!(
            delete_horizon(BatchHeader::parse(&rewritten(no_tombstone)).unwrap()),
            None,
            "no kept tombstone, no horizon"
        );
    }

    #[test]
    fn removing_records_keeps_offsets_and_producer_fields() {
        let bytes = sample();
        let outcome = filter(&bytes, false, None, latest_without_tombstone);
        assert_eq!((outcome.kept, outcome.removed), (3, 2));
        let cleaned = rewritten(outcome);
        let before = BatchHeader::parse(&bytes).unwrap();
        let after = assert_sound(&cleaned);
        assert_eq!(after.base_offset(), Offset(100));
        assert_eq!(
            after.last_offset(),
            Offset(104),
            "the removed last record still counts for producer sequences"
        );
        assert_eq!(after.records_count.get(), 3);
        assert_eq!(after.leader_epoch(), LeaderEpoch(5));
        assert_eq!(after.producer_id.get(), 7);
        assert_eq!(after.producer_epoch.get(), 3);
        assert_eq!(after.base_sequence.get(), 10);
        assert_eq!(after.attributes, before.attributes);
        assert_eq!(after.base_timestamp.get(), 1_000);
        assert_eq!(after.max_timestamp(), TimestampMs(1_020));
        let expected = vec![
            (101, 990, Some(b"b".to_vec()), true),
            (102, 1_020, Some(b"a".to_vec()), true),
            (103, 1_010, None, true),
        ];
        assert_eq!(decoded(&cleaned), expected);
        let walked: Vec<(i64, i64)> = RecordIter::new(RecordBatch::new_unchecked(&cleaned))
            .map(|r| (r.offset.0, r.timestamp.0))
            .collect();
        assert_eq!(walked, vec![(101, 990), (102, 1_020), (103, 1_010)]);
        let values = crate::record::key_value::key_values(RecordBatch::new_unchecked(&cleaned));
        assert_eq!(
            values,
            vec![
                (Some(&b"b"[..]), Some(&b"2"[..])),
                (Some(b"a"), Some(b"3")),
                (None, Some(b"4"))
            ]
        );
    }

    #[test]
    fn a_kept_tombstone_gets_the_delete_horizon() {
        let bytes = sample();
        let horizon = TimestampMs(5_000);
        let stamped = rewritten(filter(&bytes, false, Some(horizon), |_| true));
        let header = assert_sound(&stamped);
        assert_eq!(delete_horizon(header), Some(horizon));
        assert_eq!(
            header.attributes.get(),
            BatchHeader::parse(&bytes).unwrap().attributes.get() | DELETE_HORIZON_FLAG
        );
        assert_eq!(header.base_timestamp.get(), 5_000);
        assert_eq!(header.max_timestamp(), TimestampMs(1_030));
        assert_eq!(header.records_count.get(), 5);
        assert_eq!(decoded(&stamped), decoded(&bytes), "timestamps survive");
        assert_eq!(delete_horizon(BatchHeader::parse(&bytes).unwrap()), None);
    }

    #[test]
    fn an_existing_horizon_is_kept() {
        let stamped = rewritten(filter(&sample(), false, Some(TimestampMs(5_000)), |_| true));
        let again = filter(&stamped, false, Some(TimestampMs(9_000)), |_| true);
        assert_eq!(again.filtered, Filtered::Unchanged);
        let cleaned = rewritten(filter(&stamped, false, Some(TimestampMs(9_000)), |r| {
            r.offset != Offset(100)
        }));
        let header = assert_sound(&cleaned);
        assert_eq!(delete_horizon(header), Some(TimestampMs(5_000)));
        assert_eq!(decoded(&cleaned), decoded(&sample())[1..]);
    }

    #[test]
    fn a_control_batch_gets_the_delete_horizon() {
        let marker = EndTxnMarker {
            kind: MarkerKind::Commit,
            coordinator_epoch: 4,
        };
        let bytes = marker.build_batch(ProducerId(7), ProducerEpoch(3), TimestampMs(2_000));
        assert_eq!(
            filter(&bytes, false, None, |_| true).filtered,
            Filtered::Unchanged
        );
        let stamped = rewritten(filter(&bytes, false, Some(TimestampMs(8_000)), |_| true));
        let header = assert_sound(&stamped);
        assert_eq!(delete_horizon(header), Some(TimestampMs(8_000)));
        assert!(header.attributes().is_control() && header.attributes().is_transactional());
        assert_eq!(
            EndTxnMarker::from_batch(RecordBatch::new_unchecked(&stamped)),
            Ok(marker)
        );
        assert_eq!(decoded(&stamped)[0].1, 2_000);
    }

    #[test]
    fn an_emptied_batch_is_removed_or_kept_as_a_bare_header() {
        let bytes = compressed(&sample(), Compression::Lz4, SnappyFraming::Raw);
        let removed = filter(&bytes, false, Some(TimestampMs(5_000)), |_| false);
        assert_eq!(
            removed,
            FilterOutcome {
                filtered: Filtered::Removed,
                kept: 0,
                removed: 5
            }
        );
        let empty = rewritten(filter(&bytes, true, Some(TimestampMs(5_000)), |_| false));
        assert_eq!(empty.len(), BATCH_HEADER_LEN);
        let header = assert_sound(&empty);
        assert_eq!(header.records_count.get(), 0);
        assert_eq!(header.base_offset(), Offset(100));
        assert_eq!(header.last_offset(), Offset(104));
        assert_eq!(header.leader_epoch(), LeaderEpoch(5));
        assert_eq!(
            (header.producer_id.get(), header.producer_epoch.get()),
            (7, 3)
        );
        assert_eq!(header.base_sequence.get(), 10);
        assert_eq!(header.attributes().compression(), Some(Compression::None));
        assert!(header.attributes().is_transactional());
        assert_eq!(delete_horizon(header), None);
        assert_eq!(header.base_timestamp.get(), 1_030);
        assert_eq!(header.max_timestamp(), TimestampMs(1_030));
        assert!(decoded(&empty).is_empty());

        let again = filter(&empty, true, None, |_| true);
        assert_eq!(
            (again.filtered, again.kept, again.removed),
            (Filtered::Unchanged, 0, 0)
        );
        assert_eq!(
            filter(&empty, false, None, |_| true).filtered,
            Filtered::Removed
        );
    }

    #[test]
    fn every_codec_is_filtered_and_written_back_the_same_way() {
        let plain = sample();
        let expected = decoded(&rewritten(filter(
            &plain,
            false,
            None,
            latest_without_tombstone,
        )));
        let cases = [
            (Compression::Gzip, SnappyFraming::Raw),
            (Compression::Snappy, SnappyFraming::Raw),
            (Compression::Snappy, SnappyFraming::Xerial),
            (Compression::Lz4, SnappyFraming::Raw),
            (Compression::Zstd, SnappyFraming::Raw),
        ];
        for (codec, framing) in cases {
            let bytes = compressed(&plain, codec, framing);
            assert_eq!(decoded(&bytes), decoded(&plain), "{codec:?} {framing:?}");
            let cleaned = rewritten(filter(&bytes, false, None, latest_without_tombstone));
            let header = assert_sound(&cleaned);
            assert_eq!(header.attributes().compression(), Some(codec));
            assert_eq!(header.last_offset(), Offset(104));
            if codec == Compression::Snappy {
                assert_eq!(snappy_framing(&cleaned[BATCH_HEADER_LEN..]), framing);
            }
            assert_eq!(decoded(&cleaned), expected, "{codec:?} {framing:?}");
        }
    }

    #[test]
    fn log_append_time_keeps_the_max_timestamp() {
        let mut bytes = sample();
        RecordBatchMut::new_unchecked(&mut bytes).assign_log_append_time(TimestampMs(9_999));
        let cleaned = rewritten(filter(&bytes, false, None, |r| r.offset != Offset(102)));
        let header = assert_sound(&cleaned);
        assert_eq!(header.max_timestamp(), TimestampMs(9_999));
        assert_eq!(
            header.attributes().timestamp_type(),
            TimestampType::LogAppendTime
        );
        assert!(decoded(&cleaned).iter().all(|record| record.1 == 9_999));
        let stored: Vec<i64> = RecordIter::new(RecordBatch::new_unchecked(&cleaned))
            .map(|r| r.timestamp.0)
            .collect();
        assert_eq!(stored, vec![1_000, 990, 1_010, 1_030]);
    }

    /// One record by hand, with headers, which the builder does not write.
    fn record(offset_delta: i64, key_len: i64, headers: &[KeyValue<'_>]) -> Vec<u8> {
        let mut body = vec![0];
        write_varlong(&mut body, 0);
        write_varlong(&mut body, offset_delta);
        write_varlong(&mut body, key_len);
        body.extend(std::iter::repeat_n(b'k', key_len.max(0) as usize));
        write_varlong(&mut body, 1);
        body.push(b'v');
        write_varlong(&mut body, headers.len() as i64);
        for (key, value) in headers {
            for part in [key, value] {
                match part {
                    Some(bytes) => {
                        write_varlong(&mut body, bytes.len() as i64);
                        body.extend_from_slice(bytes);
                    }
                    None => write_varlong(&mut body, -1),
                }
            }
        }
        let mut out = Vec::new();
        write_varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn record_headers_are_copied_byte_for_byte() {
        let first = record(0, 1, &[(Some(b"h"), Some(b"x")), (Some(b"n"), None)]);
        let second = record(1, 2, &[(Some(b"trace"), Some(b"42"))]);
        let bytes = with_section(&sample(), &[first.clone(), second.clone()].concat(), |h| {
            h.records_count.set(2);
            h.last_offset_delta.set(1);
        });
        let cleaned = rewritten(filter(&bytes, false, None, |r| r.offset == Offset(101)));
        assert_eq!(&cleaned[BATCH_HEADER_LEN..], &second[..]);

        let records = BatchRecords::new(RecordBatch::new_unchecked(&bytes), LIMIT).unwrap();
        let views: Vec<RecordView<'_>> = records.iter().map(Result::unwrap).collect();
        assert_eq!(views[0].value, Some(&b"v"[..]));
        let headers: Vec<_> = views[0].headers.iter().collect();
        assert_eq!(
            headers,
            vec![(&b"h"[..], Some(&b"x"[..])), (&b"n"[..], None)]
        );
        assert_eq!(views[1].headers.len(), 1);
        assert!(
            views[1]
                .headers
                .iter()
                .eq([(&b"trace"[..], Some(&b"42"[..]))])
        );
    }

    fn error_of(bytes: &[u8]) -> CompactionError {
        filter_batch(RecordBatch::new_unchecked(bytes), LIMIT, true, None, |_| {
            true
        })
        .unwrap_err()
    }

    #[test]
    fn a_malformed_record_is_an_error() {
        let sample = sample();
        let too_many = with_section(&sample, &sample[BATCH_HEADER_LEN..], |h| {
            h.records_count.set(6)
        });
        assert!(matches!(
            error_of(&too_many),
            CompactionError::MalformedRecord {
                index: 5,
                count: 6,
                ..
            }
        ));
        let too_few = with_section(&sample, &sample[BATCH_HEADER_LEN..], |h| {
            h.records_count.set(4)
        });
        assert!(matches!(
            error_of(&too_few),
            CompactionError::TrailingBytes { count: 4, .. }
        ));
        let negative = with_section(&sample, &[], |h| h.records_count.set(-1));
        assert_eq!(error_of(&negative), CompactionError::NegativeCount(-1));

        let cases = [
            record(0, 5, &[]),
            record(1, 1, &[]),
            record(0, -2, &[]),
            record(0, 1, &[(None, Some(b"x"))]),
        ];
        for (case, section) in cases.iter().enumerate() {
            let mut section = section.clone();
            if case == 0 {
                // Key length 5, but the record's length only covers a shorter body.
                section[0] -= 2;
                section.truncate(section.len() - 2);
            }
            let bytes = with_section(&sample, &section, |h| {
                h.records_count.set(1);
                h.last_offset_delta.set(0);
            });
            assert!(
                matches!(
                    error_of(&bytes),
                    CompactionError::MalformedRecord { index: 0, .. }
                ),
                "case {case}: {:?}",
                error_of(&bytes)
            );
        }

        let zstd = compressed(&sample, Compression::Zstd, SnappyFraming::Raw);
        let cut = with_section(&zstd, &zstd[BATCH_HEADER_LEN..zstd.len() - 8], |_| {});
        assert!(matches!(error_of(&cut), CompactionError::Decompress(_)));
        let reserved = with_section(&sample, &sample[BATCH_HEADER_LEN..], |h| {
            h.attributes.set(h.attributes.get() | 6)
        });
        assert_eq!(error_of(&reserved), CompactionError::UnknownCompression(6));
    }
}
