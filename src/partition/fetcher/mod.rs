//! The replica fetchers of one shard: one session per leader broker, carrying
//! every partition this shard follows from it over one connection (Kafka's
//! `ReplicaFetcherThread`, per shard instead of per thread). The shard hands
//! over the partitions it follows after each metadata image; sessions without
//! partitions stop.

mod requests;
mod session;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::config::BrokerConfig;
use crate::partition::Partition;
use crate::types::NodeId;

use session::Session;

/// How followers fetch, from the broker's `replica.*` settings.
#[derive(Debug, Clone, Copy)]
pub struct FetcherSettings {
    /// This broker, the replica id of its fetches.
    pub node: NodeId,
    /// `replica.fetch.wait.max.ms`.
    pub max_wait: Duration,
    /// `replica.fetch.max.bytes`, per partition.
    pub partition_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: the pause after a failed fetch.
    pub backoff: Duration,
}

impl FetcherSettings {
    pub fn of(config: &BrokerConfig) -> FetcherSettings {
        FetcherSettings {
            node: NodeId(config.node_id),
            max_wait: Duration::from_millis(config.replica_fetch_wait_max_ms),
            partition_max_bytes: config.replica_fetch_max_bytes,
            response_max_bytes: config.replica_fetch_response_max_bytes,
            backoff: Duration::from_millis(config.replica_fetch_backoff_ms),
        }
    }
}

/// The partitions a shard follows from one leader, and where that leader is.
pub struct Followed {
    pub address: SocketAddr,
    pub partitions: Vec<Rc<Partition>>,
}

pub struct ReplicaFetchers {
    settings: FetcherSettings,
    sessions: RefCell<BTreeMap<NodeId, Rc<Session>>>,
}

impl ReplicaFetchers {
    pub fn new(settings: FetcherSettings) -> ReplicaFetchers {
        ReplicaFetchers {
            settings,
            sessions: RefCell::default(),
        }
    }

    /// Makes the sessions fetch exactly `followed`, by leader: new leaders get
    /// a session, leaders no longer followed lose theirs.
    pub fn update(&self, mut followed: BTreeMap<NodeId, Followed>) {
        let mut sessions = self.sessions.borrow_mut();
        sessions.retain(|leader, session| {
            let keep = followed.contains_key(leader);
            if !keep {
                session.stop();
            }
            keep
        });
        for (leader, wanted) in std::mem::take(&mut followed) {
            match sessions.get(&leader) {
                Some(session) => session.set(wanted),
                None => {
                    let session = Rc::new(Session::new(leader, wanted, self.settings));
                    glommio::spawn_local(Rc::clone(&session).run()).detach();
                    sessions.insert(leader, session);
                }
            }
        }
    }

    /// Stops every session (shutdown); fetches in flight are dropped.
    pub fn stop_all(&self) {
        for (_, session) in std::mem::take(&mut *self.sessions.borrow_mut()) {
            session.stop();
        }
    }
}
