//! Runs the real `sluice` binary as a broker for integration tests.
//!
//! Include it from a test file with
//! `#[path = "support/broker.rs"] mod broker;`.
//!
//! Each [`Broker`] gets a free port on 127.0.0.1 and its own temporary directory
//! (on /tmp, which must support O_DIRECT) holding the data directory and the
//! broker's stderr. The child is killed when the `Broker` is dropped; if the test
//! is panicking at that moment (a failed assertion, or a harness panic such as a
//! broker that did not start), the broker's stderr is printed.
//!
//! [`UserBroker`] runs the binary the way a user would: exactly the given
//! arguments, in a given working directory, on the address those arguments choose.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a broker may take to answer ApiVersions after it was spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a broker may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a listener may go on accepting after its broker exited. The kernel
/// tears down a process's io_uring, and with it the files that its requests still
/// hold, after the process has been reaped: a restart right after SIGTERM has
/// found the old listener accepting, under heavy disk I/O from other processes.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Broker {
    port: u16,
    /// Keeps `port` bound (SO_REUSEPORT, not listening) while this `Broker`
    /// lives, so no other test's port probe can pick it.
    _port_reservation: std::os::fd::OwnedFd,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    child: Option<Child>,
    starts: u32,
}

impl Broker {
    /// Starts a broker with the default configuration and waits until it answers
    /// an ApiVersions request.
    pub fn start() -> Broker {
        Broker::start_with_args(&[])
    }

    /// Like [`Broker::start`], with `extra_args` after
    /// `serve --listen .. --data-dir ..`; they are passed again on every restart.
    pub fn start_with_args(extra_args: &[&str]) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("sluice-broker-")
            .tempdir()
            .expect("create the broker's temp dir");
        fs::create_dir(dir.path().join("data")).expect("create the data dir");
        let (port, reservation) = reserve_port();
        let mut broker = Broker {
            port,
            _port_reservation: reservation,
            dir,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            child: None,
            starts: 0,
        };
        broker.start_again();
        broker
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file the broker's stderr goes to (all starts, appended).
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    /// Everything the broker has written to stderr so far.
    pub fn stderr(&self) -> String {
        read_log(&self.stderr_path())
    }

    /// The running child's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is running").id()
    }

    /// Kills the broker with SIGKILL, then starts it again on the same port and
    /// data directory and waits until it answers ApiVersions.
    pub fn restart_with_sigkill(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Sends SIGTERM and waits (bounded) for the broker to exit; panics unless it
    /// exits with status 0.
    pub fn stop_gracefully(&mut self) {
        terminate(self.child.take().expect("the broker is running"));
    }

    /// Kills the broker with SIGKILL, at whatever it is doing, and reaps it;
    /// [`Broker::start_again`] starts it again on the same port and data directory.
    pub fn kill_with_sigkill(&mut self) {
        assert!(self.child.is_some(), "the broker is running");
        self.kill();
    }

    /// Spawns the broker (again) on this port and data directory and waits until
    /// it answers ApiVersions. Panics if it is already running.
    pub fn start_again(&mut self) {
        self.spawn();
        let addr = self.addr();
        wait_until_serving(&mut self.child, addr);
    }

    /// Like [`Broker::start_again`], with `extra_args` replacing the ones given so
    /// far, for this start and every later one.
    pub fn start_again_with_args(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        self.start_again();
    }

    /// Spawns the broker (again) and waits (bounded) for it to exit, as a broker
    /// that refuses to start does; returns its exit status. Panics (after killing
    /// it) if it answers ApiVersions instead, or neither serves nor exits in time.
    pub fn start_again_expecting_exit(&mut self) -> ExitStatus {
        self.spawn();
        let addr = self.addr();
        let mut child = self.child.take().expect("just spawned");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            let serving = answers_api_versions(addr);
            if serving || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                assert!(
                    !serving,
                    "broker answered ApiVersions on {addr}; expected it to refuse to start"
                );
                panic!("broker neither served nor exited within {START_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the broker wrote to stderr since it was last started.
    pub fn stderr_of_last_start(&self) -> String {
        let all = self.stderr();
        let marker = start_marker(self.starts);
        match all.rfind(&marker) {
            Some(at) => all[at + marker.len()..].to_string(),
            None => all,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The address of the metrics endpoint of the broker's latest start, as
    /// its start-up log line says.
    pub fn metrics_addr(&self) -> SocketAddr {
        let log = fs::read_to_string(self.stderr_path()).expect("read the broker's stderr");
        let (_, after) = log
            .rsplit_once("metrics_listen=")
            .expect("the broker logs its metrics endpoint's address");
        let address = after.split_whitespace().next().unwrap_or_default();
        address
            .parse()
            .unwrap_or_else(|e| panic!("metrics address {address:?}: {e}"))
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let addr = self.addr();
        assert!(
            released(addr),
            "a listener on {addr} (a previous start's) still accepts {RELEASE_TIMEOUT:?} after it exited"
        );
        self.starts += 1;
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .arg("serve")
            .arg("--listen")
            .arg(self.bootstrap())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra_args);
        // Tests run side by side: each broker its own metrics port, unless
        // the test chose one.
        if !self.extra_args.iter().any(|a| a == "--metrics-listen") {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        let child = spawn_logged(command, &self.stderr_path(), &start_marker(self.starts));
        self.child = Some(child);
    }

    fn kill(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("{}", stderr_report(&self.stderr_path()));
        }
    }
}

/// A `sluice` started the way a user starts it: exactly `args` after the binary,
/// in the working directory `cwd`, serving on `addr`, the address `args` choose
/// (the default listen address if they name none). Unlike [`Broker`] it gets no
/// port reservation and no data directory of its own. The child is killed when
/// this is dropped, and its stderr printed if the test is panicking.
pub struct UserBroker {
    stderr_path: PathBuf,
    child: Option<Child>,
}

impl UserBroker {
    /// Spawns the broker, its stderr appended to `stderr_path`, and waits until it
    /// answers ApiVersions on `addr`. Panics first if something listens on `addr`
    /// and goes on doing so for [`RELEASE_TIMEOUT`]: its answers would be taken for
    /// this broker's.
    pub fn start(cwd: &Path, args: &[String], addr: SocketAddr, stderr_path: &Path) -> UserBroker {
        assert!(
            released(addr),
            "something listens on {addr} (still, {RELEASE_TIMEOUT:?} later): stop it, this test \
             needs that address"
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command.args(args).current_dir(cwd);
        let marker = format!(
            "==== sluice test harness: `sluice {}` in {} ====",
            args.join(" "),
            cwd.display()
        );
        let mut broker = UserBroker {
            stderr_path: stderr_path.to_path_buf(),
            child: Some(spawn_logged(command, stderr_path, &marker)),
        };
        wait_until_serving(&mut broker.child, addr);
        broker
    }

    /// Sends SIGTERM and waits (bounded) for the broker to exit; panics unless it
    /// exits with status 0.
    pub fn stop_gracefully(&mut self) {
        terminate(self.child.take().expect("the broker is running"));
    }
}

impl Drop for UserBroker {
    fn drop(&mut self) {
        kill(&mut self.child);
        if thread::panicking() {
            eprintln!("{}", stderr_report(&self.stderr_path));
        }
    }
}

/// Whether `addr` stops accepting connections within [`RELEASE_TIMEOUT`].
pub fn released(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + RELEASE_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    true
}

fn start_marker(start: u32) -> String {
    format!("==== sluice test harness: start #{start} ====")
}

/// Spawns `command` with RUST_BACKTRACE=1, no stdin or stdout, and stderr
/// appended to `stderr_path` after a line `marker`.
fn spawn_logged(mut command: Command, stderr_path: &Path, marker: &str) -> Child {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_path)
        .expect("open the broker's stderr log");
    writeln!(log, "{marker}").expect("write the broker's stderr log");
    command
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn the sluice binary")
}

/// Waits (bounded) until `addr` answers ApiVersions. Panics if the broker in
/// `child` exits first (leaving `child` empty) or does not answer in time (after
/// killing it).
fn wait_until_serving(child: &mut Option<Child>, addr: SocketAddr) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let running = child.as_mut().expect("the broker was spawned");
        if let Some(status) = running.try_wait().expect("try_wait") {
            *child = None;
            panic!("broker exited with {status} before answering ApiVersions on {addr}");
        }
        if answers_api_versions(addr) {
            return;
        }
        if Instant::now() >= deadline {
            kill(child);
            panic!("broker did not answer ApiVersions on {addr} within {START_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to `child` and waits (bounded) for it to exit; panics unless it
/// exits with status 0.
fn terminate(mut child: Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
    let status = match wait_timeout(&mut child, STOP_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("broker did not exit within {STOP_TIMEOUT:?} of SIGTERM");
        }
    };
    assert!(
        status.success(),
        "broker exited with {status} after SIGTERM"
    );
}

/// Kills the broker in `child`, if any, with SIGKILL and reaps it.
fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The text of a broker's stderr log; empty if there is none yet.
fn read_log(stderr_path: &Path) -> String {
    fs::read(stderr_path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

fn stderr_report(stderr_path: &Path) -> String {
    format!(
        "---- broker stderr ----\n{}---- end of broker stderr ----",
        read_log(stderr_path)
    )
}

/// Whether a Kafka ApiVersions v0 request to `addr` gets a well-formed answer
/// without error: a stronger readiness check than an accepted TCP connection,
/// which the kernel completes before the broker calls accept.
pub fn answers_api_versions(addr: SocketAddr) -> bool {
    const CORRELATION_ID: i32 = 0x5eed;
    let client_id = b"sluice-test-harness";
    let mut request = Vec::new();
    request.extend_from_slice(&18i16.to_be_bytes()); // api key: ApiVersions
    request.extend_from_slice(&0i16.to_be_bytes()); // api version 0
    request.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);

    let exchange = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(&frame)?;
        let mut header = [0u8; 10]; // size, correlation id, error code
        stream.read_exact(&mut header)?;
        let size = i32::from_be_bytes(header[0..4].try_into().unwrap());
        let correlation_id = i32::from_be_bytes(header[4..8].try_into().unwrap());
        let error_code = i16::from_be_bytes(header[8..10].try_into().unwrap());
        Ok(size >= 6 && correlation_id == CORRELATION_ID && error_code == 0)
    };
    exchange().unwrap_or(false)
}

/// A free port on 127.0.0.1, and a socket that keeps it bound until dropped.
///
/// The broker listens with SO_REUSEPORT on every shard, so a port that was merely
/// free when probed could be bound by two brokers at once (tests run in parallel,
/// and other test processes too), each getting part of the other's connections.
/// The reservation is bound with SO_REUSEPORT but never listens: it takes no
/// connections, the broker (same user) can still bind the port, and no other
/// probe (`bind` to port 0) can get it.
pub fn reserve_port() -> (u16, std::os::fd::OwnedFd) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let last_error = || std::io::Error::last_os_error();
    // SAFETY: plain socket calls on a descriptor we own, with correctly sized
    // sockaddr_in arguments.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", last_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let one: libc::c_int = 1;
        let rc = libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_REUSEPORT: {}", last_error());
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::bind(raw, (&addr as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "bind 127.0.0.1:0: {}", last_error());
        let rc = libc::getsockname(raw, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len);
        assert_eq!(rc, 0, "getsockname: {}", last_error());
        (u16::from_be(addr.sin_port), fd)
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
