//! Refuses to start on an address another broker already serves. Every shard binds
//! with SO_REUSEPORT, so a second broker (same user) would bind the same port and
//! the kernel would split new connections between the two. A connect to the
//! address tells whether anyone is listening; a socket that is only bound (a test
//! harness reserving the port) refuses the connection and does not count.
//!
//! A broker that exited a moment ago can still accept for a while: its io_uring
//! instance is torn down after the process is reaped, and the pending accept holds
//! the listening socket until then (seconds on a loaded machine). Such a socket
//! accepts but never answers, so the probe sends an ApiVersions request: an answer
//! is a live broker, refused at once; a silent listener is waited for up to
//! [`GRACE`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long the probe waits for a connection on loopback.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a silent listener (a stopped broker's) may take to disappear.
const GRACE: Duration = Duration::from_secs(15);
/// How long a live broker may take to answer the probe's ApiVersions.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(1000);
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
    let in_use = || {
        format!(
            "binding {listen}: address already in use (another process accepts connections on it)"
        )
    };
    let deadline = Instant::now() + GRACE;
    while let Ok(stream) = TcpStream::connect_timeout(&probe, PROBE_TIMEOUT) {
        if answers(stream) || Instant::now() >= deadline {
            return Err(in_use());
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
    Ok(())
}

/// Whether whoever accepted `stream` answers an ApiVersions v0 request.
fn answers(mut stream: TcpStream) -> bool {
    use std::io::{Read, Write};
    // size, api key 18, version 0, correlation id 1, null client id
    const REQUEST: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    let mut size = [0u8; 4];
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).is_ok()
        && stream.write_all(&REQUEST).is_ok()
        && stream.read_exact(&mut size).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answering_listener_is_refused_at_once_and_a_closed_port_is_free() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            let mut request = [0u8; 14];
            peer.read_exact(&mut request).unwrap();
            peer.write_all(&[0, 0, 0, 4, 0, 0, 0, 1]).unwrap();
        });
        let started = Instant::now();
        assert!(ensure_free(addr).is_err());
        assert!(
            started.elapsed() < GRACE,
            "refused without waiting for the grace"
        );
        server.join().unwrap();
        assert!(ensure_free(addr).is_ok(), "the listener is gone");
    }
}
