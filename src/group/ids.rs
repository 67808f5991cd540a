//! Newtypes for the names a group deals in, so a member id is never passed where
//! a group id or an instance id is expected.

use std::fmt;

/// A consumer group's id (`group.id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub String);

/// A member id the coordinator handed out (`<client_id>-<uuid>`); empty means
/// "not known yet" on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MemberId(pub String);

/// A static member's `group.instance.id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub String);

/// A group generation; bumped at every completed rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GenerationId(pub i32);

impl MemberId {
    pub fn is_unknown(&self) -> bool {
        self.0.is_empty()
    }

    /// A fresh member id: `<prefix>-<uuid>`, the prefix being the client id (or
    /// the instance id for static members), as Kafka makes them.
    pub fn generate(prefix: &str) -> MemberId {
        let uuid = uuid::Uuid::new_v4();
        MemberId(format!("{prefix}-{}", uuid.hyphenated()))
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
