//! Fetch on the owning shard: reads each partition through its
//! [`crate::partition::Partition`]; if fewer than `min_bytes` are there, waits for
//! appends on those partitions (and only those) until `max_wait` passes.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::image::PartitionKey;
use crate::net::outgoing::{FileRange, Piece, Pieces};
use crate::partition::waiters::DataWaiter;
use crate::partition::{Isolation, Partition};
use crate::protocol::error_code::ErrorCode;
use crate::protocol::spliced::MAX_SPLICED_FIELD;
use crate::shard::Shard;
use crate::shard::call::ShardCall;
use crate::storage::LogError;
use crate::storage::read::{ReadChunk, ReadOutcome};
use crate::storage::txn_index::AbortedTxn;
use crate::types::{LeaderEpoch, NodeId, Offset};

#[derive(Debug, Clone)]
pub struct FetchItem {
    pub key: PartitionKey,
    pub offset: Offset,
    pub max_bytes: i32,
    /// The leader epoch the client believes current, if it sent one.
    pub current_leader_epoch: Option<LeaderEpoch>,
}

/// A partition's offsets as a fetch reports them.
#[derive(Debug, Clone, Copy)]
pub struct FetchOffsets {
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
}

impl FetchOffsets {
    fn of(partition: &Partition) -> FetchOffsets {
        FetchOffsets {
            high_watermark: partition.high_watermark(),
            last_stable_offset: partition.last_stable_offset(),
            log_start_offset: partition.log_start_offset(),
        }
    }

    /// The offsets the read saw.
    fn read_at(outcome: &ReadOutcome) -> FetchOffsets {
        FetchOffsets {
            high_watermark: outcome.high_watermark,
            last_stable_offset: outcome.last_stable_offset,
            log_start_offset: outcome.log_start_offset,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FetchResult {
    pub error: ErrorCode,
    /// `None` when the partition is not readable here.
    pub offsets: Option<FetchOffsets>,
    /// Copied from memory, or ranges of segment files to send zero-copy.
    pub records: Pieces,
    /// `read_committed`: the aborted transactions of the records returned.
    pub aborted: Option<Vec<AbortedTxn>>,
}

impl FetchResult {
    fn failed_at(error: LogError, partition: &Partition) -> FetchResult {
        FetchResult {
            error: error.error_code(),
            offsets: Some(FetchOffsets::of(partition)),
            records: Pieces::default(),
            aborted: None,
        }
    }

    pub fn failed(error: ErrorCode) -> FetchResult {
        FetchResult {
            error,
            offsets: None,
            records: Pieces::default(),
            aborted: None,
        }
    }
}

#[derive(Debug)]
pub struct Fetch {
    pub items: Vec<FetchItem>,
    /// Wait up to this long for `min_bytes` to be available.
    pub max_wait: Duration,
    pub min_bytes: usize,
    pub max_bytes: usize,
    pub isolation: Isolation,
    /// A follower's replica fetch: its broker id (its fetch offsets tell the
    /// leader how far its log reaches; it reads to the log end).
    pub replica: Option<NodeId>,
}

/// Bound on read rounds of one long poll: each round follows an append.
const MAX_ROUNDS: usize = 100_000;

impl ShardCall for Fetch {
    type Reply = Vec<FetchResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<FetchResult> {
        let deadline = Instant::now() + self.max_wait;
        let mut results = Vec::new();
        for _ in 0..MAX_ROUNDS {
            // Registered before reading, so an append during the read is not
            // missed; a fetch that will not wait (the handler's first read)
            // registers nowhere.
            let waiter = (!self.max_wait.is_zero()).then(DataWaiter::new);
            results = self.read_once(&shard, waiter.as_ref()).await;
            let bytes: u64 = results.iter().map(|r| r.records.len()).sum();
            let has_error = results.iter().any(|r| r.error != ErrorCode::None);
            let now = Instant::now();
            if bytes >= self.min_bytes.max(1) as u64 || has_error || now >= deadline {
                break;
            }
            let Some(waiter) = waiter else { break };
            let _ = glommio::timer::timeout(deadline - now, async {
                waiter.woken().await;
                Ok(())
            })
            .await;
        }
        for (item, result) in self.items.iter().zip(&results) {
            if !result.records.is_empty()
                && let Ok(partition) = shard.partition(&item.key)
            {
                partition.traffic().fetched(result.records.len());
            }
        }
        results
    }
}

impl Fetch {
    async fn read_once(
        &self,
        shard: &Rc<Shard>,
        waiter: Option<&Rc<DataWaiter>>,
    ) -> Vec<FetchResult> {
        let mut results = Vec::with_capacity(self.items.len());
        let mut budget = self.max_bytes;
        for item in &self.items {
            let partition = match shard.partition(&item.key) {
                Ok(partition) => partition,
                Err(error) => {
                    results.push(FetchResult::failed(error));
                    continue;
                }
            };
            let checked = partition
                .check_leader_epoch(item.current_leader_epoch)
                .and_then(|()| match self.replica {
                    Some(replica) => {
                        partition.follower_fetched(replica, item.offset, Instant::now())?;
                        crate::shard::isr::propose_due(shard, &partition);
                        Ok(())
                    }
                    None => Ok(()),
                });
            if let Err(error) = checked {
                results.push(FetchResult {
                    error,
                    offsets: Some(FetchOffsets::of(&partition)),
                    records: Pieces::default(),
                    aborted: None,
                });
                continue;
            }
            if let Some(waiter) = waiter {
                partition.wait_for_data(waiter);
            }
            let limit = (item.max_bytes.max(0) as usize).min(budget);
            let first = results.iter().all(|r: &FetchResult| r.records.is_empty());
            let read = partition
                .read(item.offset, limit as u64, self.isolation, first)
                .await;
            let result = match read {
                Ok(outcome) => match pieces_of(&outcome).await {
                    Ok(records) => FetchResult {
                        error: ErrorCode::None,
                        offsets: Some(FetchOffsets::read_at(&outcome)),
                        records,
                        aborted: outcome.aborted,
                    },
                    Err(error) => FetchResult::failed_at(error, &partition),
                },
                Err(error) => FetchResult::failed_at(error, &partition),
            };
            budget = budget.saturating_sub(result.records.len() as usize);
            results.push(result);
        }
        results
    }
}

/// What a read returned, ready to cross shards: the tail cache's bytes copied
/// into one piece, segment file ranges as descriptors for a zero-copy send (or
/// copied, when larger than a spliced field may be).
async fn pieces_of(outcome: &ReadOutcome) -> Result<Pieces, LogError> {
    let mut pieces = Pieces::default();
    let mut copied = Vec::new();
    for chunk in &outcome.chunks {
        match chunk {
            ReadChunk::File {
                reader,
                position,
                len,
                ..
            } if *len <= MAX_SPLICED_FIELD as u64 => {
                pieces.push(Piece::Bytes(Bytes::from(std::mem::take(&mut copied))));
                pieces.push(Piece::File(FileRange {
                    file: reader.file()?,
                    position: *position,
                    len: *len,
                }));
            }
            chunk => chunk.copy_into(&mut copied).await?,
        }
    }
    pieces.push(Piece::Bytes(Bytes::from(copied)));
    Ok(pieces)
}
