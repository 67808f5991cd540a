//! The topic table: names, ids, partition placement on shards and topic configs,
//! persisted in `<data>/meta/topics.toml`. Shard 0 owns the file and changes it; the
//! other shards get copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::types::LeaderEpoch;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// The topic id, 32 hex digits.
    pub id: String,
    /// The owning shard of each partition, by partition index.
    pub shards: Vec<usize>,
    /// Topic config overrides (Kafka names).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// The leader epoch of each partition, by partition index; missing entries
    /// are epoch 0 (a single node never elects another leader, so the file stays
    /// as older versions wrote it until an epoch changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leader_epochs: Vec<i32>,
}

impl TopicMeta {
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::parse_str(&self.id).unwrap_or_default()
    }

    pub fn leader_epoch(&self, index: usize) -> LeaderEpoch {
        LeaderEpoch(self.leader_epochs.get(index).copied().unwrap_or(0))
    }

    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.shards.len()).expect("partition counts fit in i32")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicTable {
    #[serde(default)]
    pub topics: BTreeMap<String, TopicMeta>,
}

/// Why a topic name is refused (Kafka's `Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be {name:?}"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters, the limit is 249",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {bad:?}; legal characters are ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

impl TopicTable {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("meta").join("topics.toml")
    }

    pub fn load(data_dir: &Path) -> Result<TopicTable, String> {
        let path = Self::path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(TopicTable::default()),
            Err(error) => Err(format!("{}: {error}", path.display())),
        }
    }

    /// Writes the table atomically (temp file, fsync, rename, fsync directory).
    /// Topic changes are rare admin operations, so blocking I/O is acceptable here.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let path = Self::path(data_dir);
        let dir = path.parent().expect("meta directory");
        std::fs::create_dir_all(dir)?;
        let temp = path.with_extension("toml.tmp");
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Places `partitions` new partitions on the least loaded shards.
    pub fn place(&self, partitions: usize, shard_count: usize) -> Vec<usize> {
        let mut load = vec![0usize; shard_count];
        for topic in self.topics.values() {
            for &shard in &topic.shards {
                if let Some(count) = load.get_mut(shard) {
                    *count += 1;
                }
            }
        }
        (0..partitions)
            .map(|_| {
                let shard = (0..shard_count)
                    .min_by_key(|&s| (load[s], s))
                    .expect("at least one shard");
                load[shard] += 1;
                shard
            })
            .collect()
    }
}

/// A fresh random topic id.
pub fn new_topic_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafkas_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "a b", "topic/x", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn placement_balances_by_partition_count_and_round_trips() {
        let mut table = TopicTable::default();
        let shards = table.place(3, 2);
        assert_eq!(shards, vec![0, 1, 0]);
        table.topics.insert(
            "a".into(),
            TopicMeta {
                id: new_topic_id(),
                shards,
                configs: BTreeMap::new(),
                leader_epochs: Vec::new(),
            },
        );
        assert_eq!(table.place(3, 2), vec![1, 0, 1]);
        let dir = tempfile::tempdir().unwrap();
        table.save(dir.path()).unwrap();
        assert_eq!(TopicTable::load(dir.path()).unwrap(), table);
        assert_ne!(table.topics["a"].uuid(), uuid::Uuid::nil());
    }
}
