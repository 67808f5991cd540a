//! A partition leader's ISR change (Kafka's AlterPartition, KIP-497): the
//! controller shard sends it to the active controller with this broker's id
//! and epoch, and answers once every shard of this node applied the committed
//! change, so the caller's next image holds the new ISR and partition epoch.

use std::rc::Rc;

use crate::cluster::controller::AlterPartitionRequest;
use crate::cluster::image::PartitionKey;
use crate::protocol::error_code::ErrorCode;
use crate::shard::call::ShardCall;
use crate::shard::metadata::rpc::{ControllerRequest, ControllerResponse};
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::types::{LeaderEpoch, NodeId};

/// Sent to [`CONTROLLER_SHARD`] from any shard: make `isr` the ISR of `key`,
/// decided against the leader and partition epochs of the caller's image.
#[derive(Debug)]
pub struct AlterPartition {
    pub key: PartitionKey,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: i32,
    pub isr: Vec<NodeId>,
}

impl ShardCall for AlterPartition {
    /// The controller's refusal (STALE_BROKER_EPOCH, NOT_LEADER_OR_FOLLOWER,
    /// FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, INVALID_REQUEST,
    /// INELIGIBLE_REPLICA, UNKNOWN_TOPIC_OR_PARTITION), NOT_CONTROLLER when no
    /// controller answered, UNKNOWN_SERVER_ERROR when it could not commit.
    type Reply = Result<(), ErrorCode>;

    async fn run(self, shard: Rc<Shard>) -> Result<(), ErrorCode> {
        assert_eq!(
            shard.id(),
            CONTROLLER_SHARD,
            "ISR changes go through the controller shard"
        );
        let node = shard
            .metadata()
            .expect("the controller shard runs the metadata node");
        // Not registered (yet, or again): no epoch the controller would accept.
        let broker_epoch = node.broker_epoch().ok_or(ErrorCode::StaleBrokerEpoch)?;
        let request = AlterPartitionRequest {
            broker: node.identity().node,
            broker_epoch,
            topic: self.key.topic,
            partition: self.key.partition,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr: self.isr,
        };
        match node
            .ask_controller(ControllerRequest::AlterPartition(request))
            .await
        {
            ControllerResponse::AlterPartition {
                error: ErrorCode::None,
                offset,
            } => {
                node.published(offset).await;
                Ok(())
            }
            ControllerResponse::AlterPartition { error, .. } => Err(error),
            ControllerResponse::Failed(reason) => {
                tracing::warn!(%reason, "AlterPartition not committed");
                Err(ErrorCode::UnknownServerError)
            }
            other => {
                tracing::debug!(?other, "AlterPartition: no active controller answered");
                Err(ErrorCode::NotController)
            }
        }
    }
}
