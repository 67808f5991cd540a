//! FindCoordinator: this broker coordinates every group and transaction. It
//! makes sure `__consumer_offsets` (group keys) or `__transaction_state`
//! (transactional ids) exists first, so the client's next request finds its
//! coordinator ready.

use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::group_routing::offsets_topic_partitions;
use crate::kafka::txn_routing::state_topic_partitions;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    shard: &Rc<Shard>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        request.coordinator_keys
    } else {
        vec![request.key]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let error = match request.key_type {
            KEY_TYPE_GROUP => offsets_topic_partitions(shard).await.err(),
            KEY_TYPE_TRANSACTION => state_topic_partitions(shard).await.err(),
            _ => Some(ErrorCode::InvalidRequest),
        };
        coordinators.push(coordinator(shard, key, error));
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let one = coordinators.pop().expect("one key before v4");
    FindCoordinatorResponse::default()
        .with_error_code(one.error_code)
        .with_error_message(one.error_message)
        .with_node_id(one.node_id)
        .with_host(one.host)
        .with_port(one.port)
}

fn coordinator(shard: &Shard, key: StrBytes, error: Option<ErrorCode>) -> Coordinator {
    let coordinator = Coordinator::default().with_key(key);
    match error {
        Some(error) => coordinator
            .with_error_code(error.code())
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::from_static_str(""))
            .with_port(-1),
        None => coordinator
            .with_node_id(BrokerId(shard.config().node_id))
            .with_host(StrBytes::from_string(
                shard.config().listen.ip().to_string(),
            ))
            .with_port(i32::from(shard.config().listen.port())),
    }
}
