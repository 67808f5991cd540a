//! The partitions one shard owns: the open ones, and the ones that could not be
//! opened with the reason (requests for those get KAFKA_STORAGE_ERROR).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::cluster::image::PartitionKey;
use crate::partition::Partition;
use crate::protocol::error_code::ErrorCode;

#[derive(Default)]
pub struct PartitionSet {
    open: RefCell<HashMap<PartitionKey, Rc<Partition>>>,
    offline: RefCell<HashMap<PartitionKey, String>>,
}

impl PartitionSet {
    pub fn get(&self, key: &PartitionKey) -> Option<Rc<Partition>> {
        self.open.borrow().get(key).cloned()
    }

    /// The partition, or the error a request for it gets: offline, or not here.
    pub fn get_or_error(&self, key: &PartitionKey) -> Result<Rc<Partition>, ErrorCode> {
        match self.get(key) {
            Some(partition) => Ok(partition),
            None if self.offline.borrow().contains_key(key) => Err(ErrorCode::KafkaStorageError),
            None => Err(ErrorCode::UnknownTopicOrPartition),
        }
    }

    pub fn insert(&self, partition: Rc<Partition>) {
        let key = partition.key().clone();
        self.offline.borrow_mut().remove(&key);
        let previous = self.open.borrow_mut().insert(key, partition);
        assert!(previous.is_none(), "a partition is opened once");
    }

    pub fn set_offline(&self, key: PartitionKey, reason: String) {
        debug_assert!(!self.open.borrow().contains_key(&key));
        self.offline.borrow_mut().insert(key, reason);
    }

    pub fn remove(&self, key: &PartitionKey) -> Option<Rc<Partition>> {
        self.offline.borrow_mut().remove(key);
        self.open.borrow_mut().remove(key)
    }

    /// Open and offline partitions, by key.
    pub fn keys(&self) -> Vec<PartitionKey> {
        let mut keys: Vec<PartitionKey> = self.open.borrow().keys().cloned().collect();
        keys.extend(self.offline.borrow().keys().cloned());
        keys
    }

    /// The offline partitions and why, sorted by key.
    pub fn offline(&self) -> Vec<(PartitionKey, String)> {
        let mut offline: Vec<_> = self
            .offline
            .borrow()
            .iter()
            .map(|(key, reason)| (key.clone(), reason.clone()))
            .collect();
        offline.sort();
        offline
    }

    /// Every open partition (a scrape visits them all).
    pub fn open(&self) -> Vec<Rc<Partition>> {
        self.open.borrow().values().cloned().collect()
    }

    /// Takes every open partition out (shutdown).
    pub fn drain(&self) -> Vec<Rc<Partition>> {
        self.open.borrow_mut().drain().map(|(_, p)| p).collect()
    }
}
