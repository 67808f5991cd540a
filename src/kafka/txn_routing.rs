//! Sends transactional work to the shard coordinating the transactional id: the
//! owner of its `__transaction_state` partition (created on first use) when
//! this node leads it; an id coordinated by another broker is NOT_COORDINATOR.

use std::rc::Rc;

use crate::cluster::controller::NewTopic;
use crate::cluster::image::PartitionKey;
use crate::kafka::routing::coordinator_owner;
use crate::protocol::error_code::ErrorCode;
use crate::shard::call::ShardCall;
use crate::shard::calls::topics::CreateTopics;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::txn::{TRANSACTION_STATE_TOPIC, partition_for};

/// Partitions of `__transaction_state`, creating it (compacted, internal, with
/// `transaction.state.log.replication.factor` replicas and
/// `min.insync.replicas` = `transaction.state.log.min.isr`) through the
/// controller if it does not exist yet.
pub async fn state_topic_partitions(shard: &Rc<Shard>) -> Result<i32, ErrorCode> {
    let existing = |shard: &Shard| {
        shard
            .image()
            .topic(TRANSACTION_STATE_TOPIC)
            .map(|topic| topic.partition_count())
    };
    if let Some(count) = existing(shard) {
        return Ok(count);
    }
    let topic = NewTopic {
        name: TRANSACTION_STATE_TOPIC.to_string(),
        partitions: shard.config().transaction_state_log_num_partitions,
        // As for `__consumer_offsets`: never created with fewer replicas.
        replication_factor: shard.config().transaction_state_log_replication_factor(),
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            (
                "segment.bytes".to_string(),
                Some(
                    shard
                        .config()
                        .transaction_state_log_segment_bytes
                        .to_string(),
                ),
            ),
            (
                "min.insync.replicas".to_string(),
                Some(shard.config().transaction_state_log_min_isr().to_string()),
            ),
        ],
        validate_only: false,
    };
    // Another request may create it at the same time: TOPIC_ALREADY_EXISTS is
    // fine, the table says whether it is there.
    let results = shard
        .call(CONTROLLER_SHARD, CreateTopics(vec![topic]))
        .await;
    for result in results
        .iter()
        .filter(|r| !matches!(r.error, ErrorCode::None | ErrorCode::TopicAlreadyExists))
    {
        tracing::error!(error = ?result.error, message = ?result.message, "cannot create {TRANSACTION_STATE_TOPIC}");
    }
    existing(shard).ok_or(ErrorCode::CoordinatorNotAvailable)
}

/// The `__transaction_state` partition that coordinates `transactional_id`, of
/// `partitions`.
pub fn coordinator_partition(transactional_id: &str, partitions: i32) -> PartitionKey {
    PartitionKey {
        topic: TRANSACTION_STATE_TOPIC.to_string(),
        partition: partition_for(transactional_id, partitions),
    }
}

/// Runs `call` on the shard coordinating `transactional_id`: NOT_COORDINATOR
/// when another broker leads its partition, COORDINATOR_NOT_AVAILABLE when none
/// does.
pub async fn call<C: ShardCall>(
    shard: &Rc<Shard>,
    transactional_id: &str,
    call: C,
) -> Result<C::Reply, ErrorCode> {
    if transactional_id.is_empty() {
        return Err(ErrorCode::InvalidRequest);
    }
    let partitions = state_topic_partitions(shard).await?;
    let key = coordinator_partition(transactional_id, partitions);
    let owner = coordinator_owner(shard.image().route(&key))?;
    Ok(shard.call(owner, call).await)
}
