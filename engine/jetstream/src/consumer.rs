//! Consumers: each lives with its stream on the stream's owner shard, reads the stream's store
//! directly and delivers through the stream's internal client, so a delivery reaches a client
//! on any shard over the ordinary routing (shown with the stored message's subject).
//!
//! - Pull: `CONSUMER.MSG.NEXT.<stream>.<consumer>` requests wait in arrival order; each gets up
//!   to its batch (and max bytes) of messages, then nothing (batch complete), `404 No Messages`
//!   (no_wait at the end of the stream) or `408 Request Timeout` (expired), as nats-server.
//! - Push: messages go to `deliver_subject` while any shard has interest in it, with idle
//!   heartbeats and flow-control requests as nats-server sends them.
//! - Acks arrive on `$JS.ACK.<stream>.<consumer>.>`; unacknowledged messages are redelivered
//!   after `ack_wait` (or the backoff step), redeliveries before new messages, until
//!   `max_deliver`.
//!
//! Messages are handed out only once durable under the stream's sync policy (a consumer never
//! sees what a crash could take back). A consumer's state (delivered, ack floor, pending acks) is
//! saved when dirty, at most once a second, and at shutdown; what a crash can redeliver is
//! what was acknowledged after the last save (ARCHITECTURE.md).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;

use bytes::Bytes;
use tachyon_storage::consumer_state::{ConsumerState, PendingAck, SequencePair};

use crate::consumer_config::{AckKind, AckPolicy, ConsumerConfig, DeliverPolicy, NextRequest};
use crate::now_nanos;
use crate::stream::StreamTask;

/// A push consumer with flow control has at most this many bytes unconfirmed
/// (nats-server's `JsFlowControlMaxPending`); its window starts at a sixteenth of it and doubles
/// with each confirmed flow-control request.
const FLOW_CONTROL_MAX_PENDING: u64 = 32 << 20;
const FLOW_CONTROL_FIRST_WINDOW: u64 = FLOW_CONTROL_MAX_PENDING / 16;
const _: () =
    assert!(FLOW_CONTROL_FIRST_WINDOW > 0 && FLOW_CONTROL_FIRST_WINDOW <= FLOW_CONTROL_MAX_PENDING);

/// One pump hands out at most this many messages before it lets the shard's other tasks
/// (connections, other streams) run; it goes on in a continuation.
const PUMP_BUDGET: u32 = 512;

/// The next message a consumer hands out: its sequence, and whether it is a redelivery.
#[derive(Debug, Clone, Copy)]
struct Pick {
    seq: u64,
    redelivery: bool,
}

/// A pull request waiting for messages.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub reply: Bytes,
    /// Messages still wanted.
    pub n: u64,
    /// Bytes still allowed (0: no limit).
    pub b: u64,
    /// Deadline, ns since the epoch (0: none).
    pub expires: i64,
    pub no_wait: bool,
    /// Messages delivered to it so far.
    pub delivered: u64,
    /// Idle heartbeat interval, ns (0: none), and when the next is due.
    pub hb: i64,
    pub next_hb: i64,
}

/// One consumer of a stream.
pub(crate) struct Consumer {
    pub name: String,
    pub config: RefCell<ConsumerConfig>,
    pub created: i64,
    pub state: RefCell<ConsumerState>,
    pub waiting: RefCell<VecDeque<Waiting>>,
    /// Stream sequences due for redelivery, in order.
    rdq: RefCell<VecDeque<u64>>,
    /// The next stream sequence to look at for a first delivery.
    next_sseq: Cell<u64>,
    /// `last_per_subject`: the sequences to deliver before going on from `next_sseq`.
    lps: RefCell<VecDeque<u64>>,
    /// Messages not yet delivered (filters honoured); recounted when `pending_stale`.
    npending: Cell<u64>,
    pending_stale: Cell<bool>,
    /// The consumer's subscriptions on the stream's internal client (MSG.NEXT, acks).
    pub sids: RefCell<Vec<Bytes>>,
    pub dirty: Cell<bool>,
    pub deleted: Cell<bool>,
    /// Last pull request, ack, or push delivery with interest (ns): ephemerals expire after
    /// `inactive_threshold` without one.
    last_active: Cell<i64>,
    /// Push: last time a message or heartbeat went out (ns).
    last_sent: Cell<i64>,
    /// Push flow control, as nats-server keeps it: bytes sent and not yet confirmed, the
    /// window (stalled past it), the bytes the outstanding request confirms and its subject.
    fc_bytes: Cell<u64>,
    fc_window: Cell<u64>,
    fc_size: Cell<u64>,
    fc_pending: RefCell<Option<Bytes>>,
    fc_counter: Cell<u64>,
    /// Push: whether the deliver subject had interest when last looked at; flow control
    /// starts over when it comes back (a new subscriber answers nothing sent before).
    had_interest: Cell<bool>,
    /// `replay_policy: original`: still replaying (until the sequence that was last when it
    /// started), the last delivered message's timestamp and when it went out (ns), and when
    /// a held message is due (0: none).
    replay: Cell<bool>,
    replay_until: Cell<u64>,
    replay_last: Cell<(i64, i64)>,
    replay_due: Cell<i64>,
    /// Where its config and state are kept (file streams).
    pub dir: Option<PathBuf>,
    /// Reused for ack subjects.
    ack_buf: RefCell<Vec<u8>>,
    /// When it last delivered and last took an ack (ns; 0: never), info's `last_active`s.
    pub delivered_at: Cell<i64>,
    pub acked_at: Cell<i64>,
}

/// A status-only message to a pull request or push subscriber (`NATS/1.0 <code> <text>`).
fn status_block(code: u16, text: &str, extra: &[(&str, u64)]) -> Vec<u8> {
    let mut h = format!("NATS/1.0 {code} {text}\r\n");
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

impl Consumer {
    pub fn new(
        name: String,
        config: ConsumerConfig,
        created: i64,
        state: ConsumerState,
        dir: Option<PathBuf>,
    ) -> Consumer {
        Consumer {
            name,
            config: RefCell::new(config),
            created,
            state: RefCell::new(state),
            waiting: RefCell::new(VecDeque::new()),
            rdq: RefCell::new(VecDeque::new()),
            next_sseq: Cell::new(1),
            lps: RefCell::new(VecDeque::new()),
            npending: Cell::new(0),
            pending_stale: Cell::new(true),
            sids: RefCell::new(Vec::new()),
            dirty: Cell::new(false),
            deleted: Cell::new(false),
            last_active: Cell::new(now_nanos()),
            last_sent: Cell::new(now_nanos()),
            fc_bytes: Cell::new(0),
            fc_window: Cell::new(FLOW_CONTROL_FIRST_WINDOW),
            fc_size: Cell::new(0),
            fc_pending: RefCell::new(None),
            fc_counter: Cell::new(0),
            had_interest: Cell::new(false),
            replay: Cell::new(false),
            replay_until: Cell::new(0),
            replay_last: Cell::new((0, 0)),
            replay_due: Cell::new(0),
            dir,
            ack_buf: RefCell::new(Vec::with_capacity(96)),
            delivered_at: Cell::new(0),
            acked_at: Cell::new(0),
        }
    }

    /// Where a new consumer starts, from its deliver policy and the stream as it is now; a
    /// recovered one goes on after what it delivered.
    pub fn position(&self, t: &StreamTask, recovered: bool) {
        let cfg = self.config.borrow();
        let (first, last) = t.first_last();
        let delivered = self.state.borrow().delivered.stream_seq;
        // Replaying (original spacing) until it reaches what the stream holds now.
        self.replay
            .set(cfg.replay_policy == crate::consumer_config::ReplayPolicy::Original);
        self.replay_until.set(last);
        if recovered || delivered > 0 {
            self.next_sseq.set(delivered + 1);
            self.pending_stale.set(true);
            return;
        }
        let filters = cfg.filters();
        let start = match cfg.deliver_policy {
            DeliverPolicy::All => first.max(1),
            DeliverPolicy::New => last + 1,
            DeliverPolicy::ByStartSequence => cfg.opt_start_seq.max(1),
            DeliverPolicy::ByStartTime => cfg
                .opt_start_time
                .as_ref()
                .and_then(|t0| t.seq_at_time(t0.unix_nanos()))
                .unwrap_or(last + 1),
            DeliverPolicy::Last => {
                let l = if filters.is_empty() {
                    last
                } else {
                    filters
                        .iter()
                        .filter_map(|f| t.last_seq_of(f))
                        .max()
                        .unwrap_or(0)
                };
                if l == 0 {
                    last + 1
                } else {
                    l
                }
            }
            DeliverPolicy::LastPerSubject => {
                let mut seqs: Vec<u64> = if filters.is_empty() {
                    t.last_per_subject("")
                } else {
                    filters.iter().flat_map(|f| t.last_per_subject(f)).collect()
                };
                seqs.sort_unstable();
                seqs.dedup();
                *self.lps.borrow_mut() = seqs.into();
                last + 1
            }
        };
        // The sequence before the start counts as delivered (and acknowledged): nats-server
        // reports `delivered.stream_seq` and `ack_floor.stream_seq` as start - 1.
        let before = start.saturating_sub(1);
        {
            let mut st = self.state.borrow_mut();
            if self.lps.borrow().is_empty() {
                st.delivered.stream_seq = before;
                st.ack_floor.stream_seq = before;
            } else {
                let lps_first = self.lps.borrow().front().copied().unwrap_or(start);
                st.delivered.stream_seq = lps_first.saturating_sub(1);
                st.ack_floor.stream_seq = lps_first.saturating_sub(1);
            }
        }
        self.next_sseq.set(start);
        self.pending_stale.set(true);
    }

    /// How much longer it is paused (ns; 0: not paused).
    pub fn paused_for(&self, now: i64) -> i64 {
        self.config
            .borrow()
            .pause_until
            .map_or(0, |t| (t.unix_nanos() - now).max(0))
    }

    pub fn is_pull(&self) -> bool {
        self.config.borrow().is_pull()
    }

    fn matches(&self, subject: &str) -> bool {
        let cfg = self.config.borrow();
        let f = cfg.filters();
        f.is_empty()
            || f.iter()
                .any(|f| *f == ">" || crate::config::subject_is_subset_match(subject, f))
    }

    /// Messages not delivered yet.
    pub fn num_pending(&self, t: &StreamTask) -> u64 {
        // Limits or a purge took messages it had not reached: it goes on from the first.
        let (first, _) = t.first_last();
        if first > self.next_sseq.get() {
            self.next_sseq.set(first);
            self.pending_stale.set(true);
        }
        if self.pending_stale.get() {
            let from = self.next_sseq.get();
            let cfg = self.config.borrow();
            let filters = cfg.filters();
            let n = if filters.is_empty() {
                t.count_from(from, "")
            } else {
                filters.iter().map(|f| t.count_from(from, f)).sum()
            };
            self.npending.set(n + self.lps.borrow().len() as u64);
            self.pending_stale.set(false);
        }
        self.npending.get()
    }

    /// The stream stored a message (or removed some): pending counts follow.
    pub fn on_stored(&self, subject: &str, seq: u64) {
        if !self.pending_stale.get() && seq >= self.next_sseq.get() && self.matches(subject) {
            self.npending.set(self.npending.get() + 1);
        }
    }

    pub fn on_removed(&self) {
        self.pending_stale.set(true);
    }

    pub fn num_waiting(&self) -> u64 {
        self.waiting.borrow().len() as u64
    }

    fn ack_pending_full(&self) -> bool {
        let cfg = self.config.borrow();
        cfg.ack_policy != AckPolicy::None
            && cfg.max_ack_pending > 0
            && self.state.borrow().pending.len() as i64 >= cfg.max_ack_pending
    }

    /// The next message to hand out: a redelivery first, then a new one at or below
    /// `durable` (what the stream may show). `None` when there is none. Only sequences are
    /// looked up; the message is read once, when it is handed out.
    fn next_pick(&self, t: &StreamTask, durable: u64) -> Option<Pick> {
        loop {
            let Some(seq) = self.rdq.borrow_mut().pop_front() else {
                break;
            };
            if !self.state.borrow().pending.contains_key(&seq) {
                continue;
            }
            if t.contains(seq) {
                return Some(Pick {
                    seq,
                    redelivery: true,
                });
            }
            // Gone from the stream (limits, purge): nothing to redeliver.
            self.state.borrow_mut().pending.remove(&seq);
            self.update_ack_floor();
        }
        if self.ack_pending_full() {
            return None;
        }
        loop {
            let seq = self.lps.borrow_mut().pop_front();
            let Some(seq) = seq else { break };
            if seq > durable {
                self.lps.borrow_mut().push_front(seq);
                return None;
            }
            self.dec_pending();
            if t.contains(seq) {
                return Some(Pick {
                    seq,
                    redelivery: false,
                });
            }
        }
        let from = self.next_sseq.get();
        if from > durable {
            return None;
        }
        let seq = {
            let cfg = self.config.borrow();
            let filters = cfg.filters();
            if filters.len() <= 1 {
                t.next_seq(from, filters.first().map_or("", String::as_str))
            } else {
                filters.iter().filter_map(|f| t.next_seq(from, f)).min()
            }
        };
        let seq = seq.filter(|s| *s <= durable)?;
        self.next_sseq.set(seq + 1);
        self.dec_pending();
        Some(Pick {
            seq,
            redelivery: false,
        })
    }

    fn dec_pending(&self) {
        if !self.pending_stale.get() {
            self.npending.set(self.npending.get().saturating_sub(1));
        }
    }

    /// Records a delivery of `m`: returns (deliveries, consumer sequence).
    fn record_delivery(&self, seq: u64, redelivery: bool, now: i64) -> (u64, u64) {
        let ack_none = self.config.borrow().ack_policy == AckPolicy::None;
        let mut st = self.state.borrow_mut();
        let dseq = st.delivered.consumer_seq + 1;
        st.delivered.consumer_seq = dseq;
        if seq > st.delivered.stream_seq {
            st.delivered.stream_seq = seq;
        }
        let deliveries = if redelivery {
            let n = st.pending.get(&seq).map_or(1, |p| p.deliveries) + 1;
            st.redelivered.insert(seq, n - 1);
            n
        } else {
            1
        };
        if ack_none {
            st.ack_floor = st.delivered;
        } else {
            st.pending.insert(
                seq,
                PendingAck {
                    consumer_seq: dseq,
                    timestamp: now,
                    deliveries,
                },
            );
        }
        drop(st);
        self.dirty.set(true);
        self.delivered_at.set(now);
        (deliveries, dseq)
    }

    /// Delivers message `p` to `to` with its ack subject, recorded as delivered, built
    /// straight from the store's bytes into the stream's delivery arena. Returns the bytes it
    /// carried and the message's timestamp; `None` when the message is gone.
    fn hand_out(&self, t: &StreamTask, to: &Bytes, p: Pick, now: i64) -> Option<(usize, i64)> {
        let headers_only = self.config.borrow().headers_only;
        let mut sent = None;
        t.read_with(p.seq, &mut |m| {
            let (deliveries, dseq) = self.record_delivery(p.seq, p.redelivery, now);
            let pending = self.num_pending(t);
            let mut ack = self.ack_buf.borrow_mut();
            crate::consumer_config::write_ack_subject(
                &mut ack,
                &t.name_ref(),
                &self.name,
                deliveries,
                p.seq,
                dseq,
                m.timestamp,
                pending,
            );
            let size = t.deliver_ref(to, m, &ack, headers_only);
            sent = Some((size, m.timestamp));
        });
        sent
    }

    /// A message's timestamp and size (subject, headers and body), for the checks before it
    /// is handed out.
    fn peek(&self, t: &StreamTask, seq: u64) -> Option<(i64, u64)> {
        let mut out = None;
        t.read_with(seq, &mut |m| {
            let size = m.subject.len() + m.headers.len() + m.payload.len();
            out = Some((m.timestamp, size as u64));
        });
        out
    }

    /// Hands out what it can: to waiting pull requests, or to the deliver subject of a push
    /// consumer with interest. `durable` is the highest sequence the stream may show. Returns
    /// true when it stopped at its budget with more to hand out (the caller goes on later).
    pub fn pump(&self, t: &StreamTask, durable: u64) -> bool {
        // Paused: requests wait (and get their heartbeats), nothing is handed out.
        if self.deleted.get() || self.paused_for(now_nanos()) > 0 {
            return false;
        }
        if self.is_pull() {
            self.pump_pull(t, durable)
        } else {
            self.pump_push(t, durable)
        }
    }

    /// `replay_policy: original`: whether `m` must wait to keep the stream's original spacing
    /// (the gap between its timestamp and the last delivered one's, counted from that
    /// delivery, as nats-server waits). Arms the timer for it.
    fn replay_holds(&self, t: &StreamTask, ts: i64, redelivery: bool, now: i64) -> bool {
        if !self.replay.get() || redelivery {
            return false;
        }
        let (lts, sent) = self.replay_last.get();
        if lts == 0 {
            return false;
        }
        let gap = ts - lts;
        if gap <= 1_000_000 {
            return false;
        }
        let due = sent + gap;
        if now >= due {
            return false;
        }
        if self.replay_due.replace(due) != due {
            t.timer_wake.wake();
        }
        true
    }

    /// Bookkeeping after a delivery: replay spacing, and the end of replay once it caught up
    /// with what the stream held when the consumer started.
    fn delivered_one(&self, m_ts: i64, m_seq: u64, now: i64) {
        if self.replay.get() {
            self.replay_last.set((m_ts, now));
            self.replay_due.set(0);
            if m_seq >= self.replay_until.get() {
                self.replay.set(false);
            }
        }
    }

    /// Nothing to hand out: past what the stream held when it started, replay is over (as
    /// nats-server's check when it waits for messages).
    fn maybe_caught_up(&self) {
        if self.replay.get() && self.next_sseq.get() > self.replay_until.get() {
            self.replay.set(false);
        }
    }

    fn pump_pull(&self, t: &StreamTask, durable: u64) -> bool {
        let now = now_nanos();
        // An expired request gets its 408 even if the timer has not come round yet; it must
        // not take messages the client no longer waits for.
        if self
            .waiting
            .borrow()
            .iter()
            .any(|w| w.expires > 0 && now >= w.expires)
        {
            self.expire_requests(t, now);
        }
        let mut budget = PUMP_BUDGET;
        loop {
            let has_waiting = !self.waiting.borrow().is_empty();
            if !has_waiting {
                return false;
            }
            if budget == 0 {
                return true;
            }
            let Some(p) = self.next_pick(t, durable) else {
                self.maybe_caught_up();
                // Held back by max_ack_pending is not the end of the stream: requests wait.
                if self.rdq.borrow().is_empty() && self.num_pending(t) == 0 {
                    self.end_of_stream(t);
                }
                return false;
            };
            let b = self.waiting.borrow().front().map_or(0, |w| w.b);
            // Read ahead of the delivery only when a check needs the message.
            let (ts, size) = if self.replay.get() || b > 0 {
                match self.peek(t, p.seq) {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                (0, 0)
            };
            if self.replay_holds(t, ts, p.redelivery, now) {
                self.requeue_front(p);
                return false;
            }
            let mut w = match self.waiting.borrow_mut().pop_front() {
                Some(w) => w,
                None => return false,
            };
            // A requester that went away (nobody subscribes to its inbox) takes nothing: the
            // request is dropped and the message stays for the next one, as nats-server does.
            if !t.has_interest(&w.reply) {
                self.requeue_front(p);
                continue;
            }
            if w.b > 0 && size > w.b {
                // Too large for what the request allows: the request ends, the message stays
                // for the next one.
                self.requeue_front(p);
                let h = status_block(
                    409,
                    "Message Size Exceeds MaxBytes",
                    &[("Nats-Pending-Messages", w.n), ("Nats-Pending-Bytes", w.b)],
                );
                t.send_status(&w.reply, &h);
                continue;
            }
            let Some((_, ts)) = self.hand_out(t, &w.reply, p, now) else {
                self.waiting.borrow_mut().push_front(w);
                continue;
            };
            self.delivered_one(ts, p.seq, now);
            budget -= 1;
            w.delivered += 1;
            w.n = w.n.saturating_sub(1);
            if w.b > 0 {
                w.b = w.b.saturating_sub(size);
                if w.b == 0 {
                    w.n = 0;
                }
            }
            if w.n > 0 {
                self.waiting.borrow_mut().push_front(w);
            }
        }
    }

    /// Puts a message taken by [`Self::next_pick`] back (it could not be delivered).
    fn requeue_front(&self, p: Pick) {
        if p.redelivery {
            self.rdq.borrow_mut().push_front(p.seq);
        } else if self.lps.borrow().is_empty() && self.next_sseq.get() == p.seq + 1 {
            self.next_sseq.set(p.seq);
            if !self.pending_stale.get() {
                self.npending.set(self.npending.get() + 1);
            }
        } else {
            self.lps.borrow_mut().push_front(p.seq);
            if !self.pending_stale.get() {
                self.npending.set(self.npending.get() + 1);
            }
        }
    }

    /// No message to hand out: no_wait requests end (`404 No Messages` when they got nothing
    /// and had no expiry, or got something), as nats-server's end-of-stream sweep.
    fn end_of_stream(&self, t: &StreamTask) {
        let mut done = Vec::new();
        self.waiting.borrow_mut().retain(|w| {
            if w.no_wait && (w.expires == 0 || w.delivered > 0) {
                done.push(w.reply.clone());
                false
            } else {
                true
            }
        });
        for r in done {
            t.send_status(&r, &status_block(404, "No Messages", &[]));
        }
    }

    fn pump_push(&self, t: &StreamTask, durable: u64) -> bool {
        let subject = {
            let cfg = self.config.borrow();
            Bytes::from(cfg.deliver_subject.clone())
        };
        if !t.has_interest(&subject) {
            self.had_interest.set(false);
            return false;
        }
        if !self.had_interest.replace(true) {
            // A new subscriber: nothing sent before counts against its window.
            self.reset_flow_control();
        }
        let now = now_nanos();
        self.last_active.set(now);
        let fc = self.config.borrow().flow_control;
        let mut budget = PUMP_BUDGET;
        loop {
            if fc && self.fc_bytes.get() > self.fc_window.get() {
                // Stalled until the client answers the flow-control request.
                return false;
            }
            if budget == 0 {
                return true;
            }
            let Some(p) = self.next_pick(t, durable) else {
                self.maybe_caught_up();
                return false;
            };
            if self.replay.get() {
                let Some((ts, _)) = self.peek(t, p.seq) else {
                    continue;
                };
                if self.replay_holds(t, ts, p.redelivery, now) {
                    self.requeue_front(p);
                    return false;
                }
            }
            let Some((size, ts)) = self.hand_out(t, &subject, p, now) else {
                continue;
            };
            let size = size as u64;
            self.delivered_one(ts, p.seq, now);
            budget -= 1;
            self.last_sent.set(now);
            if fc {
                self.flow_control_sent(t, &subject, size);
            }
        }
    }

    fn reset_flow_control(&self) {
        self.fc_bytes.set(0);
        self.fc_size.set(0);
        *self.fc_pending.borrow_mut() = None;
    }

    /// Counts `size` bytes sent; asks for a confirmation past half the window (nats-server's
    /// `needFlowControl`).
    fn flow_control_sent(&self, t: &StreamTask, subject: &Bytes, size: u64) {
        let bytes = self.fc_bytes.get() + size;
        self.fc_bytes.set(bytes);
        let window = self.fc_window.get();
        if self.fc_pending.borrow().is_none() {
            if bytes > window / 2 {
                self.send_flow_control(t, subject);
            }
        } else if bytes - self.fc_size.get() >= window {
            self.fc_size.set(self.fc_size.get() + size);
        }
    }

    fn send_flow_control(&self, t: &StreamTask, subject: &Bytes) {
        let n = self.fc_counter.get() + 1;
        self.fc_counter.set(n);
        let reply = Bytes::from(format!("$JS.FC.{}.{}.{n:x}", t.name_ref(), self.name));
        t.send_status_with_reply(
            subject,
            &reply,
            &status_block(100, "FlowControl Request", &[]),
        );
        self.fc_size.set(self.fc_bytes.get());
        *self.fc_pending.borrow_mut() = Some(reply);
    }

    /// A flow-control reply: what it confirms leaves the window, which grows (doubling up to
    /// its maximum), and deliveries may go on.
    pub fn on_flow_control(&self, subject: &[u8]) {
        let matches = self
            .fc_pending
            .borrow()
            .as_ref()
            .is_some_and(|r| &r[..] == subject);
        if matches {
            *self.fc_pending.borrow_mut() = None;
            self.fc_window
                .set((self.fc_window.get() * 2).min(FLOW_CONTROL_MAX_PENDING));
            self.fc_bytes
                .set(self.fc_bytes.get().saturating_sub(self.fc_size.replace(0)));
        }
    }

    /// A pull request (already checked against the consumer's limits by the caller).
    pub fn add_request(&self, t: &StreamTask, reply: Bytes, r: NextRequest, durable: u64) {
        let now = now_nanos();
        self.last_active.set(now);
        if r.no_wait {
            let pending = self.num_pending(t) + self.rdq.borrow().len() as u64;
            if pending == 0 && r.expires == 0 {
                t.send_status(&reply, &status_block(404, "No Messages", &[]));
                return;
            }
            // Fewer messages than the requests already waiting will take.
            let waiting: u64 = self.waiting.borrow().iter().map(|w| w.n).sum();
            if pending > 0 && pending < waiting {
                t.send_status(&reply, &status_block(408, "Requests Pending", &[]));
                return;
            }
        }
        let max_waiting = self.config.borrow().max_waiting;
        if max_waiting > 0 && self.waiting.borrow().len() as i64 >= max_waiting {
            self.expire_requests(t, now);
            if self.waiting.borrow().len() as i64 >= max_waiting {
                if r.idle_heartbeat == 0 {
                    t.send_status(&reply, &status_block(409, "Exceeded MaxWaiting", &[]));
                }
                return;
            }
        }
        self.waiting.borrow_mut().push_back(Waiting {
            reply,
            n: r.batch.max(1),
            b: r.max_bytes,
            expires: if r.expires > 0 { now + r.expires } else { 0 },
            no_wait: r.no_wait,
            delivered: 0,
            hb: r.idle_heartbeat,
            next_hb: if r.idle_heartbeat > 0 {
                now + r.idle_heartbeat
            } else {
                0
            },
        });
        self.pump(t, durable);
    }

    /// Ends expired pull requests with `408 Request Timeout` and sends due heartbeats.
    fn expire_requests(&self, t: &StreamTask, now: i64) {
        let mut timed_out = Vec::new();
        let mut beats = Vec::new();
        {
            let mut waiting = self.waiting.borrow_mut();
            waiting.retain_mut(|w| {
                if w.expires > 0 && now >= w.expires {
                    timed_out.push((w.reply.clone(), w.n, w.b));
                    return false;
                }
                if w.hb > 0 && now >= w.next_hb {
                    beats.push(w.reply.clone());
                    w.next_hb = now + w.hb;
                }
                true
            });
        }
        for (reply, n, b) in timed_out {
            let h = status_block(
                408,
                "Request Timeout",
                &[("Nats-Pending-Messages", n), ("Nats-Pending-Bytes", b)],
            );
            t.send_status(&reply, &h);
        }
        for reply in beats {
            t.send_status(&reply, &status_block(100, "Idle Heartbeat", &[]));
        }
    }

    /// Push idle heartbeats: `100 Idle Heartbeat` with the last sequences, and the stalled
    /// flow-control subject when a request is outstanding.
    fn push_heartbeat(&self, t: &StreamTask, now: i64) {
        let (hb, subject) = {
            let cfg = self.config.borrow();
            (cfg.idle_heartbeat, cfg.deliver_subject.clone())
        };
        if hb <= 0 || now - self.last_sent.get() < hb {
            return;
        }
        let subject = Bytes::from(subject);
        if !t.has_interest(&subject) {
            return;
        }
        let st = self.state.borrow();
        let mut h = format!(
            "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: {}\r\nNats-Last-Stream: {}\r\n",
            st.delivered.consumer_seq, st.delivered.stream_seq
        );
        drop(st);
        if let Some(fc) = self.fc_pending.borrow().as_ref() {
            h.push_str(&format!(
                "Nats-Consumer-Stalled: {}\r\n",
                String::from_utf8_lossy(fc)
            ));
        }
        h.push_str("\r\n");
        t.send_status(&subject, h.as_bytes());
        self.last_sent.set(now);
    }

    /// An ack for stream sequence `sseq`; returns whether the consumer may deliver more.
    /// An ack for stream sequence `sseq`. Returns the stream sequences it settled (acked or
    /// terminated), which interest and workqueue streams may then remove.
    pub fn on_ack(&self, kind: &AckKind, sseq: u64, now: i64) -> Vec<u64> {
        self.last_active.set(now);
        let policy = self.config.borrow().ack_policy;
        let mut settled = Vec::new();
        match kind {
            AckKind::Ack | AckKind::Next { .. } | AckKind::Term => {
                self.acked_at.set(now);
                let mut st = self.state.borrow_mut();
                if policy == AckPolicy::All {
                    let acked: Vec<u64> = st.pending.range(..=sseq).map(|(s, _)| *s).collect();
                    for s in acked {
                        st.pending.remove(&s);
                        st.redelivered.remove(&s);
                        settled.push(s);
                    }
                } else if st.pending.remove(&sseq).is_some() {
                    st.redelivered.remove(&sseq);
                    settled.push(sseq);
                }
                drop(st);
                self.update_ack_floor();
            }
            AckKind::Nak { delay } => {
                let pending = self.state.borrow().pending.contains_key(&sseq);
                if pending {
                    match delay {
                        Some(d) if *d > 0 => {
                            // Due `d` after now: the redelivery check counts from the
                            // delivery time, so move that.
                            let wait = self.ack_wait_for(sseq);
                            if let Some(p) = self.state.borrow_mut().pending.get_mut(&sseq) {
                                p.timestamp = now + d - wait;
                            }
                        }
                        _ => {
                            if !self.rdq.borrow().contains(&sseq) {
                                self.rdq.borrow_mut().push_back(sseq);
                            }
                        }
                    }
                }
            }
            AckKind::Progress => {
                if let Some(p) = self.state.borrow_mut().pending.get_mut(&sseq) {
                    p.timestamp = now;
                }
            }
        }
        self.dirty.set(true);
        settled
    }

    /// Whether this consumer no longer needs stream message `seq` on `subject`: not one it
    /// would deliver, or delivered and settled (interest retention).
    pub fn done_with(&self, seq: u64, subject: &str) -> bool {
        if !self.matches(subject) {
            return true;
        }
        seq < self.next_sseq.get()
            && !self.state.borrow().pending.contains_key(&seq)
            && !self.lps.borrow().contains(&seq)
    }

    /// Whether it would deliver a message on `subject`.
    pub fn wants(&self, subject: &str) -> bool {
        self.matches(subject)
    }

    /// The ack floor after acks: everything below the oldest pending message.
    fn update_ack_floor(&self) {
        let mut st = self.state.borrow_mut();
        let first = st.pending.iter().next().map(|(s, p)| (*s, p.consumer_seq));
        st.ack_floor = match first {
            None => st.delivered,
            Some((sseq, dseq)) => SequencePair {
                consumer_seq: dseq.saturating_sub(1),
                stream_seq: sseq.saturating_sub(1),
            },
        };
    }

    /// How long a delivery of `sseq` waits for its ack: the backoff step for its delivery
    /// count, else `ack_wait`.
    fn ack_wait_for(&self, sseq: u64) -> i64 {
        let cfg = self.config.borrow();
        let n = self
            .state
            .borrow()
            .pending
            .get(&sseq)
            .map_or(1, |p| p.deliveries);
        if cfg.backoff.is_empty() {
            return cfg.ack_wait;
        }
        let i = (n.saturating_sub(1) as usize).min(cfg.backoff.len() - 1);
        cfg.backoff[i]
    }

    /// Timers: redeliveries due, expired requests, heartbeats, an idle ephemeral's end
    /// (returns true when it must be deleted). And the next time to look again (ns).
    pub fn tick(&self, t: &StreamTask, now: i64) -> (bool, i64) {
        let mut next = now + 1_000_000_000;
        let paused = self.paused_for(now);
        if paused > 0 {
            next = next.min(now + paused);
        }
        let due = self.replay_due.get();
        if due > 0 {
            next = next.min(due.max(now));
        }
        // Redeliveries.
        let (max_deliver, policy) = {
            let c = self.config.borrow();
            (c.max_deliver, c.ack_policy)
        };
        if policy != AckPolicy::None {
            let due: Vec<(u64, i64, u64)> = self
                .state
                .borrow()
                .pending
                .iter()
                .map(|(s, p)| (*s, p.timestamp, p.deliveries))
                .collect();
            let mut exhausted = Vec::new();
            for (sseq, ts, deliveries) in due {
                let at = ts + self.ack_wait_for(sseq);
                if at <= now {
                    if max_deliver > 0 && deliveries as i64 >= max_deliver {
                        exhausted.push(sseq);
                    } else if !self.rdq.borrow().contains(&sseq) {
                        self.rdq.borrow_mut().push_back(sseq);
                        // Not again until this redelivery happens.
                        if let Some(p) = self.state.borrow_mut().pending.get_mut(&sseq) {
                            p.timestamp = now;
                        }
                    }
                } else {
                    next = next.min(at);
                }
            }
            if !exhausted.is_empty() {
                // nats-server stops delivering a message after max_deliver: it no longer
                // holds the ack floor back.
                let mut st = self.state.borrow_mut();
                for s in exhausted {
                    st.pending.remove(&s);
                }
                drop(st);
                self.update_ack_floor();
                self.dirty.set(true);
            }
        }
        if self.is_pull() {
            // As nats-server: when a request's expiry or heartbeat comes due, its sweep
            // treats the stream as at its end, so no_wait requests that got something (or
            // have no expiry) end with 404 even while max_ack_pending holds messages back.
            let due = self
                .waiting
                .borrow()
                .iter()
                .any(|w| (w.hb > 0 && now >= w.next_hb) || (w.expires > 0 && now >= w.expires));
            if due {
                self.end_of_stream(t);
            }
            self.expire_requests(t, now);
            for w in self.waiting.borrow().iter() {
                if w.expires > 0 {
                    next = next.min(w.expires);
                }
                if w.hb > 0 {
                    next = next.min(w.next_hb);
                }
            }
        } else {
            self.push_heartbeat(t, now);
            let hb = self.config.borrow().idle_heartbeat;
            if hb > 0 {
                next = next.min(self.last_sent.get() + hb);
            }
        }
        // Ephemerals end after inactive_threshold without activity.
        let threshold = self.config.borrow().inactive_threshold;
        let idle = if self.is_pull() {
            self.waiting.borrow().is_empty()
        } else {
            let subject = self.config.borrow().deliver_subject.clone();
            !t.has_interest(subject.as_bytes())
        };
        if !idle {
            self.last_active.set(now);
        }
        if idle && !self.is_pull() {
            // Interest in the deliver subject is looked for, not announced: often (10 ms)
            // while the consumer is new or was just used (clients subscribe right after
            // creating it), then every 250 ms.
            let recent = now - self.last_active.get().max(self.created) < 2_000_000_000;
            next = next.min(now + if recent { 10_000_000 } else { 250_000_000 });
        }
        if threshold > 0 && idle {
            let end = self.last_active.get() + threshold;
            if now >= end {
                return (true, next);
            }
            next = next.min(end);
        }
        (false, next)
    }

    /// Requests waiting when the consumer is deleted get `409 Consumer Deleted`.
    pub fn close(&self, t: &StreamTask) {
        self.deleted.set(true);
        let waiting: Vec<Bytes> = self
            .waiting
            .borrow_mut()
            .drain(..)
            .map(|w| w.reply)
            .collect();
        for r in waiting {
            t.send_status(&r, &status_block(409, "Consumer Deleted", &[]));
        }
    }

    /// Snapshot for the state file.
    pub fn snapshot(&self) -> ConsumerState {
        self.state.borrow().clone()
    }
}
