//! Runs many jobs on the current executor with a bound on how many are in flight:
//! opening or closing thousands of partitions one after another waits for each
//! one's fsyncs in turn, and all at once would open every file at the same time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;

/// How many partitions open or close at once on one shard: enough to keep the
/// device's queue full, few enough to bound open files and buffers.
pub const PARTITION_JOBS: usize = 64;

/// Runs `job` on every item, at most `limit` at a time, and returns when all are done.
pub async fn for_each<T, F, Fut>(items: Vec<T>, limit: usize, job: F)
where
    T: 'static,
    F: Fn(T) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    assert!(limit > 0, "at least one job runs at a time");
    let workers = limit.min(items.len());
    let queue = Rc::new(RefCell::new(VecDeque::from(items)));
    let job = Rc::new(job);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let queue = Rc::clone(&queue);
            let job = Rc::clone(&job);
            glommio::spawn_local(async move {
                loop {
                    let next = queue.borrow_mut().pop_front();
                    match next {
                        Some(item) => job(item).await,
                        None => return,
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_job_runs_and_no_more_than_the_limit_at_once() {
        crate::storage::test_support::run(|| async {
            let running = Rc::new(Cell::new(0usize));
            let peak = Rc::new(Cell::new(0usize));
            let done = Rc::new(RefCell::new(Vec::new()));
            let (r, p, d) = (Rc::clone(&running), Rc::clone(&peak), Rc::clone(&done));
            for_each((0..50).collect(), 4, move |n: u32| {
                let (running, peak, done) = (Rc::clone(&r), Rc::clone(&p), Rc::clone(&d));
                async move {
                    running.set(running.get() + 1);
                    peak.set(peak.get().max(running.get()));
                    glommio::timer::sleep(Duration::from_micros(100)).await;
                    running.set(running.get() - 1);
                    done.borrow_mut().push(n);
                }
            })
            .await;
            let mut done = done.borrow().clone();
            done.sort();
            assert_eq!(done, (0..50).collect::<Vec<_>>());
            assert_eq!(peak.get(), 4);
        });
    }
}
