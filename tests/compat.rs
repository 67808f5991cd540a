//! The compatibility check with third-party clients, `tools/compat/run.sh` (kcat,
//! including a consumer group; kafka-python, its transactional producer included;
//! a Quix Streams word count in exactly-once mode), run against the test binary as
//! part of `cargo test`. The script starts and stops the broker itself, on a port
//! reserved here. It needs kcat, kafka-python and quixstreams and, when one is
//! missing, fails saying how to install it.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/command.rs"]
mod command;

use std::process::Command;
use std::time::Duration;

use command::run_bounded;

/// Far above the script's own run time (about 100 s); its client calls are
/// bounded by `timeout` each (30 s for kcat, 120 s and 180 s for the
/// transactional checks).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn third_party_clients_pass_tools_compat_run_sh() {
    let (port, _reservation) = broker::reserve_port();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut command = Command::new("bash");
    command
        .arg("tools/compat/run.sh")
        .current_dir(root)
        .env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"))
        .env("BOOTSTRAP", format!("127.0.0.1:{port}"));
    let finished = run_bounded("tools/compat/run.sh", command, SCRIPT_TIMEOUT);
    assert!(finished.status.success(), "{finished}");
    println!("{finished}");
}
