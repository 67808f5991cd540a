//! The run's topics: created through the admin API before a run (and waited
//! for in the metadata), deleted after it when asked.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::{Connection, LogContext};
use crate::error::BenchError;

/// Bound on each admin request and on waiting for new topics to appear, for a
/// run with `partitions` partitions in all: a broker creates, and a consumer
/// group assigns, thousands of partitions in tens of seconds, not in one.
pub fn setup_timeout(partitions: u64) -> Duration {
    Duration::from_secs(30)
        + Duration::from_millis(20) * u32::try_from(partitions).unwrap_or(u32::MAX)
}

pub struct Admin {
    client: AdminClient<LogContext>,
    timeout: Duration,
    /// Drives the admin client's futures; one thread is plenty.
    runtime: tokio::runtime::Runtime,
}

impl Admin {
    pub fn new(connection: &Connection, timeout: Duration) -> Result<Admin, BenchError> {
        let client = connection
            .config(&[])
            .create_with_context(LogContext)
            .map_err(BenchError::kafka("create the admin client"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| BenchError::Setup(format!("start the admin runtime: {e}")))?;
        Ok(Admin {
            client,
            timeout,
            runtime,
        })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout))
    }

    /// Creates `names` with `partitions` partitions of `replication_factor`
    /// replicas each and `configs`, and waits until the metadata lists all
    /// their partitions.
    pub fn create_topics(
        &self,
        names: &[String],
        partitions: u32,
        replication_factor: u16,
        configs: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), BenchError> {
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| {
                configs.iter().fold(
                    NewTopic::new(
                        name,
                        partitions as i32,
                        TopicReplication::Fixed(i32::from(replication_factor)),
                    ),
                    |topic, (key, value)| topic.set(key, value),
                )
            })
            .collect();
        let results = self
            .runtime
            .block_on(async {
                tokio::time::timeout(
                    self.timeout,
                    self.client.create_topics(&topics, &self.options()),
                )
                .await
            })
            .map_err(|_| BenchError::Setup(format!("CreateTopics took over {:?}", self.timeout)))?
            .map_err(BenchError::kafka("CreateTopics"))?;
        for result in results {
            match result {
                Ok(_) => {}
                // A named topic of an earlier run: its records are told apart
                // by their run id.
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    println!("topic {topic} exists already: using it");
                }
                Err((topic, code)) => {
                    return Err(BenchError::Setup(format!("create topic {topic}: {code}")));
                }
            }
        }
        self.wait_for_partitions(names, partitions)
    }

    fn wait_for_partitions(&self, names: &[String], partitions: u32) -> Result<(), BenchError> {
        let deadline = Instant::now() + self.timeout;
        for name in names {
            loop {
                let metadata = self
                    .client
                    .inner()
                    .fetch_metadata(Some(name), self.timeout)
                    .map_err(BenchError::kafka(format!("metadata of {name}")))?;
                let ready = metadata.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                });
                if ready {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(BenchError::Setup(format!(
                        "{name} not in the metadata with {partitions} partitions after {:?}",
                        self.timeout
                    )));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    pub fn delete_topics(&self, names: &[String]) -> Result<(), BenchError> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = self
            .runtime
            .block_on(async {
                tokio::time::timeout(
                    self.timeout,
                    self.client.delete_topics(&names, &self.options()),
                )
                .await
            })
            .map_err(|_| BenchError::Setup(format!("DeleteTopics took over {:?}", self.timeout)))?
            .map_err(BenchError::kafka("DeleteTopics"))?;
        for result in results {
            if let Err((topic, code)) = result {
                return Err(BenchError::Setup(format!("delete topic {topic}: {code}")));
            }
        }
        Ok(())
    }
}
