//! InitProducerId for idempotent producers: a fresh producer id at epoch 0 from the
//! controller shard. Transactional ids are refused until transactions exist.

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::protocol::error_code::ErrorCode;
use crate::shard::calls::producer_id::AllocateProducerId;
use crate::shard::{CONTROLLER_SHARD, Shard};

pub async fn handle(shard: &Rc<Shard>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        tracing::info!(
            "refusing InitProducerId with a transactional id: transactions are not supported yet"
        );
        return response.with_error_code(ErrorCode::InvalidRequest.code());
    }
    match shard.call(CONTROLLER_SHARD, AllocateProducerId).await {
        Some(id) => response
            .with_producer_id(ProducerId(id.0))
            .with_producer_epoch(0),
        None => response.with_error_code(ErrorCode::KafkaStorageError.code()),
    }
}
