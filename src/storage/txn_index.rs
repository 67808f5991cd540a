//! The aborted-transaction index (`.txnindex`), one per segment, in Kafka's
//! format: a plain sequence of 34-byte AbortedTxn entries (version INT16 = 0,
//! producer id INT64, first offset INT64, last offset INT64, last stable offset
//! INT64, big-endian), one per abort marker, in the order the markers were
//! appended. A `read_committed` fetch lists from it the aborted transactions its
//! range overlaps, so the client can drop their records.
//!
//! Only the byte format and the searches live here; the file itself is the
//! log's. Kafka's reader silently ignores a partial last entry; here a torn
//! file is an error, so recovery rebuilds the index instead of serving a
//! possibly incomplete list.

use crate::types::{Offset, ProducerId};

/// Bytes per entry.
pub const ENTRY_LEN: usize = 34;
/// The only entry version Kafka defines.
const VERSION: i16 = 0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnIndexError {
    #[error("transaction index of {len} bytes ends with a torn entry ({entries} whole)")]
    Torn { len: usize, entries: usize },
    #[error("unsupported aborted transaction version {version} at entry {index}")]
    Version { index: usize, version: i16 },
}

/// One aborted transaction of a producer on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: ProducerId,
    /// The transaction's first offset on this partition.
    pub first_offset: Offset,
    /// The offset of its abort marker.
    pub last_offset: Offset,
    /// The partition's last stable offset once the marker was appended: no open
    /// transaction that started before it remains, which ends searches early.
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.0.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.0.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.0.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.0.to_be_bytes());
        out
    }

    /// `index` only names the entry in the error.
    pub fn decode(entry: &[u8; ENTRY_LEN], index: usize) -> Result<AbortedTxn, TxnIndexError> {
        let version = i16::from_be_bytes([entry[0], entry[1]]);
        if version != VERSION {
            return Err(TxnIndexError::Version { index, version });
        }
        let long = |at: usize| i64::from_be_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
        Ok(AbortedTxn {
            producer_id: ProducerId(long(2)),
            first_offset: Offset(long(10)),
            last_offset: Offset(long(18)),
            last_stable_offset: Offset(long(26)),
        })
    }
}

/// The bytes of an index file holding `entries`.
pub fn encode_entries(entries: &[AbortedTxn]) -> Vec<u8> {
    entries.iter().flat_map(AbortedTxn::encode).collect()
}

/// Every entry of an index file's bytes.
pub fn decode_entries(bytes: &[u8]) -> Result<Vec<AbortedTxn>, TxnIndexError> {
    let chunks = bytes.chunks_exact(ENTRY_LEN);
    if !chunks.remainder().is_empty() {
        return Err(TxnIndexError::Torn {
            len: bytes.len(),
            entries: bytes.len() / ENTRY_LEN,
        });
    }
    chunks
        .enumerate()
        .map(|(index, chunk)| AbortedTxn::decode(chunk.try_into().expect("exact chunk"), index))
        .collect()
}

/// The aborted transactions overlapping a fetch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AbortedSearch {
    pub aborted: Vec<AbortedTxn>,
    /// No later segment's index can add to the list: stop searching.
    pub complete: bool,
}

/// Kafka's TransactionIndex.collectAbortedTxns over one segment's entries: the
/// transactions with data in `[fetch_start, upper_bound)` (last offset at or
/// after the start, first offset before the bound). The search is complete at
/// the first entry whose last stable offset reaches the bound: every transaction
/// that could still overlap started before that LSO, so was aborted before it.
pub fn collect_aborted(
    entries: &[AbortedTxn],
    fetch_start: Offset,
    upper_bound: Offset,
) -> AbortedSearch {
    let mut aborted = Vec::new();
    for entry in entries {
        if entry.last_offset >= fetch_start && entry.first_offset < upper_bound {
            aborted.push(*entry);
        }
        if entry.last_stable_offset >= upper_bound {
            return AbortedSearch {
                aborted,
                complete: true,
            };
        }
    }
    AbortedSearch {
        aborted,
        complete: false,
    }
}

/// How many entries survive truncating the log to `offset` (Kafka's
/// TransactionIndex.truncateTo): those whose marker lies before it. The file is
/// cut to that many times [`ENTRY_LEN`] bytes.
pub fn entries_kept_after_truncation(entries: &[AbortedTxn], offset: Offset) -> usize {
    entries
        .iter()
        .position(|entry| entry.last_offset >= offset)
        .unwrap_or(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(producer),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    #[test]
    fn entries_have_kafkas_layout() {
        let entry = txn(7, 100, 150, 90);
        let mut expected = vec![0, 0];
        for value in [7i64, 100, 150, 90] {
            expected.extend_from_slice(&value.to_be_bytes());
        }
        assert_eq!(entry.encode().to_vec(), expected);
        assert_eq!(expected.len(), ENTRY_LEN);
        assert_eq!(AbortedTxn::decode(&entry.encode(), 0), Ok(entry));
    }

    #[test]
    fn files_round_trip_and_torn_or_unknown_entries_are_refused() {
        let entries = vec![txn(1, 0, 10, 0), txn(2, 5, 20, 11)];
        let bytes = encode_entries(&entries);
        assert_eq!(bytes.len(), 2 * ENTRY_LEN);
        assert_eq!(decode_entries(&bytes), Ok(entries));
        assert_eq!(decode_entries(&[]), Ok(vec![]));
        assert_eq!(
            decode_entries(&bytes[..ENTRY_LEN + 3]),
            Err(TxnIndexError::Torn {
                len: ENTRY_LEN + 3,
                entries: 1
            })
        );
        let mut future = bytes.clone();
        future[ENTRY_LEN + 1] = 1;
        assert_eq!(
            decode_entries(&future),
            Err(TxnIndexError::Version {
                index: 1,
                version: 1
            })
        );
    }

    #[test]
    fn collects_transactions_overlapping_the_fetch() {
        let entries = [
            txn(1, 0, 10, 0),   // ends before the fetch
            txn(2, 5, 20, 11),  // straddles its start
            txn(3, 25, 30, 21), // inside
            txn(4, 40, 45, 31), // starts at the bound: excluded
        ];
        let search = collect_aborted(&entries, Offset(15), Offset(40));
        assert_eq!(search.aborted, vec![entries[1], entries[2]]);
        assert!(!search.complete, "no entry's LSO reached the bound");

        // An LSO at the bound ends the search, even past later entries.
        let entries = [txn(1, 0, 10, 0), txn(2, 12, 50, 40), txn(3, 41, 60, 51)];
        let search = collect_aborted(&entries, Offset(5), Offset(40));
        assert_eq!(search.aborted, vec![entries[0], entries[1]]);
        assert!(search.complete);

        assert_eq!(
            collect_aborted(&[], Offset(0), Offset(10)),
            AbortedSearch::default()
        );
    }

    #[test]
    fn truncation_keeps_markers_before_the_offset() {
        let entries = [txn(1, 0, 10, 0), txn(2, 5, 20, 11), txn(3, 25, 30, 21)];
        assert_eq!(entries_kept_after_truncation(&entries, Offset(31)), 3);
        assert_eq!(entries_kept_after_truncation(&entries, Offset(20)), 1);
        assert_eq!(entries_kept_after_truncation(&entries, Offset(0)), 0);
    }
}
