//! State of one client connection shared by its reader task, its writer task and every shard code
//! path that delivers to it. Lives on one executor only (`Rc`, `Cell`, `RefCell`); no borrow is ever
//! held across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tachyon_protocol::encode;

use crate::signal::LocalSignal;

/// Why a connection ended; logged and (later) reported by monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    ClientClosed,
    ReadError,
    WriteError,
    ProtocolViolation,
    AuthViolation,
    AuthTimeout,
    StaleConnection,
    SlowConsumerPendingBytes,
    SlowConsumerWriteDeadline,
    MaxConnections,
    MaxPayload,
    ServerShutdown,
    LameDuck,
}

/// The stall mark never sits higher than this: queueing megabytes behind a reader only adds
/// latency (at 1 GB/s, 48 MB is 48 ms) and cache misses, while under a megabyte already keeps the
/// writer busy. Measured against 4 MiB on the saturated `tachyon-bench` workloads (pubsub,
/// fanout, fanin, queue at 16 B and 1 KiB, one shard, same run): msgs/s up on 7 of 8 rows (queue
/// 16 B 3.10 M → 4.56 M; queue 1 KiB 1.06 M → 0.86 M) and p99 down on 7 of 8 (queue 16 B 82 →
/// 33 ms, fanout 1 KiB 24 → 15 ms; queue 1 KiB 6.5 → 8.6 ms).
const STALL_CAP: usize = 768 << 10;

/// What became of one queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    Queued,
    /// Queued, and the client is past its stall mark: whoever fed it should pause.
    Stalled,
    /// Not queued: the client is closed, or was just cut off as a slow consumer.
    Dropped,
}

/// One subscription, owned by its connection and referenced from the shard's local sublist.
pub struct Subscription {
    pub client: Rc<ClientState>,
    pub subject: Bytes,
    pub queue: Option<Bytes>,
    pub sid: Bytes,
    /// Auto-unsubscribe limit; 0 = none.
    pub max: Cell<u64>,
    pub delivered: Cell<u64>,
    pub removed: Cell<bool>,
    /// A subscribe deny entry overlaps this (wildcard or queue) subscription: each delivery
    /// is checked against the client's deny list. A config reload recomputes it.
    pub deny_filter: Cell<bool>,
}

/// Sublist value: identity is the subscription itself.
#[derive(Clone)]
pub struct SubRef(pub Rc<Subscription>);

impl PartialEq for SubRef {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for SubRef {
    type Target = Subscription;
    fn deref(&self) -> &Subscription {
        &self.0
    }
}

/// Options the client chose in CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct ClientFlags {
    pub verbose: bool,
    pub pedantic: bool,
    pub echo: bool,
    pub headers: bool,
    pub no_responders: bool,
    pub protocol: u8,
}

impl ClientFlags {
    pub fn from_connect(opts: &tachyon_protocol::json::ConnectOptions) -> Self {
        ClientFlags {
            verbose: opts.verbose,
            pedantic: opts.pedantic,
            echo: opts.echo,
            headers: opts.headers,
            no_responders: opts.no_responders,
            protocol: opts.protocol.clamp(0, 255) as u8,
        }
    }
}

impl Default for ClientFlags {
    /// nats-server's options for a client that has not sent CONNECT (verbose, pedantic, echo).
    fn default() -> Self {
        ClientFlags::from_connect(&tachyon_protocol::json::ConnectOptions::default())
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct ClientCounters {
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
}

pub struct ClientState {
    pub id: u64,
    pub peer: Option<SocketAddr>,
    pub flags: Cell<ClientFlags>,
    /// The subject space this client publishes and subscribes in; set when it authenticates.
    pub account: Cell<crate::accounts::AccountId>,
    /// The user it authenticated as (monitoring's `authorized_user`).
    pub auth_user: RefCell<Option<String>>,
    pub name: RefCell<String>,
    /// Bytes queued for the writer; swapped out whole by the writer so one write carries everything
    /// queued in a loop turn.
    out: RefCell<Vec<u8>>,
    pub writer_wake: LocalSignal,
    max_pending: usize,
    /// Past this many queued bytes the client is "stalled": whoever feeds it pauses briefly so the
    /// writer can catch up (nats-server's stall gate at 75 % of max_pending).
    stall_at: usize,
    /// Bytes the writer took and has not finished writing; they count as pending.
    in_flight: Cell<usize>,
    closed: Cell<Option<CloseReason>>,
    pub subs: RefCell<HashMap<Bytes, SubRef>>,
    /// Set when this client's interest changed, or it published messages that went to other
    /// shards, since its last PING: its next PONG then waits for a barrier through every ring,
    /// so, as with nats-server, a PONG means everything before the PING reached the
    /// subscribers' outbound buffers and every interest change is visible everywhere.
    pub interest_dirty: Cell<bool>,
    pub counters: Cell<ClientCounters>,
    /// Raw fd of the socket, used to shut it down so a blocked read returns.
    pub fd: i32,
    /// Wall clock at accept, for monitoring; `start_mono` is the same moment on the monotonic
    /// clock, so other instants convert to wall time without another clock read.
    pub start: SystemTime,
    pub start_mono: Instant,
    /// When the client was last read from (monitoring's `last_activity`, `idle`).
    pub last_activity: Cell<Instant>,
    /// Latest round trip: estimated at CONNECT, then measured by the server's PINGs.
    pub rtt: Cell<Duration>,
    pub lang: RefCell<String>,
    pub version: RefCell<String>,
    /// The authenticated user's permissions; `None` when the user may do anything.
    pub perms: RefCell<Option<crate::auth::PermChecker>>,
    /// What the first CONNECT authenticated with, for a config reload to check again.
    pub credentials: RefCell<Option<crate::auth::Credentials>>,
}

impl ClientState {
    pub fn new(id: u64, peer: Option<SocketAddr>, fd: i32, max_pending: usize) -> Self {
        ClientState {
            id,
            peer,
            flags: Cell::new(ClientFlags::default()),
            account: Cell::new(crate::accounts::GLOBAL),
            auth_user: RefCell::new(None),
            name: RefCell::new(String::new()),
            out: RefCell::new(Vec::with_capacity(4096)),
            writer_wake: LocalSignal::default(),
            max_pending,
            stall_at: (max_pending / 4 * 3).min(STALL_CAP),
            in_flight: Cell::new(0),
            closed: Cell::new(None),
            subs: RefCell::new(HashMap::new()),
            interest_dirty: Cell::new(false),
            counters: Cell::new(ClientCounters::default()),
            fd,
            start: SystemTime::now(),
            start_mono: Instant::now(),
            last_activity: Cell::new(Instant::now()),
            rtt: Cell::new(Duration::ZERO),
            lang: RefCell::new(String::new()),
            version: RefCell::new(String::new()),
            perms: RefCell::new(None),
            credentials: RefCell::new(None),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get().is_some()
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.closed.get()
    }

    /// Queues raw protocol bytes (INFO, PONG, -ERR, ...).
    pub fn send_raw(&self, bytes: &[u8]) {
        if self.is_closed() {
            return;
        }
        self.out.borrow_mut().extend_from_slice(bytes);
        self.writer_wake.raise();
    }

    pub fn send_err(&self, text: &str) {
        if self.is_closed() {
            return;
        }
        encode::err(&mut self.out.borrow_mut(), text);
        self.writer_wake.raise();
    }

    /// Queues one MSG/HMSG.
    pub fn send_msg(
        &self,
        subject: &[u8],
        sid: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        payload: &[u8],
    ) -> SendStatus {
        if self.is_closed() {
            return SendStatus::Dropped;
        }
        let len = {
            let mut out = self.out.borrow_mut();
            match header_len {
                Some(h) => encode::hmsg(&mut out, subject, sid, reply, h, payload),
                None => encode::msg(&mut out, subject, sid, reply, payload),
            }
            out.len()
        };
        let mut c = self.counters.get();
        c.out_msgs += 1;
        c.out_bytes += payload.len() as u64;
        self.counters.set(c);
        let pending = len + self.in_flight.get();
        if pending > self.max_pending {
            self.slow_consumer(CloseReason::SlowConsumerPendingBytes);
            return SendStatus::Dropped;
        }
        self.writer_wake.raise();
        if pending > self.stall_at {
            return SendStatus::Stalled;
        }
        SendStatus::Queued
    }

    /// Whether the writer is still behind the stall mark.
    pub fn is_behind(&self) -> bool {
        !self.is_closed() && self.out.borrow().len() + self.in_flight.get() > self.stall_at
    }

    /// Bytes queued or being written: monitoring's `pending_bytes`.
    pub fn pending_bytes(&self) -> usize {
        self.out.borrow().len() + self.in_flight.get()
    }

    /// The wall-clock time of a monotonic instant taken during this connection.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        self.start + at.saturating_duration_since(self.start_mono)
    }

    /// The writer finished writing what it took.
    pub fn wrote(&self) {
        self.in_flight.set(0);
    }

    pub fn count_in(&self, bytes: usize) {
        let mut c = self.counters.get();
        c.in_msgs += 1;
        c.in_bytes += bytes as u64;
        self.counters.set(c);
    }

    /// Cuts the client off: what is queued is dropped (it is what it could not take), the error is
    /// the last thing it gets.
    pub fn slow_consumer(&self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        tracing::info!(
            "{} - cid:{} - Slow Consumer Detected: MaxPending of {} Exceeded",
            self.peer_string(),
            self.id,
            self.max_pending
        );
        {
            let mut out = self.out.borrow_mut();
            out.clear();
            encode::err(&mut out, tachyon_protocol::errors::SLOW_CONSUMER);
        }
        self.close(reason);
    }

    /// Marks the connection closed. The writer flushes what is queued, then shuts the socket down
    /// (which also ends the reader's pending read).
    pub fn close(&self, reason: CloseReason) {
        if self.closed.get().is_none() {
            self.closed.set(Some(reason));
        }
        self.writer_wake.raise();
    }

    /// Takes everything queued, leaving `spare` (emptied) in its place.
    pub fn take_out(&self, spare: &mut Vec<u8>) {
        spare.clear();
        std::mem::swap(&mut *self.out.borrow_mut(), spare);
        self.in_flight.set(spare.len());
    }

    pub fn has_out(&self) -> bool {
        !self.out.borrow().is_empty()
    }

    pub fn peer_string(&self) -> String {
        match self.peer {
            Some(a) => a.to_string(),
            None => "?".to_string(),
        }
    }
}
