//! Starts one pinned executor per shard, joins them into a channel mesh, opens each
//! shard's partitions and listener, and stops them all on SIGINT/SIGTERM.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};

use crate::broker::topics::TopicTable;
use crate::config::BrokerConfig;
use crate::net::listen_check;
use crate::net::sendfile::SEND_THREADS;
use crate::shard::mesh::{CHANNEL_CAPACITY, Envelope};
use crate::shard::{Shard, reactor_heartbeat};
use crate::storage::dir_lock::DirLock;

/// How often a shard looks at the shutdown flag while idle.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
/// Pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Runs the broker until SIGINT or SIGTERM; returns once every shard has flushed
/// and closed its partitions.
pub fn run(config: BrokerConfig) -> Result<(), String> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
    let _lock = DirLock::acquire(&config.data_dir).map_err(|e| e.to_string())?;
    listen_check::ensure_free(config.listen)?;
    let table = TopicTable::load(&config.data_dir)?;
    let count = config.shard_count();
    let shutdown = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&shutdown))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mesh = MeshBuilder::<Envelope, _>::full(count, CHANNEL_CAPACITY);
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let config = config.clone();
        let table = table.clone();
        let mesh = mesh.clone();
        let shutdown = Arc::clone(&shutdown);
        let handle = LocalExecutorBuilder::new(Placement::Fixed(index % cores))
            .name(&format!("shard-{index}"))
            .blocking_thread_pool_placement(PoolPlacement::Unbound(SEND_THREADS))
            .spawn(move || async move { shard_main(config, table, mesh, shutdown).await })
            .map_err(|e| format!("starting shard {index}: {e}"))?;
        handles.push(handle);
    }
    tracing::info!(listen = %config.listen, shards = count, data_dir = %config.data_dir.display(), "sluice is serving");
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

async fn shard_main(
    config: BrokerConfig,
    table: TopicTable,
    mesh: MeshBuilder<Envelope, glommio::channels::channel_mesh::Full>,
    shutdown: Arc<AtomicBool>,
) -> Result<(), String> {
    reactor_heartbeat::spawn();
    let (senders, receivers) = mesh
        .join()
        .await
        .map_err(|e| format!("joining the shard mesh: {e}"))?;
    let listen = config.listen;
    let shard = Rc::new(Shard::new(senders, config));
    shard.spawn_mesh_receivers(receivers);
    shard.apply_topics(table).await;
    // Bound only once this shard's partitions are recovered: a client connecting
    // earlier would be reset.
    let listener = TcpListener::bind(listen).map_err(|e| format!("binding {listen}: {e}"))?;
    // Accepting runs in its own task: an accept is never raced against a timer,
    // because a timed-out accept can drop a connection the kernel already made.
    let acceptor = {
        let shard = Rc::clone(&shard);
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
    };
    while !shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(SHUTDOWN_POLL).await;
    }
    acceptor.cancel().await;
    shard.close_partitions().await;
    Ok(())
}

/// Blocks SIGINT and SIGTERM in every thread and sets `flag` when one arrives.
fn watch_signals(flag: Arc<AtomicBool>) -> Result<(), String> {
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
            flag.store(true, Ordering::Relaxed);
        })
        .map_err(|e| format!("starting the signal thread: {e}"))?;
    Ok(())
}
