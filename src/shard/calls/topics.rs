//! Topic changes: the controller shard asks the active controller
//! ([`crate::shard::metadata`]), which decides and commits them; the answer
//! comes once every shard of this node applied the committed change. Each
//! shard then opens the replicas it now keeps and closes and deletes those
//! that are gone.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use crate::cluster::controller::{NewTopic, PartitionGrowth, TopicChangeResult};
use crate::cluster::image::{
    Identity, LocalPlacement, MetadataImage, PartitionImage, PartitionKey,
};
use crate::cluster::state::ClusterState;
use crate::cluster::topic_config::TopicConfigs;
use crate::partition::{Partition, Transition};
use crate::protocol::error_code::ErrorCode;
use crate::shard::call::ShardCall;
use crate::shard::image_updates::Turn;
use crate::shard::metadata::rpc::{ControllerRequest, ControllerResponse};
use crate::shard::{CONTROLLER_SHARD, Shard, bounded};
use crate::storage::partition_metadata::{self, Owner};

#[derive(Debug)]
pub struct CreateTopics(pub Vec<NewTopic>);

#[derive(Debug)]
pub struct CreatePartitions {
    pub topics: Vec<PartitionGrowth>,
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

/// From the controller shard to every shard: the committed cluster state and
/// this node's placement of its replicas, to build the image from.
#[derive(Debug)]
pub struct ApplyMetadata {
    pub state: Arc<ClusterState>,
    pub placement: Arc<LocalPlacement>,
    pub identity: Identity,
}

impl ShardCall for CreateTopics {
    type Reply = Vec<TopicChangeResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<TopicChangeResult> {
        let names = self.0.iter().map(|t| t.name.clone()).collect();
        change(&shard, ControllerRequest::CreateTopics(self.0), names).await
    }
}

impl ShardCall for CreatePartitions {
    type Reply = Vec<TopicChangeResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<TopicChangeResult> {
        let names = self.topics.iter().map(|t| t.name.clone()).collect();
        let request = ControllerRequest::CreatePartitions {
            topics: self.topics,
            validate_only: self.validate_only,
        };
        change(&shard, request, names).await
    }
}

impl ShardCall for SetTopicConfigs {
    type Reply = TopicChangeResult;

    async fn run(self, shard: Rc<Shard>) -> TopicChangeResult {
        let request = ControllerRequest::SetTopicConfigs {
            topic: self.topic.clone(),
            configs: self.configs,
            validate_only: self.validate_only,
        };
        let mut results = change(&shard, request, vec![self.topic]).await;
        assert_eq!(results.len(), 1, "one topic, one result");
        results.remove(0)
    }
}

impl ShardCall for DeleteTopics {
    type Reply = Vec<TopicChangeResult>;

    async fn run(self, shard: Rc<Shard>) -> Vec<TopicChangeResult> {
        let names = self.0.clone();
        change(&shard, ControllerRequest::DeleteTopics(self.0), names).await
    }
}

impl ShardCall for ApplyMetadata {
    type Reply = ();
    /// It is what the others wait for.
    const WAITS_FOR_CALLERS_IMAGE: bool = false;

    async fn run(self, shard: Rc<Shard>) {
        let image =
            MetadataImage::build(&self.state, &self.placement, &self.identity, shard.config());
        apply_image(&shard, image).await;
    }
}

/// Has the active controller make a change and answers once this node applied
/// it; a change no controller answered reports NOT_CONTROLLER (clients retry).
async fn change(
    shard: &Rc<Shard>,
    request: ControllerRequest,
    names: Vec<String>,
) -> Vec<TopicChangeResult> {
    assert_eq!(
        shard.id(),
        CONTROLLER_SHARD,
        "topic changes go through the controller shard"
    );
    let node = shard
        .metadata()
        .expect("the controller shard runs the metadata node");
    let (error, message) = match node.ask_controller(request).await {
        ControllerResponse::Topics { results, offset } => {
            node.published(offset).await;
            return results;
        }
        ControllerResponse::Failed(message) => (ErrorCode::UnknownServerError, message),
        other => (
            ErrorCode::NotController,
            format!("no active controller answered: {other:?}"),
        ),
    };
    names
        .into_iter()
        .map(|name| TopicChangeResult {
            name,
            error,
            message: Some(message.clone()),
        })
        .collect()
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
            Ok(partition) => match partition.update(placement, configs).await {
                Ok(Transition::BecameLeader) => load_coordinator(shard, &partition).await,
                Ok(Transition::StoppedLeading) => unload_coordinator(shard, &image, &key),
                Ok(Transition::Unchanged) => {}
                Err(error) => {
                    tracing::warn!(partition = %key, %error, "partition metadata not applied");
                }
            },
            Err(_) => to_open.push(key),
        }
    }
    to_open.sort();
    let opener = Rc::clone(shard);
    let opening = Rc::clone(&image);
    bounded::for_each(to_open, bounded::PARTITION_JOBS, move |key| {
        let shard = Rc::clone(&opener);
        let image = Rc::clone(&opening);
        async move { open_partition(&shard, &image, key).await }
    })
    .await;
    crate::shard::followers::follow(shard, &image);
}

/// Forgets the coordinator state of an internal topic's partition this
/// replica no longer leads.
fn unload_coordinator(shard: &Shard, image: &MetadataImage, key: &PartitionKey) {
    let Some(partitions) = image.topic(&key.topic).map(|t| t.partition_count()) else {
        return;
    };
    if key.topic == crate::group::coordinator_key::OFFSETS_TOPIC {
        shard.groups().unload(key.partition, partitions);
    }
    if key.topic == crate::txn::TRANSACTION_STATE_TOPIC {
        shard.transactions().unload(key.partition, partitions);
    }
}

/// Loads the group or transaction coordinator state a partition of an
/// internal topic holds, now that this replica leads it.
async fn load_coordinator(shard: &Rc<Shard>, partition: &Rc<Partition>) {
    let key = partition.key();
    if key.topic == crate::group::coordinator_key::OFFSETS_TOPIC {
        crate::group::load::load_partition(shard.as_ref(), key.partition, partition).await;
    }
    if key.topic == crate::txn::TRANSACTION_STATE_TOPIC {
        let host: Rc<dyn crate::txn::host::TxnHost> = Rc::clone(shard) as _;
        crate::txn::load::load_partition(&host, key.partition, partition).await;
    }
}

/// Opens (recovering) a partition this shard now owns; one that cannot be opened
/// is recorded offline, loudly.
async fn open_partition(shard: &Rc<Shard>, image: &MetadataImage, key: PartitionKey) {
    let (placement, configs) = owned_partition(image, &key);
    let dir = shard.config().data_dir.join(key.to_string());
    let topic_id = image
        .topic(&key.topic)
        .expect("owned partitions are in the image")
        .id
        .simple()
        .to_string();
    let opened = match claim_dir(&dir, &topic_id) {
        Ok(known) => Partition::open(&dir, key.clone(), image.node(), placement, configs)
            .await
            .and_then(|opened| {
                if !known {
                    partition_metadata::write(&dir, &topic_id)?;
                }
                Ok(opened)
            }),
        Err(error) => Err(error.into()),
    };
    match opened {
        Ok((partition, report)) => {
            if !report.events.is_empty() {
                tracing::warn!(partition = %key, events = ?report.events, "partition recovered");
            }
            tracing::info!(
                topic = %key.topic,
                partition = key.partition,
                log_start_offset = partition.log_start_offset().0,
                log_end_offset = partition.log_end_offset().0,
                high_watermark = partition.high_watermark().0,
                segments = report.segments,
                batches_validated = report.batches_validated,
                recovery_actions = report.events.len(),
                "partition opened"
            );
            let partition = Rc::new(partition);
            shard.partitions.insert(Rc::clone(&partition));
            if partition.is_leader() {
                load_coordinator(shard, &partition).await;
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

/// Moves aside what a deleted topic of the same name left in `dir` (this
/// broker was down when the deletion was applied): it must not be served as
/// the new topic's data.
/// Returns whether `dir` already names the topic.
fn claim_dir(dir: &std::path::Path, topic_id: &str) -> std::io::Result<bool> {
    match partition_metadata::owner(dir, topic_id)? {
        Owner::Other(stale) => {
            // Moved aside, not deleted: an operator may still want it.
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let aside = dir.with_file_name(format!(
                "{name}.{stale}-{}-stale",
                crate::types::TimestampMs::now().0
            ));
            tracing::warn!(dir = %dir.display(), aside = %aside.display(), stale_topic_id = %stale, topic_id, "a deleted topic's partition directory: moving it aside");
            std::fs::rename(dir, &aside)?;
            Ok(false)
        }
        Owner::Same => Ok(true),
        Owner::Unknown => Ok(false),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_topics_directory_is_moved_aside_and_never_served() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("orders.v1-0");
        std::fs::create_dir(&dir).unwrap();
        assert!(!claim_dir(&dir, "new").unwrap(), "no file yet: unknown");
        partition_metadata::write(&dir, "old").unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"old data").unwrap();
        assert!(!claim_dir(&dir, "new").unwrap());
        assert!(
            !dir.exists(),
            "the stale directory is not opened as the new topic"
        );
        let aside: Vec<_> = std::fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(aside.len(), 1);
        assert!(aside[0].starts_with("orders.v1-0.old-") && aside[0].ends_with("-stale"));
        std::fs::create_dir(&dir).unwrap();
        partition_metadata::write(&dir, "new").unwrap();
        assert!(claim_dir(&dir, "new").unwrap());
    }
}
