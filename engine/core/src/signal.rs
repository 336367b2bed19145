//! A single-waiter wake-up flag for tasks on one executor (no atomics: never crosses threads).

use std::cell::Cell;
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
}
