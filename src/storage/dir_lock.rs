//! The data directory's `.lock` file: one broker per data directory, as Kafka does.
//! The lock is an `flock` held for the life of the process, so the kernel releases
//! it when the process dies, however it dies.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    #[error("{path}: the data directory is in use by another process")]
    InUse { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl DirLock {
    /// Takes the lock on `<dir>/.lock` without waiting.
    pub fn acquire(dir: &Path) -> Result<DirLock, DirLockError> {
        let path = dir.join(".lock");
        let shown = path.display().to_string();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DirLockError::Io {
                path: shown.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let source = std::io::Error::last_os_error();
            return Err(if source.raw_os_error() == Some(libc::EWOULDBLOCK) {
                DirLockError::InUse { path: shown }
            } else {
                DirLockError::Io {
                    path: shown,
                    source,
                }
            });
        }
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(DirLockError::InUse { .. })
        ));
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
