//! Producer ids, idempotence and transactions. The transaction coordinator's
//! groundwork lives here, free of I/O: where a transactional id is coordinated
//! (`coordinator_key`), the records of `__transaction_state` in Kafka's layout
//! (`log_records`) and the state machine of one transactional id (`state`).

pub mod coordinator_key;
pub mod log_records;
pub mod producer_ids;
pub mod state;

pub use coordinator_key::{TRANSACTION_STATE_TOPIC, partition_for};
