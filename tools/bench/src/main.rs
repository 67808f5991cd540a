//! `sluice-bench`: runs a workload against one broker (or two, alternating),
//! prints progress and a summary per run, writes the requested files, and
//! exits non-zero if any run lost, duplicated or reordered a record or saw an
//! error.

mod admin;
mod cli;
mod client;
mod consumer;
mod error;
mod hgrm;
mod output;
mod payload;
mod plot;
mod producer;
mod report;
mod run;
mod schedule;
mod stats;
mod verify;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::Cli;
use crate::client::Connection;
use crate::error::BenchError;
use crate::report::{Comparison, Document, RunReport, describe, summary};
use crate::run::{RunOptions, RunResult};
use crate::workload::Workload;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match bench(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("sluice-bench: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything the command line asks for; false if a run failed.
fn bench(cli: &Cli) -> Result<bool, BenchError> {
    let workload = Workload::load(cli.workload.as_deref(), &cli.overrides())?;
    let mut targets = vec![("A", cli.bootstrap.as_str())];
    if let Some(b) = &cli.vs {
        targets.push(("B", b));
    }
    let rounds = if cli.vs.is_some() { cli.rounds } else { 1 };
    println!("workload: {}", describe(&workload));

    let mut runs: Vec<(String, RunResult)> = Vec::new();
    let mut reports = Vec::new();
    for round in 1..=rounds {
        for &(name, bootstrap) in &targets {
            let label = if cli.vs.is_some() {
                format!("{name}{round}")
            } else {
                "run".to_owned()
            };
            println!("== {label}: {bootstrap} ==");
            let options = RunOptions {
                connection: Connection {
                    bootstrap: bootstrap.to_owned(),
                    properties: cli.property.clone(),
                },
                topic: cli.topic.clone(),
                delete_topics: cli.delete_topics,
                drain_timeout: Duration::from_secs(cli.drain_timeout),
            };
            let result = run::run(&workload, &options)?;
            let report = RunReport::new(&label, &result, &workload);
            print!("{}", summary(&report, &workload));
            reports.push(report);
            runs.push((label, result));
        }
    }

    let comparison = cli.vs.is_some().then(|| {
        let of = |name: &str| -> Vec<&RunReport> {
            reports
                .iter()
                .filter(|r| r.label.starts_with(name))
                .collect()
        };
        Comparison::new(&of("A"), &of("B"))
    });
    if let Some(comparison) = &comparison {
        print!("{}", comparison.table());
    }
    if let Some(path) = &cli.json {
        let document = Document {
            tool: "sluice-bench",
            workload: &workload,
            runs: &reports,
            comparison: comparison.as_ref(),
        };
        output::write_json(path, &document)?;
    }
    if let Some(dir) = &cli.hgrm {
        output::write_hgrm(dir, &runs)?;
    }
    if let Some(path) = &cli.plot {
        output::write_plot(path, "sluice-bench: latency by percentile", &runs)?;
    }

    let mut passed = true;
    for report in &reports {
        let failures = report.failures();
        if !failures.is_empty() {
            eprintln!(
                "sluice-bench: run {} against {} FAILED: {}",
                report.label,
                report.bootstrap,
                failures.join(", ")
            );
            passed = false;
        }
    }
    Ok(passed)
}
