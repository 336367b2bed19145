//! Internal services (`tachyon_core::service`): a service inside the server subscribes and
//! publishes like a client. The debug build's echo service (`TACHYON_TEST_ECHO_SERVICE`, see
//! `src/test_service.rs`) answers requests from clients on every shard (4 shards, more than
//! the cores, migration off so clients stay where the kernel put them), in its own account and
//! through a service import from another account (`_R_` replies), echoes headers, and
//! auto-unsubscribes like a client.

mod common;

use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use common::{Server, TempDir};
use tokio::time::timeout;

const SHARDS: usize = 4;
const STEP: Duration = Duration::from_secs(5);
/// Enough connections that every shard gets some.
const CONNS: usize = 16;

fn start(service: &str, args: &[&str]) -> Option<Server> {
    if !cfg!(debug_assertions) {
        return None; // the test service exists in debug builds only
    }
    let mut all = vec!["--shards", "4", "--migrate", "off"];
    all.extend_from_slice(args);
    Some(Server::start_with_env(
        common::Impl::Tachyon,
        &all,
        &[("TACHYON_TEST_ECHO_SERVICE", service)],
    ))
}

async fn connect(opts: ConnectOptions, url: &str) -> Client {
    match timeout(STEP, opts.connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("connect: {e}"),
        Err(_) => panic!("connect: timed out"),
    }
}

async fn ask(c: &Client, subject: &str, payload: &str) -> Result<String, String> {
    match timeout(
        STEP,
        c.request(subject.to_string(), payload.to_string().into()),
    )
    .await
    {
        Ok(Ok(m)) => Ok(String::from_utf8_lossy(&m.payload).into_owned()),
        Ok(Err(e)) => Err(format!("{:?}", e.kind())),
        Err(_) => Err("timed out".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_answers_clients_on_every_shard() {
    let Some(s) = start("$G:echo.>:2", &[]) else {
        return;
    };
    assert_eq!(SHARDS, 4);
    let mut clients = Vec::new();
    for _ in 0..CONNS {
        clients.push(connect(ConnectOptions::new(), &s.url).await);
    }
    // The service subscribed before any shard accepted a client: the first request already
    // finds it, from whichever shard the client landed on.
    for (i, c) in clients.iter().enumerate() {
        let got = ask(c, &format!("echo.{i}"), &format!("hello {i}")).await;
        assert_eq!(got, Ok(format!("shard 2: hello {i}")), "client {i}");
    }
    // Headers travel both ways.
    let mut h = async_nats::HeaderMap::new();
    h.insert("X-Trace", "abc");
    let reply = timeout(
        STEP,
        clients[0].request_with_headers("echo.h", h, "with headers".into()),
    )
    .await
    .expect("in time")
    .expect("reply");
    assert_eq!(reply.payload.as_ref(), b"shard 2: with headers");
    assert_eq!(
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get("X-Trace"))
            .map(|v| v.as_str()),
        Some("abc")
    );
    // Auto-unsubscribe after one message, as for a client: the second request has no
    // responders (the removal travelled to the requester's shard ahead of the reply).
    for (i, c) in clients.iter().take(1).enumerate() {
        assert_eq!(ask(c, "once.echo.x", "1").await, Ok("once".into()), "{i}");
        assert_eq!(
            ask(c, "once.echo.x", "2").await,
            Err("NoResponders".into()),
            "{i}"
        );
    }
}

const ACCOUNTS: &str = r#"
accounts {
  A: {
    users: [{user: a, password: a}]
    exports: [{service: "echo.>"}]
  }
  B: {
    users: [{user: b, password: b}]
    imports: [
      {service: {account: A, subject: "echo.>"}}
      {service: {account: A, subject: "echo.time"}, to: "time"}
    ]
  }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_answers_through_a_service_import() {
    let dir = TempDir::new("services");
    let conf = dir.0.join("accounts.conf");
    std::fs::write(&conf, ACCOUNTS).expect("write config");
    let conf = conf.to_string_lossy().into_owned();
    let Some(s) = start("A:echo.>:1", &["-c", &conf]) else {
        return;
    };
    let login = |u: &str| ConnectOptions::with_user_and_password(u.into(), u.into());
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..CONNS / 2 {
        a.push(connect(login("a"), &s.url).await);
        b.push(connect(login("b"), &s.url).await);
    }
    for (i, c) in a.iter().enumerate() {
        assert_eq!(
            ask(c, &format!("echo.{i}"), "from A").await,
            Ok("shard 1: from A".into())
        );
    }
    // B's requests cross into A through the import; the replies come back on `_R_` subjects.
    for (i, c) in b.iter().enumerate() {
        assert_eq!(
            ask(c, &format!("echo.{i}"), "from B").await,
            Ok("shard 1: from B".into()),
            "B client {i}"
        );
        assert_eq!(
            ask(c, "time", "mapped").await,
            Ok("shard 1: mapped".into()),
            "B client {i}, mapped import"
        );
    }
    // The service lives in A's subject space only: nothing answers B's own `once.` subject.
    assert_eq!(
        ask(&b[0], "once.echo.x", "?").await,
        Err("NoResponders".into())
    );
}
