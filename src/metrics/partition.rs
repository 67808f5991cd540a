//! Traffic counters of one partition replica, kept in its `Partition` and read
//! by the scrape on the shard that owns it.

use std::cell::Cell;

#[derive(Debug, Default)]
pub struct PartitionTraffic {
    bytes_in: Cell<u64>,
    records_in: Cell<u64>,
    bytes_out: Cell<u64>,
}

/// What a partition received and sent since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSample {
    /// Produced batch bytes appended (producers only, not replication).
    pub bytes_in: u64,
    pub records_in: u64,
    /// Batch bytes returned by fetches (consumers and followers).
    pub bytes_out: u64,
}

impl PartitionTraffic {
    pub fn produced(&self, bytes: u64, records: u64) {
        self.bytes_in.set(self.bytes_in.get() + bytes);
        self.records_in.set(self.records_in.get() + records);
    }

    pub fn fetched(&self, bytes: u64) {
        self.bytes_out.set(self.bytes_out.get() + bytes);
    }

    pub fn sample(&self) -> TrafficSample {
        TrafficSample {
            bytes_in: self.bytes_in.get(),
            records_in: self.records_in.get(),
            bytes_out: self.bytes_out.get(),
        }
    }
}
