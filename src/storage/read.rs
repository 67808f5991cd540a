//! What a read of the log returns: ranges to send, from memory or from a segment
//! file, so the server can send file ranges zero-copy.

use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile};

use crate::storage::error::{LogError, io};
use crate::storage::segment_reader::SegmentReader;
use crate::storage::txn_index::AbortedTxn;
use crate::types::Offset;

/// One contiguous range of whole batches (or part of a run of them).
#[derive(Clone)]
pub enum ReadChunk {
    /// `len` bytes of a segment file from `position`.
    File {
        file: Rc<DmaFile>,
        reader: Rc<SegmentReader>,
        position: u64,
        len: u64,
    },
    /// `len` bytes of a buffer the log wrote recently, from `offset`.
    Memory {
        buf: Rc<DmaBuffer>,
        offset: usize,
        len: usize,
    },
}

impl std::fmt::Debug for ReadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadChunk::File { position, len, .. } => {
                write!(f, "File {{ position: {position}, len: {len} }}")
            }
            ReadChunk::Memory { offset, len, .. } => {
                write!(f, "Memory {{ offset: {offset}, len: {len} }}")
            }
        }
    }
}

impl ReadChunk {
    pub fn len(&self) -> u64 {
        match self {
            ReadChunk::File { len, .. } => *len,
            ReadChunk::Memory { len, .. } => *len as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the chunk's bytes to `out`, reading the file if need be.
    pub async fn copy_into(&self, out: &mut Vec<u8>) -> Result<(), LogError> {
        match self {
            ReadChunk::Memory { buf, offset, len } => {
                out.extend_from_slice(&buf.as_bytes()[*offset..*offset + *len]);
            }
            ReadChunk::File {
                file,
                position,
                len,
                ..
            } => {
                let len = usize::try_from(*len).expect("chunk under usize::MAX");
                let bytes = file.read_at(*position, len).await.map_err(io)?;
                if bytes.len() != len {
                    return Err(LogError::Corrupt(format!(
                        "short read at {position}: {} of {len} bytes",
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
            }
        }
        Ok(())
    }
}

/// The result of [`crate::storage::PartitionLog::read`].
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    pub chunks: Vec<ReadChunk>,
    /// Bytes in all chunks: whole batches only.
    pub bytes: u64,
    /// Offset after the last batch returned (the next fetch offset).
    pub next_offset: Offset,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    /// `read_committed`: the aborted transactions with data in the range
    /// returned (Fetch's `aborted_transactions`); `None` for `read_uncommitted`.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// Which records a read may see (Fetch's `isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset.
    ReadCommitted,
    /// Up to the log's readable end, past any high watermark bound: a
    /// follower's replica fetch (Kafka's `FetchIsolation.LOG_END`).
    LogEnd,
}

impl ReadOutcome {
    /// All the bytes, copied out (tests, tools and the non-zero-copy path).
    pub async fn to_vec(&self) -> Result<Vec<u8>, LogError> {
        let mut out = Vec::with_capacity(self.bytes as usize);
        for chunk in &self.chunks {
            chunk.copy_into(&mut out).await?;
        }
        Ok(out)
    }
}
