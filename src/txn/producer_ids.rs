//! Producer id allocation, on the controller shard. Ids are handed out from blocks;
//! the end of the current block is persisted before any id of it is used, so ids
//! are never reused across restarts (unused ones of a block are skipped).

use std::path::{Path, PathBuf};

const BLOCK: i64 = 1000;
const FILE: &str = "producer-ids";

pub struct ProducerIds {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIds {
    /// Starts after the last block a previous run reserved.
    pub fn load(data_dir: &Path) -> Result<ProducerIds, String> {
        let path = data_dir.join("meta").join(FILE);
        let reserved = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{}: not a number", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(format!("{}: {error}", path.display())),
        };
        Ok(ProducerIds {
            path,
            next: reserved,
            block_end: reserved,
        })
    }

    /// The next producer id. Reserving a new block writes and syncs the file; this
    /// blocks the shard briefly once per 1000 ids.
    pub fn allocate(&mut self) -> std::io::Result<i64> {
        if self.next >= self.block_end {
            let end = self.block_end + BLOCK;
            let dir = self.path.parent().expect("meta directory");
            std::fs::create_dir_all(dir)?;
            let temp = self.path.with_extension("tmp");
            std::fs::write(&temp, format!("{end}\n"))?;
            std::fs::File::open(&temp)?.sync_all()?;
            std::fs::rename(&temp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()?;
            self.block_end = end;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = ProducerIds::load(dir.path()).unwrap();
        assert_eq!(ids.allocate().unwrap(), 0);
        assert_eq!(ids.allocate().unwrap(), 1);
        let mut again = ProducerIds::load(dir.path()).unwrap();
        assert_eq!(again.allocate().unwrap(), 1000);
    }
}
