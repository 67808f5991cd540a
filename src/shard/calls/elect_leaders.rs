//! Leader elections an administrator asks for (Kafka's ElectLeaders): the
//! controller shard sends them to the active controller and answers once every
//! shard of this node applied the committed leader changes, so a Metadata
//! request that follows names the new leaders.

use std::rc::Rc;

use crate::cluster::controller::{Election, ElectionResult};
use crate::protocol::error_code::ErrorCode;
use crate::shard::call::ShardCall;
use crate::shard::metadata::rpc::{ControllerRequest, ControllerResponse};
use crate::shard::{CONTROLLER_SHARD, Shard};

/// Sent to [`CONTROLLER_SHARD`] from any shard: elect leaders of `partitions`
/// (each a topic and partition index), or of every partition when `None`.
#[derive(Debug)]
pub struct ElectLeaders {
    pub election: Election,
    pub partitions: Option<Vec<(String, i32)>>,
}

impl ShardCall for ElectLeaders {
    /// Each partition's result, or, when no election was made, why:
    /// NOT_CONTROLLER when no active controller answered, UNKNOWN_SERVER_ERROR
    /// when it could not commit.
    type Reply = Result<Vec<ElectionResult>, (ErrorCode, String)>;

    async fn run(self, shard: Rc<Shard>) -> Self::Reply {
        assert_eq!(
            shard.id(),
            CONTROLLER_SHARD,
            "elections go through the controller shard"
        );
        let node = shard
            .metadata()
            .expect("the controller shard runs the metadata node");
        let request = ControllerRequest::ElectLeaders {
            election: self.election,
            partitions: self.partitions,
        };
        match node.ask_controller(request).await {
            ControllerResponse::ElectLeaders { results, offset } => {
                node.published(offset).await;
                Ok(results)
            }
            ControllerResponse::Failed(reason) => Err((ErrorCode::UnknownServerError, reason)),
            other => Err((
                ErrorCode::NotController,
                format!("no active controller answered: {other:?}"),
            )),
        }
    }
}
