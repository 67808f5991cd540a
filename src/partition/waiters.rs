//! Fetches waiting for data on a partition. A long-polling fetch registers one
//! [`DataWaiter`] with each partition it reads; an append wakes only the waiters
//! of its own partition. Partitions hold the waiters weakly: a fetch that ended
//! leaves nothing behind but a dead entry, pruned on the next registration.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

/// Dead entries tolerated before a registration prunes the list.
const PRUNE_AT: usize = 64;

/// One waiting fetch: woken by the first append on any partition it registered with.
#[derive(Default)]
pub struct DataWaiter {
    woken: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl DataWaiter {
    pub fn new() -> Rc<DataWaiter> {
        Rc::new(DataWaiter::default())
    }

    fn wake(&self) {
        self.woken.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Resolves once an append woke this waiter (at once if one already did).
    pub fn woken(&self) -> Woken<'_> {
        Woken { waiter: self }
    }
}

pub struct Woken<'a> {
    waiter: &'a DataWaiter,
}

impl Future for Woken<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.waiter.woken.get() {
            return Poll::Ready(());
        }
        *self.waiter.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The waiters of one partition.
#[derive(Default)]
pub struct Waiters {
    list: RefCell<Vec<Weak<DataWaiter>>>,
}

impl Waiters {
    pub fn register(&self, waiter: &Rc<DataWaiter>) {
        let mut list = self.list.borrow_mut();
        if list.len() >= PRUNE_AT {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Rc::downgrade(waiter));
    }

    /// Wakes every live waiter; each re-registers if it waits again.
    pub fn wake_all(&self) {
        let list = std::mem::take(&mut *self.list.borrow_mut());
        for waiter in list.iter().filter_map(Weak::upgrade) {
            waiter.wake();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_wakes_only_its_partitions_waiters() {
        let (a, b) = (Waiters::default(), Waiters::default());
        let on_a = DataWaiter::new();
        let on_both = DataWaiter::new();
        a.register(&on_a);
        a.register(&on_both);
        b.register(&on_both);
        b.wake_all();
        assert!(!on_a.woken.get());
        assert!(on_both.woken.get());
        futures_lite::future::block_on(on_both.woken());
        a.wake_all();
        assert!(on_a.woken.get());
    }

    #[test]
    fn ended_fetches_are_pruned() {
        let waiters = Waiters::default();
        for _ in 0..PRUNE_AT * 3 {
            waiters.register(&DataWaiter::new());
        }
        assert!(waiters.len() <= PRUNE_AT + 1);
    }
}
