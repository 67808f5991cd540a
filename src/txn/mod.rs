//! Producer ids, idempotence and transactions. The pure groundwork: where a
//! transactional id is coordinated (`coordinator_key`), the records of
//! `__transaction_state` in Kafka's layout (`log_records`) and the state machine
//! of one transactional id (`state`). The coordinator of each shard
//! (`coordinator`) serves the transactional requests (`requests`), persists every
//! transition, reloads its partitions (`load`), has markers written and
//! transactions completed (`markers`, `completion`) and aborts timed-out
//! transactions (`expiry`), and describes and lists them for admin tools
//! (`listing`); it sees its shard only through `host`.

pub mod completion;
pub mod coordinator;
pub mod coordinator_key;
pub mod expiry;
pub mod host;
pub mod listing;
pub mod load;
pub mod log_records;
pub mod markers;
pub mod producer_ids;
pub mod requests;
pub mod state;

pub use coordinator_key::{TRANSACTION_STATE_TOPIC, partition_for};
