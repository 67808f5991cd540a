//! One transactional id's state on its coordinator, as Kafka's TransactionState and
//! TransactionMetadata define it: the eight states with the ids stored in
//! `__transaction_state`, which state may follow which, and pure transitions.
//!
//! A transition happens in two steps, as in Kafka: `prepare_*` checks it, marks
//! the metadata as having a pending transition (so a concurrent request gets
//! CONCURRENT_TRANSACTIONS) and returns a [`TxnTransit`], the new value to write
//! to `__transaction_state`; once that write is durable, `complete_transition`
//! applies it, or `abort_pending_transition` forgets it if the write failed.
//! The `plan_*` functions are the request checks of Kafka's TransactionCoordinator
//! (which error for which state, producer id and epoch) kept free of I/O so the
//! coordinator only has to allocate producer ids and write.

use std::collections::BTreeSet;

use crate::protocol::error_code::ErrorCode;
use crate::txn::log_records::{TxnLogTopic, TxnLogValue};
use crate::types::{ProducerEpoch, ProducerId, TimestampMs};

/// A partition of a transaction: (topic, partition).
pub type TxnPartition = (String, i32);

/// Kafka's transaction states; `id` is the status byte of TransactionLogValue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|state| state.id() == id)
    }

    /// The name DescribeTransactions and ListTransactions (state filters) use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|state| state.name() == name)
    }

    /// The states this one may follow. PrepareAbort may also follow Empty and the
    /// Complete states: with `transaction.version` 2 a client unsure of the
    /// server's state aborts anyway (Kafka 4).
    pub fn valid_previous_states(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    pub fn can_follow(self, previous: TxnState) -> bool {
        self.valid_previous_states().contains(&previous)
    }

    /// Whether `transactional.id.expiration.ms` may remove an id in this state.
    pub fn is_expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// A transaction is open: its partitions may hold undecided data.
    pub fn has_pending_transaction(self) -> bool {
        matches!(
            self,
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
        )
    }
}

/// A `transaction.version` feature level, as the client used it (KIP-890).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnVersion(pub i16);

impl TxnVersion {
    /// The original protocol.
    pub const TV_0: TxnVersion = TxnVersion(0);
    /// Flexible `__transaction_state` records.
    pub const TV_1: TxnVersion = TxnVersion(1);
    /// An epoch bump on every EndTxn, implicit partition adds.
    pub const TV_2: TxnVersion = TxnVersion(2);

    pub fn supports_epoch_bump(self) -> bool {
        self.0 >= 2
    }

    /// The TransactionLogValue version a coordinator at this level writes.
    pub fn log_value_version(self) -> i16 {
        if self.0 >= 1 { 1 } else { 0 }
    }
}

/// Why a transactional request or transition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("{operation} is not valid in state {state:?}")]
    InvalidTxnState {
        state: TxnState,
        operation: &'static str,
    },
    #[error("another transition of this transactional id is in progress")]
    ConcurrentTransactions,
    #[error("a newer producer with the same transactional id fenced this one")]
    ProducerFenced,
    #[error("the producer epoch is not the current one")]
    InvalidProducerEpoch,
    #[error("the producer id is not the one of this transactional id")]
    InvalidProducerIdMapping,
    #[error("transaction timeout {timeout_ms} ms is not in 1..={max_ms}")]
    InvalidTransactionTimeout { timeout_ms: i32, max_ms: i32 },
    /// A coordinator bug, or a log Sluice cannot have written: never the client's
    /// fault (Kafka throws IllegalStateException here).
    #[error("illegal transaction metadata transition: {0}")]
    Illegal(String),
    #[error("unknown transaction status {0} in __transaction_state")]
    UnknownStatus(i8),
}

impl TxnError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            TxnError::InvalidTxnState { .. } => ErrorCode::InvalidTxnState,
            TxnError::ConcurrentTransactions => ErrorCode::ConcurrentTransactions,
            TxnError::ProducerFenced => ErrorCode::ProducerFenced,
            TxnError::InvalidProducerEpoch => ErrorCode::InvalidProducerEpoch,
            TxnError::InvalidProducerIdMapping => ErrorCode::InvalidProducerIdMapping,
            TxnError::InvalidTransactionTimeout { .. } => ErrorCode::InvalidTransactionTimeout,
            TxnError::Illegal(_) | TxnError::UnknownStatus(_) => ErrorCode::UnknownServerError,
        }
    }
}

/// Clients older than PRODUCER_FENCED (InitProducerId < v4, AddPartitionsToTxn,
/// AddOffsetsToTxn and EndTxn < v2) get INVALID_PRODUCER_EPOCH instead, which
/// they handle the same way; Kafka's KafkaApis does this per request version.
pub fn error_code_for_client(code: ErrorCode, understands_producer_fenced: bool) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && !understands_producer_fenced {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}

/// InitProducerId's timeout check: `0 < timeout <= transaction.max.timeout.ms`.
pub fn validate_timeout(timeout_ms: i32, max_timeout_ms: i32) -> Result<(), TxnError> {
    if timeout_ms > 0 && timeout_ms <= max_timeout_ms {
        Ok(())
    } else {
        Err(TxnError::InvalidTransactionTimeout {
            timeout_ms,
            max_ms: max_timeout_ms,
        })
    }
}

/// Epochs end at `i16::MAX - 1` for clients: `i16::MAX` stays free so the
/// coordinator can always fence the last producer.
pub fn is_epoch_exhausted(epoch: ProducerEpoch) -> bool {
    epoch.0 >= i16::MAX - 1
}

/// The value a prepared transition will write (Kafka's TxnTransitMetadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnTransit {
    pub producer_id: ProducerId,
    /// The producer id before this transition (differs on rotation).
    pub previous_producer_id: ProducerId,
    /// With `transaction.version` 2: the id to switch to once an epoch-exhausting
    /// transaction completes.
    pub next_producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub last_producer_epoch: ProducerEpoch,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    pub start_timestamp: TimestampMs,
    pub last_update_timestamp: TimestampMs,
    pub client_version: TxnVersion,
}

impl TxnTransit {
    /// The record value to write. Like Kafka, Empty is written with a null
    /// partition list, and partitions are grouped by topic.
    pub fn to_log_value(&self) -> TxnLogValue {
        let topics = (self.state != TxnState::Empty).then(|| group_by_topic(&self.partitions));
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            status: self.state.id(),
            topics,
            last_update_timestamp: self.last_update_timestamp,
            start_timestamp: self.start_timestamp,
            client_transaction_version: self.client_version.0,
        }
    }
}

fn group_by_topic(partitions: &BTreeSet<TxnPartition>) -> Vec<TxnLogTopic> {
    let mut topics: Vec<TxnLogTopic> = Vec::new();
    for (topic, partition) in partitions {
        match topics.last_mut() {
            Some(last) if last.topic == *topic => last.partitions.push(*partition),
            _ => topics.push(TxnLogTopic {
                topic: topic.clone(),
                partitions: vec![*partition],
            }),
        }
    }
    topics
}

/// What InitProducerId must do for an existing transactional id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitPlan {
    /// `prepare_increment_producer_epoch`.
    BumpEpoch,
    /// Epochs are exhausted: allocate a producer id, `prepare_producer_id_rotation`.
    RotateProducerId,
    /// A transaction is open: `prepare_fence_abort`, write it, send abort markers,
    /// and answer CONCURRENT_TRANSACTIONS so the client retries.
    FenceAndAbort,
}

/// What AddPartitionsToTxn must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddPartitionsPlan {
    /// Every partition is already in the ongoing transaction: answer at once.
    AlreadyAdded,
    /// `prepare_add_partitions` and write.
    Add,
}

/// What EndTxn must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndTxnPlan {
    /// A retry of an EndTxn that already completed: answer NONE with the current
    /// producer id and epoch.
    AlreadyDone,
    /// `prepare_abort_or_commit` to `state` with `no_partition_added`; allocate a
    /// producer id first when `needs_new_producer_id` (the epoch bump of
    /// `transaction.version` 2 would exhaust the epochs).
    Prepare {
        state: TxnState,
        needs_new_producer_id: bool,
        no_partition_added: bool,
    },
}

/// A transactional id's metadata. The public fields are read freely; change them
/// only through the transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: ProducerId,
    pub previous_producer_id: ProducerId,
    pub next_producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    /// The epoch before the last bump, so a retried InitProducerId is recognised.
    /// Not in the log: after a reload it is `NONE`, as in Kafka.
    pub last_producer_epoch: ProducerEpoch,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the first partition was added; -1 outside a transaction.
    pub start_timestamp: TimestampMs,
    pub last_update_timestamp: TimestampMs,
    pub client_version: TxnVersion,
    pending: Option<TxnState>,
    /// The pending transition is the abort that fences a producer.
    pending_is_fence: bool,
    /// A fencing epoch bump may not have reached the log; do not bump again.
    has_failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// A transactional id seen for the first time: Empty with no epoch yet, so the
    /// first InitProducerId bumps the epoch to 0.
    pub fn new(
        transactional_id: String,
        producer_id: ProducerId,
        timeout_ms: i32,
        now: TimestampMs,
    ) -> TxnMetadata {
        TxnMetadata {
            transactional_id,
            producer_id,
            previous_producer_id: ProducerId::NONE,
            next_producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch::NONE,
            last_producer_epoch: ProducerEpoch::NONE,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp: TimestampMs::NONE,
            last_update_timestamp: now,
            client_version: TxnVersion::TV_0,
            pending: None,
            pending_is_fence: false,
            has_failed_epoch_fence: false,
        }
    }

    /// Metadata as loaded from `__transaction_state`. The partitions of an Empty
    /// record are ignored, as Kafka does.
    pub fn from_log_value(
        transactional_id: String,
        value: &TxnLogValue,
    ) -> Result<TxnMetadata, TxnError> {
        let state = TxnState::from_id(value.status).ok_or(TxnError::UnknownStatus(value.status))?;
        let partitions = match (&value.topics, state) {
            (Some(topics), state) if state != TxnState::Empty => topics
                .iter()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .map(|partition| (topic.topic.clone(), *partition))
                })
                .collect(),
            _ => BTreeSet::new(),
        };
        Ok(TxnMetadata {
            transactional_id,
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            next_producer_id: value.next_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: ProducerEpoch::NONE,
            timeout_ms: value.timeout_ms,
            state,
            partitions,
            start_timestamp: value.start_timestamp,
            last_update_timestamp: value.last_update_timestamp,
            client_version: TxnVersion(value.client_transaction_version),
            pending: None,
            pending_is_fence: false,
            has_failed_epoch_fence: false,
        })
    }

    /// The current state as a transit, e.g. to rewrite it unchanged.
    pub fn current(&self) -> TxnTransit {
        TxnTransit {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            start_timestamp: self.start_timestamp,
            last_update_timestamp: self.last_update_timestamp,
            client_version: self.client_version,
        }
    }

    pub fn pending_state(&self) -> Option<TxnState> {
        self.pending
    }

    pub fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    /// InitProducerId's checks (Kafka's prepareInitProducerIdTransit).
    /// `expected` is the producer id and epoch a v3+ client sends to recover.
    pub fn plan_init_producer_id(
        &self,
        expected: Option<(ProducerId, ProducerEpoch)>,
    ) -> Result<InitPlan, TxnError> {
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if let Some((producer_id, epoch)) = expected {
            // A just-created id, the current producer, or a retry of a rotation
            // whose answer the producer never got.
            let valid = self.producer_epoch == ProducerEpoch::NONE
                || producer_id == self.producer_id
                || (producer_id == self.previous_producer_id && is_epoch_exhausted(epoch));
            if !valid {
                return Err(TxnError::ProducerFenced);
            }
        }
        match self.state {
            TxnState::PrepareAbort | TxnState::PrepareCommit => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::CompleteAbort | TxnState::CompleteCommit | TxnState::Empty => {
                let matches_expected =
                    expected.is_none_or(|(_, epoch)| epoch == self.producer_epoch);
                if self.is_producer_epoch_exhausted() && matches_expected {
                    Ok(InitPlan::RotateProducerId)
                } else {
                    Ok(InitPlan::BumpEpoch)
                }
            }
            TxnState::Ongoing => Ok(InitPlan::FenceAndAbort),
            TxnState::Dead | TxnState::PrepareEpochFence => Err(TxnError::Illegal(format!(
                "{} found in state {:?}",
                self.transactional_id, self.state
            ))),
        }
    }

    /// AddPartitionsToTxn's checks (also AddOffsetsToTxn, with the
    /// `__consumer_offsets` partition of the group).
    pub fn plan_add_partitions(
        &self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        partitions: &BTreeSet<TxnPartition>,
    ) -> Result<AddPartitionsPlan, TxnError> {
        if self.producer_id != producer_id {
            Err(TxnError::InvalidProducerIdMapping)
        } else if self.producer_epoch != epoch {
            Err(TxnError::ProducerFenced)
        } else if self.pending.is_some()
            || matches!(self.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
        {
            Err(TxnError::ConcurrentTransactions)
        } else if self.state == TxnState::Ongoing && partitions.is_subset(&self.partitions) {
            Ok(AddPartitionsPlan::AlreadyAdded)
        } else {
            Ok(AddPartitionsPlan::Add)
        }
    }

    /// The verify-only check a partition leader asks for (KIP-890 part 1): which
    /// of `partitions` are not in the ongoing transaction. An error applies to all.
    pub fn verify_partitions(
        &self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        partitions: &BTreeSet<TxnPartition>,
    ) -> Result<BTreeSet<TxnPartition>, TxnError> {
        if self.producer_id != producer_id {
            Err(TxnError::InvalidProducerIdMapping)
        } else if self.producer_epoch != epoch {
            Err(TxnError::ProducerFenced)
        } else if self.pending.is_some()
            || matches!(self.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
        {
            Err(TxnError::ConcurrentTransactions)
        } else {
            Ok(partitions.difference(&self.partitions).cloned().collect())
        }
    }

    /// EndTxn's checks from a client (Kafka's endTransaction before its write).
    pub fn plan_end_txn(
        &self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        commit: bool,
        client_version: TxnVersion,
    ) -> Result<EndTxnPlan, TxnError> {
        let v2 = self.client_version.supports_epoch_bump();
        // A TV2 retry of an EndTxn that bumped the epoch, or that rotated the
        // producer id because the epoch overflowed.
        let retry_on_epoch_bump = v2 && self.producer_epoch.0 == epoch.0.wrapping_add(1);
        let retry_on_overflow = v2
            && self.previous_producer_id == producer_id
            && epoch.0 == i16::MAX - 1
            && self.producer_epoch.0 == 0;
        let is_retry = retry_on_epoch_bump || retry_on_overflow;
        // With TV2 the same epoch after a completed transaction is the next
        // transaction's EndTxn, and only the retry conditions mark a retry.
        let valid_epoch = if v2 {
            match self.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_epoch_bump,
                TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    is_retry || epoch == self.producer_epoch
                }
                _ => epoch == self.producer_epoch,
            }
        } else {
            epoch == self.producer_epoch
        };
        if self.producer_id != producer_id && !retry_on_overflow {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(TxnError::ProducerFenced);
        }
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        let invalid = Err(TxnError::InvalidTxnState {
            state: self.state,
            operation: if commit { "commit" } else { "abort" },
        });
        let exhausted = client_version.supports_epoch_bump() && self.is_producer_epoch_exhausted();
        // TV2: a client unsure whether its transaction started aborts anyway; the
        // abort bumps the epoch like any other and its "transaction" starts now.
        let empty_abort = Ok(EndTxnPlan::Prepare {
            state: TxnState::PrepareAbort,
            needs_new_producer_id: exhausted,
            no_partition_added: true,
        });
        match (self.state, commit) {
            (TxnState::Ongoing, _) => Ok(EndTxnPlan::Prepare {
                state: if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                },
                needs_new_producer_id: exhausted,
                no_partition_added: false,
            }),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false)
                if !v2 || is_retry =>
            {
                Ok(EndTxnPlan::AlreadyDone)
            }
            (TxnState::CompleteCommit, true) => invalid,
            (TxnState::CompleteCommit | TxnState::CompleteAbort, false)
                if v2 && !is_retry && client_version.supports_epoch_bump() =>
            {
                empty_abort
            }
            (TxnState::Empty, false) if client_version.supports_epoch_bump() => empty_abort,
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            (TxnState::Dead | TxnState::PrepareEpochFence, _) => Err(TxnError::Illegal(format!(
                "{} found in state {:?}",
                self.transactional_id, self.state
            ))),
            _ => invalid,
        }
    }

    /// InitProducerId without an open transaction: the next epoch (Kafka's
    /// prepareIncrementProducerEpoch). A retry with the previous epoch gets the
    /// current one again; any other stale epoch is fenced.
    pub fn prepare_increment_producer_epoch(
        &mut self,
        timeout_ms: i32,
        expected_epoch: Option<ProducerEpoch>,
        now: TimestampMs,
    ) -> Result<TxnTransit, TxnError> {
        if self.is_producer_epoch_exhausted() {
            return Err(TxnError::Illegal(format!(
                "no epoch left for producer id {}",
                self.producer_id.0
            )));
        }
        let bumped = ProducerEpoch(self.producer_epoch.0 + 1);
        let (epoch, last_epoch) = match expected_epoch {
            None => (bumped, ProducerEpoch::NONE),
            Some(expected)
                if self.producer_epoch == ProducerEpoch::NONE
                    || expected == self.producer_epoch =>
            {
                (bumped, self.producer_epoch)
            }
            Some(expected) if expected == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(_) => return Err(TxnError::ProducerFenced),
        };
        let transit = TxnTransit {
            producer_epoch: epoch,
            last_producer_epoch: last_epoch,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp: TimestampMs::NONE,
            last_update_timestamp: now,
            ..self.current()
        };
        self.prepare(transit)
    }

    /// InitProducerId once the epochs are exhausted: a new producer id at epoch 0.
    /// `record_last_epoch` when the client sent its id and epoch, so its retry is
    /// recognised.
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: ProducerId,
        timeout_ms: i32,
        now: TimestampMs,
        record_last_epoch: bool,
    ) -> Result<TxnTransit, TxnError> {
        if self.state.has_pending_transaction() {
            return Err(TxnError::Illegal(
                "cannot rotate producer ids while a transaction is open".into(),
            ));
        }
        let transit = TxnTransit {
            producer_id: new_producer_id,
            producer_epoch: ProducerEpoch(0),
            last_producer_epoch: if record_last_epoch {
                self.producer_epoch
            } else {
                ProducerEpoch::NONE
            },
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp: TimestampMs::NONE,
            last_update_timestamp: now,
            ..self.current()
        };
        self.prepare(transit)
    }

    /// AddPartitionsToTxn: the partitions join the transaction, which starts now
    /// if none was open.
    pub fn prepare_add_partitions(
        &mut self,
        added: impl IntoIterator<Item = TxnPartition>,
        now: TimestampMs,
        client_version: TxnVersion,
    ) -> Result<TxnTransit, TxnError> {
        let start_timestamp = match self.state {
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => now,
            _ => self.start_timestamp,
        };
        let mut partitions = self.partitions.clone();
        partitions.extend(added);
        let transit = TxnTransit {
            state: TxnState::Ongoing,
            partitions,
            start_timestamp,
            last_update_timestamp: now,
            client_version,
            ..self.current()
        };
        self.prepare(transit)
    }

    /// EndTxn: PrepareCommit or PrepareAbort. With `transaction.version` 2 the
    /// epoch is bumped now (the client learns it from the EndTxn answer) and
    /// `next_producer_id` is the id to move to if that exhausted the epochs.
    /// `no_partition_added`: a TV2 abort of an Empty transaction, which starts now.
    pub fn prepare_abort_or_commit(
        &mut self,
        state: TxnState,
        client_version: TxnVersion,
        next_producer_id: ProducerId,
        now: TimestampMs,
        no_partition_added: bool,
    ) -> Result<TxnTransit, TxnError> {
        if !matches!(state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(TxnError::Illegal(format!(
                "EndTxn cannot lead to {state:?}"
            )));
        }
        let (epoch, last_epoch) = if client_version.supports_epoch_bump() {
            // An abort at i16::MAX (only after a fence) is let through without a bump
            // so the id can recover.
            let epoch = if self.producer_epoch.0 == i16::MAX && state == TxnState::PrepareAbort {
                self.producer_epoch
            } else {
                ProducerEpoch(self.producer_epoch.0.saturating_add(1))
            };
            (epoch, self.producer_epoch)
        } else {
            (self.producer_epoch, self.last_producer_epoch)
        };
        let transit = TxnTransit {
            next_producer_id,
            producer_epoch: epoch,
            last_producer_epoch: last_epoch,
            state,
            start_timestamp: if no_partition_added {
                now
            } else {
                self.start_timestamp
            },
            last_update_timestamp: now,
            client_version,
            ..self.current()
        };
        self.prepare(transit)
    }

    /// InitProducerId while a transaction is open: bump the epoch to fence the old
    /// producer and abort its transaction (Kafka's prepareFenceProducerEpoch then
    /// endTransaction(ABORT) with the fenced epoch). PrepareEpochFence itself is
    /// never written; the PrepareAbort returned here is. `server_version` is the
    /// coordinator's `transaction.version`, since no client asked for this abort.
    pub fn prepare_fence_abort(
        &mut self,
        server_version: TxnVersion,
        now: TimestampMs,
    ) -> Result<TxnTransit, TxnError> {
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if !TxnState::PrepareEpochFence.can_follow(self.state) {
            return Err(TxnError::Illegal(format!(
                "cannot fence {} in state {:?}",
                self.transactional_id, self.state
            )));
        }
        // After a failed fence write the epoch was already bumped in memory and
        // never returned to a client: do not bump it twice.
        if !self.has_failed_epoch_fence && self.producer_epoch.0 < i16::MAX {
            self.producer_epoch = ProducerEpoch(self.producer_epoch.0 + 1);
        }
        self.last_producer_epoch = ProducerEpoch::NONE;
        let transit = self.prepare_abort_or_commit(
            TxnState::PrepareAbort,
            server_version,
            ProducerId::NONE,
            now,
            false,
        )?;
        self.pending_is_fence = true;
        Ok(transit)
    }

    /// Markers are written everywhere: CompleteCommit or CompleteAbort, switching
    /// to `next_producer_id` if the EndTxn bump exhausted the epochs.
    pub fn prepare_complete(&mut self, now: TimestampMs) -> Result<TxnTransit, TxnError> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            state => {
                return Err(TxnError::Illegal(format!(
                    "cannot complete a transaction in state {state:?}"
                )));
            }
        };
        let rotate =
            self.client_version.supports_epoch_bump() && self.next_producer_id != ProducerId::NONE;
        let transit = TxnTransit {
            producer_id: if rotate {
                self.next_producer_id
            } else {
                self.producer_id
            },
            producer_epoch: if rotate {
                ProducerEpoch(0)
            } else {
                self.producer_epoch
            },
            next_producer_id: ProducerId::NONE,
            state,
            partitions: BTreeSet::new(),
            last_update_timestamp: now,
            ..self.current()
        };
        self.prepare(transit)
    }

    /// `transactional.id.expiration.ms` elapsed: a tombstone will be written and
    /// the id dropped from memory once it is durable (Dead is never completed).
    pub fn prepare_dead(&mut self) -> Result<TxnTransit, TxnError> {
        let transit = TxnTransit {
            state: TxnState::Dead,
            partitions: BTreeSet::new(),
            ..self.current()
        };
        self.prepare(transit)
    }

    fn prepare(&mut self, mut transit: TxnTransit) -> Result<TxnTransit, TxnError> {
        if let Some(pending) = self.pending {
            return Err(TxnError::Illegal(format!(
                "transition to {:?} while {pending:?} is pending",
                transit.state
            )));
        }
        if transit.producer_id.0 < 0 {
            return Err(TxnError::Illegal(format!(
                "illegal producer id {}",
                transit.producer_id.0
            )));
        }
        // A new id has epoch -1 until its first InitProducerId, and may expire so.
        if transit.state != TxnState::Dead && transit.producer_epoch.0 < 0 {
            return Err(TxnError::Illegal(format!(
                "illegal producer epoch {}",
                transit.producer_epoch.0
            )));
        }
        if !transit.state.can_follow(self.state) {
            return Err(TxnError::Illegal(format!(
                "{:?} cannot follow {:?}",
                transit.state, self.state
            )));
        }
        transit.previous_producer_id = self.producer_id;
        self.pending = Some(transit.state);
        self.pending_is_fence = false;
        Ok(transit)
    }

    /// The write of `transit` is durable: make it the current state (Kafka's
    /// completeTransitionTo, with the same consistency checks).
    pub fn complete_transition(&mut self, transit: TxnTransit) -> Result<(), TxnError> {
        let Some(pending) = self.pending else {
            return Err(TxnError::Illegal("no transition is pending".into()));
        };
        let fail = |why: &str| Err(TxnError::Illegal(format!("{pending:?}: {why}")));
        if pending != transit.state {
            return fail("the transit is not the pending transition");
        }
        match pending {
            TxnState::Empty => {
                if (self.producer_epoch != transit.producer_epoch
                    && !self.valid_epoch_bump(&transit))
                    || !transit.partitions.is_empty()
                    || transit.start_timestamp != TimestampMs::NONE
                {
                    return fail("unexpected epoch, partitions or start time");
                }
            }
            TxnState::Ongoing => {
                if !self.valid_producer_epoch(&transit)
                    || !transit.partitions.is_superset(&self.partitions)
                    || self.timeout_ms != transit.timeout_ms
                {
                    return fail("unexpected epoch, partitions or timeout");
                }
            }
            TxnState::PrepareAbort | TxnState::PrepareCommit => {
                let empty_abort = pending == TxnState::PrepareAbort
                    && transit.client_version.supports_epoch_bump()
                    && matches!(
                        self.state,
                        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    );
                if !self.valid_producer_epoch(&transit)
                    || self.partitions != transit.partitions
                    || self.timeout_ms != transit.timeout_ms
                    || (self.start_timestamp != transit.start_timestamp && !empty_abort)
                {
                    return fail("unexpected epoch, partitions, timeout or start time");
                }
            }
            TxnState::CompleteAbort | TxnState::CompleteCommit => {
                if !self.valid_producer_epoch(&transit)
                    || self.timeout_ms != transit.timeout_ms
                    || transit.start_timestamp == TimestampMs::NONE
                {
                    return fail("unexpected epoch, timeout or start time");
                }
            }
            TxnState::PrepareEpochFence => return fail("the fence itself is never written"),
            TxnState::Dead => {
                return fail("a Dead id is removed from memory, not completed");
            }
        }
        self.producer_id = transit.producer_id;
        self.previous_producer_id = transit.previous_producer_id;
        self.next_producer_id = transit.next_producer_id;
        self.producer_epoch = transit.producer_epoch;
        self.last_producer_epoch = transit.last_producer_epoch;
        self.timeout_ms = transit.timeout_ms;
        self.partitions = transit.partitions;
        self.start_timestamp = transit.start_timestamp;
        self.last_update_timestamp = transit.last_update_timestamp;
        self.client_version = transit.client_version;
        self.state = pending;
        self.pending = None;
        if matches!(pending, TxnState::CompleteAbort | TxnState::CompleteCommit) {
            self.has_failed_epoch_fence = false;
        }
        self.pending_is_fence = false;
        Ok(())
    }

    /// The write of the pending transition failed: forget it so the id can move
    /// again. A failed fence leaves its epoch bump in memory (see
    /// `prepare_fence_abort`).
    pub fn abort_pending_transition(&mut self) {
        if self.pending_is_fence {
            self.has_failed_epoch_fence = true;
        }
        self.pending = None;
        self.pending_is_fence = false;
    }

    /// Whether the transit carries this producer's id and epoch. With TV2 the
    /// Prepare states carry the bumped epoch (the old one in `last_producer_epoch`),
    /// and a Complete state after an overflow carries the new id at epoch 0.
    fn valid_producer_epoch(&self, transit: &TxnTransit) -> bool {
        let v2 = transit.client_version.supports_epoch_bump();
        let completing = matches!(
            transit.state,
            TxnState::CompleteCommit | TxnState::CompleteAbort
        );
        if v2 && completing && transit.producer_epoch.0 == 0 {
            return transit.last_producer_epoch == self.last_producer_epoch
                && transit.previous_producer_id == self.producer_id;
        }
        if v2
            && matches!(
                transit.state,
                TxnState::PrepareCommit | TxnState::PrepareAbort
            )
        {
            return transit.last_producer_epoch == self.producer_epoch
                && transit.producer_id == self.producer_id;
        }
        transit.producer_epoch == self.producer_epoch && transit.producer_id == self.producer_id
    }

    fn valid_epoch_bump(&self, transit: &TxnTransit) -> bool {
        transit.producer_epoch.0 == self.producer_epoch.0.wrapping_add(1)
            || (transit.producer_epoch.0 == 0 && transit.producer_id != self.producer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::log_records::TxnLogValue;

    const NOW: TimestampMs = TimestampMs(1_000);

    fn tp(topic: &str, partition: i32) -> TxnPartition {
        (topic.to_string(), partition)
    }

    fn set(partitions: &[(&str, i32)]) -> BTreeSet<TxnPartition> {
        partitions.iter().map(|(t, p)| tp(t, *p)).collect()
    }

    /// A fresh id after its first InitProducerId: Empty at epoch 0.
    fn initialised() -> TxnMetadata {
        let mut meta = TxnMetadata::new("tx".into(), ProducerId(100), 60_000, NOW);
        assert_eq!(meta.plan_init_producer_id(None), Ok(InitPlan::BumpEpoch));
        let transit = meta
            .prepare_increment_producer_epoch(60_000, None, NOW)
            .unwrap();
        meta.complete_transition(transit).unwrap();
        meta
    }

    fn step(
        meta: &mut TxnMetadata,
        prepare: impl FnOnce(&mut TxnMetadata) -> Result<TxnTransit, TxnError>,
    ) -> TxnTransit {
        let transit = prepare(meta).unwrap();
        meta.complete_transition(transit.clone()).unwrap();
        transit
    }

    #[test]
    fn state_ids_and_names_match_kafka() {
        for (id, state) in TxnState::ALL.into_iter().enumerate() {
            assert_eq!(state.id(), id as i8);
            assert_eq!(TxnState::from_id(id as i8), Some(state));
            assert_eq!(TxnState::from_name(state.name()), Some(state));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::PrepareEpochFence.name(), "PrepareEpochFence");
        assert!(TxnState::Ongoing.can_follow(TxnState::CompleteAbort));
        assert!(!TxnState::PrepareCommit.can_follow(TxnState::Empty));
        assert!(TxnState::PrepareAbort.can_follow(TxnState::Empty));
        assert!(!TxnState::CompleteCommit.can_follow(TxnState::PrepareAbort));
        assert!(TxnState::Empty.is_expiration_allowed());
        assert!(!TxnState::Ongoing.is_expiration_allowed());
    }

    #[test]
    fn first_init_starts_at_epoch_zero() {
        let meta = initialised();
        assert_eq!(meta.state, TxnState::Empty);
        assert_eq!(meta.producer_epoch, ProducerEpoch(0));
        assert_eq!(meta.last_producer_epoch, ProducerEpoch::NONE);
        assert_eq!(meta.pending_state(), None);
    }

    #[test]
    fn a_v1_transaction_commits_through_its_states() {
        let mut meta = initialised();
        let partitions = set(&[("a", 0), ("a", 1), ("b", 3)]);
        assert_eq!(
            meta.plan_add_partitions(ProducerId(100), ProducerEpoch(0), &partitions),
            Ok(AddPartitionsPlan::Add)
        );
        let later = TimestampMs(2_000);
        let transit = meta
            .prepare_add_partitions(partitions.clone(), later, TxnVersion::TV_0)
            .unwrap();
        // A second request while the write is pending must wait.
        assert_eq!(
            meta.plan_add_partitions(ProducerId(100), ProducerEpoch(0), &partitions),
            Err(TxnError::ConcurrentTransactions)
        );
        meta.complete_transition(transit).unwrap();
        assert_eq!(meta.state, TxnState::Ongoing);
        assert_eq!(meta.start_timestamp, later);
        assert_eq!(
            meta.plan_add_partitions(ProducerId(100), ProducerEpoch(0), &set(&[("a", 1)])),
            Ok(AddPartitionsPlan::AlreadyAdded)
        );

        let plan = meta
            .plan_end_txn(ProducerId(100), ProducerEpoch(0), true, TxnVersion::TV_0)
            .unwrap();
        assert_eq!(
            plan,
            EndTxnPlan::Prepare {
                state: TxnState::PrepareCommit,
                needs_new_producer_id: false,
                no_partition_added: false
            }
        );
        step(&mut meta, |m| {
            m.prepare_abort_or_commit(
                TxnState::PrepareCommit,
                TxnVersion::TV_0,
                ProducerId::NONE,
                NOW,
                false,
            )
        });
        assert_eq!(meta.producer_epoch, ProducerEpoch(0), "no bump before TV2");
        assert_eq!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(0), true, TxnVersion::TV_0),
            Err(TxnError::ConcurrentTransactions)
        );
        assert!(matches!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(0), false, TxnVersion::TV_0),
            Err(TxnError::InvalidTxnState { .. })
        ));
        step(&mut meta, |m| m.prepare_complete(NOW));
        assert_eq!(meta.state, TxnState::CompleteCommit);
        assert!(meta.partitions.is_empty());
        assert_eq!(meta.start_timestamp, later, "kept, as Kafka keeps it");
        // A retried commit succeeds; an abort now is out of order.
        assert_eq!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(0), true, TxnVersion::TV_0),
            Ok(EndTxnPlan::AlreadyDone)
        );
        assert_eq!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(0), false, TxnVersion::TV_0)
                .map_err(|e| e.error_code()),
            Err(ErrorCode::InvalidTxnState)
        );
    }

    #[test]
    fn end_txn_on_an_empty_transaction_is_out_of_order_before_tv2() {
        let meta = initialised();
        assert!(matches!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(0), true, TxnVersion::TV_0),
            Err(TxnError::InvalidTxnState {
                state: TxnState::Empty,
                ..
            })
        ));
        assert_eq!(
            meta.plan_end_txn(ProducerId(101), ProducerEpoch(0), true, TxnVersion::TV_0),
            Err(TxnError::InvalidProducerIdMapping)
        );
        assert_eq!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(1), true, TxnVersion::TV_0),
            Err(TxnError::ProducerFenced)
        );
    }

    #[test]
    fn tv2_bumps_the_epoch_on_every_end_txn() {
        let mut meta = initialised();
        step(&mut meta, |m| {
            m.prepare_add_partitions(set(&[("a", 0)]), NOW, TxnVersion::TV_2)
        });
        step(&mut meta, |m| {
            m.prepare_abort_or_commit(
                TxnState::PrepareAbort,
                TxnVersion::TV_2,
                ProducerId::NONE,
                NOW,
                false,
            )
        });
        assert_eq!(meta.producer_epoch, ProducerEpoch(1));
        assert_eq!(meta.last_producer_epoch, ProducerEpoch(0));
        // The client retries with its old epoch while markers are being written.
        assert_eq!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(0), false, TxnVersion::TV_2),
            Err(TxnError::ConcurrentTransactions)
        );
        step(&mut meta, |m| m.prepare_complete(NOW));
        assert_eq!(
            (meta.state, meta.producer_epoch),
            (TxnState::CompleteAbort, ProducerEpoch(1))
        );
        assert_eq!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(0), false, TxnVersion::TV_2),
            Ok(EndTxnPlan::AlreadyDone)
        );
        // The same epoch again would be the next transaction's EndTxn: none is open.
        assert!(matches!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(1), true, TxnVersion::TV_2),
            Err(TxnError::InvalidTxnState { .. })
        ));
        // An abort of an empty transaction is allowed with TV2 and starts now.
        assert_eq!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(1), false, TxnVersion::TV_2),
            Ok(EndTxnPlan::Prepare {
                state: TxnState::PrepareAbort,
                needs_new_producer_id: false,
                no_partition_added: true
            })
        );
        let later = TimestampMs(5_000);
        step(&mut meta, |m| {
            m.prepare_abort_or_commit(
                TxnState::PrepareAbort,
                TxnVersion::TV_2,
                ProducerId::NONE,
                later,
                true,
            )
        });
        assert_eq!(meta.start_timestamp, later);
        assert_eq!(meta.producer_epoch, ProducerEpoch(2));
    }

    #[test]
    fn tv2_overflow_moves_to_the_next_producer_id() {
        let mut meta = initialised();
        meta.producer_epoch = ProducerEpoch(i16::MAX - 2);
        step(&mut meta, |m| {
            m.prepare_add_partitions(set(&[("a", 0)]), NOW, TxnVersion::TV_2)
        });
        // Epoch MAX-2 bumps to MAX-1, which is exhausted: a new id comes next.
        step(&mut meta, |m| {
            m.prepare_abort_or_commit(
                TxnState::PrepareCommit,
                TxnVersion::TV_2,
                ProducerId::NONE,
                NOW,
                false,
            )
        });
        assert!(meta.is_producer_epoch_exhausted());
        step(&mut meta, |m| m.prepare_complete(NOW));
        step(&mut meta, |m| {
            m.prepare_add_partitions(set(&[("a", 0)]), NOW, TxnVersion::TV_2)
        });
        assert_eq!(
            meta.plan_end_txn(
                ProducerId(100),
                ProducerEpoch(i16::MAX - 1),
                true,
                TxnVersion::TV_2
            ),
            Ok(EndTxnPlan::Prepare {
                state: TxnState::PrepareCommit,
                needs_new_producer_id: true,
                no_partition_added: false
            })
        );
        let transit = step(&mut meta, |m| {
            m.prepare_abort_or_commit(
                TxnState::PrepareCommit,
                TxnVersion::TV_2,
                ProducerId(200),
                NOW,
                false,
            )
        });
        assert_eq!(transit.to_log_value().next_producer_id, ProducerId(200));
        assert_eq!(meta.producer_epoch, ProducerEpoch(i16::MAX));
        step(&mut meta, |m| m.prepare_complete(NOW));
        assert_eq!(meta.producer_id, ProducerId(200));
        assert_eq!(meta.producer_epoch, ProducerEpoch(0));
        assert_eq!(meta.previous_producer_id, ProducerId(100));
        assert_eq!(meta.next_producer_id, ProducerId::NONE);
        // The client retries its EndTxn with the old id and epoch: already done.
        assert_eq!(
            meta.plan_end_txn(
                ProducerId(100),
                ProducerEpoch(i16::MAX - 1),
                true,
                TxnVersion::TV_2
            ),
            Ok(EndTxnPlan::AlreadyDone)
        );
    }

    #[test]
    fn init_producer_id_bumps_retries_and_fences() {
        let mut meta = initialised();
        // KIP-360: the current producer recovers with its id and epoch.
        let expected = Some((ProducerId(100), ProducerEpoch(0)));
        assert_eq!(
            meta.plan_init_producer_id(expected),
            Ok(InitPlan::BumpEpoch)
        );
        step(&mut meta, |m| {
            m.prepare_increment_producer_epoch(60_000, Some(ProducerEpoch(0)), NOW)
        });
        assert_eq!(
            (meta.producer_epoch, meta.last_producer_epoch),
            (ProducerEpoch(1), ProducerEpoch(0))
        );
        // Its retry (answer lost) gets the same epoch again.
        step(&mut meta, |m| {
            m.prepare_increment_producer_epoch(60_000, Some(ProducerEpoch(0)), NOW)
        });
        assert_eq!(meta.producer_epoch, ProducerEpoch(1));
        // A new instance without an epoch bumps and forgets the last epoch...
        step(&mut meta, |m| {
            m.prepare_increment_producer_epoch(60_000, None, NOW)
        });
        assert_eq!(
            (meta.producer_epoch, meta.last_producer_epoch),
            (ProducerEpoch(2), ProducerEpoch::NONE)
        );
        // ...so the old instance is fenced.
        assert_eq!(
            meta.prepare_increment_producer_epoch(60_000, Some(ProducerEpoch(1)), NOW),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            meta.plan_init_producer_id(Some((ProducerId(7), ProducerEpoch(1)))),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            error_code_for_client(TxnError::ProducerFenced.error_code(), false),
            ErrorCode::InvalidProducerEpoch
        );
    }

    #[test]
    fn init_producer_id_rotates_an_exhausted_id() {
        let mut meta = initialised();
        meta.producer_epoch = ProducerEpoch(i16::MAX - 1);
        assert_eq!(
            meta.plan_init_producer_id(None),
            Ok(InitPlan::RotateProducerId)
        );
        assert!(
            meta.prepare_increment_producer_epoch(60_000, None, NOW)
                .is_err()
        );
        meta.abort_pending_transition();
        step(&mut meta, |m| {
            m.prepare_producer_id_rotation(ProducerId(300), 60_000, NOW, true)
        });
        assert_eq!(meta.producer_id, ProducerId(300));
        assert_eq!(meta.producer_epoch, ProducerEpoch(0));
        assert_eq!(meta.previous_producer_id, ProducerId(100));
        assert_eq!(meta.last_producer_epoch, ProducerEpoch(i16::MAX - 1));
        // The rotated producer's retry is recognised by the previous id.
        assert_eq!(
            meta.plan_init_producer_id(Some((ProducerId(100), ProducerEpoch(i16::MAX - 1)))),
            Ok(InitPlan::BumpEpoch)
        );
    }

    #[test]
    fn init_producer_id_fences_an_open_transaction_by_aborting_it() {
        let mut meta = initialised();
        step(&mut meta, |m| {
            m.prepare_add_partitions(set(&[("a", 0)]), NOW, TxnVersion::TV_0)
        });
        assert_eq!(
            meta.plan_init_producer_id(None),
            Ok(InitPlan::FenceAndAbort)
        );
        let transit = meta.prepare_fence_abort(TxnVersion::TV_0, NOW).unwrap();
        assert_eq!(transit.state, TxnState::PrepareAbort);
        assert_eq!(transit.producer_epoch, ProducerEpoch(1));
        // The write fails: retrying does not bump again.
        meta.abort_pending_transition();
        let transit = meta.prepare_fence_abort(TxnVersion::TV_0, NOW).unwrap();
        assert_eq!(transit.producer_epoch, ProducerEpoch(1));
        meta.complete_transition(transit).unwrap();
        // The fenced producer's commit is refused; the new one waits for the abort.
        assert_eq!(
            meta.plan_end_txn(ProducerId(100), ProducerEpoch(0), true, TxnVersion::TV_0),
            Err(TxnError::ProducerFenced)
        );
        assert_eq!(
            meta.plan_init_producer_id(None),
            Err(TxnError::ConcurrentTransactions)
        );
        step(&mut meta, |m| m.prepare_complete(NOW));
        assert_eq!(meta.state, TxnState::CompleteAbort);
        step(&mut meta, |m| {
            m.prepare_increment_producer_epoch(60_000, None, NOW)
        });
        assert_eq!(meta.producer_epoch, ProducerEpoch(2));
    }

    #[test]
    fn out_of_order_transitions_are_refused() {
        let mut meta = initialised();
        assert!(matches!(
            meta.prepare_complete(NOW),
            Err(TxnError::Illegal(_))
        ));
        assert!(matches!(
            meta.prepare_abort_or_commit(
                TxnState::PrepareCommit,
                TxnVersion::TV_0,
                ProducerId::NONE,
                NOW,
                false
            ),
            Err(TxnError::Illegal(_))
        ));
        let transit = meta
            .prepare_add_partitions(set(&[("a", 0)]), NOW, TxnVersion::TV_0)
            .unwrap();
        // Only one transition at a time.
        assert!(meta.prepare_dead().is_err());
        // A transit that is not the pending one cannot complete.
        let mut wrong = transit.clone();
        wrong.state = TxnState::Empty;
        assert!(meta.complete_transition(wrong).is_err());
        let mut shrunk = transit.clone();
        shrunk.producer_epoch = ProducerEpoch(5);
        assert!(meta.complete_transition(shrunk).is_err());
        meta.complete_transition(transit).unwrap();
        assert!(meta.complete_transition(meta.current()).is_err());
        assert_eq!(
            TxnError::InvalidTxnState {
                state: TxnState::Empty,
                operation: "commit"
            }
            .error_code(),
            ErrorCode::InvalidTxnState
        );
    }

    #[test]
    fn expiry_prepares_dead_but_never_completes_it() {
        let mut meta = initialised();
        let transit = meta.prepare_dead().unwrap();
        assert_eq!(transit.state, TxnState::Dead);
        assert!(meta.complete_transition(transit).is_err());
    }

    #[test]
    fn log_values_round_trip_through_metadata() {
        let mut meta = initialised();
        let transit = step(&mut meta, |m| {
            m.prepare_add_partitions(set(&[("b", 1), ("a", 2), ("a", 0)]), NOW, TxnVersion::TV_2)
        });
        let value = transit.to_log_value();
        assert_eq!(value.status, 1);
        let topics = value.topics.as_ref().unwrap();
        assert_eq!(topics.len(), 2);
        assert_eq!(
            (topics[0].topic.as_str(), &topics[0].partitions[..]),
            ("a", &[0, 2][..])
        );
        let bytes = value.encode(TxnVersion::TV_2.log_value_version());
        let loaded =
            TxnMetadata::from_log_value("tx".into(), &TxnLogValue::decode(&bytes).unwrap())
                .unwrap();
        assert_eq!(loaded.partitions, meta.partitions);
        assert_eq!(loaded.state, TxnState::Ongoing);
        assert_eq!(loaded.client_version, TxnVersion::TV_2);
        assert_eq!(loaded.previous_producer_id, ProducerId(100));
        assert_eq!(loaded.last_producer_epoch, ProducerEpoch::NONE);

        // Empty is written with a null partition list.
        let empty = initialised().current().to_log_value();
        assert_eq!(empty.topics, None);
        let unknown = TxnLogValue { status: 9, ..empty };
        assert_eq!(
            TxnMetadata::from_log_value("tx".into(), &unknown),
            Err(TxnError::UnknownStatus(9))
        );
    }

    #[test]
    fn verify_only_lists_partitions_missing_from_the_transaction() {
        let mut meta = initialised();
        step(&mut meta, |m| {
            m.prepare_add_partitions(set(&[("a", 0)]), NOW, TxnVersion::TV_0)
        });
        let missing = meta
            .verify_partitions(
                ProducerId(100),
                ProducerEpoch(0),
                &set(&[("a", 0), ("a", 1)]),
            )
            .unwrap();
        assert_eq!(missing, set(&[("a", 1)]));
        assert_eq!(
            meta.verify_partitions(ProducerId(100), ProducerEpoch(3), &set(&[("a", 0)])),
            Err(TxnError::ProducerFenced)
        );
    }

    #[test]
    fn timeouts_are_bounded_by_the_broker_maximum() {
        assert_eq!(validate_timeout(60_000, 900_000), Ok(()));
        assert_eq!(validate_timeout(900_000, 900_000), Ok(()));
        for bad in [0, -1, 900_001] {
            assert_eq!(
                validate_timeout(bad, 900_000).map_err(|e| e.error_code()),
                Err(ErrorCode::InvalidTransactionTimeout)
            );
        }
    }
}
