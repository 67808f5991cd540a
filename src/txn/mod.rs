//! Producer ids and idempotence; transactions come later.

pub mod producer_ids;
