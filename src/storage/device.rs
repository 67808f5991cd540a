//! Works around glommio 0.9 misdetecting io_uring polled I/O on a device.
//!
//! glommio probes IOPOLL support with a read from the first O_DIRECT file a
//! thread opens on each device, and caches the answer per thread. When that file is
//! empty the kernel answers the read with 0 bytes before it reaches the device, so
//! glommio believes the device supports polling, and every later read of that
//! device fails with EOPNOTSUPP (seen on virtio disks). Opening a non-empty file
//! first makes the probe real.

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use glommio::io::DmaFile;

use crate::storage::error::{LogError, io};

thread_local! {
    static PROBED_DEVICES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

const PROBE_FILE: &str = ".sluice-iopoll-probe";

/// Makes sure glommio's per-thread IOPOLL probe for the device holding `dir` ran
/// against a file with data in it. Cheap after the first call per thread and device.
pub async fn probe_io_poll(dir: &Path) -> Result<(), LogError> {
    let device = std::fs::metadata(dir)?.dev();
    if PROBED_DEVICES.with(|probed| probed.borrow().contains(&device)) {
        return Ok(());
    }
    let path = dir.join(format!("{PROBE_FILE}-{:?}", std::thread::current().id()));
    std::fs::write(&path, [0u8; 4096])?;
    let opened = DmaFile::open(&path).await.map_err(io);
    let removed = std::fs::remove_file(&path);
    opened?.close().await.map_err(io)?;
    removed?;
    PROBED_DEVICES.with(|probed| probed.borrow_mut().insert(device));
    Ok(())
}
