//! The shard as the group coordinator sees it.

use std::rc::Rc;

use crate::cluster::image::PartitionKey;
use crate::config::BrokerConfig;
use crate::group::coordinator::Coordinator;
use crate::group::coordinator_key::OFFSETS_TOPIC;
use crate::group::host::GroupHost;
use crate::partition::Partition;
use crate::protocol::error_code::ErrorCode;
use crate::shard::Shard;

impl GroupHost for Shard {
    fn coordinator(&self) -> &Coordinator {
        self.groups()
    }

    fn config(&self) -> &BrokerConfig {
        Shard::config(self)
    }

    fn offsets_partition_count(&self) -> Option<i32> {
        self.image()
            .topic(OFFSETS_TOPIC)
            .map(|topic| topic.partition_count())
    }

    fn owns(&self, key: &PartitionKey) -> bool {
        self.owner_of(key) == Some(self.id())
    }

    fn partition(&self, key: &PartitionKey) -> Result<Rc<Partition>, ErrorCode> {
        Shard::partition(self, key)
    }
}
