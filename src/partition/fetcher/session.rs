//! One follower session: the loop that keeps every partition a shard follows
//! from one leader up to date over one connection. Each round first truncates
//! the partitions that follow a new leader epoch (OffsetForLeaderEpoch), then
//! fetches the others from their log ends, appends what comes back (each
//! partition's batches durable before its next fetch offset reports them) and
//! takes the leader's high watermark. A partition the leader refuses waits a
//! backoff, or the next image; a broken connection is dialled again after one.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster::image::PartitionKey;
use crate::net::kafka_client::KafkaClient;
use crate::partition::waiters::{DataWaiter, Waiters};
use crate::partition::{Following, Partition};
use crate::protocol::error_code::ErrorCode;
use crate::types::NodeId;

use super::requests::{
    self, EPOCH_VERSION, EpochAsk, FETCH_VERSION, FetchAt, Fetched, epoch_answers,
};
use super::{FetcherSettings, Followed};

/// How long connecting and a request's answer may take beyond the fetch's wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Room for the response's framing around the records.
const RESPONSE_OVERHEAD: usize = 1 << 20;

pub struct Session {
    leader: NodeId,
    settings: FetcherSettings,
    address: Cell<SocketAddr>,
    partitions: RefCell<Vec<Rc<Partition>>>,
    stopped: Cell<bool>,
    /// Woken when the partitions change or the session stops.
    changed: Waiters,
}

impl Session {
    pub fn new(leader: NodeId, followed: Followed, settings: FetcherSettings) -> Session {
        Session {
            leader,
            settings,
            address: Cell::new(followed.address),
            partitions: RefCell::new(followed.partitions),
            stopped: Cell::new(false),
            changed: Waiters::default(),
        }
    }

    pub fn set(&self, followed: Followed) {
        self.address.set(followed.address);
        *self.partitions.borrow_mut() = followed.partitions;
        self.changed.wake_all();
    }

    pub fn stop(&self) {
        self.stopped.set(true);
        self.changed.wake_all();
    }

    /// The partitions that follow this leader now, with how.
    fn followed(&self) -> Vec<(Rc<Partition>, Following)> {
        self.partitions
            .borrow()
            .iter()
            .filter_map(|p| Some((Rc::clone(p), p.following()?)))
            .filter(|(_, following)| following.leader == self.leader)
            .collect()
    }

    /// Waits up to `pause`, or less if the partitions change or the session stops.
    async fn pause(&self, pause: Duration) {
        let waiter = DataWaiter::new();
        self.changed.register(&waiter);
        let _ = glommio::timer::timeout(pause, async {
            waiter.woken().await;
            Ok(())
        })
        .await;
    }

    pub async fn run(self: Rc<Session>) {
        tracing::info!(leader = self.leader.0, address = %self.address.get(), "replica fetcher started");
        let mut client: Option<(SocketAddr, KafkaClient)> = None;
        // Partitions the leader refused, until when they rest.
        let mut resting: HashMap<PartitionKey, Instant> = HashMap::new();
        while !self.stopped.get() {
            let now = Instant::now();
            resting.retain(|_, until| *until > now);
            let followed: Vec<_> = self
                .followed()
                .into_iter()
                .filter(|(p, _)| !resting.contains_key(p.key()))
                .collect();
            if followed.is_empty() {
                self.pause(self.settings.backoff).await;
                continue;
            }
            let address = self.address.get();
            if client.as_ref().is_none_or(|(at, _)| *at != address) {
                client = None;
                match KafkaClient::connect(
                    address,
                    "sluice-replica-fetcher",
                    self.max_response(),
                    REQUEST_TIMEOUT,
                )
                .await
                {
                    Ok(connected) => client = Some((address, connected)),
                    Err(error) => {
                        tracing::warn!(leader = self.leader.0, %address, %error, "cannot reach the leader");
                        self.pause(self.settings.backoff).await;
                        continue;
                    }
                }
            }
            let Some((_, connection)) = client.as_mut() else {
                continue;
            };
            let (to_truncate, to_fetch): (Vec<_>, Vec<_>) =
                followed.into_iter().partition(|(_, f)| !f.truncated);
            let round = if to_truncate.is_empty() {
                self.fetch(connection, to_fetch, &mut resting).await
            } else {
                self.truncate(connection, to_truncate, &mut resting).await
            };
            if let Err(error) = round {
                tracing::warn!(leader = self.leader.0, %address, %error, "replica fetch failed; reconnecting");
                client = None;
                self.pause(self.settings.backoff).await;
            }
        }
        tracing::info!(leader = self.leader.0, "replica fetcher stopped");
    }

    fn max_response(&self) -> usize {
        usize::try_from(self.settings.response_max_bytes).unwrap_or(usize::MAX) + RESPONSE_OVERHEAD
    }

    fn rest(
        &self,
        resting: &mut HashMap<PartitionKey, Instant>,
        key: &PartitionKey,
        why: ErrorCode,
    ) {
        tracing::debug!(leader = self.leader.0, partition = %key, ?why, "the leader refused; waiting");
        resting.insert(key.clone(), Instant::now() + self.settings.backoff);
    }

    /// Truncates the partitions that follow a new epoch to what the leader has.
    async fn truncate(
        &self,
        connection: &mut KafkaClient,
        partitions: Vec<(Rc<Partition>, Following)>,
        resting: &mut HashMap<PartitionKey, Instant>,
    ) -> Result<(), crate::net::kafka_client::ClientError> {
        let mut asks = Vec::new();
        let mut asked = BTreeMap::new();
        for (partition, following) in partitions {
            match partition.latest_epoch() {
                Some(latest) => {
                    asks.push(EpochAsk {
                        key: partition.key().clone(),
                        current: following.epoch,
                        latest,
                    });
                    asked.insert(partition.key().clone(), (partition, following, latest));
                }
                // An empty log has nothing to cut.
                None => self.truncated(&partition, following, None, None).await,
            }
        }
        if asks.is_empty() {
            return Ok(());
        }
        let request = requests::epoch_request(self.settings.node, &asks);
        let response = connection
            .send(&request, EPOCH_VERSION, REQUEST_TIMEOUT)
            .await?;
        let mut answers = epoch_answers(response);
        for (key, (partition, following, latest)) in asked {
            match answers.remove(&key) {
                Some(Ok(answer)) => {
                    self.truncated(&partition, following, Some(latest), answer)
                        .await;
                }
                Some(Err(error)) => self.rest(resting, &key, error),
                None => self.rest(resting, &key, ErrorCode::UnknownTopicOrPartition),
            }
        }
        Ok(())
    }

    async fn truncated(
        &self,
        partition: &Partition,
        following: Following,
        asked: Option<crate::types::LeaderEpoch>,
        answer: Option<(crate::types::LeaderEpoch, crate::types::Offset)>,
    ) {
        if let Err(error) = partition
            .truncate_for_leader(following, asked, answer)
            .await
        {
            tracing::error!(partition = %partition.key(), %error, "truncating to the leader's log failed");
        }
    }

    /// One fetch of every partition ready, and what it brought appended.
    async fn fetch(
        &self,
        connection: &mut KafkaClient,
        partitions: Vec<(Rc<Partition>, Following)>,
        resting: &mut HashMap<PartitionKey, Instant>,
    ) -> Result<(), crate::net::kafka_client::ClientError> {
        let at: Vec<FetchAt> = partitions
            .iter()
            .map(|(partition, following)| FetchAt {
                key: partition.key().clone(),
                epoch: following.epoch,
                offset: partition.log_end_offset(),
                log_start: partition.log_start_offset(),
            })
            .collect();
        let request = requests::fetch_request(&self.settings, &at);
        let response = connection
            .send(
                &request,
                FETCH_VERSION,
                self.settings.max_wait + REQUEST_TIMEOUT,
            )
            .await?;
        let mut answers = match requests::fetched(response) {
            Ok(answers) => answers,
            Err(error) => {
                tracing::warn!(
                    leader = self.leader.0,
                    ?error,
                    "the leader refused the fetch"
                );
                self.pause(self.settings.backoff).await;
                return Ok(());
            }
        };
        let mut appends = Vec::new();
        for ((partition, following), asked) in partitions.into_iter().zip(at) {
            let Some(answer) = answers.remove(&asked.key) else {
                continue;
            };
            match answer.error {
                ErrorCode::None => {
                    appends.push(glommio::spawn_local(append(partition, following, answer)));
                }
                ErrorCode::OffsetOutOfRange => {
                    out_of_range(&partition, following, asked, &answer).await;
                }
                error => self.rest(resting, &asked.key, error),
            }
        }
        for task in appends {
            task.await;
        }
        Ok(())
    }
}

async fn append(partition: Rc<Partition>, following: Following, answer: Fetched) {
    if let Err(error) = partition
        .append_from_leader(following, &answer.records, answer.high_watermark)
        .await
    {
        tracing::error!(partition = %partition.key(), %error, "appending the leader's batches failed");
    }
}

/// The leader does not have the fetch offset: behind its log start, this
/// replica starts over there; past its end, it cuts back to its high
/// watermark (what it knows the leader has) and fetches again.
async fn out_of_range(
    partition: &Partition,
    following: Following,
    asked: FetchAt,
    answer: &Fetched,
) {
    let result = if asked.offset < answer.log_start {
        partition.restart_at(following, answer.log_start).await
    } else {
        let latest = partition.latest_epoch();
        partition
            .truncate_for_leader(following, latest, None)
            .await
            .map(|_| ())
    };
    if let Err(error) = result {
        tracing::error!(partition = %partition.key(), %error, "recovering from an out-of-range fetch failed");
    }
}
