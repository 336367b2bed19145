//! JetStream workloads over the raw protocol (no client library): `js-pub`, `js-async`,
//! `kv-put` and `kv-get`.
//!
//! Each run creates its stream through the JetStream API on a connection of its own
//! (`$JS.API.STREAM.CREATE.<name>`, after deleting one an aborted run left behind), measures,
//! checks the stream's state against what was acknowledged (`$JS.API.STREAM.INFO.<name>`) and
//! deletes the stream again. Every publisher (requester) has its own connection and inbox
//! `_INBOX.<run>.<publisher>.*`; request `n` carries the reply subject `<inbox><n>`, so a reply
//! is matched to its request by the subject's suffix, whatever order replies come back in.
//! Latency is request written → its reply read; throughput is replies per second.
//!
//! What is verified: every ack parses as `{"stream":"<name>","seq":N}` without `"error"`;
//! per publisher the stream sequences increase with the publish order; over the run the acked
//! sequences are exactly 1..=N (no duplicates, no gaps), and the stream then holds what was
//! acknowledged. Every direct get answers the key asked for, with the value loaded for it.

use std::borrow::Cow;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tachyon_protocol::{encode, headers, ServerOp};

use crate::conn::Conn;
use crate::error::{root_cause, BenchError, Result};
use crate::link::Link;
use crate::stats::{new_histogram, record, summarize};
use crate::workloads::{
    join, on_thread, shared, stamp, Plan, PublisherSpread, RunResult, Shared, Workload,
};

/// Name of the stream `js-pub` and `js-async` publish into.
pub const BENCH_STREAM: &str = "BENCH";
/// Acks outstanding while kv-get loads its keys (not measured).
const LOAD_WINDOW: usize = 256;
/// How long a stream create is retried while its store cannot be created yet.
const CREATE_RETRY: Duration = Duration::from_secs(2);
/// Least time a JetStream API call waits for its reply, however short the stall timeout.
const MIN_API_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    #[default]
    File,
    Memory,
}

/// What a JetStream run does with its stream. `keep` and `reuse` let a script measure reads of
/// a stream written before a restart (a cold stream): kv-get `--stream-use keep` creates and
/// loads the bucket and leaves it; a later kv-get `--stream-use reuse` (same `--keys`, `--size`
/// and `--bucket`) reads it without creating or loading anything, and leaves it too.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum StreamUse {
    /// Create it (replacing a leftover), run, delete it.
    #[default]
    Fresh,
    /// Create it and run; leave it on the server.
    Keep,
    /// Use the one on the server as it is; leave it.
    Reuse,
}

impl Storage {
    pub fn name(self) -> &'static str {
        match self {
            Storage::File => "file",
            Storage::Memory => "memory",
        }
    }
}

/// Checks the JetStream parts of a plan.
pub fn validate(plan: &Plan) -> Result<()> {
    let bad = |what: String| Err(BenchError::Config(what));
    if plan.window == 0 {
        return bad("--window must be at least 1".into());
    }
    if plan.stream_use == StreamUse::Reuse && plan.workload != Workload::KvGet {
        return bad("--stream-use reuse reads a kept bucket: kv-get only".into());
    }
    match plan.workload {
        Workload::KvPut | Workload::KvGet | Workload::KvWatch => {
            if plan.keys == 0 {
                return bad("--keys must be at least 1".into());
            }
            let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if plan.bucket.is_empty() || !plan.bucket.chars().all(ok) {
                return bad(format!(
                    "bad --bucket {:?}: letters, digits, '_' and '-' only",
                    plan.bucket
                ));
            }
        }
        _ => {
            let s = &plan.subject;
            if s.is_empty()
                || s.starts_with('$')
                || s.split('.').any(|t| t.is_empty() || t == "*" || t == ">")
                || s.contains(char::is_whitespace)
            {
                return bad(format!(
                    "a JetStream workload needs a literal --subject outside $JS/$KV, got {s:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The stream a JetStream plan works on, and the configuration it is created with.
pub fn stream_config(plan: &Plan) -> (String, Value) {
    let storage = plan.storage.name();
    match plan.workload {
        Workload::KvPut | Workload::KvGet | Workload::KvWatch => {
            let name = format!("KV_{}", plan.bucket);
            // What nats KV (`CreateKeyValue`, history 1, no TTL) asks for.
            let config = json!({
                "name": name,
                "subjects": [format!("$KV.{}.>", plan.bucket)],
                "retention": "limits",
                "max_consumers": -1,
                "max_msgs_per_subject": 1,
                "max_msgs": -1,
                "max_bytes": -1,
                "max_age": 0,
                "max_msg_size": -1,
                "storage": storage,
                "discard": "new",
                "num_replicas": 1,
                "duplicate_window": 120_000_000_000u64,
                "deny_delete": true,
                "deny_purge": false,
                "allow_rollup_hdrs": true,
                "allow_direct": true,
            });
            (name, config)
        }
        _ => {
            let config = json!({
                "name": BENCH_STREAM,
                "subjects": [plan.subject],
                "storage": storage,
                "retention": "limits",
            });
            (BENCH_STREAM.into(), config)
        }
    }
}

/// The key request `seq` of publisher `id` writes or reads: publishers interleave, so in count
/// mode the run covers keys 0, 1, 2 ... in turn.
pub fn key_of(plan: &Plan, id: usize, seq: u64) -> u64 {
    (seq * plan.pubs as u64 + id as u64) % plan.keys.max(1) as u64
}

pub fn key_subject(bucket: &str, key: u64) -> String {
    format!("$KV.{bucket}.k{key}")
}

/// The value stored under key `key`: `k<key>.` repeated to `size` bytes.
pub fn value_for(key: u64, size: usize) -> Vec<u8> {
    let unit = format!("k{key}.");
    unit.bytes().cycle().take(size).collect()
}

/// Subject, header block (if any) and payload of a delivered message.
type Parts<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

fn parts(op: &ServerOp) -> Option<Parts<'_>> {
    match op {
        ServerOp::Msg {
            subject, payload, ..
        } => Some((subject, None, payload)),
        ServerOp::HMsg {
            subject,
            message,
            header_len,
            ..
        } => Some((
            subject,
            Some(message.get(..*header_len)?),
            message.get(*header_len..)?,
        )),
        _ => None,
    }
}

fn lossy(b: &[u8]) -> Cow<'_, str> {
    const MAX: usize = 200;
    String::from_utf8_lossy(b.get(..MAX).unwrap_or(b))
}

/// The parsed header block of a reply, or why the reply is an error: a status line
/// (503 no responders, 404 not found, 408 timeout ...) or a block that does not parse.
fn header_block(block: Option<&[u8]>) -> Result<Option<headers::HeaderBlock<'_>>, String> {
    let Some(block) = block else { return Ok(None) };
    let h =
        headers::parse(block).map_err(|e| format!("bad header block {:?}: {e}", lossy(block)))?;
    match h.status {
        None => Ok(Some(h)),
        Some(headers::NO_RESPONDERS) => {
            Err("503 no responders (JetStream not enabled, or no stream on the subject?)".into())
        }
        Some(code) => Err(format!("status {code} {}", h.description.unwrap_or(""))
            .trim_end()
            .to_string()),
    }
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (code {}, err_code {})",
            self.description, self.code, self.err_code
        )
    }
}

#[derive(Deserialize)]
struct PubAck<'a> {
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    error: Option<ApiError>,
}

/// The stream sequence of a publish ack, `{"stream":"<stream>","seq":N}`, or what is wrong
/// with it (an error, another stream, a duplicate, a status reply, no JSON).
pub fn parse_ack(hdr: Option<&[u8]>, payload: &[u8], stream: &str) -> Result<u64, String> {
    header_block(hdr)?;
    let ack: PubAck = serde_json::from_slice(payload)
        .map_err(|e| format!("unparsable ack {:?}: {e}", lossy(payload)))?;
    if let Some(e) = ack.error {
        return Err(format!("publish failed: {e}"));
    }
    match (ack.stream, ack.seq) {
        (Some(s), Some(_)) if s != stream => Err(format!("ack from stream {s:?}, not {stream:?}")),
        (Some(_), Some(_)) if ack.duplicate => {
            Err(format!("ack flags a duplicate: {}", lossy(payload)))
        }
        (Some(_), Some(seq)) if seq > 0 => Ok(seq),
        _ => Err(format!("ack without stream and seq: {}", lossy(payload))),
    }
}

/// What a direct get answered: the message's subject and stream sequence, and its value.
#[derive(Debug, PartialEq, Eq)]
pub struct DirectGet<'a> {
    pub subject: &'a [u8],
    pub seq: u64,
    pub value: &'a [u8],
}

/// A `$JS.API.DIRECT.GET` reply: headers `Nats-Subject`, `Nats-Sequence` (and
/// `Nats-Stream`, `Nats-Time-Stamp`), the value as payload; `404 Message Not Found` fails.
pub fn parse_direct_get<'a>(
    hdr: Option<&'a [u8]>,
    payload: &'a [u8],
) -> Result<DirectGet<'a>, String> {
    let Some(h) = header_block(hdr)? else {
        return Err(match serde_json::from_slice::<ApiReply>(payload) {
            Ok(ApiReply { error: Some(e) }) => format!("direct get failed: {e}"),
            _ => format!("direct get reply without headers: {:?}", lossy(payload)),
        });
    };
    let subject = h
        .get(b"Nats-Subject")
        .ok_or("direct get reply without Nats-Subject")?;
    let seq = h
        .get(b"Nats-Sequence")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .ok_or("direct get reply without a valid Nats-Sequence")?;
    Ok(DirectGet {
        subject,
        seq,
        value: payload,
    })
}

#[derive(Deserialize)]
struct ApiReply {
    #[serde(default)]
    error: Option<ApiError>,
}

/// A JetStream API response as JSON, or the server's description of the error.
pub fn parse_api(hdr: Option<&[u8]>, payload: &[u8]) -> Result<Value, String> {
    header_block(hdr)?;
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("unparsable response {:?}: {e}", lossy(payload)))?;
    let r: ApiReply = serde_json::from_value(v.clone())
        .map_err(|e| format!("bad error in response {:?}: {e}", lossy(payload)))?;
    match r.error {
        Some(e) => Err(e.to_string()),
        None => Ok(v),
    }
}

/// `state.messages` and `state.last_seq` of a `$JS.API.STREAM.INFO` response.
pub fn stream_state(info: &Value) -> Option<(u64, u64)> {
    let s = info.get("state")?;
    Some((s.get("messages")?.as_u64()?, s.get("last_seq")?.as_u64()?))
}

/// A token for inbox subjects: the process id and clock keep two runs' inboxes apart.
pub(crate) fn run_token() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("tb{:x}{:x}", std::process::id(), t & 0xfffff)
}

/// Request/reply to the JetStream API on a connection of its own.
pub struct Api {
    conn: Conn,
    inbox: String,
    next: u64,
    timeout: Duration,
}

impl Api {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Api> {
        let mut conn = Conn::connect(addr, "bench-js-api")?;
        let inbox = format!("_INBOX.{}.api.", run_token());
        encode::sub(&mut conn.wbuf, format!("{inbox}*").as_bytes(), None, b"1");
        conn.ping_pong(timeout)?;
        Ok(Api {
            conn,
            inbox,
            next: 0,
            timeout: timeout.max(MIN_API_TIMEOUT),
        })
    }

    /// Sends `body` to `subject` and waits (bounded) for the reply: its JSON, or
    /// [`BenchError::JetStream`] with the server's description of the error.
    pub fn call(&mut self, subject: &str, body: &[u8]) -> Result<Value> {
        self.next += 1;
        let reply = format!("{}{}", self.inbox, self.next);
        encode::pub_(
            &mut self.conn.wbuf,
            subject.as_bytes(),
            Some(reply.as_bytes()),
            body,
        );
        self.conn.flush()?;
        let deadline = Instant::now() + self.timeout;
        let mut got = None;
        loop {
            self.conn.poll_once(|op| {
                if let Some((s, h, p)) = parts(&op) {
                    if s == reply.as_bytes() {
                        got = Some(parse_api(h, p));
                    }
                }
                Ok(())
            })?;
            if let Some(r) = got {
                return r.map_err(|e| BenchError::JetStream(format!("{subject}: {e}")));
            }
            if Instant::now() > deadline {
                return Err(BenchError::JetStream(format!(
                    "{subject}: no reply within {:?}",
                    self.timeout
                )));
            }
        }
    }

    pub fn create_stream(&mut self, name: &str, config: &Value) -> Result<Value> {
        let body = serde_json::to_vec(config).map_err(|e| BenchError::Config(e.to_string()))?;
        self.call(&format!("$JS.API.STREAM.CREATE.{name}"), &body)
    }

    pub fn delete_stream(&mut self, name: &str) -> Result<Value> {
        self.call(&format!("$JS.API.STREAM.DELETE.{name}"), b"")
    }

    /// `(messages, last_seq)` of the stream.
    pub fn stream_state(&mut self, name: &str) -> Result<(u64, u64)> {
        let subject = format!("$JS.API.STREAM.INFO.{name}");
        let info = self.call(&subject, b"")?;
        stream_state(&info).ok_or_else(|| {
            BenchError::JetStream(format!("{subject}: no state.messages/last_seq in {info}"))
        })
    }
}

/// One connection's share of a run.
struct Flow<'a> {
    id: usize,
    count: u64,
    deadline: Option<Instant>,
    window: usize,
    /// Reply subjects are this plus the request's sequence.
    inbox: &'a str,
}

struct FlowOut {
    sent: u64,
    hist: Histogram<u64>,
    lat_sum_ns: u64,
    last_ns: u64,
}

/// Keeps up to `window` requests outstanding on `c` until `count` were sent (or the deadline
/// passed) and all answered. `request(seq, reply, out)` encodes request `seq`;
/// `check(seq, headers, payload)` verifies its reply. A reply to nothing outstanding, a failed
/// check, or no reply for the stall timeout fails the flow.
fn flow<L: Link>(
    c: &mut L,
    f: &Flow<'_>,
    sh: &Shared,
    mut request: impl FnMut(u64, &[u8], &mut Vec<u8>),
    mut check: impl FnMut(u64, Option<&[u8]>, &[u8]) -> Result<(), String>,
) -> Result<FlowOut> {
    let window = f.window.max(1);
    // Slot seq % window: (seq outstanding there, when it was written).
    const FREE: u64 = u64::MAX;
    let mut slots = vec![(FREE, 0u64); window];
    let mut reply = Vec::with_capacity(f.inbox.len() + 20);
    let (mut seq, mut done, mut outstanding) = (0u64, 0u64, 0usize);
    let mut out = FlowOut {
        sent: 0,
        hist: new_histogram(),
        lat_sum_ns: 0,
        last_ns: 0,
    };
    let mut finished = false;
    let mut last_progress = Instant::now();
    loop {
        if sh.abort.load(Ordering::Relaxed) {
            return Err(BenchError::Aborted);
        }
        let mut wrote = false;
        while !finished && outstanding < window {
            if f.deadline.map_or(seq >= f.count, |d| Instant::now() >= d) {
                finished = true;
                break;
            }
            reply.clear();
            reply.extend_from_slice(f.inbox.as_bytes());
            let _ = write!(reply, "{seq}");
            let t0 = sh.clock.now_ns();
            request(seq, &reply, c.wbuf());
            slots[(seq % window as u64) as usize] = (seq, t0);
            seq += 1;
            outstanding += 1;
            wrote = true;
        }
        if wrote {
            c.flush()?;
        }
        if finished && outstanding == 0 {
            break;
        }
        let before = done;
        let mut failure: Option<String> = None;
        c.poll(|op| {
            let Some((subject, hdr, payload)) = parts(&op) else {
                return Ok(());
            };
            let Some(s) = subject
                .strip_prefix(f.inbox.as_bytes())
                .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u64>().ok())
            else {
                failure.get_or_insert_with(|| format!("message on {:?}", lossy(subject)));
                return Ok(());
            };
            let slot = &mut slots[(s % window as u64) as usize];
            if slot.0 != s {
                failure.get_or_insert_with(|| {
                    format!("a reply to request {s}, which is not outstanding (duplicate?)")
                });
                return Ok(());
            }
            slot.0 = FREE;
            let now = sh.clock.now_ns();
            let lat = now.saturating_sub(slot.1);
            record(&mut out.hist, lat);
            out.lat_sum_ns += lat;
            out.last_ns = now;
            outstanding -= 1;
            done += 1;
            if let Err(e) = check(s, hdr, payload) {
                failure.get_or_insert_with(|| format!("request {s}: {e}"));
            }
            Ok(())
        })?;
        if let Some(why) = failure {
            return Err(BenchError::Verify(format!("connection {}: {why}", f.id)));
        }
        if done > before {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > sh.stall {
            return Err(BenchError::Verify(format!(
                "connection {}: {outstanding} replies outstanding and none for {:?} \
                 ({done} of {seq} answered)",
                f.id, sh.stall
            )));
        }
    }
    out.sent = seq;
    Ok(out)
}

/// Checks one publisher's acks, `(publish seq, stream seq)` in arrival order: stream
/// sequences increase with the publish order.
pub fn check_publisher_order(id: usize, acks: &mut [(u64, u64)]) -> Result<(), String> {
    acks.sort_unstable_by_key(|a| a.0);
    match acks.windows(2).find(|w| w[1].1 <= w[0].1) {
        Some(w) => Err(format!(
            "publisher {id}: publish {} got stream seq {} after publish {} got {}",
            w[1].0, w[1].1, w[0].0, w[0].1
        )),
        None => Ok(()),
    }
}

/// Checks that the acked stream sequences of all publishers are exactly 1..=n.
pub fn check_contiguous(mut seqs: Vec<u64>) -> Result<(), String> {
    seqs.sort_unstable();
    for (i, s) in seqs.iter().enumerate() {
        let want = i as u64 + 1;
        if *s != want {
            return Err(if *s < want {
                format!("stream seq {s} acked twice")
            } else {
                format!("no ack carried stream seq {want} (next acked: {s})")
            });
        }
    }
    Ok(())
}

/// Creates the stream, runs the workload, checks and deletes the stream (also after a
/// failure, as far as the server still answers).
pub(crate) fn run<L: Link>(plan: &Plan, addr: SocketAddr, stall: Duration) -> Result<RunResult> {
    if matches!(plan.workload, Workload::JsConsume | Workload::JsPush) {
        return consume::<L>(plan, addr, stall);
    }
    if plan.workload == Workload::JsOrdered {
        return crate::replay::ordered::<L>(plan, addr, stall);
    }
    if plan.workload == Workload::KvWatch {
        return crate::replay::kv_watch::<L>(plan, addr, stall);
    }
    let (stream, config) = stream_config(plan);
    let mut api = Api::connect(addr, stall)?;
    if plan.stream_use == StreamUse::Reuse {
        return measured::<L>(plan, addr, stall, &stream, &mut api);
    }
    // A stream an aborted run left behind goes first; none to delete is the usual case.
    match api.delete_stream(&stream) {
        Ok(_) | Err(BenchError::JetStream(_)) => {}
        Err(e) => return Err(e),
    }
    create_stream(&mut api, &stream, &config)?;
    let r = measured::<L>(plan, addr, stall, &stream, &mut api);
    if plan.stream_use == StreamUse::Keep {
        return r;
    }
    let deleted = api.delete_stream(&stream);
    let r = r?;
    deleted?;
    Ok(r)
}

/// js-consume: loads `--msgs` messages into a fresh stream (not measured), then one pull
/// consumer reads them in batches of `--window` with two requests outstanding, acking every
/// message (`+ACK`, no reply). js-push: the same with a push consumer delivering to the
/// reader's inbox (no requests; no latency is recorded). Verified: every message arrives once, in stream order, with an
/// ack subject of its consumer; the consumer then reports all delivered. Latency is a batch's
/// request written → each of its messages read.
fn consume<L: Link>(plan: &Plan, addr: SocketAddr, stall: Duration) -> Result<RunResult> {
    on_fresh_stream(plan, addr, stall, |api, stream| {
        consume_measured::<L>(plan, addr, stall, stream, api)
    })
}

/// Runs `measure` on the plan's stream, created fresh for it and deleted after it (also
/// after a failure, as far as the server still answers).
pub(crate) fn on_fresh_stream<T>(
    plan: &Plan,
    addr: SocketAddr,
    stall: Duration,
    measure: impl FnOnce(&mut Api, &str) -> Result<T>,
) -> Result<T> {
    let (stream, config) = stream_config(plan);
    let mut api = Api::connect(addr, stall)?;
    fresh_stream(&mut api, &stream, &config)?;
    let r = measure(&mut api, &stream);
    let deleted = api.delete_stream(&stream);
    let r = r?;
    deleted?;
    Ok(r)
}

/// Creates the stream, deleting one an aborted run left behind first.
pub(crate) fn fresh_stream(api: &mut Api, stream: &str, config: &Value) -> Result<()> {
    match api.delete_stream(stream) {
        Ok(_) | Err(BenchError::JetStream(_)) => {}
        Err(e) => return Err(e),
    }
    create_stream(api, stream, config)
}

/// Publishes `plan.msgs` messages into the stream, checking every ack and then that the stream
/// holds those and nothing else (not measured): a replay counts on sequences 1..=msgs.
pub(crate) fn load_stream(
    plan: &Plan,
    addr: SocketAddr,
    api: &mut Api,
    sh: &Shared,
    token: &str,
    stream: &str,
) -> Result<()> {
    let mut c = Conn::connect(addr, "bench-js-load")?;
    let inbox = format!("_INBOX.{token}.load.");
    encode::sub(&mut c.wbuf, format!("{inbox}*").as_bytes(), None, b"1");
    c.ping_pong(Duration::from_secs(10))?;
    let f = Flow {
        id: usize::MAX,
        count: plan.msgs,
        deadline: None,
        window: LOAD_WINDOW,
        inbox: &inbox,
    };
    let subject = plan.subject.as_bytes();
    let mut payload = vec![b'c'; plan.size];
    flow(
        &mut c,
        &f,
        sh,
        |seq, reply, out| {
            stamp(&mut payload, 0, seq, 0);
            encode::pub_(out, subject, Some(reply), &payload);
        },
        |_, h, p| parse_ack(h, p, stream).map(drop),
    )
    .map_err(|e| BenchError::Verify(format!("loading the stream: {e}")))?;
    let held = api.stream_state(stream)?;
    if held != (plan.msgs, plan.msgs) {
        return Err(BenchError::Verify(format!(
            "stream {stream} holds (messages, last_seq) {held:?} after {} were loaded into it \
             fresh (left over from a stream of the same name?)",
            plan.msgs
        )));
    }
    Ok(())
}

/// Publishes `count` messages encoded by `request` with `window` acks outstanding, checking
/// every ack; returns how many were acknowledged.
pub(crate) fn acked_flow<L: Link>(
    c: &mut L,
    sh: &Shared,
    inbox: &str,
    count: u64,
    window: usize,
    stream: &str,
    request: impl FnMut(u64, &[u8], &mut Vec<u8>),
) -> Result<u64> {
    let f = Flow {
        id: 0,
        count,
        deadline: None,
        window,
        inbox,
    };
    let out = flow(c, &f, sh, request, |_, h, p| {
        parse_ack(h, p, stream).map(drop)
    })?;
    Ok(out.sent)
}

fn consume_measured<L: Link>(
    plan: &Plan,
    addr: SocketAddr,
    stall: Duration,
    stream: &str,
    api: &mut Api,
) -> Result<RunResult> {
    let sh = shared(plan, stall);
    let token = run_token();
    load_stream(plan, addr, api, &sh, &token, stream)?;
    let consumer = "bench";
    let push = plan.workload == Workload::JsPush;
    let mut c = Conn::connect(addr, "bench-js-consume")?;
    let inbox = format!("_INBOX.{token}.pull");
    encode::sub(&mut c.wbuf, inbox.as_bytes(), None, b"1");
    c.ping_pong(Duration::from_secs(10))?;
    // A push consumer delivers to the inbox subscribed above from the moment it exists.
    let cfg = if push {
        // nats-server's default max_ack_pending (1000) bounds what is in flight, as with
        // any push consumer a user makes.
        json!({"stream_name": stream, "config": {"durable_name": consumer, "deliver_subject": inbox, "ack_policy": "explicit"}})
    } else {
        json!({"stream_name": stream, "config": {"durable_name": consumer, "ack_policy": "explicit", "max_ack_pending": -1}})
    };
    let body = serde_json::to_vec(&cfg).map_err(|e| BenchError::Config(e.to_string()))?;
    api.call(
        &format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}"),
        &body,
    )?;
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
    let ack_prefix = format!("$JS.ACK.{stream}.{consumer}.");
    let batch = plan.window.max(1) as u64;
    let request = format!("{{\"batch\":{batch},\"expires\":5000000000}}");
    let total = plan.msgs;
    let start_ns = sh.clock.now_ns();
    let (got, hist, end_ns) =
        on_thread(c, &sh, |l: &mut L| -> Result<(u64, Histogram<u64>, u64)> {
            let mut hist = new_histogram();
            let (mut got, mut asked, mut last_ns) = (0u64, 0u64, start_ns);
            // Request times of the batches being filled, oldest first.
            let mut requests: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
            let mut in_batch = 0u64;
            let mut acks: Vec<Vec<u8>> = Vec::new();
            let mut last_progress = Instant::now();
            while got < total {
                if sh.abort.load(Ordering::Relaxed) {
                    return Err(BenchError::Aborted);
                }
                for a in acks.drain(..) {
                    encode::pub_(l.wbuf(), &a, None, b"+ACK");
                }
                while !push && requests.len() < 2 && asked < total {
                    encode::pub_(
                        l.wbuf(),
                        next.as_bytes(),
                        Some(inbox.as_bytes()),
                        request.as_bytes(),
                    );
                    requests.push_back(sh.clock.now_ns());
                    asked += batch;
                }
                l.flush()?;
                let mut failure: Option<String> = None;
                let before = got;
                l.poll(|op| {
                    let (reply, status) = match &op {
                        ServerOp::Msg { reply, .. } => (reply.as_deref(), None),
                        ServerOp::HMsg {
                            reply,
                            message,
                            header_len,
                            ..
                        } => {
                            let h = message.get(..*header_len).unwrap_or(&[]);
                            (
                                reply.as_deref(),
                                headers::parse(h).ok().and_then(|h| h.status),
                            )
                        }
                        _ => return Ok(()),
                    };
                    if let Some(code) = status {
                        if code != 100 {
                            failure.get_or_insert_with(|| format!("status {code} on a pull"));
                        }
                        return Ok(());
                    }
                    let Some(ack) = reply.filter(|r| r.starts_with(ack_prefix.as_bytes())) else {
                        failure.get_or_insert_with(|| "a delivery without its ack subject".into());
                        return Ok(());
                    };
                    let seq = ack
                        .get(ack_prefix.len()..)
                        .and_then(|t| std::str::from_utf8(t).ok())
                        .and_then(|t| t.split('.').nth(1)?.parse::<u64>().ok());
                    if seq != Some(got + 1) {
                        failure.get_or_insert_with(|| {
                            format!("stream seq {seq:?} delivered, {} expected", got + 1)
                        });
                    }
                    let now = sh.clock.now_ns();
                    if !push {
                        let t0 = requests.front().copied().unwrap_or(now);
                        record(&mut hist, now.saturating_sub(t0));
                    }
                    last_ns = now;
                    got += 1;
                    in_batch += 1;
                    if in_batch == batch {
                        in_batch = 0;
                        requests.pop_front();
                    }
                    acks.push(ack.to_vec());
                    Ok(())
                })?;
                if let Some(why) = failure {
                    return Err(BenchError::Verify(why));
                }
                if got > before {
                    last_progress = Instant::now();
                } else if last_progress.elapsed() > sh.stall {
                    return Err(BenchError::Verify(format!(
                        "{got} of {total} messages consumed, none for {:?}",
                        sh.stall
                    )));
                }
            }
            for a in acks.drain(..) {
                encode::pub_(l.wbuf(), &a, None, b"+ACK");
            }
            l.flush()?;
            l.ping_pong(Duration::from_secs(10))?;
            Ok((got, hist, last_ns))
        })?;
    let info = api.call(&format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"), b"")?;
    let delivered = info["delivered"]["stream_seq"].as_u64().unwrap_or(0);
    if delivered != total || info["num_pending"].as_u64() != Some(0) {
        return Err(BenchError::Verify(format!(
            "after the run the consumer reports {delivered} delivered, {} pending; {total} expected",
            info["num_pending"]
        )));
    }
    let elapsed = (end_ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-9);
    let rate = got as f64 / elapsed;
    Ok(RunResult {
        plan: plan.clone(),
        published: got,
        delivered: got,
        elapsed_s: elapsed,
        msgs_per_s: rate,
        mb_per_s: rate * plan.size as f64 / 1e6,
        pub_msgs_per_s: rate,
        latency: summarize(&hist),
        connect_latency: None,
        publisher_spread: PublisherSpread::from_sums(&[(0, got)]),
    })
}

/// Creates the stream, retrying for a moment when the server cannot create its store yet:
/// nats-server 2.15 now and then answers a create that follows a delete of the same name within
/// milliseconds (back-to-back runs on one server) with "error creating store for stream"
/// (err_code 10049), and takes the same create a few tens of ms later.
fn create_stream(api: &mut Api, stream: &str, config: &Value) -> Result<()> {
    const BUSY: &str = "err_code 10049)";
    let deadline = Instant::now() + CREATE_RETRY;
    loop {
        match api.create_stream(stream, config) {
            Err(BenchError::JetStream(e)) if e.ends_with(BUSY) && Instant::now() < deadline => {
                tracing::debug!("retrying the create: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r.map(drop),
        }
    }
}

struct PubRun {
    out: FlowOut,
    acks: Vec<(u64, u64)>,
}

fn measured<L: Link>(
    plan: &Plan,
    addr: SocketAddr,
    stall: Duration,
    stream: &str,
    api: &mut Api,
) -> Result<RunResult> {
    let kv = matches!(plan.workload, Workload::KvPut | Workload::KvGet);
    let get = plan.workload == Workload::KvGet;
    let sh = shared(plan, stall);
    let token = run_token();
    if get && plan.stream_use != StreamUse::Reuse {
        load_keys(plan, addr, &sh, &token, stream)?;
    }
    let mut conns = Vec::with_capacity(plan.pubs);
    for i in 0..plan.pubs {
        let mut c = Conn::connect(addr, &format!("bench-js-{i}"))?;
        let inbox = format!("_INBOX.{token}.{i}.");
        encode::sub(&mut c.wbuf, format!("{inbox}*").as_bytes(), None, b"1");
        c.ping_pong(Duration::from_secs(10))?;
        conns.push((c, inbox));
    }
    let deadline = plan.duration().map(|d| Instant::now() + d);
    let start_ns = sh.clock.now_ns();
    let results: Vec<Result<PubRun>> = std::thread::scope(|s| {
        let sh = &sh;
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, (c, inbox))| {
                s.spawn(move || {
                    sh.pin(i);
                    let f = Flow {
                        id: i,
                        count: plan.share(i),
                        deadline,
                        window: plan.window,
                        inbox: &inbox,
                    };
                    on_thread(c, sh, |l: &mut L| {
                        if get {
                            get_flow(l, &f, plan, stream, sh)
                        } else {
                            put_flow(l, &f, plan, stream, sh)
                        }
                    })
                })
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    let runs = root_cause(results)?;

    let published: u64 = runs.iter().map(|r| r.out.sent).sum();
    let mut hist = new_histogram();
    for r in &runs {
        // Histograms share bounds, so adding cannot fail.
        let _ = hist.add(&r.out.hist);
    }
    let end_ns = runs.iter().map(|r| r.out.last_ns).max().unwrap_or(start_ns);
    let per_pub: Vec<(u64, u64)> = runs
        .iter()
        .map(|r| (r.out.lat_sum_ns, r.out.sent))
        .collect();
    let (messages, last_seq) = api.stream_state(stream)?;
    if get {
        // Reads only: the stream holds the keys loaded, nothing more.
        let keys = plan.keys as u64;
        if (messages, last_seq) != (keys, keys) {
            return Err(BenchError::Verify(format!(
                "after gets the stream holds {messages} messages (last seq {last_seq}); loaded {keys}"
            )));
        }
    } else {
        let mut all = Vec::with_capacity(published as usize);
        for (i, r) in runs.into_iter().enumerate() {
            let mut acks = r.acks;
            check_publisher_order(i, &mut acks).map_err(BenchError::Verify)?;
            all.extend(acks.iter().map(|a| a.1));
        }
        check_contiguous(all).map_err(BenchError::Verify)?;
        // One message per subject in KV: as many as distinct keys written.
        let want = if kv {
            let mut written = vec![false; plan.keys];
            for k in runs_keys(plan, &per_pub) {
                written[k as usize] = true;
            }
            written.iter().filter(|w| **w).count() as u64
        } else {
            published
        };
        if (messages, last_seq) != (want, published) {
            return Err(BenchError::Verify(format!(
                "stream {stream} holds {messages} messages, last seq {last_seq}; \
                 expected {want} and {published} after {published} acks"
            )));
        }
    }
    let elapsed = (end_ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-9);
    let rate = published as f64 / elapsed;
    Ok(RunResult {
        plan: plan.clone(),
        published,
        delivered: published,
        elapsed_s: elapsed,
        msgs_per_s: rate,
        mb_per_s: rate * plan.size as f64 / 1e6,
        pub_msgs_per_s: rate,
        latency: summarize(&hist),
        connect_latency: None,
        publisher_spread: PublisherSpread::from_sums(&per_pub),
    })
}

/// Every key the publishers wrote, from how many each sent (`per_pub[i].1`).
fn runs_keys<'a>(plan: &'a Plan, per_pub: &'a [(u64, u64)]) -> impl Iterator<Item = u64> + 'a {
    per_pub
        .iter()
        .enumerate()
        .flat_map(move |(i, (_, n))| (0..*n).map(move |s| key_of(plan, i, s)))
}

/// js-pub, js-async, kv-put: publishes with a reply subject, checks each ack.
fn put_flow<L: Link>(
    c: &mut L,
    f: &Flow<'_>,
    plan: &Plan,
    stream: &str,
    sh: &Shared,
) -> Result<PubRun> {
    let kv = plan.workload == Workload::KvPut;
    let subject = plan.subject.as_bytes();
    let mut payload = vec![b'j'; plan.size];
    let mut acks = Vec::new();
    let out = flow(
        c,
        f,
        sh,
        |seq, reply, out| {
            if kv {
                let k = key_of(plan, f.id, seq);
                let value = value_for(k, plan.size);
                let subj = key_subject(&plan.bucket, k);
                encode::pub_(out, subj.as_bytes(), Some(reply), &value);
            } else {
                stamp(&mut payload, f.id as u64, seq, 0);
                encode::pub_(out, subject, Some(reply), &payload);
            }
        },
        |seq, h, p| {
            acks.push((seq, parse_ack(h, p, stream)?));
            Ok(())
        },
    )?;
    Ok(PubRun { out, acks })
}

/// kv-get: direct gets of the last message per key, each checked against the loaded value.
fn get_flow<L: Link>(
    c: &mut L,
    f: &Flow<'_>,
    plan: &Plan,
    stream: &str,
    sh: &Shared,
) -> Result<PubRun> {
    let prefix = format!("$JS.API.DIRECT.GET.{stream}.");
    let mut subj = Vec::with_capacity(prefix.len() + 32);
    let out = flow(
        c,
        f,
        sh,
        |seq, reply, out| {
            subj.clear();
            subj.extend_from_slice(prefix.as_bytes());
            subj.extend_from_slice(key_subject(&plan.bucket, key_of(plan, f.id, seq)).as_bytes());
            encode::pub_(out, &subj, Some(reply), b"");
        },
        |seq, h, p| {
            let k = key_of(plan, f.id, seq);
            let g = parse_direct_get(h, p)?;
            let want = key_subject(&plan.bucket, k);
            if g.subject != want.as_bytes() {
                return Err(format!(
                    "asked for {want}, got {}",
                    String::from_utf8_lossy(g.subject)
                ));
            }
            // Loaded in key order into a fresh stream: key k is message k + 1.
            if g.seq != k + 1 || g.value != value_for(k, plan.size).as_slice() {
                return Err(format!(
                    "{want}: seq {} and a {}-byte value {:?}, loaded as seq {} with {:?}",
                    g.seq,
                    g.value.len(),
                    lossy(g.value),
                    k + 1,
                    lossy(&value_for(k, plan.size))
                ));
            }
            Ok(())
        },
    )?;
    Ok(PubRun {
        out,
        acks: Vec::new(),
    })
}

/// kv-get's set-up: puts keys 0..keys in order (not measured), checking every ack.
fn load_keys(plan: &Plan, addr: SocketAddr, sh: &Shared, token: &str, stream: &str) -> Result<()> {
    let mut c = Conn::connect(addr, "bench-kv-load")?;
    let inbox = format!("_INBOX.{token}.load.");
    encode::sub(&mut c.wbuf, format!("{inbox}*").as_bytes(), None, b"1");
    c.ping_pong(Duration::from_secs(10))?;
    let f = Flow {
        id: usize::MAX,
        count: plan.keys as u64,
        deadline: None,
        window: LOAD_WINDOW,
        inbox: &inbox,
    };
    let mut acks = Vec::with_capacity(plan.keys);
    flow(
        &mut c,
        &f,
        sh,
        |k, reply, out| {
            let subj = key_subject(&plan.bucket, k);
            encode::pub_(out, subj.as_bytes(), Some(reply), &value_for(k, plan.size));
        },
        |k, h, p| {
            acks.push((k, parse_ack(h, p, stream)?));
            Ok(())
        },
    )
    .map_err(|e| BenchError::Verify(format!("loading the keys: {e}")))?;
    // Key k must be message k + 1: the gets check the sequence too.
    acks.sort_unstable();
    match acks.iter().find(|(k, s)| *s != k + 1) {
        Some((k, s)) => Err(BenchError::Verify(format!(
            "loading the keys: key {k} stored as seq {s}, not {}",
            k + 1
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::Options;
    use bytes::Bytes;
    use std::collections::VecDeque;

    /// A server in a box: each flush hands the PUBs written since to `respond`, whose
    /// messages the next polls deliver.
    struct Fake<R> {
        wbuf: Vec<u8>,
        queued: VecDeque<ServerOp>,
        respond: R,
    }

    type Pubs = Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>;

    impl<R: FnMut(Pubs) -> Vec<ServerOp> + Send> Link for Fake<R> {
        fn adopt(_: Conn) -> Result<Self> {
            Err(BenchError::Config("a fake adopts nothing".into()))
        }
        fn wbuf(&mut self) -> &mut Vec<u8> {
            &mut self.wbuf
        }
        fn flush(&mut self) -> Result<()> {
            let mut pubs = Vec::new();
            let mut rest = &self.wbuf[..];
            while !rest.is_empty() {
                let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                let line = std::str::from_utf8(&rest[..eol]).unwrap();
                let w: Vec<&str> = line.split(' ').collect();
                assert_eq!((w[0], w.len()), ("PUB", 4), "{line}");
                let n: usize = w[3].parse().unwrap();
                let payload = rest[eol + 2..eol + 2 + n].to_vec();
                pubs.push((w[1].into(), w[2].into(), payload));
                rest = &rest[eol + 4 + n..];
            }
            self.wbuf.clear();
            let replies = (self.respond)(pubs);
            self.queued.extend(replies);
            Ok(())
        }
        fn poll<F: FnMut(ServerOp) -> Result<()>>(&mut self, mut f: F) -> Result<usize> {
            if self.queued.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
            let n = self.queued.len();
            for op in self.queued.drain(..) {
                f(op)?;
            }
            Ok(n)
        }
        fn ping_pong(&mut self, _: Duration) -> Result<()> {
            Ok(())
        }
    }

    fn msg(subject: &[u8], payload: &[u8]) -> ServerOp {
        ServerOp::Msg {
            subject: Bytes::copy_from_slice(subject),
            sid: Bytes::from_static(b"1"),
            reply: None,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn run_flow<R: FnMut(Pubs) -> Vec<ServerOp> + Send>(
        count: u64,
        window: usize,
        stall: Duration,
        respond: R,
    ) -> (Result<FlowOut>, Vec<(u64, u64)>) {
        let plan = Plan::new(Workload::JsAsync, &Options::default()).unwrap();
        let sh = shared(&plan, stall);
        let mut link = Fake {
            wbuf: Vec::new(),
            queued: VecDeque::new(),
            respond,
        };
        let f = Flow {
            id: 0,
            count,
            deadline: None,
            window,
            inbox: "_INBOX.t.0.",
        };
        let mut acks = Vec::new();
        let r = flow(
            &mut link,
            &f,
            &sh,
            |_, reply, out| encode::pub_(out, b"bench", Some(reply), b"x"),
            |seq, h, p| {
                acks.push((seq, parse_ack(h, p, "BENCH")?));
                Ok(())
            },
        );
        (r, acks)
    }

    #[test]
    fn flow_matches_replies_by_subject_whatever_their_order() {
        let mut stream_seq = 0;
        let (r, mut acks) = run_flow(1000, 16, Duration::from_secs(5), |pubs: Pubs| {
            // Stored in publish order, answered last first.
            let mut out: Vec<ServerOp> = pubs
                .iter()
                .map(|(subject, reply, payload)| {
                    assert_eq!((&subject[..], &payload[..]), (&b"bench"[..], &b"x"[..]));
                    stream_seq += 1;
                    msg(
                        reply,
                        format!(r#"{{"stream":"BENCH","seq":{stream_seq}}}"#).as_bytes(),
                    )
                })
                .collect();
            out.reverse();
            out
        });
        let out = r.unwrap();
        assert_eq!(out.sent, 1000);
        assert_eq!(out.hist.len(), 1000);
        assert_eq!(acks.len(), 1000);
        assert!(check_publisher_order(0, &mut acks).is_ok());
        assert!(check_contiguous(acks.iter().map(|a| a.1).collect()).is_ok());
    }

    #[test]
    fn flow_fails_on_silence_duplicates_and_bad_acks() {
        let t0 = Instant::now();
        let (r, _) = run_flow(10, 4, Duration::from_millis(100), |_: Pubs| Vec::new());
        let err = r.err().unwrap().to_string();
        assert!(err.contains("4 replies outstanding and none for"), "{err}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "bounded by the stall timeout"
        );

        let (r, _) = run_flow(10, 4, Duration::from_secs(5), |pubs: Pubs| {
            let (_, reply, _) = &pubs[0];
            let ack = msg(reply, br#"{"stream":"BENCH","seq":1}"#);
            vec![ack.clone(), ack]
        });
        let err = r.err().unwrap().to_string();
        assert!(err.contains("not outstanding"), "{err}");

        let (r, _) = run_flow(10, 1, Duration::from_secs(5), |pubs: Pubs| {
            let err = br#"{"error":{"code":500,"err_code":10077,"description":"insufficient resources"}}"#;
            pubs.iter().map(|(_, reply, _)| msg(reply, err)).collect()
        });
        let err = r.err().unwrap().to_string();
        assert!(
            err.contains("request 0: publish failed: insufficient resources"),
            "{err}"
        );
    }

    #[test]
    fn acks_parse_and_fail_with_the_reason() {
        assert_eq!(
            parse_ack(None, br#"{"stream":"BENCH","seq":42}"#, "BENCH"),
            Ok(42)
        );
        assert_eq!(
            parse_ack(
                None,
                br#"{"stream":"BENCH","domain":"hub","seq":7,"duplicate":false}"#,
                "BENCH"
            ),
            Ok(7)
        );
        let err = parse_ack(
            None,
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
            "BENCH",
        )
        .unwrap_err();
        assert!(err.contains("maximum messages exceeded"), "{err}");
        assert!(err.contains("10077"), "{err}");
        assert!(parse_ack(None, br#"{"stream":"OTHER","seq":1}"#, "BENCH")
            .unwrap_err()
            .contains("OTHER"));
        assert!(parse_ack(
            None,
            br#"{"stream":"BENCH","seq":3,"duplicate":true}"#,
            "BENCH"
        )
        .unwrap_err()
        .contains("duplicate"));
        assert!(parse_ack(None, br#"{"stream":"BENCH"}"#, "BENCH").is_err());
        assert!(parse_ack(None, br#"{"stream":"BENCH","seq":0}"#, "BENCH").is_err());
        assert!(parse_ack(None, b"", "BENCH")
            .unwrap_err()
            .contains("unparsable"));
        // A no-responders status reply: nothing stores the subject.
        let err = parse_ack(Some(b"NATS/1.0 503\r\n\r\n"), b"", "BENCH").unwrap_err();
        assert!(err.contains("no responders"), "{err}");
        // Headers without a status are fine.
        assert_eq!(
            parse_ack(
                Some(b"NATS/1.0\r\nX: y\r\n\r\n"),
                br#"{"stream":"BENCH","seq":1}"#,
                "BENCH"
            ),
            Ok(1)
        );
    }

    #[test]
    fn direct_get_replies_parse() {
        let hdr = b"NATS/1.0\r\nNats-Stream: KV_B\r\nNats-Subject: $KV.B.k7\r\n\
                    Nats-Sequence: 8\r\nNats-Time-Stamp: 2024-01-01T00:00:00Z\r\n\r\n";
        let g = parse_direct_get(Some(hdr), b"k7.k7.k7").unwrap();
        assert_eq!(
            g,
            DirectGet {
                subject: b"$KV.B.k7",
                seq: 8,
                value: b"k7.k7.k7"
            }
        );
        let err =
            parse_direct_get(Some(b"NATS/1.0 404 Message Not Found\r\n\r\n"), b"").unwrap_err();
        assert_eq!(err, "status 404 Message Not Found");
        assert!(parse_direct_get(Some(b"NATS/1.0 408\r\n\r\n"), b"")
            .unwrap_err()
            .contains("408"));
        assert!(parse_direct_get(None, b"v")
            .unwrap_err()
            .contains("without headers"));
        let err = parse_direct_get(
            None,
            br#"{"error":{"code":400,"err_code":10001,"description":"bad request"}}"#,
        )
        .unwrap_err();
        assert!(err.contains("bad request"), "{err}");
        assert!(
            parse_direct_get(Some(b"NATS/1.0\r\nNats-Sequence: 1\r\n\r\n"), b"")
                .unwrap_err()
                .contains("Nats-Subject")
        );
        assert!(parse_direct_get(
            Some(b"NATS/1.0\r\nNats-Subject: a\r\nNats-Sequence: x\r\n\r\n"),
            b""
        )
        .unwrap_err()
        .contains("Nats-Sequence"));
        assert!(parse_direct_get(Some(b"HTTP/1.1\r\n\r\n"), b"").is_err());
    }

    #[test]
    fn api_replies_and_stream_state() {
        let info = parse_api(
            None,
            br#"{"type":"io.nats.jetstream.api.v1.stream_info_response","state":{"messages":5,"bytes":90,"first_seq":1,"last_seq":5}}"#,
        )
        .unwrap();
        assert_eq!(stream_state(&info), Some((5, 5)));
        assert_eq!(stream_state(&json!({"config": {}})), None);
        let err = parse_api(
            None,
            br#"{"type":"x","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "stream name already in use with a different configuration (code 400, err_code 10058)"
        );
        assert!(parse_api(Some(b"NATS/1.0 503\r\n\r\n"), b"")
            .unwrap_err()
            .contains("JetStream not enabled"));
        assert!(parse_api(None, b"not json").is_err());
    }

    #[test]
    fn ack_order_and_contiguity() {
        let mut ok = vec![(1, 5), (0, 2), (2, 9)];
        assert!(check_publisher_order(0, &mut ok).is_ok());
        let mut bad = vec![(0, 5), (1, 4)];
        assert!(check_publisher_order(3, &mut bad)
            .unwrap_err()
            .contains("publisher 3"));
        assert!(check_contiguous(vec![3, 1, 2]).is_ok());
        assert!(check_contiguous(vec![]).is_ok());
        assert!(check_contiguous(vec![1, 2, 2])
            .unwrap_err()
            .contains("twice"));
        assert!(check_contiguous(vec![1, 3]).unwrap_err().contains("seq 2"));
    }

    #[test]
    fn plans_streams_and_keys() {
        let o = Options {
            pubs: Some(2),
            keys: 3,
            bucket: "B".into(),
            storage: Storage::Memory,
            ..Options::default()
        };
        let put = Plan::new(Workload::KvPut, &o).unwrap();
        assert_eq!(put.window, 256);
        let keys: Vec<u64> = (0..3)
            .flat_map(|s| [key_of(&put, 0, s), key_of(&put, 1, s)])
            .collect();
        assert_eq!(keys, [0, 1, 2, 0, 1, 2]);
        let (name, cfg) = stream_config(&put);
        assert_eq!(name, "KV_B");
        assert_eq!(cfg["subjects"][0], "$KV.B.>");
        assert_eq!(cfg["max_msgs_per_subject"], 1);
        assert_eq!(cfg["allow_direct"], true);
        assert_eq!(cfg["discard"], "new");
        assert_eq!(cfg["storage"], "memory");
        assert_eq!(cfg["duplicate_window"], 120_000_000_000u64);
        let js = Plan::new(Workload::JsPub, &Options::default()).unwrap();
        assert_eq!((js.window, js.subs), (1, 0), "synchronous, no subscribers");
        let (name, cfg) = stream_config(&js);
        assert_eq!(name, "BENCH");
        assert_eq!(
            cfg,
            json!({"name":"BENCH","subjects":["bench"],"storage":"file","retention":"limits"})
        );
        let windowed = Options {
            window: Some(8),
            ..Options::default()
        };
        assert_eq!(Plan::new(Workload::JsAsync, &windowed).unwrap().window, 8);
        assert_eq!(Plan::new(Workload::KvGet, &windowed).unwrap().window, 1);
        let zero = Options {
            window: Some(0),
            ..Options::default()
        };
        assert!(Plan::new(Workload::JsAsync, &zero).is_err());
        let wild = Options {
            subject: "bench.>".into(),
            ..Options::default()
        };
        assert!(Plan::new(Workload::JsPub, &wild).is_err());
        let bad_bucket = Options {
            bucket: "a.b".into(),
            ..Options::default()
        };
        assert!(Plan::new(Workload::KvGet, &bad_bucket).is_err());
        assert_eq!(value_for(12, 9), b"k12.k12.k");
        assert_eq!(value_for(1, 0), b"");
        assert_eq!(Workload::parse("kv-get"), Some(Workload::KvGet));
        assert_eq!(
            serde_json::to_string(&Workload::JsAsync).unwrap(),
            "\"js-async\""
        );
    }
}
