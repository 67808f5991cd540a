//! Which `__transaction_state` partition (and so which shard) coordinates a
//! transactional id: `abs(transactionalId.hashCode()) % partitions`, the same rule
//! and hash as for groups, so an id maps to the same partition as on Kafka.

use crate::group::coordinator_key::java_string_hash;

/// The internal topic holding transaction coordinator state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// `transaction.state.log.num.partitions` when not configured.
pub const DEFAULT_PARTITIONS: i32 = 50;

/// The `__transaction_state` partition of `transactional_id` among `partitions`.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "the transaction state topic has at least one partition"
    );
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let hash = java_string_hash(transactional_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_kafkas_abs_rule() {
        assert_eq!(partition_for("hello", DEFAULT_PARTITIONS), 22);
        assert_eq!(partition_for("polygenelubricants", DEFAULT_PARTITIONS), 0);
        // "my-txn".hashCode() is negative in Java.
        assert!(java_string_hash("my-txn") < 0);
        assert_eq!(
            partition_for("my-txn", DEFAULT_PARTITIONS),
            java_string_hash("my-txn").abs() % 50
        );
        assert_eq!(partition_for("anything", 1), 0);
    }
}
