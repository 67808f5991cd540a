//! The counters and histograms of the shard running on this thread: every shard
//! is one pinned thread, so a thread-local is that shard's own, written without
//! locks or atomics and read by the scrape's call on the same shard.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::metrics::histogram::{
    BYTES_BOUNDS, COUNT_BOUNDS, HistogramSample, LATENCY_BOUNDS, Recorder,
};

/// Largest group commit (appends in one write) kept exactly.
const MAX_APPENDS_PER_WRITE: u64 = 1 << 20;
/// Largest write kept exactly.
const MAX_WRITE_BYTES: u64 = 1 << 32;

thread_local! {
    static SHARD: ShardMetrics = ShardMetrics::default();
}

#[derive(Default)]
struct ShardMetrics {
    /// By API key.
    requests: RefCell<BTreeMap<i16, Recorder>>,
    /// By (API key, error code).
    errors: RefCell<BTreeMap<(i16, i16), u64>>,
    storage: RefCell<Option<Storage>>,
    counters: Cell<Counters>,
}

struct Storage {
    fsync: Recorder,
    appends_per_write: Recorder,
    write_bytes: Recorder,
}

/// Plain counters and gauges of one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub connections_open: u64,
    pub connections_accepted: u64,
    /// Partition reads answered from the in-memory tail.
    pub tail_cache_hits: u64,
    /// Partition reads that had to go to the segment file.
    pub tail_cache_misses: u64,
    /// Bytes sent to sockets straight from segment files (sendfile).
    pub sendfile_bytes: u64,
    /// Calls this shard sent to other shards over the mesh.
    pub mesh_calls_sent: u64,
    /// Calls other shards sent this one.
    pub mesh_calls_received: u64,
    /// Calls this shard sent that have no reply yet.
    pub mesh_calls_in_flight: u64,
    pub reactor_stalls: u64,
    pub reactor_stalled_micros: u64,
}

fn count(update: impl FnOnce(&mut Counters)) {
    SHARD.with(|shard| {
        let mut counters = shard.counters.get();
        update(&mut counters);
        shard.counters.set(counters);
    });
}

/// A request of API `api` was answered `elapsed` after it was decoded.
pub fn request_done(api: i16, elapsed: Duration) {
    SHARD.with(|shard| {
        shard
            .requests
            .borrow_mut()
            .entry(api)
            .or_insert_with(Recorder::latency)
            .record_duration(elapsed);
    });
}

/// A response of API `api` carried error `code` (once per partition, topic or
/// group that got it).
pub fn request_error(api: i16, code: i16) {
    debug_assert_ne!(code, 0, "only errors are counted");
    SHARD.with(|shard| *shard.errors.borrow_mut().entry((api, code)).or_default() += 1);
}

fn storage(update: impl FnOnce(&mut Storage)) {
    SHARD.with(|shard| {
        let mut storage = shard.storage.borrow_mut();
        update(storage.get_or_insert_with(|| Storage {
            fsync: Recorder::latency(),
            appends_per_write: Recorder::values(MAX_APPENDS_PER_WRITE),
            write_bytes: Recorder::values(MAX_WRITE_BYTES),
        }));
    });
}

/// A log's data was fdatasynced, taking `elapsed`.
pub fn fsynced(elapsed: Duration) {
    storage(|s| s.fsync.record_duration(elapsed));
}

/// A group commit wrote `bytes` for `appends` appends in one write.
pub fn group_commit(appends: u64, bytes: u64) {
    storage(|s| {
        s.appends_per_write.record(appends);
        s.write_bytes.record(bytes);
    });
}

/// A partition read was served from memory (`true`) or from its file.
pub fn tail_read(from_memory: bool) {
    count(|c| {
        if from_memory {
            c.tail_cache_hits += 1;
        } else {
            c.tail_cache_misses += 1;
        }
    });
}

pub fn sent_from_files(bytes: u64) {
    count(|c| c.sendfile_bytes += bytes);
}

/// Counts a call this shard sent over the mesh, in flight until dropped.
pub struct MeshCall(());

impl MeshCall {
    pub fn sent() -> MeshCall {
        count(|c| {
            c.mesh_calls_sent += 1;
            c.mesh_calls_in_flight += 1;
        });
        MeshCall(())
    }
}

impl Drop for MeshCall {
    fn drop(&mut self) {
        count(|c| c.mesh_calls_in_flight = c.mesh_calls_in_flight.saturating_sub(1));
    }
}

pub fn mesh_call_received() {
    count(|c| c.mesh_calls_received += 1);
}

pub fn reactor_stalled(lateness: Duration) {
    count(|c| {
        c.reactor_stalls += 1;
        c.reactor_stalled_micros += u64::try_from(lateness.as_micros()).unwrap_or(u64::MAX);
    });
}

/// Counts an open connection for as long as it lives.
pub struct OpenConnection(());

impl OpenConnection {
    pub fn opened() -> OpenConnection {
        count(|c| {
            c.connections_open += 1;
            c.connections_accepted += 1;
        });
        OpenConnection(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        count(|c| c.connections_open = c.connections_open.saturating_sub(1));
    }
}

/// This shard's metrics at one moment, ready to cross the mesh.
#[derive(Debug, Clone, Default)]
pub struct ShardSample {
    pub counters: Counters,
    /// Latency by API key.
    pub requests: Vec<(i16, HistogramSample)>,
    /// Errors by (API key, error code).
    pub errors: Vec<((i16, i16), u64)>,
    pub fsync: HistogramSample,
    pub appends_per_write: HistogramSample,
    pub write_bytes: HistogramSample,
}

/// Reads this shard's metrics.
pub fn sample() -> ShardSample {
    SHARD.with(|shard| {
        let requests = shard
            .requests
            .borrow()
            .iter()
            .map(|(&api, recorder)| (api, recorder.sample(&LATENCY_BOUNDS)))
            .collect();
        let errors = shard
            .errors
            .borrow()
            .iter()
            .map(|(&key, &n)| (key, n))
            .collect();
        let storage = shard.storage.borrow();
        let (fsync, appends_per_write, write_bytes) = match storage.as_ref() {
            Some(s) => (
                s.fsync.sample(&LATENCY_BOUNDS),
                s.appends_per_write.sample(&COUNT_BOUNDS),
                s.write_bytes.sample(&BYTES_BOUNDS),
            ),
            None => (
                Recorder::latency().sample(&LATENCY_BOUNDS),
                Recorder::values(MAX_APPENDS_PER_WRITE).sample(&COUNT_BOUNDS),
                Recorder::values(MAX_WRITE_BYTES).sample(&BYTES_BOUNDS),
            ),
        };
        ShardSample {
            counters: shard.counters.get(),
            requests,
            errors,
            fsync,
            appends_per_write,
            write_bytes,
        }
    })
}
