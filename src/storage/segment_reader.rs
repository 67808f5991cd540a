//! A segment's second descriptor: opened without O_DIRECT, read only, for sends
//! from the page cache to a socket (`sendfile`). The append path writes with
//! O_DIRECT, which the kernel keeps coherent with cached pages. Opened on the first
//! send, since most partitions are read from the tail cache only.

use std::cell::OnceCell;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::storage::error::LogError;

#[derive(Debug)]
pub struct SegmentReader {
    path: PathBuf,
    file: OnceCell<Arc<File>>,
}

impl SegmentReader {
    pub fn new(path: PathBuf) -> SegmentReader {
        SegmentReader {
            path,
            file: OnceCell::new(),
        }
    }

    /// The descriptor, shareable with the thread that sends it; an unlinked
    /// segment stays readable through it.
    pub fn file(&self) -> Result<Arc<File>, LogError> {
        if let Some(file) = self.file.get() {
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(File::open(&self.path).map_err(LogError::Io)?);
        Ok(Arc::clone(self.file.get_or_init(|| file)))
    }
}
