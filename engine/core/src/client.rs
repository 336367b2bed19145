//! State of one client connection shared by its reader task, its writer task and every shard code
//! path that delivers to it. Lives on one executor only (`Rc`, `Cell`, `RefCell`); no borrow is ever
//! held across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tachyon_protocol::encode;

use crate::backlog::{Backlog, FRAME_OVERHEAD};
use crate::handover::ClientSnapshot;
use crate::signal::{Broadcast, LocalSignal};

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
    /// A second route to a server already connected.
    DuplicateRoute,
}

/// The stall mark never sits higher than this: queueing megabytes behind a reader only adds
/// latency (at 1 GB/s, 48 MB is 48 ms) and cache misses, while under a megabyte already keeps the
/// writer busy. Measured against 4 MiB on the saturated `tachyon-bench` workloads (pubsub,
/// fanout, fanin, queue at 16 B and 1 KiB, one shard, same run): msgs/s up on 7 of 8 rows (queue
/// 16 B 3.10 M → 4.56 M; queue 1 KiB 1.06 M → 0.86 M) and p99 down on 7 of 8 (queue 16 B 82 →
/// 33 ms, fanout 1 KiB 24 → 15 ms; queue 1 KiB 6.5 → 8.6 ms).
const STALL_CAP: usize = 768 << 10;
// Feeders pause well before the default limit cuts a client off.
const _: () = assert!(STALL_CAP < tachyon_settings::options::DEFAULT_MAX_PENDING / 4);

/// Whether a client is behind its stall mark, readable from any shard: a publisher on another
/// shard that fed the client is told about it (`Envelope::Stall`) and pauses on it as a local
/// publisher does. One per connection, shared by the notices sent for it.
#[derive(Debug)]
pub struct StallGate {
    /// The client's id: feeders queue per client (see `Shard::wait_stalled`).
    pub cid: u64,
    behind: AtomicBool,
    /// Messages wait in the client's backlog. Publishers on other shards keep pausing while
    /// they do, even when the writer just brought `out` under the mark: their notices arrive
    /// late and their pauses used to end at the first such write, so they ran on until the
    /// backlog passed max_pending (a nats.go subscriber on a 1 KiB fan-in over 2 shards was
    /// cut in most runs; nats-server delivered everything). Local publishers keep pausing on
    /// `behind` alone: held to the backlog too, a 1 KiB fan-out on one shard lost 18 %.
    held: AtomicBool,
    /// Past [`DEEP_SHARE`] of `max_pending` is pending (queued, in flight and held): many
    /// feeders outran the writer, and their pauses no longer end at [`STALL_WAIT`](
    /// crate::shard::STALL_WAIT) but when the client drains (see `Shard::wait_stalled`).
    deep: AtomicBool,
    /// Since when the socket refuses bytes with none taken: nanoseconds after `born`, plus one;
    /// 0 while it takes them. A writer blocked for [`DEEP_STUCK_AFTER`] serves a client that
    /// reads nothing, and nobody waits for it however deep it is.
    blocked_at: AtomicU64,
    /// [`coarse_nanos`] when the gate was made.
    born: u64,
}

/// The monotonic clock as of the kernel's last tick, in nanoseconds: read without the TSC
/// (a few nanoseconds instead of tens on a VM's paravirtual clock). Behind a slow subscriber
/// every delivery asks how long its socket refused bytes: the precise clock was 6 % of the
/// shard's time on a 500-publisher fan-in. A tick (1-4 ms) is nothing against the marks
/// compared with ([`STUCK_AFTER`], [`DEEP_STUCK_AFTER`]).
fn coarse_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the whole call, which only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    debug_assert_eq!(
        rc, 0,
        "CLOCK_MONOTONIC_COARSE exists on every Linux Tachyon runs on"
    );
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

const _: () = assert!(STUCK_AFTER.as_millis() >= 50 && DEEP_STUCK_AFTER.as_millis() >= 50);

impl StallGate {
    pub fn new(cid: u64) -> StallGate {
        StallGate {
            cid,
            behind: AtomicBool::new(false),
            held: AtomicBool::new(false),
            deep: AtomicBool::new(false),
            blocked_at: AtomicU64::new(0),
            born: coarse_nanos(),
        }
    }

    /// Whether feeders wait for this client until it drains rather than for one short pause:
    /// it is deep in pending, and its writer still makes progress.
    pub fn holds_deep(&self) -> bool {
        if !self.deep.load(Ordering::Relaxed) {
            return false;
        }
        self.blocked_for().is_none_or(|d| d < DEEP_STUCK_AFTER)
    }

    /// Whether the writer's socket refuses bytes now (no clock read).
    pub fn is_blocked(&self) -> bool {
        self.blocked_at.load(Ordering::Relaxed) != 0
    }

    /// How long the writer's socket has refused bytes with none taken since; `None` while it
    /// takes them. The one record of it: the writer's own shard reads it too.
    pub fn blocked_for(&self) -> Option<Duration> {
        match self.blocked_at.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_nanos(
                self.nanos_since_born().saturating_sub(at - 1),
            )),
        }
    }

    fn nanos_since_born(&self) -> u64 {
        coarse_nanos().saturating_sub(self.born)
    }

    fn set_deep(&self, deep: bool) {
        if self.deep.load(Ordering::Relaxed) != deep {
            self.deep.store(deep, Ordering::Relaxed);
            if !deep {
                RELEASED.with(|r| r.raise());
            }
        }
    }

    fn set_blocked(&self, blocked: bool) {
        let at = if blocked {
            self.nanos_since_born().saturating_add(1)
        } else {
            0
        };
        self.blocked_at.store(at, Ordering::Relaxed);
    }

    /// What a publisher on another shard pauses for: the client is behind, or holds messages.
    pub fn holds_up_remote(&self) -> bool {
        self.is_behind() || self.held.load(Ordering::Relaxed)
    }

    fn set_held(&self, held: bool) {
        if self.held.load(Ordering::Relaxed) != held {
            self.held.store(held, Ordering::Relaxed);
        }
    }

    /// Whether the client still has more pending than its stall mark. A closed client is not
    /// behind: nobody waits for a connection that is gone.
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, behind: bool) {
        if self.behind.load(Ordering::Relaxed) != behind {
            self.behind.store(behind, Ordering::Relaxed);
            if !behind {
                RELEASED.with(|r| r.raise());
            }
        }
    }
}

thread_local! {
    /// Raised on a shard when one of its clients falls under its stall mark or leaves its
    /// deep state (gates change only on their client's shard): the feeders paused on its
    /// clients look again at once. Polled every 100 µs instead, a feeder held for a slow
    /// subscriber made its shard sleep and wake 7 500 times per million messages (fan-out
    /// 16 B to 4 nats.go subscribers), a fifth of the shard's CPU in `finish_task_switch`.
    static RELEASED: Rc<Broadcast> = Rc::default();
}

/// This shard's release signal (see `RELEASED`).
pub fn releases() -> Rc<Broadcast> {
    RELEASED.with(Rc::clone)
}

/// Messages held for a client past its stall mark, beyond `max_pending`: what nats-server
/// would leave unread in its publishers' sockets while it stalls them (a ring consumer that
/// delivers from another shard cannot pause). Past this (or `max_pending`, if larger) the
/// client is cut as a slow consumer.
pub const TRANSIT_LIMIT: usize = 8 << 20;

/// Past `max_pending / DEEP_SHARE` pending, a client that still reads holds its feeders until
/// it drains (unless their line stops moving for [`DEEP_WAIT`](crate::shard::DEEP_WAIT)), as
/// nats-server 2.9 stalls a producer up to a second once a client is past half its
/// `max_pending`. Short pauses alone (nats-server 2.15's 5 ms, 10 ms a read) do not hold
/// hundreds of feeders: each runs a read per timeout, and 500 nats.go publishers into one
/// nats.go subscriber pushed it past `max_pending` (cut, 274 566 of 2 M lost) where
/// nats-server 2.9 delivered everything.
///
/// An eighth, not nats-server's half: feeders on other shards hear that the client is deep
/// only through their own messages' stall notices, after those crossed a ring (4 096
/// envelopes), so what is in transit lands on top of the mark. With 300 publishers over 4
/// shards into one slow reader (`tests/isolation.rs`) it held 33 MB at the half-way mark, then
/// took 40 000 more messages from other shards within 270 ms and was cut at `max_pending` in 1
/// run of 5; at a quarter in 1-2 runs of 10; at an eighth in none of 20.
pub const DEEP_SHARE: usize = 8;

/// A deep client's writer blocked this long serves a client that reads nothing: its feeders
/// are let go (it is then cut at `max_pending` or its write deadline). Longer than
/// [`STUCK_AFTER`]: a reader that is only starved of CPU must not look stuck here, or its
/// feeders run free while it holds tens of megabytes. With 500 nats.go publishers and a raw
/// subscriber on the same 2 cores, the subscriber went 250 ms without reading in 3 runs of 8
/// and was cut with 64 MiB held; nats-server 2.9 holds a producer up to a second whatever the
/// client does.
pub const DEEP_STUCK_AFTER: Duration = Duration::from_secs(1);
const _: () = assert!(STUCK_AFTER.as_nanos() < DEEP_STUCK_AFTER.as_nanos());

/// One MSG, or HMSG when the message carries a header block of `header_len` bytes.
#[inline]
fn encode_frame(
    out: &mut Vec<u8>,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    header_len: Option<usize>,
    payload: &[u8],
) {
    match header_len {
        Some(h) => encode::hmsg(out, subject, sid, reply, h, payload),
        None => encode::msg(out, subject, sid, reply, payload),
    }
}

/// A writer that made no progress for this long serves a client that is not reading: see
/// `ClientState::writer_stuck`. A reading client, however slow, takes bytes far more often;
/// 25 ms was too short on a 16-core host running 14 shards and 9 load-generator threads (a
/// descheduled reader looked stuck, its feeders ran free, and it was cut in 1 of 2 fan-in runs).
pub const STUCK_AFTER: Duration = Duration::from_millis(250);

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
    /// A link to another server (leafnode or route): what it sends never goes back to it
    /// (no echo), and nothing is acknowledged.
    pub fn link(headers: bool) -> Self {
        ClientFlags {
            verbose: false,
            pedantic: false,
            echo: false,
            headers,
            no_responders: false,
            protocol: 1,
        }
    }

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

impl std::ops::AddAssign for ClientCounters {
    fn add_assign(&mut self, o: ClientCounters) {
        self.in_msgs += o.in_msgs;
        self.in_bytes += o.in_bytes;
        self.out_msgs += o.out_msgs;
        self.out_bytes += o.out_bytes;
    }
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
    /// nats-server's own stall mark (75 % of max_pending): past it feeders pause even for a
    /// client whose writer is stuck.
    stuck_stall_at: usize,
    /// Messages that arrived while the client was past its stall mark, in arrival order from
    /// every shard, encoded; the writer moves them into `out` as it catches up (see
    /// [`TRANSIT_LIMIT`]).
    backlog: RefCell<Backlog>,
    backlog_bytes: Cell<usize>,
    /// Bytes the writer took and has not finished writing; they count as pending.
    in_flight: Cell<usize>,
    closed: Cell<Option<CloseReason>>,
    pub subs: RefCell<HashMap<Bytes, SubRef>>,
    /// Raised while the client is past its stall mark; shared with other shards' feeders.
    pub gate: Arc<StallGate>,
    /// Stalled clients of other shards this client published to (`Envelope::Stall`), with
    /// when it was last told: its reader pauses for them at each message while they are
    /// behind, as for a stalled client of its own shard (see `Shard::wait_stalled`).
    pub remote_stalls: RefCell<Vec<(Arc<StallGate>, Instant)>>,
    /// Set when this client's interest changed, or it published messages that went to other
    /// shards, since its last PING: its next PONG then waits for a barrier through every ring,
    /// so, as with nats-server, a PONG means everything before the PING reached the
    /// subscribers' outbound buffers and every interest change is visible everywhere.
    pub interest_dirty: Cell<bool>,
    /// The first PONG after CONNECT went out: from then on the client is fully registered and
    /// gets asynchronous INFOs (lame duck), as in nats-server.
    pub first_pong_sent: Cell<bool>,
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
    /// A WebSocket client: the websocket block's authentication applies, and these cookies of
    /// its upgrade request (user, password, token) fill what its CONNECT leaves out.
    pub websocket: Cell<bool>,
    pub ws_cookies: RefCell<Option<Box<[Option<String>; 3]>>>,
    /// The upgrade request's `X-Forwarded-For` address: log lines name the client
    /// `FORWARDED/PEER`, as nats-server's do.
    pub forwarded_for: RefCell<Option<String>>,
    /// A leafnode link (`leaf/`): its subscriptions are the hub's interest, a message for it
    /// is written once as `LMSG` however many of them match, and what it publishes came from
    /// the hub (never echoed back, queue groups only as the hub named them).
    pub leaf: Cell<bool>,
    /// A leafnode link that dialed us (we are its hub); unset for links we dialed.
    pub leaf_accepted: Cell<bool>,
    /// A route's stand-in for one account (`route/`): its subscriptions are the peer's
    /// interest in the account; its messages are written as `RMSG` on the route's connection.
    pub route: Cell<bool>,
    /// A link to another server (`leaf` or `route`): what matches its subscriptions is written
    /// once per message, in the link's protocol (`Shard::leaf_hit`).
    pub link: Cell<bool>,
    /// For a route's stand-in: the route's connection, which writes for every account, and
    /// the account's name as `RMSG` spells it.
    pub route_via: RefCell<Option<(Rc<ClientState>, Bytes)>>,
    /// Which shards this connection exchanges messages with, and its moves between shards.
    pub affinity: Affinity,
}

/// What the shard's rebalancer (`shard/rebalance.rs`) reads to decide whether a connection
/// should live on another shard, and the state of a move in progress (`shard/migration.rs`).
#[derive(Default)]
pub struct Affinity {
    /// Since the rebalancer last looked: 0 = no message, `s + 1` = messages only to or from
    /// shard `s` (its own shard included), `MANY` = several shards.
    peers: Cell<u32>,
    /// Messages published (per destination shard) and received since the rebalancer last looked.
    traffic: Cell<u32>,
    /// `peers` as of the last look that saw traffic, and how many looks saw none since.
    last_peers: Cell<u32>,
    quiet_looks: Cell<u8>,
    /// Bit `s` set: a message from shard `s` is not delivered to this copy of the connection,
    /// because the copy on its other home (the one it leaves, or the one it moves to) delivers
    /// it. Zero except during a move.
    skip_from: Cell<u64>,
    /// Set by the rebalancer: the reader stops at its next wait and the connection moves there.
    pub move_to: Cell<Option<u16>>,
    /// Picked with other publish-only connections of its shard (`rebalance.rs`, batches): it
    /// moves only if it still has no subscription when its reader stops.
    pub in_batch: Cell<bool>,
    pub move_wake: LocalSignal,
    /// Moves so far: a connection moves a bounded number of times in its life.
    pub moves: Cell<u8>,
    /// Plaintext, past CONNECT: the session can be carried to another shard.
    pub movable: Cell<bool>,
    /// The writer stops at its next turn without shutting the socket down (the connection is
    /// handed to another shard with whatever it did not write).
    pub detaching: Cell<bool>,
}

const PEERS_MANY: u32 = u32::MAX;
/// Rebalancer looks (20 ms apart) for which a quiet connection's last peers still count.
pub const LAST_PEERS_LOOKS: u8 = 10;

/// Shard `s`'s bit in a skip mask; moves are off with more than 64 shards, so none is lost.
fn bit(shard: u16) -> u64 {
    1u64.checked_shl(shard as u32).unwrap_or(0)
}

/// Who a connection talked to over one rebalancer tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    Nobody,
    Only(u16),
    Several,
}

fn peers_of(code: u32) -> Peers {
    match code {
        0 => Peers::Nobody,
        PEERS_MANY => Peers::Several,
        p => Peers::Only((p - 1) as u16),
    }
}

impl Affinity {
    /// One message to or from shard `shard`.
    #[inline]
    pub fn note(&self, shard: u16) {
        let p = shard as u32 + 1;
        let cur = self.peers.get();
        if cur != p {
            self.peers.set(if cur == 0 { p } else { PEERS_MANY });
        }
        self.traffic.set(self.traffic.get().saturating_add(1));
    }

    /// What was noted since the last call, which starts the next tick afresh.
    pub fn take(&self) -> (Peers, u32) {
        let code = self.peers.replace(0);
        let traffic = self.traffic.replace(0);
        if traffic > 0 {
            self.last_peers.set(code);
            self.quiet_looks.set(0);
        } else {
            self.quiet_looks
                .set(self.quiet_looks.get().saturating_add(1));
        }
        (peers_of(code), traffic)
    }

    /// Who the connection talked to over the last tick in which it talked at all, if that was
    /// one of the last [`LAST_PEERS_LOOKS`]: a publisher paused on a slow subscriber for a
    /// whole tick still publishes where it did (one quiet for long may not).
    pub fn last_peers(&self) -> Peers {
        if self.quiet_looks.get() > LAST_PEERS_LOOKS {
            return Peers::Nobody;
        }
        peers_of(self.last_peers.get())
    }

    /// Whether a message from shard `shard` must be left to the other copy of a moving connection.
    #[inline]
    pub fn skips(&self, shard: u16) -> bool {
        let s = self.skip_from.get();
        s & bit(shard) != 0
    }

    pub fn skip_from_all_but(&self, keep: u16, nshards: usize) {
        let all = if nshards >= 64 {
            u64::MAX
        } else {
            (1u64 << nshards) - 1
        };
        self.skip_from.set(all & !bit(keep));
    }

    pub fn skip(&self, shard: u16) {
        self.skip_from.set(self.skip_from.get() | bit(shard));
    }

    pub fn unskip(&self, shard: u16) {
        self.skip_from.set(self.skip_from.get() & !bit(shard));
    }
}

impl ClientState {
    /// What the new home needs to rebuild this connection (the copy left here is about to go).
    /// Every field is named: a new one must be carried or left here on purpose.
    pub fn snapshot(&self) -> ClientSnapshot {
        let ClientState {
            id,
            peer,
            flags,
            account,
            auth_user,
            name,
            out: _,
            writer_wake: _,
            max_pending,
            stall_at: _,
            stuck_stall_at: _,
            backlog: _,
            backlog_bytes: _,
            in_flight: _,
            closed: _,
            subs: _,
            gate: _,
            remote_stalls: _,
            interest_dirty,
            first_pong_sent,
            counters: _,
            fd: _,
            start,
            start_mono,
            last_activity,
            rtt,
            lang,
            version,
            perms: _,
            credentials,
            affinity,
            // WebSocket connections never move.
            websocket: _,
            ws_cookies: _,
            forwarded_for: _,
            // Links never move.
            leaf: _,
            leaf_accepted: _,
            route: _,
            link: _,
            route_via: _,
        } = self;
        ClientSnapshot {
            id: *id,
            peer: *peer,
            flags: flags.get(),
            account: account.get(),
            auth_user: auth_user.borrow().clone(),
            name: name.borrow().clone(),
            lang: lang.borrow().clone(),
            version: version.borrow().clone(),
            start: *start,
            start_mono: *start_mono,
            last_activity: last_activity.get(),
            rtt: rtt.get(),
            max_pending: *max_pending,
            credentials: credentials.borrow().clone(),
            moves: affinity.moves.get(),
            interest_dirty: interest_dirty.get(),
            first_pong_sent: first_pong_sent.get(),
        }
    }

    /// The connection on its new home, reading from `fd`; subscriptions are added by the caller.
    pub fn from_snapshot(s: ClientSnapshot, fd: i32) -> Self {
        let ClientSnapshot {
            id,
            peer,
            flags,
            account,
            auth_user,
            name,
            lang,
            version,
            start,
            start_mono,
            last_activity,
            rtt,
            max_pending,
            credentials,
            moves,
            interest_dirty,
            first_pong_sent,
        } = s;
        let c = ClientState::new(id, peer, fd, max_pending);
        c.flags.set(flags);
        c.account.set(account);
        *c.auth_user.borrow_mut() = auth_user;
        *c.name.borrow_mut() = name;
        *c.lang.borrow_mut() = lang;
        *c.version.borrow_mut() = version;
        *c.credentials.borrow_mut() = credentials;
        c.last_activity.set(last_activity);
        c.rtt.set(rtt);
        c.interest_dirty.set(interest_dirty);
        c.first_pong_sent.set(first_pong_sent);
        c.affinity.moves.set(moves);
        c.affinity.movable.set(true);
        ClientState {
            start,
            start_mono,
            ..c
        }
    }

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
            stuck_stall_at: max_pending / 4 * 3,
            backlog: RefCell::new(Backlog::default()),
            backlog_bytes: Cell::new(0),
            in_flight: Cell::new(0),
            closed: Cell::new(None),
            subs: RefCell::new(HashMap::new()),
            gate: Arc::new(StallGate::new(id)),
            remote_stalls: RefCell::new(Vec::new()),
            interest_dirty: Cell::new(false),
            first_pong_sent: Cell::new(false),
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
            websocket: Cell::new(false),
            forwarded_for: RefCell::new(None),
            leaf: Cell::new(false),
            leaf_accepted: Cell::new(false),
            route: Cell::new(false),
            link: Cell::new(false),
            route_via: RefCell::new(None),
            ws_cookies: RefCell::new(None),
            affinity: Affinity::default(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get().is_some()
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.closed.get()
    }

    /// Closed for a reason that writes nothing more (nats-server's `skipFlushOnClose`).
    pub fn skips_flush(&self) -> bool {
        matches!(
            self.closed.get(),
            Some(
                CloseReason::SlowConsumerPendingBytes
                    | CloseReason::SlowConsumerWriteDeadline
                    | CloseReason::ReadError
                    | CloseReason::WriteError
            )
        )
    }

    /// Queues raw protocol bytes (INFO, PONG, -ERR, ...). They pass the same `max_pending`
    /// gate as messages (nats-server has one gate for every outbound byte): a client that
    /// pipelines PINGs or verbose PUBs and never reads is a slow consumer, not a memory leak.
    pub fn send_raw(&self, bytes: &[u8]) {
        self.queue_with(|out| out.extend_from_slice(bytes));
    }

    pub fn send_err(&self, text: &str) {
        self.queue_with(|out| encode::err(out, text));
    }

    fn queue_with(&self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.is_closed() {
            return;
        }
        let len = {
            let mut out = self.out.borrow_mut();
            write(&mut out);
            out.len()
        };
        self.gate(len);
    }

    /// After `queued` bytes sit in the buffer: cuts a client past `max_pending`, else wakes its
    /// writer. Returns the bytes pending (queued + being written), or `None` if it was cut.
    #[inline]
    fn gate(&self, queued: usize) -> Option<usize> {
        let pending = queued + self.in_flight.get();
        if pending > self.max_pending {
            self.slow_consumer(CloseReason::SlowConsumerPendingBytes);
            return None;
        }
        self.writer_wake.raise();
        Some(pending)
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
        let len = self.encode_msg(subject, sid, reply, header_len, payload);
        self.queued(len)
    }

    /// What a message just appended (the buffer now `len` bytes) means for its publisher.
    #[inline]
    fn queued(&self, len: usize) -> SendStatus {
        let Some(pending) = self.gate(len) else {
            return SendStatus::Dropped;
        };
        if pending > self.stall_at && (pending > self.stuck_stall_at || !self.writer_stuck()) {
            self.gate.set(true);
            self.note_depth();
            return SendStatus::Stalled;
        }
        SendStatus::Queued
    }

    /// Raises or lowers the gate's `deep` flag from what is pending now.
    fn note_depth(&self) {
        let deep = !self.is_closed() && self.pending_bytes() > self.max_pending / DEEP_SHARE;
        self.gate.set_deep(deep);
    }

    /// The connection that writes what this link sends: a route's, for its stand-ins.
    pub fn writer_of(self: &Rc<Self>) -> Rc<ClientState> {
        match &*self.route_via.borrow() {
            Some((primary, _)) => primary.clone(),
            None => self.clone(),
        }
    }

    /// A message for a link: `LMSG`/`HMSG` in the leaf protocol's form, or `RMSG`/`HMSG` naming
    /// `account` on a route, with the queue groups picked for the other side's members.
    pub fn send_leaf_msg(
        &self,
        account: Option<&[u8]>,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[Bytes],
        header_len: Option<usize>,
        message: &[u8],
    ) -> SendStatus {
        if self.is_closed() {
            return SendStatus::Dropped;
        }
        let len = {
            let mut out = self.out.borrow_mut();
            tachyon_protocol::leaf::msg(
                &mut out, account, subject, reply, queues, header_len, message,
            );
            out.len()
        };
        let mut c = self.counters.get();
        c.out_msgs += 1;
        c.out_bytes += message.len() as u64;
        self.counters.set(c);
        self.queued(len)
    }

    /// Appends one MSG/HMSG to `out` and counts it; returns the bytes queued.
    #[inline]
    fn encode_msg(
        &self,
        subject: &[u8],
        sid: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        payload: &[u8],
    ) -> usize {
        let len = {
            let mut out = self.out.borrow_mut();
            encode_frame(&mut out, subject, sid, reply, header_len, payload);
            out.len()
        };
        self.count_out(payload.len());
        len
    }

    #[inline]
    fn count_out(&self, payload: usize) {
        let mut c = self.counters.get();
        c.out_msgs += 1;
        c.out_bytes += payload as u64;
        self.counters.set(c);
    }

    /// Whether a message must wait in the backlog: the client is past its stall mark, or older
    /// ones wait there (order per publisher holds, and publishers of every shard queue
    /// together: local ones appending straight to `out` starved the others' held messages). Not when the client
    /// reads nothing at all: then, as in nats-server, its messages pile up in `out` until
    /// `max_pending` cuts it (what was held goes there first).
    #[inline]
    pub fn defers(&self) -> bool {
        if !self.gate.is_behind() && self.backlog_bytes.get() == 0 {
            return false;
        }
        self.defers_while_behind()
    }

    #[cold]
    fn defers_while_behind(&self) -> bool {
        let pending = self.out.borrow().len() + self.in_flight.get();
        if pending <= self.stuck_stall_at && self.writer_stuck() {
            self.refill(true);
            return false;
        }
        true
    }

    /// Holds a message, encoded, until the writer catches up (a ring consumer that delivers
    /// it never waits; a local publisher pauses after it). A backlog past [`TRANSIT_LIMIT`]
    /// (or `max_pending`) cuts the client off as a slow consumer.
    pub fn defer_msg(
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
        let bound = subject.len()
            + sid.len()
            + reply.map_or(0, <[u8]>::len)
            + payload.len()
            + FRAME_OVERHEAD;
        let n = self.backlog.borrow_mut().push(bound, |out| {
            encode_frame(out, subject, sid, reply, header_len, payload)
        });
        let bytes = self.backlog_bytes.get() + n;
        self.backlog_bytes.set(bytes);
        if bytes > TRANSIT_LIMIT.max(self.max_pending) {
            self.slow_consumer(CloseReason::SlowConsumerPendingBytes);
            return SendStatus::Dropped;
        }
        self.count_out(payload.len());
        self.gate.set_held(true);
        self.gate.set(true);
        self.note_depth();
        // Nothing may be in flight (the mark counts it): the writer must come back for these.
        self.writer_wake.raise();
        SendStatus::Stalled
    }

    /// Moves held messages into `out`, a chunk at a time, while it is under the stall mark (or
    /// all of them). An empty `out` takes the chunk itself, not a copy.
    fn refill(&self, all: bool) {
        let mut backlog = self.backlog.borrow_mut();
        let mut out = self.out.borrow_mut();
        while all || out.len() + self.in_flight.get() <= self.stall_at {
            let Some(chunk) = backlog.pop_front() else {
                break;
            };
            self.backlog_bytes
                .set(self.backlog_bytes.get().saturating_sub(chunk.len()));
            if out.is_empty() {
                *out = chunk;
            } else {
                out.extend_from_slice(&chunk);
            }
        }
        if backlog.is_empty() {
            debug_assert_eq!(self.backlog_bytes.get(), 0);
            self.gate.set_held(false);
        }
    }

    /// Whether the socket took nothing for [`STUCK_AFTER`]: the client reads nothing, so
    /// pausing its feeders early (at [`STALL_CAP`]) would only slow them down for as long as
    /// its write deadline; they pause at nats-server's mark instead, and the client is cut when
    /// it passes `max_pending` or the deadline, as nats-server cuts it.
    #[cold]
    fn writer_stuck(&self) -> bool {
        self.gate.blocked_for().is_some_and(|d| d >= STUCK_AFTER)
    }

    /// The writer's socket refused more bytes (`true`), or took some (`false`).
    pub fn note_blocked(&self, blocked: bool) {
        if blocked != self.gate.is_blocked() {
            self.gate.set_blocked(blocked);
        }
    }

    /// Whether the writer keeps up: nothing past the stall mark, the socket taking bytes. Only
    /// such a connection is moved (a move waits for its writer).
    pub fn writer_keeps_up(&self) -> bool {
        !self.gate.is_behind() && !self.gate.is_blocked() && self.backlog_bytes.get() == 0
    }

    /// Bytes queued or being written, and held from other shards: monitoring's
    /// `pending_bytes`.
    pub fn pending_bytes(&self) -> usize {
        self.out.borrow().len() + self.in_flight.get() + self.backlog_bytes.get()
    }

    /// The wall-clock time of a monotonic instant taken during this connection.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        self.start + at.saturating_duration_since(self.start_mono)
    }

    /// The writer finished writing what it took: as in nats-server, a flush that wrote
    /// everything it took releases the client's feeders, as does falling under the mark.
    pub fn wrote(&self) {
        self.in_flight.set(0);
        if self.gate.is_behind() {
            self.gate
                .set(self.out.borrow().len() > self.stall_at && !self.is_closed());
        }
        self.note_depth();
    }

    pub fn count_in(&self, bytes: usize) {
        let mut c = self.counters.get();
        c.in_msgs += 1;
        c.in_bytes += bytes as u64;
        self.counters.set(c);
    }

    /// Cuts the client off as nats-server does: what is queued is dropped (it is what it could
    /// not take), nothing more is written (no `-ERR`: nats-server sends none), and a write
    /// blocked on its socket is abandoned, so the socket closes at once.
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
        self.out.borrow_mut().clear();
        self.drop_backlog();
        self.close(reason);
    }

    /// Marks the connection closed. The writer flushes what is queued, then shuts the socket down
    /// (which also ends the reader's pending read).
    pub fn close(&self, reason: CloseReason) {
        if self.closed.get().is_none() {
            self.closed.set(Some(reason));
        }
        self.gate.set(false);
        self.gate.set_deep(false);
        self.writer_wake.raise();
    }

    fn drop_backlog(&self) {
        self.backlog.borrow_mut().clear();
        self.backlog_bytes.set(0);
        self.gate.set_held(false);
        self.note_depth();
    }

    /// Takes everything queued, leaving `spare` (emptied) in its place.
    pub fn take_out(&self, spare: &mut Vec<u8>) {
        spare.clear();
        std::mem::swap(&mut *self.out.borrow_mut(), spare);
        self.in_flight.set(spare.len());
    }

    /// Everything queued and not yet taken by the writer, held messages included (a
    /// connection leaving the shard).
    pub fn take_all_out(&self) -> Vec<u8> {
        self.refill(true);
        std::mem::take(&mut *self.out.borrow_mut())
    }

    /// Puts `earlier` in front of what is queued: the bytes the connection's previous shard
    /// had not written yet go out before anything queued here.
    pub fn prepend_out(&self, mut earlier: Vec<u8>) {
        if earlier.is_empty() {
            return;
        }
        let mut out = self.out.borrow_mut();
        earlier.extend_from_slice(&out);
        *out = earlier;
        drop(out);
        self.writer_wake.raise();
    }

    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    pub fn has_out(&self) -> bool {
        !self.out.borrow().is_empty()
    }

    /// For whoever drains `out` (the writer, a service), before it looks: held messages move
    /// in once everything taken was written and nothing else waits.
    pub fn pull_backlog(&self) {
        if self.backlog_bytes.get() > 0 && self.in_flight.get() == 0 && self.out.borrow().is_empty()
        {
            self.refill(false);
        }
    }

    pub fn peer_string(&self) -> String {
        let peer = match self.peer {
            Some(a) => a.to_string(),
            None => "?".to_string(),
        };
        match self.forwarded_for.borrow().as_deref() {
            Some(ip) if ip.contains(':') => format!("[{ip}]/{peer}"),
            Some(ip) => format!("{ip}/{peer}"),
            None => peer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_connections_last_peers_fade() {
        let a = Affinity::default();
        assert_eq!(a.last_peers(), Peers::Nobody);
        a.note(2);
        a.note(2);
        assert_eq!(a.take(), (Peers::Only(2), 2));
        for _ in 0..LAST_PEERS_LOOKS {
            assert_eq!(a.take(), (Peers::Nobody, 0));
            assert_eq!(a.last_peers(), Peers::Only(2));
        }
        a.take();
        assert_eq!(a.last_peers(), Peers::Nobody, "quiet for too long");
        a.note(1);
        a.note(3);
        a.take();
        assert_eq!(a.last_peers(), Peers::Several);
    }

    #[test]
    fn the_coarse_clock_moves_with_the_precise_one_to_within_a_tick() {
        let (c0, p0) = (coarse_nanos(), Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let (c1, p1) = (coarse_nanos(), Instant::now());
        assert!(c1 >= c0, "monotonic");
        let coarse = Duration::from_nanos(c1 - c0);
        let precise = p1 - p0;
        // One tick of lag at each end at most (a 100 Hz kernel ticks every 10 ms).
        assert!(
            coarse + Duration::from_millis(21) >= precise
                && coarse <= precise + Duration::from_millis(21),
            "coarse {coarse:?} precise {precise:?}"
        );
    }

    #[test]
    fn a_gate_measures_how_long_its_socket_refused_bytes() {
        let gate = StallGate::new(1);
        assert_eq!(gate.blocked_for(), None);
        gate.set_blocked(true);
        std::thread::sleep(Duration::from_millis(40));
        let d = gate.blocked_for().expect("blocked");
        assert!(d >= Duration::from_millis(15), "{d:?}");
        assert!(gate.is_blocked());
        gate.set_blocked(false);
        assert_eq!(gate.blocked_for(), None);
    }

    #[test]
    fn affinity_tells_one_peer_from_several_and_restarts_each_tick() {
        let a = Affinity::default();
        assert_eq!(a.take(), (Peers::Nobody, 0));
        a.note(3);
        a.note(3);
        assert_eq!(a.take(), (Peers::Only(3), 2));
        a.note(0);
        a.note(2);
        a.note(0);
        assert_eq!(a.take(), (Peers::Several, 3));
        assert_eq!(a.take(), (Peers::Nobody, 0));
    }

    #[test]
    fn skip_bits_follow_switches() {
        let a = Affinity::default();
        assert!(!a.skips(0) && !a.skips(63) && !a.skips(64));
        a.skip_from_all_but(2, 4);
        assert_eq!(
            [a.skips(0), a.skips(1), a.skips(2), a.skips(3)],
            [true, true, false, true]
        );
        assert!(!a.skips(4));
        a.unskip(1);
        a.unskip(0);
        assert_eq!([a.skips(0), a.skips(1), a.skips(3)], [false, false, true]);
        a.unskip(3);
        assert!((0..64).all(|s| !a.skips(s)));
        a.skip_from_all_but(63, 64);
        assert!(a.skips(0) && a.skips(62) && !a.skips(63));
        // Shards past the mask never skip (moves are off with more than 64 shards).
        a.skip(70);
        assert!(!a.skips(70));
    }

    #[test]
    fn protocol_bytes_pass_the_max_pending_gate() {
        let c = ClientState::new(1, None, -1, 64);
        for _ in 0..10 {
            c.send_raw(b"PONG\r\n");
        }
        assert!(!c.is_closed(), "60 bytes is under 64");
        c.send_raw(b"PONG\r\n");
        assert_eq!(
            c.close_reason(),
            Some(CloseReason::SlowConsumerPendingBytes)
        );
        // What could not be taken is dropped, and nothing is added (nats-server sends no -ERR).
        assert!(c.take_all_out().is_empty());
        assert!(c.skips_flush());
        let c = ClientState::new(2, None, -1, 16);
        c.send_err("Unknown Protocol Operation");
        assert_eq!(
            c.close_reason(),
            Some(CloseReason::SlowConsumerPendingBytes)
        );
    }

    #[test]
    fn prepend_puts_the_old_homes_bytes_first() {
        let c = ClientState::new(1, None, -1, 1 << 20);
        c.send_raw(b"later");
        c.prepend_out(b"earlier ".to_vec());
        assert_eq!(c.take_all_out(), b"earlier later");
        c.prepend_out(Vec::new());
        assert!(!c.has_out());
    }
}
