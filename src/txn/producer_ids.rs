//! Producer ids on a broker: handed out from blocks the active controller
//! allocates in the metadata log, so no two brokers (and no restart) ever hand
//! out the same id; the unused ids of a block are skipped after a restart.

use std::path::Path;

/// The file in which a single-node broker written before the metadata log
/// reserved its blocks; read once, when its directory is upgraded.
const LEGACY_FILE: &str = "producer-ids";

/// The end of the last block a pre-metadata-log broker reserved (0: none).
pub fn reserved(data_dir: &Path) -> Result<i64, String> {
    let path = data_dir.join("meta").join(LEGACY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{}: not a number", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// The block this broker hands ids out of.
#[derive(Debug, Default)]
pub struct ProducerIds {
    next: i64,
    end: i64,
}

impl ProducerIds {
    /// The next id of the current block, if any is left.
    pub fn take(&mut self) -> Option<i64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Replaces the block with `count` ids from `first`.
    pub fn refill(&mut self, first: i64, count: i64) {
        assert!(first >= 0 && count > 0, "a block holds ids");
        self.next = first;
        self.end = first + count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_block_until_it_is_used_up() {
        let mut ids = ProducerIds::default();
        assert_eq!(ids.take(), None);
        ids.refill(1000, 2);
        assert_eq!(ids.take(), Some(1000));
        assert_eq!(ids.take(), Some(1001));
        assert_eq!(ids.take(), None);
    }

    #[test]
    fn the_legacy_reservation_is_read_once_present() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(reserved(dir.path()).unwrap(), 0);
        std::fs::create_dir_all(dir.path().join("meta")).unwrap();
        std::fs::write(dir.path().join("meta").join(LEGACY_FILE), "3000\n").unwrap();
        assert_eq!(reserved(dir.path()).unwrap(), 3000);
    }
}
