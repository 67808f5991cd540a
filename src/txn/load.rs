//! Rebuilds a shard's transactional ids from a `__transaction_state` partition
//! when the shard opens it: every record in log order, the latest per id winning
//! and tombstones removing. Transactions found decided but not completed
//! (PrepareCommit/PrepareAbort) get their markers sent again.

use std::rc::Rc;

use crate::partition::{Isolation, Partition};
use crate::record::Compression;
use crate::record::key_value::{batches, key_values};
use crate::txn::TRANSACTION_STATE_TOPIC;
use crate::txn::host::TxnHost;
use crate::txn::log_records::{TxnLogKey, decode_value};
use crate::txn::state::{TxnMetadata, TxnState};
use crate::txn::{completion, expiry};

/// How much of the log one read brings in.
const READ_BYTES: u64 = 1 << 20;

/// Reads `log` (partition `partition` of `__transaction_state`) into the shard's
/// transactional ids, marks the partition loaded, and resumes the completion of
/// every decided transaction.
pub async fn load_partition(host: &Rc<dyn TxnHost>, partition: i32, log: &Partition) {
    let mut offset = log.log_start_offset();
    // A new leader's log is the partition's from now on, committed or not
    // yet (as Kafka's coordinators load to the log end).
    let end = log.log_end_offset();
    let mut records = 0usize;
    let mut loaded: Vec<String> = Vec::new();
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
                tracing::error!(partition, %error, "reading {TRANSACTION_STATE_TOPIC} failed; its ids start from what was read");
                break;
            }
        };
        let mut ids = host.txn_coordinator().ids.borrow_mut();
        for batch in batches(&bytes) {
            let header = batch.header();
            if header.attributes().is_control()
                || header.attributes().compression() != Some(Compression::None)
            {
                continue;
            }
            for (key, value) in key_values(batch) {
                records += 1;
                let Some(Ok(key)) = key.map(TxnLogKey::decode) else {
                    tracing::warn!(partition, "skipping a record without a valid key");
                    continue;
                };
                let id = key.transactional_id;
                match decode_value(value)
                    .map_err(|e| e.to_string())
                    .and_then(|value| {
                        value
                            .map(|value| TxnMetadata::from_log_value(id.clone(), &value))
                            .transpose()
                            .map_err(|e| e.to_string())
                    }) {
                    Ok(Some(metadata)) => {
                        if !ids.contains_key(&id) {
                            loaded.push(id.clone());
                        }
                        ids.insert(id, metadata);
                    }
                    Ok(None) => {
                        ids.remove(&id);
                    }
                    Err(error) => tracing::warn!(partition, %error, "skipping a record"),
                }
            }
        }
    }
    host.txn_coordinator().mark_loaded(partition);
    let decided: Vec<String> = {
        let ids = host.txn_coordinator().ids.borrow();
        loaded
            .into_iter()
            .filter(|id| {
                ids.get(id).is_some_and(|metadata| {
                    matches!(
                        metadata.state,
                        TxnState::PrepareCommit | TxnState::PrepareAbort
                    )
                })
            })
            .collect()
    };
    tracing::debug!(partition, records, "loaded {TRANSACTION_STATE_TOPIC}");
    if !decided.is_empty() {
        tracing::info!(
            partition,
            transactions = decided.len(),
            "completing transactions decided before {TRANSACTION_STATE_TOPIC} was last closed"
        );
    }
    for id in decided {
        completion::spawn(Rc::clone(host), id);
    }
    expiry::ensure_task(host);
}
