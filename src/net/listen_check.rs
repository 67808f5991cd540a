//! Refuses to start on an address another broker already serves. Every shard binds
//! with SO_REUSEPORT, so a second broker (same user) would bind the same port and
//! the kernel would split new connections between the two. A connect to the
//! address tells whether anyone is listening; a socket that is only bound (a test
//! harness reserving the port) refuses the connection and does not count.
//!
//! A broker killed a moment ago still accepts for a few milliseconds: its io_uring
//! instance is torn down after the process is reaped, and the pending accept holds
//! the listening socket until then. So only a listener that is still there after
//! [`GRACE`] counts.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long the probe waits for a connection on loopback.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a listener may take to disappear.
const GRACE: Duration = Duration::from_secs(2);
/// Pause between probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// An error if something accepts connections on `listen` already.
pub fn ensure_free(listen: SocketAddr) -> Result<(), String> {
    let mut probe = listen;
    if probe.ip().is_unspecified() {
        probe.set_ip(match listen {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let deadline = Instant::now() + GRACE;
    while TcpStream::connect_timeout(&probe, PROBE_TIMEOUT).is_ok() {
        if Instant::now() >= deadline {
            return Err(format!(
                "binding {listen}: address already in use (another process accepts connections on it)"
            ));
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_is_refused_and_a_closed_one_is_free() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(ensure_free(addr).is_err());
        drop(listener);
        assert!(ensure_free(addr).is_ok());
    }
}
