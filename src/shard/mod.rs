//! Executors per core: each shard owns its partitions, its listener and its memory,
//! and reaches the others only through the channel mesh.

pub mod mesh;
pub mod messages;
pub mod reactor_heartbeat;
pub mod runtime;
pub mod service;
pub mod table_updates;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::LocalSender;

use crate::cluster::topic_table::TopicTable;
use crate::config::BrokerConfig;
use crate::protocol::error_code::ErrorCode;
use crate::shard::mesh::Envelope;
use crate::shard::messages::{PartitionKey, ShardResponse};
use crate::storage::PartitionLog;
use crate::storage::wake_list::WakeList;

/// The shard that owns the topic table and serializes topic changes.
pub const CONTROLLER_SHARD: usize = 0;

/// Everything one shard owns.
pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub config: BrokerConfig,
    pub topics: RefCell<TopicTable>,
    pub partitions: RefCell<HashMap<PartitionKey, Rc<PartitionLog>>>,
    /// Partitions this shard owns but could not open, with the reason: requests
    /// for them get KAFKA_STORAGE_ERROR.
    pub offline: RefCell<HashMap<PartitionKey, String>>,
    /// Woken after every append on this shard: fetches waiting for data re-check.
    pub appended: WakeList,
    senders: Senders<Envelope>,
    pending: RefCell<HashMap<u64, LocalSender<ShardResponse>>>,
    next_request: Cell<u64>,
    /// The consumer groups this shard coordinates.
    pub groups: crate::group::coordinator::Coordinator,
    /// Topic tables waiting to be applied, one at a time.
    table_updates: table_updates::TableUpdates,
    /// Controller shard only, loaded on first use.
    producer_ids: RefCell<Option<crate::txn::producer_ids::ProducerIds>>,
}

impl Shard {
    pub fn new(senders: Senders<Envelope>, config: BrokerConfig) -> Shard {
        Shard {
            id: senders.peer_id(),
            count: senders.nr_consumers(),
            config,
            topics: RefCell::new(TopicTable::default()),
            partitions: RefCell::new(HashMap::new()),
            offline: RefCell::new(HashMap::new()),
            appended: WakeList::default(),
            senders,
            pending: RefCell::new(HashMap::new()),
            next_request: Cell::new(0),
            groups: crate::group::coordinator::Coordinator::default(),
            table_updates: table_updates::TableUpdates::default(),
            producer_ids: RefCell::new(None),
        }
    }

    /// Flushes and closes every partition (clean shutdown).
    pub async fn close_partitions(&self) {
        let logs: Vec<_> = self.partitions.borrow_mut().drain().collect();
        for (key, log) in logs {
            if let Err(error) = log.close().await {
                tracing::error!(topic = %key.topic, partition = key.partition, %error, "closing a partition failed");
            }
        }
    }

    pub fn owner_of(&self, key: &PartitionKey) -> Option<usize> {
        let topics = self.topics.borrow();
        let topic = topics.topics.get(&key.topic)?;
        usize::try_from(key.partition)
            .ok()
            .and_then(|index| topic.shards.get(index).copied())
    }

    pub fn log(&self, key: &PartitionKey) -> Option<Rc<PartitionLog>> {
        self.partitions.borrow().get(key).cloned()
    }

    /// The open log of `key`, or the error a request for it gets: the partition
    /// is owned but offline, or unknown here.
    pub fn log_or_error(&self, key: &PartitionKey) -> Result<Rc<PartitionLog>, ErrorCode> {
        match self.log(key) {
            Some(log) => Ok(log),
            None if self.offline.borrow().contains_key(key) => Err(ErrorCode::KafkaStorageError),
            None => Err(ErrorCode::UnknownTopicOrPartition),
        }
    }
}
