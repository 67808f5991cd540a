//! Record batch v2: the header view, CRC32C, validation and record iteration.
//!
//! Batches stay opaque bytes everywhere; this module only reads and patches their
//! headers in place, walks records where semantics need it (timestamp lookups),
//! and rewrites a batch without the records log compaction drops.

pub mod attributes;
pub mod batch;
pub mod builder;
pub mod compaction;
pub mod compression;
pub mod control;
pub mod key_value;
pub mod record_checks;
pub mod records;
pub mod validate;
pub mod varint;

pub use attributes::{Attributes, Compression, TimestampType};
pub use batch::{BATCH_HEADER_LEN, BatchHeader, LOG_OVERHEAD, RecordBatch, RecordBatchMut};
pub use validate::{BatchError, validate_batch};
