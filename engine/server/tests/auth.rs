//! Authentication and authorization against the real binary with 4 shards: tokens and users from
//! flags and from `-c` config files (bcrypt passwords and tokens, nkeys signing the INFO nonce),
//! the exact `-ERR` texts of violations, and a permission matrix checked with async-nats clients
//! spread over the shards. `TACHYON_TEST_AGAINST=nats-server` runs the same tests against the
//! reference server, to check the tests themselves.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Subscriber};
use base64::Engine;
use common::{RawConn, Server, TempDir};
use futures::StreamExt;
use tokio::time::timeout;

const SHARDS: usize = 4;
const STEP: Duration = Duration::from_secs(5);

fn with_config(dir: &TempDir, text: &str) -> Server {
    let path = dir.0.join("auth.conf");
    std::fs::write(&path, text).expect("write config");
    let path = path.to_string_lossy().into_owned();
    Server::under_test(SHARDS, &["-c", &path])
}

fn connect_line(fields: &str) -> Vec<u8> {
    format!("CONNECT {{\"verbose\":false,\"pedantic\":false{fields}}}\r\nPING\r\n").into_bytes()
}

/// Sends CONNECT + PING and expects PONG.
fn assert_accepted(s: &Server, fields: &str) -> RawConn {
    let mut c = RawConn::connect(s.port, STEP);
    c.send(&connect_line(fields));
    let got = c.read_until(b"PONG\r\n", STEP);
    assert!(
        got.text().ends_with("PONG\r\n") && !got.text().contains("-ERR"),
        "CONNECT {fields} should be accepted, got {:?}",
        got.text()
    );
    c
}

/// Sends CONNECT + PING and expects the violation, then the close.
fn assert_refused(s: &Server, fields: &str) {
    let mut c = RawConn::connect(s.port, STEP);
    c.send(&connect_line(fields));
    let got = c.read_to_close(STEP);
    assert_eq!(
        got.text(),
        "-ERR 'Authorization Violation'\r\n",
        "CONNECT {fields} should be refused"
    );
    assert!(got.closed, "refused connection must be closed");
}

fn info_field(info: &str, key: &str) -> Option<serde_json::Value> {
    let json = info.trim().strip_prefix("INFO ")?;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get(key).cloned()
}

#[test]
fn token_and_user_flags() {
    let s = Server::under_test(SHARDS, &["--auth", "t0ken"]);
    let c = RawConn::connect(s.port, STEP);
    assert_eq!(info_field(&c.info, "auth_required"), Some(true.into()));
    assert_eq!(info_field(&c.info, "nonce"), None);
    assert_accepted(&s, r#","auth_token":"t0ken""#);
    assert_refused(&s, r#","auth_token":"t0ke""#);
    assert_refused(&s, "");

    let s = Server::under_test(SHARDS, &["--user", "derek", "--pass", "s3cr3t"]);
    assert_accepted(&s, r#","user":"derek","pass":"s3cr3t""#);
    assert_refused(&s, r#","user":"derek","pass":"s3cr3""#);
    assert_refused(&s, r#","user":"dere","pass":"s3cr3t""#);
}

#[test]
fn open_server_has_no_auth_in_info() {
    let s = Server::under_test(SHARDS, &[]);
    let c = RawConn::connect(s.port, STEP);
    assert_eq!(info_field(&c.info, "auth_required"), None);
    assert_eq!(info_field(&c.info, "nonce"), None);
}

#[test]
fn bcrypt_token_from_config() {
    let dir = TempDir::new("auth-token");
    let hash = bcrypt::hash("s3cret-token", 4).expect("bcrypt");
    let s = with_config(
        &dir,
        &format!("authorization {{\n  token: \"{hash}\"\n}}\n"),
    );
    assert_accepted(&s, r#","auth_token":"s3cret-token""#);
    assert_refused(&s, r#","auth_token":"s3cret-toke""#);
    // The hash itself is not the secret.
    assert_refused(&s, &format!(r#","auth_token":"{hash}""#));
}

#[test]
fn users_bcrypt_and_nkeys() {
    let dir = TempDir::new("auth-users");
    let alice = bcrypt::hash("alice-pw", 4).expect("bcrypt");
    let kp = nkeys::KeyPair::new_user();
    let conf = format!(
        "authorization {{\n  users = [\n    {{user: alice, password: \"{alice}\"}}\n    \
         {{user: bob, password: plain-pw}}\n    {{nkey: {}}}\n  ]\n}}\n",
        kp.public_key()
    );
    let s = with_config(&dir, &conf);
    assert_accepted(&s, r#","user":"alice","pass":"alice-pw""#);
    assert_refused(&s, r#","user":"alice","pass":"alice-p""#);
    assert_refused(&s, &format!(r#","user":"alice","pass":"{alice}""#));
    assert_accepted(&s, r#","user":"bob","pass":"plain-pw""#);
    assert_refused(&s, r#","user":"carol","pass":"plain-pw""#);
    assert_refused(&s, "");

    // The nkey user signs this connection's nonce.
    let mut c = RawConn::connect(s.port, STEP);
    assert_eq!(info_field(&c.info, "auth_required"), Some(true.into()));
    let nonce = info_field(&c.info, "nonce")
        .and_then(|v| v.as_str().map(str::to_string))
        .expect("INFO carries a nonce when nkey users exist");
    assert_eq!(nonce.len(), 15, "11 random bytes in base64url: {nonce}");
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(kp.sign(nonce.as_bytes()).expect("sign"));
    c.send(&connect_line(&format!(
        r#","nkey":"{}","sig":"{sig}""#,
        kp.public_key()
    )));
    let got = c.read_until(b"PONG\r\n", STEP);
    assert_eq!(got.text(), "PONG\r\n");

    // Another connection gets another nonce: the old signature does not work there.
    let c2 = RawConn::connect(s.port, STEP);
    assert_ne!(info_field(&c2.info, "nonce"), Some(nonce.clone().into()));
    assert_refused(
        &s,
        &format!(r#","nkey":"{}","sig":"{sig}""#, kp.public_key()),
    );
    assert_refused(&s, &format!(r#","nkey":"{}""#, kp.public_key()));
    let stranger = nkeys::KeyPair::new_user();
    assert_refused(
        &s,
        &format!(r#","nkey":"{}","sig":"{sig}""#, stranger.public_key()),
    );

    // The official client signs on its own.
    let seed = kp.seed().expect("seed");
    let rt = runtime();
    rt.block_on(async {
        let nc = timeout(STEP, ConnectOptions::with_nkey(seed).connect(&s.url))
            .await
            .expect("nkey connect timed out")
            .expect("nkey connect");
        timeout(STEP, nc.flush())
            .await
            .expect("flush")
            .expect("flush");
        let bad = timeout(
            STEP,
            ConnectOptions::with_user_and_password("alice".into(), "nope".into()).connect(&s.url),
        )
        .await;
        assert!(!matches!(bad, Ok(Ok(_))), "wrong password must not connect");
    });
}

/// Violations keep the connection open and answer with nats-server's texts; a verbose client
/// gets no +OK for what was refused.
#[test]
fn violation_texts_and_connection_stays() {
    let dir = TempDir::new("auth-texts");
    let s = with_config(
        &dir,
        r#"authorization {
  users = [
    {user: a, password: b, permissions: {
      publish: {allow: ["foo.>"], deny: ["foo.bar"]}
      subscribe: {allow: ["foo.>", "q.x grp"], deny: ["foo.secret"]}
    }}
  ]
}
"#,
    );
    let mut c = RawConn::connect(s.port, STEP);
    c.send(
        b"CONNECT {\"user\":\"a\",\"pass\":\"b\",\"verbose\":true}\r\n\
          PUB foo.bar 1\r\nx\r\nPUB foo.a 1\r\nx\r\nSUB foo.secret 1\r\nSUB q.x 2\r\n\
          SUB q.x grp 3\r\nSUB q.x other 4\r\nSUB foo.* 5\r\nPUB foo.secret 1\r\nx\r\n\
          PUB foo.z 1\r\nx\r\nPING\r\n",
    );
    let got = c.read_until(b"PONG\r\n", STEP);
    assert_eq!(
        got.text(),
        "+OK\r\n\
         -ERR 'Permissions Violation for Publish to \"foo.bar\"'\r\n\
         +OK\r\n\
         -ERR 'Permissions Violation for Subscription to \"foo.secret\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"q.x\"'\r\n\
         +OK\r\n\
         -ERR 'Permissions Violation for Subscription to \"q.x\" using queue \"other\"'\r\n\
         +OK\r\n+OK\r\n+OK\r\n\
         MSG foo.z 5 1\r\nx\r\n\
         PONG\r\n",
        "foo.secret is published but the foo.* subscription must not get it"
    );
    // Still open and usable.
    c.send(b"PING\r\n");
    assert_eq!(c.read_until(b"PONG\r\n", STEP).text(), "PONG\r\n");
}

/// A wildcard subscription that overlaps a deny entry never receives the denied subjects, from
/// publishers on any shard.
#[test]
fn wildcard_subscription_filters_denied_deliveries() {
    let dir = TempDir::new("auth-filter");
    let s = with_config(
        &dir,
        r#"authorization {
  users = [
    {user: pub, password: p}
    {user: sub, password: s, permissions: {subscribe: {deny: ["secret.>", "q.* badq"]}}}
  ]
}
"#,
    );
    let mut sub = assert_accepted(&s, r#","user":"sub","pass":"s""#);
    sub.send(b"SUB > 1\r\nSUB q.* badq 2\r\nSUB q.* goodq 3\r\nPING\r\n");
    let got = sub.read_until(b"PONG\r\n", STEP);
    assert_eq!(
        got.text(),
        "-ERR 'Permissions Violation for Subscription to \"q.*\" using queue \"badq\"'\r\nPONG\r\n"
    );
    // Several publishers so that some land on other shards than the subscriber.
    let mut pubs: Vec<RawConn> = (0..6)
        .map(|_| assert_accepted(&s, r#","user":"pub","pass":"p""#))
        .collect();
    for (i, p) in pubs.iter_mut().enumerate() {
        p.send(
            format!("PUB secret.{i} 1\r\nx\r\nPUB open.{i} 1\r\nx\r\nPUB q.{i} 1\r\nx\r\nPING\r\n")
                .as_bytes(),
        );
        assert!(p.read_until(b"PONG\r\n", STEP).text().ends_with("PONG\r\n"));
    }
    // A last message from the subscriber's own connection marks the end of the stream.
    sub.send(b"PUB zz.end 1\r\nx\r\n");
    let text = sub.read_until(b"MSG zz.end 1 1\r\nx\r\n", STEP).text();
    assert!(
        !text.contains("secret."),
        "denied subject delivered: {text:?}"
    );
    for i in 0..6 {
        assert!(
            text.contains(&format!("MSG open.{i} 1 1\r\n")),
            "missing open.{i}: {text:?}"
        );
        assert!(
            text.contains(&format!("MSG q.{i} 1 1\r\n")),
            "missing q.{i} on >: {text:?}"
        );
        assert!(
            text.contains(&format!("MSG q.{i} 3 1\r\n")),
            "missing q.{i} on goodq: {text:?}"
        );
    }
}

#[test]
fn allow_responses_with_max() {
    let dir = TempDir::new("auth-resp");
    let s = with_config(
        &dir,
        r#"authorization {
  users = [
    {user: client, password: c}
    {user: svc, password: s, permissions: {
      subscribe: ["req.>"]
      allow_responses: {max: 2, expires: "1m"}
    }}
  ]
}
"#,
    );
    let mut svc = assert_accepted(&s, r#","user":"svc","pass":"s""#);
    svc.send(b"SUB req.> 1\r\nPING\r\n");
    assert_eq!(svc.read_until(b"PONG\r\n", STEP).text(), "PONG\r\n");
    let mut client = assert_accepted(&s, r#","user":"client","pass":"c""#);
    client.send(b"SUB inbox.1 9\r\nPING\r\n");
    assert_eq!(client.read_until(b"PONG\r\n", STEP).text(), "PONG\r\n");

    // Before any request the service may publish nowhere.
    svc.send(b"PUB inbox.1 1\r\nx\r\nPING\r\n");
    assert_eq!(
        svc.read_until(b"PONG\r\n", STEP).text(),
        "-ERR 'Permissions Violation for Publish to \"inbox.1\"'\r\nPONG\r\n"
    );
    client.send(b"PUB req.a inbox.1 1\r\nq\r\n");
    assert_eq!(
        svc.read_until(b"q\r\n", STEP).text(),
        "MSG req.a 1 inbox.1 1\r\nq\r\n"
    );
    svc.send(b"PUB inbox.1 2\r\nr1\r\nPUB inbox.1 2\r\nr2\r\nPUB inbox.1 2\r\nr3\r\nPUB inbox.2 1\r\nx\r\nPING\r\n");
    assert_eq!(
        svc.read_until(b"PONG\r\n", STEP).text(),
        "-ERR 'Permissions Violation for Publish to \"inbox.1\"'\r\n\
         -ERR 'Permissions Violation for Publish to \"inbox.2\"'\r\nPONG\r\n"
    );
    client.send(b"PUB inbox.1 3\r\nend\r\n");
    assert_eq!(
        client.read_until(b"end\r\n", STEP).text(),
        "MSG inbox.1 9 2\r\nr1\r\nMSG inbox.1 9 2\r\nr2\r\nMSG inbox.1 9 3\r\nend\r\n",
        "exactly max=2 responses pass"
    );
}

// ---- permission matrix with real clients --------------------------------------------------

const SUBJECTS: [&str; 5] = ["m.a", "m.b", "m.secret", "n.a", "n.b.c"];
const SUB_PATTERNS: [&str; 6] = ["m.a", "m.secret", "n.a", "m.*", "n.>", ">"];

struct Case {
    user: &'static str,
    /// Which of SUBJECTS this user may publish.
    publish: [bool; 5],
    /// Which of SUB_PATTERNS this user may subscribe to.
    subscribe: [bool; 6],
    /// Subjects a subscription must never receive (subscribe deny entries).
    sub_denied: &'static [&'static str],
}

const MATRIX_CONF: &str = r#"authorization {
  default_permissions: {
    publish: ["n.a", "sync"]
    subscribe: {allow: [">"], deny: ["m.*"]}
  }
  users = [
    {user: admin, password: admin, permissions: {}}
    {user: u1, password: p1, permissions: {
      publish: ["m.*", "sync"]
      subscribe: {allow: ["m.>", "sync"], deny: ["m.secret"]}
    }}
    {user: u2, password: p2, permissions: {
      publish: {deny: ["m.secret", "n.>"]}
      subscribe: ["n.*", "m.a", "sync"]
    }}
    {user: u3, password: p3}
  ]
}
"#;

const CASES: [Case; 3] = [
    Case {
        user: "u1",
        publish: [true, true, true, false, false],
        // m.a, m.secret, n.a, m.*, n.>, >
        subscribe: [true, false, false, true, false, false],
        sub_denied: &["m.secret"],
    },
    Case {
        user: "u2",
        publish: [true, true, false, false, false],
        // `n.>` passes `n.*` as in nats-server: its `>` counts as one literal token.
        subscribe: [true, false, true, false, true, false],
        sub_denied: &[],
    },
    Case {
        user: "u3",
        publish: [false, false, false, true, false],
        subscribe: [false, false, true, false, true, true],
        sub_denied: &["m.a", "m.b", "m.secret"],
    },
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn login(url: &str, user: &str, pass: &str) -> Client {
    match timeout(
        STEP,
        ConnectOptions::with_user_and_password(user.into(), pass.into()).connect(url),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("{user} connect: {e}"),
        Err(_) => panic!("{user} connect timed out"),
    }
}

async fn flush(c: &Client) {
    timeout(STEP, c.flush())
        .await
        .expect("flush timed out")
        .expect("flush");
}

async fn next_msg(sub: &mut Subscriber, what: &str) -> async_nats::Message {
    match timeout(STEP, sub.next()).await {
        Ok(Some(m)) => m,
        Ok(None) => panic!("{what}: subscription ended"),
        Err(_) => panic!("{what}: timed out"),
    }
}

/// async-nats's `flush` sends no PING, so nothing a client does proves the server applied its
/// SUB: `publisher` sends `sync` probes until `sub` (which matches `sync`) sees one. From then on
/// everything `publisher` sends that `sub`'s connection subscribed to before reaches it.
async fn await_interest(publisher: &Client, sub: &mut Subscriber) {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        publisher
            .publish("sync", "probe".into())
            .await
            .expect("probe");
        flush(publisher).await;
        match timeout(Duration::from_millis(50), sub.next()).await {
            Ok(Some(m)) if m.subject.as_str() == "sync" => return,
            Ok(Some(m)) => panic!("waiting for interest: unexpected {}", m.subject),
            Ok(None) => panic!("waiting for interest: subscription ended"),
            Err(_) => assert!(
                std::time::Instant::now() < deadline,
                "interest never became visible"
            ),
        }
    }
}

/// What has already been dispatched to `sub` (the sentinel that followed it has arrived).
async fn drain(sub: &mut Subscriber) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    while let Ok(Some(m)) = timeout(Duration::from_millis(20), sub.next()).await {
        if m.subject.as_str() != "sync" {
            got.insert(m.subject.to_string());
        }
    }
    got
}

fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some(pt), Some(st)) if pt == "*" || pt == st => {}
            _ => return false,
        }
    }
}

#[test]
fn permission_matrix_with_real_clients() {
    let dir = TempDir::new("auth-matrix");
    let s = with_config(&dir, MATRIX_CONF);
    runtime().block_on(async {
        let admin = login(&s.url, "admin", "admin").await;
        for case in &CASES {
            // Publish: everything the user may publish reaches a subscriber, nothing else.
            // Several connections per user so publishers and subscriber sit on different shards.
            for round in 0..2 {
                let user = login(&s.url, case.user, &format!("p{}", &case.user[1..])).await;
                let mut all = admin.subscribe(">").await.expect("admin sub");
                await_interest(&user, &mut all).await;
                for subj in SUBJECTS {
                    user.publish(subj, "x".into()).await.expect("publish");
                }
                user.publish("sync", "end".into())
                    .await
                    .expect("publish sync");
                flush(&user).await;
                let mut got = BTreeSet::new();
                loop {
                    let m = next_msg(&mut all, &format!("{} publish sync", case.user)).await;
                    if m.subject.as_str() == "sync" {
                        if m.payload.as_ref() == b"end" {
                            break;
                        }
                        continue;
                    }
                    got.insert(m.subject.to_string());
                }
                let want: BTreeSet<String> = SUBJECTS
                    .iter()
                    .zip(case.publish)
                    .filter(|(_, ok)| *ok)
                    .map(|(s, _)| s.to_string())
                    .collect();
                assert_eq!(got, want, "{} publish (round {round})", case.user);
                all.unsubscribe().await.expect("unsub");
            }

            // Subscribe: a permitted subscription gets every matching subject except denied
            // ones; a refused one gets nothing.
            let user = login(&s.url, case.user, &format!("p{}", &case.user[1..])).await;
            let mut subs = Vec::new();
            for pattern in SUB_PATTERNS {
                subs.push(user.subscribe(pattern).await.expect("subscribe"));
            }
            let mut sync = user.subscribe("sync").await.expect("sync sub");
            flush(&user).await;
            let publisher = login(&s.url, "admin", "admin").await;
            // `sync` was subscribed last: once it is visible, so are the others.
            await_interest(&publisher, &mut sync).await;
            for subj in SUBJECTS {
                publisher.publish(subj, "x".into()).await.expect("publish");
            }
            publisher
                .publish("sync", "end".into())
                .await
                .expect("publish");
            flush(&publisher).await;
            while next_msg(&mut sync, &format!("{} subscribe sync", case.user))
                .await
                .payload
                .as_ref()
                != b"end"
            {}
            for ((pattern, sub), allowed) in
                SUB_PATTERNS.iter().zip(subs.iter_mut()).zip(case.subscribe)
            {
                let got = drain(sub).await;
                let want: BTreeSet<String> = if allowed {
                    SUBJECTS
                        .iter()
                        .filter(|s| matches(pattern, s) && !case.sub_denied.contains(s))
                        .map(|s| s.to_string())
                        .collect()
                } else {
                    BTreeSet::new()
                };
                assert_eq!(got, want, "{} subscribed to {pattern}", case.user);
            }
        }
    });
}
