//! Topic changes: the controller shard decides them ([`crate::cluster::controller`]),
//! persists the topic table and has every shard apply the new metadata image
//! before it answers; each shard then opens the partitions it now owns and closes
//! and deletes those that are gone.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use crate::cluster::controller::{self, Limits, NewTopic, Proposal, TopicChangeResult};
use crate::cluster::image::{MetadataImage, PartitionImage, PartitionKey};
use crate::cluster::topic_config::TopicConfigs;
use crate::cluster::topic_table::TopicTable;
use crate::partition::Partition;
use crate::protocol::error_code::ErrorCode;
use crate::shard::call::ShardCall;
use crate::shard::image_updates::Turn;
use crate::shard::{CONTROLLER_SHARD, Shard, bounded};

#[derive(Debug)]
pub struct CreateTopics(pub Vec<NewTopic>);

#[derive(Debug)]
pub struct CreatePartitions {
    pub topics: Vec<(String, i32)>,
    pub validate_only: bool,
}

/// Replaces a topic's config overrides.
#[derive(Debug)]
pub struct SetTopicConfigs {
    pub topic: String,
    pub configs: BTreeMap<String, String>,
    pub validate_only: bool,
}

#[derive(Debug)]
pub struct DeleteTopics(pub Vec<String>);

/// From the controller to every shard: the new topic table, to build the image
/// of this metadata version from.
#[derive(Debug)]
pub struct ApplyTopics {
    pub version: u64,
    pub table: TopicTable,
}

impl ShardCall for CreateTopics {
    type Reply = Vec<TopicChangeResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<TopicChangeResult> {
        let _turn = controller_turn(&shard).await;
        let proposal = controller::create_topics(&current_table(&shard), self.0, limits(&shard));
        publish(&shard, proposal).await
    }
}

impl ShardCall for CreatePartitions {
    type Reply = Vec<TopicChangeResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<TopicChangeResult> {
        let _turn = controller_turn(&shard).await;
        let proposal = controller::create_partitions(
            &current_table(&shard),
            self.topics,
            self.validate_only,
            limits(&shard),
        );
        publish(&shard, proposal).await
    }
}

impl ShardCall for SetTopicConfigs {
    type Reply = TopicChangeResult;

    async fn run(self, shard: Rc<Shard>) -> TopicChangeResult {
        let _turn = controller_turn(&shard).await;
        let proposal = controller::set_topic_configs(
            &current_table(&shard),
            self.topic,
            self.configs,
            self.validate_only,
        );
        let mut results = publish(&shard, proposal).await;
        assert_eq!(results.len(), 1, "one topic, one result");
        results.remove(0)
    }
}

impl ShardCall for DeleteTopics {
    type Reply = Vec<TopicChangeResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<TopicChangeResult> {
        let _turn = controller_turn(&shard).await;
        let proposal = controller::delete_topics(&current_table(&shard), self.0);
        publish(&shard, proposal).await
    }
}

impl ShardCall for ApplyTopics {
    type Reply = ();
    /// It is what the others wait for.
    const WAITS_FOR_CALLERS_IMAGE: bool = false;

    async fn run(self, shard: Rc<Shard>) {
        apply_table(&shard, self.version, self.table).await;
    }
}

/// Waits for the controller's turn: a change is decided on the table every shard
/// already applied, and is answered (even as TOPIC_ALREADY_EXISTS or a no-op)
/// only once every shard applied the changes before it. Without it, a second
/// request saw the topic in the controller's table while other shards still had
/// the old image, and answered a caller whose own shard did not know the topic
/// yet (COORDINATOR_NOT_AVAILABLE to a consumer's first OffsetFetch).
async fn controller_turn(shard: &Shard) -> glommio::sync::Permit<'_> {
    assert_eq!(
        shard.id(),
        CONTROLLER_SHARD,
        "topic changes go through the controller shard"
    );
    shard
        .controller_turn
        .acquire_permit(1)
        .await
        .expect("the controller's semaphore is never closed")
}

fn current_table(shard: &Shard) -> TopicTable {
    assert_eq!(
        shard.id(),
        CONTROLLER_SHARD,
        "topic changes go through the controller shard"
    );
    shard.table.borrow().clone()
}

/// Builds and applies the image of a single-node topic table.
pub async fn apply_table(shard: &Rc<Shard>, version: u64, table: TopicTable) {
    let node = crate::types::NodeId(shard.config().node_id);
    let mut state = crate::cluster::state::ClusterState {
        offset: version,
        ..Default::default()
    };
    state.brokers.insert(
        node,
        crate::cluster::state::BrokerState {
            id: node,
            incarnation: String::new(),
            epoch: 0,
            host: shard.config().listen.ip().to_string(),
            port: shard.config().listen.port(),
            rack: None,
            fenced: false,
        },
    );
    let mut placement = crate::cluster::image::LocalPlacement::new();
    for (name, meta) in &table.topics {
        let partitions = meta
            .shards
            .iter()
            .enumerate()
            .map(|(index, &s)| {
                placement.insert(
                    PartitionKey {
                        topic: name.clone(),
                        partition: index as i32,
                    },
                    crate::types::ShardId(s),
                );
                crate::cluster::state::PartitionState {
                    replicas: vec![node],
                    isr: vec![node],
                    leader: node,
                    leader_epoch: meta.leader_epoch(index),
                    partition_epoch: 0,
                }
            })
            .collect();
        state.topics.insert(
            name.clone(),
            crate::cluster::state::TopicState {
                id: meta.id.clone(),
                partitions,
                configs: meta.configs.clone(),
            },
        );
    }
    *shard.table.borrow_mut() = table;
    let identity = crate::cluster::image::Identity {
        node,
        cluster_id: crate::kafka::metadata::CLUSTER_ID.into(),
    };
    let image = MetadataImage::build(&state, &placement, &identity, Some(node), shard.config());
    apply_image(shard, image).await;
}

fn limits(shard: &Shard) -> Limits {
    Limits {
        default_partitions: shard.config().num_partitions,
        node_id: shard.config().node_id,
        shard_count: shard.all_shards().count(),
    }
}

/// Persists and publishes the proposal's table if it changed anything; if that
/// fails, the changes that had succeeded report a storage error instead.
async fn publish(shard: &Rc<Shard>, proposal: Proposal) -> Vec<TopicChangeResult> {
    let Proposal {
        table,
        mut results,
        changed,
    } = proposal;
    if !changed {
        return results;
    }
    if let Err(error) = table.save(&shard.config().data_dir) {
        let message = format!("saving the topic table: {error}");
        for result in results.iter_mut().filter(|r| r.error == ErrorCode::None) {
            result.error = ErrorCode::KafkaStorageError;
            result.message = Some(message.clone());
        }
        return results;
    }
    let version = shard.image().version() + 1;
    for target in shard.all_shards() {
        let call = ApplyTopics {
            version,
            table: table.clone(),
        };
        shard.call(target, call).await;
    }
    results
}

/// Makes `image` this shard's metadata image, opening and closing partitions;
/// returns once it (or a newer image) is applied.
pub async fn apply_image(shard: &Rc<Shard>, image: MetadataImage) {
    match shard.image_updates.submit(image) {
        Turn::Wait(generation) => shard.image_updates.applied(generation).await,
        Turn::Apply => {
            while let Some((generation, image)) = shard.image_updates.next() {
                let version = image.version();
                apply_one(shard, Rc::new(image)).await;
                shard.image_updates.finished(generation, version);
            }
        }
    }
}

async fn apply_one(shard: &Rc<Shard>, image: Rc<MetadataImage>) {
    *shard.image.borrow_mut() = Rc::clone(&image);
    let owned: HashSet<PartitionKey> = image.owned_by(shard.id()).collect();
    let gone: Vec<Rc<Partition>> = shard
        .partitions
        .keys()
        .into_iter()
        .filter(|key| !owned.contains(key))
        .filter_map(|key| shard.partitions.remove(&key))
        .collect();
    bounded::for_each(gone, bounded::PARTITION_JOBS, |partition| async move {
        if let Err(error) = partition.close().await {
            tracing::warn!(partition = %partition.key(), %error, "closing a deleted partition");
        }
        if let Err(error) = std::fs::remove_dir_all(partition.dir()) {
            tracing::warn!(dir = %partition.dir().display(), %error, "removing a deleted partition");
        }
    })
    .await;
    let mut to_open = Vec::new();
    for key in owned {
        let (placement, configs) = owned_partition(&image, &key);
        match shard.partitions.get_or_error(&key) {
            Ok(partition) => {
                if let Err(error) = partition.update(placement, configs) {
                    tracing::warn!(partition = %key, %error, "topic config not applied");
                }
            }
            Err(_) => to_open.push(key),
        }
    }
    to_open.sort();
    let opener = Rc::clone(shard);
    bounded::for_each(to_open, bounded::PARTITION_JOBS, move |key| {
        let shard = Rc::clone(&opener);
        let image = Rc::clone(&image);
        async move { open_partition(&shard, &image, key).await }
    })
    .await;
}

/// Opens (recovering) a partition this shard now owns; one that cannot be opened
/// is recorded offline, loudly.
async fn open_partition(shard: &Rc<Shard>, image: &MetadataImage, key: PartitionKey) {
    let (placement, configs) = owned_partition(image, &key);
    let dir = shard.config().data_dir.join(key.to_string());
    match Partition::open(&dir, key.clone(), placement, configs).await {
        Ok((partition, report)) => {
            if !report.events.is_empty() {
                tracing::warn!(partition = %key, events = ?report.events, "partition recovered");
            }
            let partition = Rc::new(partition);
            shard.partitions.insert(Rc::clone(&partition));
            if key.topic == crate::group::coordinator_key::OFFSETS_TOPIC {
                crate::group::load::load_partition(shard.as_ref(), key.partition, &partition).await;
            }
            if key.topic == crate::txn::TRANSACTION_STATE_TOPIC {
                let host: Rc<dyn crate::txn::host::TxnHost> = Rc::clone(shard) as _;
                crate::txn::load::load_partition(&host, key.partition, &partition).await;
            }
        }
        Err(error) => {
            tracing::error!(
                partition = %key,
                dir = %dir.display(),
                %error,
                "cannot open partition; it stays offline and its requests get KAFKA_STORAGE_ERROR"
            );
            shard.partitions.set_offline(key, error.to_string());
        }
    }
}

/// The placement and topic configs of a partition `image` gives this shard.
fn owned_partition<'a>(
    image: &'a MetadataImage,
    key: &PartitionKey,
) -> (&'a PartitionImage, Rc<TopicConfigs>) {
    let topic = image
        .topic(&key.topic)
        .expect("owned partitions are in the image");
    let placement = topic
        .partition(key.partition)
        .expect("owned partitions are in the image");
    (placement, Rc::clone(&topic.configs))
}
