//! Which `__consumer_offsets` partition (and so which shard) coordinates a group:
//! `abs(groupId.hashCode()) % partitions`, with Java's `String.hashCode` and
//! Kafka's `Utils.abs`, so a group maps to the same partition as on Kafka.

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode`: `h = 31 * h + c` over UTF-16 code units, wrapping.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition of `group_id` among `partitions`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "the offsets topic has at least one partition"
    );
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_java() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("Aa"), 2112);
        assert_eq!(java_string_hash("BB"), 2112);
        // Java's famous String whose hashCode is Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(java_string_hash("é"), 233);
        // Outside the BMP: hashed as its two UTF-16 surrogates, as Java does.
        assert_eq!(java_string_hash("😀"), 31 * 0xD83D + 0xDE00);
    }

    #[test]
    fn partitions_follow_kafkas_abs_rule() {
        assert_eq!(partition_for("hello", 50), 22);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // A negative hash: abs() keeps it in range.
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        for name in ["a", "group-1", "consumers", "😀"] {
            assert!((0..3).contains(&partition_for(name, 3)));
        }
    }
}
