//! EndTxn: the coordinator writes PrepareCommit/PrepareAbort durably and answers;
//! the markers and the Complete state follow in the background. v5 is
//! `transaction.version` 2 (KIP-890 part 2): every commit and abort bumps the
//! producer epoch, and the answer carries the producer id and epoch the client
//! goes on with, so a late batch of the old transaction is fenced.

use std::rc::Rc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use crate::kafka::txn_routing;
use crate::shard::Shard;
use crate::txn::requests::EndTxn;
use crate::txn::state::{TxnVersion, error_code_for_client};
use crate::types::{ProducerEpoch, ProducerId};

/// The first EndTxn version of `transaction.version` 2.
const FIRST_TV2_VERSION: i16 = 5;

pub async fn handle(shard: &Rc<Shard>, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = request.transactional_id.0.to_string();
    let call = EndTxn {
        transactional_id: id.clone(),
        producer_id: ProducerId(request.producer_id.0),
        producer_epoch: ProducerEpoch(request.producer_epoch),
        commit: request.committed,
        client_version: if version >= FIRST_TV2_VERSION {
            TxnVersion::TV_2
        } else {
            TxnVersion::TV_0
        },
    };
    let answer = txn_routing::call(shard, &id, call).await.and_then(|r| r);
    let response = EndTxnResponse::default();
    match answer {
        Ok((producer_id, epoch)) => response
            .with_producer_id(kafka_protocol::messages::ProducerId(producer_id.0))
            .with_producer_epoch(epoch.0),
        Err(error) => response.with_error_code(error_code_for_client(error, version >= 2).code()),
    }
}
