//! One [`Partition`] per replica a shard owns: the log, the leader epoch, the high
//! watermark, the last stable offset, and the fetches waiting on it. Handlers and
//! coordinators reach the log only through it; its methods name what Kafka does.

pub mod append_rules;
pub mod fetcher;
mod following;
mod leading;
pub mod replica;
pub mod set;
pub mod waiters;

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use glommio::sync::{Permit, Semaphore};

use crate::cluster::image::{PartitionImage, PartitionKey};
use crate::cluster::topic_config::{MessageTimestampType, TopicConfigs};
use crate::metrics::partition::PartitionTraffic;
use crate::partition::append_rules::Refusal;
use crate::partition::waiters::{DataWaiter, Waiters};
use crate::protocol::error_code::ErrorCode;
use crate::storage::log::FlushTimes;
use crate::storage::read::ReadOutcome;
use crate::storage::recovery::RecoveryReport;
use crate::storage::{AppendOptions, LogError, PartitionLog};
use crate::types::{LeaderEpoch, NodeId, Offset, TimestampMs};

pub use following::Following;
pub use leading::Acks;
use replica::{LeaderState, Members};

pub use crate::storage::producer_state::{ProducerInfo, TxnMarker};
pub use crate::storage::read::Isolation;

/// Where a produced batch landed, and when each step of getting it there ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: Offset,
    /// The broker's timestamp, on LogAppendTime topics.
    pub log_append_time: Option<TimestampMs>,
    pub log_start_offset: Offset,
    pub timing: AppendTiming,
}

/// The steps of one produced batch on its partition, for slow-request timelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendTiming {
    /// The partition's task began (after decode and any hop to its shard).
    pub started: Instant,
    /// Kafka's checks passed.
    pub validated: Instant,
    /// The group commit that acknowledged it wrote and synced (the log's latest;
    /// `None` where the policy did not need one).
    pub flushed: FlushTimes,
    /// The append returned, acknowledged.
    pub acknowledged: Instant,
}

/// Which offset ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    MaxTimestamp,
    /// The first offset whose timestamp is at or after this one.
    Timestamp(TimestampMs),
}

impl OffsetSpec {
    /// From ListOffsets' timestamp field (-2, -1, -3 or a time).
    pub fn from_wire(timestamp: i64) -> OffsetSpec {
        match timestamp {
            -2 => OffsetSpec::Earliest,
            -1 => OffsetSpec::Latest,
            -3 => OffsetSpec::MaxTimestamp,
            ts => OffsetSpec::Timestamp(TimestampMs(ts)),
        }
    }
}

/// How long the broker's own appends (coordinator records, transaction
/// markers) wait for the ISR (Kafka's `offsets.commit.timeout.ms`).
const INTERNAL_REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What this replica is in the current leader epoch.
enum Role {
    Leader(LeaderState),
    Follower(Following),
    /// No live replica leads it: nobody is served until one does.
    Leaderless,
}

/// How a new image changed this replica's leadership, for the coordinators
/// whose state lives in the partition (they load on leading, stop on losing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    BecameLeader,
    StoppedLeading,
}

pub struct Partition {
    key: PartitionKey,
    /// This broker.
    node: NodeId,
    log: Rc<PartitionLog>,
    leader_epoch: Cell<LeaderEpoch>,
    configs: RefCell<Rc<TopicConfigs>>,
    role: RefCell<Role>,
    /// Fetches waiting for data (woken by appends and high watermark moves).
    waiters: Waiters,
    /// `acks=all` produces waiting for the high watermark (woken when it moves
    /// or the leadership changes).
    replication_waiters: Waiters,
    /// Held by leadership changes and by a follower's truncations and appends,
    /// one at a time.
    transition_lock: Semaphore,
    traffic: PartitionTraffic,
}

impl Partition {
    /// Opens (recovering) broker `node`'s replica's log in `dir` and starts its
    /// background work; it leads or follows as `image` says.
    pub async fn open(
        dir: &Path,
        key: PartitionKey,
        node: NodeId,
        image: &PartitionImage,
        configs: Rc<TopicConfigs>,
    ) -> Result<(Partition, RecoveryReport), LogError> {
        let (log, report) = PartitionLog::open(dir, configs.log.clone()).await?;
        let log = Rc::new(log);
        crate::storage::background::spawn(&log, None);
        // A replica does not know on its own how much of its log is committed:
        // the high watermark starts at the log start, and moves when this
        // replica leads alone or its leader's (or followers') fetches say.
        log.set_high_watermark_bound(Some(log.log_start_offset()));
        let partition = Partition {
            key,
            node,
            log,
            leader_epoch: Cell::new(LeaderEpoch::NONE),
            configs: RefCell::new(Rc::clone(&configs)),
            role: RefCell::new(Role::Leaderless),
            waiters: Waiters::default(),
            replication_waiters: Waiters::default(),
            transition_lock: Semaphore::new(1),
            traffic: PartitionTraffic::default(),
        };
        partition.update(image, configs).await?;
        Ok((partition, report))
    }

    pub fn key(&self) -> &PartitionKey {
        &self.key
    }

    /// What producers and fetches moved through this replica (metrics).
    pub fn traffic(&self) -> &PartitionTraffic {
        &self.traffic
    }

    /// Bytes of all its segments.
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    pub fn dir(&self) -> &Path {
        self.log.dir()
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch.get()
    }

    /// Checks the leader epoch a client believes current (Fetch and ListOffsets
    /// v4+ send it; -1 or absent means no check): an older one is fenced, a newer
    /// one is not known here yet.
    pub fn check_leader_epoch(&self, believed: Option<LeaderEpoch>) -> Result<(), ErrorCode> {
        check_epoch(self.leader_epoch(), believed)
    }

    /// OffsetForLeaderEpoch: where leader epoch `epoch` ends in this log (the
    /// log end for the current one) and the epoch found; `None` when the log
    /// knows no such epoch (Kafka's UNDEFINED_EPOCH_OFFSET).
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        self.log.end_offset_for_epoch(epoch)
    }

    /// The offset below which records are committed: on a leader the lowest log
    /// end in its ISR (its own acknowledged end when it is alone), on a
    /// follower its leader's, capped by its own log end.
    pub fn high_watermark(&self) -> Offset {
        self.log.high_watermark()
    }

    /// The offset below which every transaction is decided (Kafka's LSO): the
    /// first offset of the earliest open transaction, else the high watermark.
    pub fn last_stable_offset(&self) -> Offset {
        let lso = self.log.last_stable_offset();
        debug_assert!(lso <= self.high_watermark());
        lso
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    /// Whether the producer's transaction is open here (Kafka's
    /// `hasOngoingTransaction`: KIP-890 verifies with the coordinator only
    /// before the first transactional batch of a transaction).
    pub fn has_ongoing_transaction(&self, producer_id: crate::types::ProducerId) -> bool {
        self.log.has_open_transaction(producer_id)
    }

    /// The producers this partition remembers, with their open transactions
    /// (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.log.producers()
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// Takes a new metadata image's view of this partition. Leading a new
    /// epoch, the epoch starts at the log end (the leader-epoch cache
    /// OffsetForLeaderEpoch answers from) and the followers' progress starts
    /// unknown; following a new leader or epoch, the log first truncates to
    /// what the leader has (see [`Partition::following`]). Waiting `acks=all`
    /// produces learn of a lost leadership at once.
    pub async fn update(
        &self,
        image: &PartitionImage,
        configs: Rc<TopicConfigs>,
    ) -> Result<Transition, LogError> {
        debug_assert!(image.leader_epoch >= self.leader_epoch.get());
        let _transition = self.transition().await?;
        let leads = image.leader == self.node;
        let new_epoch = image.leader_epoch != self.leader_epoch.get();
        let was_leader = matches!(*self.role.borrow(), Role::Leader(_));
        if leads && new_epoch {
            self.log.begin_epoch(image.leader_epoch).await?;
        }
        self.leader_epoch.set(image.leader_epoch);
        self.log.update_config(configs.log.clone())?;
        *self.configs.borrow_mut() = configs;
        let members = Members {
            epoch: image.leader_epoch,
            replicas: &image.replicas,
            isr: &image.isr,
            partition_epoch: image.partition_epoch,
        };
        let mut role = self.role.borrow_mut();
        match &mut *role {
            Role::Leader(state) if leads && !new_epoch => state.update(members),
            _ if leads => {
                *role = Role::Leader(LeaderState::new(
                    self.node,
                    members,
                    self.log.log_end_offset(),
                    self.log.high_watermark(),
                    Instant::now(),
                ));
            }
            Role::Follower(following) if following.leader == image.leader && !new_epoch => {}
            _ if image.leader == NodeId::NONE => *role = Role::Leaderless,
            _ => *role = Role::Follower(Following::new(image.leader, image.leader_epoch)),
        }
        let bound = match &mut *role {
            Role::Leader(state) => state.high_watermark_bound(),
            // A replica that does not lead keeps its high watermark until the
            // leader's fetch answers move it.
            Role::Follower(_) | Role::Leaderless => Some(self.log.high_watermark()),
        };
        drop(role);
        self.log.set_high_watermark_bound(bound);
        self.wake_all();
        Ok(match (was_leader, leads) {
            (false, true) => Transition::BecameLeader,
            (true, false) => Transition::StoppedLeading,
            _ => Transition::Unchanged,
        })
    }

    /// Waits for the partition's leadership changes and follower work in progress.
    async fn transition(&self) -> Result<Permit<'_>, LogError> {
        self.transition_lock
            .acquire_permit(1)
            .await
            .map_err(|e| LogError::Offline(format!("transition lock closed: {e}")))
    }

    /// Wakes fetches and `acks=all` produces to look again.
    fn wake_all(&self) {
        self.waiters.wake_all();
        self.replication_waiters.wake_all();
    }

    /// Whether this replica leads its partition now.
    pub fn is_leader(&self) -> bool {
        matches!(*self.role.borrow(), Role::Leader(_))
    }

    /// Validates a producer's batch as Kafka's LogValidator does, appends it (one
    /// copy, from the request into the write buffer, where its offsets, epoch and
    /// LogAppendTime timestamps are assigned), and returns once the durability
    /// policy acknowledges it here and, for `acks=all`, once every in-sync
    /// replica has it (see [`Partition::wait_replicated`]).
    pub async fn append_from_producer(
        &self,
        records: &[u8],
        zstd_allowed: bool,
        inflate_limit: usize,
        acks: Acks,
    ) -> Result<Appended, Refusal> {
        let started = Instant::now();
        let configs = Rc::clone(&self.configs.borrow());
        if let Acks::All { .. } = acks {
            self.check_enough_replicas(configs.min_insync_replicas)?;
        }
        let now = TimestampMs::now();
        append_rules::check(records, &configs, zstd_allowed, inflate_limit, now).inspect_err(
            |refusal| tracing::debug!(partition = %self.key, ?refusal, "refused batch"),
        )?;
        let log_append_time =
            (configs.timestamp_type == MessageTimestampType::LogAppendTime).then_some(now);
        let validated = Instant::now();
        let epoch = self.leader_epoch.get();
        let info = self
            .append(records, log_append_time)
            .await
            .map_err(|error| {
                tracing::warn!(partition = %self.key, %error, "append failed");
                Refusal::from(error.error_code())
            })?;
        let flushed = self.log.last_flush();
        self.traffic.produced(
            records.len() as u64,
            info.last_offset.0.saturating_sub(info.base_offset.0) as u64 + 1,
        );
        if let Acks::All { timeout } = acks {
            self.wait_replicated(info.last_offset.plus(1), epoch, started + timeout)
                .await?;
        }
        Ok(Appended {
            base_offset: info.base_offset,
            log_append_time,
            log_start_offset: info.log_start_offset,
            timing: AppendTiming {
                started,
                validated,
                flushed,
                acknowledged: Instant::now(),
            },
        })
    }

    /// Appends a batch the broker built itself (coordinator records); returns
    /// once every in-sync replica has it, as Kafka's coordinators append with
    /// `acks=all`.
    pub async fn append_internal(&self, batch: &[u8]) -> Result<Offset, LogError> {
        let started = Instant::now();
        let epoch = self.leader_epoch.get();
        let info = self.append(batch, None).await?;
        self.wait_replicated(
            info.last_offset.plus(1),
            epoch,
            started + INTERNAL_REPLICATION_TIMEOUT,
        )
        .await
        .map_err(LogError::NotReplicated)?;
        Ok(info.base_offset)
    }

    /// WriteTxnMarkers on this partition: appends the commit or abort marker
    /// (durably, as any append), which ends the producer's open transaction here
    /// and, for an abort, adds its `.txnindex` entry; the last stable offset
    /// moves and waiting fetches wake. A marker for a producer with nothing open
    /// is still written (as Kafka does). Refused: an epoch older than the
    /// producer's (INVALID_PRODUCER_EPOCH), a coordinator epoch older than the
    /// last marker's (TRANSACTION_COORDINATOR_FENCED).
    pub async fn write_txn_marker(&self, marker: TxnMarker) -> Result<Offset, ErrorCode> {
        if !self.is_leader() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let started = Instant::now();
        let epoch = self.leader_epoch.get();
        let options = AppendOptions {
            leader_epoch: self.leader_epoch.get(),
            log_append_time: None,
        };
        let offset = self
            .log
            .append_marker(&marker, options)
            .await
            .map_err(|error| {
                tracing::debug!(partition = %self.key, ?marker, %error, "marker refused");
                error.error_code()
            })?;
        debug_assert!(self.last_stable_offset() <= self.high_watermark());
        self.waiters.wake_all();
        self.wait_replicated(
            offset.plus(1),
            epoch,
            started + INTERNAL_REPLICATION_TIMEOUT,
        )
        .await?;
        Ok(offset)
    }

    async fn append(
        &self,
        batch: &[u8],
        log_append_time: Option<TimestampMs>,
    ) -> Result<crate::storage::log::AppendInfo, LogError> {
        if !self.is_leader() {
            return Err(LogError::NotLeader);
        }
        let options = AppendOptions {
            leader_epoch: self.leader_epoch.get(),
            log_append_time,
        };
        let info = self.log.append(batch, options).await?;
        debug_assert!(self.log_start_offset() <= self.high_watermark());
        debug_assert!(self.high_watermark() <= self.log_end_offset());
        self.waiters.wake_all();
        Ok(info)
    }

    /// Whole batches from `offset`, at most `max_bytes` unless `first` (the first
    /// partition of a response with data gets at least one batch), up to what
    /// `isolation` may see.
    pub async fn read(
        &self,
        offset: Offset,
        max_bytes: u64,
        isolation: Isolation,
        first: bool,
    ) -> Result<ReadOutcome, LogError> {
        self.log
            .read_isolated(offset, max_bytes, first, isolation)
            .await
    }

    /// Wakes `waiter` at the next append here.
    pub fn wait_for_data(&self, waiter: &Rc<DataWaiter>) {
        self.waiters.register(waiter);
    }

    /// ListOffsets: an offset and its timestamp, `None` when no record matches.
    /// As in Kafka, nothing at or past what `isolation` may fetch is answered:
    /// latest is the high watermark, or the last stable offset for
    /// `read_committed`, and a timestamp lookup that finds a later offset finds
    /// nothing.
    pub async fn offset_for(
        &self,
        spec: OffsetSpec,
        isolation: Isolation,
    ) -> Result<Option<(Offset, TimestampMs)>, ErrorCode> {
        self.check_offsets_available()?;
        let fetchable = match isolation {
            Isolation::ReadUncommitted => self.high_watermark(),
            Isolation::ReadCommitted => self.last_stable_offset(),
            Isolation::LogEnd => self.log.readable_end(),
        };
        let found = match spec {
            OffsetSpec::Earliest => return Ok(Some((self.log_start_offset(), TimestampMs::NONE))),
            OffsetSpec::Latest => return Ok(Some((fetchable, TimestampMs::NONE))),
            OffsetSpec::MaxTimestamp => self.log.max_timestamp().map(|(ts, offset)| (offset, ts)),
            OffsetSpec::Timestamp(ts) => self
                .log
                .offset_for_timestamp(ts)
                .await
                .map_err(|e| e.error_code())?,
        };
        Ok(found.filter(|&(offset, _)| offset < fetchable))
    }

    /// DeleteRecords: moves the log start offset to `before` (`None`: the high
    /// watermark); returns the new log start offset.
    pub async fn delete_records(&self, before: Option<Offset>) -> Result<Offset, LogError> {
        let target = before.unwrap_or_else(|| self.high_watermark());
        self.log.delete_records(target).await
    }

    /// Drops the records at and after `offset`, as a follower does to a log that
    /// diverged from its leader (Kafka's `truncateTo`); returns the new log end.
    pub async fn truncate_to(&self, offset: Offset) -> Result<Offset, LogError> {
        let end = self.log.truncate_to(offset).await?;
        debug_assert!(end <= offset.max(self.log_start_offset()));
        Ok(end)
    }

    /// Flushes and closes the log (shutdown, or the topic was deleted).
    pub async fn close(&self) -> Result<(), LogError> {
        self.waiters.wake_all();
        self.log.close().await
    }
}

fn check_epoch(current: LeaderEpoch, believed: Option<LeaderEpoch>) -> Result<(), ErrorCode> {
    match believed {
        Some(epoch) if epoch != LeaderEpoch::NONE && epoch < current => {
            Err(ErrorCode::FencedLeaderEpoch)
        }
        Some(epoch) if epoch > current => Err(ErrorCode::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_with_an_old_epoch_are_fenced_and_a_newer_one_is_unknown() {
        let current = LeaderEpoch(3);
        assert_eq!(check_epoch(current, None), Ok(()));
        assert_eq!(check_epoch(current, Some(LeaderEpoch::NONE)), Ok(()));
        assert_eq!(check_epoch(current, Some(LeaderEpoch(3))), Ok(()));
        assert_eq!(
            check_epoch(current, Some(LeaderEpoch(2))),
            Err(ErrorCode::FencedLeaderEpoch)
        );
        assert_eq!(
            check_epoch(current, Some(LeaderEpoch(4))),
            Err(ErrorCode::UnknownLeaderEpoch)
        );
        assert_eq!(OffsetSpec::from_wire(-2), OffsetSpec::Earliest);
        assert_eq!(
            OffsetSpec::from_wire(1_700_000_000_000),
            OffsetSpec::Timestamp(TimestampMs(1_700_000_000_000))
        );
    }

    #[test]
    fn a_marker_moves_the_lso_wakes_waiting_fetches_and_refuses_old_epochs() {
        use crate::record::control::MarkerKind;
        use crate::storage::test_support::{run, txn_batch};
        use crate::types::{ProducerEpoch, ProducerId};
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let configs = TopicConfigs::resolve(
                &crate::config::BrokerConfig::default(),
                &std::collections::BTreeMap::new(),
            );
            let image = PartitionImage {
                shard: Some(crate::types::ShardId(0)),
                leader: crate::types::NodeId(0),
                leader_epoch: LeaderEpoch(0),
                replicas: vec![crate::types::NodeId(0)],
                isr: vec![crate::types::NodeId(0)],
                partition_epoch: 0,
            };
            let key = PartitionKey {
                topic: "t".into(),
                partition: 0,
            };
            let (partition, _) =
                Partition::open(dir.path(), key, NodeId(0), &image, Rc::new(configs))
                    .await
                    .unwrap();
            partition
                .append_internal(&txn_batch(7, 0, 2))
                .await
                .unwrap();
            assert_eq!(
                (partition.last_stable_offset(), partition.high_watermark()),
                (Offset(0), Offset(2))
            );
            let newest = |isolation| partition.offset_for(OffsetSpec::MaxTimestamp, isolation);
            let committed = newest(Isolation::ReadCommitted).await.unwrap();
            assert_eq!(committed, None, "the newest batch is past the LSO");
            let uncommitted = newest(Isolation::ReadUncommitted).await.unwrap();
            assert_eq!(uncommitted.map(|(offset, _)| offset), Some(Offset(0)));
            let waiter = DataWaiter::new();
            partition.wait_for_data(&waiter);
            let marker = |epoch| TxnMarker {
                producer_id: ProducerId(7),
                producer_epoch: ProducerEpoch(epoch),
                coordinator_epoch: 0,
                kind: MarkerKind::Commit,
            };
            assert_eq!(partition.write_txn_marker(marker(1)).await, Ok(Offset(2)));
            glommio::timer::timeout(std::time::Duration::from_secs(5), async {
                waiter.woken().await;
                Ok(())
            })
            .await
            .expect("the marker woke the waiting fetch");
            assert_eq!(partition.last_stable_offset(), Offset(3));
            assert!(!partition.has_ongoing_transaction(ProducerId(7)));
            let latest = partition
                .offset_for(OffsetSpec::Latest, Isolation::ReadCommitted)
                .await
                .unwrap();
            assert_eq!(latest, Some((Offset(3), TimestampMs::NONE)));
            assert_eq!(
                partition.write_txn_marker(marker(0)).await,
                Err(ErrorCode::InvalidProducerEpoch)
            );
            partition.close().await.unwrap();
        });
    }
}
