//! Consumer groups and committed offsets: Apache Kafka's classic group protocol
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and the `__consumer_offsets`
//! topic that stores commits.
//!
//! A group lives on the shard that owns its `__consumer_offsets` partition
//! (`coordinator_key`). There, `coordinator` keeps every group of the shard: the
//! pure state machine (`state`, `member`), committed offsets (`offsets`), the
//! timers and the waiting JoinGroup and SyncGroup requests. Commits and group
//! metadata are appended as Kafka's own records (`records`) and read back when the
//! shard opens the partition (`load`). Transactional commits wait in
//! `txn_offsets` for their transaction's marker. `requests` is the work other
//! shards send.

pub mod coordinator;
pub mod coordinator_key;
pub mod host;
pub mod ids;
pub mod load;
pub mod member;
pub mod offsets;
pub mod records;
pub mod requests;
pub mod state;
pub mod txn_offsets;
