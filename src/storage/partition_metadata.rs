//! `partition.metadata` in a partition directory: the id of the topic the
//! replica belongs to, as Kafka writes it. A directory left by a deleted topic
//! (its broker was down when the deletion was applied) must not be served as
//! the same-named topic created later: the ids differ, and it is removed.

use std::io::Write;
use std::path::Path;

const FILE: &str = "partition.metadata";

/// What the directory holds for a topic with `topic_id`.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    /// No directory, or one without the file (written before it existed).
    Unknown,
    Same,
    /// Another topic's: the directory is stale.
    Other(String),
}

pub fn owner(dir: &Path, topic_id: &str) -> std::io::Result<Owner> {
    match std::fs::read_to_string(dir.join(FILE)) {
        Ok(text) => {
            let id = text
                .lines()
                .find_map(|line| line.strip_prefix("topic_id: "))
                .map(str::trim)
                .unwrap_or_default();
            Ok(if id == topic_id {
                Owner::Same
            } else {
                Owner::Other(id.to_string())
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Owner::Unknown),
        Err(error) => Err(error),
    }
}

/// Writes the file (synced) into an existing directory.
pub fn write(dir: &Path, topic_id: &str) -> std::io::Result<()> {
    let temp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(format!("version: 0\ntopic_id: {topic_id}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_knows_its_topic() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(owner(dir.path(), "a").unwrap(), Owner::Unknown);
        write(dir.path(), "a").unwrap();
        assert_eq!(owner(dir.path(), "a").unwrap(), Owner::Same);
        assert_eq!(owner(dir.path(), "b").unwrap(), Owner::Other("a".into()));
    }
}
