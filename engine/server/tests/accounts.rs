//! Accounts against the real binary with 4 shards: isolated subject spaces (wildcards and queue
//! groups included), stream imports (`prefix`, `to`), service imports with replies across
//! shards, no-responders and forged `_R_` subjects, users and nkey users bound to accounts,
//! `no_auth_user`, `verify_and_map`, and `/accountz` + `/connz?auth=1`.
//! `TACHYON_TEST_AGAINST=nats-server` runs the tests that use `Server::under_test` against the
//! reference server, to check the tests themselves.

mod common;

use std::path::Path;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Subscriber};
use common::{RawConn, Server, TempDir};
use futures::StreamExt;
use tokio::time::timeout;

const SHARDS: usize = 4;
const STEP: Duration = Duration::from_secs(5);
/// How long a subscriber must stay silent after the same message reached every other shard.
const QUIET: Duration = Duration::from_millis(150);
/// Connections per account: with 4 shards, some land on other shards than others.
const CONNS: usize = 4;

const ACCOUNTS: &str = r#"
accounts {
  A: {
    users: [{user: a, password: a}]
    exports: [
      {stream: "events.>"}
      {stream: "orders.new"}
      {stream: "private.>", accounts: [C]}
      {service: "svc.>"}
    ]
  }
  B: {
    users: [{user: b, password: b}, {nkey: NKEY}]
    imports: [
      {stream: {account: A, subject: "events.>"}, prefix: "from_a"}
      {stream: {account: A, subject: "orders.new"}, to: "shop.created"}
      {service: {account: A, subject: "svc.time"}, to: "time"}
      {service: {account: A, subject: "svc.none"}}
    ]
  }
  C: {
    users: [{user: c, password: c}]
    imports: [{stream: {account: A, subject: "private.>"}}]
  }
}
"#;

fn config(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.0.join(name);
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

fn accounts_text(nkey: &str, extra: &str) -> String {
    format!("{}{extra}\n", ACCOUNTS.replace("NKEY", nkey))
}

fn start(extra: &str) -> (Server, TempDir, nkeys::KeyPair) {
    let kp = nkeys::KeyPair::new_user();
    let dir = TempDir::new("accounts");
    let path = config(
        &dir,
        "accounts.conf",
        &accounts_text(&kp.public_key(), extra),
    );
    (Server::under_test(SHARDS, &["-c", &path]), dir, kp)
}

async fn login(url: &str, user: &str) -> Client {
    let opts = ConnectOptions::with_user_and_password(user.into(), user.into());
    match timeout(STEP, opts.connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("login {user}: {e}"),
        Err(_) => panic!("login {user}: timed out"),
    }
}

async fn logins(url: &str, user: &str) -> Vec<Client> {
    let mut v = Vec::new();
    for _ in 0..CONNS {
        v.push(login(url, user).await);
    }
    v
}

async fn subscribe(c: &Client, subject: &str) -> Subscriber {
    let s = c.subscribe(subject.to_string()).await.expect("subscribe");
    c.flush().await.expect("flush");
    s
}

/// Payload of the messages `visible` publishes; `next` and `silent` skip them.
const PROBE: &[u8] = b"\x00probe";

/// async-nats's `flush` sends no PING, so it does not wait for the server's interest barrier:
/// publishes probes from `publisher` on `subject` until each of `subs` got one, which shows
/// that the publisher's shard sees their interest.
async fn visible(publisher: &Client, subject: &str, subs: &mut [Subscriber]) {
    let deadline = tokio::time::Instant::now() + STEP;
    let mut seen = vec![false; subs.len()];
    while seen.iter().any(|s| !s) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "interest on {subject} never visible: {seen:?}"
        );
        publisher
            .publish(subject.to_string(), PROBE.into())
            .await
            .expect("probe");
        publisher.flush().await.expect("flush");
        for (sub, seen) in subs.iter_mut().zip(seen.iter_mut()) {
            while let Ok(Some(m)) = timeout(Duration::from_millis(10), sub.next()).await {
                assert_eq!(
                    m.payload.as_ref(),
                    PROBE,
                    "unexpected message while probing"
                );
                *seen = true;
            }
        }
    }
}

async fn next(sub: &mut Subscriber, what: &str) -> async_nats::Message {
    loop {
        match timeout(STEP, sub.next()).await {
            Ok(Some(m)) if m.payload.as_ref() == PROBE => continue,
            Ok(Some(m)) => return m,
            _ => panic!("{what}: no message"),
        }
    }
}

async fn silent(sub: &mut Subscriber, what: &str) {
    let deadline = tokio::time::Instant::now() + QUIET;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        if m.payload.as_ref() != PROBE {
            panic!("{what}: got {:?} on {}", m.payload, m.subject);
        }
    }
}

/// `silent` for many subscribers over one quiet window.
async fn all_silent(subs: &mut [Subscriber], what: &str) {
    futures::future::join_all(subs.iter_mut().map(|s| silent(s, what))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_spaces_are_isolated() {
    let (s, _dir, _) = start("");
    let a = logins(&s.url, "a").await;
    let b = logins(&s.url, "b").await;
    let mut a_subs = Vec::new();
    let mut b_subs = Vec::new();
    for c in &a {
        a_subs.push(subscribe(c, "x.y").await);
        a_subs.push(subscribe(c, ">").await);
    }
    for c in &b {
        b_subs.push(subscribe(c, "x.y").await);
        b_subs.push(subscribe(c, ">").await);
    }
    let mut a_queue = Vec::new();
    let mut b_queue = Vec::new();
    for c in &a {
        a_queue.push(c.queue_subscribe("work", "q".into()).await.expect("qsub"));
        c.flush().await.expect("flush");
    }
    for c in &b {
        b_queue.push(c.queue_subscribe("work", "q".into()).await.expect("qsub"));
        c.flush().await.expect("flush");
    }

    for c in &a {
        visible(c, "x.y", &mut a_subs).await;
        visible(c, "work", &mut a_queue).await;
    }
    visible(&b[0], "x.y", &mut b_subs).await;
    // Every A publisher (spread over shards) reaches every A subscriber and no B one.
    for (i, c) in a.iter().enumerate() {
        c.publish("x.y", format!("a{i}").into()).await.expect("pub");
        c.flush().await.expect("flush");
        for sub in a_subs.iter_mut() {
            let m = next(sub, "A subscriber").await;
            assert_eq!(m.payload, format!("a{i}").as_bytes());
        }
    }
    all_silent(&mut b_subs, "B subscriber, A publish").await;
    // And the other way round.
    b[0].publish("x.y", "b".into()).await.expect("pub");
    b[0].flush().await.expect("flush");
    for sub in b_subs.iter_mut() {
        assert_eq!(next(sub, "B subscriber").await.payload, "b".as_bytes());
    }
    all_silent(&mut a_subs, "A subscriber, B publish").await;

    // A queue group is per account: each account's group gets every message of its own
    // account exactly once.
    const N: usize = 40;
    for i in 0..N {
        a[i % CONNS]
            .publish("work", format!("{i}").into())
            .await
            .expect("pub");
    }
    for c in &a {
        c.flush().await.expect("flush");
    }
    let mut got = 0;
    while got < N {
        let mut progressed = false;
        for q in a_queue.iter_mut() {
            if let Ok(Some(m)) = timeout(Duration::from_millis(20), q.next()).await {
                progressed = true;
                if m.payload.as_ref() != PROBE {
                    got += 1;
                }
            }
        }
        if !progressed {
            panic!("A queue group got {got} of {N}");
        }
    }
    a_queue.append(&mut b_queue);
    a_queue.append(&mut b_subs);
    // No duplicates in A's group; nothing of A's traffic in B's group or B's `>`.
    all_silent(&mut a_queue, "after all queue messages").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_imports_map_subjects() {
    let (s, _dir, _) = start("");
    let a = logins(&s.url, "a").await;
    let b = logins(&s.url, "b").await;
    let c = login(&s.url, "c").await;
    let mut prefixed = Vec::new();
    let mut mapped = Vec::new();
    let mut raw_b = Vec::new();
    let mut b_private = Vec::new();
    for cl in &b {
        prefixed.push(subscribe(cl, "from_a.events.>").await);
        mapped.push(subscribe(cl, "shop.created").await);
        raw_b.push(subscribe(cl, "events.>").await);
        b_private.push(subscribe(cl, "private.>").await);
    }
    let mut c_private = subscribe(&c, "private.>").await;
    for cl in &a {
        visible(cl, "events.probe", &mut prefixed).await;
        visible(cl, "orders.new", &mut mapped).await;
        visible(cl, "private.probe", std::slice::from_mut(&mut c_private)).await;
    }

    for (i, cl) in a.iter().enumerate() {
        cl.publish(format!("events.e{i}"), "ev".into())
            .await
            .expect("pub");
        cl.publish("orders.new", format!("o{i}").into())
            .await
            .expect("pub");
        cl.publish("private.p", "secret".into()).await.expect("pub");
        cl.flush().await.expect("flush");
        for sub in prefixed.iter_mut() {
            let m = next(sub, "prefixed import").await;
            assert_eq!(m.subject.as_str(), format!("from_a.events.e{i}"));
        }
        for sub in mapped.iter_mut() {
            let m = next(sub, "mapped import").await;
            assert_eq!(m.subject.as_str(), "shop.created");
            assert_eq!(m.payload, format!("o{i}").as_bytes());
        }
        let m = next(
            &mut c_private,
            &format!("C's restricted import, publisher {i}"),
        )
        .await;
        assert_eq!(m.subject.as_str(), "private.p");
    }
    raw_b.append(&mut b_private);
    all_silent(
        &mut raw_b,
        "B on A's own subjects or an export restricted to C",
    )
    .await;
    // Publishing in B on the local names goes nowhere near A.
    let mut a_events = subscribe(&a[0], "events.>").await;
    visible(&a[1], "events.probe", std::slice::from_mut(&mut a_events)).await;
    b[0].publish("from_a.events.back", "x".into())
        .await
        .expect("pub");
    b[0].flush().await.expect("flush");
    silent(&mut a_events, "A, B published on an imported name").await;
}

fn run_binary(args: &[&str]) -> (bool, String) {
    let bin = match common::under_test() {
        common::Impl::Tachyon => std::path::PathBuf::from(env!("CARGO_BIN_EXE_tachyon")),
        common::Impl::NatsServer => match common::nats_server_bin() {
            Some(p) => p,
            None => return (false, "stream import not authorized".into()),
        },
    };
    let out = std::process::Command::new(bin)
        .args(args)
        .output()
        .expect("run server");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn bad_account_configs_refuse_to_start() {
    let dir = TempDir::new("accounts-bad");
    let cases = [
        (
            "restricted.conf",
            "port: -1\naccounts {\n  A: { exports: [{stream: \"p.>\", accounts: [C]}] }\n  \
             B: { imports: [{stream: {account: A, subject: \"p.>\"}}] }\n  C: {}\n}\n",
            "stream import not authorized",
        ),
        (
            "unexported.conf",
            "port: -1\naccounts {\n  A: {}\n  \
             B: { imports: [{service: {account: A, subject: \"s\"}}] }\n}\n",
            "service import not authorized",
        ),
        (
            "dup.conf",
            "port: -1\naccounts {\n  A: { users: [{user: u, password: x}] }\n  \
             B: { users: [{user: u, password: y}] }\n}\n",
            "Duplicate user \"u\" detected",
        ),
        (
            "dup_global.conf",
            "port: -1\naccounts {\n  A: { users: [{user: u, password: x}] }\n}\n\
             authorization { users: [{user: u, password: y}] }\n",
            "Duplicate user \"u\" detected",
        ),
        (
            "noauth.conf",
            "port: -1\nno_auth_user: zz\naccounts {\n  A: { users: [{user: u, password: x}] }\n}\n",
            "no_auth_user: \"zz\" not present as user or nkey",
        ),
    ];
    for (name, text, want) in cases {
        let path = config(&dir, name, text);
        let (ok, out) = run_binary(&["-c", &path, "-a", "127.0.0.1"]);
        assert!(!ok, "{name} started: {out}");
        assert!(out.contains(want), "{name}: want {want:?} in {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_imports_answer_across_accounts_and_shards() {
    let (s, _dir, _) = start("");
    let a = logins(&s.url, "a").await;
    let b = logins(&s.url, "b").await;
    // One responder per A connection, in a queue group: whichever shard it is on answers.
    let mut handles = Vec::new();
    for cl in &a {
        let mut sub = cl
            .queue_subscribe("svc.time", "responders".into())
            .await
            .expect("qsub");
        cl.flush().await.expect("flush");
        let cl = cl.clone();
        handles.push(tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                assert_eq!(m.subject.as_str(), "svc.time");
                if let Some(reply) = m.reply {
                    let mut answer = b"now:".to_vec();
                    answer.extend_from_slice(&m.payload);
                    cl.publish(reply, answer.into()).await.expect("respond");
                }
            }
        }));
    }
    // Until the responders' interest reached each requester's shard, a request gets
    // no-responders: retry those, as a client starting up next to its service would.
    for cl in &b {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            match timeout(STEP, cl.request("time", "warm-up".into())).await {
                Ok(Ok(_)) => break,
                Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "responders never visible"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => panic!("warm-up request: {other:?}"),
            }
        }
    }
    for (i, cl) in b.iter().enumerate() {
        for j in 0..3 {
            let ask = format!("{i}.{j}");
            let r = timeout(STEP, cl.request("time", ask.clone().into()))
                .await
                .expect("request timed out")
                .expect("request");
            assert_eq!(r.payload, format!("now:{ask}").as_bytes());
        }
    }
    // Imported, but nobody in A answers: the requester gets no-responders at once.
    let err = timeout(STEP, b[0].request("svc.none", "x".into()))
        .await
        .expect("no-responders timed out")
        .expect_err("nobody answers svc.none");
    assert_eq!(
        err.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "{err}"
    );
    // B cannot reach A's service under its exported name (it was imported as `time`).
    let err = timeout(STEP, b[0].request("svc.time", "x".into()))
        .await
        .expect("timed out")
        .expect_err("svc.time is not imported under that name");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
    for h in handles {
        h.abort();
    }
}

const RESPONSES: &str = r#"
accounts {
  A: {
    users: [{user: a, password: a}]
    exports: [
      {service: "svc.one"}
      {service: "svc.stream", response_type: stream, response_threshold: "400ms"}
      {service: "svc.chunk", response: chunked}
    ]
  }
  B: {
    users: [{user: b, password: b}]
    imports: [
      {service: {account: A, subject: "svc.one"}}
      {service: {account: A, subject: "svc.stream"}}
      {service: {account: A, subject: "svc.chunk"}}
    ]
  }
  C: { users: [{user: c, password: c}] }
}
"#;

/// A raw client of `user` (password = user name) that got its PONG.
fn raw_login(port: u16, user: &str, subs: &str) -> RawConn {
    let mut c = RawConn::connect(port, STEP);
    c.send(
        format!(
            "CONNECT {{\"user\":\"{user}\",\"pass\":\"{user}\",\"verbose\":false,\"headers\":true}}\r\n{subs}PING\r\n"
        )
        .as_bytes(),
    );
    let got = c.read_until(b"PONG\r\n", STEP);
    assert!(got.text().ends_with("PONG\r\n"), "{user}: {:?}", got.text());
    c
}

/// Sends `ops` then a PING, and returns what came back up to the PONG.
fn roundtrip(c: &mut RawConn, ops: &str) -> String {
    c.send(format!("{ops}PING\r\n").as_bytes());
    c.read_until(b"PONG\r\n", STEP).text()
}

/// The reply subject of the one request `responder` got on `subject`, checking the request
/// carries nats-server's `Nats-Request-Info` header naming the requester's account.
fn request_reply(responder: &mut RawConn, subject: &str) -> String {
    let got = responder.read_until(b"hi\r\n", STEP).text();
    let line = got
        .lines()
        .find(|l| l.starts_with(&format!("HMSG {subject} ")))
        .unwrap_or_else(|| panic!("no request with headers on {subject}: {got:?}"));
    assert!(
        got.contains("Nats-Request-Info: {\"acc\":\"B\""),
        "no request info: {got:?}"
    );
    let reply = line.split(' ').nth(3).unwrap_or_default().to_string();
    assert!(
        reply.starts_with("_R_.") && !reply.contains("_INBOX"),
        "the exporter sees {reply}"
    );
    reply
}

/// The payloads of the MSGs in `text`, in order.
fn payloads(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].starts_with("MSG ") {
            out.push(lines.get(i + 1).unwrap_or(&"").to_string());
            i += 2;
        } else {
            i += 1;
        }
    }
    out
}

/// Service-import responses admit what nats-server admits (issue 14): one answer per request
/// by default (a replayed one reaches nobody), any number for a `stream` export until its
/// threshold passes without one, chunks until an empty one for `chunked`; an answer from
/// another account reaches nobody; the request carries `Nats-Request-Info`. Same steps against
/// nats-server and Tachyon (4 shards, the responder's answers crossing shards or not).
#[test]
fn service_responses_admit_what_nats_server_admits() {
    let dir = TempDir::new("responses");
    let path = config(&dir, "responses.conf", RESPONSES);
    let mut servers = vec![Server::tachyon(SHARDS, &["-c", &path])];
    if common::require_nats_server("service responses").is_some() {
        servers.push(Server::start(common::Impl::NatsServer, &["-c", &path]));
    }
    for s in &servers {
        let name = s.which.name();
        let mut responder = raw_login(
            s.port,
            "a",
            "SUB svc.one 1\r\nSUB svc.stream 2\r\nSUB svc.chunk 3\r\n",
        );
        let mut requester = raw_login(s.port, "b", "SUB _INBOX.me 1\r\n");
        let mut other = raw_login(s.port, "c", "");

        // Singleton: the first answer only.
        roundtrip(&mut requester, "PUB svc.one _INBOX.me 2\r\nhi\r\n");
        let reply = request_reply(&mut responder, "svc.one");
        roundtrip(&mut other, &format!("PUB {reply} 6\r\nforged\r\n"));
        roundtrip(
            &mut responder,
            &format!("PUB {reply} 3\r\none\r\nPUB {reply} 3\r\ntwo\r\n"),
        );
        let got = requester.read_quiet(QUIET, STEP).text();
        assert_eq!(payloads(&got), ["one"], "{name}: {got:?}");

        // Stream: every answer while they keep coming, none after the threshold.
        roundtrip(&mut requester, "PUB svc.stream _INBOX.me 2\r\nhi\r\n");
        let reply = request_reply(&mut responder, "svc.stream");
        for part in ["s1", "s2", "s3"] {
            roundtrip(&mut responder, &format!("PUB {reply} 2\r\n{part}\r\n"));
            std::thread::sleep(Duration::from_millis(150));
        }
        std::thread::sleep(Duration::from_millis(700));
        roundtrip(&mut responder, &format!("PUB {reply} 4\r\nlate\r\n"));
        let got = requester.read_quiet(QUIET, STEP).text();
        assert_eq!(payloads(&got), ["s1", "s2", "s3"], "{name}: {got:?}");

        // Chunked: until the empty chunk.
        roundtrip(&mut requester, "PUB svc.chunk _INBOX.me 2\r\nhi\r\n");
        let reply = request_reply(&mut responder, "svc.chunk");
        roundtrip(
            &mut responder,
            &format!(
                "PUB {reply} 2\r\nc1\r\nPUB {reply} 2\r\nc2\r\nPUB {reply} 0\r\n\r\nPUB {reply} 5\r\nafter\r\n"
            ),
        );
        let got = requester.read_quiet(QUIET, STEP).text();
        assert_eq!(payloads(&got), ["c1", "c2", ""], "{name}: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_user_and_no_auth_user_bind_their_accounts() {
    let (s, _dir, kp) = start("no_auth_user: c");
    let seed = kp.seed().expect("seed");
    let nk = timeout(STEP, ConnectOptions::with_nkey(seed).connect(&s.url))
        .await
        .expect("nkey connect timed out")
        .expect("nkey connect");
    let mut nk_sub = subscribe(&nk, "from_a.events.>").await;
    // No credentials at all: the client is `c`, in C.
    let mut anon = RawConn::connect(s.port, STEP);
    assert!(
        !anon.info.contains("\"auth_required\"") || anon.info.contains("\"auth_required\":false"),
        "no_auth_user: INFO must not ask for credentials: {}",
        anon.info
    );
    anon.send(b"CONNECT {\"verbose\":false}\r\nSUB private.> 1\r\nSUB x 2\r\nPING\r\n");
    let got = anon.read_until(b"PONG\r\n", STEP).text();
    assert!(!got.contains("-ERR"), "{got:?}");
    let a = login(&s.url, "a").await;
    visible(&a, "events.probe", std::slice::from_mut(&mut nk_sub)).await;
    a.publish("events.e", "1".into()).await.expect("pub");
    a.publish("private.p", "2".into()).await.expect("pub");
    a.publish("x", "3".into()).await.expect("pub");
    a.flush().await.expect("flush");
    assert_eq!(
        next(&mut nk_sub, "nkey user in B").await.subject.as_str(),
        "from_a.events.e"
    );
    let got = anon.read_until(b"\r\n2\r\n", STEP).text();
    assert!(got.contains("MSG private.p 1 1\r\n2\r\n"), "{got:?}");
    // `x` is A's: the anonymous client in C never gets it.
    anon.send(b"PING\r\n");
    let rest = anon.read_until(b"PONG\r\n", STEP).text();
    assert!(!rest.contains("MSG x"), "{rest:?}");
    // Wrong credentials are still refused, not mapped to the no_auth_user.
    let mut bad = RawConn::connect(s.port, STEP);
    bad.send(b"CONNECT {\"user\":\"a\",\"pass\":\"nope\",\"verbose\":false}\r\nPING\r\n");
    assert!(bad
        .read_to_close(STEP)
        .text()
        .contains("Authorization Violation"));
}

fn http_json(port: u16, target: &str) -> serde_json::Value {
    let (_, _, body) = common::http_get(port, target);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"))
}

#[test]
fn accountz_and_connz_show_accounts() {
    if common::under_test() != common::Impl::Tachyon {
        return;
    }
    let (s, _dir, _) =
        start("http: \"127.0.0.1:-1\"\nauthorization { users: [{user: g, password: g}] }");
    let m = s.monitor_port();
    let names: Vec<String> = http_json(m, "/accountz")["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for want in ["$G", "A", "B", "C"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let mut b = RawConn::connect(s.port, STEP);
    b.send(b"CONNECT {\"user\":\"b\",\"pass\":\"b\",\"name\":\"in-b\"}\r\nPING\r\n");
    b.read_until(b"PONG\r\n", STEP);
    let mut g = RawConn::connect(s.port, STEP);
    g.send(b"CONNECT {\"user\":\"g\",\"pass\":\"g\",\"name\":\"in-g\"}\r\nPING\r\n");
    g.read_until(b"PONG\r\n", STEP);
    let connz = http_json(m, "/connz?auth=true");
    let conns = connz["connections"].as_array().expect("connections");
    let by_name = |n: &str| {
        conns
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {connz}"))
    };
    assert_eq!(by_name("in-b")["account"], "B");
    assert_eq!(by_name("in-b")["authorized_user"], "b");
    // nats-server leaves the global account out.
    assert!(by_name("in-g").get("account").is_none(), "{connz}");
    assert_eq!(by_name("in-g")["authorized_user"], "g");
    let plain = http_json(m, "/connz");
    assert!(
        !plain.to_string().contains("authorized_user"),
        "only with auth=true: {plain}"
    );

    // `acc=` keeps one account's connections; an unknown account has none.
    let names_in = |target: &str| -> Vec<String> {
        let v = http_json(m, target);
        let list: Vec<String> = v["connections"]
            .as_array()
            .unwrap_or_else(|| panic!("{target}: {v}"))
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(v["total"], list.len(), "{target}: {v}");
        list
    };
    assert_eq!(names_in("/connz?acc=B"), ["in-b"]);
    assert_eq!(names_in("/connz?acc=$G"), ["in-g"]);
    assert!(names_in("/connz?acc=nope").is_empty());

    // `/subsz` names each subscription's own account, and `acc=` keeps one account's.
    b.send(b"SUB x.b 1\r\nPING\r\n");
    b.read_until(b"PONG\r\n", STEP);
    g.send(b"SUB x.g 1\r\nPING\r\n");
    g.read_until(b"PONG\r\n", STEP);
    let subsz = http_json(m, "/subsz?subs=1");
    let subs = subsz["subscriptions_list"].as_array().expect("subs");
    let account_of = |subject: &str| {
        let sub = subs
            .iter()
            .find(|s| s["subject"] == subject)
            .unwrap_or_else(|| panic!("{subject} in {subsz}"));
        assert_eq!(sub["account_tag"], sub["account"], "{subsz}");
        sub["account"].clone()
    };
    assert_eq!(account_of("x.b"), "B");
    assert_eq!(account_of("x.g"), "$G");
    let only_b = http_json(m, "/subsz?subs=1&acc=B");
    let subjects: Vec<&str> = only_b["subscriptions_list"]
        .as_array()
        .expect("subs")
        .iter()
        .filter_map(|s| s["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["x.b"], "{only_b}");
    assert_eq!(only_b["num_subscriptions"], 1, "{only_b}");
    assert_eq!(http_json(m, "/subsz?acc=B")["num_subscriptions"], 1);
    assert_eq!(http_json(m, "/subsz?subs=1&acc=nope")["total"], 0);
}

/// `verify_and_map`: the client certificate's subject is a user of account A; no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_map_binds_the_certificate_user() {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, SanType,
    };
    let dir = TempDir::new("accounts-tls");
    let write = |name: &str, pem: &str| std::fs::write(dir.0.join(name), pem).expect("write");
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Accounts Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    write("ca.pem", &ca.pem());
    let issue = |name: &str, params: CertificateParams| {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("sign");
        write(&format!("{name}.pem"), &cert.pem());
        write(&format!("{name}-key.pem"), &key.serialize_pem());
    };
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    issue("server", server);
    for cn in ["alice", "bob"] {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, "Acme");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        issue(cn, p);
    }
    let arg = |n: &str| dir.0.join(n).display().to_string();
    let text = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify_and_map: true\n}}\n\
         accounts {{\n  A: {{ users: [{{user: \"CN=alice,O=Acme\"}}] }}\n  B: {{ users: [{{user: b, password: b}}] }}\n}}\n",
        arg("server.pem"),
        arg("server-key.pem"),
        arg("ca.pem"),
    );
    let path = config(&dir, "tls.conf", &text);
    let s = Server::under_test(SHARDS, &["-c", &path]);
    let client = |name: &str| {
        ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(Path::new(&arg("ca.pem")).to_path_buf())
            .add_client_certificate(
                Path::new(&arg(&format!("{name}.pem"))).to_path_buf(),
                Path::new(&arg(&format!("{name}-key.pem"))).to_path_buf(),
            )
    };
    let alice = timeout(STEP, client("alice").connect(&s.url))
        .await
        .expect("alice timed out")
        .expect("alice maps to a user");
    let alice2 = timeout(STEP, client("alice").connect(&s.url))
        .await
        .expect("alice timed out")
        .expect("alice maps to a user");
    let mut sub = subscribe(&alice, "mapped").await;
    visible(&alice2, "mapped", std::slice::from_mut(&mut sub)).await;
    alice2.publish("mapped", "hi".into()).await.expect("pub");
    alice2.flush().await.expect("flush");
    assert_eq!(next(&mut sub, "alice in A").await.payload, "hi".as_bytes());
    // bob's certificate is valid but names no user.
    let bob = timeout(STEP, client("bob").connect(&s.url)).await;
    assert!(
        !matches!(bob, Ok(Ok(_))),
        "an unmapped certificate must be refused"
    );
}

/// A second CONNECT authenticates again, as in nats-server (issue 14): bad credentials end the
/// connection with an Authorization Violation; another user's switch the connection to that
/// user's account (its next publishes are delivered there). Against both servers.
#[test]
fn a_second_connect_authenticates_again() {
    let dir = TempDir::new("reconnect");
    let path = config(&dir, "responses.conf", RESPONSES);
    let mut servers = vec![Server::tachyon(SHARDS, &["-c", &path])];
    if common::require_nats_server("second connect").is_some() {
        servers.push(Server::start(common::Impl::NatsServer, &["-c", &path]));
    }
    for s in &servers {
        let name = s.which.name();
        let mut c = raw_login(s.port, "a", "");
        c.send(b"CONNECT {\"user\":\"a\",\"pass\":\"wrong\",\"verbose\":false}\r\nPING\r\n");
        let got = c.read_to_close(STEP);
        assert!(
            got.text().contains("-ERR 'Authorization Violation'") && got.closed,
            "{name}: {:?} (closed: {})",
            got.text(),
            got.closed
        );

        let mut in_a = raw_login(s.port, "a", "SUB news 1\r\n");
        let mut in_c = raw_login(s.port, "c", "SUB news 1\r\n");
        let mut switcher = raw_login(s.port, "a", "");
        roundtrip(
            &mut switcher,
            "CONNECT {\"user\":\"c\",\"pass\":\"c\",\"verbose\":false}\r\nPUB news 5\r\nhello\r\n",
        );
        let got = in_c.read_until(b"hello\r\n", STEP).text();
        assert!(got.contains("MSG news 1 5\r\nhello"), "{name}: {got:?}");
        let got = in_a.read_quiet(QUIET, Duration::from_secs(1)).text();
        assert!(!got.contains("hello"), "{name}: account A got {got:?}");
    }
}
