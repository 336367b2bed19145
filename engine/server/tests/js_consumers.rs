//! JetStream consumers with the official Rust client (async-nats), end to end over TCP: pull
//! consumers (fetch, batch, expiry, acks of every kind, redelivery, max_ack_pending), push
//! consumers on a deliver subject, ephemerals, consumer management, and durable consumers
//! across a restart. Tachyon runs with more shards than the machine has cores, so consumers
//! (on their stream's shard) deliver to clients on other shards.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use common::{Server, TempDir};
use futures::StreamExt;

const SHARDS: usize = 3;

fn js_server(dir: &TempDir) -> Server {
    let sd = dir.0.to_string_lossy().into_owned();
    Server::under_test(SHARDS, &["-js", "-sd", &sd])
}

async fn connect(s: &Server) -> (async_nats::Client, jetstream::Context) {
    let nc = async_nats::connect(&s.url).await.expect("connect");
    (nc.clone(), jetstream::new(nc))
}

async fn stream_with(
    js: &jetstream::Context,
    name: &str,
    subjects: &[&str],
    n: usize,
) -> stream::Stream {
    let s = js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("stream");
    for i in 0..n {
        let subject = subjects[i % subjects.len()]
            .replace('*', "x")
            .replace('>', "y");
        stored(js, subject, format!("m{i}").into()).await;
    }
    s
}

/// A stream on one subject filter with the given retention.
async fn retained(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
    retention: stream::RetentionPolicy,
) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        retention,
        ..Default::default()
    })
    .await
    .expect("stream")
}

/// The next item of a message stream, within 5 s, not an error.
async fn next_in_time<T, E: std::fmt::Debug>(
    s: &mut (impl futures::Stream<Item = Result<T, E>> + Unpin),
) -> T {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("in time")
        .expect("message")
        .expect("ok")
}

/// Publishes and waits for the stream's ack.
async fn stored(js: &jetstream::Context, subject: impl ToString, body: bytes::Bytes) {
    js.publish(subject.to_string(), body)
        .await
        .expect("publish")
        .await
        .expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_consumers_fetch_ack_and_report() {
    let dir = TempDir::new("jsc-pull");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let st = stream_with(&js, "ORDERS", &["orders.*"], 10).await;
    let c: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("worker".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut got = Vec::new();
    let mut msgs = c.fetch().max_messages(4).messages().await.expect("fetch");
    while let Some(m) = msgs.next().await {
        let m = m.expect("message");
        assert_eq!(m.subject.as_str(), "orders.x", "shown with its own subject");
        let info = m.info().expect("ack subject");
        assert_eq!(info.stream, "ORDERS");
        assert_eq!(info.consumer, "worker");
        got.push((info.stream_sequence, info.consumer_sequence, info.pending));
        m.ack().await.expect("ack");
    }
    assert_eq!(got, vec![(1, 1, 9), (2, 2, 8), (3, 3, 7), (4, 4, 6)]);
    // A batch bigger than what is left ends with what there is (no_wait).
    let mut rest = 0;
    let mut msgs = c.fetch().max_messages(100).messages().await.expect("fetch");
    while let Some(m) = msgs.next().await {
        m.expect("message").double_ack().await.expect("double ack");
        rest += 1;
    }
    assert_eq!(rest, 6);
    let mut c = c;
    let info = c.info().await.expect("info").clone();
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.delivered.stream_sequence, 10);
    assert_eq!(info.ack_floor.stream_sequence, 10);
    let mut st = st;
    assert_eq!(
        st.info().await.expect("stream info").state.consumer_count,
        1
    );
    // Names and list.
    let names: Vec<String> = st
        .consumer_names()
        .map(|n| n.expect("name"))
        .collect()
        .await;
    assert_eq!(names, vec!["worker".to_string()]);
    st.delete_consumer("worker").await.expect("delete");
    assert!(st.consumer_info("worker").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_and_nakked_messages_come_back() {
    let dir = TempDir::new("jsc-redeliver");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let st = stream_with(&js, "JOBS", &["jobs"], 3).await;
    let c: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("w".into()),
            ack_wait: Duration::from_millis(600),
            max_deliver: 3,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let fetch = |n: usize| {
        let c = c.clone();
        async move {
            let mut out = Vec::new();
            let mut msgs = c
                .fetch()
                .max_messages(n)
                .expires(Duration::from_millis(1500))
                .messages()
                .await
                .expect("fetch");
            while let Some(m) = msgs.next().await {
                out.push(m.expect("message"));
            }
            out
        }
    };
    let first = fetch(3).await;
    assert_eq!(first.len(), 3);
    // 1 acked, 2 nakked (back at once), 3 left to time out.
    first[0].ack().await.expect("ack");
    first[1].ack_with(AckKind::Nak(None)).await.expect("nak");
    let again = fetch(1).await;
    assert_eq!(again.len(), 1);
    let i = again[0].info().expect("info");
    assert_eq!((i.stream_sequence, i.delivered), (2, 2));
    again[0].ack_with(AckKind::Term).await.expect("term");
    // 3 comes back after ack_wait, counted as a second delivery.
    let late = fetch(1).await;
    assert_eq!(late.len(), 1);
    let i = late[0].info().expect("info");
    assert_eq!((i.stream_sequence, i.delivered), (3, 2));
    late[0].ack().await.expect("ack");
    let mut c = c;
    let info = c.info().await.expect("info").clone();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ack_pending_holds_new_messages_back() {
    let dir = TempDir::new("jsc-map");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let st = stream_with(&js, "Q", &["q"], 5).await;
    let c: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("w".into()),
            max_ack_pending: 2,
            ..Default::default()
        })
        .await
        .expect("consumer");
    // Two go out; the request then waits (held back, not at the end) until it expires.
    let mut msgs = c
        .fetch()
        .max_messages(5)
        .expires(Duration::from_millis(800))
        .messages()
        .await
        .expect("fetch");
    let mut n = 0;
    let mut held = Vec::new();
    while let Some(m) = msgs.next().await {
        held.push(m.expect("message"));
        n += 1;
    }
    assert_eq!(n, 2, "only max_ack_pending messages are out");
    for m in held {
        m.ack().await.expect("ack");
    }
    let mut msgs = c
        .fetch()
        .max_messages(5)
        .expires(Duration::from_millis(800))
        .messages()
        .await
        .expect("fetch");
    let mut n = 0;
    while let Some(m) = msgs.next().await {
        m.expect("message").ack().await.expect("ack");
        n += 1;
    }
    // Acked as they came: all three that were left.
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumers_deliver_to_their_subject_with_filters() {
    let dir = TempDir::new("jsc-push");
    let s = js_server(&dir);
    let (nc, js) = connect(&s).await;
    let st = stream_with(&js, "EV", &["ev.a", "ev.b"], 6).await;
    let mut sub = nc.subscribe("deliver.here").await.expect("subscribe");
    nc.flush().await.expect("flush");
    let _c: consumer::PushConsumer = st
        .create_consumer(consumer::push::Config {
            durable_name: Some("p".into()),
            deliver_subject: "deliver.here".into(),
            filter_subject: "ev.b".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut seqs = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(m.subject.as_str(), "ev.b");
        let reply = m.reply.clone().expect("ack subject");
        assert!(reply.starts_with("$JS.ACK.EV.p."), "{reply}");
        seqs.push(reply.split('.').nth(5).unwrap_or("").to_string());
        nc.publish(reply, "+ACK".into()).await.expect("ack");
    }
    assert_eq!(seqs, vec!["2", "4", "6"]);
    // New messages follow.
    stored(&js, "ev.b", "later".into()).await;
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(&m.payload[..], b"later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_consumers_survive_a_restart() {
    let dir = TempDir::new("jsc-restart");
    let mut s = js_server(&dir);
    {
        let (_nc, js) = connect(&s).await;
        let st = stream_with(&js, "KEEP", &["keep"], 6).await;
        let c: consumer::PullConsumer = st
            .create_consumer(consumer::pull::Config {
                durable_name: Some("d".into()),
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut msgs = c.fetch().max_messages(4).messages().await.expect("fetch");
        while let Some(m) = msgs.next().await {
            m.expect("message").double_ack().await.expect("ack");
        }
        // Saved within about a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    s.restart();
    let (_nc, js) = connect(&s).await;
    let st = js.get_stream("KEEP").await.expect("stream");
    let c: consumer::PullConsumer = st.get_consumer("d").await.expect("consumer back");
    let mut msgs = c.fetch().max_messages(10).messages().await.expect("fetch");
    let mut seqs = Vec::new();
    while let Some(m) = msgs.next().await {
        let m = m.expect("message");
        seqs.push(m.info().expect("info").stream_sequence);
        m.ack().await.expect("ack");
    }
    assert_eq!(
        seqs,
        vec![5, 6],
        "acknowledged messages are not delivered again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_errors_are_nats_servers() {
    let dir = TempDir::new("jsc-errors");
    let s = js_server(&dir);
    let (nc, js) = connect(&s).await;
    let _st = stream_with(&js, "E", &["e"], 1).await;
    // No stream.
    let r = nc
        .request("$JS.API.CONSUMER.INFO.NOPE.x", "".into())
        .await
        .expect("reply");
    let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("json");
    assert_eq!(v["error"]["err_code"], 10059, "{v}");
    // No consumer.
    let r = nc
        .request("$JS.API.CONSUMER.INFO.E.nope", "".into())
        .await
        .expect("reply");
    let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("json");
    assert_eq!(v["error"]["err_code"], 10014, "{v}");
    // A fetch on a consumer that does not exist: nobody answers.
    let r = nc
        .request("$JS.API.CONSUMER.MSG.NEXT.E.nope", "1".into())
        .await;
    assert!(r.is_err());
}

/// KV through consumers as async-nats drives them (ordered push consumers with flow control
/// and heartbeats): keys, history, and a watch that sees the current values then updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_keys_history_and_watch() {
    use async_nats::jetstream::kv;
    let dir = TempDir::new("jsc-kv");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let b = js
        .create_key_value(kv::Config {
            bucket: "cfg".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .expect("bucket");
    for (k, v) in [("a", "1"), ("b", "1"), ("a", "2"), ("c", "1")] {
        b.put(k, v.into()).await.expect("put");
    }
    b.delete("c").await.expect("delete");
    let mut keys: Vec<String> = b
        .keys()
        .await
        .expect("keys")
        .map(|k| k.expect("key"))
        .collect()
        .await;
    keys.sort();
    assert_eq!(keys, vec!["a".to_string(), "b".to_string()]);
    let hist: Vec<(u64, String)> = b
        .history("a")
        .await
        .expect("history")
        .map(|e| {
            let e = e.expect("entry");
            (e.revision, String::from_utf8_lossy(&e.value).into_owned())
        })
        .collect()
        .await;
    assert_eq!(hist, vec![(1, "1".to_string()), (3, "2".to_string())]);
    let mut w = b.watch_with_history("a").await.expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("in time")
        .expect("entry")
        .expect("ok");
    assert_eq!((first.revision, &first.value[..]), (3, &b"2"[..]));
    b.put("a", "3".into()).await.expect("put");
    let next = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("in time")
        .expect("entry")
        .expect("ok");
    assert_eq!((next.revision, &next.value[..]), (6, &b"3"[..]));
}

/// Workqueue streams drop what was acknowledged (or terminated); interest streams keep a
/// message only while a consumer that wants it has not settled it, and nothing nobody wants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workqueue_and_interest_retention() {
    let dir = TempDir::new("jsc-retention");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let mut wq = retained(&js, "WQ", "wq.*", stream::RetentionPolicy::WorkQueue).await;
    for i in 0..3 {
        stored(&js, format!("wq.{i}"), "job".into()).await;
    }
    let c: consumer::PullConsumer = wq
        .create_consumer(consumer::pull::Config {
            durable_name: Some("w".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut msgs = c.fetch().max_messages(3).messages().await.expect("fetch");
    let mut got = Vec::new();
    while let Some(m) = msgs.next().await {
        got.push(m.expect("message"));
    }
    assert_eq!(got.len(), 3);
    got[0].double_ack().await.expect("ack");
    got[1].double_ack_with(AckKind::Term).await.expect("term");
    let st = wq.info().await.expect("info").state.clone();
    assert_eq!((st.messages, st.first_sequence), (1, 3));

    let mut ip = retained(&js, "IP", "ip.*", stream::RetentionPolicy::Interest).await;
    let ack = js
        .publish("ip.a", "nobody".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!(ack.sequence, 1);
    assert_eq!(ip.info().await.expect("info").state.messages, 0);
    let a: consumer::PullConsumer = ip
        .create_consumer(consumer::pull::Config {
            durable_name: Some("a".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let b: consumer::PullConsumer = ip
        .create_consumer(consumer::pull::Config {
            durable_name: Some("b".into()),
            filter_subject: "ip.b".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    for subj in ["ip.a", "ip.b"] {
        stored(&js, subj, "x".into()).await;
    }
    // `a` settles both; ip.b stays until `b` does too.
    let mut msgs = a.fetch().max_messages(2).messages().await.expect("fetch");
    while let Some(m) = msgs.next().await {
        m.expect("message").double_ack().await.expect("ack");
    }
    let st = ip.info().await.expect("info").state.clone();
    assert_eq!((st.messages, st.first_sequence), (1, 3));
    let mut msgs = b.fetch().max_messages(2).messages().await.expect("fetch");
    while let Some(m) = msgs.next().await {
        m.expect("message").double_ack().await.expect("ack");
    }
    assert_eq!(ip.info().await.expect("info").state.messages, 0);
}

/// A graceful stop saves consumer state: acks just before SIGTERM are not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_state_is_saved_at_shutdown() {
    let dir = TempDir::new("jsc-term");
    let mut s = js_server(&dir);
    {
        let (_nc, js) = connect(&s).await;
        let st = stream_with(&js, "T", &["t"], 5).await;
        let c: consumer::PullConsumer = st
            .create_consumer(consumer::pull::Config {
                durable_name: Some("d".into()),
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut msgs = c.fetch().max_messages(3).messages().await.expect("fetch");
        while let Some(m) = msgs.next().await {
            m.expect("message").double_ack().await.expect("ack");
        }
    }
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    let rc = unsafe { libc::kill(s.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    assert!(
        s.wait_exit(Duration::from_secs(10)).is_some(),
        "stops on SIGTERM"
    );
    s.restart();
    let (_nc, js) = connect(&s).await;
    let c: consumer::PullConsumer = js
        .get_stream("T")
        .await
        .expect("stream")
        .get_consumer("d")
        .await
        .expect("consumer");
    let mut msgs = c.fetch().max_messages(10).messages().await.expect("fetch");
    let mut seqs = Vec::new();
    while let Some(m) = msgs.next().await {
        seqs.push(m.expect("message").info().expect("info").stream_sequence);
    }
    assert_eq!(seqs, vec![4, 5]);
}

/// A worker consumes with explicit acks while the server is SIGKILLed and restarted: no
/// message is lost, and a message comes back after its ack was confirmed only when the crash
/// came within the consumer state's save interval after that ack (ARCHITECTURE.md: at most
/// about a second of acks is redelivered after a crash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_stay_acked_across_kills_within_the_save_window() {
    use std::collections::BTreeMap;
    use std::time::Instant;
    const MSGS: u64 = 600;
    /// The save interval (1 s) plus scheduling slack on a loaded 2-core machine.
    const SAVE_WINDOW: Duration = Duration::from_millis(2500);
    let dir = TempDir::new("jsc-crash");
    let mut s = js_server(&dir);
    {
        let (_nc, js) = connect(&s).await;
        let st = stream_with(&js, "CR", &["cr"], MSGS as usize).await;
        st.create_consumer(consumer::pull::Config {
            durable_name: Some("w".into()),
            ack_wait: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .expect("consumer");
    }
    let mut acked_at: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut delivered: BTreeMap<u64, u32> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut kills: Vec<Instant> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for cycle in 0..5 {
        let (_nc, js) = connect(&s).await;
        let c: consumer::PullConsumer = js
            .get_stream("CR")
            .await
            .expect("stream")
            .get_consumer("w")
            .await
            .expect("consumer");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Longer than the save window, so early acks of a cycle must survive its kill.
        let run_for = Duration::from_millis(3000 + seed % 700);
        let last_cycle = cycle == 4;
        let started = Instant::now();
        let mut empty = 0;
        while (last_cycle && empty < 2) || (!last_cycle && started.elapsed() < run_for) {
            // About 50 messages a second, so every cycle has work until its kill.
            if !last_cycle {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut msgs = match c
                .fetch()
                .max_messages(if last_cycle { 100 } else { 5 })
                .expires(Duration::from_millis(300))
                .messages()
                .await
            {
                Ok(m) => m,
                Err(_) => break,
            };
            let mut n = 0;
            while let Some(m) = msgs.next().await {
                let Ok(m) = m else { break };
                let seq = m.info().expect("info").stream_sequence;
                n += 1;
                *delivered.entry(seq).or_default() += 1;
                if let Some(at) = acked_at.get(&seq) {
                    // Delivered again after a confirmed ack: a crash must have come soon after.
                    let covered = kills
                        .iter()
                        .any(|k| *k >= *at && k.duration_since(*at) <= SAVE_WINDOW);
                    if !covered {
                        violations.push(seq);
                    }
                }
                if m.double_ack().await.is_ok() {
                    acked_at.insert(seq, Instant::now());
                }
            }
            empty = if n == 0 { empty + 1 } else { 0 };
        }
        if !last_cycle {
            kills.push(Instant::now());
            s.restart();
        }
    }
    let missing: Vec<u64> = (1..=MSGS).filter(|q| !acked_at.contains_key(q)).collect();
    assert!(missing.is_empty(), "never acknowledged: {missing:?}");
    assert!(
        violations.is_empty(),
        "delivered again long after their ack was confirmed: {violations:?}"
    );
}

/// A push consumer with a deliver group: members subscribed on different connections (and so
/// shards) share the messages, each message reaching exactly one member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_groups_give_each_message_to_one_member() {
    let dir = TempDir::new("jsc-group");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let st = stream_with(&js, "G", &["g"], 0).await;
    let mut members = Vec::new();
    for _ in 0..4 {
        let nc = async_nats::connect(&s.url).await.expect("connect");
        let sub = nc
            .queue_subscribe("grp.deliver", "workers".into())
            .await
            .expect("subscribe");
        nc.flush().await.expect("flush");
        members.push((nc, sub));
    }
    st.create_consumer(consumer::push::Config {
        durable_name: Some("g".into()),
        deliver_subject: "grp.deliver".into(),
        deliver_group: Some("workers".into()),
        ack_policy: consumer::AckPolicy::None,
        ..Default::default()
    })
    .await
    .expect("consumer");
    const N: usize = 200;
    for i in 0..N {
        stored(&js, "g", format!("{i}").into()).await;
    }
    let mut seen = Vec::new();
    for (_, sub) in members.iter_mut() {
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(700), sub.next()).await {
            seen.push(
                String::from_utf8_lossy(&m.payload)
                    .parse::<usize>()
                    .unwrap_or(usize::MAX),
            );
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..N).collect::<Vec<_>>(),
        "each message to exactly one member"
    );
}

/// An ordered consumer (async-nats) reads on across a server restart: it recreates itself from
/// the next stream sequence, and every message arrives once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_consumers_read_on_across_a_restart() {
    let dir = TempDir::new("jsc-ordered");
    let mut s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let st = stream_with(&js, "O", &["o"], 50).await;
    let c: consumer::OrderedPushConsumer = st
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: "ordered.deliver".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut msgs = c.messages().await.expect("messages");
    let mut seqs = Vec::new();
    while seqs.len() < 50 {
        let m = next_in_time(&mut msgs).await;
        seqs.push(m.info().expect("info").stream_sequence);
    }
    s.restart();
    // The client reconnects by itself; publish more once it has.
    let js2 = loop {
        match async_nats::connect(&s.url).await {
            Ok(nc) => break jetstream::new(nc),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    for i in 0..20 {
        stored(&js2, "o", format!("after{i}").into()).await;
    }
    while seqs.len() < 70 {
        let m = tokio::time::timeout(Duration::from_secs(20), msgs.next())
            .await
            .expect("in time")
            .expect("message");
        if let Ok(m) = m {
            seqs.push(m.info().expect("info").stream_sequence);
        }
    }
    assert_eq!(seqs, (1..=70).collect::<Vec<u64>>());
}

/// `replay_policy: original` hands messages out with the gaps they were stored with, until it
/// has caught up with what the stream held when it was created; later messages come at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_original_keeps_the_stored_spacing() {
    use std::time::Instant;
    let dir = TempDir::new("jsc-replay");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let st = stream_with(&js, "RP", &["rp"], 0).await;
    for (i, gap) in [(0, 0u64), (1, 400), (2, 250)] {
        tokio::time::sleep(Duration::from_millis(gap)).await;
        stored(&js, "rp", format!("{i}").into()).await;
    }
    let c: consumer::PullConsumer = st
        .create_consumer(consumer::pull::Config {
            durable_name: Some("r".into()),
            replay_policy: consumer::ReplayPolicy::Original,
            ..Default::default()
        })
        .await
        .expect("consumer");
    assert_eq!(
        c.cached_info().config.replay_policy,
        consumer::ReplayPolicy::Original
    );
    let mut at = Vec::new();
    let mut msgs = c
        .fetch()
        .max_messages(3)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .expect("fetch");
    while let Some(m) = msgs.next().await {
        let m = m.expect("message");
        at.push((Instant::now(), m.info().expect("info").stream_sequence));
        m.ack().await.expect("ack");
    }
    assert_eq!(at.iter().map(|a| a.1).collect::<Vec<_>>(), vec![1, 2, 3]);
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1].0 - w[0].0).collect();
    // Each gap is the stored one, less the time the previous delivery took to arrive.
    assert!(gaps[0] >= Duration::from_millis(300), "gaps {gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(170), "gaps {gaps:?}");
    // Caught up: what is stored later is not paced.
    for (i, gap) in [(3, 0u64), (4, 1500)] {
        tokio::time::sleep(Duration::from_millis(gap)).await;
        stored(&js, "rp", format!("{i}").into()).await;
    }
    let mut at = Vec::new();
    let mut msgs = c
        .fetch()
        .max_messages(2)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .expect("fetch");
    while let Some(m) = msgs.next().await {
        let m = m.expect("message");
        at.push(Instant::now());
        m.ack().await.expect("ack");
    }
    assert_eq!(at.len(), 2);
    assert!(
        at[1] - at[0] < Duration::from_millis(1000),
        "replay went on past the stream's end at creation: {:?}",
        at[1] - at[0]
    );
}

/// Workers on a workqueue stream with explicit acks while the server is SIGKILLed and
/// restarted: every message is processed at least once, none is lost, and once everything
/// is acked the stream is empty (acked messages were removed, also across the kills).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workqueue_workers_across_kills_lose_nothing_and_leave_it_empty() {
    use std::collections::BTreeSet;
    use std::time::Instant;
    const MSGS: u64 = 400;
    let dir = TempDir::new("jsc-wq-crash");
    let mut s = js_server(&dir);
    {
        let (_nc, js) = connect(&s).await;
        let st = retained(&js, "WQC", "wqc.*", stream::RetentionPolicy::WorkQueue).await;
        for i in 0..MSGS {
            stored(&js, format!("wqc.{}", i % 4), format!("{i}").into()).await;
        }
        st.create_consumer(consumer::pull::Config {
            durable_name: Some("workers".into()),
            ack_wait: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .expect("consumer");
    }
    let mut processed: BTreeSet<u64> = BTreeSet::new();
    let mut deliveries = 0u64;
    for cycle in 0..4 {
        let (_nc, js) = connect(&s).await;
        let c: consumer::PullConsumer = js
            .get_stream("WQC")
            .await
            .expect("stream")
            .get_consumer("workers")
            .await
            .expect("consumer");
        let last_cycle = cycle == 3;
        let started = Instant::now();
        let mut empty = 0;
        while (last_cycle && empty < 3)
            || (!last_cycle && started.elapsed() < Duration::from_millis(1200))
        {
            let mut msgs = match c
                .fetch()
                .max_messages(if last_cycle { 100 } else { 10 })
                .expires(Duration::from_millis(500))
                .messages()
                .await
            {
                Ok(m) => m,
                Err(_) => break,
            };
            let mut n = 0;
            while let Some(m) = msgs.next().await {
                let Ok(m) = m else { break };
                let body: u64 = String::from_utf8_lossy(&m.payload).parse().expect("body");
                deliveries += 1;
                n += 1;
                if m.double_ack().await.is_ok() {
                    processed.insert(body);
                }
            }
            empty = if n == 0 { empty + 1 } else { 0 };
            if !last_cycle {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if !last_cycle {
            s.restart();
        }
    }
    let missing: Vec<u64> = (0..MSGS).filter(|i| !processed.contains(i)).collect();
    assert!(missing.is_empty(), "never processed: {missing:?}");
    assert!(deliveries >= MSGS);
    let (_nc, js) = connect(&s).await;
    let mut st = js.get_stream("WQC").await.expect("stream");
    let info = st.info().await.expect("info");
    assert_eq!(
        info.state.messages, 0,
        "acked workqueue messages were removed: {:?}",
        info.state
    );
}

/// Push flow control as nats-server runs it: a subscriber that does not answer the
/// `100 FlowControl Request` stops getting messages once its window (2 MiB at first) is
/// full, idle heartbeats name the request it owes (`Nats-Consumer-Stalled`), and answering
/// lets every message through, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_stalls_an_unanswering_subscriber_until_it_answers() {
    const MSGS: usize = 400;
    const SIZE: usize = 16 * 1024;
    let dir = TempDir::new("jsc-fc");
    let s = js_server(&dir);
    let (nc, js) = connect(&s).await;
    let st = stream_with(&js, "FC", &["fc"], 0).await;
    for i in 0..MSGS {
        let mut body = format!("{i:08}").into_bytes();
        body.resize(SIZE, b'x');
        stored(&js, "fc", body.into()).await;
    }
    let mut sub = nc.subscribe("fc.in").await.expect("subscribe");
    nc.flush().await.expect("flush");
    st.create_consumer(consumer::push::Config {
        durable_name: Some("fc".into()),
        deliver_subject: "fc.in".into(),
        flow_control: true,
        idle_heartbeat: Duration::from_millis(500),
        ack_policy: consumer::AckPolicy::None,
        ..Default::default()
    })
    .await
    .expect("consumer");
    let mut data = Vec::new();
    let mut requests: Vec<String> = Vec::new();
    let mut stalled_on: Option<String> = None;
    // Not answering: it stalls, and a heartbeat says on what.
    while stalled_on.is_none() {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("a heartbeat while stalled")
            .expect("subscription");
        match m.status.map(u16::from) {
            None => data.push(m.payload.clone()),
            Some(100) => {
                let h = m.headers.clone().unwrap_or_default();
                if m.description.as_deref() == Some("FlowControl Request") {
                    requests.push(m.reply.expect("fc reply").to_string());
                } else if let Some(v) = h.get("Nats-Consumer-Stalled") {
                    stalled_on = Some(v.as_str().to_string());
                }
            }
            other => panic!("unexpected status {other:?}"),
        }
    }
    let bytes: usize = data.iter().map(|d| d.len()).sum();
    assert!(data.len() < MSGS, "it stalled");
    assert!(
        (1 << 20..=4 << 20).contains(&bytes),
        "stalled after {bytes} bytes"
    );
    assert_eq!(
        stalled_on.as_ref(),
        requests.last(),
        "stalled on its last request"
    );
    // Answering lets the rest through.
    for r in &requests {
        nc.publish(r.clone(), "".into()).await.expect("answer");
    }
    while data.len() < MSGS {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("deliveries go on")
            .expect("subscription");
        match m.status.map(u16::from) {
            None => data.push(m.payload.clone()),
            Some(100) => {
                if let Some(r) = m.reply {
                    nc.publish(r, "".into()).await.expect("answer");
                }
            }
            other => panic!("unexpected status {other:?}"),
        }
    }
    for (i, d) in data.iter().enumerate() {
        assert_eq!(&d[..8], format!("{i:08}").as_bytes(), "in order");
    }
}

/// Deleting a consumer of an interest stream drops the messages only it still needed; with
/// the last consumer gone, the stream is emptied (nats-server's cleanup on delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_interest_consumer_drops_what_only_it_needed() {
    let dir = TempDir::new("jsc-interest-del");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let mut ip = retained(&js, "ID", "id.*", stream::RetentionPolicy::Interest).await;
    for name in ["all", "keep"] {
        ip.create_consumer(consumer::pull::Config {
            durable_name: Some(name.into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    }
    ip.create_consumer(consumer::pull::Config {
        durable_name: Some("bonly".into()),
        filter_subject: "id.b".into(),
        ..Default::default()
    })
    .await
    .expect("consumer");
    for subj in ["id.a", "id.b", "id.a", "id.b"] {
        stored(&js, subj, "x".into()).await;
    }
    // `all` acks everything: `keep` still needs all four.
    let all: consumer::PullConsumer = ip.get_consumer("all").await.expect("consumer");
    let mut msgs = all.fetch().max_messages(4).messages().await.expect("fetch");
    while let Some(m) = msgs.next().await {
        m.expect("message").double_ack().await.expect("ack");
    }
    assert_eq!(ip.info().await.expect("info").state.messages, 4);
    // `keep` acks the id.a ones: id.b stays for `bonly`.
    let keep: consumer::PullConsumer = ip.get_consumer("keep").await.expect("consumer");
    let mut msgs = keep
        .fetch()
        .max_messages(4)
        .messages()
        .await
        .expect("fetch");
    while let Some(m) = msgs.next().await {
        let m = m.expect("message");
        if m.subject.as_str() == "id.a" {
            m.double_ack().await.expect("ack");
        }
    }
    assert_eq!(ip.info().await.expect("info").state.messages, 2);
    // Without `keep`, only `bonly` needs id.b: both stay.
    ip.delete_consumer("keep").await.expect("delete");
    assert_eq!(ip.info().await.expect("info").state.messages, 2);
    // Without `bonly`, nobody left needs them.
    ip.delete_consumer("bonly").await.expect("delete");
    assert_eq!(ip.info().await.expect("info").state.messages, 0);
    // The last consumer gone: the stream is emptied.
    stored(&js, "id.a", "y".into()).await;
    assert_eq!(ip.info().await.expect("info").state.messages, 1);
    ip.delete_consumer("all").await.expect("delete");
    let st = ip.info().await.expect("info").state.clone();
    assert_eq!((st.messages, st.last_sequence), (0, 5));
}

/// async-nats's ordered pull consumer reads a stream in order, and KV deletes and purges show
/// in the keys' histories; the bucket's stream counts the markers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_pull_and_kv_deletes_purges_and_status() {
    use async_nats::jetstream::kv;
    let dir = TempDir::new("jsc-ordered-pull");
    let s = js_server(&dir);
    let (_nc, js) = connect(&s).await;
    let st = stream_with(&js, "OP", &["op.*"], 120).await;
    let c = st
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: "op.x".into(),
            ..Default::default()
        })
        .await
        .expect("ordered pull");
    let mut msgs = c.messages().await.expect("messages");
    let mut seqs = Vec::new();
    while seqs.len() < 120 {
        let m = next_in_time(&mut msgs).await;
        let info = m.info().expect("info");
        seqs.push((info.stream_sequence, info.consumer_sequence));
    }
    let want: Vec<(u64, u64)> = (1..=120).map(|i| (i, i)).collect();
    assert_eq!(seqs, want);

    let b = js
        .create_key_value(kv::Config {
            bucket: "ops".into(),
            history: 3,
            ..Default::default()
        })
        .await
        .expect("bucket");
    b.put("a", "1".into()).await.expect("put");
    b.put("b", "1".into()).await.expect("put");
    b.put("a", "2".into()).await.expect("put");
    b.delete("b").await.expect("delete");
    let status = b.status().await.expect("status");
    assert_eq!((status.bucket(), status.history()), ("ops", 3));
    let mut kv_stream = js.get_stream("KV_ops").await.expect("stream");
    let held = kv_stream.info().await.expect("info").state.messages;
    assert_eq!(held, 4, "history and the delete marker");
    b.purge("a").await.expect("purge");
    let held = kv_stream.info().await.expect("info").state.messages;
    assert_eq!(held, 3, "a purge keeps only its marker");
    let mut ops = Vec::new();
    for key in ["a", "b"] {
        let mut h = b.history(key).await.expect("history");
        while let Some(e) = tokio::time::timeout(Duration::from_secs(5), h.next())
            .await
            .expect("in time")
        {
            let e = e.expect("entry");
            ops.push((e.key.clone(), e.operation));
        }
    }
    assert_eq!(
        ops,
        vec![
            ("a".to_string(), kv::Operation::Purge),
            ("b".to_string(), kv::Operation::Put),
            ("b".to_string(), kv::Operation::Delete)
        ]
    );
}
