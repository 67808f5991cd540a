//! One member of a group as the coordinator knows it: who it is, its timeouts,
//! the protocols it offered, its assignment and where it is in a rebalance.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::group::ids::{InstanceId, MemberId};

/// One protocol a member offered in JoinGroup: a name (an assignor, for
/// consumers) and opaque metadata (the subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: MemberId,
    pub instance_id: Option<InstanceId>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// Set by the leader's SyncGroup; empty before.
    pub assignment: Bytes,
    /// A JoinGroup of this member is waiting for the rebalance to complete.
    pub awaiting_join: bool,
    /// A SyncGroup of this member is waiting for the leader's assignment.
    pub awaiting_sync: bool,
    /// The last heartbeat (or join, sync or commit): the session runs from here.
    pub last_heartbeat: Instant,
}

impl Member {
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// The member's first choice among `candidates`.
    pub fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Whether the session ran out at `now`. A member whose JoinGroup or
    /// SyncGroup is waiting is alive: the rebalance's own deadlines bound it.
    pub fn session_expired(&self, now: Instant) -> bool {
        !self.awaiting_join && !self.awaiting_sync && now >= self.session_deadline()
    }

    pub fn session_deadline(&self) -> Instant {
        self.last_heartbeat + self.session_timeout
    }
}
