//! The `nats bench` shapes, one thread per publisher or subscriber (a handful of
//! worker threads for `conns`), over either transport (`link`), verifying what
//! arrives.
//!
//! Every payload of 8 bytes or more starts with `publisher id << 40 | sequence`
//! (little endian) so receivers can check count, order and exactly-once; from
//! 16 bytes on, the next 8 bytes are the send time in nanoseconds on a shared
//! quanta clock, so receivers can record one-way latency.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use tachyon_protocol::encode;

use crate::conn::Conn;
use crate::error::{both, BenchError, Result};
use crate::jetstream::{self, Storage, StreamUse};
use crate::link::{message, Fleet, Link, Transport};
use crate::stats::{new_histogram, record, summarize, LatencySummary};
use crate::uring::{Ring, UringConn};
use crate::ws::WsMode;

const SEQ_BITS: u32 = 40;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// Publishers hand the socket this much at a time.
const WRITE_BATCH: usize = 64 * 1024;
const UNKNOWN: u64 = u64::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Pub,
    Pubsub,
    Fanout,
    Fanin,
    Queue,
    Reqrep,
    Latency,
    Conns,
    /// N independent publisher/subscriber pairs, each on its own subject: what spreads over
    /// shards (every other shape crosses every shard).
    Pairs,
    /// Synchronous JetStream publish: each publisher waits for the ack before the next.
    #[serde(rename = "js-pub")]
    JsPub,
    /// JetStream publish with up to `--window` acks outstanding per publisher.
    #[serde(rename = "js-async")]
    JsAsync,
    /// Key-value puts (`$KV.<bucket>.k<i % keys>`), `--window` acks outstanding.
    #[serde(rename = "kv-put")]
    KvPut,
    /// Key-value gets over direct get, one outstanding per requester, after loading the keys.
    #[serde(rename = "kv-get")]
    KvGet,
    /// A pull consumer reading a stream of `--msgs` messages (loaded first, not measured) in
    /// batches of `--window`, acking each message.
    #[serde(rename = "js-consume")]
    JsConsume,
    /// A push consumer delivering a stream of `--msgs` messages (loaded first, not measured) to
    /// its deliver subject as fast as it can, acking each message. Throughput only.
    #[serde(rename = "js-push")]
    JsPush,
    /// An ordered push consumer (ack none, flow control, heartbeats) replaying a stream of
    /// `--msgs` messages (loaded first, not measured).
    #[serde(rename = "js-ordered")]
    JsOrdered,
    /// `--sub` KV watchers (ordered consumers on `$KV.<bucket>.>`) while one writer puts
    /// `--msgs` new keys, `--window` acks outstanding.
    #[serde(rename = "kv-watch")]
    KvWatch,
    /// pubsub with both clients on the server's `websocket {}` port (masked binary frames,
    /// one per flush).
    #[serde(rename = "ws-pubsub")]
    WsPubsub,
    /// ws-pubsub with permessage-deflate agreed: the publisher's frames and the server's
    /// deliveries are compressed.
    #[serde(rename = "ws-deflate")]
    WsDeflate,
    /// fanin across a leafnode link: the publishers on the server under test, a leaf of a
    /// nats-server hub (`compare --hub`), the subscriber on the hub.
    #[serde(rename = "leaf-fanin")]
    LeafFanin,
    /// fanin across a route: the publishers on the server under test, routed to a nats-server
    /// peer (`compare --hub`, the same binary), the subscriber on the peer.
    #[serde(rename = "route-fanin")]
    RouteFanin,
    /// One connection subscribes `--msgs` distinct literal subjects (`bench.device.<n>.telemetry`,
    /// a device per subscription), then PING: subscriptions per second until the PONG; the
    /// report's RSS column is what the server holds for them.
    Subs,
}

impl Workload {
    pub const ALL: [Workload; 22] = [
        Workload::Pub,
        Workload::Pubsub,
        Workload::Fanout,
        Workload::Fanin,
        Workload::Queue,
        Workload::Reqrep,
        Workload::Latency,
        Workload::Conns,
        Workload::Pairs,
        Workload::JsPub,
        Workload::JsAsync,
        Workload::KvPut,
        Workload::KvGet,
        Workload::JsConsume,
        Workload::JsPush,
        Workload::JsOrdered,
        Workload::KvWatch,
        Workload::WsPubsub,
        Workload::WsDeflate,
        Workload::LeafFanin,
        Workload::RouteFanin,
        Workload::Subs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Pub => "pub",
            Workload::Pubsub => "pubsub",
            Workload::Fanout => "fanout",
            Workload::Fanin => "fanin",
            Workload::Queue => "queue",
            Workload::Reqrep => "reqrep",
            Workload::Latency => "latency",
            Workload::Conns => "conns",
            Workload::Pairs => "pairs",
            Workload::JsPub => "js-pub",
            Workload::JsAsync => "js-async",
            Workload::KvPut => "kv-put",
            Workload::KvGet => "kv-get",
            Workload::JsConsume => "js-consume",
            Workload::JsPush => "js-push",
            Workload::JsOrdered => "js-ordered",
            Workload::KvWatch => "kv-watch",
            Workload::WsPubsub => "ws-pubsub",
            Workload::WsDeflate => "ws-deflate",
            Workload::LeafFanin => "leaf-fanin",
            Workload::RouteFanin => "route-fanin",
            Workload::Subs => "subs",
        }
    }

    /// Whether the server needs JetStream (`-js -sd DIR`) for this workload.
    pub fn is_jetstream(self) -> bool {
        matches!(
            self,
            Workload::JsPub
                | Workload::JsAsync
                | Workload::KvPut
                | Workload::KvGet
                | Workload::JsConsume
                | Workload::JsPush
                | Workload::JsOrdered
                | Workload::KvWatch
        )
    }

    /// The fan-in shape: many publishers, each on its own subjects, one subscriber on all.
    pub fn is_fanin(self) -> bool {
        matches!(
            self,
            Workload::Fanin | Workload::LeafFanin | Workload::RouteFanin
        )
    }

    /// Whether the subscribers use another server (`compare --hub`): the server under test is
    /// its leaf, or its route peer.
    pub fn needs_hub(self) -> bool {
        matches!(self, Workload::LeafFanin | Workload::RouteFanin)
    }

    /// Whether clients connect to the `websocket {}` port, and with compression.
    pub fn websocket(self) -> Option<WsMode> {
        match self {
            Workload::WsPubsub => Some(WsMode { compress: false }),
            Workload::WsDeflate => Some(WsMode { compress: true }),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// What the user asked for; `None` means "the workload's default".
#[derive(Clone, Debug)]
pub struct Options {
    pub msgs: Option<u64>,
    pub size: usize,
    pub pubs: Option<usize>,
    pub subs: Option<usize>,
    pub subject: String,
    /// Number of distinct subjects each publisher cycles through (0: one subject).
    pub multisubject: Option<usize>,
    pub duration: Option<Duration>,
    /// Messages per second per publisher; 0 = as fast as possible.
    pub rate: Option<u64>,
    pub pin: bool,
    /// How long receivers wait without progress before declaring loss.
    pub stall_timeout: Duration,
    pub transport: Transport,
    /// Subscription churn during streaming runs: SUB then UNSUB pairs per second, on subjects
    /// no publisher uses, from a connection of its own (0: none).
    pub churn: u64,
    /// Acks (replies) outstanding per publisher in js-async and kv-put.
    pub window: Option<usize>,
    /// Where the JetStream workloads' stream keeps its messages.
    pub storage: Storage,
    /// Distinct keys kv-put writes and kv-get reads.
    pub keys: usize,
    /// Key-value bucket of kv-put and kv-get (stream `KV_<bucket>`).
    pub bucket: String,
    /// Whether a JetStream run creates and deletes its stream, or keeps or reuses one.
    pub stream_use: StreamUse,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            msgs: None,
            size: 128,
            pubs: None,
            subs: None,
            subject: "bench".into(),
            multisubject: None,
            duration: None,
            rate: None,
            pin: false,
            stall_timeout: Duration::from_secs(10),
            transport: Transport::default(),
            churn: 0,
            window: None,
            storage: Storage::default(),
            keys: DEFAULT_KEYS,
            bucket: DEFAULT_BUCKET.into(),
            stream_use: StreamUse::default(),
        }
    }
}

pub const DEFAULT_WINDOW: usize = 256;
/// Messages per pull request of js-consume.
pub const DEFAULT_CONSUME_BATCH: usize = 100;
pub const DEFAULT_KEYS: usize = 1000;
pub const DEFAULT_BUCKET: &str = "BENCH";

/// Options with every workload default filled in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub workload: Workload,
    pub msgs: u64,
    pub size: usize,
    pub pubs: usize,
    pub subs: usize,
    pub subject: String,
    pub multisubject: usize,
    pub duration_s: Option<f64>,
    pub rate: u64,
    pub pin: bool,
    /// Older result files have none: they were taken over std sockets.
    #[serde(default = "std_transport")]
    pub transport: Transport,
    /// SUB/UNSUB pairs per second on unrelated subjects while the run streams.
    #[serde(default)]
    pub churn: u64,
    /// Replies outstanding per publisher (JetStream workloads; 1 = synchronous).
    #[serde(default)]
    pub window: usize,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub keys: usize,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub stream_use: StreamUse,
}

fn std_transport() -> Transport {
    Transport::Std
}

impl Plan {
    pub fn new(workload: Workload, o: &Options) -> Result<Plan> {
        use Workload::*;
        let (pubs, subs, msgs, rate, dur) = match workload {
            Pub => (1, 0, 100_000, 0, None),
            Pubsub | WsPubsub | WsDeflate => (1, 1, 100_000, 0, None),
            Subs => (1, 1, 1_000_000, 0, None),
            Fanout => (1, 4, 100_000, 0, None),
            Fanin | LeafFanin | RouteFanin => (8, 1, 100_000, 0, None),
            Queue => (1, 4, 100_000, 0, None),
            Reqrep => (1, 1, 20_000, 0, None),
            Latency => (1, 1, 10_000, 5_000, None),
            Conns => (1000, 1, 0, 10, Some(2.0)),
            Pairs => (8, 8, 800_000, 0, None),
            JsPub => (1, 0, 5_000, 0, None),
            JsAsync | KvPut => (1, 0, 50_000, 0, None),
            KvGet => (1, 0, 20_000, 0, None),
            JsConsume | JsPush => (1, 0, 100_000, 0, None),
            JsOrdered => (1, 0, 1_000_000, 0, None),
            KvWatch => (1, 4, 100_000, 0, None),
        };
        let rate = o.rate.unwrap_or(rate);
        let duration_s =
            o.duration
                .map(|d| d.as_secs_f64())
                .or(if o.msgs.is_some() { None } else { dur });
        let plan = Plan {
            workload,
            msgs: o.msgs.unwrap_or(msgs),
            size: o.size,
            pubs: o.pubs.unwrap_or(pubs),
            subs: o.subs.unwrap_or(subs),
            subject: if workload.is_fanin() {
                "telemetry".into()
            } else {
                o.subject.clone()
            },
            multisubject: o
                .multisubject
                .unwrap_or(if workload.is_fanin() { 100 } else { 0 }),
            duration_s,
            rate,
            pin: o.pin,
            // The io_uring transport speaks no WebSocket.
            transport: if workload.websocket().is_some() {
                Transport::Std
            } else {
                o.transport.for_workload(workload == Conns)
            },
            churn: o.churn,
            window: match workload {
                JsAsync | KvPut | KvWatch => o.window.unwrap_or(DEFAULT_WINDOW),
                JsConsume => o.window.unwrap_or(DEFAULT_CONSUME_BATCH),
                _ => 1,
            },
            storage: o.storage,
            keys: o.keys,
            bucket: o.bucket.clone(),
            stream_use: o.stream_use,
        };
        if plan.pubs == 0 {
            return Err(BenchError::Config("need at least one publisher".into()));
        }
        if workload != Pub && !workload.is_jetstream() && plan.subs == 0 {
            return Err(BenchError::Config(format!(
                "{} needs at least one subscriber",
                workload.name()
            )));
        }
        if workload == Latency && (plan.size < 16 || plan.rate == 0) {
            return Err(BenchError::Config(
                "latency needs --size >= 16 (the payload carries the send time) and --rate > 0"
                    .into(),
            ));
        }
        if workload == Pairs && plan.pubs != plan.subs {
            return Err(BenchError::Config(
                "pairs needs as many --sub as --pub".into(),
            ));
        }
        if workload == Conns && plan.rate == 0 {
            return Err(BenchError::Config("conns needs --rate > 0".into()));
        }
        if workload.is_jetstream() {
            jetstream::validate(&plan)?;
        }
        if plan.pubs as u64 >= 1 << (64 - SEQ_BITS) {
            return Err(BenchError::Config("too many publishers".into()));
        }
        Ok(plan)
    }

    pub(crate) fn duration(&self) -> Option<Duration> {
        self.duration_s.map(Duration::from_secs_f64)
    }

    /// Messages each publisher sends in count mode (the remainder goes to the first ones).
    pub(crate) fn share(&self, i: usize) -> u64 {
        let n = self.pubs as u64;
        self.msgs / n + u64::from((i as u64) < self.msgs % n)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub plan: Plan,
    pub published: u64,
    pub delivered: u64,
    pub elapsed_s: f64,
    /// The headline rate: delivered msgs/s where there are receivers, else published
    /// (requests/s for reqrep).
    pub msgs_per_s: f64,
    /// Payload megabytes (10^6) per second at the headline rate.
    pub mb_per_s: f64,
    pub pub_msgs_per_s: f64,
    /// One-way delivery latency (round trip for reqrep). Under a saturating load
    /// this is queueing delay; `latency` (open loop) is the calibrated one.
    pub latency: Option<LatencySummary>,
    /// Connect + handshake time per connection (conns).
    pub connect_latency: Option<LatencySummary>,
    /// How evenly the server served the publishers: their mean latencies, lowest and highest.
    #[serde(default)]
    pub publisher_spread: Option<PublisherSpread>,
}

/// The fastest and slowest publisher by mean one-way latency. A server that favours some
/// connections (e.g. those on the subscriber's own core) shows a wide spread and a p99 made of
/// the disfavoured ones.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PublisherSpread {
    pub fastest_mean_us: f64,
    pub slowest_mean_us: f64,
    pub slowest: usize,
}

impl PublisherSpread {
    /// From each publisher's (latency sum in ns, messages); `None` with fewer than two.
    pub fn from_sums(per_pub: &[(u64, u64)]) -> Option<PublisherSpread> {
        let means: Vec<(usize, f64)> = per_pub
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(i, (sum, n))| (i, *sum as f64 / *n as f64 / 1e3))
            .collect();
        if means.len() < 2 {
            return None;
        }
        let fastest = means.iter().map(|m| m.1).fold(f64::INFINITY, f64::min);
        let (slowest, slowest_mean_us) = means
            .iter()
            .copied()
            .fold((0, f64::NEG_INFINITY), |a, m| if m.1 > a.1 { m } else { a });
        Some(PublisherSpread {
            fastest_mean_us: fastest,
            slowest_mean_us,
            slowest,
        })
    }
}

/// A clock every thread of a run shares, so send and receive times compare.
#[derive(Clone)]
pub struct RunClock {
    clock: quanta::Clock,
    start: u64,
}

impl RunClock {
    pub fn new() -> RunClock {
        let clock = quanta::Clock::new();
        let start = clock.raw();
        RunClock { clock, start }
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.delta_as_nanos(self.start, self.clock.raw())
    }
}

impl Default for RunClock {
    fn default() -> Self {
        RunClock::new()
    }
}

pub fn stamp(payload: &mut [u8], pub_id: u64, seq: u64, ts_ns: u64) {
    if let Some(b) = payload.get_mut(..8) {
        b.copy_from_slice(&((pub_id << SEQ_BITS) | (seq & SEQ_MASK)).to_le_bytes());
    }
    if let Some(b) = payload.get_mut(8..16) {
        b.copy_from_slice(&ts_ns.to_le_bytes());
    }
}

/// (publisher id, sequence) and send time, where the payload is long enough.
pub fn read_stamp(payload: &[u8]) -> (Option<(u64, u64)>, Option<u64>) {
    let word = |r: std::ops::Range<usize>| {
        payload
            .get(r)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    (
        word(0..8).map(|v| (v >> SEQ_BITS, v & SEQ_MASK)),
        word(8..16),
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Order {
    /// Every message from each publisher, in order, no gaps (plain subscribers).
    Exact,
    /// Increasing per publisher, gaps allowed (a queue member sees a subset).
    Increasing,
}

/// Per-subscriber verification state.
pub struct Checker {
    order: Order,
    next: Vec<u64>,
    /// Bitmaps of seen sequences per publisher, for exactly-once across a queue group.
    seen: Option<Vec<Vec<u64>>>,
    pub count: u64,
    pub bad: u64,
    pub first_bad: Option<String>,
    pub hist: Histogram<u64>,
    /// Per publisher: sum of one-way latencies (ns) and how many were timed.
    pub per_pub: Vec<(u64, u64)>,
    clock: RunClock,
    pub last_ns: u64,
}

impl Checker {
    pub fn new(order: Order, pubs: usize, track_seen: bool, clock: RunClock) -> Checker {
        Checker {
            order,
            next: vec![0; pubs],
            seen: track_seen.then(|| vec![Vec::new(); pubs]),
            count: 0,
            bad: 0,
            first_bad: None,
            hist: new_histogram(),
            per_pub: vec![(0, 0); pubs],
            clock,
            last_ns: 0,
        }
    }

    fn fail(&mut self, why: impl FnOnce() -> String) {
        self.bad += 1;
        if self.first_bad.is_none() {
            self.first_bad = Some(why());
        }
    }

    pub fn on_payload(&mut self, payload: &[u8]) {
        self.count += 1;
        let now = self.clock.now_ns();
        self.last_ns = now;
        let (id, ts) = read_stamp(payload);
        let latency = ts.map(|ts| now.saturating_sub(ts));
        if let Some(l) = latency {
            record(&mut self.hist, l);
        }
        let Some((pid, seq)) = id else { return };
        if let (Some(l), Some(p)) = (latency, self.per_pub.get_mut(pid as usize)) {
            p.0 += l;
            p.1 += 1;
        }
        let order = self.order;
        let Some(next) = usize::try_from(pid).ok().and_then(|p| self.next.get_mut(p)) else {
            self.fail(|| format!("message from unknown publisher {pid}"));
            return;
        };
        let expected = *next;
        *next = seq + 1;
        match order {
            Order::Exact if seq != expected => self.fail(|| {
                format!("publisher {pid}: expected seq {expected}, got {seq} (loss or reorder)")
            }),
            Order::Increasing if seq < expected => {
                self.fail(|| format!("publisher {pid}: seq {seq} after {}", expected - 1))
            }
            _ => {}
        }
        if let Some(seen) = self.seen.as_mut().and_then(|s| s.get_mut(pid as usize)) {
            let (w, b) = ((seq / 64) as usize, seq % 64);
            if seen.len() <= w {
                seen.resize(w + 1, 0);
            }
            let dup = seen[w] & (1 << b) != 0;
            seen[w] |= 1 << b;
            if dup {
                self.fail(|| format!("publisher {pid}: seq {seq} delivered twice"));
            }
        }
    }
}

/// Checks that a queue group's members together saw every message exactly once.
pub fn check_exactly_once(members: &[&Checker], sent: &[u64]) -> Result<()> {
    for (pid, &n) in sent.iter().enumerate() {
        let mut union: Vec<u64> = Vec::new();
        let mut total = 0u64;
        for m in members {
            let Some(bits) = m.seen.as_ref().and_then(|s| s.get(pid)) else {
                continue;
            };
            if union.len() < bits.len() {
                union.resize(bits.len(), 0);
            }
            for (u, b) in union.iter_mut().zip(bits) {
                if *u & b != 0 {
                    return Err(BenchError::Verify(format!(
                        "publisher {pid}: a message reached two queue members"
                    )));
                }
                *u |= b;
                total += u64::from(b.count_ones());
            }
        }
        if total != n {
            return Err(BenchError::Verify(format!(
                "publisher {pid}: queue group got {total} distinct messages of {n} sent"
            )));
        }
        let beyond = union
            .iter()
            .enumerate()
            .flat_map(|(w, bits)| {
                (0..64)
                    .filter(move |b| bits & (1u64 << b) != 0)
                    .map(move |b| w as u64 * 64 + b)
            })
            .any(|seq| seq >= n);
        if beyond {
            return Err(BenchError::Verify(format!(
                "publisher {pid}: received a sequence that was never sent"
            )));
        }
    }
    Ok(())
}

pub(crate) struct Shared {
    pub(crate) clock: RunClock,
    /// Total each receiver (or the queue group) must get; UNKNOWN until publishers finish.
    expected: AtomicU64,
    /// Messages the queue group got so far, across members.
    group_count: AtomicU64,
    pub(crate) abort: AtomicBool,
    pin: bool,
    cores: Vec<core_affinity::CoreId>,
    pub(crate) stall: Duration,
}

impl Shared {
    pub(crate) fn pin(&self, i: usize) {
        if self.pin && !self.cores.is_empty() {
            core_affinity::set_for_current(self.cores[i % self.cores.len()]);
        }
    }
}

struct PubOut {
    sent: u64,
    end_ns: u64,
}

struct PubSpec<'a> {
    id: u64,
    count: u64,
    subjects: &'a [Vec<u8>],
    size: usize,
    rate: u64,
    deadline: Option<Instant>,
    /// Write each message at once (open-loop latency) instead of batching.
    write_each: bool,
}

fn publish<L: Link>(conn: &mut L, s: &PubSpec<'_>, sh: &Shared) -> Result<PubOut> {
    let mut payload = vec![b'x'; s.size];
    let start = Instant::now();
    let start_ns = sh.clock.now_ns();
    let mut seq = 0u64;
    let interval_ns = 1_000_000_000u64.checked_div(s.rate).unwrap_or(0);
    loop {
        if s.deadline.is_none() && seq >= s.count {
            break;
        }
        if seq.is_multiple_of(256) || s.rate > 0 {
            if s.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if sh.abort.load(Ordering::Relaxed) {
                return Err(BenchError::Aborted);
            }
        }
        let mut ts = sh.clock.now_ns();
        if s.rate > 0 {
            // Open loop: the message is due at its slot whether or not we are
            // late, and its latency counts from the slot (no coordinated omission).
            let due = start_ns + seq * interval_ns;
            if ts < due {
                conn.flush()?;
                wait_until(&sh.clock, due);
            }
            ts = due;
        }
        stamp(&mut payload, s.id, seq, ts);
        let subject = &s.subjects[(seq % s.subjects.len() as u64) as usize];
        encode::pub_(conn.wbuf(), subject, None, &payload);
        seq += 1;
        if s.write_each || conn.wbuf().len() >= WRITE_BATCH {
            conn.flush()?;
        }
    }
    conn.flush()?;
    conn.ping_pong(Duration::from_secs(60))?;
    let _ = start;
    Ok(PubOut {
        sent: seq,
        end_ns: sh.clock.now_ns(),
    })
}

/// Sleeps most of the way, then yields, so a 2-core host is not burnt spinning.
fn wait_until(clock: &RunClock, due_ns: u64) {
    loop {
        let now = clock.now_ns();
        if now >= due_ns {
            return;
        }
        let left = due_ns - now;
        // Timer slack makes a sleep overshoot by ~50 us: sleep only when that is
        // safely inside the slot, and yield for the rest.
        if left > 120_000 {
            std::thread::sleep(Duration::from_nanos(left - 80_000));
        } else {
            std::thread::yield_now();
        }
    }
}

fn receive<L: Link>(conn: &mut L, mut ck: Checker, queue: bool, sh: &Shared) -> Result<Checker> {
    let mut last_progress = Instant::now();
    loop {
        let before = ck.count;
        conn.poll(|op| {
            if let Some((payload, _)) = message(&op) {
                ck.on_payload(payload);
            }
            Ok(())
        })?;
        let got = ck.count - before;
        let expected = sh.expected.load(Ordering::Acquire);
        let have = if queue {
            sh.group_count.fetch_add(got, Ordering::AcqRel) + got
        } else {
            ck.count
        };
        if got > 0 {
            last_progress = Instant::now();
        }
        if expected != UNKNOWN && have >= expected {
            return Ok(ck);
        }
        if sh.abort.load(Ordering::Relaxed) {
            return Err(BenchError::Aborted);
        }
        if expected != UNKNOWN && last_progress.elapsed() > sh.stall {
            return Err(BenchError::Verify(format!(
                "lost messages: received {have} of {expected} and nothing more for {:?}",
                sh.stall
            )));
        }
    }
}

pub(crate) fn shared(plan: &Plan, stall: Duration) -> Shared {
    Shared {
        clock: RunClock::new(),
        expected: AtomicU64::new(UNKNOWN),
        group_count: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        pin: plan.pin,
        cores: if plan.pin {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        },
        stall,
    }
}

/// Runs one workload against the server at `addr`.
pub fn run(plan: &Plan, addr: SocketAddr, stall: Duration) -> Result<RunResult> {
    run_split(plan, addr, addr, stall)
}

/// As [`run`], with the streaming shapes' subscribers on `sub_addr` (another server of the
/// same deployment: a leaf's hub) and everything else on `addr`.
pub fn run_split(
    plan: &Plan,
    addr: SocketAddr,
    sub_addr: SocketAddr,
    stall: Duration,
) -> Result<RunResult> {
    match plan
        .transport
        .for_workload(plan.workload == Workload::Conns)
    {
        Transport::Uring => run_on::<UringConn, Ring>(plan, addr, sub_addr, stall),
        Transport::Std | Transport::Auto => run_on::<Conn, Vec<Conn>>(plan, addr, sub_addr, stall),
    }
}

fn run_on<L: Link, F: Fleet>(
    plan: &Plan,
    addr: SocketAddr,
    sub_addr: SocketAddr,
    stall: Duration,
) -> Result<RunResult> {
    match plan.workload {
        Workload::Reqrep => run_reqrep::<L>(plan, addr, stall),
        Workload::Subs => run_subs(plan, addr, stall),
        Workload::Conns => run_conns::<L, F>(plan, addr, stall),
        w if w.is_jetstream() => jetstream::run::<L>(plan, addr, stall),
        _ => run_streaming::<L>(plan, addr, sub_addr, stall),
    }
}

/// Publishers on one server, subscribers on another: each publisher's probe must reach a
/// probe subscriber on the subscribers' server before the run starts, so the interest crossed
/// (in order with the subscribers' own, which came first) to wherever the publisher landed.
fn wait_interest_crossed(
    sub_addr: SocketAddr,
    pub_conns: &mut [Conn],
    ws: Option<WsMode>,
) -> Result<()> {
    const PROBE: &[u8] = b"bench-probe.crossing";
    let mut probe = Conn::dial(sub_addr, "bench-probe", ws)?;
    encode::sub(&mut probe.wbuf, PROBE, None, b"1");
    probe.ping_pong(Duration::from_secs(10))?;
    for (i, c) in pub_conns.iter_mut().enumerate() {
        let want = i.to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            encode::pub_(&mut c.wbuf, PROBE, None, want.as_bytes());
            c.flush()?;
            let mut seen = false;
            probe.poll_once(|op| {
                seen |= message(&op).is_some_and(|(p, _)| p == want.as_bytes());
                Ok(())
            })?;
            if seen {
                break;
            }
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(
                    "the subscribers' interest never reached the publishers' server".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Runs `body` on a harness thread that adopts `c` into the transport there
/// (an io_uring ring belongs to the thread that drives it); a failure stops the run.
pub(crate) fn on_thread<L: Link, T>(
    c: Conn,
    sh: &Shared,
    body: impl FnOnce(&mut L) -> Result<T>,
) -> Result<T> {
    let r = L::adopt(c).and_then(|mut l| body(&mut l));
    if r.is_err() {
        sh.abort.store(true, Ordering::Relaxed);
    }
    r
}

fn subjects_for(plan: &Plan, pub_id: usize) -> Vec<Vec<u8>> {
    if plan.workload == Workload::Pairs {
        vec![format!("{}.{pub_id}", plan.subject).into_bytes()]
    } else if plan.workload.is_fanin() {
        (0..plan.multisubject.max(1))
            .map(|k| format!("{}.{pub_id}.{k}", plan.subject).into_bytes())
            .collect()
    } else if plan.multisubject > 0 {
        (0..plan.multisubject)
            .map(|k| format!("{}.{k}", plan.subject).into_bytes())
            .collect()
    } else {
        vec![plan.subject.clone().into_bytes()]
    }
}

fn sub_subject(plan: &Plan) -> String {
    if plan.workload.is_fanin() || plan.multisubject > 0 {
        format!("{}.>", plan.subject)
    } else {
        plan.subject.clone()
    }
}

/// pub, pubsub, fanout, fanin, queue, latency.
fn run_streaming<L: Link>(
    plan: &Plan,
    addr: SocketAddr,
    sub_addr: SocketAddr,
    stall: Duration,
) -> Result<RunResult> {
    let sh = shared(plan, stall);
    let queue = plan.workload == Workload::Queue;
    let pairs = plan.workload == Workload::Pairs;
    let ws = plan.workload.websocket();
    let mut sub_conns = Vec::with_capacity(plan.subs);
    for i in 0..plan.subs {
        let subject = if pairs {
            format!("{}.{i}", plan.subject)
        } else {
            sub_subject(plan)
        };
        let mut c = Conn::dial(sub_addr, &format!("bench-sub-{i}"), ws)?;
        encode::sub(
            &mut c.wbuf,
            subject.as_bytes(),
            queue.then_some(b"bench-q".as_slice()),
            b"1",
        );
        c.ping_pong(Duration::from_secs(10))?;
        sub_conns.push(c);
    }
    let mut pub_conns = Vec::with_capacity(plan.pubs);
    for i in 0..plan.pubs {
        pub_conns.push(Conn::dial(addr, &format!("bench-pub-{i}"), ws)?);
    }
    if sub_addr != addr {
        wait_interest_crossed(sub_addr, &mut pub_conns, ws)?;
    }
    let subjects: Vec<Vec<Vec<u8>>> = (0..plan.pubs).map(|i| subjects_for(plan, i)).collect();
    let deadline = plan.duration().map(|d| Instant::now() + d);
    let write_each = plan.workload == Workload::Latency;
    let order = if queue {
        Order::Increasing
    } else {
        Order::Exact
    };

    let churner = (plan.churn > 0)
        .then(|| Conn::dial(addr, "bench-churn", ws))
        .transpose()?;
    let churn_stop = std::sync::atomic::AtomicBool::new(false);

    let start_ns = sh.clock.now_ns();
    let (pub_res, sub_res) = std::thread::scope(|s| {
        let sh = &sh;
        let churn_stop = &churn_stop;
        let churn =
            churner.map(|c| s.spawn(move || churn_subscriptions(c, plan.churn, churn_stop)));
        let subs: Vec<_> = sub_conns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let ck = Checker::new(order, plan.pubs, queue, sh.clock.clone());
                s.spawn(move || {
                    sh.pin(plan.pubs + i);
                    // Pairs count together too: each subscriber sees one publisher's share.
                    on_thread(c, sh, |l: &mut L| receive(l, ck, queue || pairs, sh))
                })
            })
            .collect();
        let pubs: Vec<_> = pub_conns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let subjects = &subjects[i];
                s.spawn(move || {
                    sh.pin(i);
                    let spec = PubSpec {
                        id: i as u64,
                        count: plan.share(i),
                        subjects,
                        size: plan.size,
                        rate: plan.rate,
                        deadline,
                        write_each,
                    };
                    on_thread(c, sh, |l: &mut L| publish(l, &spec, sh))
                })
            })
            .collect();
        let pub_res: Vec<Result<PubOut>> = pubs.into_iter().map(join).collect();
        let total: u64 = pub_res.iter().flatten().map(|p| p.sent).sum();
        sh.expected.store(total, Ordering::Release);
        let sub_res: Vec<Result<Checker>> = subs.into_iter().map(join).collect();
        churn_stop.store(true, Ordering::Relaxed);
        if let Some(h) = churn {
            // A churner that failed (server gone) shows up as the run's own failure.
            let _ = h.join();
        }
        (pub_res, sub_res)
    });
    // A subscriber cut off stops the publishers too: report why it stopped, not that they did.
    let (pubs, subs): (Vec<PubOut>, Vec<Checker>) = both(pub_res, sub_res)?;
    let sent: Vec<u64> = pubs.iter().map(|p| p.sent).collect();
    let published: u64 = sent.iter().sum();
    let pub_end = pubs.iter().map(|p| p.end_ns).max().unwrap_or(start_ns);

    let mut delivered = 0;
    let mut hist = new_histogram();
    let mut per_pub = vec![(0u64, 0u64); plan.pubs];
    for (i, ck) in subs.iter().enumerate() {
        for (total, mine) in per_pub.iter_mut().zip(&ck.per_pub) {
            total.0 += mine.0;
            total.1 += mine.1;
        }
        if let Some(why) = &ck.first_bad {
            return Err(BenchError::Verify(format!(
                "subscriber {i}: {} bad messages, first: {why}",
                ck.bad
            )));
        }
        let want = if pairs {
            sent.get(i).copied().unwrap_or(0)
        } else {
            published
        };
        if !queue && ck.count != want {
            return Err(BenchError::Verify(format!(
                "subscriber {i} got {} of {want} messages",
                ck.count
            )));
        }
        delivered += ck.count;
        // Histograms share bounds, so adding cannot fail.
        let _ = hist.add(&ck.hist);
    }
    if queue {
        check_exactly_once(&subs.iter().collect::<Vec<_>>(), &sent)?;
    }
    let end = subs
        .iter()
        .map(|c| c.last_ns)
        .max()
        .unwrap_or(pub_end)
        .max(pub_end);
    let secs = |ns: u64| (ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-9);
    let pub_rate = published as f64 / secs(pub_end);
    let (rate, elapsed) = if plan.subs == 0 || plan.workload == Workload::Pub {
        (pub_rate, secs(pub_end))
    } else {
        (delivered as f64 / secs(end), secs(end))
    };
    Ok(RunResult {
        plan: plan.clone(),
        published,
        delivered,
        elapsed_s: elapsed,
        msgs_per_s: rate,
        mb_per_s: rate * plan.size as f64 / 1e6,
        pub_msgs_per_s: pub_rate,
        latency: summarize(&hist),
        connect_latency: None,
        publisher_spread: PublisherSpread::from_sums(&per_pub),
    })
}

/// SUB/UNSUB pairs at `per_sec` on subjects nothing publishes to, until `stop`: the server's
/// subscription index changes under the streaming load (`--churn`). Paced in 10 ms slices.
fn churn_subscriptions(
    mut c: Conn,
    per_sec: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64> {
    const SLICE: Duration = Duration::from_millis(10);
    let per_slice = (per_sec / 100).max(1);
    let mut n = 0u64;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..per_slice {
            let subject = format!("churn.{}", n % 1024);
            let sid = format!("c{n}");
            encode::sub(&mut c.wbuf, subject.as_bytes(), None, sid.as_bytes());
            encode::unsub(&mut c.wbuf, sid.as_bytes(), None);
            n += 1;
        }
        // Non-verbose: the server answers nothing, so nothing needs reading.
        c.flush()?;
        next += SLICE;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(n)
}

pub(crate) fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(BenchError::Verify("a harness thread panicked".into())))
}

/// Closed-loop request/reply: each requester keeps one request outstanding;
/// the harness's own responders echo the payload back.
fn run_reqrep<L: Link>(plan: &Plan, addr: SocketAddr, stall: Duration) -> Result<RunResult> {
    let sh = shared(plan, stall);
    let stop = AtomicBool::new(false);
    let mut responders = Vec::new();
    for i in 0..plan.subs {
        let mut c = Conn::connect(addr, &format!("bench-responder-{i}"))?;
        encode::sub(
            &mut c.wbuf,
            plan.subject.as_bytes(),
            Some(b"bench-responders"),
            b"1",
        );
        c.ping_pong(Duration::from_secs(10))?;
        responders.push(c);
    }
    let mut requesters = Vec::new();
    for i in 0..plan.pubs {
        let mut c = Conn::connect(addr, &format!("bench-requester-{i}"))?;
        let inbox = format!("_INBOX.bench.{i}");
        encode::sub(&mut c.wbuf, inbox.as_bytes(), None, b"1");
        c.ping_pong(Duration::from_secs(10))?;
        requesters.push((c, inbox));
    }
    let deadline = plan.duration().map(|d| Instant::now() + d);
    let start_ns = sh.clock.now_ns();
    let (req_res, resp_res) = std::thread::scope(|s| {
        let (sh, stop) = (&sh, &stop);
        let resps: Vec<_> = responders
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                s.spawn(move || {
                    sh.pin(plan.pubs + i);
                    on_thread(c, sh, |c: &mut L| {
                        let mut out = Vec::with_capacity(WRITE_BATCH);
                        let mut served = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            c.poll(|op| {
                                if let Some((payload, Some(reply))) = message(&op) {
                                    encode::pub_(&mut out, reply, None, payload);
                                    served += 1;
                                }
                                Ok(())
                            })?;
                            if !out.is_empty() {
                                c.wbuf().extend_from_slice(&out);
                                out.clear();
                                c.flush()?;
                            }
                        }
                        Ok(served)
                    })
                })
            })
            .collect();
        let reqs: Vec<_> = requesters
            .into_iter()
            .enumerate()
            .map(|(i, (c, inbox))| {
                s.spawn(move || {
                    sh.pin(i);
                    on_thread(c, sh, |c: &mut L| {
                        request_loop(c, &inbox, i as u64, plan, deadline, sh)
                    })
                })
            })
            .collect();
        let req_res: Vec<Result<(u64, Histogram<u64>)>> = reqs.into_iter().map(join).collect();
        stop.store(true, Ordering::Relaxed);
        let resp_res: Vec<Result<u64>> = resps.into_iter().map(join).collect();
        (req_res, resp_res)
    });
    let (reqs, served): (Vec<(u64, Histogram<u64>)>, Vec<u64>) = both(req_res, resp_res)?;
    let served: u64 = served.iter().sum();
    let end_ns = sh.clock.now_ns();
    let mut hist = new_histogram();
    let mut done = 0;
    for (n, h) in &reqs {
        done += n;
        let _ = hist.add(h);
    }
    if served != done {
        return Err(BenchError::Verify(format!(
            "responders served {served} requests but requesters completed {done}"
        )));
    }
    let elapsed = (end_ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-9);
    let rate = done as f64 / elapsed;
    Ok(RunResult {
        plan: plan.clone(),
        published: done,
        delivered: done,
        elapsed_s: elapsed,
        msgs_per_s: rate,
        mb_per_s: rate * plan.size as f64 / 1e6,
        pub_msgs_per_s: rate,
        latency: summarize(&hist),
        connect_latency: None,
        publisher_spread: None,
    })
}

/// `subs`: SUB lines written in batches on one connection, then PING; done at the PONG.
fn run_subs(plan: &Plan, addr: SocketAddr, stall: Duration) -> Result<RunResult> {
    let n = plan.msgs;
    let mut c = Conn::connect(addr, "bench-subscriber")?;
    let start = Instant::now();
    let mut subject = Vec::with_capacity(64);
    for i in 0..n {
        subject.clear();
        subject.extend_from_slice(b"bench.device.");
        subject.extend_from_slice(i.to_string().as_bytes());
        subject.extend_from_slice(b".telemetry");
        encode::sub(&mut c.wbuf, &subject, None, i.to_string().as_bytes());
        if c.wbuf.len() >= WRITE_BATCH {
            c.flush()?;
        }
    }
    // A server busy indexing answers late; each million subscriptions gets a stall's time.
    let wait = stall * u32::try_from(n / 1_000_000 + 1).unwrap_or(u32::MAX);
    c.ping_pong(wait)?;
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let rate = n as f64 / elapsed;
    Ok(RunResult {
        plan: plan.clone(),
        published: n,
        delivered: n,
        elapsed_s: elapsed,
        msgs_per_s: rate,
        mb_per_s: 0.0,
        pub_msgs_per_s: rate,
        latency: None,
        connect_latency: None,
        publisher_spread: None,
    })
}

fn request_loop<L: Link>(
    c: &mut L,
    inbox: &str,
    id: u64,
    plan: &Plan,
    deadline: Option<Instant>,
    sh: &Shared,
) -> Result<(u64, Histogram<u64>)> {
    let mut hist = new_histogram();
    let mut payload = vec![b'r'; plan.size];
    let count = plan.share(id as usize);
    let mut seq = 0u64;
    while deadline.map_or(seq < count, |d| Instant::now() < d) {
        if sh.abort.load(Ordering::Relaxed) {
            return Err(BenchError::Aborted);
        }
        let t0 = sh.clock.now_ns();
        stamp(&mut payload, id, seq, t0);
        encode::pub_(
            c.wbuf(),
            plan.subject.as_bytes(),
            Some(inbox.as_bytes()),
            &payload,
        );
        c.flush()?;
        let sent_at = Instant::now();
        let mut answered = false;
        while !answered {
            let mut wrong = None;
            c.poll(|op| {
                if let Some((p, _)) = message(&op) {
                    match read_stamp(p).0 {
                        Some((pid, s)) if pid != id || s != seq => wrong = Some((pid, s)),
                        _ => answered = true,
                    }
                }
                Ok(())
            })?;
            if let Some((pid, s)) = wrong {
                return Err(BenchError::Verify(format!(
                    "requester {id} waiting for reply {seq} got {pid}/{s}"
                )));
            }
            if !answered && sent_at.elapsed() > sh.stall {
                return Err(BenchError::Verify(format!(
                    "requester {id}: no reply to request {seq} within {:?}",
                    sh.stall
                )));
            }
        }
        record(&mut hist, sh.clock.now_ns().saturating_sub(t0));
        seq += 1;
    }
    Ok((seq, hist))
}

/// Many connections each publishing at a low rate, one subscriber on all of them.
fn run_conns<L: Link, F: Fleet>(
    plan: &Plan,
    addr: SocketAddr,
    stall: Duration,
) -> Result<RunResult> {
    let sh = shared(plan, stall);
    let subject = format!("{}.>", plan.subject);
    let mut sub = Conn::connect(addr, "bench-conns-sub")?;
    encode::sub(&mut sub.wbuf, subject.as_bytes(), None, b"1");
    sub.ping_pong(Duration::from_secs(10))?;

    let mut connect_hist = new_histogram();
    let mut conns = Vec::with_capacity(plan.pubs);
    for i in 0..plan.pubs {
        let t0 = sh.clock.now_ns();
        let c = Conn::connect(addr, &format!("bench-conn-{i}"))?;
        record(&mut connect_hist, sh.clock.now_ns().saturating_sub(t0));
        conns.push(c);
    }
    // The same split for both transports, so they compare: with io_uring each
    // worker's connections share one ring and one submission per tick.
    const WORKERS: usize = 4;
    let per = conns.len().div_ceil(WORKERS).max(1);
    let mut groups: Vec<(u64, Vec<Conn>)> = Vec::new();
    let mut first = 0u64;
    while !conns.is_empty() {
        let rest = conns.split_off(per.min(conns.len()));
        let group = std::mem::replace(&mut conns, rest);
        let n = group.len() as u64;
        groups.push((first, group));
        first += n;
    }
    let deadline = plan.duration().map(|d| Instant::now() + d);
    let ticks_total = if deadline.is_some() {
        u64::MAX
    } else {
        plan.msgs.div_ceil(plan.pubs as u64).max(1)
    };
    let interval_ns = 1_000_000_000 / plan.rate;
    let start_ns = sh.clock.now_ns();
    let (pub_res, sub_res) = std::thread::scope(|s| {
        let sh = &sh;
        let ck = Checker::new(Order::Exact, plan.pubs, false, sh.clock.clone());
        let subh = s.spawn(move || on_thread(sub, sh, |l: &mut L| receive(l, ck, false, sh)));
        let workers: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(w, (first, group))| {
                s.spawn(move || -> Result<u64> {
                    sh.pin(w);
                    let subjects: Vec<Vec<u8>> = (first..first + group.len() as u64)
                        .map(|id| format!("{}.{id}", plan.subject).into_bytes())
                        .collect();
                    let r = F::adopt(group).and_then(|mut fleet| {
                        let mut payload = vec![b'c'; plan.size];
                        let mut tick = 0u64;
                        while tick < ticks_total && deadline.is_none_or(|d| Instant::now() < d) {
                            if sh.abort.load(Ordering::Relaxed) {
                                return Err(BenchError::Aborted);
                            }
                            let due = start_ns + tick * interval_ns;
                            wait_until(&sh.clock, due);
                            for (k, subj) in subjects.iter().enumerate() {
                                stamp(&mut payload, first + k as u64, tick, sh.clock.now_ns());
                                encode::pub_(fleet.wbuf(k), subj, None, &payload);
                                fleet.send(k)?;
                            }
                            fleet.submit()?;
                            tick += 1;
                        }
                        fleet.ping_all(Duration::from_secs(30))?;
                        Ok(tick * fleet.len() as u64)
                    });
                    if r.is_err() {
                        sh.abort.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        let pub_res: Vec<Result<u64>> = workers.into_iter().map(join).collect();
        let total: u64 = pub_res.iter().flatten().sum();
        sh.expected.store(total, Ordering::Release);
        (pub_res, join(subh))
    });
    let published: u64 = pub_res
        .into_iter()
        .collect::<Result<Vec<u64>>>()?
        .iter()
        .sum();
    let ck = sub_res?;
    if let Some(why) = &ck.first_bad {
        return Err(BenchError::Verify(format!(
            "subscriber: {} bad messages, first: {why}",
            ck.bad
        )));
    }
    if ck.count != published {
        return Err(BenchError::Verify(format!(
            "subscriber got {} of {published}",
            ck.count
        )));
    }
    let elapsed = (ck.last_ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-9);
    let rate = published as f64 / elapsed;
    Ok(RunResult {
        plan: plan.clone(),
        published,
        delivered: ck.count,
        elapsed_s: elapsed,
        msgs_per_s: rate,
        mb_per_s: rate * plan.size as f64 / 1e6,
        pub_msgs_per_s: rate,
        latency: summarize(&ck.hist),
        connect_latency: summarize(&connect_hist),
        publisher_spread: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_spread_names_the_slowest() {
        // Means 2 us, 10 us, (none), 4 us.
        let s = PublisherSpread::from_sums(&[(4_000, 2), (30_000, 3), (0, 0), (4_000, 1)]);
        assert_eq!(
            s,
            Some(PublisherSpread {
                fastest_mean_us: 2.0,
                slowest_mean_us: 10.0,
                slowest: 1,
            })
        );
        assert_eq!(PublisherSpread::from_sums(&[(5, 1), (0, 0)]), None);
    }

    #[test]
    fn checker_sums_latency_per_publisher() {
        let clock = RunClock::new();
        let mut ck = Checker::new(Order::Exact, 2, false, clock.clone());
        for seq in 0..3 {
            let mut p = vec![0u8; 32];
            stamp(&mut p, 1, seq, clock.now_ns());
            ck.on_payload(&p);
        }
        assert_eq!(ck.per_pub[0], (0, 0));
        assert_eq!(ck.per_pub[1].1, 3);
        assert_eq!(ck.bad, 0);
    }

    #[test]
    fn stamp_round_trip() {
        let mut p = vec![0u8; 32];
        stamp(&mut p, 7, 123_456, 999);
        assert_eq!(read_stamp(&p), (Some((7, 123_456)), Some(999)));
        let mut short = vec![0u8; 10];
        stamp(&mut short, 1, 2, 3);
        assert_eq!(read_stamp(&short), (Some((1, 2)), None));
        assert_eq!(read_stamp(b"abc"), (None, None));
    }

    #[test]
    fn checker_flags_gaps_and_reorders() {
        let clock = RunClock::new();
        let mut ck = Checker::new(Order::Exact, 2, false, clock.clone());
        let mut p = vec![0u8; 16];
        for seq in [0, 1, 2] {
            stamp(&mut p, 0, seq, 0);
            ck.on_payload(&p);
        }
        assert_eq!(ck.bad, 0);
        stamp(&mut p, 0, 4, 0);
        ck.on_payload(&p);
        assert_eq!(ck.bad, 1);
        stamp(&mut p, 5, 0, 0);
        ck.on_payload(&p);
        assert_eq!(ck.bad, 2, "unknown publisher");
        assert_eq!(ck.count, 5);

        let mut inc = Checker::new(Order::Increasing, 1, true, clock);
        for seq in [0, 3, 7] {
            stamp(&mut p, 0, seq, 0);
            inc.on_payload(&p);
        }
        assert_eq!(inc.bad, 0);
        stamp(&mut p, 0, 5, 0);
        inc.on_payload(&p);
        assert_eq!(inc.bad, 1);
    }

    #[test]
    fn exactly_once_across_members() {
        let clock = RunClock::new();
        let mut a = Checker::new(Order::Increasing, 1, true, clock.clone());
        let mut b = Checker::new(Order::Increasing, 1, true, clock);
        let mut p = vec![0u8; 8];
        for seq in 0..100u64 {
            stamp(&mut p, 0, seq, 0);
            if seq % 3 == 0 {
                a.on_payload(&p)
            } else {
                b.on_payload(&p)
            }
        }
        assert!(check_exactly_once(&[&a, &b], &[100]).is_ok());
        assert!(
            check_exactly_once(&[&a, &b], &[101]).is_err(),
            "one missing"
        );
        assert!(check_exactly_once(&[&a, &b], &[99]).is_err(), "one unknown");
        stamp(&mut p, 0, 1, 0);
        a.on_payload(&p); // seq 1 also reached a
        assert!(check_exactly_once(&[&a, &b], &[100]).is_err(), "duplicate");
    }

    #[test]
    fn plan_defaults_and_validation() {
        let o = Options::default();
        let p = Plan::new(Workload::Fanin, &o).unwrap();
        assert_eq!((p.pubs, p.subs, p.multisubject), (8, 1, 100));
        assert_eq!(p.subject, "telemetry");
        assert_eq!(p.share(0) + p.share(7) * 7, 100_000);
        let c = Plan::new(Workload::Conns, &o).unwrap();
        assert_eq!(c.duration_s, Some(2.0));
        assert_eq!(
            c.transport,
            Transport::Uring,
            "auto: a ring for many connections"
        );
        assert_eq!(p.transport, Transport::Std, "auto: std sockets otherwise");
        let forced = Options {
            transport: Transport::Uring,
            ..Options::default()
        };
        assert_eq!(
            Plan::new(Workload::Pub, &forced).unwrap().transport,
            Transport::Uring
        );
        let bad = Options {
            size: 8,
            ..Options::default()
        };
        assert!(Plan::new(Workload::Latency, &bad).is_err());
        let nosub = Options {
            subs: Some(0),
            ..Options::default()
        };
        assert!(Plan::new(Workload::Pubsub, &nosub).is_err());
        assert!(Plan::new(Workload::Pub, &nosub).is_ok());
    }
}
