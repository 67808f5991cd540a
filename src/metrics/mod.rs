//! Metrics: each shard counts its own requests, storage and network work in
//! thread-local counters and HDR histograms (no lock and no cross-shard traffic
//! on request paths); a scrape gathers a snapshot from every shard over the mesh
//! and renders the Prometheus text format. docs/operations.md lists every series.

pub mod exposition;
pub mod histogram;
pub mod partition;
pub mod shard;
pub mod snapshot;
pub mod stalls;
