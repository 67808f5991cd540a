//! Small checkpoint files written atomically: temp file, fdatasync, rename,
//! fsync of the directory. Text formats follow Kafka's (version line, then data).

use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, Directory};

use crate::storage::error::{LogError, io};
use crate::types::{LeaderEpoch, Offset};

pub const LOG_START_OFFSET_FILE: &str = "log-start-offset.checkpoint";
pub const HIGH_WATERMARK_FILE: &str = "high-watermark.checkpoint";
pub const RECOVERY_POINT_FILE: &str = "recovery-point.checkpoint";
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Where the log cleaner's next pass starts: the first offset it has not mapped.
pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset.checkpoint";

const VERSION: &str = "0";

/// Replaces `dir/name` with `contents` so that a crash leaves the old or the new file,
/// never a mix. A file that already holds `contents` is left alone: it got there
/// through this function, synced, and callers of one file take turns (the log's
/// flush lock), so no rename of it can still be unsynced. An idle partition then
/// costs reads, not fsyncs, at every checkpoint, open and close (10,000 of them
/// made start and stop take minutes).
pub async fn write_atomically(dir: &Path, name: &str, contents: Vec<u8>) -> Result<(), LogError> {
    let final_path = dir.join(name);
    if read_optional(&final_path).await?.as_deref() == Some(contents.as_slice()) {
        return Ok(());
    }
    let temp_path: PathBuf = dir.join(format!("{name}.tmp"));
    let file = BufferedFile::create(&temp_path).await.map_err(io)?;
    let len = contents.len();
    let written = file.write_at(contents, 0).await.map_err(io)?;
    if written != len {
        return Err(LogError::Io(std::io::Error::other(format!(
            "short write of {}: {written} of {len} bytes",
            temp_path.display()
        ))));
    }
    file.fdatasync().await.map_err(io)?;
    file.close().await.map_err(io)?;
    glommio::io::rename(&temp_path, &final_path)
        .await
        .map_err(io)?;
    sync_dir(dir).await
}

/// fsyncs a directory so renames, creations and removals in it are durable.
pub async fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let directory = Directory::open(dir).await.map_err(io)?;
    directory.sync().await.map_err(io)?;
    directory.close().await.map_err(io)
}

/// Reads a whole small file; `None` if it does not exist.
pub async fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
        Ok(_) => {}
    }
    let file = BufferedFile::open(path).await.map_err(io)?;
    let len = file.file_size().await.map_err(io)?;
    let len = usize::try_from(len)
        .map_err(|_| LogError::Corrupt(format!("{} is too large", path.display())))?;
    if len == 0 {
        // glommio panics on a read of zero bytes (it cannot allocate the buffer).
        file.close().await.map_err(io)?;
        return Ok(Some(Vec::new()));
    }
    let bytes = file.read_at(0, len).await.map_err(io)?.to_vec();
    file.close().await.map_err(io)?;
    Ok(Some(bytes))
}

pub fn encode_offset(offset: Offset) -> Vec<u8> {
    assert!(offset.0 >= 0, "checkpointed offsets are never negative");
    format!("{VERSION}\n{}\n", offset.0).into_bytes()
}

pub fn decode_offset(bytes: &[u8]) -> Result<Offset, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    check_version(lines.next())?;
    let value = lines.next().ok_or("missing offset line")?;
    let offset: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("bad offset {value:?}"))?;
    if offset < 0 {
        return Err(format!("negative offset {offset}"));
    }
    Ok(Offset(offset))
}

pub fn encode_epochs(entries: &[(LeaderEpoch, Offset)]) -> Vec<u8> {
    assert!(
        entries
            .windows(2)
            .all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1),
        "leader epochs and their start offsets must increase"
    );
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (epoch, offset) in entries {
        text.push_str(&format!("{} {}\n", epoch.0, offset.0));
    }
    text.into_bytes()
}

pub fn decode_epochs(bytes: &[u8]) -> Result<Vec<(LeaderEpoch, Offset)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    check_version(lines.next())?;
    let count: usize = lines
        .next()
        .ok_or("missing count line")?
        .trim()
        .parse()
        .map_err(|_| "bad count line")?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let line = lines.next().ok_or("fewer entries than the count says")?;
        let mut fields = line.split_whitespace();
        let epoch = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or("bad epoch")?;
        let offset = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or("bad start offset")?;
        entries.push((LeaderEpoch(epoch), Offset(offset)));
    }
    Ok(entries)
}

fn check_version(line: Option<&str>) -> Result<(), String> {
    match line {
        Some(version) if version.trim() == VERSION => Ok(()),
        other => Err(format!("unknown checkpoint version {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        assert_eq!(decode_offset(&encode_offset(Offset(42))), Ok(Offset(42)));
        assert!(decode_offset(b"1\n42\n").is_err());
        assert!(decode_offset(b"0\n-3\n").is_err());
        let epochs = vec![(LeaderEpoch(0), Offset(0)), (LeaderEpoch(3), Offset(120))];
        assert_eq!(decode_epochs(&encode_epochs(&epochs)), Ok(epochs));
        assert!(decode_epochs(b"0\n2\n0 0\n").is_err());
    }

    #[test]
    fn unchanged_contents_are_not_rewritten() {
        use std::os::unix::fs::MetadataExt;
        crate::storage::test_support::run(|| async {
            let dir = tempfile::tempdir().unwrap();
            let inode = || std::fs::metadata(dir.path().join("c")).unwrap().ino();
            write_atomically(dir.path(), "c", b"one".to_vec())
                .await
                .unwrap();
            let first = inode();
            write_atomically(dir.path(), "c", b"one".to_vec())
                .await
                .unwrap();
            assert_eq!(inode(), first, "the same contents: no new file");
            write_atomically(dir.path(), "c", b"two".to_vec())
                .await
                .unwrap();
            assert_ne!(inode(), first, "new contents: renamed over");
            assert_eq!(std::fs::read(dir.path().join("c")).unwrap(), b"two");
            write_atomically(dir.path(), "c", Vec::new()).await.unwrap();
            write_atomically(dir.path(), "c", Vec::new()).await.unwrap();
            let read = read_optional(&dir.path().join("c")).await.unwrap();
            assert_eq!(read, Some(Vec::new()), "an empty file reads as empty");
        });
    }
}
