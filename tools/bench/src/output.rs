//! The files a benchmark leaves behind: `--json`, `--hgrm` and `--plot`.

use std::fs;
use std::path::Path;

use crate::error::BenchError;
use crate::hgrm::percentile_distribution;
use crate::plot::{Series, svg};
use crate::report::Document;
use crate::run::RunResult;

fn write(path: &Path, contents: &str) -> Result<(), BenchError> {
    fs::write(path, contents).map_err(|source| BenchError::Write {
        path: path.display().to_string(),
        source,
    })
}

pub fn write_json(path: &Path, document: &Document<'_>) -> Result<(), BenchError> {
    let json = serde_json::to_string_pretty(document).expect("reports serialize");
    write(path, &(json + "\n"))
}

/// `LABEL-publish.hgrm` and `LABEL-e2e.hgrm` per run, measured records only.
pub fn write_hgrm(dir: &Path, runs: &[(String, RunResult)]) -> Result<(), BenchError> {
    fs::create_dir_all(dir).map_err(|source| BenchError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    for (label, result) in runs {
        for (side, meter) in [
            ("publish", &result.totals.publish),
            ("e2e", &result.totals.consume),
        ] {
            let path = dir.join(format!("{label}-{side}.hgrm"));
            write(&path, &percentile_distribution(&meter.measured_latency))?;
        }
    }
    Ok(())
}

/// Publish and end-to-end latency of every run in one drawing.
pub fn write_plot(
    path: &Path,
    title: &str,
    runs: &[(String, RunResult)],
) -> Result<(), BenchError> {
    let series: Vec<Series<'_>> = runs
        .iter()
        .flat_map(|(label, result)| {
            [
                Series {
                    name: format!("{label} publish"),
                    histogram: &result.totals.publish.measured_latency,
                },
                Series {
                    name: format!("{label} end-to-end"),
                    histogram: &result.totals.consume.measured_latency,
                },
            ]
        })
        .collect();
    write(path, &svg(title, &series))
}
