//! The official Rust client (async-nats) against tachyon with 4 shards, with several connections
//! per test so they land on different shards. `TACHYON_TEST_AGAINST=nats-server` runs the same
//! tests against the reference server, to check the tests themselves.

mod common;

use async_nats::{Client, ConnectOptions, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use common::{RawConn, Server};
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::time::timeout;

const SHARDS: usize = 4;
/// Upper bound on any single wait for a message, connection or reply.
const STEP: Duration = Duration::from_secs(5);
/// Upper bound on a whole test.
const WHOLE: Duration = Duration::from_secs(60);

fn server(extra_args: &[&str]) -> Server {
    Server::under_test(SHARDS, extra_args)
}

/// Runs a test body under the whole-test time limit.
async fn bounded<F: Future<Output = ()>>(body: F) {
    if timeout(WHOLE, body).await.is_err() {
        panic!("test did not finish within {WHOLE:?}");
    }
}

async fn connect(url: &str) -> Client {
    connect_with(ConnectOptions::new(), url).await
}

async fn connect_with(opts: ConnectOptions, url: &str) -> Client {
    match timeout(STEP, opts.connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("connect {url}: {e}"),
        Err(_) => panic!("connect {url}: timed out"),
    }
}

/// `n` separate connections; with SO_REUSEPORT the kernel spreads them over the shards.
async fn connections(url: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(connect(url).await);
    }
    out
}

async fn flush(c: &Client) {
    match timeout(STEP, c.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("flush: {e}"),
        Err(_) => panic!("flush timed out"),
    }
}

/// Subscribes. async-nats's `flush` only empties the client's write buffer (it sends no PING),
/// so no client call proves the server has the interest yet: see [`await_interest`].
async fn subscribe(c: &Client, subject: &str) -> Subscriber {
    let sub = match c.subscribe(subject.to_string()).await {
        Ok(s) => s,
        Err(e) => panic!("subscribe {subject}: {e}"),
    };
    flush(c).await;
    sub
}

/// The payload of interest probes; [`next`] skips them.
const PROBE: &[u8] = b"\x00probe";

/// Publishes probes on `subject` from `publisher` until `sub` receives one. From then on every
/// message `publisher` sends on a subject `sub` matches reaches it (one publisher's messages keep
/// their order), and probes still in flight are skipped by [`next`].
async fn await_interest(publisher: &Client, sub: &mut Subscriber, subject: &str) {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        publish(publisher, subject, Bytes::from_static(PROBE)).await;
        flush(publisher).await;
        match timeout(Duration::from_millis(50), sub.next()).await {
            Ok(Some(m)) if m.payload == PROBE => return,
            Ok(Some(m)) => panic!(
                "waiting for interest on {subject}: unexpected {:?}",
                m.payload
            ),
            Ok(None) => panic!("waiting for interest on {subject}: subscription ended"),
            Err(_) => assert!(
                std::time::Instant::now() < deadline,
                "interest on {subject} never became visible to the publisher"
            ),
        }
    }
}

async fn publish(c: &Client, subject: &str, payload: impl Into<Bytes>) {
    if let Err(e) = c.publish(subject.to_string(), payload.into()).await {
        panic!("publish {subject}: {e}");
    }
}

/// The next message that is not a probe.
async fn next(sub: &mut Subscriber, what: &str) -> Message {
    loop {
        match timeout(STEP, sub.next()).await {
            Ok(Some(m)) if m.payload == PROBE => continue,
            Ok(Some(m)) => return m,
            Ok(None) => panic!("{what}: subscription ended"),
            Err(_) => panic!("{what}: no message within {STEP:?}"),
        }
    }
}

/// Asserts nothing but probes arrives on `sub` for a short while.
async fn assert_quiet(sub: &mut Subscriber, what: &str) {
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(m)) = tokio::time::timeout_at(until, sub.next()).await {
        if m.payload != PROBE {
            panic!(
                "{what}: unexpected message on {}: {:?}",
                m.subject, m.payload
            );
        }
    }
}

fn payload_str(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_across_connections() {
    let s = server(&[]);
    bounded(async {
        let conns = connections(&s.url, 4).await;
        let mut subs = Vec::new();
        for c in &conns {
            subs.push(subscribe(c, "greet.all").await);
        }
        for c in &conns {
            for sub in subs.iter_mut() {
                await_interest(c, sub, "greet.all").await;
            }
        }
        // Every connection publishes once; every subscriber sees all four.
        for (i, c) in conns.iter().enumerate() {
            publish(c, "greet.all", format!("from-{i}")).await;
            flush(c).await;
        }
        for (j, sub) in subs.iter_mut().enumerate() {
            let mut got: Vec<String> = Vec::new();
            for _ in 0..conns.len() {
                got.push(payload_str(&next(sub, &format!("subscriber {j}")).await));
            }
            got.sort();
            assert_eq!(
                got,
                ["from-0", "from-1", "from-2", "from-3"],
                "subscriber {j}"
            );
            assert_quiet(sub, "after all four").await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_star_and_full() {
    let s = server(&[]);
    bounded(async {
        let conns = connections(&s.url, 3).await;
        let mut star = subscribe(&conns[0], "sensor.*.temp").await;
        let mut full = subscribe(&conns[1], "sensor.>").await;
        let p = &conns[2];
        await_interest(p, &mut star, "sensor.probe.temp").await;
        await_interest(p, &mut full, "sensor.probe").await;
        for subject in [
            "sensor.a.temp",
            "sensor.b.humidity",
            "sensor.c.temp.raw",
            "sensor",
            "sensor.d.temp",
        ] {
            publish(p, subject, subject.to_string()).await;
        }
        flush(p).await;
        assert_eq!(
            next(&mut star, "star").await.subject.as_str(),
            "sensor.a.temp"
        );
        assert_eq!(
            next(&mut star, "star").await.subject.as_str(),
            "sensor.d.temp"
        );
        assert_quiet(&mut star, "star").await;
        let mut full_got = Vec::new();
        for _ in 0..4 {
            full_got.push(next(&mut full, "full").await.subject.to_string());
        }
        assert_eq!(
            full_got,
            [
                "sensor.a.temp",
                "sensor.b.humidity",
                "sensor.c.temp.raw",
                "sensor.d.temp"
            ]
        );
        assert_quiet(&mut full, "full").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_delivers_each_message_exactly_once() {
    const MEMBERS: usize = 4;
    const MESSAGES: usize = 400;
    let s = server(&[]);
    bounded(async {
        let members = connections(&s.url, MEMBERS).await;
        // (member, Some(n)) for message n, (member, None) for a probe.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Option<u32>)>();
        let mut tasks = Vec::new();
        for (i, c) in members.iter().enumerate() {
            let mut sub = match c
                .queue_subscribe("work".to_string(), "workers".into())
                .await
            {
                Ok(s) => s,
                Err(e) => panic!("queue_subscribe: {e}"),
            };
            flush(c).await;
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(m) = sub.next().await {
                    let n = if m.payload == PROBE {
                        None
                    } else {
                        Some(payload_str(&m).parse().unwrap_or(u32::MAX))
                    };
                    if tx.send((i, n)).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        // A plain subscriber on the same subject is not part of the group: it gets everything.
        let observer = connect(&s.url).await;
        let mut all = subscribe(&observer, "work").await;
        let publisher = connect(&s.url).await;
        await_interest(&publisher, &mut all, "work").await;
        // Probe until every member has been picked once: then all of them are visible.
        let mut probed = [false; MEMBERS];
        let deadline = std::time::Instant::now() + STEP;
        while !probed.iter().all(|&p| p) {
            assert!(
                std::time::Instant::now() < deadline,
                "queue members never all visible: {probed:?}"
            );
            publish(&publisher, "work", Bytes::from_static(PROBE)).await;
            flush(&publisher).await;
            while let Ok(Some((member, _))) = timeout(Duration::from_millis(20), rx.recv()).await {
                probed[member] = true;
            }
        }
        for n in 0..MESSAGES {
            publish(&publisher, "work", n.to_string()).await;
        }
        flush(&publisher).await;

        let mut seen: HashMap<u32, usize> = HashMap::new();
        let mut per_member = [0usize; MEMBERS];
        while seen.values().sum::<usize>() < MESSAGES {
            match timeout(STEP, rx.recv()).await {
                Ok(Some((_, None))) => {}
                Ok(Some((member, Some(n)))) => {
                    *seen.entry(n).or_default() += 1;
                    per_member[member] += 1;
                }
                _ => panic!(
                    "queue group got {} of {MESSAGES} messages",
                    seen.values().sum::<usize>()
                ),
            }
        }
        // Late duplicates would show up here.
        if let Ok(Some((member, Some(n)))) = timeout(Duration::from_millis(300), rx.recv()).await {
            panic!("extra delivery of {n} to member {member}");
        }
        assert_eq!(
            seen.len(),
            MESSAGES,
            "distinct messages delivered to the group"
        );
        assert!(
            seen.values().all(|&c| c == 1),
            "a message was delivered twice"
        );
        assert!(seen.keys().all(|&n| (n as usize) < MESSAGES));
        // With 400 messages a member that got none means the group is not load-balanced.
        assert!(
            per_member.iter().all(|&c| c > 0),
            "distribution over members: {per_member:?}"
        );
        for n in 0..MESSAGES {
            assert_eq!(
                payload_str(&next(&mut all, "observer").await),
                n.to_string()
            );
        }
        for t in tasks {
            t.abort();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_from_several_connections() {
    let s = server(&[]);
    bounded(async {
        let responder = connect(&s.url).await;
        let mut requests = subscribe(&responder, "svc.upper").await;
        let requesters = connections(&s.url, 3).await;
        for c in &requesters {
            await_interest(c, &mut requests, "svc.upper").await;
        }
        let r = responder.clone();
        let task = tokio::spawn(async move {
            while let Some(m) = requests.next().await {
                let up = payload_str(&m).to_uppercase();
                if let Some(reply) = m.reply {
                    let _ = r.publish(reply, up.into()).await;
                }
            }
        });
        for round in 0..10 {
            for (i, c) in requesters.iter().enumerate() {
                let body = format!("hello-{i}-{round}");
                let resp = match timeout(STEP, c.request("svc.upper", body.clone().into())).await {
                    Ok(Ok(m)) => m,
                    Ok(Err(e)) => panic!("request {body}: {e}"),
                    Err(_) => panic!("request {body}: timed out"),
                };
                assert_eq!(payload_str(&resp), body.to_uppercase());
            }
        }
        task.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_round_trip() {
    let s = server(&[]);
    bounded(async {
        let conns = connections(&s.url, 2).await;
        let mut sub = subscribe(&conns[0], "with.headers").await;
        await_interest(&conns[1], &mut sub, "with.headers").await;
        let mut headers = HeaderMap::new();
        headers.insert("X-Trace", "abc-123");
        headers.append("X-Multi", "one");
        headers.append("X-Multi", "two");
        if let Err(e) = conns[1]
            .publish_with_headers("with.headers", headers, "body".into())
            .await
        {
            panic!("publish_with_headers: {e}");
        }
        flush(&conns[1]).await;
        let m = next(&mut sub, "headers").await;
        assert_eq!(payload_str(&m), "body");
        let h = m.headers.as_ref();
        let Some(h) = h else {
            panic!("message arrived without headers")
        };
        assert_eq!(h.get("X-Trace").map(|v| v.as_str()), Some("abc-123"));
        let multi: Vec<&str> = h.get_all("X-Multi").map(|v| v.as_str()).collect::<Vec<_>>();
        assert_eq!(multi, ["one", "two"]);
        assert!(m.status.is_none(), "a plain message has no status");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_without_subscriber_gets_no_responders() {
    let s = server(&[]);
    bounded(async {
        let c = connect(&s.url).await;
        let started = std::time::Instant::now();
        let result = timeout(STEP, c.request("nobody.home", "?".into())).await;
        match result {
            Ok(Err(e)) => assert_eq!(
                e.kind(),
                async_nats::RequestErrorKind::NoResponders,
                "error: {e}"
            ),
            Ok(Ok(m)) => panic!("got a reply from nobody: {m:?}"),
            Err(_) => panic!("request timed out instead of failing with no responders"),
        }
        // The 503 comes from the server at once, not from the client's request timeout.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "no-responders took {:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_ends_subscription_and_client() {
    let s = server(&[]);
    bounded(async {
        let conns = connections(&s.url, 2).await;
        let (c, p) = (&conns[0], &conns[1]);
        let mut sub = subscribe(c, "drain.me").await;
        await_interest(p, &mut sub, "drain.me").await;
        for n in 0..50 {
            publish(p, "drain.me", n.to_string()).await;
        }
        flush(p).await;
        for n in 0..10 {
            assert_eq!(
                payload_str(&next(&mut sub, "before drain").await),
                n.to_string()
            );
        }
        if let Err(e) = sub.drain().await {
            panic!("drain: {e}");
        }
        // async-nats drops what has not reached it when the drain completes; what does arrive
        // continues the sequence without gaps or repeats, and then the subscription ends.
        let mut expect = 10;
        loop {
            match timeout(STEP, sub.next()).await {
                Ok(Some(m)) if m.payload == PROBE => {}
                Ok(Some(m)) => {
                    assert_eq!(payload_str(&m), expect.to_string());
                    expect += 1;
                }
                Ok(None) => break,
                Err(_) => panic!("drained subscription did not end"),
            }
        }
        assert!(expect <= 50);

        // Draining the whole client ends its subscriptions and closes it; the server stays up.
        let mut sub2 = subscribe(c, "drain.client").await;
        if let Err(e) = c.drain().await {
            panic!("client drain: {e}");
        }
        match timeout(STEP, sub2.next()).await {
            Ok(None) => {}
            Ok(Some(m)) => panic!("unexpected message after drain: {m:?}"),
            Err(_) => panic!("client drain did not end the subscription"),
        }
        let fresh = connect(&s.url).await;
        let mut sub3 = subscribe(&fresh, "still.up").await;
        publish(&fresh, "still.up", "yes").await;
        assert_eq!(payload_str(&next(&mut sub3, "after drain").await), "yes");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_unsubscribe_after_n_messages() {
    let s = server(&[]);
    bounded(async {
        let conns = connections(&s.url, 2).await;
        let mut sub = subscribe(&conns[0], "limited").await;
        if let Err(e) = sub.unsubscribe_after(3).await {
            panic!("unsubscribe_after: {e}");
        }
        flush(&conns[0]).await;
        // Probes would count towards the limit, so instead publish numbered messages until the
        // subscription ends: the first may be lost before the interest is visible, but exactly
        // three are delivered, in order.
        let mut got: Vec<u32> = Vec::new();
        let mut n = 0u32;
        loop {
            assert!(n < 500, "subscription did not end; got {got:?}");
            publish(&conns[1], "limited", n.to_string()).await;
            flush(&conns[1]).await;
            n += 1;
            match timeout(Duration::from_millis(20), sub.next()).await {
                Ok(Some(m)) => got.push(payload_str(&m).parse().unwrap_or(u32::MAX)),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        assert_eq!(got.len(), 3, "delivered: {got:?}");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "order: {got:?}");
        // Once ended it stays ended, even with more messages published.
        publish(&conns[1], "limited", "late").await;
        flush(&conns[1]).await;
        assert!(matches!(
            timeout(Duration::from_millis(200), sub.next()).await,
            Ok(None)
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_from_one_publisher_is_kept_and_flush_confirms() {
    const N: usize = 5000;
    let s = server(&[]);
    bounded(async {
        let conns = connections(&s.url, 5).await;
        let mut subs = Vec::new();
        let p = &conns[0];
        for c in &conns[1..] {
            let mut sub = subscribe(c, "ordered").await;
            await_interest(p, &mut sub, "ordered").await;
            subs.push(sub);
        }
        for n in 0..N {
            publish(p, "ordered", n.to_string()).await;
        }
        flush(p).await;
        for (j, sub) in subs.iter_mut().enumerate() {
            for n in 0..N {
                let m = next(sub, &format!("subscriber {j}, message {n}")).await;
                assert_eq!(
                    payload_str(&m),
                    n.to_string(),
                    "subscriber {j} out of order"
                );
            }
        }
    })
    .await;
}

/// Raw connections: async-nats cannot send a PING on demand, and the guarantee is about PONG.
fn raw_connections(port: u16, n: usize) -> Vec<RawConn> {
    (0..n)
        .map(|_| {
            let mut c = RawConn::connect(port, STEP);
            c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
            let got = c.read_until(b"PONG\r\n", STEP);
            assert!(
                got.text().ends_with("PONG\r\n"),
                "handshake: {:?}",
                got.text()
            );
            c
        })
        .collect()
}

fn ping(c: &mut RawConn, what: &str) {
    c.send(b"PING\r\n");
    let got = c.read_until(b"PONG\r\n", STEP);
    assert_eq!(got.text(), "PONG\r\n", "{what}");
}

#[test]
fn interest_is_visible_after_pong_on_every_pair() {
    const CONNS: usize = 6;
    let s = server(&[]);
    let mut conns = raw_connections(s.port, CONNS);
    let mut sid = 0;
    for i in 0..CONNS {
        for j in 0..CONNS {
            if i == j {
                continue;
            }
            sid += 1;
            let subject = format!("vis.{i}.{j}");
            conns[i].send(format!("SUB {subject} {sid}\r\n").as_bytes());
            ping(&mut conns[i], "PONG after SUB");
            // Published the moment the PONG is in: no sleep, no flush on the publisher.
            conns[j].send(format!("PUB {subject} 3\r\nnow\r\n").as_bytes());
            let want = format!("MSG {subject} {sid} 3\r\nnow\r\n");
            let got = conns[i].read_until(want.as_bytes(), STEP);
            assert_eq!(got.text(), want, "sub on {i}, publish on {j}");
            conns[i].send(format!("UNSUB {sid}\r\n").as_bytes());
        }
    }
}

#[test]
fn unsubscribe_is_visible_after_pong() {
    const CONNS: usize = 4;
    let s = server(&[]);
    let mut conns = raw_connections(s.port, CONNS);
    conns[0].send(b"SUB gone 1\r\nSUB witness 2\r\n");
    ping(&mut conns[0], "PONG after SUB");
    for p in 1..CONNS {
        conns[p].send(b"PUB gone 6\r\nbefore\r\n");
        let got = conns[0].read_until(b"before\r\n", STEP);
        assert_eq!(got.text(), "MSG gone 1 6\r\nbefore\r\n", "from {p}");
    }
    conns[0].send(b"UNSUB 1\r\n");
    ping(&mut conns[0], "PONG after UNSUB");
    for p in conns.iter_mut().skip(1) {
        p.send(b"PUB gone 5\r\nafter\r\nPUB witness 1\r\nw\r\n");
        ping(p, "publisher PONG");
    }
    // The witness messages were published after the dropped ones, by the same publishers.
    let mut got = String::new();
    for _ in 1..CONNS {
        got.push_str(&conns[0].read_until(b"w\r\n", STEP).text());
    }
    assert_eq!(got, "MSG witness 2 1\r\nw\r\n".repeat(CONNS - 1));
    let rest = conns[0].read_quiet(Duration::from_millis(200), STEP);
    assert!(rest.bytes.is_empty(), "after UNSUB: {:?}", rest.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_server_restart_on_same_port() {
    let mut s = server(&[]);
    let url = s.url.clone();
    let opts = || {
        ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|_| Duration::from_millis(100))
    };
    let sub_client = connect_with(opts(), &url).await;
    let pub_client = connect_with(opts(), &url).await;
    let mut sub = subscribe(&sub_client, "after.restart").await;
    await_interest(&pub_client, &mut sub, "after.restart").await;
    publish(&pub_client, "after.restart", "before").await;
    flush(&pub_client).await;
    assert_eq!(
        payload_str(&next(&mut sub, "before restart").await),
        "before"
    );

    s.restart();

    bounded(async {
        // Both clients reconnect on their own and the subscriber re-subscribes; keep publishing
        // until a message gets through.
        let mut n = 0u32;
        loop {
            n += 1;
            assert!(n < 150, "no message delivered after restart");
            let _ = pub_client
                .publish("after.restart", format!("after-{n}").into())
                .await;
            let _ = timeout(Duration::from_millis(200), pub_client.flush()).await;
            if let Ok(Some(m)) = timeout(Duration::from_millis(100), sub.next()).await {
                if m.payload == PROBE {
                    continue;
                }
                assert!(payload_str(&m).starts_with("after-"), "{:?}", m.payload);
                break;
            }
        }
        assert_eq!(
            sub_client.connection_state(),
            async_nats::connection::State::Connected
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password_auth() {
    let s = server(&["--user", "alice", "--pass", "s3cret"]);
    bounded(async {
        let good = ConnectOptions::with_user_and_password("alice".into(), "s3cret".into());
        let c = connect_with(good, &s.url).await;
        let mut sub = subscribe(&c, "authed").await;
        publish(&c, "authed", "ok").await;
        assert_eq!(payload_str(&next(&mut sub, "authed").await), "ok");

        for (user, pass) in [("alice", "wrong"), ("mallory", "s3cret")] {
            let bad = ConnectOptions::with_user_and_password(user.into(), pass.into());
            match timeout(STEP, bad.connect(s.url.as_str())).await {
                Ok(Err(e)) => assert_eq!(
                    e.kind(),
                    async_nats::ConnectErrorKind::AuthorizationViolation,
                    "{user}/{pass}: {e}"
                ),
                Ok(Ok(_)) => panic!("{user}/{pass} was accepted"),
                Err(_) => panic!("{user}/{pass}: connect neither failed nor succeeded"),
            }
        }
        match timeout(STEP, async_nats::connect(s.url.as_str())).await {
            Ok(Err(e)) => assert_eq!(
                e.kind(),
                async_nats::ConnectErrorKind::AuthorizationViolation,
                "no credentials: {e}"
            ),
            Ok(Ok(_)) => panic!("connection without credentials was accepted"),
            Err(_) => panic!("no credentials: connect neither failed nor succeeded"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth() {
    let s = server(&["--auth", "t0ken-xyz"]);
    bounded(async {
        let c = connect_with(ConnectOptions::with_token("t0ken-xyz".into()), &s.url).await;
        let mut sub = subscribe(&c, "tok").await;
        publish(&c, "tok", "ok").await;
        assert_eq!(payload_str(&next(&mut sub, "tok").await), "ok");

        let bad = ConnectOptions::with_token("other".into());
        match timeout(STEP, bad.connect(s.url.as_str())).await {
            Ok(Err(e)) => assert_eq!(
                e.kind(),
                async_nats::ConnectErrorKind::AuthorizationViolation,
                "{e}"
            ),
            Ok(Ok(_)) => panic!("wrong token was accepted"),
            Err(_) => panic!("wrong token: connect neither failed nor succeeded"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_info_advertises_a_compatible_server() {
    let s = server(&[]);
    bounded(async {
        let c = connect(&s.url).await;
        let info = c.server_info();
        assert!(info.headers, "headers must be advertised");
        assert_eq!(info.max_payload, 1024 * 1024);
        assert_eq!(info.port, s.port);
        // Clients gate features on the version: it must be at least 2.12.0 (DESIGN.md).
        assert!(
            c.is_server_compatible(2, 12, 0),
            "advertised version {}",
            info.version
        );
    })
    .await;
}
