//! Smoke test: `sluice-bench` against the real `sluice` broker binary for a few
//! seconds, then a look at its JSON, `.hgrm` and SVG output.
//!
//! The broker binary is the root package's, built by `cargo test --workspace`
//! into the same target directory as this test (`<target>/debug/deps/` holds
//! the test executable).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const BENCH_TIMEOUT: Duration = Duration::from_secs(120);

/// A `sluice serve` child on a free port with its own data directory; killed
/// on drop.
struct Broker {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
    /// Keeps the port ours until the broker binds it (see `reserve_port`).
    _reservation: OwnedFd,
}

impl Broker {
    fn start() -> Broker {
        let sluice = sluice_binary();
        assert!(
            sluice.exists(),
            "{} is missing: run `cargo test --workspace` (or `cargo build --bin sluice`) first",
            sluice.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("sluice-bench-smoke-")
            .tempdir()
            .unwrap();
        let (port, reservation) = reserve_port();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(sluice)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                // Groups form at once instead of after Kafka's 3 s delay.
                "--group-initial-rebalance-delay-ms",
                "0",
                // Tests run side by side: each broker its own metrics port.
                "--metrics-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn sluice");
        let mut broker = Broker {
            port,
            child,
            dir,
            _reservation: reservation,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = broker.child.try_wait().unwrap() {
                panic!("sluice exited with {status}:\n{}", broker.stderr());
            }
            assert!(Instant::now() < deadline, "sluice did not listen on {addr}");
            thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- broker stderr ----\n{}", self.stderr());
        }
    }
}

/// `<target>/debug/sluice`, next to the `deps/` directory this test runs from.
fn sluice_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("sluice")
}

/// A free port on 127.0.0.1, and a socket holding it until dropped. The broker
/// binds with SO_REUSEPORT, so the holder does too (and never listens): the
/// broker can bind the port, other tests' probes for a free port cannot.
fn reserve_port() -> (u16, OwnedFd) {
    // SAFETY: plain socket calls on a descriptor we own, with correctly sized
    // arguments.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let rc = libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            size,
        );
        assert_eq!(rc, 0, "SO_REUSEPORT");
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            len,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let rc = libc::getsockname(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        );
        assert_eq!(rc, 0, "getsockname");
        (u16::from_be(addr.sin_port), fd)
    }
}

/// Runs sluice-bench with `args`, bounded by [`BENCH_TIMEOUT`].
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice-bench");
    let deadline = Instant::now() + BENCH_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_short_run_against_sluice_is_measured_and_verified() {
    let broker = Broker::start();
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("run.json");
    let hgrm = out.path().join("hgrm");
    let svg = out.path().join("latency.svg");
    let bootstrap = format!("127.0.0.1:{}", broker.port);
    let output = bench(&[
        "--bootstrap",
        &bootstrap,
        "--warmup=1",
        "--duration=2",
        "--partitions=4",
        "--consumers=2",
        "--rate=2000",
        "--message-size=256",
        "--keys=round-robin",
        "--compression=lz4",
        "--delete-topics",
        "--json",
        json.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sluice-bench failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("verification: passed"), "{stdout}");
    assert!(
        stdout.contains(" measure | pub "),
        "progress lines: {stdout}"
    );

    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(document["workload"]["partitions_per_topic"], 4);
    assert_eq!(document["workload"]["compression"], "lz4");
    let run = &document["runs"][0];
    assert_eq!(run["bootstrap"], bootstrap.as_str());
    let published = run["publish"]["records"].as_u64().unwrap();
    assert!(published > 0, "{run}");
    assert!(run["end_to_end"]["records"].as_u64().unwrap() > 0, "{run}");
    assert!(
        run["publish"]["latency_us"]["p50"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert!(
        run["end_to_end"]["latency_us"]["max"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert_eq!(run["errors"]["produce"], 0, "{run}");
    assert_eq!(run["errors"]["consume"], 0, "{run}");
    let verification = &run["verification"];
    assert_eq!(verification["checked"], true, "{run}");
    assert_eq!(verification["passed"], true, "{run}");
    assert_eq!(verification["lost"], 0, "{run}");
    assert_eq!(verification["expected"], verification["consumed"], "{run}");
    assert_eq!(run["passed"], true, "{run}");

    for side in ["publish", "e2e"] {
        let text = std::fs::read_to_string(hgrm.join(format!("run-{side}.hgrm"))).unwrap();
        assert!(text.contains("Percentile TotalCount"), "{text}");
    }
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(drawing.matches("<polyline").count(), 2);
}
