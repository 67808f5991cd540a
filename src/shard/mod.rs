//! Executors per core: each shard owns its partitions, its listener and its memory,
//! and reaches the others only through typed calls over the channel mesh.

pub mod bounded;
pub mod call;
pub mod calls;
pub mod followers;
pub mod group_host;
pub mod image_updates;
pub mod isr;
pub mod mesh;
pub mod metadata;
pub mod remote_txn;
pub mod runtime;
pub mod txn_host;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::LocalSender;

use crate::cluster::image::{MetadataImage, PartitionKey};
use crate::config::BrokerConfig;
use crate::net::kafka_client::ClientError;
use crate::partition::Partition;
use crate::partition::set::PartitionSet;
use crate::protocol::error_code::ErrorCode;
use crate::shard::call::ErasedReply;
use crate::shard::image_updates::ImageUpdates;
use crate::shard::mesh::Envelope;
use crate::types::{NodeId, ShardId};

/// The shard that runs the controller: topic changes and producer ids.
pub const CONTROLLER_SHARD: ShardId = ShardId(0);

/// Everything one shard owns.
pub struct Shard {
    id: ShardId,
    count: usize,
    config: BrokerConfig,
    image: RefCell<Rc<MetadataImage>>,
    partitions: PartitionSet,
    senders: Senders<Envelope>,
    pending: RefCell<HashMap<u64, LocalSender<ErasedReply>>>,
    next_request: Cell<u64>,
    /// The consumer groups this shard coordinates.
    groups: crate::group::coordinator::Coordinator,
    /// The transactional ids this shard coordinates.
    transactions: crate::txn::coordinator::TxnCoordinator,
    /// Metadata images waiting to be applied, one at a time.
    image_updates: ImageUpdates,
    /// Controller shard only: this node's part in the cluster's metadata.
    metadata: std::cell::OnceCell<Rc<crate::shard::metadata::MetadataNode>>,
    /// Controller shard only: the block producer ids are handed out of.
    producer_ids: RefCell<crate::txn::producer_ids::ProducerIds>,
    /// Fetching the replicas this shard follows from their leaders.
    fetchers: crate::partition::fetcher::ReplicaFetchers,
    /// Connections to other brokers for transaction markers and verification.
    peers: crate::net::peers::PeerClients,
}

impl Shard {
    pub fn new(senders: Senders<Envelope>, config: BrokerConfig) -> Shard {
        let fetchers = crate::partition::fetcher::ReplicaFetchers::new(
            crate::partition::fetcher::FetcherSettings::of(&config),
        );
        Shard {
            id: ShardId(senders.peer_id()),
            count: senders.nr_consumers(),
            config,
            image: RefCell::new(Rc::new(MetadataImage::default())),
            partitions: PartitionSet::default(),
            senders,
            pending: RefCell::new(HashMap::new()),
            next_request: Cell::new(0),
            groups: crate::group::coordinator::Coordinator::default(),
            transactions: crate::txn::coordinator::TxnCoordinator::default(),
            image_updates: ImageUpdates::default(),
            metadata: std::cell::OnceCell::new(),
            producer_ids: RefCell::default(),
            fetchers,
            peers: crate::net::peers::PeerClients::default(),
        }
    }

    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Every shard of the broker, this one included.
    pub fn all_shards(&self) -> impl Iterator<Item = ShardId> + use<> {
        (0..self.count).map(ShardId)
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The current metadata image; hold the `Rc` for a consistent view.
    pub fn image(&self) -> Rc<MetadataImage> {
        Rc::clone(&self.image.borrow())
    }

    pub fn owner_of(&self, key: &PartitionKey) -> Option<ShardId> {
        self.image.borrow().owner_of(key)
    }

    /// A partition this shard owns, or the error a request for it gets.
    pub fn partition(&self, key: &PartitionKey) -> Result<Rc<Partition>, ErrorCode> {
        self.partitions.get_or_error(key)
    }

    /// Sends `request` at `version` to broker `broker`, at its address in the
    /// current image, over this shard's pooled connections
    /// ([`crate::net::peers`]); a broker not live in the image fails to connect.
    pub async fn send_to_broker<R: kafka_protocol::protocol::Request>(
        &self,
        broker: NodeId,
        request: &R,
        version: i16,
        timeout: std::time::Duration,
    ) -> Result<R::Response, ClientError> {
        let address = followers::address_of(&self.image(), broker).ok_or_else(|| {
            ClientError::Connect(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("broker {} has no live address", broker.0),
            ))
        })?;
        self.peers
            .send(broker, address, request, version, timeout)
            .await
    }

    /// The controller shard's metadata node (`None` on other shards, and
    /// before it started).
    pub fn metadata(&self) -> Option<Rc<crate::shard::metadata::MetadataNode>> {
        self.metadata.get().cloned()
    }

    /// Makes `node` this shard's metadata node (the controller shard, once).
    pub fn set_metadata(&self, node: Rc<crate::shard::metadata::MetadataNode>) {
        assert_eq!(
            self.id, CONTROLLER_SHARD,
            "the controller shard runs the metadata node"
        );
        assert!(
            self.metadata.set(node).is_ok(),
            "the metadata node starts once"
        );
    }

    pub fn groups(&self) -> &crate::group::coordinator::Coordinator {
        &self.groups
    }

    pub fn transactions(&self) -> &crate::txn::coordinator::TxnCoordinator {
        &self.transactions
    }

    /// Every partition this shard has open.
    pub fn open_partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions.open()
    }

    /// Partitions this shard owns but could not open, with the reason.
    pub fn offline_partitions(&self) -> Vec<(PartitionKey, String)> {
        self.partitions.offline()
    }

    /// Flushes and closes every partition (clean shutdown), after stopping
    /// the replica fetchers.
    pub async fn close_partitions(&self) {
        self.fetchers.stop_all();
        let partitions = self.partitions.drain();
        bounded::for_each(partitions, bounded::PARTITION_JOBS, |partition| async move {
            if let Err(error) = partition.close().await {
                tracing::error!(partition = %partition.key(), %error, "closing a partition failed");
            }
        })
        .await;
    }
}
