//! A timer that keeps each glommio reactor from sleeping for long.
//!
//! glommio 0.9 sleeps on one io_uring after linking its other rings to it with a
//! poll on their ring fds. On this project's kernels (seen on 6.18) a completion
//! sometimes arrives without waking that sleep, and the executor stays parked with
//! finished I/O until some timer fires: `sluice bench-log` hung for minutes about
//! once in thirty 10-second runs, parked in `io_uring_enter` with the write done.
//! (glommio upstream discussed replacing ring linking with an eventfd for such
//! hangs.) A short periodic timer bounds the stall to one period.

use std::time::Duration;

/// How long a lost wake-up can stall a reactor at most.
pub const PERIOD: Duration = Duration::from_millis(1);

/// Spawns the heartbeat on the current executor; it runs until the executor ends.
pub fn spawn() {
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(PERIOD).await;
        }
    })
    .detach();
}
