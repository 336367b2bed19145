//! Blocking storage work (opening or recovering a store, removing its files) runs on a
//! thread of its own, so the shard's other connections never wait for the disk. The shard
//! task awaits the result through a doorbell: the same io_uring wake-up as a ring's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tachyon_core::doorbell;

/// Runs `work` off the executor and returns its result, or `None` if it panicked there. If no
/// thread or doorbell can be had (out of descriptors or memory), it runs here instead: slower
/// for the shard, never lost.
pub async fn off_executor<T, F>(work: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Ok((bell, receiver)) = doorbell::doorbell() else {
        return Some(work());
    };
    let done = Arc::new(AtomicBool::new(false));
    let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
    let work = Arc::new(Mutex::new(Some(work)));
    let spawned = {
        let (done, slot, work) = (done.clone(), slot.clone(), work.clone());
        std::thread::Builder::new()
            .name("js-storage".into())
            .spawn(move || {
                let job = work.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(job) = job {
                    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    if let Ok(out) = out {
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
                    }
                }
                done.store(true, Ordering::Release);
                bell.ring();
            })
    };
    if spawned.is_err() {
        let job = work.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(job) = job {
            return Some(job());
        }
    }
    let mut waiter = receiver.attach();
    waiter.wait_until(|| done.load(Ordering::Acquire)).await;
    // Empty when the thread took the job and died with it (a panic in storage code): running
    // it again could repeat half-done file work.
    let out = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    out
}
