//! What a client's batch must satisfy before a partition appends it, as Kafka's
//! `LogValidator` checks it: one v2 batch, within `max.message.bytes`, a valid
//! header and CRC, a codec the request version may use, and records that satisfy
//! the topic (keys on compacted topics, timestamps within bounds).

use crate::cluster::topic_config::{MessageTimestampType, TopicConfigs};
use crate::protocol::error_code::ErrorCode;
use crate::record::record_checks::{RecordError, RecordFaults, RecordRules, check_records};
use crate::record::{BatchHeader, Compression, validate_batch};
use crate::types::TimestampMs;

/// Why a batch was refused: the partition's error code and message, and for
/// record-level faults each record to blame with why (Produce v8+ reports them,
/// KIP-467).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: ErrorCode,
    pub message: Option<String>,
    /// (index of the record in the batch, why), in record order.
    pub record_errors: Vec<(i32, String)>,
}

impl From<ErrorCode> for Refusal {
    fn from(error: ErrorCode) -> Refusal {
        Refusal {
            error,
            message: None,
            record_errors: Vec::new(),
        }
    }
}

impl From<RecordFaults> for Refusal {
    fn from(faults: RecordFaults) -> Refusal {
        let errors = faults.errors();
        Refusal {
            error: faults.error_code(),
            message: errors.first().map(RecordError::to_string),
            record_errors: errors
                .iter()
                .filter_map(|e| e.record_index().map(|index| (index, e.to_string())))
                .collect(),
        }
    }
}

/// Checks `records` from a producer against `configs` at `now`.
pub fn check(
    records: &[u8],
    configs: &TopicConfigs,
    zstd_allowed: bool,
    inflate_limit: usize,
    now: TimestampMs,
) -> Result<(), Refusal> {
    if records.len() > configs.max_message_bytes {
        return Err(ErrorCode::MessageTooLarge.into());
    }
    // Exactly one batch per partition, as Kafka requires of v2 produce requests.
    let one_batch = BatchHeader::parse(records)
        .and_then(|h| h.total_len())
        .is_some_and(|len| len == records.len());
    if !one_batch {
        return Err(ErrorCode::InvalidRecord.into());
    }
    let batch = validate_batch(records).map_err(|e| Refusal {
        error: e.error_code(),
        message: Some(e.to_string()),
        record_errors: Vec::new(),
    })?;
    if !zstd_allowed && batch.header().attributes().compression() == Some(Compression::Zstd) {
        return Err(ErrorCode::UnsupportedCompressionType.into());
    }
    check_records(batch, &record_rules(configs, inflate_limit, now))?;
    Ok(())
}

/// The record-level rules of a topic at `now`. LogAppendTime topics have no
/// timestamp bounds: the broker's clock replaces the producer's timestamps.
fn record_rules(configs: &TopicConfigs, inflate_limit: usize, now: TimestampMs) -> RecordRules {
    let log_append_time = configs.timestamp_type == MessageTimestampType::LogAppendTime;
    let bound = |max: Option<std::time::Duration>| {
        max.filter(|_| !log_append_time)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    };
    RecordRules {
        require_keys: configs.cleanup_policy.compact,
        min_timestamp: bound(configs.timestamp_before_max)
            .map(|ms| TimestampMs(now.0.saturating_sub(ms))),
        max_timestamp: bound(configs.timestamp_after_max)
            .map(|ms| TimestampMs(now.0.saturating_add(ms))),
        inflate_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::record::builder::{NewRecord, build_batch};
    use std::collections::BTreeMap;

    fn configs(overrides: &[(&str, &str)]) -> TopicConfigs {
        let overrides: BTreeMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TopicConfigs::resolve(&BrokerConfig::default(), &overrides)
    }

    fn batch(key: Option<&[u8]>, timestamp_ms: i64) -> Vec<u8> {
        build_batch(&[NewRecord {
            key,
            value: Some(b"v"),
            timestamp_ms,
        }])
    }

    #[test]
    fn refusals_carry_kafkas_codes_and_the_record_to_blame() {
        let now = TimestampMs::now();
        let plain = configs(&[]);
        assert_eq!(
            check(&batch(None, now.0), &plain, true, 1 << 20, now),
            Ok(())
        );
        let mut two = batch(None, now.0);
        two.extend(batch(None, now.0));
        assert_eq!(
            check(&two, &plain, true, 1 << 20, now).unwrap_err().error,
            ErrorCode::InvalidRecord
        );
        let small = configs(&[("max.message.bytes", "10")]);
        assert_eq!(
            check(&batch(None, now.0), &small, true, 1 << 20, now)
                .unwrap_err()
                .error,
            ErrorCode::MessageTooLarge
        );
        let compacted = configs(&[("cleanup.policy", "compact")]);
        let refusal = check(&batch(None, now.0), &compacted, true, 1 << 20, now).unwrap_err();
        assert_eq!(refusal.error, ErrorCode::InvalidRecord);
        assert_eq!(refusal.record_errors.len(), 1);
        assert_eq!(refusal.record_errors[0].0, 0);
        assert!(refusal.message.is_some());
        let future = now.0 + 2 * 3_600_000;
        assert_eq!(
            check(&batch(Some(b"k"), future), &plain, true, 1 << 20, now)
                .unwrap_err()
                .error,
            ErrorCode::InvalidTimestamp
        );
        let append_time = configs(&[("message.timestamp.type", "LogAppendTime")]);
        assert_eq!(
            check(&batch(None, future), &append_time, true, 1 << 20, now),
            Ok(())
        );
    }
}
