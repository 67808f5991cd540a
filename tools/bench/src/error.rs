//! The ways a run can fail before it has results to report.

use rdkafka::error::KafkaError;

use crate::workload::WorkloadError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("{what}: {source}")]
    Kafka { what: String, source: KafkaError },
    #[error("{0}")]
    Setup(String),
    #[error("write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("a {0} thread panicked")]
    Panicked(&'static str),
}

impl BenchError {
    /// A `map_err` helper: the librdkafka error with what was being done.
    pub fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> BenchError {
        let what = what.into();
        move |source| BenchError::Kafka { what, source }
    }
}
