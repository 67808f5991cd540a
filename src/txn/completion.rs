//! The second half of ending a transaction: once PrepareCommit/PrepareAbort is
//! durable, every partition of the transaction gets its marker (retried with a
//! bounded backoff), and only then is CompleteCommit/CompleteAbort written, as
//! in Kafka's TransactionMarkerChannelManager.

use std::rc::Rc;
use std::time::Duration;

use crate::protocol::error_code::ErrorCode;
use crate::record::control::MarkerKind;
use crate::txn::coordinator::{coordinator_epoch, owned_partition, transition};
use crate::txn::host::TxnHost;
use crate::txn::markers::{MarkerOutcome, TxnMarkers, outcome};
use crate::txn::state::TxnState;
use crate::types::{ProducerEpoch, ProducerId, TimestampMs};

const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Rounds of marker sends (and Complete writes) before giving up: about ten
/// minutes at the longest backoff. A transaction left decided is completed
/// again when the partition is next loaded.
const MAX_ROUNDS: u32 = 600;

/// Completes the decided transaction of `transactional_id` in the background.
pub fn spawn(host: Rc<dyn TxnHost>, transactional_id: String) {
    glommio::spawn_local(async move { complete(&host, &transactional_id).await }).detach();
}

/// The decision being completed; the id must still be in it for this task to
/// act (nothing else moves an id out of a Prepare state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decision {
    state: TxnState,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
}

fn decision(host: &dyn TxnHost, transactional_id: &str) -> Option<Decision> {
    let ids = host.txn_coordinator().ids.borrow();
    let metadata = ids.get(transactional_id)?;
    let decided = matches!(
        metadata.state,
        TxnState::PrepareCommit | TxnState::PrepareAbort
    ) && metadata.pending_state().is_none();
    decided.then_some(Decision {
        state: metadata.state,
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
    })
}

async fn complete(host: &Rc<dyn TxnHost>, transactional_id: &str) {
    let Some(decided) = decision(host.as_ref(), transactional_id) else {
        return;
    };
    let epoch = match owned_partition(host.as_ref(), transactional_id)
        .and_then(|partition| coordinator_epoch(host.as_ref(), partition))
    {
        Ok(epoch) => epoch,
        Err(error) => {
            tracing::debug!(
                transactional_id,
                ?error,
                "not completing: no longer coordinator"
            );
            return;
        }
    };
    let mut remaining: Vec<_> = {
        let ids = host.txn_coordinator().ids.borrow();
        ids.get(transactional_id)
            .map(|metadata| metadata.partitions.iter().cloned().collect())
            .unwrap_or_default()
    };
    let kind = if decided.state == TxnState::PrepareCommit {
        MarkerKind::Commit
    } else {
        MarkerKind::Abort
    };
    let mut backoff = FIRST_BACKOFF;
    for _ in 0..MAX_ROUNDS {
        if decision(host.as_ref(), transactional_id) != Some(decided) {
            return;
        }
        if !remaining.is_empty() {
            let markers = TxnMarkers {
                producer_id: decided.producer_id,
                producer_epoch: decided.producer_epoch,
                coordinator_epoch: epoch,
                kind,
                partitions: remaining,
            };
            let results = Rc::clone(host).write_txn_markers(markers).await;
            for (partition, error) in &results {
                if !matches!(error, ErrorCode::None) {
                    tracing::debug!(transactional_id, ?partition, ?error, "marker not written");
                }
            }
            remaining = results
                .into_iter()
                .filter(|(_, error)| outcome(*error) == MarkerOutcome::Retry)
                .map(|(partition, _)| partition)
                .collect();
        }
        if remaining.is_empty() {
            let now = TimestampMs::now();
            match transition(host.as_ref(), transactional_id, |metadata| {
                metadata.prepare_complete(now)
            })
            .await
            {
                Ok(_) => return,
                Err(ErrorCode::NotCoordinator) => return,
                Err(error) => {
                    tracing::warn!(
                        transactional_id,
                        ?error,
                        "writing the completed transaction failed; retrying"
                    );
                }
            }
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::error!(
        transactional_id,
        "gave up completing a transaction; it completes when its partition is loaded again"
    );
}
