//! The small files a partition directory keeps beside its segments, decoded
//! with the broker's own decoders, and checked against the log's offsets:
//! `recovery-point.checkpoint`, `log-start-offset.checkpoint`,
//! `high-watermark.checkpoint`, `cleaner-offset.checkpoint`,
//! `leader-epoch-checkpoint`, `partition.metadata` and
//! `producer-state.snapshot`.

use serde::Serialize;

use crate::storage::checkpoint::{
    self, CLEANER_OFFSET_FILE, HIGH_WATERMARK_FILE, LEADER_EPOCH_FILE, LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE,
};
use crate::storage::leader_epoch::LeaderEpochCache;
use crate::storage::partition_metadata;
use crate::storage::producer_state::{ProducerState, SNAPSHOT_FILE};

use super::{Problem, ProblemKind};

/// Every file name this module reads.
pub const FILES: [&str; 7] = [
    RECOVERY_POINT_FILE,
    LOG_START_OFFSET_FILE,
    HIGH_WATERMARK_FILE,
    CLEANER_OFFSET_FILE,
    LEADER_EPOCH_FILE,
    partition_metadata::FILE,
    SNAPSHOT_FILE,
];

/// One checkpoint or metadata file.
#[derive(Debug, Serialize)]
pub struct CheckpointDump {
    pub file: String,
    pub content: Content,
    pub problems: Vec<Problem>,
}

/// What a file says.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Offset {
        offset: i64,
    },
    LeaderEpochs {
        entries: Vec<EpochEntry>,
    },
    PartitionMetadata {
        topic_id: Option<String>,
    },
    ProducerSnapshot {
        /// The offset the snapshot covers up to.
        up_to: i64,
        producers: Vec<ProducerDump>,
    },
    /// The broker's decoder refuses it.
    Unreadable {
        error: String,
    },
}

#[derive(Debug, Serialize)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// One producer of a snapshot, as DescribeProducers shows it.
#[derive(Debug, Serialize)]
pub struct ProducerDump {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub current_txn_start_offset: Option<i64>,
}

/// The log's offsets the checkpoints are checked against.
#[derive(Debug, Clone, Copy)]
pub struct LogBounds {
    /// The offset after the last valid batch of the last segment.
    pub end: i64,
    /// The log start offset checkpointed, else the first segment's base.
    pub start: i64,
}

/// Decodes `bytes`, the contents of the file `name` (one of [`FILES`]).
pub fn decode(name: &str, bytes: &[u8]) -> Content {
    let decoded = match name {
        LEADER_EPOCH_FILE => {
            checkpoint::decode_epochs(bytes).map(|entries| Content::LeaderEpochs {
                entries: entries
                    .into_iter()
                    .map(|(epoch, offset)| EpochEntry {
                        epoch: epoch.0,
                        start_offset: offset.0,
                    })
                    .collect(),
            })
        }
        partition_metadata::FILE => {
            std::str::from_utf8(bytes)
                .map_err(|e| e.to_string())
                .map(|text| Content::PartitionMetadata {
                    topic_id: partition_metadata::topic_id_in(text).map(str::to_string),
                })
        }
        SNAPSHOT_FILE => ProducerState::decode(bytes).map(|(state, up_to)| {
            let mut producers: Vec<ProducerDump> = state
                .describe()
                .into_iter()
                .map(|p| ProducerDump {
                    producer_id: p.producer_id.0,
                    producer_epoch: p.producer_epoch.0,
                    last_sequence: p.last_sequence,
                    last_timestamp: p.last_timestamp.0,
                    coordinator_epoch: p.coordinator_epoch,
                    current_txn_start_offset: p.current_txn_start_offset.map(|o| o.0),
                })
                .collect();
            producers.sort_by_key(|p| p.producer_id);
            Content::ProducerSnapshot {
                up_to: up_to.0,
                producers,
            }
        }),
        _ => checkpoint::decode_offset(bytes).map(|offset| Content::Offset { offset: offset.0 }),
    };
    decoded.unwrap_or_else(|error| Content::Unreadable { error })
}

/// Checks a decoded file against the log; `log` is `None` when the directory
/// holds no batch to compare with.
pub fn check(name: &str, content: Content, log: Option<LogBounds>) -> CheckpointDump {
    let mut problems = Vec::new();
    let mut problem = |detail: String| {
        problems.push(Problem {
            file: name.to_string(),
            position: None,
            offset: None,
            kind: ProblemKind::Checkpoint,
            detail,
        })
    };
    match (&content, log) {
        (Content::Unreadable { error }, _) => {
            problem(format!("the broker cannot read it: {error}"));
        }
        (Content::Offset { offset }, Some(log)) => {
            let offset = *offset;
            if name == RECOVERY_POINT_FILE && offset > log.end {
                problem(format!(
                    "the log ends at {} before the recovery point {offset}: data the broker had \
                     synced is missing",
                    log.end
                ));
            }
            if name == HIGH_WATERMARK_FILE && !(log.start..=log.end).contains(&offset) {
                problem(format!(
                    "high watermark {offset} is outside the log [{}, {}]",
                    log.start, log.end
                ));
            }
            if name == LOG_START_OFFSET_FILE && offset > log.end {
                problem(format!(
                    "log start offset {offset} is past the log end {}",
                    log.end
                ));
            }
        }
        (Content::LeaderEpochs { entries }, _) => {
            let kept = LeaderEpochCache::from_entries(
                entries
                    .iter()
                    .map(|e| {
                        (
                            crate::types::LeaderEpoch(e.epoch),
                            crate::types::Offset(e.start_offset),
                        )
                    })
                    .collect(),
            );
            if kept.entries().len() != entries.len() {
                problem(
                    "epochs or their start offsets do not increase: the broker drops the \
                     entries out of order"
                        .to_string(),
                );
            }
        }
        _ => {}
    }
    CheckpointDump {
        file: name.to_string(),
        content,
        problems,
    }
}
