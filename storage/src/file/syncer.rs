//! Group commit that overlaps the disk: a thread per store runs the fdatasyncs while the
//! store's owner goes on encoding and writing the next appends.
//!
//! The owner writes a batch, then hands the syncer "make everything up to sequence N durable"
//! and the files to sync. A request that arrives while a sync is running waits and is merged
//! with any later one, so one fdatasync covers every batch written before it started (the
//! classic group commit, with the next group forming during the current sync). An fdatasync
//! covers all writes completed before it began, so the sequence is published as durable only
//! for what had been written when the sync started. After a failed fdatasync the written
//! pages may be gone without a trace (the kernel may mark them clean), so the store fails
//! from then on rather than retrying.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::io::IoFile;

/// Called on the syncer thread with the new durable sequence (e.g. to ring a doorbell).
pub type DurableNotify = Box<dyn Fn(u64) + Send + Sync>;

struct Job {
    seq: u64,
    files: Vec<Arc<dyn IoFile>>,
}

#[derive(Default)]
struct State {
    job: Option<Job>,
    busy: bool,
    stop: bool,
    error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    durable: AtomicU64,
    failed: AtomicBool,
    notify: Mutex<Option<DurableNotify>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the syncer for good: waiters get `reason`, the store fails its next call.
    fn fail(&self, st: &mut State, reason: String) {
        st.error = Some(reason);
        self.failed.store(true, Ordering::Release);
        st.job = None;
        st.stop = true;
    }
}

pub(super) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    pub fn start(durable: u64) -> io::Result<Syncer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            durable: AtomicU64::new(durable),
            failed: AtomicBool::new(false),
            notify: Mutex::new(None),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("store-sync".into())
            .spawn(move || run(&s))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    pub fn set_notify(&self, f: DurableNotify) {
        *self.shared.notify.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Asks for everything up to `seq`, written to `files`, to be made durable.
    pub fn request(&self, seq: u64, files: Vec<Arc<dyn IoFile>>) {
        let mut st = self.shared.lock();
        match &mut st.job {
            // Merged with the pending request: one fdatasync per file covers both, in the
            // newer request's order (its segment before its tombstones).
            Some(j) => {
                j.seq = j.seq.max(seq);
                for f in files {
                    j.files.retain(|g| !Arc::ptr_eq(g, &f));
                    j.files.push(f);
                }
            }
            slot => *slot = Some(Job { seq, files }),
        }
        drop(st);
        self.shared.wake.notify_one();
    }

    pub fn durable(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Records durability reached without the syncer (the owner synced itself).
    pub fn advance(&self, seq: u64) {
        self.shared.durable.fetch_max(seq, Ordering::AcqRel);
    }

    pub fn failed(&self) -> Option<String> {
        if !self.shared.failed.load(Ordering::Acquire) {
            return None;
        }
        self.shared.lock().error.clone()
    }

    /// Blocks until `seq` is durable, or fails with the syncer's error.
    pub fn wait(&self, seq: u64) -> Result<(), String> {
        let mut st = self.shared.lock();
        loop {
            if let Some(e) = &st.error {
                return Err(e.clone());
            }
            if self.durable() >= seq {
                return Ok(());
            }
            if st.job.as_ref().is_none_or(|j| j.seq < seq) && !st.busy {
                return Err(format!("sequence {seq} was never handed to the syncer"));
            }
            st = self.shared.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn run(s: &Shared) {
    loop {
        let mut st = s.lock();
        let job = loop {
            if let Some(j) = st.job.take() {
                break j;
            }
            if st.stop {
                return;
            }
            st = s.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        };
        st.busy = true;
        drop(st);
        let r = job.files.iter().try_for_each(|f| f.sync_data());
        let mut st = s.lock();
        st.busy = false;
        match r {
            Ok(()) => {
                s.durable.fetch_max(job.seq, Ordering::AcqRel);
            }
            Err(e) => {
                tracing::error!(error = %e, "fdatasync failed; the store stops accepting writes");
                // Nothing after a failed sync can be trusted to become durable.
                s.fail(&mut st, e.to_string());
            }
        }
        drop(st);
        s.done.notify_all();
        let notified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Some(f) = s.notify.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                f(s.durable.load(Ordering::Acquire));
            }
        }));
        if notified.is_err() {
            // The owner's callback broke; waiting on this thread must not hang for it.
            let mut st = s.lock();
            s.fail(&mut st, "the durability callback panicked".into());
            drop(st);
            s.done.notify_all();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
