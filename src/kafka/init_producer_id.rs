//! InitProducerId: idempotent producers get a fresh producer id at epoch 0 from
//! the controller shard; transactional producers are served by the transaction
//! coordinator of their id (epoch bump, fencing, KIP-360 recovery).

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::kafka::txn_routing;
use crate::protocol::error_code::ErrorCode;
use crate::shard::calls::producer_id::AllocateProducerId;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::txn::requests::InitTxnProducer;
use crate::txn::state::error_code_for_client;
use crate::types::ProducerEpoch;

pub async fn handle(
    shard: &Rc<Shard>,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(transactional_id) = request.transactional_id {
        // v3+ clients recovering from an abortable error name their current id.
        let expected = (version >= 3 && request.producer_id.0 >= 0).then_some((
            crate::types::ProducerId(request.producer_id.0),
            ProducerEpoch(request.producer_epoch),
        ));
        let call = InitTxnProducer {
            transactional_id: transactional_id.0.to_string(),
            timeout_ms: request.transaction_timeout_ms,
            expected,
        };
        return match txn_routing::call(shard, &transactional_id.0, call).await {
            Ok(Ok((id, epoch))) => response
                .with_producer_id(ProducerId(id.0))
                .with_producer_epoch(epoch.0),
            Ok(Err(error)) | Err(error) => {
                response.with_error_code(error_code_for_client(error, version >= 4).code())
            }
        };
    }
    match shard.call(CONTROLLER_SHARD, AllocateProducerId).await {
        Some(id) => response
            .with_producer_id(ProducerId(id.0))
            .with_producer_epoch(0),
        None => response.with_error_code(ErrorCode::KafkaStorageError.code()),
    }
}
