//! FindCoordinator: the coordinator of a group (or transactional id) is the
//! broker leading its `__consumer_offsets` (or `__transaction_state`) partition.
//! The topic is created first if missing, so the client's next request finds its
//! coordinator ready; a partition without a live leader is
//! COORDINATOR_NOT_AVAILABLE and the client asks again.

use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::image::{BrokerImage, MetadataImage, PartitionKey};
use crate::kafka::group_routing::{self, offsets_topic_partitions};
use crate::kafka::routing::live_broker;
use crate::kafka::txn_routing::{self, state_topic_partitions};
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
        let partition = match request.key_type {
            KEY_TYPE_GROUP => offsets_topic_partitions(shard)
                .await
                .map(|count| group_routing::coordinator_partition(&key, count)),
            KEY_TYPE_TRANSACTION => state_topic_partitions(shard)
                .await
                .map(|count| txn_routing::coordinator_partition(&key, count)),
            _ => Err(ErrorCode::InvalidRequest),
        };
        let image = shard.image();
        let found = partition.and_then(|partition| leader_of(&image, &partition));
        coordinators.push(coordinator(key, found));
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

/// The live broker leading `partition`, this one included.
fn leader_of<'a>(
    image: &'a MetadataImage,
    partition: &PartitionKey,
) -> Result<&'a BrokerImage, ErrorCode> {
    image
        .partition(partition)
        .and_then(|p| live_broker(image, p.leader))
        .ok_or(ErrorCode::CoordinatorNotAvailable)
}

fn coordinator(key: StrBytes, found: Result<&BrokerImage, ErrorCode>) -> Coordinator {
    let coordinator = Coordinator::default().with_key(key);
    match found {
        Err(error) => coordinator
            .with_error_code(error.code())
            .with_node_id(BrokerId(-1))
            .with_host(StrBytes::from_static_str(""))
            .with_port(-1),
        Ok(broker) => coordinator
            .with_node_id(BrokerId(broker.id.0))
            .with_host(StrBytes::from_string(broker.host.clone()))
            .with_port(i32::from(broker.port)),
    }
}
