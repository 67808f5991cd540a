//! Tasks waiting for "something changed": each waiter is woken once at the next
//! `wake_all` and then re-checks its own condition. Single-threaded, no lost
//! wake-ups as long as a waiter checks its condition and calls `wait` without an
//! `.await` in between.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct WakeList {
    wakers: RefCell<Vec<Waker>>,
}

impl WakeList {
    /// Resolves after the next `wake_all`.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            list: self,
            registered: false,
        }
    }

    pub fn wake_all(&self) {
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }
}

pub struct Wait<'a> {
    list: &'a WakeList,
    registered: bool,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.registered {
            return Poll::Ready(());
        }
        self.registered = true;
        self.list.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
