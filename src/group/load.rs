//! Rebuilds a shard's groups from a `__consumer_offsets` partition when the shard
//! opens it: every offset commit and group metadata record in log order, the
//! latest per key winning and tombstones deleting. Offsets in a producer's
//! transactional batches are held pending until that producer's marker (a
//! control batch) commits or drops them; those without a marker yet stay
//! pending after the load, for the marker still to come.

use crate::group::coordinator_key::OFFSETS_TOPIC;
use crate::group::host::GroupHost;
use crate::group::ids::GroupId;
use crate::group::records::{GroupValue, OffsetValue, RecordKey};
use crate::group::state::Group;
use crate::group::txn_offsets;
use crate::partition::{Isolation, Partition};
use crate::record::batch::BatchHeader;
use crate::record::control::{EndTxnMarker, MarkerKind};
use crate::record::varint::read_varlong;
use crate::record::{Compression, RecordBatch};
use crate::types::{ProducerId, TimestampMs};

/// A record's key and value (`None`: null).
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// How much of the log one read brings in.
const READ_BYTES: u64 = 1 << 20;

/// Reads `log` (partition `partition` of `__consumer_offsets`) into the shard's
/// groups and marks the partition loaded, so its groups start being served.
pub async fn load_partition(host: &dyn GroupHost, partition: i32, log: &Partition) {
    let limits = host.config().group_limits();
    let now_ms = TimestampMs::now().0;
    let mut offset = log.log_start_offset();
    let end = log.high_watermark();
    let mut records = 0usize;
    while offset < end {
        let bytes = match log
            .read(offset, READ_BYTES, Isolation::ReadUncommitted, true)
            .await
        {
            Ok(outcome) if outcome.bytes > 0 => {
                offset = outcome.next_offset;
                outcome.to_vec().await
            }
            Ok(_) => break,
            Err(error) => Err(error),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(partition, %error, "reading __consumer_offsets failed; groups of this partition start from what was read");
                break;
            }
        };
        let coordinator = host.coordinator();
        let mut groups = coordinator.groups.borrow_mut();
        let mut pending = coordinator.txn_offsets.borrow_mut();
        for batch in batches(&bytes) {
            let header = batch.header();
            let producer = ProducerId(header.producer_id.get());
            if header.attributes().is_control() {
                match EndTxnMarker::from_batch(batch) {
                    Ok(marker) => txn_offsets::complete(
                        &mut groups,
                        &mut pending,
                        partition,
                        producer,
                        marker.kind == MarkerKind::Commit,
                    ),
                    Err(error) => {
                        tracing::warn!(partition, offset = %header.base_offset(), %error, "skipping a control batch");
                    }
                }
                continue;
            }
            let transactional = header.attributes().is_transactional();
            if header.attributes().compression() != Some(Compression::None) {
                tracing::warn!(partition, offset = %header.base_offset(), "skipping a compressed batch in {OFFSETS_TOPIC}: the broker writes none");
                continue;
            }
            for (key, value) in key_values(batch.records(), header.records_count.get()) {
                records += 1;
                let Some(key) = key else { continue };
                match RecordKey::decode(key) {
                    Ok(RecordKey::Offset {
                        group,
                        topic,
                        partition: index,
                    }) => {
                        let id = GroupId(group);
                        let key = (topic, index);
                        match value.map(OffsetValue::decode) {
                            Some(Ok(value)) if transactional => {
                                if let Err(limit) =
                                    pending.check_room(&id, producer, std::slice::from_ref(&key))
                                {
                                    tracing::warn!(partition, group = %id.0, %limit, "dropping a pending transactional offset");
                                    continue;
                                }
                                groups
                                    .entry(id.clone())
                                    .or_insert_with(|| Group::new(id.clone(), limits, now_ms));
                                pending.add(
                                    partition,
                                    &id,
                                    producer,
                                    [(key, value)],
                                    header.base_offset(),
                                );
                            }
                            Some(Ok(value)) => groups
                                .entry(id.clone())
                                .or_insert_with(|| Group::new(id, limits, now_ms))
                                .offsets
                                .put(key, value, header.base_offset()),
                            Some(Err(error)) => {
                                tracing::warn!(partition, %error, "skipping an offset record");
                            }
                            None if transactional => {
                                pending.remove_partitions(&id, std::slice::from_ref(&key));
                            }
                            None => {
                                if let Some(group) = groups.get_mut(&id) {
                                    group.offsets.remove(&key);
                                }
                            }
                        }
                    }
                    Ok(RecordKey::Group { group }) => {
                        let id = GroupId(group);
                        match value.map(GroupValue::decode) {
                            Some(Ok(value)) => {
                                let mut restored =
                                    Group::restore(id.clone(), limits, &value, now_ms);
                                if let Some(previous) = groups.remove(&id) {
                                    restored.offsets = previous.offsets;
                                }
                                groups.insert(id, restored);
                            }
                            Some(Err(error)) => {
                                tracing::warn!(partition, %error, "skipping a group record");
                            }
                            None => {
                                groups.remove(&id);
                                pending.remove_group(&id);
                            }
                        }
                    }
                    Err(error) => tracing::warn!(partition, %error, "skipping a record"),
                }
            }
        }
    }
    host.coordinator().mark_loaded(partition);
    tracing::debug!(partition, records, "loaded {OFFSETS_TOPIC}");
}

/// The whole batches in `bytes`, as the log returns them.
fn batches(mut bytes: &[u8]) -> impl Iterator<Item = RecordBatch<'_>> {
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
/// first malformed record.
fn key_values(mut rest: &[u8], count: i32) -> Vec<KeyValue<'_>> {
    let mut out = Vec::new();
    for _ in 0..count.max(0) {
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
        let first = build_batch(&[
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
        let second = build_batch(&[NewRecord {
            key: None,
            value: Some(b"v3"),
            timestamp_ms: 3,
        }]);
        let mut bytes = first.clone();
        bytes.extend_from_slice(&second);
        let found: Vec<_> = batches(&bytes)
            .flat_map(|b| key_values(b.records(), b.header().records_count.get()))
            .collect();
        assert_eq!(
            found,
            vec![
                (Some(&b"k1"[..]), Some(&b"v1"[..])),
                (Some(&b"k2"[..]), None),
                (None, Some(&b"v3"[..])),
            ]
        );
        // A torn second batch is not returned.
        assert_eq!(batches(&bytes[..bytes.len() - 1]).count(), 1);
    }
}
