//! Sends a response whose records come from segment files: memory pieces with
//! `write`, file ranges with `sendfile` (page cache to socket, no copy through user
//! space). It runs on the shard's blocking thread pool, never on the reactor: a
//! page-cache miss makes `sendfile` wait for the disk, and the shard's other
//! connections must not wait with it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::net::outgoing::{Piece, Pieces};

/// Threads per shard that run these sends; each sends one response at a time.
pub const SEND_THREADS: usize = 4;

/// A client that takes no bytes for this long loses its connection.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes every piece to `socket` (a non-blocking TCP socket), waiting for room
/// in the send buffer at most [`SEND_TIMEOUT`] at a time.
pub fn send_pieces(socket: &OwnedFd, pieces: &Pieces) -> std::io::Result<()> {
    let fd = socket.as_raw_fd();
    for piece in pieces.iter() {
        match piece {
            Piece::Bytes(bytes) => {
                let mut sent = 0;
                while sent < bytes.len() {
                    let rest = &bytes[sent..];
                    // SAFETY: a valid descriptor and a live buffer of `rest.len()` bytes.
                    let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
                    sent += progress(fd, n)?;
                }
            }
            Piece::File(range) => {
                let mut position = i64::try_from(range.position).map_err(std::io::Error::other)?;
                let end = position + i64::try_from(range.len).map_err(std::io::Error::other)?;
                while position < end {
                    let count = usize::try_from(end - position).map_err(std::io::Error::other)?;
                    // SAFETY: valid descriptors; the kernel advances `position`.
                    let n =
                        unsafe { libc::sendfile(fd, range.file.as_raw_fd(), &mut position, count) };
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("segment ends at {position}, before {end}"),
                        ));
                    }
                    progress(fd, n)?;
                }
            }
        }
    }
    Ok(())
}

/// Bytes written by a call that returned `n`; 0 after waiting for room when the
/// socket was full.
fn progress(fd: i32, n: isize) -> std::io::Result<usize> {
    if n >= 0 {
        return Ok(n as usize);
    }
    let error = std::io::Error::last_os_error();
    match error.kind() {
        std::io::ErrorKind::WouldBlock => wait_writable(fd).map(|()| 0),
        std::io::ErrorKind::Interrupted => Ok(0),
        _ => Err(error),
    }
}

fn wait_writable(fd: i32) -> std::io::Result<()> {
    let deadline = Instant::now() + SEND_TIMEOUT;
    const MAX_POLLS: usize = 1_000;
    for _ in 0..MAX_POLLS {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::last_os_error());
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the client took nothing for {SEND_TIMEOUT:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::net::outgoing::FileRange;

    /// Memory and file pieces arrive in order, also when the peer reads slowly
    /// and the (non-blocking) socket fills up.
    #[test]
    fn pieces_arrive_in_order_through_a_full_socket() {
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&content).unwrap();
        let file = Arc::new(file);
        let mut pieces = Pieces::default();
        pieces.push(Piece::Bytes(Bytes::from_static(b"head")));
        pieces.push(Piece::File(FileRange {
            file,
            position: 7,
            len: 2_900_000,
        }));
        pieces.push(Piece::Bytes(Bytes::from_static(b"tail")));
        let (sender, mut receiver) = UnixStream::pair().unwrap();
        sender.set_nonblocking(true).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            loop {
                std::thread::sleep(Duration::from_millis(1));
                match receiver.read(&mut buf).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        let socket = OwnedFd::from(sender);
        send_pieces(&socket, &pieces).unwrap();
        drop(socket);
        let got = reader.join().unwrap();
        assert_eq!(&got[..4], b"head");
        assert_eq!(&got[4..2_900_004], &content[7..2_900_007]);
        assert_eq!(&got[2_900_004..], b"tail");
    }
}
