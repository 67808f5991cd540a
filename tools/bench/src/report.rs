//! What the tool tells: the progress line printed every second, the summary
//! table after each run, the B/A comparison of two brokers, and the JSON
//! document with all of it.
//!
//! Rates are per second of measurement; MB are 10^6 bytes; latencies are
//! microseconds in JSON and milliseconds in text.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::run::RunResult;
use crate::stats::Totals;
use crate::verify::Verdict;
use crate::workload::{ConsumerMode, KeyDistribution, Workload};

/// The percentiles of the summary, as quantiles and as labels.
pub const PERCENTILES: [(f64, &str); 6] = [
    (0.50, "p50"),
    (0.75, "p75"),
    (0.95, "p95"),
    (0.99, "p99"),
    (0.999, "p99.9"),
    (0.9999, "p99.99"),
];

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// One line of progress: the last second's rates and latencies.
pub fn progress_line(second: u64, phase: &str, last: &Totals, backlog: u64) -> String {
    let (publish, consume) = (&last.publish, &last.consume);
    format!(
        "{second:>4}s {phase:<7} | pub {:>9} msg/s {:>8.1} MB/s | cons {:>9} msg/s | backlog {:>9} | pub p50 {:>8.3} p99 {:>8.3} ms | e2e p50 {:>8.3} p99 {:>8.3} ms | errors {}",
        publish.records,
        publish.bytes as f64 / 1e6,
        consume.records,
        backlog,
        ms(publish.latency.value_at_quantile(0.5)),
        ms(publish.latency.value_at_quantile(0.99)),
        ms(consume.latency.value_at_quantile(0.5)),
        ms(consume.latency.value_at_quantile(0.99)),
        publish.errors + consume.errors,
    )
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p75: u64,
    pub p95: u64,
    pub p99: u64,
    #[serde(rename = "p99.9")]
    pub p99_9: u64,
    #[serde(rename = "p99.99")]
    pub p99_99: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        let at = |q| histogram.value_at_quantile(q);
        Latency {
            p50: at(0.50),
            p75: at(0.75),
            p95: at(0.95),
            p99: at(0.99),
            p99_9: at(0.999),
            p99_99: at(0.9999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }

    fn values(&self) -> [u64; 7] {
        [
            self.p50,
            self.p75,
            self.p95,
            self.p99,
            self.p99_9,
            self.p99_99,
            self.max,
        ]
    }
}

/// One side (publish or end-to-end) of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    /// Records acknowledged (publish) or consumed (end-to-end) during the
    /// measurement, and their bytes (values and keys).
    pub records: u64,
    pub bytes: u64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// Records due during the measurement, whose latencies these are.
    pub latency_records: u64,
    pub latency_us: Latency,
}

/// The transaction commits of a run: how many began in the measurement and
/// how long each took, from the call to its return.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Commits {
    pub count: u64,
    pub latency_us: Latency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// Failed sends and failed deliveries.
    pub produce: u64,
    /// Errors the consumers' polls returned.
    pub consume: u64,
}

/// One run, as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub label: String,
    pub bootstrap: String,
    pub topics: Vec<String>,
    pub measured_secs: u64,
    pub publish: Side,
    pub end_to_end: Side,
    /// Records a fixed-rate schedule had due but the producers never sent.
    pub behind_schedule: u64,
    /// Transaction commits in the measurement, when the workload has them.
    pub commits: Option<Commits>,
    /// Records of earlier runs found in a reused topic (skipped).
    pub foreign_records: u64,
    pub errors: Errors,
    pub verification: Verdict,
    /// Verification passed and nothing failed.
    pub passed: bool,
}

impl RunReport {
    pub fn new(label: &str, result: &RunResult, workload: &Workload) -> RunReport {
        let secs = workload.duration_secs;
        let side = |meter: &crate::stats::Meter| Side {
            records: meter.window_records,
            bytes: meter.window_bytes,
            records_per_sec: meter.window_records as f64 / secs as f64,
            mb_per_sec: meter.window_bytes as f64 / 1e6 / secs as f64,
            latency_records: meter.measured_latency.len(),
            latency_us: Latency::of(&meter.measured_latency),
        };
        let errors = Errors {
            produce: result.totals.publish.errors,
            consume: result.totals.consume.errors,
        };
        RunReport {
            label: label.to_owned(),
            bootstrap: result.bootstrap.clone(),
            topics: result.topics.clone(),
            measured_secs: secs,
            publish: side(&result.totals.publish),
            end_to_end: side(&result.totals.consume),
            behind_schedule: result.behind_schedule,
            commits: workload.transactional().then(|| Commits {
                count: result.commit_latency.len(),
                latency_us: Latency::of(&result.commit_latency),
            }),
            foreign_records: result.foreign_records,
            passed: result.verdict.passed && errors.produce == 0 && errors.consume == 0,
            errors,
            verification: result.verdict.clone(),
        }
    }

    /// Why the run failed; empty if it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = self.verification.failures();
        if self.errors.produce > 0 {
            failures.push(format!("{} produce errors", self.errors.produce));
        }
        if self.errors.consume > 0 {
            failures.push(format!("{} consume errors", self.errors.consume));
        }
        failures
    }
}

/// The workload in one line.
pub fn describe(w: &Workload) -> String {
    let mode = match w.consumer_mode {
        ConsumerMode::Assign => "assign",
        ConsumerMode::Group => "group",
    };
    let keys = match (w.key_distribution, w.key_space) {
        (KeyDistribution::None, _) => "no keys".to_owned(),
        (KeyDistribution::RoundRobin, _) => "round-robin keys".to_owned(),
        (KeyDistribution::Random, 0) => "random keys".to_owned(),
        (KeyDistribution::Random, space) => format!("random keys of {space}"),
    };
    let keys = if w.topic_configs.is_empty() {
        keys
    } else {
        let configs: Vec<String> = w
            .topic_configs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        format!("{keys}, topics with {}", configs.join(" "))
    };
    let rate = match w.producer_rate {
        0 => "max rate".to_owned(),
        rate => format!("{rate} msg/s"),
    };
    format!(
        "{} topic(s) x {} partitions x {} replica(s), {} producer(s) and {} consumer(s) ({mode}) per topic, \
         {} B records, {keys}, {rate}, acks={}, compression {}, linger.ms {}, batch.size {}, \
         warm-up {} s, measured {} s",
        w.topics,
        w.partitions_per_topic,
        w.replication_factor,
        w.producers_per_topic,
        w.consumers_per_topic,
        w.message_size,
        w.acks.as_config(),
        w.compression.as_config(),
        w.linger_ms,
        w.batch_size,
        w.warmup_secs,
        w.duration_secs,
    ) + &match w.transaction_records {
        0 => String::new(),
        n => format!(", transactions of {n} records per producer, read_committed"),
    }
}

/// The summary table of one run.
pub fn summary(report: &RunReport, workload: &Workload) -> String {
    let mut out = format!(
        "== {} summary: {} ({}) ==\nworkload: {}\n",
        report.label,
        report.bootstrap,
        report.topics.join(", "),
        describe(workload)
    );
    out += &format!("{:<12} {:>11} {:>9}", "", "msg/s", "MB/s");
    for (_, label) in PERCENTILES {
        out += &format!(" {label:>9}");
    }
    out += &format!(" {:>9}  (latency in ms)\n", "max");
    for (name, side) in [
        ("publish", &report.publish),
        ("end-to-end", &report.end_to_end),
    ] {
        out += &format!(
            "{name:<12} {:>11.1} {:>9.2}",
            side.records_per_sec, side.mb_per_sec
        );
        for value in side.latency_us.values() {
            out += &format!(" {:>9.3}", ms(value));
        }
        out += "\n";
    }
    if let Some(commits) = &report.commits {
        out += &format!("{:<12} {:>11} {:>9}", "commit", commits.count, "");
        for value in commits.latency_us.values() {
            out += &format!(" {:>9.3}", ms(value));
        }
        out += "  (transactions committed; commit latency)\n";
    }
    out += &format!(
        "records in the measurement: {} published, {} consumed; errors: {} produce, {} consume; \
         behind schedule: {}; records of other runs skipped: {}\n",
        report.publish.records,
        report.end_to_end.records,
        report.errors.produce,
        report.errors.consume,
        report.behind_schedule,
        report.foreign_records
    );
    let v = &report.verification;
    out += &if !v.checked {
        "verification: not done (no consumers)\n".to_owned()
    } else if v.passed {
        format!(
            "verification: passed ({} acknowledged records consumed exactly once, in order per partition)\n",
            v.expected
        )
    } else {
        format!(
            "verification: FAILED: {} (of {} acknowledged, {} distinct consumed)\n",
            v.failures().join(", "),
            v.expected,
            v.consumed
        )
    };
    out
}

/// One compared figure: the mean over A's rounds, over B's, and B/A.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ratio {
    pub metric: String,
    pub a: f64,
    pub b: f64,
    pub b_over_a: f64,
}

/// Broker B against broker A.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub rounds: usize,
    pub rows: Vec<Ratio>,
}

impl Comparison {
    /// Compares the means of the `a` runs and the `b` runs (at least one each).
    pub fn new(a: &[&RunReport], b: &[&RunReport]) -> Comparison {
        fn figures(r: &RunReport) -> Vec<(String, f64)> {
            let mut figures = vec![
                ("publish msg/s".to_owned(), r.publish.records_per_sec),
                ("publish MB/s".to_owned(), r.publish.mb_per_sec),
                ("consume msg/s".to_owned(), r.end_to_end.records_per_sec),
            ];
            for (side, latency) in [
                ("publish", &r.publish.latency_us),
                ("end-to-end", &r.end_to_end.latency_us),
            ] {
                let labels = PERCENTILES.iter().map(|(_, l)| *l).chain(["max"]);
                for (label, value) in labels.zip(latency.values()) {
                    figures.push((format!("{side} {label} ms"), ms(value)));
                }
            }
            figures
        }
        fn means(runs: &[&RunReport]) -> Vec<(String, f64)> {
            let mut sums = figures(runs[0]);
            for run in &runs[1..] {
                for (sum, (_, value)) in sums.iter_mut().zip(figures(run)) {
                    sum.1 += value;
                }
            }
            for sum in &mut sums {
                sum.1 /= runs.len() as f64;
            }
            sums
        }
        let rows = means(a)
            .into_iter()
            .zip(means(b))
            .map(|((metric, a), (_, b))| Ratio {
                metric,
                a,
                b,
                b_over_a: if a == 0.0 { f64::NAN } else { b / a },
            })
            .collect();
        Comparison {
            a: a[0].bootstrap.clone(),
            b: b[0].bootstrap.clone(),
            rounds: a.len().min(b.len()),
            rows,
        }
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "== B/A over {} round(s): A = {}, B = {} (means) ==\n{:<22} {:>12} {:>12} {:>8}\n",
            self.rounds, self.a, self.b, "", "A", "B", "B/A"
        );
        for row in &self.rows {
            out += &format!(
                "{:<22} {:>12.3} {:>12.3} {:>8.3}\n",
                row.metric, row.a, row.b, row.b_over_a
            );
        }
        out
    }
}

/// Everything `--json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Document<'a> {
    pub tool: &'static str,
    pub workload: &'a Workload,
    pub runs: &'a [RunReport],
    pub comparison: Option<&'a Comparison>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Meter, Totals, Window};
    use crate::verify::Verdict;

    fn result() -> RunResult {
        let window = Window {
            start_us: 1_000_000,
            end_us: 3_000_000,
        };
        let mut totals = Totals::default();
        for n in 1..=1000 {
            let due = window.start_us + n * 10;
            totals.publish.record(1000, due, due + n * 10, window);
            totals.consume.record(1000, due, due + n * 20, window);
        }
        totals.publish.record(1000, 0, 5, window); // warm-up: not in the summary
        RunResult {
            bootstrap: "127.0.0.1:9092".into(),
            topics: vec!["t".into()],
            totals,
            behind_schedule: 0,
            commit_latency: crate::stats::new_histogram(),
            foreign_records: 0,
            verdict: Verdict {
                checked: true,
                passed: true,
                expected: 1001,
                consumed: 1001,
                ..Verdict::default()
            },
        }
    }

    fn workload() -> Workload {
        Workload {
            duration_secs: 2,
            ..Workload::default()
        }
    }

    #[test]
    fn a_report_has_measured_rates_and_percentiles() {
        let report = RunReport::new("run", &result(), &workload());
        assert_eq!(report.publish.records, 1000);
        assert_eq!(report.publish.records_per_sec, 500.0);
        assert_eq!(report.publish.mb_per_sec, 0.5);
        let latency = &report.publish.latency_us;
        // 5,000, 9,900 and 10,000 µs, as the histogram's 3 significant digits
        // report them (the highest value of their bucket).
        assert_eq!((latency.p50, latency.p99, latency.max), (5003, 9903, 10007));
        assert_eq!(report.end_to_end.latency_us.p50, 10_007);
        assert!(report.passed);
        assert!(report.failures().is_empty());
    }

    #[test]
    fn errors_fail_a_run_even_if_verification_passed() {
        let mut result = result();
        result.totals.consume.errors = 2;
        let report = RunReport::new("run", &result, &workload());
        assert!(!report.passed);
        assert_eq!(report.failures(), ["2 consume errors"]);
    }

    #[test]
    fn the_summary_shows_throughput_latency_and_the_verdict() {
        let report = RunReport::new("run", &result(), &workload());
        let text = summary(&report, &workload());
        assert!(text.contains("p99.99"), "{text}");
        assert!(
            text.contains("publish            500.0      0.50     5.003"),
            "{text}"
        );
        assert!(
            text.contains("verification: passed (1001 acknowledged"),
            "{text}"
        );
        assert!(
            text.contains("1 topic(s) x 8 partitions x 1 replica(s)"),
            "{text}"
        );
        assert!(text.contains("no keys, max rate, acks=all"), "{text}");

        let mut failed = result();
        failed.verdict.passed = false;
        failed.verdict.lost = 3;
        let text = summary(&RunReport::new("run", &failed, &workload()), &workload());
        assert!(
            text.contains("verification: FAILED: 3 records lost"),
            "{text}"
        );
    }

    #[test]
    fn the_json_document_names_every_figure() {
        let report = RunReport::new("run", &result(), &workload());
        let p99_9 = report.publish.latency_us.p99_9;
        let runs = [report];
        let document = Document {
            tool: "sluice-bench",
            workload: &workload(),
            runs: &runs,
            comparison: None,
        };
        let json: serde_json::Value = serde_json::to_value(&document).unwrap();
        assert_eq!(json["workload"]["partitions_per_topic"], 8);
        assert_eq!(json["workload"]["acks"], "all");
        let run = &json["runs"][0];
        assert_eq!(run["publish"]["records"], 1000);
        assert_eq!(run["publish"]["latency_us"]["p99.9"], p99_9);
        assert_eq!(run["end_to_end"]["latency_us"]["p50"], 10_007);
        assert_eq!(run["verification"]["passed"], true);
        assert_eq!(run["errors"]["produce"], 0);
        assert_eq!(run["passed"], true);
        assert!(json["comparison"].is_null());
    }

    #[test]
    fn comparisons_divide_b_by_a_over_the_rounds_means() {
        let a1 = RunReport::new("A1", &result(), &workload());
        let mut a2 = a1.clone();
        a2.publish.records_per_sec = 1500.0; // mean of A: 1000
        let mut b1 = a1.clone();
        b1.bootstrap = "other:9092".into();
        b1.publish.records_per_sec = 2000.0;
        let comparison = Comparison::new(&[&a1, &a2], &[&b1]);
        assert_eq!(comparison.b, "other:9092");
        let row = &comparison.rows[0];
        assert_eq!(row.metric, "publish msg/s");
        assert_eq!((row.a, row.b, row.b_over_a), (1000.0, 2000.0, 2.0));
        let p50 = comparison
            .rows
            .iter()
            .find(|r| r.metric == "publish p50 ms")
            .unwrap();
        assert_eq!(p50.b_over_a, 1.0);
        assert!(comparison.table().contains("publish msg/s"));
    }

    #[test]
    fn progress_lines_show_the_last_second() {
        let mut last = Totals::default();
        let window = Window {
            start_us: 0,
            end_us: 1,
        };
        last.publish = Meter::default();
        last.publish.record(2_000_000, 0, 1500, window);
        let line = progress_line(3, "measure", &last, 42);
        assert!(line.starts_with("   3s measure"), "{line}");
        assert!(line.contains("pub         1 msg/s      2.0 MB/s"), "{line}");
        assert!(line.contains("backlog        42"), "{line}");
        assert!(line.contains("pub p50    1.500"), "{line}");
    }
}
