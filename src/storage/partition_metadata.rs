//! `partition.metadata` in a partition directory: the id of the topic the
//! replica belongs to, as Kafka writes it. A directory left by a deleted topic
//! (its broker was down when the deletion was applied) must not be served as
//! the same-named topic created later: the ids differ, and it is moved aside.

use std::io::Write;
use std::path::Path;

pub const FILE: &str = "partition.metadata";

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
            let id = topic_id_in(&text).unwrap_or_default();
            // A file a crash left empty or cut says nothing: never a reason
            // to delete the directory.
            Ok(match id {
                "" => Owner::Unknown,
                id if id == topic_id => Owner::Same,
                id => Owner::Other(id.to_string()),
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Owner::Unknown),
        Err(error) => Err(error),
    }
}

/// The topic id the file's text names, if any.
pub fn topic_id_in(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id: "))
        .map(str::trim)
}

/// Writes the file into an existing directory, atomically but not synced: a
/// file lost or cut by a crash reads as [`Owner::Unknown`] and is written again
/// at the next open, and two fsyncs per partition would make creating
/// thousands of partitions seconds slower.
pub fn write(dir: &Path, topic_id: &str) -> std::io::Result<()> {
    let temp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(format!("version: 0\ntopic_id: {topic_id}\n").as_bytes())?;
    std::fs::rename(&temp, dir.join(FILE))
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
        std::fs::write(dir.path().join(FILE), "version: 0\n").unwrap();
        assert_eq!(
            owner(dir.path(), "b").unwrap(),
            Owner::Unknown,
            "a cut file"
        );
    }
}
