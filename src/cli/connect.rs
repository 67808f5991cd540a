//! How a command reaches the cluster: the flags every command shares
//! (`--bootstrap`, `--timeout`, `--json`), librdkafka client configs built from
//! them, and the first metadata request that tells "no broker answers" apart from
//! a broker's error.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;

use super::errors::{CliError, transport_code};

/// The default bootstrap address, the broker's default listener.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Flags shared by every command.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Broker(s) to bootstrap from, host:port[,host:port...].
    #[arg(long, env = "SLUICE_BOOTSTRAP", default_value = DEFAULT_BOOTSTRAP)]
    pub bootstrap: String,
    /// Seconds each request to the cluster may take (decimals allowed); also how
    /// long to wait for an unreachable broker before giving up (exit code 3).
    #[arg(long, default_value_t = 10.0, value_parser = parse_timeout)]
    pub timeout: f64,
    /// Print JSON for scripts instead of tables (field names: docs/operations.md).
    #[arg(long)]
    pub json: bool,
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("not a number of seconds: {text:?}"))?;
    // librdkafka takes milliseconds in an i32; a day is more than any command needs.
    if seconds > 0.0 && seconds <= 86_400.0 {
        Ok(seconds)
    } else {
        Err("the timeout must be more than 0 and at most 86400 seconds".to_string())
    }
}

impl Common {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// `--timeout` in milliseconds, as librdkafka's settings take it.
    pub fn timeout_ms(&self) -> String {
        self.timeout().as_millis().max(1).to_string()
    }

    /// A librdkafka config for this cluster: `bootstrap.servers`, a client id
    /// naming the tool, and timeouts bounded by `--timeout`.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "sluice-cli")
            .set("socket.timeout.ms", self.timeout_ms().as_str())
            // A typo in a topic name must be an error, not a new topic.
            .set("allow.auto.create.topics", "false")
            // Only what the command prints matters; librdkafka's own log lines
            // (connection refused, retries) would be noise on stderr.
            .set_log_level(RDKafkaLogLevel::Emerg);
        config
    }

    /// Asks for the cluster's metadata (all topics, or only `topic`): the first
    /// request of most commands, whose failure means the broker cannot be reached.
    pub fn metadata<C: ClientContext>(
        &self,
        client: &Client<C>,
        topic: Option<&str>,
    ) -> Result<Metadata, CliError> {
        client
            .fetch_metadata(topic, self.timeout())
            .map_err(|error| self.unreachable_or(&error, "metadata"))
    }

    /// `error` as BROKER_UNREACHABLE if it says no broker answered, otherwise as
    /// the Kafka error it carries, about `subject`.
    pub fn unreachable_or(&self, error: &KafkaError, subject: &str) -> CliError {
        match transport_code(error) {
            Some(code) => CliError::Unreachable {
                bootstrap: self.bootstrap.clone(),
                detail: format!("{subject}: {code}"),
            },
            None => CliError::kafka(error, subject),
        }
    }
}

/// The librdkafka error `error` from creating a client.
pub fn creation(error: KafkaError) -> CliError {
    CliError::Usage(format!("cannot create the Kafka client: {error}"))
}
