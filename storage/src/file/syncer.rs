//! Group commit that overlaps the disk: a shared pool of threads runs the stores' fdatasyncs
//! while each store's owner goes on encoding and writing the next appends. A store has at most
//! one sync running at a time (its group commit); different stores sync in parallel on the
//! pool's threads, so a process with thousands of streams runs a handful of sync threads, not
//! one each.
//!
//! The owner writes a batch, then hands the syncer "make everything up to sequence N durable"
//! and the files to sync. A request that arrives while a sync is running waits and is merged
//! with any later one, so one fdatasync covers every batch written before it started (the
//! classic group commit, with the next group forming during the current sync). An fdatasync
//! covers all writes completed before it began, so the sequence is published as durable only
//! for what had been written when the sync started. After a failed fdatasync the written
//! pages may be gone without a trace (the kernel may mark them clean), so the store fails
//! from then on rather than retrying.
//!
//! Segment roll-over in pipelined mode is the syncer's too, so the owner (an event loop) never
//! waits for the disk: the owner creates the next segment and hands over the sealed one (its
//! file, final length and open index). Before publishing the request's sequence the syncer cuts
//! each sealed segment to its length and syncs it, syncs the request's files, then syncs the
//! folder (the new segment's entry: recovery must find the segment holding a durable sequence).
//! After publishing it encodes and writes each sealed segment's index (temporary file, sync,
//! rename, folder sync); until then recovery rebuilds a missing index from the segment.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use super::open_index::OpenIndex;
use crate::io::{Io, IoFile};

/// Called on the syncer thread with the new durable sequence (e.g. to ring a doorbell).
pub type DurableNotify = Box<dyn Fn(u64) + Send + Sync>;

/// A segment the owner sealed and stopped writing to; the syncer makes it durable and writes
/// its index.
pub(super) struct Seal {
    pub first: u64,
    pub file: Arc<dyn IoFile>,
    /// Its records' length (direct I/O may have padded the file past it).
    pub len: u64,
    pub index: OpenIndex,
}

struct Job {
    seq: u64,
    /// Cut to length and synced before `files`; their indexes written after publishing.
    seals: Vec<Seal>,
    files: Vec<Arc<dyn IoFile>>,
    /// The folder gained an entry (a new segment) that must be durable before `seq` is.
    sync_dir: bool,
}

#[derive(Default)]
struct State {
    job: Option<Job>,
    busy: bool,
    /// In the pool's queue: a worker will take its job.
    queued: bool,
    error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    done: Condvar,
    durable: AtomicU64,
    /// How many [`Seal`]s are finished (synced and their index written), in request order.
    seals_done: AtomicU64,
    failed: AtomicBool,
    notify: Mutex<Option<DurableNotify>>,
    io: Arc<dyn Io>,
    dir: PathBuf,
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
    }
}

/// The sync threads every store shares, and the stores with a job waiting for one.
struct Pool {
    queue: Mutex<VecDeque<Arc<Shared>>>,
    wake: Condvar,
}

/// Sync threads: enough to keep several disks (or one fast one) busy, few enough that many
/// streams cost no thread each.
fn pool_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

static POOL: OnceLock<Result<Arc<Pool>, String>> = OnceLock::new();

fn pool() -> io::Result<&'static Arc<Pool>> {
    let p = POOL.get_or_init(|| {
        let pool = Arc::new(Pool {
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
        });
        for _ in 0..pool_threads() {
            let p = pool.clone();
            std::thread::Builder::new()
                .name("store-sync".into())
                .spawn(move || worker(&p))
                .map_err(|e| format!("starting a store-sync thread: {e}"))?;
        }
        Ok(pool)
    });
    p.as_ref().map_err(|e| io::Error::other(e.clone()))
}

impl Pool {
    fn push(&self, s: Arc<Shared>) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(s);
        self.wake.notify_one();
    }
}

/// Queues the store for a worker unless one has it already (queued or busy).
fn schedule(st: &mut State) -> bool {
    if st.job.is_none() || st.busy || st.queued {
        return false;
    }
    st.queued = true;
    true
}

pub(super) struct Syncer {
    shared: Arc<Shared>,
    pool: &'static Arc<Pool>,
}

impl Syncer {
    pub fn start(durable: u64, io: Arc<dyn Io>, dir: PathBuf) -> io::Result<Syncer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            done: Condvar::new(),
            durable: AtomicU64::new(durable),
            seals_done: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            notify: Mutex::new(None),
            io,
            dir,
        });
        Ok(Syncer {
            shared,
            pool: pool()?,
        })
    }

    pub fn set_notify(&self, f: DurableNotify) {
        *self.shared.notify.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Asks for everything up to `seq`, written to `files` and to the sealed segments `seals`
    /// (each counted as one more seal, in order), to be made durable; with `sync_dir` the
    /// folder is synced too before `seq` is published.
    pub fn request(&self, seq: u64, seals: Vec<Seal>, files: Vec<Arc<dyn IoFile>>, sync_dir: bool) {
        let mut st = self.shared.lock();
        match &mut st.job {
            // Merged with the pending request: one fdatasync per file covers both, in the
            // newer request's order (its segment before its tombstones).
            Some(j) => {
                j.seq = j.seq.max(seq);
                j.seals.extend(seals);
                j.sync_dir |= sync_dir;
                for f in files {
                    j.files.retain(|g| !Arc::ptr_eq(g, &f));
                    j.files.push(f);
                }
            }
            slot => {
                *slot = Some(Job {
                    seq,
                    seals,
                    files,
                    sync_dir,
                })
            }
        }
        let queue = schedule(&mut st);
        drop(st);
        if queue {
            self.pool.push(self.shared.clone());
        }
    }

    pub fn durable(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Records durability reached without the syncer (the owner synced itself).
    pub fn advance(&self, seq: u64) {
        self.shared.durable.fetch_max(seq, Ordering::AcqRel);
    }

    /// How many seals handed over are finished (synced, index written).
    pub fn seals_done(&self) -> u64 {
        self.shared.seals_done.load(Ordering::Acquire)
    }

    /// Blocks until `n` seals are finished, or fails with the syncer's error.
    pub fn wait_seals(&self, n: u64) -> Result<(), String> {
        let mut st = self.shared.lock();
        loop {
            if self.seals_done() >= n {
                return Ok(());
            }
            if let Some(e) = &st.error {
                return Err(e.clone());
            }
            if st.job.is_none() && !st.busy {
                return Err(format!("seal {n} was never handed to the syncer"));
            }
            st = self.shared.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
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

/// A pool thread: takes a queued store, runs its job (and any job that arrived meanwhile,
/// by queueing it again behind the others), forever.
fn worker(pool: &Pool) {
    loop {
        let s = {
            let mut q = pool.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(s) = q.pop_front() {
                    break s;
                }
                q = pool.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        run_one(&s);
        let mut st = s.lock();
        let again = schedule(&mut st);
        drop(st);
        if again {
            pool.push(s);
        }
    }
}

/// Runs the store's waiting job, if any. A store being dropped still gets the job it was
/// handed (the sequence was promised a sync).
fn run_one(s: &Shared) {
    let mut st = s.lock();
    st.queued = false;
    let Some(job) = st.job.take() else {
        drop(st);
        s.done.notify_all();
        return;
    };
    st.busy = true;
    drop(st);
    // Sealed segments first (cut to their records, then synced), then the request's files
    // in order, then the folder: only then is every sequence up to `job.seq` findable
    // after a power cut.
    let r = job
        .seals
        .iter()
        .try_for_each(|x| x.file.set_len(x.len).and_then(|()| x.file.sync_data()))
        .and_then(|()| job.files.iter().try_for_each(|f| f.sync_data()))
        .and_then(|()| {
            if job.sync_dir {
                s.io.sync_dir(&s.dir)
            } else {
                Ok(())
            }
        });
    let mut st = s.lock();
    let synced = match r {
        Ok(()) => {
            s.durable.fetch_max(job.seq, Ordering::AcqRel);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "fdatasync failed; the store stops accepting writes");
            // Nothing after a failed sync can be trusted to become durable.
            s.fail(&mut st, e.to_string());
            false
        }
    };
    if synced && !job.seals.is_empty() {
        // Published first: acknowledgements do not wait for the indexes. `busy` stays set,
        // so waiters for the seals keep waiting.
        drop(st);
        s.done.notify_all();
        notify(s);
        let r = write_indexes(s, job.seals);
        st = s.lock();
        if let Err(e) = r {
            tracing::error!(error = %e, "writing a sealed segment's index failed; the store stops accepting writes");
            s.fail(&mut st, e.to_string());
        }
        st.busy = false;
        drop(st);
        s.done.notify_all();
        return;
    }
    st.busy = false;
    drop(st);
    s.done.notify_all();
    notify(s);
}

/// Encodes and writes each sealed segment's index (whole or absent: temporary file, sync,
/// rename, folder sync), counting each finished seal.
fn write_indexes(s: &Shared, seals: Vec<Seal>) -> crate::error::Result<()> {
    for mut x in seals {
        let bytes = x.index.seal(x.first, x.len);
        super::write_atomic(s.io.as_ref(), &s.dir, &super::idx_name(x.first), &bytes)?;
        s.seals_done.fetch_add(1, Ordering::AcqRel);
    }
    Ok(())
}

/// Runs the owner's durability callback.
fn notify(s: &Shared) {
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

impl Drop for Syncer {
    /// Waits for the job handed over (and the one running) to finish: a dropped store's files
    /// are synced as promised before they are closed or removed.
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        while st.busy || st.queued || st.job.is_some() {
            if st.job.is_some() && !st.busy && !st.queued {
                // Nobody will take it (cannot happen: a job is always queued); run it here.
                drop(st);
                run_one(&self.shared);
                st = self.shared.lock();
                continue;
            }
            st = self.shared.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}
