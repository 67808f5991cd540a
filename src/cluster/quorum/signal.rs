//! Single-threaded signals between the quorum's tasks: a latch set once (stop,
//! fatal error) with its waiters, and a counter that only grows (the applied
//! index).

use std::cell::{Cell, RefCell};
use std::task::{Poll, Waker};

/// A value set once; every waiter sees it. Later sets are ignored (the first fatal
/// error is the one reported).
pub struct Latch<T: Clone> {
    value: RefCell<Option<T>>,
    wakers: RefCell<Vec<Waker>>,
}

impl<T: Clone> Latch<T> {
    pub fn new() -> Self {
        Latch {
            value: RefCell::new(None),
            wakers: RefCell::new(Vec::new()),
        }
    }

    pub fn set(&self, value: T) {
        if self.value.borrow().is_some() {
            return;
        }
        *self.value.borrow_mut() = Some(value);
        for w in self.wakers.take() {
            w.wake();
        }
    }

    pub fn get(&self) -> Option<T> {
        self.value.borrow().clone()
    }

    pub async fn wait(&self) -> T {
        futures_lite::future::poll_fn(|cx| match self.get() {
            Some(v) => Poll::Ready(v),
            None => {
                register(&self.wakers, cx.waker());
                Poll::Pending
            }
        })
        .await
    }
}

/// A number that only grows (the applied index).
pub struct Watermark {
    value: Cell<u64>,
}

impl Watermark {
    pub fn new(value: u64) -> Self {
        Watermark {
            value: Cell::new(value),
        }
    }

    pub fn get(&self) -> u64 {
        self.value.get()
    }

    pub fn advance(&self, value: u64) {
        self.value.set(self.value.get().max(value));
    }
}

/// Adds a waker unless the same task is already registered, so a future polled many
/// times does not grow the list: its length is bounded by the number of waiting tasks.
fn register(wakers: &RefCell<Vec<Waker>>, waker: &Waker) {
    let mut wakers = wakers.borrow_mut();
    if !wakers.iter().any(|w| w.will_wake(waker)) {
        wakers.push(waker.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, poll_once};

    #[test]
    fn latch_keeps_the_first_value() {
        let l = Latch::new();
        assert_eq!(block_on(poll_once(l.wait())), None);
        l.set("a");
        l.set("b");
        assert_eq!(block_on(l.wait()), "a");
    }

    #[test]
    fn watermark_only_grows() {
        let w = Watermark::new(3);
        w.advance(4);
        w.advance(2);
        assert_eq!(w.get(), 4);
    }
}
