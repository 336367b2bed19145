//! Wake-ups for tasks on one executor (no atomics: never crosses threads): a single-waiter flag,
//! and a broadcast any number of tasks wait on.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct LocalSignal {
    raised: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl LocalSignal {
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Resolves once `raise` was called since the last wait returned.
    pub fn wait(&self) -> WaitRaised<'_> {
        WaitRaised { signal: self }
    }
}

pub struct WaitRaised<'a> {
    signal: &'a LocalSignal,
}

impl Future for WaitRaised<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.raised.replace(false) {
            Poll::Ready(())
        } else {
            self.signal.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    }
}

/// A wake-up for any number of tasks on one executor: a wait resolves at the first `raise`
/// after the generation it was given, so a raise between reading the generation and waiting is
/// not lost. Each task is listed once however often it polls.
#[derive(Default)]
pub struct Broadcast {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Broadcast {
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub fn raise(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        // Woken outside the borrow; the list goes back with its capacity (a raise comes each
        // time a client drains).
        let mut wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers.drain(..) {
            w.wake();
        }
        let mut list = self.wakers.borrow_mut();
        if list.is_empty() {
            *list = wakers;
        }
    }

    /// Resolves once `raise` was called after `generation` was read.
    pub fn changed_since(&self, generation: u64) -> ChangedSince<'_> {
        ChangedSince {
            signal: self,
            generation,
        }
    }
}

pub struct ChangedSince<'a> {
    signal: &'a Broadcast,
    generation: u64,
}

impl Future for ChangedSince<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.signal.wakers.borrow_mut();
        match wakers.iter_mut().find(|w| w.will_wake(cx.waker())) {
            Some(w) => w.clone_from(cx.waker()),
            None => wakers.push(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn raise_before_wait_is_not_lost() {
        let ex = glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor");
        ex.run(async {
            let s = LocalSignal::default();
            s.raise();
            s.wait().await;
            assert!(!s.raised.get());
        });
    }

    #[test]
    fn wait_wakes_on_raise_from_another_task() {
        let ex = glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor");
        ex.run(async {
            let s = Rc::new(LocalSignal::default());
            let s2 = s.clone();
            let t = glommio::spawn_local(async move {
                s2.wait().await;
                7
            });
            glommio::yield_if_needed().await;
            s.raise();
            assert_eq!(t.await, 7);
        });
    }

    #[test]
    fn broadcast_wakes_every_waiter_and_keeps_a_raise_before_the_wait() {
        let ex = glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor");
        ex.run(async {
            let b = Rc::new(Broadcast::default());
            let g = b.generation();
            let waiters: Vec<_> = (0..3)
                .map(|i| {
                    let b = b.clone();
                    glommio::spawn_local(async move {
                        b.changed_since(g).await;
                        i
                    })
                })
                .collect();
            glommio::yield_if_needed().await;
            glommio::executor().yield_task_queue_now().await;
            assert_eq!(b.wakers.borrow().len(), 3, "each waiter listed once");
            b.raise();
            let mut done = Vec::new();
            for w in waiters {
                done.push(w.await);
            }
            assert_eq!(done, vec![0, 1, 2]);
            assert!(b.wakers.borrow().is_empty());
            // Raised after the generation was read, before the wait: resolves at once.
            let g = b.generation();
            b.raise();
            b.changed_since(g).await;
        });
    }
}
