//! Back-pressure: envelopes wait in an outlet's overflow queue when a ring is full (the
//! publishing connection is not read again until they moved), and the stall gate pauses the
//! publishers that feed a client whose writer fell behind, on whichever shard they are.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shard;
use crate::client::{ClientState, StallGate};
use crate::envelope::Envelope;

impl Shard {
    /// Queues one envelope per other shard; the caller rings the doorbells (`after_sends`).
    pub(super) fn send_to_all(&self, mut make: impl FnMut() -> Envelope) {
        for (_, o) in self.outlets() {
            o.send(make());
        }
    }

    pub(super) fn broadcast(&self, make: impl FnMut() -> Envelope) {
        self.send_to_all(make);
        self.after_sends();
    }

    /// Rings the doorbells of every outlet pushed to, and starts the overflow flusher if needed.
    /// Returns whether some envelope is waiting for ring space.
    pub fn after_sends(&self) -> bool {
        let mut overflow = false;
        for (_, o) in self.outlets() {
            o.ring_doorbell();
            overflow |= o.has_overflow();
        }
        if overflow {
            self.overflow_pending.raise();
        }
        overflow
    }

    /// Pushes overflow into rings that have room; true when nothing is left waiting.
    pub fn flush_overflow(&self) -> bool {
        let mut all = true;
        for (_, o) in self.outlets() {
            all &= o.flush_overflow();
            o.ring_doorbell();
        }
        all
    }

    /// Back-pressure for the overflow task: returns once every ring took what waited for it.
    /// Only this task polls the rings; the publishing connections waiting for their envelopes
    /// sleep until it moved them. Each polling on its own, 250 publishers waiting for a full
    /// ring to another shard took a third of their shard's CPU in timers.
    pub async fn wait_outlets_drained(&self) {
        loop {
            let drained = self.flush_overflow();
            self.wake_flush_waiters();
            if drained {
                return;
            }
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
    }

    /// Whether some ring is full, with envelopes waiting in its overflow: a publishing reader
    /// stops at its next message rather than at the end of its read. Ring consumers never
    /// pause, so what overflowed is owed to the other shard's clients whatever their state:
    /// 500 publishers each queueing the rest of a read there pushed a subscriber that was
    /// already holding its feeders past `max_pending` (cut in 1 run of 10 with 64 MiB held).
    #[inline]
    pub fn rings_backed_up(&self) -> bool {
        self.outlets().any(|(_, o)| o.has_overflow())
    }

    /// Back-pressure for a publishing connection: returns once every envelope queued so far
    /// (its own included) moved into the rings. Waiting for empty queues instead let the reader
    /// released first refill them, so another reader on the shard could wait indefinitely.
    pub async fn wait_own_overflow_flushed(&self) {
        let marks: Vec<(u16, u64)> = self
            .outlets()
            .filter(|(_, o)| o.has_overflow())
            .map(|(i, o)| (i, o.overflow_mark()))
            .collect();
        if marks.is_empty() {
            return;
        }
        self.overflow_pending.raise();
        OverflowFlushed {
            shard: self,
            marks,
            registered: false,
        }
        .await
    }

    fn marks_flushed(&self, marks: &[(u16, u64)]) -> bool {
        marks.iter().all(|(i, m)| {
            self.outlets
                .get(*i as usize)
                .and_then(Option::as_ref)
                .is_none_or(|o| o.flushed_past(*m))
        })
    }

    fn wake_flush_waiters(&self) {
        let woken: Vec<FlushWaiter> = self
            .flush_waiters
            .borrow_mut()
            .extract_if(.., |(marks, _)| self.marks_flushed(marks))
            .collect();
        for (_, waker) in woken {
            waker.wake();
        }
    }

    /// Whether the op just handled fed a client of this shard past its stall mark, or another
    /// shard said `client` fed one of its own: the reader should pause.
    #[inline]
    pub fn must_pause(&self, client: &ClientState) -> bool {
        !self.stalled.borrow().is_empty() || !client.remote_stalls.borrow().is_empty()
    }

    /// Forgets the stalled clients the last op fed: for feeders that never pause (internal
    /// clients), so the next reader does not wait for clients it did not feed.
    pub fn forget_stalled(&self) {
        self.stalled.borrow_mut().clear();
    }

    /// A client of this shard, past its stall mark, got a message that `origin` published on
    /// shard `src`: that shard is told, at most once a millisecond per publisher and client, and
    /// its reader pauses. The ring consumer that delivered goes on at once.
    pub(super) fn note_remote_stall(&self, src: u16, origin: u64, gate: &Arc<StallGate>) {
        if origin == 0 {
            return;
        }
        let Some(Some(outlet)) = self.outlets.get(src as usize) else {
            return;
        };
        // Called per message while the client is behind: the batch's clock, not a clock read.
        let now = self.recent.get();
        let key = (src, origin, gate.cid);
        let mut sent = self.stall_notices.borrow_mut();
        if !due(&mut sent, key, now, NOTICE_EVERY, STALL_NOTICES_KEPT) {
            return;
        }
        outlet.send(Envelope::Stall {
            cid: origin,
            gate: gate.clone(),
        });
    }

    /// Another shard's notice: connection `cid` of this shard fed a client there that is
    /// behind. Its reader pauses on the gate at its next message.
    pub(super) fn on_stall_notice(&self, cid: u64, gate: Arc<StallGate>) {
        let Some(client) = self.clients.borrow().get(&cid).cloned() else {
            return;
        };
        if client.is_closed() || !gate.holds_up_remote() {
            return;
        }
        super::holds::wait_on(&client, &gate, Instant::now());
    }

    /// Pauses a publishing connection's reader while the clients it fed past their stall mark
    /// (here or on other shards) catch up, as nats-server stalls a fast producer: each pause
    /// lasts until they caught up or [`STALL_WAIT`], and a read's pauses add up to at most
    /// `budget` ([`STALL_BUDGET`] per read), so a stuck client slows its feeders without
    /// stopping them (it is cut off when it passes `max_pending` or its write deadline). Ring
    /// consumers never pause: they carry every publisher of another shard.
    ///
    /// Feeders of the same client resume in the order they paused: when it catches up, the
    /// longest-waiting feeder goes first and the others wait for their turn. Without the order,
    /// whichever paused feeder happened to poll first ran on while the rest got one message per
    /// timeout: a 1 KiB fan-in of 8 publishers (2 M messages) had a p99 of 0.55 s against
    /// nats-server's 0.14 s; with it, 0.14-0.15 s.
    pub async fn wait_stalled(&self, client: &ClientState, budget: &mut Duration) {
        let ttl = STALL_WAIT.min(*budget);
        let gates: Vec<Arc<StallGate>> = self.stalled.borrow_mut().drain(..).collect();
        let mut remote_gates: Vec<Arc<StallGate>> = Vec::new();
        {
            // A remote client stays a reason to pause while it is behind and its shard keeps
            // saying this publisher feeds it; a publisher that stopped feeding it hears
            // nothing more and is let go after STICKY. Paused once per notice instead, 32
            // publishers over 8 shards filled a fan-in subscriber's backlog past 64 MiB.
            let now = Instant::now();
            let mut remote = client.remote_stalls.borrow_mut();
            remote.retain(|(g, at)| g.holds_up_remote() && now.duration_since(*at) < STICKY);
            for (g, _) in remote.iter() {
                if !gates.iter().any(|h| h.cid == g.cid) {
                    remote_gates.push(g.clone());
                }
            }
        }
        let deep = || gates.iter().chain(&remote_gates).any(|g| g.holds_deep());
        // With this read's budget spent, what it still delivers goes on unpaused (and a
        // client it keeps feeding passes max_pending), as in nats-server; unless a client
        // it feeds is deep and draining (see `DEEP_SHARE`).
        if (gates.is_empty() && remote_gates.is_empty()) || (ttl.is_zero() && !deep()) {
            return;
        }
        let ids: Vec<u64> = gates.iter().chain(&remote_gates).map(|g| g.cid).collect();
        let place = self.stall_queue.join(ids);
        let started = Instant::now();
        let deadline = started + ttl;
        let releases = crate::client::releases();
        loop {
            let generation = releases.generation();
            let deep_now = deep();
            // For a deep client, a pause ends when the line of its feeders stopped moving for
            // DEEP_WAIT, not DEEP_WAIT after it began: hundreds of feeders take turns for
            // longer than that, and released at once they pushed it past max_pending.
            let limit = if deep_now {
                self.stall_queue.moved_since(started) + DEEP_WAIT
            } else {
                deadline
            };
            let now = Instant::now();
            if now >= limit {
                break;
            }
            // The shard looks at its connections when it reads, and with every publisher
            // paused it reads nothing: the head of the line looks for them (a move ends the
            // pauses of the connections it picks).
            self.tick(now);
            if place.behind_another() {
                // Its clients are watched by the feeder ahead, which wakes this one when it
                // leaves.
                place.wait_turn(limit - now).await;
                continue;
            }
            let behind = deep_now
                || gates.iter().any(|g| g.is_behind())
                || remote_gates.iter().any(|g| g.holds_up_remote());
            if !behind {
                break;
            }
            // A local client tells when it drains (`client::releases`); one on another
            // shard is only seen by looking.
            let nap = if remote_gates.is_empty() {
                LOCAL_RECHECK
            } else {
                REMOTE_POLL
            };
            futures_lite::future::or(
                releases.changed_since(generation),
                glommio::timer::sleep(nap.min(limit - now)),
            )
            .await;
        }
        *budget = budget.saturating_sub(started.elapsed());
    }

    /// Whether a reader whose pauses are spent must still pause: a client it fed is deep in
    /// pending and draining (see `DEEP_SHARE`).
    pub fn must_pause_deep(&self, client: &ClientState) -> bool {
        self.stalled.borrow().iter().any(|g| g.holds_deep())
            || client
                .remote_stalls
                .borrow()
                .iter()
                .any(|(g, _)| g.holds_deep())
    }
}

/// Whether a notice keyed `key` is due at `now`: none went out in the last `every` (it is
/// then recorded as sent). Past `kept` remembered keys, those older than `every` are dropped.
pub(super) fn due<K: std::hash::Hash + Eq>(
    sent: &mut rustc_hash::FxHashMap<K, Instant>,
    key: K,
    now: Instant,
    every: Duration,
    kept: usize,
) -> bool {
    if sent.len() >= kept {
        sent.retain(|_, at| now.duration_since(*at) < every);
    }
    if sent
        .get(&key)
        .is_some_and(|at| now.duration_since(*at) < every)
    {
        return false;
    }
    sent.insert(key, now);
    true
}

/// One pause of a publisher for a stalled client: nats-server's `stallClientMaxDuration` (it
/// pauses 2 ms, 5 ms once the client is at `max_pending`). Measured on the 1 KiB fan-in with one
/// shard (8 publishers, 4 rounds, same run): 2 ms gave +8 % msgs/s but a p99 of 73 ms against
/// 41-42 ms for 5 ms and for the previous design; the tail is what a fan-in user sees.
pub const STALL_WAIT: Duration = Duration::from_millis(5);
/// How long feeders of a client past its deep mark wait without their line moving: nats-server
/// 2.9's `stallClientMaxDuration`. Feeders resume one at a time as it drains.
pub const DEEP_WAIT: Duration = Duration::from_secs(1);
const _: () = assert!(STALL_WAIT.as_nanos() < DEEP_WAIT.as_nanos());
/// How often a paused feeder looks at a client of another shard, whose gate changes raise
/// nothing here.
const REMOTE_POLL: Duration = Duration::from_micros(100);
/// How often a paused feeder of local clients looks again with no release raised: for what
/// only time changes (a writer that stopped taking bytes, see `DEEP_STUCK_AFTER`).
const LOCAL_RECHECK: Duration = Duration::from_millis(1);
const _: () = assert!(REMOTE_POLL.as_nanos() < LOCAL_RECHECK.as_nanos());
const _: () = assert!(LOCAL_RECHECK.as_nanos() < STALL_WAIT.as_nanos());
/// What a publisher may spend paused per read: nats-server's `stallTotalAllowed`.
pub const STALL_BUDGET: Duration = Duration::from_millis(10);
const _: () = assert!(STALL_WAIT.as_nanos() <= STALL_BUDGET.as_nanos());
/// A publisher and a stalled client it feeds get one notice per this interval: a notice buys
/// one pause of up to `STALL_WAIT`, so the publisher is paused about as often as a local one.
const NOTICE_EVERY: Duration = Duration::from_millis(1);
/// How long a notice keeps a publisher pausing for a remote client without a fresh one: many
/// times NOTICE_EVERY, so a publisher that still feeds the client is always covered.
const STICKY: Duration = Duration::from_millis(50);
/// Past this many remembered notices the old ones are forgotten.
const STALL_NOTICES_KEPT: usize = 1024;

/// What a publishing connection waits for (outlet, overflow mark), and its task.
pub(super) type FlushWaiter = (Vec<(u16, u64)>, std::task::Waker);

/// A publishing connection waiting for the overflow task to move its envelopes into the rings.
struct OverflowFlushed<'a> {
    shard: &'a Shard,
    marks: Vec<(u16, u64)>,
    /// Its task is on the overflow task's list (woken there once the marks are flushed).
    registered: bool,
}

impl std::future::Future for OverflowFlushed<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.shard.marks_flushed(&self.marks) {
            return std::task::Poll::Ready(());
        }
        if !self.registered {
            self.registered = true;
            let entry = (self.marks.clone(), cx.waker().clone());
            self.shard.flush_waiters.borrow_mut().push(entry);
        }
        std::task::Poll::Pending
    }
}
