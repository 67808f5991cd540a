//! What every librdkafka client of a run shares: the bootstrap servers, the
//! user's extra properties, and a context that prints librdkafka's warnings.

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

/// Prints librdkafka's warnings and errors on stderr, next to the progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("librdkafka {level:?} {fac}: {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("librdkafka error: {error}: {reason}");
    }
}

impl ConsumerContext for LogContext {}

/// Where the clients connect and what else they are told.
#[derive(Clone, Debug)]
pub struct Connection {
    pub bootstrap: String,
    /// `-X KEY=VALUE` pairs, applied last to every client.
    pub properties: Vec<(String, String)>,
}

impl Connection {
    /// A configuration with `settings` and then the user's properties.
    pub fn config(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set_log_level(RDKafkaLogLevel::Warning);
        for (key, value) in settings {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}
