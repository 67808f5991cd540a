//! The transactional requests a coordinator serves, one type per operation,
//! each run on the shard owning the transactional id's `__transaction_state`
//! partition: the checks of Kafka's TransactionCoordinator, then one durable
//! transition.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::protocol::error_code::ErrorCode;
use crate::txn::coordinator::{MAX_TXN_IDS_PER_SHARD, owned_partition, transition};
use crate::txn::host::TxnHost;
use crate::txn::state::{
    AddPartitionsPlan, EndTxnPlan, InitPlan, TxnError, TxnMetadata, TxnPartition, TxnVersion,
    validate_timeout,
};
use crate::txn::{completion, expiry};
use crate::types::{ProducerEpoch, ProducerId, TimestampMs};

/// InitProducerId with a transactional id.
#[derive(Debug)]
pub struct InitTxnProducer {
    pub transactional_id: String,
    pub timeout_ms: i32,
    /// The producer id and epoch a v3+ client sends to recover (KIP-360).
    pub expected: Option<(ProducerId, ProducerEpoch)>,
}

/// AddPartitionsToTxn, and AddOffsetsToTxn with the group's
/// `__consumer_offsets` partition; with `transaction.version` 2 also the
/// implicit adds of Produce v12 and TxnOffsetCommit v5.
#[derive(Debug)]
pub struct AddToTxn {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub partitions: BTreeSet<TxnPartition>,
    /// The protocol the producer speaks: TV_2 for the implicit adds and the
    /// broker form of AddPartitionsToTxn, TV_0 for the client requests.
    pub client_version: TxnVersion,
}

/// The verify-only check a partition leader makes before a producer's first
/// transactional batch of a transaction on a partition (KIP-890 part 1): which
/// of `partitions` are not in the ongoing transaction.
#[derive(Debug)]
pub struct VerifyTxn {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub partitions: BTreeSet<TxnPartition>,
}

/// EndTxn.
#[derive(Debug)]
pub struct EndTxn {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub commit: bool,
    /// TV_2 for EndTxn v5: every commit and abort bumps the epoch, and the
    /// answer carries the producer id and epoch the client goes on with.
    pub client_version: TxnVersion,
}

impl InitTxnProducer {
    pub async fn serve(
        self,
        host: &Rc<dyn TxnHost>,
    ) -> Result<(ProducerId, ProducerEpoch), ErrorCode> {
        expiry::ensure_task(host);
        let max_ms = host.broker_config().transaction_max_timeout_ms;
        validate_timeout(self.timeout_ms, max_ms).map_err(|error| error.error_code())?;
        let id = self.transactional_id.as_str();
        owned_partition(host.as_ref(), id)?;
        let known = host.txn_coordinator().ids.borrow().contains_key(id);
        if !known {
            let producer_id = allocate(host).await?;
            let mut ids = host.txn_coordinator().ids.borrow_mut();
            if !ids.contains_key(id) && ids.len() >= MAX_TXN_IDS_PER_SHARD {
                tracing::warn!(
                    transactional_id = id,
                    "too many transactional ids on this shard"
                );
                return Err(ErrorCode::CoordinatorNotAvailable);
            }
            let now = TimestampMs::now();
            ids.entry(self.transactional_id.clone()).or_insert_with(|| {
                TxnMetadata::new(
                    self.transactional_id.clone(),
                    producer_id,
                    self.timeout_ms,
                    now,
                )
            });
        }
        let plan = host
            .txn_coordinator()
            .ids
            .borrow()
            .get(id)
            .ok_or(ErrorCode::ConcurrentTransactions)?
            .plan_init_producer_id(self.expected)
            .map_err(|error| error.error_code())?;
        let now = TimestampMs::now();
        let timeout_ms = self.timeout_ms;
        let expected_epoch = self.expected.map(|(_, epoch)| epoch);
        let transit = match plan {
            InitPlan::BumpEpoch => {
                transition(host.as_ref(), id, |metadata| {
                    metadata.prepare_increment_producer_epoch(timeout_ms, expected_epoch, now)
                })
                .await?
            }
            InitPlan::RotateProducerId => {
                let producer_id = allocate(host).await?;
                transition(host.as_ref(), id, |metadata| {
                    metadata.prepare_producer_id_rotation(
                        producer_id,
                        timeout_ms,
                        now,
                        expected_epoch.is_some(),
                    )
                })
                .await?
            }
            InitPlan::FenceAndAbort => {
                // The new epoch fences the old producer and is never returned:
                // the client retries on CONCURRENT_TRANSACTIONS once the abort
                // completed and gets the next one.
                transition(host.as_ref(), id, |metadata| {
                    let version = metadata.client_version;
                    metadata.prepare_fence_abort(version, now)
                })
                .await?;
                completion::spawn(Rc::clone(host), self.transactional_id);
                return Err(ErrorCode::ConcurrentTransactions);
            }
        };
        Ok((transit.producer_id, transit.producer_epoch))
    }
}

async fn allocate(host: &Rc<dyn TxnHost>) -> Result<ProducerId, ErrorCode> {
    Rc::clone(host)
        .allocate_producer_id()
        .await
        .ok_or(ErrorCode::CoordinatorNotAvailable)
}

/// How long AddPartitionsToTxn and AddOffsetsToTxn wait for the producer's
/// previous transaction to complete before answering CONCURRENT_TRANSACTIONS.
/// A client's first add of a transaction usually arrives while the markers of
/// the one it just committed are being written (a few fsyncs), and librdkafka
/// backs off 100 ms on CONCURRENT_TRANSACTIONS: waiting here instead answers as
/// soon as the completion is durable.
const COMPLETION_WAIT: Duration = Duration::from_millis(50);
/// Transitions waited through at most within `COMPLETION_WAIT`.
const COMPLETION_WAIT_ROUNDS: usize = 64;

impl AddToTxn {
    pub async fn serve(self, host: &Rc<dyn TxnHost>) -> ErrorCode {
        let id = self.transactional_id.as_str();
        if let Err(error) = owned_partition(host.as_ref(), id) {
            return error;
        }
        let deadline = Instant::now() + COMPLETION_WAIT;
        let mut plan = self.plan(host.as_ref());
        for _ in 0..COMPLETION_WAIT_ROUNDS {
            let now = Instant::now();
            if plan != Err(ErrorCode::ConcurrentTransactions) || now >= deadline {
                break;
            }
            futures_lite::future::or(host.txn_coordinator().next_transition(), async {
                glommio::timer::sleep(deadline - now).await;
            })
            .await;
            plan = self.plan(host.as_ref());
        }
        // No await between the plan and the prepare: nothing changes in between.
        match plan {
            Err(error) => error,
            Ok(AddPartitionsPlan::AlreadyAdded) => ErrorCode::None,
            Ok(AddPartitionsPlan::Add) => {
                let now = TimestampMs::now();
                let added = self.partitions;
                let client_version = self.client_version;
                match transition(host.as_ref(), id, |metadata| {
                    metadata.prepare_add_partitions(added, now, client_version)
                })
                .await
                {
                    Ok(_) => ErrorCode::None,
                    Err(error) => error,
                }
            }
        }
    }
}

impl AddToTxn {
    fn plan(&self, host: &dyn TxnHost) -> Result<AddPartitionsPlan, ErrorCode> {
        match host
            .txn_coordinator()
            .ids
            .borrow()
            .get(&self.transactional_id)
        {
            None => Err(ErrorCode::InvalidProducerIdMapping),
            Some(metadata) => metadata
                .plan_add_partitions(self.producer_id, self.producer_epoch, &self.partitions)
                .map_err(|error| error.error_code()),
        }
    }
}

impl VerifyTxn {
    pub fn serve(self, host: &Rc<dyn TxnHost>) -> Result<BTreeSet<TxnPartition>, ErrorCode> {
        owned_partition(host.as_ref(), &self.transactional_id)?;
        host.txn_coordinator()
            .ids
            .borrow()
            .get(&self.transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?
            .verify_partitions(self.producer_id, self.producer_epoch, &self.partitions)
            .map_err(|error| error.error_code())
    }
}

impl EndTxn {
    /// The producer id and epoch the client goes on with: with TV_2 the bumped
    /// epoch, or a new producer id at epoch 0 when the bump exhausted the
    /// epochs; otherwise the unchanged ones.
    pub async fn serve(
        self,
        host: &Rc<dyn TxnHost>,
    ) -> Result<(ProducerId, ProducerEpoch), ErrorCode> {
        let id = self.transactional_id.as_str();
        owned_partition(host.as_ref(), id)?;
        let plan = |metadata: &TxnMetadata| {
            metadata.plan_end_txn(
                self.producer_id,
                self.producer_epoch,
                self.commit,
                self.client_version,
            )
        };
        let (planned, current) = {
            let ids = host.txn_coordinator().ids.borrow();
            let metadata = ids.get(id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
            let planned = plan(metadata).map_err(|error| error.error_code())?;
            (planned, (metadata.producer_id, metadata.producer_epoch))
        };
        let EndTxnPlan::Prepare {
            state,
            needs_new_producer_id,
            no_partition_added,
        } = planned
        else {
            // A retry of an EndTxn that completed.
            return Ok(current);
        };
        let next_producer_id = if needs_new_producer_id {
            allocate(host).await?
        } else {
            ProducerId::NONE
        };
        let now = TimestampMs::now();
        let client_version = self.client_version;
        let transit = transition(host.as_ref(), id, |metadata| {
            // The allocation awaited: the id may have moved on since the plan.
            if plan(metadata)? != planned {
                return Err(TxnError::ConcurrentTransactions);
            }
            metadata.prepare_abort_or_commit(
                state,
                client_version,
                next_producer_id,
                now,
                no_partition_added,
            )
        })
        .await?;
        completion::spawn(Rc::clone(host), self.transactional_id);
        if transit.next_producer_id == ProducerId::NONE {
            Ok((transit.producer_id, transit.producer_epoch))
        } else {
            Ok((transit.next_producer_id, ProducerEpoch(0)))
        }
    }
}
