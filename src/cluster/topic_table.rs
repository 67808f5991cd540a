//! The topic table single-node brokers wrote before the metadata log
//! (`<data>/meta/topics.toml`: names, ids, shards, configs, leader epochs), read
//! once to upgrade such a directory in place; and Kafka's topic-name rules.

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
    fn a_table_loads_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(TopicTable::load(dir.path()).unwrap(), TopicTable::default());
        std::fs::create_dir_all(dir.path().join("meta")).unwrap();
        std::fs::write(
            TopicTable::path(dir.path()),
            "[topics.a]\nid = \"0123456789abcdef0123456789abcdef\"\nshards = [0, 1]\n",
        )
        .unwrap();
        let table = TopicTable::load(dir.path()).unwrap();
        assert_eq!(table.topics["a"].partition_count(), 2);
        assert_ne!(table.topics["a"].uuid(), uuid::Uuid::nil());
    }
}
