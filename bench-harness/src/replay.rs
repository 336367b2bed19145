//! Replays through ordered push consumers, as the clients' ordered consumers and KV watchers
//! run them (ack none, flow control, idle heartbeats, in-memory consumer state):
//!
//! - `js-ordered`: one ordered consumer replays a stream of `--msgs` messages (loaded first,
//!   not measured). Throughput is messages read per second from the consumer's creation.
//! - `kv-watch`: `--sub` watchers each follow a fresh KV bucket (`$KV.<bucket>.>`, last per
//!   subject, as a watch asks) while one writer puts `--msgs` new keys with `--window` acks
//!   outstanding. Throughput is deliveries per second over all watchers, from the first put to
//!   the last delivery; latency (from 16 B payloads) is put written → each watcher's read.
//!
//! Verified: every watcher (reader) gets every message once, in stream order, with consumer
//! sequences 1, 2, 3 ... in its ack subjects (an ordered consumer's gap check); flow-control
//! requests are answered as the clients answer them.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use tachyon_protocol::{encode, headers, ServerOp};

use crate::conn::Conn;
use crate::error::{root_cause, BenchError, Result};
use crate::jetstream::{self, Api};
use crate::link::Link;
use crate::stats::{new_histogram, record, summarize};
use crate::workloads::{
    join, on_thread, read_stamp, shared, stamp, Plan, PublisherSpread, RunResult, Shared,
};

/// How often an ordered consumer sends an idle heartbeat (the clients' default).
const HEARTBEAT_NS: u64 = 5_000_000_000;

/// The config an ordered push consumer is created with (nats.go's `OrderedConsumer()`).
fn ordered_config(stream: &str, name: &str, deliver: &str, policy: &str, filter: &str) -> Vec<u8> {
    let mut config = json!({
        "name": name,
        "deliver_subject": deliver,
        "deliver_policy": policy,
        "ack_policy": "none",
        "max_deliver": 1,
        "flow_control": true,
        "idle_heartbeat": HEARTBEAT_NS,
        "mem_storage": true,
        "num_replicas": 1,
    });
    if !filter.is_empty() {
        config["filter_subject"] = json!(filter);
    }
    serde_json::to_vec(&json!({"stream_name": stream, "config": config})).unwrap_or_default()
}

/// What one reader saw.
struct Followed {
    got: u64,
    last_ns: u64,
    hist: Histogram<u64>,
}

/// Reads `total` deliveries of ordered consumer `consumer` on `l`, answering flow control,
/// checking stream and consumer sequences (both 1, 2, 3 ...).
fn follow<L: Link>(
    l: &mut L,
    sh: &Shared,
    stream: &str,
    consumer: &str,
    total: u64,
    stamped: bool,
) -> Result<Followed> {
    let ack_prefix = format!("$JS.ACK.{stream}.{consumer}.");
    let mut out = Followed {
        got: 0,
        last_ns: 0,
        hist: new_histogram(),
    };
    let mut answers: Vec<Vec<u8>> = Vec::new();
    let mut last_progress = Instant::now();
    while out.got < total {
        if sh.abort.load(Ordering::Relaxed) {
            return Err(BenchError::Aborted);
        }
        if !answers.is_empty() {
            for a in answers.drain(..) {
                encode::pub_(l.wbuf(), &a, None, b"");
            }
            l.flush()?;
        }
        let before = out.got;
        let mut failure: Option<String> = None;
        l.poll(|op| {
            let (reply, header, payload) = match &op {
                ServerOp::Msg { reply, payload, .. } => (reply.as_deref(), None, &payload[..]),
                ServerOp::HMsg {
                    reply,
                    message,
                    header_len,
                    ..
                } => (
                    reply.as_deref(),
                    message.get(..*header_len),
                    message.get(*header_len..).unwrap_or(&[]),
                ),
                _ => return Ok(()),
            };
            if let Some(status) = header.and_then(|h| headers::parse(h).ok()?.status) {
                match (status, reply) {
                    // A flow-control request: answered with an empty message.
                    (100, Some(r)) => answers.push(r.to_vec()),
                    (100, None) => {}
                    (code, _) => {
                        failure.get_or_insert_with(|| format!("status {code} on a replay"));
                    }
                }
                return Ok(());
            }
            let seqs = reply
                .and_then(|r| r.strip_prefix(ack_prefix.as_bytes()))
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| {
                    let mut it = t.split('.').skip(1);
                    Some((
                        it.next()?.parse::<u64>().ok()?,
                        it.next()?.parse::<u64>().ok()?,
                    ))
                });
            let want = out.got + 1;
            if seqs != Some((want, want)) {
                failure.get_or_insert_with(|| {
                    format!("(stream, consumer) seq {seqs:?} delivered, {want} expected")
                });
            }
            let now = sh.clock.now_ns();
            if let (true, (_, Some(sent))) = (stamped, read_stamp(payload)) {
                record(&mut out.hist, now.saturating_sub(sent));
            }
            out.last_ns = now;
            out.got += 1;
            Ok(())
        })?;
        if let Some(why) = failure {
            return Err(BenchError::Verify(format!("consumer {consumer}: {why}")));
        }
        if out.got > before {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > sh.stall {
            return Err(BenchError::Verify(format!(
                "consumer {consumer}: {} of {total} messages, none for {:?}",
                out.got, sh.stall
            )));
        }
    }
    Ok(out)
}

/// A reader's connection, subscribed to its deliver subject.
fn reader(addr: SocketAddr, deliver: &str) -> Result<Conn> {
    let mut c = Conn::connect(addr, "bench-js-replay")?;
    encode::sub(&mut c.wbuf, deliver.as_bytes(), None, b"1");
    c.ping_pong(Duration::from_secs(10))?;
    Ok(c)
}

fn result(
    plan: &Plan,
    published: u64,
    delivered: u64,
    elapsed_ns: u64,
    hist: &Histogram<u64>,
) -> RunResult {
    let elapsed = (elapsed_ns as f64 / 1e9).max(1e-9);
    let rate = delivered as f64 / elapsed;
    RunResult {
        plan: plan.clone(),
        published,
        delivered,
        elapsed_s: elapsed,
        msgs_per_s: rate,
        mb_per_s: rate * plan.size as f64 / 1e6,
        pub_msgs_per_s: published as f64 / elapsed,
        latency: summarize(hist),
        connect_latency: None,
        publisher_spread: PublisherSpread::from_sums(&[(0, published)]),
    }
}

/// js-ordered: loads the stream, then replays it through one ordered consumer.
pub(crate) fn ordered<L: Link>(
    plan: &Plan,
    addr: SocketAddr,
    stall: Duration,
) -> Result<RunResult> {
    jetstream::on_fresh_stream(plan, addr, stall, |api, stream| {
        let sh = shared(plan, stall);
        let token = jetstream::run_token();
        jetstream::load_stream(plan, addr, api, &sh, &token, stream)?;
        let deliver = format!("_INBOX.{token}.ordered");
        let c = reader(addr, &deliver)?;
        let name = format!("ord{token}");
        let start_ns = sh.clock.now_ns();
        api.call(
            &format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"),
            &ordered_config(stream, &name, &deliver, "all", ""),
        )?;
        let f = on_thread(c, &sh, |l: &mut L| {
            follow(l, &sh, stream, &name, plan.msgs, false)
        })?;
        Ok(result(
            plan,
            f.got,
            f.got,
            f.last_ns.saturating_sub(start_ns),
            &f.hist,
        ))
    })
}

/// kv-watch: watchers on a fresh bucket, one writer putting new keys.
pub(crate) fn kv_watch<L: Link>(
    plan: &Plan,
    addr: SocketAddr,
    stall: Duration,
) -> Result<RunResult> {
    jetstream::on_fresh_stream(plan, addr, stall, |api, stream| {
        watch_measured::<L>(plan, addr, stall, stream, api)
    })
}

fn watch_measured<L: Link>(
    plan: &Plan,
    addr: SocketAddr,
    stall: Duration,
    stream: &str,
    api: &mut Api,
) -> Result<RunResult> {
    let sh = shared(plan, stall);
    let token = jetstream::run_token();
    let watchers = plan.subs.max(1);
    let filter = format!("$KV.{}.>", plan.bucket);
    let mut readers = Vec::with_capacity(watchers);
    for i in 0..watchers {
        let deliver = format!("_INBOX.{token}.watch.{i}");
        let c = reader(addr, &deliver)?;
        let name = format!("w{i}{token}");
        api.call(
            &format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"),
            &ordered_config(stream, &name, &deliver, "last_per_subject", &filter),
        )?;
        readers.push((c, name));
    }
    let mut writer = Conn::connect(addr, "bench-kv-writer")?;
    let inbox = format!("_INBOX.{token}.put.");
    encode::sub(&mut writer.wbuf, format!("{inbox}*").as_bytes(), None, b"1");
    writer.ping_pong(Duration::from_secs(10))?;
    let ready = Barrier::new(watchers + 1);
    let start_ns = sh.clock.now_ns();
    let (put, follows) = std::thread::scope(|s| {
        let (sh, ready) = (&sh, &ready);
        let handles: Vec<_> = readers
            .into_iter()
            .enumerate()
            .map(|(i, (c, name))| {
                s.spawn(move || {
                    sh.pin(i + 1);
                    ready.wait();
                    on_thread(c, sh, |l: &mut L| {
                        follow(l, sh, stream, &name, plan.msgs, true)
                    })
                })
            })
            .collect();
        ready.wait();
        sh.pin(0);
        let put = on_thread(writer, sh, |l: &mut L| {
            let mut payload = vec![b'v'; plan.size];
            let bucket = plan.bucket.as_bytes();
            let mut key = Vec::with_capacity(bucket.len() + 24);
            jetstream::acked_flow(
                l,
                sh,
                &inbox,
                plan.msgs,
                plan.window,
                stream,
                |seq, reply, out| {
                    key.clear();
                    key.extend_from_slice(b"$KV.");
                    key.extend_from_slice(bucket);
                    key.extend_from_slice(format!(".k{seq}").as_bytes());
                    stamp(&mut payload, 0, seq, sh.clock.now_ns());
                    encode::pub_(out, &key, Some(reply), &payload);
                },
            )
        });
        let follows: Vec<Result<Followed>> = handles.into_iter().map(join).collect();
        (put, follows)
    });
    let published = put?;
    let follows = root_cause(follows)?;
    let delivered: u64 = follows.iter().map(|f| f.got).sum();
    let end_ns = follows.iter().map(|f| f.last_ns).max().unwrap_or(start_ns);
    let mut hist = new_histogram();
    for f in &follows {
        let _ = hist.add(&f.hist);
    }
    if delivered != published * watchers as u64 {
        return Err(BenchError::Verify(format!(
            "{delivered} deliveries to {watchers} watchers of {published} puts"
        )));
    }
    Ok(result(
        plan,
        published,
        delivered,
        end_ns.saturating_sub(start_ns),
        &hist,
    ))
}
