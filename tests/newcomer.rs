//! The README's first steps, taken as a newcomer takes them (issue 9): in a fresh,
//! empty working directory, the README's run command (with the test binary in
//! place of `cargo run --release --`), then its Python and kcat examples exactly
//! as README.md spells them; then a SIGTERM, a restart in the same directory, and
//! the records read again. Once as written (data in `./data`), once with a
//! relative `--data-dir`.
//!
//! The commands are read from README.md, so this test fails when the README and
//! the binary disagree. The examples talk to 127.0.0.1:9092, so this test needs
//! that address free; it needs kcat and kafka-python too, and fails, naming how to
//! install them, when they are missing.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/command.rs"]
mod command;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use broker::UserBroker;
use command::{Finished, run_bounded};

const README: &str = include_str!("../README.md");
/// The section of README.md that holds the run command and the client examples.
const RUN_SECTION: &str = "Run the broker";
/// What the README's run command is for `cargo`; the test runs the binary itself.
const CARGO_RUN: &str = "cargo run --release --";
/// Where the README's examples connect: the broker's default listen address.
const README_ADDR: &str = "127.0.0.1:9092";
/// The topic and the record value the README's examples use.
const TOPIC: &str = "greetings";
const VALUE: &str = "hello";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn readme_run_command_and_examples_work_verbatim_in_a_fresh_directory() {
    require_clients();
    let readme = ReadmeExamples::parse(README);
    // As written: data in ./data.
    newcomer_session(&readme, &[], Path::new("data"));
    // With a relative --data-dir, resolved against the working directory too.
    newcomer_session(&readme, &["--data-dir", "s/data"], Path::new("s/data"));
}

/// One newcomer from scratch, in fresh temporary directories: start the broker
/// with the README's arguments plus `extra_args`, run the examples, check the
/// records and that they are stored under `data_dir` (relative to the working
/// directory), stop, start again and read them again.
fn newcomer_session(readme: &ReadmeExamples, extra_args: &[&str], data_dir: &Path) {
    let root = tempfile::Builder::new()
        .prefix("sluice-newcomer-")
        .tempdir()
        .expect("create a temp dir");
    let cwd = root.path().join("work");
    std::fs::create_dir(&cwd).expect("create the working directory");
    let stderr_path = root.path().join("broker.stderr");
    let mut args = readme.serve_args.clone();
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let addr: SocketAddr = README_ADDR.parse().expect("a socket address");
    let run = format!("`sluice {}` in a fresh directory", args.join(" "));

    let mut broker = UserBroker::start(&cwd, &args, addr, &stderr_path);
    readme.python(&cwd, &run, 1);
    readme.kcat_produce(&cwd, &run);
    readme.kcat_consume(&cwd, &run, 2);
    broker.stop_gracefully();
    let partition = cwd.join(data_dir).join(format!("{TOPIC}-0"));
    assert!(
        partition.is_dir(),
        "{run}: the partition directory {} does not exist",
        partition.display()
    );

    let run = format!("{run}, restarted");
    broker = UserBroker::start(&cwd, &args, addr, &stderr_path);
    readme.kcat_consume(&cwd, &run, 2);
    // The Python example sends one more record before it reads them all.
    readme.python(&cwd, &run, 3);
    broker.stop_gracefully();
}

/// kcat and kafka-python must be installed: a missing client fails the test
/// rather than skipping what it is there to check.
fn require_clients() {
    let kcat = Command::new("kcat").arg("-V").output();
    assert!(
        kcat.is_ok_and(|output| output.status.success()),
        "kcat is not installed (the README's kcat examples need it): \
         apt-get install -y kcat (.ci/run installs it when missing)"
    );
    let kafka_python = Command::new("python3")
        .args(["-c", "import kafka"])
        .output();
    assert!(
        kafka_python.is_ok_and(|output| output.status.success()),
        "kafka-python is not installed for python3 (the README's Python example needs it): \
         python3 -m pip install 'kafka-python>=3,<4' (.ci/run installs it when missing)"
    );
}

/// The run command and client examples of README.md's "Run the broker" section.
struct ReadmeExamples {
    /// The run command's arguments after `cargo run --release --`.
    serve_args: Vec<String>,
    /// The ```python block.
    python_block: String,
    /// The kcat producer and consumer lines, shell commands.
    kcat_producer_line: String,
    kcat_consumer_line: String,
}

impl ReadmeExamples {
    /// Reads the examples; panics with what it expected if the section's shape
    /// changed: two ```sh blocks (the run command, then a kcat producer line and a
    /// kcat consumer line) and one ```python block.
    fn parse(markdown: &str) -> ReadmeExamples {
        let blocks: Vec<FencedBlock> = fenced_blocks(markdown)
            .into_iter()
            .filter(|block| block.section == RUN_SECTION)
            .collect();
        let of = |language: &str| -> Vec<&FencedBlock> {
            blocks.iter().filter(|b| b.language == language).collect()
        };
        let (sh, python) = (of("sh"), of("python"));
        assert!(
            sh.len() == 2 && python.len() == 1,
            "README.md, section {RUN_SECTION:?}: expected two ```sh blocks (the run command, \
             then the kcat examples) and one ```python block, found {} and {}",
            sh.len(),
            python.len()
        );

        let run = lines(&sh[0].text);
        let [run] = run.as_slice() else {
            panic!("README.md's run command block is not one command: {run:?}");
        };
        let serve = run.strip_prefix(CARGO_RUN).unwrap_or_else(|| {
            panic!("README.md's run command {run:?} does not start with {CARGO_RUN:?}")
        });
        assert!(
            !serve.contains(|c: char| "'\"\\$`;&|<>()*?~#".contains(c)),
            "README.md's run command {run:?} needs a shell; this test runs it without one"
        );

        let kcat = lines(&sh[1].text);
        let [produce, consume] = kcat.as_slice() else {
            panic!("README.md's kcat block is not a producer line then a consumer line: {kcat:?}");
        };
        assert!(
            produce.contains("kcat -P") && consume.contains("kcat -C"),
            "README.md's kcat block is not a producer (-P) line then a consumer (-C) line: {kcat:?}"
        );

        ReadmeExamples {
            serve_args: serve.split_whitespace().map(str::to_string).collect(),
            python_block: python[0].text.clone(),
            kcat_producer_line: produce.to_string(),
            kcat_consumer_line: consume.to_string(),
        }
    }

    /// Runs the Python example in `cwd` and checks that it printed `count`
    /// records, all the README's value.
    fn python(&self, cwd: &Path, run: &str, count: usize) {
        let mut command = Command::new("python3");
        command.arg("-c").arg(&self.python_block).current_dir(cwd);
        let finished = run_bounded("the README's Python example", command, CLIENT_TIMEOUT);
        let values = vec![format!("b'{VALUE}'"); count].join(", ");
        expect_output(&finished, &format!("[{values}]\n"), run);
    }

    /// Runs the kcat producer line in `cwd` with `sh`: it must exit 0 without
    /// reporting an error.
    fn kcat_produce(&self, cwd: &Path, run: &str) {
        let finished = shell("the README's kcat producer", &self.kcat_producer_line, cwd);
        assert!(
            finished.status.success() && !finished.stderr.to_lowercase().contains("error"),
            "{run}: {finished}"
        );
    }

    /// Runs the kcat consumer line in `cwd` with `sh` and checks that it printed
    /// `count` records, all the README's value.
    fn kcat_consume(&self, cwd: &Path, run: &str, count: usize) {
        let finished = shell("the README's kcat consumer", &self.kcat_consumer_line, cwd);
        expect_output(&finished, &format!("{VALUE}\n").repeat(count), run);
    }
}

fn shell(what: &str, line: &str, cwd: &Path) -> Finished {
    let mut command = Command::new("sh");
    command.arg("-c").arg(line).current_dir(cwd);
    run_bounded(&format!("{what} `{line}`"), command, CLIENT_TIMEOUT)
}

fn expect_output(finished: &Finished, stdout: &str, run: &str) {
    assert!(
        finished.status.success() && finished.stdout == stdout,
        "{run}: expected exit 0 and stdout {stdout:?}; {finished}"
    );
}

/// The non-empty lines of a block.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
}

/// A fenced code block of a Markdown document.
struct FencedBlock {
    /// The text of the last heading before it, without the `#`s.
    section: String,
    /// The info string after the opening fence (```sh: `sh`).
    language: String,
    /// The lines between the fences.
    text: String,
}

/// The ``` fenced blocks of `markdown`, in order, each with its section.
fn fenced_blocks(markdown: &str) -> Vec<FencedBlock> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut open: Option<FencedBlock> = None;
    for line in markdown.lines() {
        match open.as_mut() {
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.extend(open.take());
            }
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            None => {
                if let Some(info) = line.trim_start().strip_prefix("```") {
                    open = Some(FencedBlock {
                        section: section.clone(),
                        language: info.trim().to_string(),
                        text: String::new(),
                    });
                } else if line.starts_with('#') {
                    section = line.trim_start_matches('#').trim().to_string();
                }
            }
        }
    }
    assert!(open.is_none(), "README.md has an unclosed ``` block");
    blocks
}
