//! Starts one pinned executor per shard, joins them into a channel mesh, opens each
//! shard's partitions and listener, and stops them all on SIGINT/SIGTERM.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};

use crate::cluster::image::Identity;
use crate::cluster::meta_properties;
use crate::config::BrokerConfig;
use crate::net::listen_check;
use crate::net::metrics_endpoint::{self, Readiness};
use crate::net::sendfile::SEND_THREADS;
use crate::shard::mesh::{CHANNEL_CAPACITY, Envelope};
use crate::shard::metadata::MetadataNode;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::storage::cleaner::CleanerConfig;
use crate::storage::dir_lock::DirLock;

/// How often a shard looks at the shutdown flag while idle.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
/// How often a recovered shard looks whether its peers have recovered too.
const STARTUP_POLL: Duration = Duration::from_millis(5);
/// Pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Start-up phases every shard passes together (flags shared by the shards).
#[derive(Default)]
struct Startup {
    /// The controller shard published the first metadata image to every shard.
    metadata_ready: AtomicBool,
    /// Shards whose partitions are recovered.
    recovered: AtomicUsize,
    /// This broker is registered and unfenced: clients may connect.
    serving: AtomicBool,
    shutdown: AtomicBool,
}

/// Runs the broker until SIGINT or SIGTERM; returns once every shard has flushed
/// and closed its partitions.
pub fn run(mut config: BrokerConfig) -> Result<(), String> {
    config.validate()?;
    config.data_dir = resolve_data_dir(&config.data_dir)?;
    let _lock = DirLock::acquire(&config.data_dir).map_err(|e| e.to_string())?;
    if config.is_broker() {
        listen_check::ensure_free(config.listen)?;
    }
    if let Some(controller) = config
        .controller_listen
        .filter(|_| !config.is_single_node())
    {
        listen_check::ensure_free(controller)?;
    }
    let mut metrics_listener = bind_metrics(config.metrics_listen)?;
    let meta = meta_properties::ensure(&config)?;
    let identity = Identity {
        node: config.node(),
        cluster_id: meta.cluster_id,
    };
    tracing::info!(node = identity.node.0, cluster_id = %identity.cluster_id, "node identity");
    raise_open_files_limit();
    let count = config.shard_count();
    let startup = Arc::new(Startup::default());
    watch_signals(Arc::clone(&startup))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mesh = MeshBuilder::<Envelope, _>::full(count, CHANNEL_CAPACITY);
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let config = config.clone();
        let identity = identity.clone();
        let mesh = mesh.clone();
        let startup = Arc::clone(&startup);
        let metrics = if index == CONTROLLER_SHARD.0 {
            metrics_listener.take()
        } else {
            None
        };
        let handle = LocalExecutorBuilder::new(Placement::Fixed(index % cores))
            .name(&format!("shard-{index}"))
            .blocking_thread_pool_placement(PoolPlacement::Unbound(SEND_THREADS))
            .spawn(move || async move {
                shard_main(config, identity, mesh, startup, count, metrics).await
            })
            .map_err(|e| format!("starting shard {index}: {e}"))?;
        handles.push(handle);
    }
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failure = Some(error),
            Err(error) => failure = Some(format!("a shard panicked: {error}")),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// This shard's cleaner settings (`None`: `log.cleaner.enable` is off).
fn cleaner_config(config: &BrokerConfig, shards: usize) -> Option<CleanerConfig> {
    let rate = config.log_cleaner_io_max_bytes_per_second;
    config.log_cleaner_enable.then(|| CleanerConfig {
        backoff: Duration::from_millis(config.log_cleaner_backoff_ms),
        map_bytes: usize::try_from(config.log_cleaner_dedupe_buffer_size / shards.max(1) as u64)
            .unwrap_or(usize::MAX),
        io_bytes_per_second: (rate < u64::MAX as f64).then_some(rate as u64),
        read_window: config.log_cleaner_io_buffer_size,
    })
}

async fn shard_main(
    config: BrokerConfig,
    identity: Identity,
    mesh: MeshBuilder<Envelope, glommio::channels::channel_mesh::Full>,
    startup: Arc<Startup>,
    shards: usize,
    metrics: Option<std::net::TcpListener>,
) -> Result<(), String> {
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|e| format!("joining the shard mesh: {e}"))?;
    let listen = config.listen;
    let shard = Rc::new(Shard::new(senders, config));
    shard.spawn_mesh_receivers(receivers);
    // Up before recovery, so /ready says "starting" while partitions open.
    let endpoint = metrics.map(|listener| {
        let startup = Arc::clone(&startup);
        metrics_endpoint::spawn(Rc::clone(&shard), listener, move || readiness(&startup))
    });
    watch_stalls(&shard, &startup);
    let fatal: Rc<RefCell<Option<String>>> = Rc::default();
    if shard.id() == CONTROLLER_SHARD {
        match MetadataNode::start(&shard, identity).await {
            Ok(node) => watch_metadata(&node, &startup, &fatal),
            Err(error) => {
                // The other shards see the flag and stop too.
                startup.shutdown.store(true, Ordering::Relaxed);
                shard.close_partitions().await;
                return Err(error);
            }
        }
        startup.metadata_ready.store(true, Ordering::Release);
    } else if !wait_for(&startup, &startup.metadata_ready).await {
        shard.close_partitions().await;
        return Ok(());
    }
    if let Err(error) = refuse_offline_partitions(&shard) {
        startup.shutdown.store(true, Ordering::Relaxed);
        shard.close_partitions().await;
        return Err(error);
    }
    // Bound only once every shard's partitions are recovered: a client connecting
    // earlier would be reset, or routed to a partition a peer is still opening and
    // told it does not exist (UNKNOWN_TOPIC_OR_PARTITION).
    startup.recovered.fetch_add(1, Ordering::AcqRel);
    while startup.recovered.load(Ordering::Acquire) < shards {
        if startup.shutdown.load(Ordering::Relaxed) {
            // A peer refused to start, or a signal came first.
            shard.close_partitions().await;
            return Ok(());
        }
        glommio::timer::sleep(STARTUP_POLL).await;
    }
    if let Some(node) = shard.metadata() {
        if shard.config().is_broker() && !startup.shutdown.load(Ordering::Relaxed) {
            node.start_broker();
            tracing::info!("waiting to be registered and unfenced by the active controller");
            futures_lite::future::or(node.unfenced(), async {
                while !startup.shutdown.load(Ordering::Relaxed) {
                    glommio::timer::sleep(SHUTDOWN_POLL).await;
                }
            })
            .await;
        }
        startup.serving.store(true, Ordering::Release);
    } else if !wait_for(&startup, &startup.serving).await {
        shard.close_partitions().await;
        return Ok(());
    }
    if let Some(cleaner) = cleaner_config(shard.config(), shards) {
        crate::storage::cleaner::start(cleaner);
    }
    if !shard.config().is_single_node() {
        let stopping = Arc::clone(&startup);
        glommio::spawn_local(crate::shard::isr::check_periodically(
            Rc::clone(&shard),
            move || stopping.shutdown.load(Ordering::Relaxed),
        ))
        .detach();
    }
    let acceptor = if shard.config().is_broker() && !startup.shutdown.load(Ordering::Relaxed) {
        let listener = TcpListener::bind(listen).map_err(|e| format!("binding {listen}: {e}"))?;
        if shard.id() == CONTROLLER_SHARD {
            tracing::info!(%listen, shards, data_dir = %shard.config().data_dir.display(), "sluice is serving");
        }
        Some(accept(&shard, listener))
    } else {
        None
    };
    while !startup.shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(SHUTDOWN_POLL).await;
    }
    if let Some(node) = shard.metadata()
        && shard.config().is_broker()
        && !shard.config().is_single_node()
        && fatal.borrow().is_none()
    {
        node.shut_down().await;
    }
    if let Some(acceptor) = acceptor {
        acceptor.cancel().await;
    }
    shard.close_partitions().await;
    if let Some(endpoint) = endpoint {
        endpoint.cancel().await;
    }
    if let Some(quorum) = shard.metadata().as_ref().and_then(|n| n.quorum().cloned()) {
        quorum.stop().await;
    }
    fatal.take().map_or(Ok(()), Err)
}

/// What `/ready` says: ready once every shard has opened its partitions and
/// the broker serves clients.
fn readiness(startup: &Startup) -> Readiness {
    if startup.shutdown.load(Ordering::Relaxed) {
        Readiness::Stopping
    } else if startup.serving.load(Ordering::Acquire) {
        Readiness::Ready
    } else {
        Readiness::Starting
    }
}

/// Binds the metrics endpoint before any shard starts, so a taken port stops
/// the start with its reason and port 0 is resolved for the log line.
fn bind_metrics(
    address: Option<std::net::SocketAddr>,
) -> Result<Option<std::net::TcpListener>, String> {
    let Some(address) = address else {
        tracing::info!("metrics endpoint off (metrics_listen is empty)");
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        format!(
            "metrics endpoint {address}: {e}; choose another address with --metrics-listen (port 0 picks a free one) or turn it off with --metrics-listen \"\""
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("metrics endpoint {address}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("metrics endpoint {address}: {e}"))?;
    tracing::info!(metrics_listen = %bound, "metrics endpoint listening: /metrics, /ready, /health");
    Ok(Some(listener))
}

/// Counts this shard's reactor stalls until shutdown (`reactor_stall_threshold_ms`
/// of 0 turns it off).
fn watch_stalls(shard: &Shard, startup: &Arc<Startup>) {
    let threshold = shard.config().reactor_stall_threshold_ms;
    if threshold == 0 {
        return;
    }
    let stopping = Arc::clone(startup);
    glommio::spawn_local(crate::metrics::stalls::watch(
        Duration::from_millis(threshold),
        move || stopping.shutdown.load(Ordering::Relaxed),
    ))
    .detach();
}

/// Accepting runs in its own task: an accept is never raced against a timer,
/// because a timed-out accept can drop a connection the kernel already made.
fn accept(shard: &Rc<Shard>, listener: TcpListener) -> glommio::Task<()> {
    let shard = Rc::clone(shard);
    glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    let shard = Rc::clone(&shard);
                    glommio::spawn_local(crate::net::connection::serve(shard, stream)).detach();
                }
                Err(error) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    glommio::timer::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    })
}

/// Stops the node when its metadata cannot go on (another cluster's peers or
/// controllers, a metadata log that cannot be written), with the reason as the
/// process's error.
fn watch_metadata(
    node: &Rc<MetadataNode>,
    startup: &Arc<Startup>,
    fatal: &Rc<RefCell<Option<String>>>,
) {
    let node = Rc::clone(node);
    let startup = Arc::clone(startup);
    let fatal = Rc::clone(fatal);
    glommio::spawn_local(async move {
        let reason = node.fatal().await;
        tracing::error!(%reason, "this node's metadata cannot go on; shutting down");
        *fatal.borrow_mut() = Some(reason);
        startup.shutdown.store(true, Ordering::Relaxed);
    })
    .detach();
}

/// Waits until `flag` is set; `false` if shutdown came first.
async fn wait_for(startup: &Startup, flag: &AtomicBool) -> bool {
    // Bounded by the shutdown flag, which a signal or a failing peer sets.
    while !flag.load(Ordering::Acquire) {
        if startup.shutdown.load(Ordering::Relaxed) {
            return false;
        }
        glommio::timer::sleep(STARTUP_POLL).await;
    }
    true
}

/// At start-up every existing partition must open, unless the operator said
/// otherwise (`allow_offline_partitions`): serving without some of them would
/// answer their clients with errors until someone reads the log.
fn refuse_offline_partitions(shard: &Shard) -> Result<(), String> {
    let offline = shard.offline_partitions();
    if offline.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = offline
        .iter()
        .map(|(key, reason)| format!("{key}: {reason}"))
        .collect();
    if shard.config().allow_offline_partitions {
        tracing::error!(partitions = ?names, "serving with offline partitions (allow_offline_partitions)");
        return Ok(());
    }
    Err(format!(
        "cannot open {} partition(s) on shard {}: {}; start with --allow-offline-partitions to serve the others",
        names.len(),
        shard.id(),
        names.join("; ")
    ))
}

/// Creates the data directory if needed and returns its absolute, canonical path:
/// the only form of it used below. glommio opens files relative to no directory
/// (`openat` with an invalid fd), so a relative path fails there with EBADF.
fn resolve_data_dir(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("data directory {}: {e}", dir.display()))?;
    let resolved =
        std::fs::canonicalize(dir).map_err(|e| format!("data directory {}: {e}", dir.display()))?;
    assert!(
        resolved.is_absolute(),
        "canonicalize returns absolute paths"
    );
    tracing::info!(given = %dir.display(), resolved = %resolved.display(), "data directory");
    Ok(resolved)
}

/// Raises the soft limit on open files to the hard limit, as Kafka's packaging
/// does: every partition keeps its active segment open, so the usual soft limit of
/// 1,024 caps a broker at about a thousand partitions.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if raised {
        tracing::info!(open_files = limit.rlim_cur, "open files limit");
    } else {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise the open files limit");
    }
}

/// Blocks SIGINT and SIGTERM in every thread and sets the shutdown flag when
/// one arrives.
fn watch_signals(startup: Arc<Startup>) -> Result<(), String> {
    // SAFETY: plain libc signal-mask calls on a zeroed sigset_t we own.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err("cannot block SIGINT/SIGTERM".into());
        }
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signal = 0;
            // SAFETY: sigwait on the set blocked above.
            unsafe { libc::sigwait(&set, &mut signal) };
            tracing::info!(signal, "shutting down");
            startup.shutdown.store(true, Ordering::Relaxed);
        })
        .map_err(|e| format!("starting the signal thread: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use glommio::LocalExecutorBuilder;
    use glommio::io::DmaFile;

    /// glommio 0.9 parked an executor whose task queues were still runnable when a
    /// preemption request arrived before the first queue ran
    /// (vendor/glommio/SLUICE-PATCH.md); with nothing else in flight it then slept
    /// until some timer fired. A 20 µs preemption timer makes that window frequent:
    /// without the patch this hung in 6 runs out of 6; with it, it takes about 2 s.
    #[test]
    fn executor_does_not_park_with_runnable_tasks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_owned();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let executor = LocalExecutorBuilder::default()
                .preempt_timer(Duration::from_micros(20))
                .spawn(move || async move {
                    let appenders: Vec<_> = (0..4)
                        .map(|i| {
                            let path = path.join(format!("file-{i}"));
                            glommio::spawn_local(async move {
                                let file = DmaFile::create(&path).await.expect("create");
                                for n in 0..1000 {
                                    let mut block = file.alloc_dma_buffer(4096);
                                    block.as_bytes_mut().fill(1);
                                    file.write_at(block, n * 4096).await.expect("write");
                                    file.fdatasync().await.expect("fdatasync");
                                }
                                file.close().await.expect("close");
                            })
                        })
                        .collect();
                    for appender in appenders {
                        appender.await;
                    }
                })
                .expect("executor starts");
            executor.join().expect("executor finishes");
            done.send(()).expect("the test waits");
        });
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the executor parked with runnable tasks and never woke");
    }
}
