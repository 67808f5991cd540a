//! EndTxn: the coordinator writes PrepareCommit/PrepareAbort durably and answers;
//! the markers and the Complete state follow in the background.

use std::rc::Rc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::kafka::txn_routing;
use crate::shard::Shard;
use crate::txn::requests::EndTxn;
use crate::txn::state::error_code_for_client;
use crate::types::{ProducerEpoch, ProducerId};

pub async fn handle(shard: &Rc<Shard>, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = request.transactional_id.0.to_string();
    let call = EndTxn {
        transactional_id: id.clone(),
        producer_id: ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
        commit: request.committed,
    };
    let error = txn_routing::call(shard, &id, call)
        .await
        .unwrap_or_else(|error| error);
    EndTxnResponse::default().with_error_code(error_code_for_client(error, version >= 2).code())
}
