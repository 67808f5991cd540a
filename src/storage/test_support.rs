//! Helpers for the storage engine's unit tests.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use glommio::io::{DmaFile, OpenOptions};

/// Runs `make()` to completion on a fresh glommio executor. A 1 ms timer keeps the
/// reactor from sleeping through a completion it was not woken for (glommio 0.9;
/// see `shard::reactor_heartbeat`).
pub fn run<F, Fut>(make: F) -> Fut::Output
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(|| {
            glommio::spawn_local(async {
                loop {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            })
            .detach();
            make()
        })
        .expect("executor starts")
        .join()
        .expect("executor finishes")
}

/// A new, empty O_DIRECT file `f` in `dir`, readable and writable.
pub async fn new_file(dir: &Path) -> DmaFile {
    crate::storage::device::probe_io_poll(dir)
        .await
        .expect("device probed");
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .dma_open(dir.join("f"))
        .await
        .expect("file created")
}
