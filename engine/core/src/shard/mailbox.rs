//! The one way work from outside reaches a shard: a typed [`Job`] posted to its [`Mailbox`]
//! (any thread: signals, the HTTP monitor, later JetStream's API) and run on the shard's own
//! executor, which answers on a channel when the poster waits for a result. The queue is
//! locked once per job, never per message; the doorbell is the one the rings use, so a parked
//! shard wakes through io_uring like for any socket.
//!
//! Messages, interest changes and barriers between shards do not come this way: they must keep
//! their order relative to each other, and travel on the lock-free shard-pair rings.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Shard;
use crate::doorbell::{self, BellReceiver, Doorbell};
use crate::monitor::snapshot::{self, ShardSnapshot, Want};
use crate::signal::LocalSignal;

/// Orders from the process to every shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop accepting, flush and close every connection, then end the shard.
    Shutdown,
    /// Lame duck mode: stop accepting, tell clients, close them over the grace period.
    LameDuck,
}

pub enum Job {
    Control(Control),
    /// A new configuration is in place: re-check this shard's clients against it
    /// (`reload.rs`), then send `generation` back.
    Reload {
        generation: u64,
        ack: Sender<u64>,
    },
    /// Monitoring: copy out the counters (and connections, subscriptions) `want` asks for.
    Snapshot {
        want: Want,
        reply: Sender<ShardSnapshot>,
    },
}

type Queue = Arc<Mutex<VecDeque<Job>>>;

fn lock(q: &Queue) -> MutexGuard<'_, VecDeque<Job>> {
    // Jobs are whole values; a panic elsewhere cannot leave one half-pushed.
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// The posting end for one shard; shared by every thread that posts (`Sync`).
pub struct Mailbox {
    queue: Queue,
    bell: Doorbell,
}

/// The shard's end; moved to its executor and served there by [`Inbox::serve`].
pub struct Inbox {
    queue: Queue,
    bell: BellReceiver,
}

pub fn mailbox() -> std::io::Result<(Mailbox, Inbox)> {
    let (bell, rx) = doorbell::doorbell()?;
    let queue: Queue = Arc::new(Mutex::new(VecDeque::new()));
    Ok((
        Mailbox {
            queue: queue.clone(),
            bell,
        },
        Inbox { queue, bell: rx },
    ))
}

impl Mailbox {
    pub fn post(&self, job: Job) {
        lock(&self.queue).push_back(job);
        self.bell.ring();
    }
}

/// Where a shard's run loop learns the control order (set once, by [`Inbox::serve`]).
#[derive(Default)]
pub struct Orders {
    order: std::cell::Cell<Option<Control>>,
    signal: LocalSignal,
}

impl Orders {
    /// The first order posted; waits for it.
    pub async fn next(&self) -> Control {
        loop {
            if let Some(o) = self.order.get() {
                return o;
            }
            self.signal.wait().await;
        }
    }
}

impl Inbox {
    /// Runs jobs for as long as the shard runs.
    pub async fn serve(self, shard: Rc<Shard>, orders: Rc<Orders>) {
        let mut waiter = self.bell.attach();
        loop {
            waiter.wait_until(|| !lock(&self.queue).is_empty()).await;
            let jobs: VecDeque<Job> = std::mem::take(&mut *lock(&self.queue));
            for job in jobs {
                match job {
                    Job::Control(c) => {
                        // The first order wins: a shutdown during lame duck is already under way.
                        if orders.order.get().is_none() {
                            orders.order.set(Some(c));
                            orders.signal.raise();
                        }
                    }
                    Job::Reload { generation, ack } => {
                        let cfg = shard.global.config();
                        crate::reload::recheck_clients(&shard, &cfg);
                        // The poster may have stopped waiting; nothing to do then.
                        let _ = ack.send(generation);
                    }
                    Job::Snapshot { want, reply } => {
                        let _ = reply.send(snapshot::take(&shard, want));
                    }
                }
            }
        }
    }
}

/// Posts `job(i)` to every shard's mailbox and collects one answer per shard from `rx`, up to
/// `timeout` in all: a shard that does not answer in time (shutting down, or buried in work)
/// is left out rather than blocking the asker.
pub fn ask_all<T>(
    boxes: &[Mailbox],
    timeout: Duration,
    mut job: impl FnMut(Sender<T>) -> Job,
    mut accept: impl FnMut(&T) -> bool,
) -> Vec<T> {
    let (tx, rx) = mpsc::channel();
    for b in boxes {
        b.post(job(tx.clone()));
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(boxes.len());
    while out.len() < boxes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if accept(&v) => out.push(v),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

/// Monitoring's snapshots from every shard.
pub fn gather(boxes: &[Mailbox], want: Want, timeout: Duration) -> Vec<ShardSnapshot> {
    ask_all(
        boxes,
        timeout,
        |reply| Job::Snapshot { want, reply },
        |_| true,
    )
}
