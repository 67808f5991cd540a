//! What can go wrong in a CLI command, and how it is told to the user: a Kafka
//! error NAME (as Apache Kafka's `Errors` enum spells it, or librdkafka's for
//! client-side failures), a sentence of advice, and an exit code.
//!
//! Exit codes: 0 success, 1 the broker (or the client library) answered with an
//! error, 2 a bad command line (clap's own code, and ours for arguments clap
//! cannot check), 3 the broker could not be reached.

use std::process::ExitCode;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::protocol::error_code::{kafka_name, screaming_snake};

/// Exit code of a Kafka (or client library) error.
pub const EXIT_KAFKA: u8 = 1;
/// Exit code of a bad command line (clap exits with it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when no broker answered.
pub const EXIT_UNREACHABLE: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An error code from the broker or from librdkafka, about `subject`.
    #[error("{name}: {subject}")]
    Kafka { name: String, subject: String },
    /// No broker of `bootstrap` answered within the timeout.
    #[error("BROKER_UNREACHABLE: no answer from {bootstrap} ({detail})")]
    Unreachable { bootstrap: String, detail: String },
    /// A request the CLI itself refuses before asking the broker, named like the
    /// Kafka error the broker would give (e.g. NON_EMPTY_GROUP for a reset of an
    /// active group).
    #[error("{name}: {detail}")]
    Refused { name: &'static str, detail: String },
    /// An argument clap cannot check (a bad `k=v`, a bad date, a bad format).
    #[error("INVALID_ARGUMENT: {0}")]
    Usage(String),
    /// Reading stdin or writing stdout failed.
    #[error("IO_ERROR: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The error a librdkafka call returned while working on `subject`.
    pub fn kafka(error: &KafkaError, subject: impl Into<String>) -> CliError {
        let subject = subject.into();
        match code_of(error) {
            Some(code) => CliError::code(code, subject),
            None => CliError::Kafka {
                name: "CLIENT_ERROR".to_string(),
                subject: format!("{subject}: {error}"),
            },
        }
    }

    /// The error `code` (from a per-topic or per-group result) about `subject`.
    pub fn code(code: RDKafkaErrorCode, subject: impl Into<String>) -> CliError {
        CliError::Kafka {
            name: error_name(code),
            subject: subject.into(),
        }
    }

    /// The error's NAME, the first word printed.
    pub fn name(&self) -> &str {
        match self {
            CliError::Kafka { name, .. } => name,
            CliError::Unreachable { .. } => "BROKER_UNREACHABLE",
            CliError::Refused { name, .. } => name,
            CliError::Usage(_) => "INVALID_ARGUMENT",
            CliError::Io(_) => "IO_ERROR",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Kafka { .. } | CliError::Refused { .. } | CliError::Io(_) => EXIT_KAFKA,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
        }
    }

    /// One sentence telling the user what to do about it.
    pub fn advice(&self) -> &'static str {
        advice(self.name())
    }
}

/// Prints `result`'s error (name, subject, advice) to stderr and turns it into
/// the process exit code.
pub fn exit(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice: {error}");
            eprintln!("advice: {}", error.advice());
            ExitCode::from(error.exit_code())
        }
    }
}

/// The librdkafka error code inside `error`, if it carries one (`AdminOp` does,
/// though rdkafka's own `rdkafka_error_code` leaves it out).
fn code_of(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    match error {
        KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    }
}

/// Whether `code` says that no broker could be talked to (as opposed to a broker
/// answering with an error).
pub fn is_transport(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::TimedOutQueue
    )
}

/// The librdkafka error code of `error` if it says no broker could be reached.
pub fn transport_code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    code_of(error).filter(|code| is_transport(*code))
}

/// Kafka's NAME for `code`: librdkafka numbers broker errors as Kafka does, so
/// those take Kafka's protocol name; librdkafka's local (negative) codes take
/// librdkafka's.
pub fn error_name(code: RDKafkaErrorCode) -> String {
    match i16::try_from(code as i32) {
        Ok(kafka) if kafka >= -1 => kafka_name(kafka),
        _ => screaming_snake(&format!("{code:?}")),
    }
}

fn advice(name: &str) -> &'static str {
    match name {
        "TOPIC_ALREADY_EXISTS" => {
            "The topic exists already: `sluice topic describe` shows it; pick another name or delete it first."
        }
        "UNKNOWN_TOPIC_OR_PARTITION" => {
            "Check the name with `sluice topic list` (and the partition with `sluice topic describe`), or create the topic first."
        }
        "INVALID_REPLICATION_FACTOR" => {
            "The replication factor cannot exceed the number of live brokers: `sluice cluster info` lists them."
        }
        "INVALID_PARTITIONS" => "Give at least one partition (--partitions N with N >= 1).",
        "INVALID_CONFIG" => {
            "Check the config name and value against docs/configuration.md (topic configs use Kafka's names)."
        }
        "INVALID_TOPIC_EXCEPTION" => {
            "Topic names use only ASCII letters, digits, '.', '_' and '-', at most 249 characters."
        }
        "NON_EMPTY_GROUP" => {
            "Stop every consumer of the group first (`sluice group describe` lists its members), then retry."
        }
        "GROUP_ID_NOT_FOUND" => "Check the group id with `sluice group list`.",
        "COORDINATOR_NOT_AVAILABLE" | "COORDINATOR_LOAD_IN_PROGRESS" | "NOT_COORDINATOR" => {
            "The group coordinator is starting or moving; retry in a few seconds."
        }
        "LEADER_NOT_AVAILABLE" | "NOT_LEADER_OR_FOLLOWER" => {
            "A leader election is under way; retry in a few seconds."
        }
        "NOT_ENOUGH_REPLICAS" | "NOT_ENOUGH_REPLICAS_AFTER_APPEND" => {
            "Fewer replicas are in sync than min.insync.replicas needs: bring brokers back or produce with --acks 1."
        }
        "MESSAGE_TIMED_OUT" | "OPERATION_TIMED_OUT" | "REQUEST_TIMED_OUT" => {
            "The cluster did not answer within --timeout: check the brokers' health (`sluice cluster info`) or raise --timeout."
        }
        "MESSAGE_TOO_LARGE" => {
            "The record exceeds max.message.bytes; split it or raise the topic's max.message.bytes."
        }
        "INVALID_RECORD" => {
            "The broker refused the record: a compacted topic needs a key on every record (--key-delimiter or --key)."
        }
        "NO_COMMITTED_OFFSET" => {
            "Name only partitions the group has offsets for (--topic TOPIC:p,q), or reset them with --to-earliest/--to-offset first."
        }
        "BROKER_UNREACHABLE" => {
            "Check that the broker runs and that --bootstrap (or SLUICE_BOOTSTRAP) names its listener; raise --timeout on a slow network."
        }
        "INVALID_ARGUMENT" => "See `sluice help` for the command's arguments.",
        "IO_ERROR" => "Check the input and output files or pipes of the command.",
        _ => {
            "Look the error name up in Kafka's protocol error table; retry if it is retriable, otherwise check the broker's log."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_codes_take_kafkas_names_and_local_codes_librdkafkas() {
        assert_eq!(
            error_name(RDKafkaErrorCode::TopicAlreadyExists),
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(
            error_name(RDKafkaErrorCode::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            error_name(RDKafkaErrorCode::NonEmptyGroup),
            "NON_EMPTY_GROUP"
        );
        assert_eq!(
            error_name(RDKafkaErrorCode::InvalidReplicationFactor),
            "INVALID_REPLICATION_FACTOR"
        );
        // Not an error Sluice sends, still Kafka's name.
        assert_eq!(
            error_name(RDKafkaErrorCode::ClusterAuthorizationFailed),
            "CLUSTER_AUTHORIZATION_FAILED"
        );
        // A local error of librdkafka: its own name.
        assert_eq!(
            error_name(RDKafkaErrorCode::AllBrokersDown),
            "ALL_BROKERS_DOWN"
        );
    }

    #[test]
    fn every_error_has_advice_and_a_documented_exit_code() {
        let unreachable = CliError::Unreachable {
            bootstrap: "h:1".into(),
            detail: "timed out".into(),
        };
        assert_eq!(unreachable.exit_code(), EXIT_UNREACHABLE);
        assert!(unreachable.advice().contains("--bootstrap"));
        let exists = CliError::code(RDKafkaErrorCode::TopicAlreadyExists, "topic \"t\"");
        assert_eq!(exists.exit_code(), EXIT_KAFKA);
        assert_eq!(exists.to_string(), "TOPIC_ALREADY_EXISTS: topic \"t\"");
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
    }
}
