//! Rebuilds a shard's groups from a `__consumer_offsets` partition when the shard
//! opens it: every offset commit and group metadata record in log order, the
//! latest per key winning and tombstones deleting. Offsets in a producer's
//! transactional batches are held pending until that producer's marker (a
//! control batch) commits or drops them; those without a marker yet stay
//! pending after the load, for the marker still to come.

use std::collections::BTreeMap;

use crate::group::coordinator_key::OFFSETS_TOPIC;
use crate::group::host::GroupHost;
use crate::group::ids::GroupId;
use crate::group::records::{GroupValue, OffsetValue, RecordKey};
use crate::group::state::{Group, GroupLimits};
use crate::group::txn_offsets::{self, PendingTxnOffsets};
use crate::partition::{Isolation, Partition};
use crate::record::control::{EndTxnMarker, MarkerKind};
use crate::record::key_value::{batches, key_values};
use crate::record::{Compression, RecordBatch};
use crate::types::{ProducerId, TimestampMs};

/// How much of the log one read brings in.
const READ_BYTES: u64 = 1 << 20;

/// Reads `log` (partition `partition` of `__consumer_offsets`) into the shard's
/// groups and marks the partition loaded, so its groups start being served.
pub async fn load_partition(host: &dyn GroupHost, partition: i32, log: &Partition) {
    let limits = host.config().group_limits();
    let now_ms = TimestampMs::now().0;
    let mut offset = log.log_start_offset();
    // A new leader's log is the partition's from now on, committed or not
    // yet (as Kafka's coordinators load to the log end).
    let end = log.log_end_offset();
    let mut records = 0usize;
    while offset < end {
        let bytes = match log.read(offset, READ_BYTES, Isolation::LogEnd, true).await {
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
            records += apply_batch(&mut groups, &mut pending, partition, limits, now_ms, batch);
        }
    }
    host.coordinator().mark_loaded(partition);
    tracing::debug!(partition, records, "loaded {OFFSETS_TOPIC}");
}

/// Applies one batch of the log, in log order, to the shard's groups and
/// pending transactional offsets; returns how many records it held.
fn apply_batch(
    groups: &mut BTreeMap<GroupId, Group>,
    pending: &mut PendingTxnOffsets,
    partition: i32,
    limits: GroupLimits,
    now_ms: i64,
    batch: RecordBatch<'_>,
) -> usize {
    let header = batch.header();
    let producer = ProducerId(header.producer_id.get());
    if header.attributes().is_control() {
        match EndTxnMarker::from_batch(batch) {
            Ok(marker) => txn_offsets::complete(
                groups,
                pending,
                partition,
                producer,
                marker.kind == MarkerKind::Commit,
            ),
            Err(error) => {
                tracing::warn!(partition, offset = %header.base_offset(), %error, "skipping a control batch");
            }
        }
        return 0;
    }
    let transactional = header.attributes().is_transactional();
    if header.attributes().compression() != Some(Compression::None) {
        tracing::warn!(partition, offset = %header.base_offset(), "skipping a compressed batch in {OFFSETS_TOPIC}: the broker writes none");
        return 0;
    }
    let records = key_values(batch);
    let count = records.len();
    for (key, value) in records {
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
                            Some(header.base_offset()),
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
                        let mut restored = Group::restore(id.clone(), limits, &value, now_ms);
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
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::attributes::Attributes;
    use crate::record::batch::BatchHeader;
    use crate::record::builder::{BatchWriter, NewRecord, build_batch, build_batch_with};
    use crate::record::control::MarkerKind;
    use crate::types::ProducerEpoch;
    use zerocopy::FromBytes;

    /// An offset commit batch for group "g" as the coordinator writes it, at
    /// `base_offset`, transactional if a producer is given.
    fn commit_batch(base_offset: i64, producer: Option<i64>, offsets: &[(i32, i64)]) -> Vec<u8> {
        let records: Vec<(Vec<u8>, Vec<u8>)> = offsets
            .iter()
            .map(|&(partition, offset)| {
                let key = RecordKey::Offset {
                    group: "g".into(),
                    topic: "t".into(),
                    partition,
                };
                let value = OffsetValue {
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp: 1,
                };
                (key.encode(), value.encode())
            })
            .collect();
        let new_records: Vec<NewRecord<'_>> = records
            .iter()
            .map(|(key, value)| NewRecord {
                key: Some(key),
                value: Some(value),
                timestamp_ms: 1,
            })
            .collect();
        let writer = match producer {
            Some(id) => BatchWriter {
                attributes: Attributes(0).with_transactional(),
                producer_id: ProducerId(id),
                producer_epoch: ProducerEpoch(0),
                base_sequence: -1,
            },
            None => BatchWriter::NONE,
        };
        at(base_offset, build_batch_with(&new_records, writer))
    }

    fn marker_batch(base_offset: i64, producer: i64, kind: MarkerKind) -> Vec<u8> {
        let marker = EndTxnMarker {
            kind,
            coordinator_epoch: 0,
        };
        at(
            base_offset,
            marker.build_batch(ProducerId(producer), ProducerEpoch(0), TimestampMs(1)),
        )
    }

    /// The batch as the log stored it at `base_offset` (outside the CRC).
    fn at(base_offset: i64, mut batch: Vec<u8>) -> Vec<u8> {
        BatchHeader::mut_from_prefix(&mut batch)
            .expect("header")
            .0
            .base_offset
            .set(base_offset);
        batch
    }

    #[test]
    fn transactional_offsets_wait_for_their_marker_and_lose_to_later_plain_commits() {
        let limits = crate::config::BrokerConfig::default().group_limits();
        let log = [
            commit_batch(0, None, &[(0, 5)]),
            commit_batch(1, Some(7), &[(0, 9), (1, 3)]),
            commit_batch(3, Some(8), &[(1, 4)]),
            // A plain commit of partition 1 after producer 7's transaction.
            commit_batch(4, None, &[(1, 6)]),
            marker_batch(5, 7, MarkerKind::Commit),
            marker_batch(6, 8, MarkerKind::Abort),
            // Producer 9's transaction has no marker yet.
            commit_batch(7, Some(9), &[(2, 1)]),
        ]
        .concat();
        let mut groups = BTreeMap::new();
        let mut pending = PendingTxnOffsets::default();
        let records: usize = batches(&log)
            .map(|batch| apply_batch(&mut groups, &mut pending, 0, limits, 0, batch))
            .sum();
        assert_eq!(records, 6, "markers hold no offset records");
        let offsets = &groups[&GroupId("g".into())].offsets;
        assert_eq!(offsets.get("t", 0).map(|v| v.offset), Some(9));
        assert_eq!(offsets.get("t", 1).map(|v| v.offset), Some(6));
        assert!(offsets.get("t", 2).is_none());
        assert_eq!(pending.len(), 1);
        assert!(pending.is_pending(&GroupId("g".into()), &("t".into(), 2)));
        // The marker still to come completes it.
        txn_offsets::complete(&mut groups, &mut pending, 0, ProducerId(9), true);
        let offsets = &groups[&GroupId("g".into())].offsets;
        assert_eq!(offsets.get("t", 2).map(|v| v.offset), Some(1));
        assert!(pending.is_empty());
    }

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
        let found: Vec<_> = batches(&bytes).flat_map(key_values).collect();
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
