//! ListTransactions: the transactional ids of every shard, filtered by state,
//! producer id and (v1) how long their transaction has been open.

use std::rc::Rc;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::fan_out;
use crate::shard::Shard;
use crate::txn::listing::{ListFilter, ListTxns};
use crate::txn::state::TxnState;
use crate::types;

pub async fn handle(
    shard: &Rc<Shard>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in request.state_filters {
        match TxnState::from_name(&name) {
            Some(state) => states.push(state),
            None => unknown.push(name),
        }
    }
    let response = ListTransactionsResponse::default();
    // Only unknown states asked for: nothing can match (as Kafka answers).
    if states.is_empty() && !unknown.is_empty() {
        return response.with_unknown_state_filters(unknown);
    }
    let filter = ListFilter {
        states,
        producer_ids: request
            .producer_id_filters
            .iter()
            .map(|id| types::ProducerId(id.0))
            .collect(),
        min_duration_ms: request.duration_filter,
    };
    let calls = shard
        .all_shards()
        .map(|owner| (owner, ListTxns(filter.clone())))
        .collect();
    let listed = fan_out(shard, calls)
        .await
        .into_iter()
        .flat_map(|(_, listed)| listed)
        .map(|txn| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(txn.transactional_id)))
                .with_producer_id(ProducerId(txn.producer_id.0))
                .with_transaction_state(StrBytes::from_static_str(txn.state.name()))
        })
        .collect();
    response
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
