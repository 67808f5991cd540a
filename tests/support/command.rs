//! Runs external commands (clients, scripts) from integration tests, bounded in
//! time, with their output captured for the test's assertions and messages.
//!
//! Include it from a test file with
//! `#[path = "support/command.rs"] mod command;`.
#![allow(dead_code)]

use std::fmt;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A command that ran to its end.
pub struct Finished {
    /// What the command was, for messages.
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} exited with {}\n---- stdout ----\n{}---- stderr ----\n{}---- end ----",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` (described as `what` in messages) with no stdin, in a process
/// group of its own, and waits for it to exit. Panics if it cannot be spawned, or
/// if it runs longer than `timeout`: then its whole process group (a shell and
/// what it started) is killed and the output so far is in the message.
pub fn run_bounded(what: &str, mut command: Command, timeout: Duration) -> Finished {
    let dir = tempfile::Builder::new()
        .prefix("sluice-command-")
        .tempdir()
        .expect("create a temp dir for a command's output");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let stdout = File::create(&stdout_path).expect("create the stdout file");
    let stderr = File::create(&stderr_path).expect("create the stderr file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    let read = |path| {
        fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let group = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
            // SAFETY: kill(2) on the process group our child leads; it has not
            // been reaped, so the group id is still ours.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "{what} did not finish within {timeout:?}; killed\n---- stdout ----\n{}---- stderr ----\n{}---- end ----",
                read(&stdout_path),
                read(&stderr_path)
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Finished {
        what: what.to_string(),
        status,
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
    }
}
