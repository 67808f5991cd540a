//! One run against one broker: create the topics, start the consumers and wait
//! until they hold every partition, run the producers through warm-up and
//! measurement with a progress line per second, drain, verify, and delete the
//! topics if asked.

use hdrhistogram::Histogram;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crate::admin::{Admin, setup_timeout};
use crate::client::Connection;
use crate::consumer::{self, ConsumerOutcome, ConsumerPlan, Coordination, Partitions};
use crate::error::BenchError;
use crate::producer::{self, ProducerOutcome, ProducerPlan};
use crate::report::progress_line;
use crate::schedule::{Clock, Pace};
use crate::stats::{SharedMeter, Totals, Window};
use crate::verify::{Observed, Verdict};
use crate::workload::{ConsumerMode, Workload};

/// How often the run looks at its meters; a progress line is printed every
/// tenth look.
const LOOK_EVERY: Duration = Duration::from_millis(100);
const LOOKS_PER_LINE: u32 = 10;

/// How a run is done, beyond its workload.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub connection: Connection,
    /// The topic name (suffixed `-N` when there are several); a new unique
    /// name per run when absent.
    pub topic: Option<String>,
    pub delete_topics: bool,
    /// How long consumers may take, once producers are done, to catch up.
    pub drain_timeout: Duration,
}

/// What a run measured and found.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub bootstrap: String,
    pub topics: Vec<String>,
    /// Everything recorded, warm-up and drain included; the measured part is
    /// in the meters' `window_*` fields and `measured_latency`.
    pub totals: Totals,
    pub behind_schedule: u64,
    /// Transaction commits that began in the measurement, all producers.
    pub commit_latency: Histogram<u64>,
    pub foreign_records: u64,
    pub verdict: Verdict,
}

/// Runs `workload` once.
pub fn run(workload: &Workload, options: &RunOptions) -> Result<RunResult, BenchError> {
    let run_id: u64 = rand::random();
    let topics = topic_names(options.topic.as_deref(), workload.topics, run_id);
    let partitions = u64::from(workload.topics) * u64::from(workload.partitions_per_topic);
    let admin = Admin::new(&options.connection, setup_timeout(partitions))?;
    admin.create_topics(
        &topics,
        workload.partitions_per_topic,
        workload.replication_factor,
        &workload.topic_configs,
    )?;
    let result = run_on(workload, options, &topics, run_id);
    if options.delete_topics {
        admin.delete_topics(&topics)?;
    }
    result
}

/// The run's topic names: `given`, or a new unique one; `-0`, `-1`, ..
/// appended when there are several.
fn topic_names(given: Option<&str>, topics: u32, run_id: u64) -> Vec<String> {
    let base = given.map_or_else(|| format!("sluice-bench-{run_id:016x}"), str::to_owned);
    if topics == 1 {
        vec![base]
    } else {
        (0..topics).map(|t| format!("{base}-{t}")).collect()
    }
}

fn consumer_plans(workload: &Workload, topics: &[String], run_id: u64) -> Vec<ConsumerPlan> {
    let mut plans = Vec::new();
    for (t, topic) in topics.iter().enumerate() {
        for c in 0..workload.consumers_per_topic {
            let partitions = match workload.consumer_mode {
                ConsumerMode::Assign => Partitions::Assigned(workload.partitions_of_consumer(c)),
                ConsumerMode::Group => Partitions::Group(format!("{topic}-group")),
            };
            plans.push(ConsumerPlan {
                index: plans.len(),
                topic_index: t as u32,
                topic: topic.clone(),
                partitions,
                run_id,
                read_committed: workload.transactional(),
            });
        }
    }
    plans
}

/// The measurement window of a run whose producers start at `start_us`.
fn window(workload: &Workload, start_us: u64) -> Window {
    let start_us = start_us + workload.warmup_secs * 1_000_000;
    Window {
        start_us,
        end_us: start_us + workload.duration_secs * 1_000_000,
    }
}

fn producer_plans(
    workload: &Workload,
    topics: &[String],
    run_id: u64,
    start_us: u64,
) -> Vec<ProducerPlan> {
    let window = window(workload, start_us);
    let mut plans = Vec::new();
    for (t, topic) in topics.iter().enumerate() {
        for _ in 0..workload.producers_per_topic {
            let id = plans.len() as u32;
            plans.push(ProducerPlan {
                id,
                topic_index: t as u32,
                topic: topic.clone(),
                run_id,
                pace: Pace::new(start_us, workload.rate_of_producer(u64::from(id))),
                window,
            });
        }
    }
    plans
}

/// Joins a client thread, turning a panic into an error.
fn join<T>(
    handle: thread::ScopedJoinHandle<'_, Result<T, BenchError>>,
    what: &'static str,
) -> Result<T, BenchError> {
    handle.join().map_err(|_| BenchError::Panicked(what))?
}

fn run_on(
    workload: &Workload,
    options: &RunOptions,
    topics: &[String],
    run_id: u64,
) -> Result<RunResult, BenchError> {
    let clock = Clock::start();
    let consumers = consumer_plans(workload, topics, run_id);
    let coordination = Coordination::new(consumers.len());
    let consumer_meters: Vec<SharedMeter> =
        consumers.iter().map(|_| SharedMeter::default()).collect();
    let connection = &options.connection;

    thread::scope(|scope| {
        let consumer_threads: Vec<_> = consumers
            .iter()
            .zip(&consumer_meters)
            .map(|(plan, meter)| {
                let meter = meter.clone();
                let coordination = &coordination;
                scope.spawn(move || consumer::run(plan, connection, clock, meter, coordination))
            })
            .collect();
        // Stops and joins the consumers, returning the first error if any.
        let stop_consumers = |threads: Vec<thread::ScopedJoinHandle<'_, _>>| {
            coordination.stop.store(true, Ordering::SeqCst);
            threads
                .into_iter()
                .map(|t| join(t, "consumer"))
                .collect::<Result<Vec<ConsumerOutcome>, BenchError>>()
        };

        let partitions = u64::from(workload.topics) * u64::from(workload.partitions_per_topic);
        // A consumer group's first rebalance takes a few seconds, and fetching
        // the committed offsets of thousands of partitions some more.
        let ready_timeout = setup_timeout(partitions);
        let ready_deadline = Instant::now() + ready_timeout;
        if !consumers.is_empty() {
            println!("waiting for the consumers to hold all {partitions} partitions");
        }
        while !consumers.is_empty() && !coordination.ready(partitions) {
            if consumer_threads.iter().any(|t| t.is_finished()) {
                stop_consumers(consumer_threads)?;
                return Err(BenchError::Setup(
                    "a consumer stopped before the run".into(),
                ));
            }
            if Instant::now() >= ready_deadline {
                stop_consumers(consumer_threads)?;
                return Err(BenchError::Setup(format!(
                    "the consumers did not hold all {partitions} partitions within {ready_timeout:?} \
                     (group mode needs consumer groups on the broker; --consumer-mode assign does not)"
                )));
            }
            thread::sleep(LOOK_EVERY);
        }

        let start_us = clock.now_us();
        let producers = producer_plans(workload, topics, run_id, start_us);
        coordination.set_window(window(workload, start_us));
        let producer_meters: Vec<SharedMeter> =
            producers.iter().map(|_| SharedMeter::default()).collect();
        let producer_threads: Vec<_> = producers
            .iter()
            .zip(&producer_meters)
            .map(|(plan, meter)| {
                let (plan, meter) = (plan.clone(), meter.clone());
                scope.spawn(move || producer::run(&plan, connection, workload, clock, meter))
            })
            .collect();

        let mut totals = Totals::default();
        let mut line = Totals::default();
        let mut looks = 0u32;
        let mut drain_deadline = None;
        let mut drain_timed_out = false;
        loop {
            // Looks at fixed times, so lines stay one second apart.
            let next_look_us = start_us + (u64::from(looks) + 1) * LOOK_EVERY.as_micros() as u64;
            thread::sleep(Duration::from_micros(
                next_look_us.saturating_sub(clock.now_us()),
            ));
            // Before the take, so the take holds every acknowledgement of
            // producers that are done.
            let producers_done = producer_threads.iter().all(|t| t.is_finished());
            let look = Totals::take(&producer_meters, &consumer_meters);
            totals.add(&look);
            line.add(&look);
            looks += 1;
            let now_us = clock.now_us();
            if looks.is_multiple_of(LOOKS_PER_LINE) {
                // The line covers the second that just ended.
                let second = (now_us - start_us) / 1_000_000;
                let phase = if second <= workload.warmup_secs {
                    "warm-up"
                } else if second <= workload.warmup_secs + workload.duration_secs {
                    "measure"
                } else {
                    "drain"
                };
                let backlog = totals
                    .publish
                    .records
                    .saturating_sub(totals.consume.records);
                println!("{}", progress_line(second, phase, &line, backlog));
                line = Totals::default();
            }
            if consumer_threads.iter().any(|t| t.is_finished()) {
                break; // a consumer failed: its error comes out of the join
            }
            if producers_done {
                let deadline =
                    *drain_deadline.get_or_insert(Instant::now() + options.drain_timeout);
                if totals.consume.records >= totals.publish.records {
                    break;
                }
                if Instant::now() >= deadline {
                    drain_timed_out = true;
                    break;
                }
            }
        }

        let outcomes = producer_threads
            .into_iter()
            .map(|t| join(t, "producer"))
            .collect::<Result<Vec<ProducerOutcome>, BenchError>>();
        let consumed = stop_consumers(consumer_threads)?;
        let outcomes = outcomes?;
        totals.add(&Totals::take(&producer_meters, &consumer_meters));

        let behind_schedule = outcomes.iter().map(|o| o.behind_schedule).sum();
        let mut commit_latency = crate::stats::new_histogram();
        for outcome in &outcomes {
            commit_latency
                .add(&outcome.commit_latency)
                .expect("histograms of the same bounds");
        }
        let produced: Vec<_> = outcomes.into_iter().map(|o| o.produced).collect();
        let foreign_records = consumed.iter().map(|c| c.foreign).sum();
        let verdict = if consumers.is_empty() {
            Verdict::unchecked()
        } else {
            let observed = Observed::merge(consumed.into_iter().map(|c| c.observed));
            Verdict {
                drain_timed_out,
                ..Verdict::new(&observed, &produced)
            }
        };
        Ok(RunResult {
            bootstrap: connection.bootstrap.clone(),
            topics: topics.to_vec(),
            totals,
            behind_schedule,
            commit_latency,
            foreign_records,
            verdict,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_unique_per_run_unless_given() {
        assert_eq!(
            topic_names(None, 1, 0xab),
            ["sluice-bench-00000000000000ab"]
        );
        assert_eq!(topic_names(Some("t"), 1, 1), ["t"]);
        assert_eq!(topic_names(Some("t"), 2, 1), ["t-0", "t-1"]);
    }

    #[test]
    fn plans_cover_every_topic_and_split_the_rate() {
        let workload = Workload {
            topics: 2,
            producers_per_topic: 2,
            consumers_per_topic: 2,
            consumer_mode: ConsumerMode::Assign,
            partitions_per_topic: 3,
            producer_rate: 400,
            warmup_secs: 1,
            duration_secs: 2,
            ..Workload::default()
        };
        let topics = topic_names(None, 2, 7);
        let producers = producer_plans(&workload, &topics, 7, 10);
        assert_eq!(producers.len(), 4);
        assert_eq!(producers[3].topic, topics[1]);
        assert_eq!(producers[3].id, 3);
        assert_eq!(
            producers[0].pace,
            Pace::Fixed {
                start_us: 10,
                rate: 100
            }
        );
        let window = Window {
            start_us: 1_000_010,
            end_us: 3_000_010,
        };
        assert_eq!(producers[0].window, window);
        let consumers = consumer_plans(&workload, &topics, 7);
        assert_eq!(consumers.len(), 4);
        assert_eq!(consumers[2].topic_index, 1);
        assert_eq!(consumers[2].index, 2);
        assert!(matches!(&consumers[3].partitions, Partitions::Assigned(p) if p == &[1]));
    }
}
