//! JetStream streams with the official Rust client (async-nats), end to end over TCP: stream
//! management, publish acks, message get/delete, purge, direct get, KV get/put, and what an
//! acknowledged publish promises across a kill and a restart. Tachyon runs with more shards
//! than the machine has cores, so streams land on different shards from their publishers.

mod common;

use async_nats::jetstream::{self, kv, stream};
use common::{Server, TempDir};

const SHARDS: usize = 3;

fn js_server(dir: &TempDir) -> Server {
    let sd = dir.0.to_string_lossy().into_owned();
    Server::under_test(SHARDS, &["-js", "-sd", &sd])
}

async fn connect(s: &Server) -> jetstream::Context {
    let nc = async_nats::connect(&s.url).await.expect("connect");
    jetstream::new(nc)
}

fn api_code<E: std::fmt::Debug>(e: &E) -> String {
    format!("{e:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_take_publishes_from_every_shard_and_answer_the_stream_api() {
    let dir = TempDir::new("js-streams");
    let s = js_server(&dir);
    let js = connect(&s).await;

    let mut orders = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .expect("create ORDERS");
    // A second stream: placed on another shard than the first.
    js.create_stream(stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["events.*".into()],
        storage: stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .expect("create EVENTS");

    // Publishers on several connections, hence on several shards; each ack comes after its
    // message is stored, and one publisher's messages get increasing sequences.
    let mut last = 0;
    for i in 0..100u64 {
        let ack = js
            .publish(format!("orders.{}", i % 5), format!("order {i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        assert_eq!(ack.stream, "ORDERS");
        assert!(
            ack.sequence > last,
            "sequence {} after {last}",
            ack.sequence
        );
        last = ack.sequence;
    }
    assert_eq!(last, 100);
    let other = connect(&s).await;
    for i in 0..10u64 {
        other
            .publish(format!("events.e{i}"), "x".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    let info = orders.info().await.expect("info").clone();
    assert_eq!(info.state.messages, 100);
    assert_eq!(
        (info.state.first_sequence, info.state.last_sequence),
        (1, 100)
    );
    // nats-server's file accounting: 30 + subject + payload per message without headers.
    let want: u64 = (0..100u64)
        .map(|i| 30 + "orders.0".len() as u64 + format!("order {i}").len() as u64)
        .sum();
    assert_eq!(info.state.bytes, want);

    let m = orders.get_raw_message(7).await.expect("get 7");
    assert_eq!(m.subject.as_str(), "orders.1");
    assert_eq!(&m.payload[..], b"order 6");
    let m = orders
        .get_last_raw_message_by_subject("orders.3")
        .await
        .expect("last by subject");
    assert_eq!(&m.payload[..], b"order 98");
    let m = orders
        .direct_get_last_for_subject("orders.4")
        .await
        .expect("direct get");
    assert_eq!(&m.payload[..], b"order 99");
    assert_eq!(m.sequence, 100);
    let missing = orders.direct_get_last_for_subject("orders.nope").await;
    assert!(missing.is_err(), "{missing:?}");

    assert!(orders.delete_message(7).await.expect("delete 7"));
    assert!(orders.get_raw_message(7).await.is_err());
    let purged = orders.purge().filter("orders.0").await.expect("purge");
    assert_eq!(purged.purged, 20);
    let info = orders.info().await.expect("info").clone();
    assert_eq!(info.state.messages, 79);

    // Overlapping subjects and a name in use with another config are refused.
    let overlap = js
        .create_stream(stream::Config {
            name: "OVERLAP".into(),
            subjects: vec!["orders.1".into()],
            ..Default::default()
        })
        .await;
    assert!(api_code(&overlap).contains("10065"), "{overlap:?}");
    let clash = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["other.>".into()],
            ..Default::default()
        })
        .await;
    assert!(api_code(&clash).contains("10058"), "{clash:?}");

    let mut names: Vec<String> = {
        use futures::TryStreamExt;
        js.stream_names().try_collect().await.expect("names")
    };
    names.sort();
    assert_eq!(names, ["EVENTS", "ORDERS"]);
    let account = js.query_account().await.expect("account info");
    assert_eq!(account.streams, 2);
    assert!(account.storage >= info.state.bytes);

    assert!(js.delete_stream("EVENTS").await.expect("delete").success);
    let gone = js.get_stream("EVENTS").await;
    assert!(api_code(&gone).contains("10059"), "{gone:?}");
    // No stream takes its subjects any more: a publish gets no responders.
    let nc = async_nats::connect(&s.url).await.expect("connect");
    let r = nc.request("events.e1", "x".into()).await;
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_headers_and_message_ids_are_checked_as_nats_server_checks_them() {
    let dir = TempDir::new("js-expect");
    let s = js_server(&dir);
    let js = connect(&s).await;
    js.create_stream(stream::Config {
        name: "E".into(),
        subjects: vec!["e.>".into()],
        ..Default::default()
    })
    .await
    .expect("create");
    let publish = |subject: &'static str, headers: &[(&'static str, String)]| {
        let mut h = async_nats::HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.as_str());
        }
        let js = js.clone();
        async move {
            js.publish_with_headers(subject, h, "x".into())
                .await
                .expect("publish")
                .await
        }
    };
    let a = publish("e.a", &[("Nats-Msg-Id", "one".into())])
        .await
        .expect("ack");
    assert_eq!((a.sequence, a.duplicate), (1, false));
    let dup = publish("e.a", &[("Nats-Msg-Id", "one".into())])
        .await
        .expect("dup ack");
    assert_eq!((dup.sequence, dup.duplicate), (1, true));
    let wrong = publish("e.a", &[("Nats-Expected-Last-Sequence", "5".into())]).await;
    assert!(
        api_code(&wrong).contains("wrong last sequence: 1"),
        "{wrong:?}"
    );
    let ok = publish("e.b", &[("Nats-Expected-Last-Sequence", "1".into())])
        .await
        .expect("ok");
    assert_eq!(ok.sequence, 2);
    let wrong = publish(
        "e.a",
        &[("Nats-Expected-Last-Subject-Sequence", "2".into())],
    )
    .await;
    assert!(
        api_code(&wrong).contains("wrong last sequence: 1"),
        "{wrong:?}"
    );
    let wrong = publish("e.a", &[("Nats-Expected-Stream", "OTHER".into())]).await;
    assert!(
        api_code(&wrong).contains("expected stream does not match"),
        "{wrong:?}"
    );
    // The last message id is the last stored message's, "" when it had none.
    let wrong = publish("e.a", &[("Nats-Expected-Last-Msg-Id", "one".into())]).await;
    assert!(
        api_code(&wrong).contains("wrong last msg ID: \""),
        "{wrong:?}"
    );
    publish("e.c", &[("Nats-Msg-Id", "two".into())])
        .await
        .expect("ack");
    let wrong = publish("e.a", &[("Nats-Expected-Last-Msg-Id", "one".into())]).await;
    assert!(
        api_code(&wrong).contains("wrong last msg ID: two"),
        "{wrong:?}"
    );
    let ok = publish("e.a", &[("Nats-Expected-Last-Msg-Id", "two".into())])
        .await
        .expect("ok");
    assert_eq!(ok.sequence, 4);
    let rollup = publish("e.a", &[("Nats-Rollup", "sub".into())]).await;
    assert!(
        api_code(&rollup).contains("rollup not permitted"),
        "{rollup:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_and_message_ids_survive_a_kill() {
    let dir = TempDir::new("js-restart");
    let mut s = js_server(&dir);
    {
        let js = connect(&s).await;
        js.create_stream(stream::Config {
            name: "D".into(),
            subjects: vec!["d.*".into()],
            ..Default::default()
        })
        .await
        .expect("create");
        for i in 0..50u64 {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("id-{i}").as_str());
            js.publish_with_headers(format!("d.{}", i % 3), h, format!("m{i}").into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    }
    // SIGKILL: no shutdown path runs; only what the acks promised may be relied on.
    s.restart();
    let js = connect(&s).await;
    let mut d = js.get_stream("D").await.expect("recovered");
    let info = d.info().await.expect("info").clone();
    assert_eq!(info.state.messages, 50);
    assert_eq!(info.state.last_sequence, 50);
    let m = d.get_raw_message(50).await.expect("last");
    assert_eq!(&m.payload[..], b"m49");
    // The duplicate window outlives the restart.
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", "id-10");
    let dup = js
        .publish_with_headers("d.1", h, "again".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!((dup.sequence, dup.duplicate), (11, true));
    let next = js
        .publish("d.2", "new".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!(next.sequence, 51);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_put_get_update_and_delete() {
    let dir = TempDir::new("js-kv");
    let s = js_server(&dir);
    let js = connect(&s).await;
    let kv = js
        .create_key_value(kv::Config {
            bucket: "cfg".into(),
            history: 3,
            ..Default::default()
        })
        .await
        .expect("create bucket");
    let r1 = kv.put("a", "1".into()).await.expect("put");
    let r2 = kv.put("b", "2".into()).await.expect("put");
    assert!(r2 > r1);
    assert_eq!(kv.get("a").await.expect("get").as_deref(), Some(&b"1"[..]));
    let r3 = kv.update("a", "11".into(), r1).await.expect("update");
    let stale = kv.update("a", "12".into(), r1).await;
    assert!(stale.is_err(), "{stale:?}");
    let e = kv.entry("a").await.expect("entry").expect("present");
    assert_eq!((e.revision, &e.value[..]), (r3, &b"11"[..]));
    let created = kv.create("a", "x".into()).await;
    assert!(created.is_err(), "create of an existing key: {created:?}");
    kv.create("c", "3".into()).await.expect("create new key");
    kv.delete("b").await.expect("delete");
    assert_eq!(kv.get("b").await.expect("get deleted"), None);
    kv.purge("c").await.expect("purge");
    assert_eq!(kv.get("c").await.expect("get purged"), None);
    let again = js.get_key_value("cfg").await.expect("bind");
    assert_eq!(
        again.get("a").await.expect("get").as_deref(),
        Some(&b"11"[..])
    );
}

/// The crash test through the network: publishers with a window of outstanding acks, the
/// server SIGKILLed at a random moment, restarted, 20 times. Every acknowledged message is
/// there afterwards, under its acknowledged sequence; one publisher's acked sequences grow in
/// publish order; messages whose ack never came are published again with the same
/// `Nats-Msg-Id` (as a client retries) and the stream holds each id once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_publishes_survive_sigkill_at_random_moments() {
    use futures::stream::{FuturesOrdered, StreamExt};
    use std::sync::{Arc, Mutex};

    const CYCLES: usize = 20;
    const PER_CYCLE: usize = 300;
    const WINDOW: usize = 32;

    let dir = TempDir::new("js-crash");
    let mut s = js_server(&dir);
    connect(&s)
        .await
        .create_stream(stream::Config {
            name: "C".into(),
            subjects: vec!["c.*".into()],
            ..Default::default()
        })
        .await
        .expect("create");

    // (msg id, acked sequence)
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut unacked: Vec<String> = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for cycle in 0..CYCLES {
        let js = connect(&s).await;
        // Last cycle's unacknowledged ids first (retries), then new ones.
        let mut ids: Vec<String> = std::mem::take(&mut unacked);
        ids.extend((0..PER_CYCLE).map(|i| format!("{cycle}-{i}")));
        let sent: Arc<Mutex<Vec<String>>> = Arc::default();
        let publisher = {
            let (acked, sent, ids) = (acked.clone(), sent.clone(), ids.clone());
            tokio::spawn(async move {
                let mut pending = FuturesOrdered::new();
                let mut last_seq = 0;
                for id in ids {
                    let mut h = async_nats::HeaderMap::new();
                    h.insert("Nats-Msg-Id", id.as_str());
                    let Ok(ack) = js.publish_with_headers("c.x", h, id.clone().into()).await else {
                        return;
                    };
                    sent.lock().unwrap().push(id.clone());
                    pending.push_back(async move { (id, ack.await) });
                    while pending.len() >= WINDOW {
                        let Some((id, Ok(a))) = pending.next().await else {
                            return;
                        };
                        assert!(a.sequence > last_seq || a.duplicate, "{id}: {a:?}");
                        last_seq = last_seq.max(a.sequence);
                        acked.lock().unwrap().push((id, a.sequence));
                    }
                }
                while let Some((id, r)) = pending.next().await {
                    let Ok(a) = r else { return };
                    acked.lock().unwrap().push((id, a.sequence));
                }
            })
        };
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(std::time::Duration::from_millis(5 + seed % 60)).await;
        s.stop();
        publisher.abort();
        let _ = publisher.await;
        let done: std::collections::HashSet<String> = acked
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        unacked = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|id| !done.contains(*id))
            .cloned()
            .collect();
        s.restart();
    }

    let js = connect(&s).await;
    let mut c = js
        .get_stream("C")
        .await
        .expect("stream after the last restart");
    let info = c.info().await.expect("info").clone();
    assert_eq!(info.state.first_sequence, 1);
    // Every sequence holds a message (nothing deletes here), each id at most once.
    let mut by_seq = std::collections::HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for seq in 1..=info.state.last_sequence {
        let m = c
            .get_raw_message(seq)
            .await
            .expect("every sequence is present");
        let id = String::from_utf8_lossy(&m.payload).into_owned();
        assert!(
            seen.insert(id.clone()),
            "id {id} stored twice (second at {seq})"
        );
        by_seq.insert(seq, id);
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= CYCLES,
        "too few acks to mean anything: {}",
        acked.len()
    );
    for (id, seq) in &acked {
        assert_eq!(
            by_seq.get(seq),
            Some(id),
            "acked {id} at {seq} is not there"
        );
    }
    eprintln!(
        "{} acks over {CYCLES} kills; stream holds {} messages",
        acked.len(),
        info.state.messages
    );
}

/// With `accounts`, JetStream serves those that say `jetstream: enabled`; the others get
/// nats-server's 503 "JetStream not enabled for account" for every API request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_without_jetstream_are_told_so() {
    let dir = TempDir::new("js-accounts");
    let conf = dir.0.join("js.conf");
    let sd = dir.0.join("store");
    let text = format!(
        "jetstream {{ store_dir: {:?} }}\naccounts {{\n  A: {{ jetstream: enabled, users: [{{user: a, password: a}}] }}\n  B: {{ users: [{{user: b, password: b}}] }}\n}}\n",
        sd.to_string_lossy()
    );
    std::fs::write(&conf, text).expect("write config");
    let s = Server::under_test(SHARDS, &["-c", &conf.to_string_lossy()]);
    let login = |u: &str| async_nats::ConnectOptions::with_user_and_password(u.into(), u.into());
    let b = login("b").connect(&s.url).await.expect("connect b");
    for subject in [
        "$JS.API.INFO",
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.INFO.X",
    ] {
        let r = b.request(subject, "".into()).await.expect("a reply");
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("json");
        assert_eq!(v["error"]["err_code"], 10039, "{subject}: {v}");
        assert_eq!(v["error"]["code"], 503, "{subject}: {v}");
    }
    let a = jetstream::new(login("a").connect(&s.url).await.expect("connect a"));
    a.create_stream(stream::Config {
        name: "IN_A".into(),
        subjects: vec!["a.>".into()],
        ..Default::default()
    })
    .await
    .expect("account A has JetStream");
    let ack = a
        .publish("a.1", "x".into())
        .await
        .expect("pub")
        .await
        .expect("ack");
    assert_eq!(ack.sequence, 1);
    // B's subject space is its own: a.1 there reaches no stream.
    let r = b.request("a.1", "x".into()).await;
    assert!(r.is_err(), "{r:?}");
}

/// Stream features Tachyon does not implement yet are refused by name, never accepted and
/// silently not acted on.
#[test]
fn unimplemented_stream_features_are_refused_not_ignored() {
    if common::under_test() != common::Impl::Tachyon {
        return; // nats-server implements them.
    }
    let dir = TempDir::new("js-unsupported");
    let s = js_server(&dir);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let nc = async_nats::connect(&s.url).await.expect("connect");
        for (body, feature) in [
            (
                r#"{"name":"R","subjects":["r.>"],"republish":{"src":">","dest":"bar.>"}}"#,
                "republish",
            ),
            (
                r#"{"name":"R","subjects":["r.>"],"subject_transform":{"src":">","dest":"t.>"}}"#,
                "subject_transform",
            ),
            (r#"{"name":"R","sources":[{"name":"X"}]}"#, "sources"),
            (r#"{"name":"R","mirror":{"name":"X"}}"#, "mirror"),
        ] {
            let r = nc
                .request("$JS.API.STREAM.CREATE.R", body.into())
                .await
                .expect("reply");
            let text = String::from_utf8_lossy(&r.payload).into_owned();
            assert!(
                text.contains("10052") && text.contains(feature),
                "{feature}: {text}"
            );
        }
        let names = nc
            .request("$JS.API.STREAM.NAMES", "".into())
            .await
            .expect("names");
        assert!(String::from_utf8_lossy(&names.payload).contains("\"total\":0"));
    });
}

/// With `jetstream { domain }`, the API answers under `$JS.<domain>.API.>` too, as clients of
/// that domain address it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_serves_its_prefixed_api() {
    let dir = TempDir::new("js-domain");
    let conf = dir.0.join("js.conf");
    let sd = dir.0.join("store");
    let text = format!(
        "jetstream {{ store_dir: {:?}, domain: hub }}\n",
        sd.to_string_lossy()
    );
    std::fs::write(&conf, text).expect("write config");
    let s = Server::under_test(SHARDS, &["-c", &conf.to_string_lossy()]);
    let nc = async_nats::connect(&s.url).await.expect("connect");
    let js = jetstream::with_domain(nc, "hub");
    let mut st = js
        .create_stream(stream::Config {
            name: "D".into(),
            subjects: vec!["d.>".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .expect("create through the domain");
    let ack = js
        .publish("d.1", "x".into())
        .await
        .expect("pub")
        .await
        .expect("ack");
    assert_eq!((ack.sequence, ack.domain.as_str()), (1, "hub"));
    assert_eq!(st.info().await.expect("info").state.messages, 1);
    let m = st
        .direct_get_last_for_subject("d.1")
        .await
        .expect("direct get");
    assert_eq!(&m.payload[..], b"x");
    let account = js.query_account().await.expect("account info");
    assert_eq!(account.domain.as_deref(), Some("hub"));
    js.delete_stream("D")
        .await
        .expect("delete through the domain");
}

/// Accounts whose own limits add up to more than the server's stop the start, with
/// nats-server's fatal line; within them the server starts.
#[test]
fn account_limits_beyond_the_servers_stop_the_start() {
    let dir = TempDir::new("js-acc-limits");
    let conf = |name: &str, max_file: &str| {
        let path = dir.0.join(name);
        let text = format!(
            "port: -1\njetstream {{ store_dir: \"{}\", max_file_store: 1MB }}\n\
             accounts {{\n  A: {{ jetstream: {{ max_file: {max_file} }}, users: [{{user: a, password: a}}] }}\n  \
             B: {{ jetstream: {{ max_file: 500K }}, users: [{{user: b, password: b}}] }}\n}}\n",
            dir.0.join("sd").display()
        );
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    };
    let too_much = conf("over.conf", "600K");
    let bin = match common::under_test() {
        common::Impl::Tachyon => std::path::PathBuf::from(env!("CARGO_BIN_EXE_tachyon")),
        common::Impl::NatsServer => common::nats_server_bin().expect("nats-server"),
    };
    let out = std::process::Command::new(&bin)
        .args(["-c", &too_much])
        .output()
        .expect("run server");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "[FTL] Can't start JetStream: Error enabling jetstream on configured accounts: \
             insufficient storage resources available (10047)"
        ),
        "{text}"
    );
    // 500K + 500K fit in 1MB (in nats-server's sizes K is 1,000 and MB is 1,048,576).
    let fits = conf("fits.conf", "500K");
    let s = Server::under_test(SHARDS, &["-c", &fits]);
    assert!(s.log().contains("Server is ready"), "{}", s.log());
}

/// Many file streams share the store's sync threads: 64 KV buckets, each written to (so each
/// has had syncs), add no thread of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_file_streams_cost_no_thread_each() {
    if common::under_test() != common::Impl::Tachyon {
        return;
    }
    let dir = TempDir::new("js-many-streams");
    let s = js_server(&dir);
    let threads = || {
        std::fs::read_dir(format!("/proc/{}/task", s.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let js = connect(&s).await;
    let b = js
        .create_key_value(kv::Config {
            bucket: "first".into(),
            ..Default::default()
        })
        .await
        .expect("bucket");
    b.put("k", "v".into()).await.expect("put");
    let before = threads();
    for i in 0..64 {
        let b = js
            .create_key_value(kv::Config {
                bucket: format!("b{i}"),
                ..Default::default()
            })
            .await
            .expect("bucket");
        b.put("k", "v".into()).await.expect("put");
    }
    let after = threads();
    assert!(before > 0, "no /proc task list");
    // Short-lived helpers (stream opening off the executor) may still be winding down.
    assert!(
        after <= before + 4,
        "{before} threads before, {after} after 64 streams"
    );
}

/// Per-message TTL as nats-server 2.11+ runs it: `Nats-TTL` needs `allow_msg_ttl`, must be a
/// whole second or more, expires the message (also across a restart), and with subject delete
/// markers a TTL below the marker TTL is raised to it and the subject's last message is
/// replaced by an expiring `MaxAge` marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_message_ttls_expire_messages_and_leave_markers() {
    use std::time::{Duration, Instant};
    let dir = TempDir::new("js-ttl");
    let mut s = js_server(&dir);
    let js = connect(&s).await;
    let ttl_stream = |name: &str, subject: &str, allow: bool, sdm: Option<u64>| stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        allow_message_ttl: allow,
        subject_delete_marker_ttl: sdm.map(Duration::from_secs),
        ..Default::default()
    };
    let with_ttl = |ttl: &str| {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-TTL", ttl);
        h
    };
    js.create_stream(ttl_stream("OFF", "off.*", false, None))
        .await
        .expect("stream");
    let mut ttl = js
        .create_stream(ttl_stream("TTL", "ttl.*", true, None))
        .await
        .expect("stream");
    let marked = js
        .create_stream(ttl_stream("SDM", "sdm.*", true, Some(2)))
        .await
        .expect("stream");
    // Refusals, with nats-server's codes.
    for (subject, value, code) in [
        ("off.a", "5s", "10166"),
        ("ttl.a", "500ms", "10165"),
        ("ttl.a", "-1", "10165"),
        ("ttl.a", "soon", "10165"),
    ] {
        let r = js
            .publish_with_headers(subject, with_ttl(value), "x".into())
            .await
            .expect("publish")
            .await;
        let e = r.expect_err("refused");
        assert!(api_code(&e).contains(code), "{subject} {value}: {e:?}");
    }
    let started = Instant::now();
    js.publish("ttl.keep", "stays".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    for (subject, value) in [
        ("ttl.short", "1s"),
        ("ttl.long", "3"),
        ("ttl.never", "never"),
    ] {
        js.publish_with_headers(subject, with_ttl(value), "x".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    // Below the marker TTL: raised to it, and the stored header says so.
    let ack = js
        .publish_with_headers("sdm.x", with_ttl("1s"), "v".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let stored = marked.get_raw_message(ack.sequence).await.expect("stored");
    assert_eq!(
        stored
            .headers
            .get("Nats-TTL")
            .map(|v| v.as_str().to_string()),
        Some("2".to_string())
    );
    // The short one expires; a restart in between does not keep the longer one.
    tokio::time::sleep(Duration::from_millis(1600).saturating_sub(started.elapsed())).await;
    assert_eq!(ttl.info().await.expect("info").state.messages, 3);
    assert!(ttl.get_raw_message(2).await.is_err(), "expired");
    s.restart();
    let js = connect(&s).await;
    let mut ttl = js.get_stream("TTL").await.expect("stream");
    let mut marked = js.get_stream("SDM").await.expect("stream");
    tokio::time::sleep(Duration::from_millis(3600).saturating_sub(started.elapsed())).await;
    let st = ttl.info().await.expect("info").state.clone();
    assert_eq!(
        (st.messages, st.last_sequence),
        (2, 4),
        "ttl.keep and ttl.never stay"
    );
    // The subject's last message gave way to a marker that expires in turn.
    let st = marked.info().await.expect("info").state.clone();
    assert_eq!(
        (st.messages, st.first_sequence, st.last_sequence),
        (1, 2, 2)
    );
    let marker = marked.get_raw_message(2).await.expect("marker");
    assert_eq!(marker.subject.as_str(), "sdm.x");
    let h = |k: &str| marker.headers.get(k).map(|v| v.as_str().to_string());
    assert_eq!(h("Nats-Marker-Reason").as_deref(), Some("MaxAge"));
    assert_eq!(h("Nats-TTL").as_deref(), Some("2s"));
    tokio::time::sleep(Duration::from_millis(6000).saturating_sub(started.elapsed())).await;
    assert_eq!(marked.info().await.expect("info").state.messages, 0);
}

/// `max_age` on a stream that allows TTLs: a `Nats-TTL: never` message outlives it, and with
/// subject delete markers a subject's last message ages out into a `MaxAge` marker (seen by
/// a consumer), which ages out in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_spares_never_and_marks_the_last_of_a_subject() {
    use async_nats::jetstream::consumer;
    use futures::StreamExt;
    use std::time::Duration;
    let dir = TempDir::new("js-ttl-age");
    let s = js_server(&dir);
    let nc = async_nats::connect(&s.url).await.expect("connect");
    let js = jetstream::new(nc.clone());
    let mut st = js
        .create_stream(stream::Config {
            name: "AGE".into(),
            subjects: vec!["age.*".into()],
            max_age: Duration::from_secs(1),
            allow_message_ttl: true,
            subject_delete_marker_ttl: Some(Duration::from_secs(2)),
            ..Default::default()
        })
        .await
        .expect("stream");
    let mut sub = nc.subscribe("watch.age").await.expect("subscribe");
    nc.flush().await.expect("flush");
    st.create_consumer(consumer::push::Config {
        deliver_subject: "watch.age".into(),
        ack_policy: consumer::AckPolicy::None,
        ..Default::default()
    })
    .await
    .expect("consumer");
    let mut never = async_nats::HeaderMap::new();
    never.insert("Nats-TTL", "never");
    js.publish("age.x", "plain".into())
        .await
        .expect("p")
        .await
        .expect("ack");
    js.publish_with_headers("age.x", never, "kept".into())
        .await
        .expect("p")
        .await
        .expect("ack");
    js.publish("age.y", "last".into())
        .await
        .expect("p")
        .await
        .expect("ack");
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(m)) = tokio::time::timeout_at(until, sub.next()).await {
        let reason = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Marker-Reason"))
            .map(|v| v.as_str().to_string());
        seen.push((m.subject.to_string(), reason));
    }
    assert_eq!(
        seen,
        vec![
            ("age.x".to_string(), None),
            ("age.x".to_string(), None),
            ("age.y".to_string(), None),
            ("age.y".to_string(), Some("MaxAge".to_string())),
        ]
    );
    let state = st.info().await.expect("info").state.clone();
    assert_eq!(
        (state.messages, state.first_sequence, state.last_sequence),
        (1, 2, 4),
        "only the never-expiring message is left"
    );
}
