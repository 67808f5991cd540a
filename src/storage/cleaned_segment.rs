//! Writing one segment of the log cleaner's output under `.cleaned` names
//! (`<base>.log.cleaned`, `.index.cleaned`, `.timeindex.cleaned`,
//! `.txnindex.cleaned`), beside the segments it will replace; `storage::swap`
//! then renames them over the old files.
//!
//! The batches are written as they come, already whole and valid, through the
//! same aligned write buffer appends use, and indexed as appends and recovery
//! index them, so recovery would rebuild exactly the indexes written here.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::DmaFile;

use crate::record::batch::BatchHeader;
use crate::storage::config::LogConfig;
use crate::storage::device;
use crate::storage::error::{LogError, io};
use crate::storage::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, Segment, SegmentIndexes, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
    file_name, open_segment_file, segment_file,
};
use crate::storage::segment_reader::SegmentReader;
use crate::storage::summary::BatchSummary;
use crate::storage::txn_index::{self, AbortedTxn};
use crate::storage::write_buffer::WriteBuffer;
use crate::types::Offset;

/// The extra suffix of files a cleaning pass has written but not swapped in.
pub const CLEANED_SUFFIX: &str = "cleaned";

/// Pending bytes that trigger a write: big enough for few large writes, small
/// enough that a pass holds little memory.
const WRITE_CHUNK: usize = 1 << 20;

/// `<dir>/<base, 20 digits>.<suffix>.cleaned`
pub fn cleaned_file(dir: &Path, base: Offset, suffix: &str) -> PathBuf {
    dir.join(cleaned_name(base, suffix))
}

fn cleaned_name(base: Offset, suffix: &str) -> String {
    format!("{}.{CLEANED_SUFFIX}", file_name(base, suffix))
}

/// Writes a new file whole and fdatasyncs it (its directory entry is synced
/// by the caller).
async fn write_synced(path: &Path, contents: Vec<u8>) -> Result<(), LogError> {
    let file = glommio::io::BufferedFile::create(path).await.map_err(io)?;
    let len = contents.len();
    if len > 0 {
        let written = file.write_at(contents, 0).await.map_err(io)?;
        if written != len {
            return Err(LogError::Io(std::io::Error::other(format!(
                "short write of {}: {written} of {len} bytes",
                path.display()
            ))));
        }
    }
    file.fdatasync().await.map_err(io)?;
    file.close().await.map_err(io)
}

/// Removes the `.cleaned` files of the segments at `bases`: a pass dropped
/// before its swap, or one that stopped half-way.
pub fn discard(dir: &Path, bases: &[Offset]) -> Result<(), LogError> {
    for &base in bases {
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            match std::fs::remove_file(cleaned_file(dir, base, suffix)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error.into());
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Writes one cleaned segment; [`CleanedSegmentWriter::finish`] makes it durable.
pub struct CleanedSegmentWriter {
    dir: PathBuf,
    base: Offset,
    file: DmaFile,
    buffer: WriteBuffer,
    size: u64,
    next_offset: Option<Offset>,
    indexes: SegmentIndexes,
}

impl CleanedSegmentWriter {
    /// Creates `<base>.log.cleaned`, removing the `.cleaned` files a pass that
    /// stopped half-way left for `base` (a stale `.txnindex.cleaned` would
    /// otherwise be swapped in with the new segment).
    pub async fn create(
        dir: &Path,
        base: Offset,
        index_interval: u64,
    ) -> Result<CleanedSegmentWriter, LogError> {
        assert!(dir.is_absolute(), "glommio opens absolute paths only");
        // The file below is empty when opened: it must not be the one glommio
        // probes the device with.
        device::probe_io_poll(dir).await?;
        discard(dir, &[base])?;
        let file = open_segment_file(&cleaned_file(dir, base, LOG_SUFFIX), true).await?;
        let buffer = WriteBuffer::new(&file, 0, &[]);
        Ok(CleanedSegmentWriter {
            dir: dir.to_path_buf(),
            base,
            file,
            buffer,
            size: 0,
            next_offset: None,
            indexes: SegmentIndexes::new(base, index_interval),
        })
    }

    /// Appends one whole, valid record batch, bytes exactly as on disk. Batches
    /// come in offset order, from `base` on.
    pub async fn append(&mut self, batch: &[u8]) -> Result<(), LogError> {
        let header = BatchHeader::parse(batch).expect("a cleaned batch holds a whole header");
        assert_eq!(
            header.total_len(),
            Some(batch.len()),
            "a cleaned batch is one whole batch"
        );
        let floor = self.next_offset.unwrap_or(self.base);
        assert!(
            header.base_offset() >= floor,
            "cleaned batches come in offset order: {} after {floor}",
            header.base_offset()
        );
        let len = batch.len() as u64;
        assert!(
            self.size + len <= LogConfig::MAX_SEGMENT_BYTES,
            "a cleaned segment stays within the largest segment (index positions are u32)"
        );
        let summary = BatchSummary::of(header, self.size, len);
        self.indexes.on_batch(&summary);
        self.buffer.push(&self.file, batch);
        self.size += len;
        self.next_offset = Some(summary.last_offset.plus(1));
        if self.buffer.pending() >= WRITE_CHUNK {
            self.write_pending().await?;
        }
        Ok(())
    }

    /// Bytes appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The offset after the last appended batch, if any.
    pub fn next_offset(&self) -> Option<Offset> {
        self.next_offset
    }

    /// Makes the segment durable under its `.cleaned` names: the data, cut to its
    /// exact size and fdatasynced, then both indexes and, when `aborted` is not
    /// empty, the aborted-transaction index (each fdatasynced). Their directory
    /// entries are synced once for the whole pass, by `swap::commit`, before
    /// the swap commits: a rename and directory fsync per file would commit an
    /// ext4 journal transaction each, which every produce on the disk pays for.
    pub async fn finish(mut self, aborted: &[AbortedTxn]) -> Result<CleanedSegment, LogError> {
        self.write_pending().await?;
        // The last write was padded to whole blocks: recovery accepts trailing
        // zeros, but the file is cut to the data so the sizes agree exactly.
        self.file.truncate(self.size).await.map_err(io)?;
        self.file.fdatasync().await.map_err(io)?;
        self.file.close().await.map_err(io)?;

        let next_offset = self.next_offset.unwrap_or(self.base);
        let mut indexes = self.indexes;
        indexes.finish();
        let dir = &self.dir;
        let base = self.base;
        write_synced(
            &cleaned_file(dir, base, INDEX_SUFFIX),
            indexes.offsets.encode(),
        )
        .await?;
        write_synced(
            &cleaned_file(dir, base, TIME_INDEX_SUFFIX),
            indexes.times.encode(),
        )
        .await?;
        if !aborted.is_empty() {
            assert!(
                aborted
                    .iter()
                    .all(|txn| txn.last_offset >= base && txn.last_offset < next_offset),
                "a segment's aborted transactions have their markers in it"
            );
            write_synced(
                &cleaned_file(dir, base, TXN_INDEX_SUFFIX),
                txn_index::encode_entries(aborted),
            )
            .await?;
        }
        Ok(CleanedSegment {
            base,
            size: self.size,
            next_offset,
            indexes,
        })
    }

    /// Writes every pending byte (the partial last block padded with zeros, and
    /// rewritten whole by the next write).
    async fn write_pending(&mut self) -> Result<(), LogError> {
        let Some(write) = self.buffer.take(&self.file) else {
            return Ok(());
        };
        let len = write.buf.len();
        let written = self
            .file
            .write_rc_at(write.buf, write.start)
            .await
            .map_err(io)?;
        if written != len {
            return Err(LogError::Io(std::io::Error::other(format!(
                "short write of a cleaned segment at {}: {written} of {len} bytes",
                write.start
            ))));
        }
        Ok(())
    }
}

/// A cleaned segment written and synced under its `.cleaned` names.
#[derive(Debug)]
pub struct CleanedSegment {
    pub base: Offset,
    pub size: u64,
    /// The offset after its last batch; `base` when it is empty.
    pub next_offset: Offset,
    pub indexes: SegmentIndexes,
}

impl CleanedSegment {
    /// Once the swap renamed its files to their final names: opens `<base>.log`
    /// as a sealed segment (read-only, no writer) with these indexes.
    pub async fn open(self, dir: &Path) -> Result<Segment, LogError> {
        let path = segment_file(dir, self.base, LOG_SUFFIX);
        let file = open_segment_file(&path, false).await?;
        let on_disk = file.file_size().await.map_err(io)?;
        if on_disk != self.size {
            return Err(LogError::Corrupt(format!(
                "{}: {on_disk} bytes on disk, the cleaner wrote {}",
                path.display(),
                self.size
            )));
        }
        Ok(Segment {
            base: self.base,
            file: Rc::new(file),
            reader: Rc::new(SegmentReader::new(path.clone())),
            path,
            size: self.size,
            next_offset: self.next_offset,
            indexes: self.indexes,
            writer: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::checkpoint::RECOVERY_POINT_FILE;
    use crate::storage::recovery;
    use crate::storage::scan::HeaderScanner;
    use crate::storage::segment::SegmentSettings;
    use crate::storage::test_support::{batch_at, run, small_config};
    use crate::types::ProducerId;

    const BATCHES: i64 = 1200;

    /// Batches at offsets 100, 107, 114, ...: two records each, gaps between.
    fn cleaned_batches() -> Vec<Vec<u8>> {
        (0..BATCHES)
            .map(|n| batch_at(100 + 7 * n, 2, 500))
            .collect()
    }

    fn rename_to_final(dir: &Path, base: Offset) {
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            std::fs::rename(
                cleaned_file(dir, base, suffix),
                segment_file(dir, base, suffix),
            )
            .unwrap();
        }
    }

    #[test]
    fn names_add_the_cleaned_suffix() {
        assert_eq!(
            cleaned_file(Path::new("/d"), Offset(42), INDEX_SUFFIX),
            Path::new("/d/00000000000000000042.index.cleaned")
        );
    }

    #[test]
    fn recovery_accepts_a_cleaned_segment_and_open_reads_it() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let dir = dir.path();
            let base = Offset(100);
            // A stale file of an earlier pass is replaced, not appended to.
            std::fs::write(cleaned_file(dir, base, LOG_SUFFIX), b"stale").unwrap();
            let mut writer = CleanedSegmentWriter::create(dir, base, 1024).await.unwrap();
            assert_eq!(writer.next_offset(), None);
            let batches = cleaned_batches();
            for batch in &batches {
                writer.append(batch).await.unwrap();
            }
            let size: u64 = batches.iter().map(|b| b.len() as u64).sum();
            assert!(size > WRITE_CHUNK as u64, "more than one write");
            assert_eq!(writer.size(), size);
            let next_offset = Offset(100 + 7 * (BATCHES - 1) + 2);
            assert_eq!(writer.next_offset(), Some(next_offset));
            let aborted = [AbortedTxn {
                producer_id: ProducerId(9),
                first_offset: Offset(100),
                last_offset: Offset(107),
                last_stable_offset: Offset(100),
            }];
            let cleaned = writer.finish(&aborted).await.unwrap();
            assert_eq!((cleaned.size, cleaned.next_offset), (size, next_offset));
            assert!(cleaned.indexes.offsets.len() > 100);
            let log_len = std::fs::metadata(cleaned_file(dir, base, LOG_SUFFIX))
                .unwrap()
                .len();
            assert_eq!(log_len, size, "the file ends exactly at the data");
            assert_eq!(
                std::fs::read(cleaned_file(dir, base, TXN_INDEX_SUFFIX)).unwrap(),
                txn_index::encode_entries(&aborted)
            );

            rename_to_final(dir, base);
            // No recovery point: recovery validates every batch from the start.
            assert!(!dir.join(RECOVERY_POINT_FILE).exists());
            let settings = SegmentSettings::of(&small_config());
            let recovered = recovery::recover(dir, &settings, Offset::ZERO)
                .await
                .unwrap();
            assert!(recovered.report.events.is_empty(), "{:?}", recovered.report);
            assert_eq!(recovered.report.batches_validated, BATCHES as u64);
            let [segment] = &recovered.segments[..] else {
                panic!("one segment");
            };
            assert_eq!(
                (segment.base, segment.size, segment.next_offset),
                (base, size, next_offset)
            );
            assert_eq!(
                segment.indexes.offsets.encode(),
                cleaned.indexes.offsets.encode()
            );
            drop(recovered);

            let segment = cleaned.open(dir).await.unwrap();
            assert!(segment.writer.is_none());
            let source = segment.source();
            let mut scanner = HeaderScanner::new(&source, 0, segment.size);
            let mut count = 0;
            while let Some(summary) = scanner.next().await.unwrap() {
                assert_eq!(summary.base_offset, Offset(100 + 7 * count));
                count += 1;
            }
            assert_eq!(count, BATCHES);
            let last = &batches[BATCHES as usize - 1];
            let read = source
                .read(size - last.len() as u64, last.len())
                .await
                .unwrap();
            assert_eq!(&read[..], &last[..]);
        });
    }

    #[test]
    fn an_empty_cleaned_segment_ends_at_its_base() {
        run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let writer = CleanedSegmentWriter::create(dir.path(), Offset(5), 1024)
                .await
                .unwrap();
            let cleaned = writer.finish(&[]).await.unwrap();
            assert_eq!((cleaned.size, cleaned.next_offset), (0, Offset(5)));
            assert!(!cleaned_file(dir.path(), Offset(5), TXN_INDEX_SUFFIX).exists());
            assert!(cleaned_file(dir.path(), Offset(5), INDEX_SUFFIX).exists());
        });
    }
}
