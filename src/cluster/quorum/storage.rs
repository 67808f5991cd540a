//! The durable Raft log of the metadata quorum, and raft-rs's `Storage` over it.
//!
//! Files under the quorum directory, each a sequence of records
//! `u32 length | u32 CRC32C of the payload | payload` (little endian):
//! - `raft.log`: protobuf `Entry` records, contiguous indexes, all after the snapshot
//!   (a crash between writing a snapshot and rewriting the log may leave older ones
//!   first; they are skipped at open). Appended in place; a torn tail is truncated at
//!   open. The whole log is also held in memory: the metadata log is small and bounded
//!   by snapshots.
//! - `hardstate`: one protobuf `HardState` record, replaced atomically.
//! - `snapshot`: one protobuf `Snapshot` record (metadata + state machine bytes),
//!   replaced atomically.
//!
//! Appends are written to the page cache on the reactor (small) and fsynced on a
//! blocking thread; whole-file replacements run entirely on a blocking thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as PbMessage;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

const LOG_FILE: &str = "raft.log";
const HARD_STATE_FILE: &str = "hardstate";
const SNAPSHOT_FILE: &str = "snapshot";
const RECORD_HEADER: usize = 8;
/// Largest record accepted when reading; anything longer is a torn or corrupt length.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// The log, hard state and snapshot of one quorum member, on disk and in memory.
pub struct DiskLog {
    dir: PathBuf,
    file: File,
    /// Entries after `snapshot`'s index, contiguous.
    entries: Vec<Entry>,
    /// File offset of each entry's record, parallel to `entries`, for truncation.
    positions: Vec<u64>,
    file_len: u64,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
}

impl DiskLog {
    /// Opens (or creates) the files under `dir`. `voters` are the raft ids of the fixed
    /// voter set: the configuration never changes, so it is not read from disk.
    pub fn open(dir: &Path, voters: Vec<u64>) -> io::Result<DiskLog> {
        std::fs::create_dir_all(dir)?;
        let mut conf_state = ConfState::default();
        conf_state.set_voters(voters);
        let snapshot = match read_single(&dir.join(SNAPSHOT_FILE))? {
            Some(bytes) => Snapshot::parse_from_bytes(&bytes).map_err(invalid)?,
            None => Snapshot::default(),
        };
        let snap_index = snapshot.get_metadata().index;
        let snap_term = snapshot.get_metadata().term;
        let mut hard_state = match read_single(&dir.join(HARD_STATE_FILE))? {
            Some(bytes) => HardState::parse_from_bytes(&bytes).map_err(invalid)?,
            None => HardState::default(),
        };
        let (mut entries, mut positions, file_len) = read_log(&dir.join(LOG_FILE))?;
        // Entries at or before the snapshot are left over from a crash between writing
        // the snapshot and rewriting the log. What follows them is kept only if the log
        // agrees with the snapshot at its index; otherwise it followed another history.
        let consistent = match entries.first() {
            None => true,
            Some(first) if first.index > snap_index => {
                assert_eq!(
                    first.index,
                    snap_index + 1,
                    "metadata log in {} starts after a gap from the snapshot",
                    dir.display()
                );
                true
            }
            Some(_) => entries
                .iter()
                .any(|e| e.index == snap_index && e.term == snap_term),
        };
        if consistent {
            let skip = entries.iter().take_while(|e| e.index <= snap_index).count();
            entries.drain(..skip);
            positions.drain(..skip);
        } else {
            entries.clear();
            positions.clear();
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))?;
        file.set_len(file_len)?;
        // The torn tail is cut durably before anything is appended after it.
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        let mut log = DiskLog {
            dir: dir.to_path_buf(),
            file,
            entries,
            positions,
            file_len,
            hard_state: HardState::default(),
            conf_state,
            snapshot,
        };
        if !consistent {
            log.rewrite_log_blocking()?;
        }
        // The hard state is fsynced after the entries it commits, so a commit past the
        // log can only mean a damaged directory; a snapshot newer than the commit is a
        // crash between installing a snapshot and saving the hard state.
        hard_state.commit = hard_state.commit.max(snap_index);
        hard_state.term = hard_state.term.max(snap_term);
        assert!(
            hard_state.commit <= log.last(),
            "metadata hard state in {} commits {} past the log's end {}",
            dir.display(),
            hard_state.commit,
            log.last()
        );
        log.hard_state = hard_state;
        Ok(log)
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn first(&self) -> u64 {
        self.snapshot.get_metadata().index + 1
    }

    pub fn last(&self) -> u64 {
        self.snapshot.get_metadata().index + self.entries.len() as u64
    }

    /// The stored entries in `[low, high)`, which must be in the log.
    pub fn slice(&self, low: u64, high: u64) -> &[Entry] {
        assert!(low >= self.first() && high <= self.last() + 1 && low <= high);
        let base = self.first();
        &self.entries[(low - base) as usize..(high - base) as usize]
    }

    /// Appends entries (replacing any conflicting suffix) to memory and the page cache;
    /// `sync` makes them durable.
    pub fn append(&mut self, new: &[Entry]) -> io::Result<()> {
        let Some(head) = new.first() else {
            return Ok(());
        };
        assert!(
            head.index >= self.first() && head.index <= self.last() + 1,
            "append at {} outside the log [{}, {}]",
            head.index,
            self.first(),
            self.last() + 1
        );
        let keep = (head.index - self.first()) as usize;
        if keep < self.entries.len() {
            let at = self.positions[keep];
            self.file.set_len(at)?;
            self.file_len = at;
            self.entries.truncate(keep);
            self.positions.truncate(keep);
        }
        let mut buf = Vec::new();
        for e in new {
            self.positions.push(self.file_len + buf.len() as u64);
            put_record(&mut buf, &e.write_to_bytes().map_err(invalid)?);
            self.entries.push(e.clone());
        }
        self.file.write_all(&buf)?;
        self.file_len += buf.len() as u64;
        Ok(())
    }

    /// Makes appended entries durable, on a blocking thread.
    pub async fn sync(&self) -> io::Result<()> {
        let file = self.file.try_clone()?;
        glommio::executor()
            .spawn_blocking(move || file.sync_data())
            .await
    }

    /// Replaces the hard state durably.
    pub async fn set_hard_state(&mut self, hs: HardState) -> io::Result<()> {
        let bytes = hs.write_to_bytes().map_err(invalid)?;
        write_atomic(self.dir.clone(), HARD_STATE_FILE, bytes).await?;
        self.hard_state = hs;
        Ok(())
    }

    /// Records a commit index learnt without a hard state change (LightReady).
    pub async fn set_commit(&mut self, commit: u64) -> io::Result<()> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(hs).await
    }

    /// Installs a snapshot received from the leader: saves it, then drops the log.
    pub async fn install_snapshot(&mut self, snap: Snapshot) -> io::Result<()> {
        let meta = snap.get_metadata();
        let bytes = snap.write_to_bytes().map_err(invalid)?;
        write_atomic(self.dir.clone(), SNAPSHOT_FILE, bytes).await?;
        let mut hs = self.hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        self.snapshot = snap;
        self.entries.clear();
        self.positions.clear();
        self.rewrite_log().await?;
        self.set_hard_state(hs).await
    }

    /// Takes a snapshot of the state at `index` (applied, so stored here) with `data`,
    /// saves it, and drops the log up to it.
    pub async fn compact(&mut self, index: u64, data: Vec<u8>) -> io::Result<()> {
        assert!(index >= self.first() && index <= self.last());
        let term = self.slice(index, index + 1)[0].term;
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        let bytes = snap.write_to_bytes().map_err(invalid)?;
        write_atomic(self.dir.clone(), SNAPSHOT_FILE, bytes).await?;
        let drop = (index + 1 - self.first()) as usize;
        self.entries.drain(..drop);
        self.snapshot = snap;
        self.rewrite_log().await
    }

    /// Rewrites `raft.log` with the entries in memory, atomically, on a blocking thread.
    async fn rewrite_log(&mut self) -> io::Result<()> {
        let (bytes, positions) = self.encode_log()?;
        let dir = self.dir.clone();
        let file = glommio::executor()
            .spawn_blocking(move || replace_log(&dir, &bytes))
            .await?;
        self.finish_rewrite(file, positions);
        Ok(())
    }

    fn rewrite_log_blocking(&mut self) -> io::Result<()> {
        let (bytes, positions) = self.encode_log()?;
        let file = replace_log(&self.dir, &bytes)?;
        self.finish_rewrite(file, positions);
        Ok(())
    }

    fn encode_log(&self) -> io::Result<(Vec<u8>, Vec<u64>)> {
        let mut bytes = Vec::new();
        let mut positions = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            positions.push(bytes.len() as u64);
            put_record(&mut bytes, &e.write_to_bytes().map_err(invalid)?);
        }
        Ok((bytes, positions))
    }

    fn finish_rewrite(&mut self, file: File, positions: Vec<u64>) {
        self.file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = file;
        self.positions = positions;
    }
}

impl raft::Storage for DiskLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = self.slice(low, high).to_vec();
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snap = self.snapshot.get_metadata();
        if idx == snap.index {
            return Ok(snap.term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.slice(idx, idx + 1)[0].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Ok(self.snapshot.clone())
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn put_record(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("record fits u32");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The payload of the record at the start of `buf` and the bytes it spans, or None
/// if the record is incomplete or fails its CRC.
fn take_record(buf: &[u8]) -> Option<(&[u8], usize)> {
    if buf.len() < RECORD_HEADER {
        return None;
    }
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD_BYTES || buf.len() - RECORD_HEADER < len {
        return None;
    }
    let payload = &buf[RECORD_HEADER..RECORD_HEADER + len];
    (crc32c::crc32c(payload) == crc).then_some((payload, RECORD_HEADER + len))
}

/// Reads a file holding exactly one record; a missing file is None. Such files are
/// only ever replaced by rename, so a bad record means the disk lost data.
fn read_single(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (payload, used) = take_record(&bytes)
        .unwrap_or_else(|| panic!("{} is corrupt (bad length or CRC)", path.display()));
    assert_eq!(used, bytes.len(), "{} has trailing bytes", path.display());
    Ok(Some(payload.to_vec()))
}

/// Reads `raft.log`: its entries, their offsets and the length of the valid prefix.
/// Stops at the first incomplete or corrupt record (a write torn by a crash).
fn read_log(path: &Path) -> io::Result<(Vec<Entry>, Vec<u64>, u64)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.seek(SeekFrom::Start(0))?;
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut positions = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some((payload, used)) = take_record(&bytes[at..]) else {
            break;
        };
        let Ok(entry) = Entry::parse_from_bytes(payload) else {
            break;
        };
        if let Some(prev) = entries.last() {
            assert_eq!(
                entry.index,
                prev.index + 1,
                "{} holds non-contiguous entries",
                path.display()
            );
        }
        positions.push(at as u64);
        entries.push(entry);
        at += used;
    }
    if at < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            valid_bytes = at,
            dropped_bytes = bytes.len() - at,
            "metadata log has a torn or corrupt tail; truncating it"
        );
    }
    Ok((entries, positions, at as u64))
}

/// Writes `name` in `dir` atomically: temp file, fsync, rename, fsync of the directory.
async fn write_atomic(dir: PathBuf, name: &'static str, payload: Vec<u8>) -> io::Result<()> {
    glommio::executor()
        .spawn_blocking(move || {
            let mut record = Vec::with_capacity(payload.len() + RECORD_HEADER);
            put_record(&mut record, &payload);
            replace_file(&dir, name, &record).map(drop)
        })
        .await
}

fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<File> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()?;
    Ok(f)
}

fn replace_log(dir: &Path, bytes: &[u8]) -> io::Result<File> {
    replace_file(dir, LOG_FILE, bytes)?;
    OpenOptions::new().append(true).open(dir.join(LOG_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        let mut e = Entry {
            index,
            term,
            ..Default::default()
        };
        e.set_data(data.to_vec().into());
        e
    }

    fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::default()
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn entries_and_hard_state_survive_reopen_and_conflicts_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run(move || async move {
            let mut log = DiskLog::open(&path, vec![1]).unwrap();
            log.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")])
                .unwrap();
            log.append(&[entry(2, 2, b"B")]).unwrap();
            log.sync().await.unwrap();
            let hs = HardState {
                term: 2,
                vote: 1,
                commit: 2,
                ..Default::default()
            };
            log.set_hard_state(hs).await.unwrap();
            drop(log);
            let log = DiskLog::open(&path, vec![1]).unwrap();
            assert_eq!(log.last(), 2);
            assert_eq!(log.term(2).unwrap(), 2);
            assert_eq!(log.slice(2, 3)[0].get_data(), b"B");
            assert_eq!(log.hard_state().vote, 1);
            assert_eq!(log.hard_state().commit, 2);
        });
    }

    #[test]
    fn torn_tail_is_truncated_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run(move || async move {
            let mut log = DiskLog::open(&path, vec![1]).unwrap();
            log.append(&[entry(1, 1, b"a"), entry(2, 1, b"bbbb")])
                .unwrap();
            log.sync().await.unwrap();
            drop(log);
            let file = path.join(LOG_FILE);
            let len = std::fs::metadata(&file).unwrap().len();
            OpenOptions::new()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(len - 2)
                .unwrap();
            let mut log = DiskLog::open(&path, vec![1]).unwrap();
            assert_eq!(log.last(), 1);
            // The next append lands right after the valid prefix.
            log.append(&[entry(2, 1, b"x")]).unwrap();
            log.sync().await.unwrap();
            drop(log);
            let log = DiskLog::open(&path, vec![1]).unwrap();
            assert_eq!(log.last(), 2);
            assert_eq!(log.slice(2, 3)[0].get_data(), b"x");
        });
    }

    #[test]
    fn compaction_keeps_the_snapshot_and_later_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run(move || async move {
            let mut log = DiskLog::open(&path, vec![1, 2]).unwrap();
            let es: Vec<Entry> = (1..=5).map(|i| entry(i, 1, &[i as u8])).collect();
            log.append(&es).unwrap();
            log.sync().await.unwrap();
            log.compact(3, b"state".to_vec()).await.unwrap();
            assert_eq!(log.first(), 4);
            assert!(
                log.entries(2, 4, None, GetEntriesContext::empty(false))
                    .is_err()
            );
            drop(log);
            let log = DiskLog::open(&path, vec![1, 2]).unwrap();
            assert_eq!((log.first(), log.last()), (4, 5));
            assert_eq!(log.term(3).unwrap(), 1);
            let snap = log.snapshot(0, 2).unwrap();
            assert_eq!(snap.get_data(), b"state");
            assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1, 2]);
        });
    }

    #[test]
    fn installed_snapshot_replaces_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run(move || async move {
            let mut log = DiskLog::open(&path, vec![1]).unwrap();
            log.append(&[entry(1, 1, b"a"), entry(2, 1, b"b")]).unwrap();
            log.sync().await.unwrap();
            let mut snap = Snapshot::default();
            snap.mut_metadata().index = 10;
            snap.mut_metadata().term = 3;
            snap.set_data(b"s".to_vec().into());
            log.install_snapshot(snap).await.unwrap();
            log.append(&[entry(11, 3, b"k")]).unwrap();
            log.sync().await.unwrap();
            drop(log);
            let log = DiskLog::open(&path, vec![1]).unwrap();
            assert_eq!((log.first(), log.last()), (11, 11));
            assert_eq!(log.hard_state().commit, 10);
            assert_eq!(log.hard_state().term, 3);
        });
    }
}
