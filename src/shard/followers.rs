//! Which replicas this shard follows from which leader, handed to its replica
//! fetchers after each metadata image.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use crate::cluster::image::MetadataImage;
use crate::partition::fetcher::Followed;
use crate::shard::Shard;
use crate::types::NodeId;

/// Points the shard's fetchers at the leaders of the replicas it follows; a
/// leader whose address does not resolve is left out (loudly) until the next
/// image.
pub fn follow(shard: &Rc<Shard>, image: &MetadataImage) {
    let mut followed: BTreeMap<NodeId, Followed> = BTreeMap::new();
    for key in shard.partitions.keys() {
        let Ok(partition) = shard.partitions.get_or_error(&key) else {
            continue;
        };
        let Some(following) = partition.following() else {
            continue;
        };
        let leader = following.leader;
        if let Some(entry) = followed.get_mut(&leader) {
            entry.partitions.push(partition);
            continue;
        }
        match address_of(image, leader) {
            Some(address) => {
                followed.insert(
                    leader,
                    Followed {
                        address,
                        partitions: vec![partition],
                    },
                );
            }
            None => {
                tracing::warn!(leader = leader.0, partition = %key, "the leader's address is unknown; not fetching")
            }
        }
    }
    shard.fetchers.update(followed);
}

/// A live broker's advertised address.
pub fn address_of(image: &MetadataImage, broker: NodeId) -> Option<SocketAddr> {
    let broker = image.broker(broker).filter(|b| !b.fenced)?;
    (broker.host.as_str(), broker.port)
        .to_socket_addrs()
        .ok()?
        .next()
}
