//! The compatibility check with third-party clients, `tools/compat/run.sh` (kcat,
//! including a consumer group, and kafka-python), run against the test binary as
//! part of `cargo test`. The script starts and stops the broker itself, on a port
//! reserved here. It needs kcat and kafka-python and, when one is missing, fails
//! saying how to install it.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/command.rs"]
mod command;

use std::process::Command;
use std::time::Duration;

use command::run_bounded;

/// Far above the script's own run time (seconds); its client calls are bounded
/// by `timeout 30` each.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn kcat_and_kafka_python_pass_tools_compat_run_sh() {
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
