//! The server under test as a route peer in a cluster of real nats-server 2.15 nodes
//! (`cluster {}`), driven by the official Rust client and raw route-protocol bytes: the
//! cluster meshes by gossip; messages published on any node (Tachyon's on every shard) reach
//! each subscriber once; queue groups spanning the nodes get each message once; request/reply
//! and headers cross; a peer killed and restarted is routed again without client action;
//! clients learn the other servers' URLs, also as they change; a cluster-name mismatch and
//! bad input on the route port get nats-server's answers. `TACHYON_TEST_AGAINST=nats-server`
//! runs every node as nats-server.

mod common;

use std::time::{Duration, Instant};

use common::{drain, free_port, until_seen, write_conf, Impl, RawConn, Server, TempDir};
use futures::StreamExt;

const SHARDS: usize = 3;
const STEP: Duration = Duration::from_secs(15);

/// One node: `which` (or the server under test when `None`) with the cluster port
/// `cluster_port`, routes to `routes`, and `extra` config.
fn node(
    dir: &TempDir,
    name: &str,
    which: Option<Impl>,
    cluster_port: u16,
    routes: &[u16],
    extra: &str,
) -> Server {
    let routes: Vec<String> = routes
        .iter()
        .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
        .collect();
    let conf = write_conf(
        dir,
        &format!("{name}.conf"),
        &format!(
            "server_name: {name}\ncluster {{\n  name: c1\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{}]\n}}\n{extra}",
            routes.join(", ")
        ),
    );
    match which {
        Some(w) => Server::start(w, &["-c", &conf, "-m", "-1"]),
        None => Server::under_test(SHARDS, &["-c", &conf, "-m", "-1"]),
    }
}

fn routez(s: &Server) -> serde_json::Value {
    let (_, _, body) = common::http_get(s.monitor_port(), "/routez?subs=1");
    serde_json::from_str(&body).expect("routez json")
}

/// The names of the servers `s` has routes to, sorted, once.
fn peers(s: &Server) -> Vec<String> {
    let mut names: Vec<String> = routez(s)["routes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["remote_name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    names
}

fn until_peers(s: &Server, want: &[&str], logs: &[&Server]) {
    let deadline = Instant::now() + STEP;
    loop {
        let got = peers(s);
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = logs.iter().map(|l| l.log()).collect();
            panic!(
                "routes to {got:?}, want {want:?}; logs:\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three nodes: nats-server A, the server under test T routed to A, nats-server B routed to
/// A only (T and B meet by gossip).
struct Trio {
    a: Server,
    t: Server,
    b: Server,
    _dir: TempDir,
}

fn trio(tag: &str) -> Trio {
    let dir = TempDir::new(tag);
    let (pa, pt, pb) = (free_port(), free_port(), free_port());
    let a = node(&dir, "A", Some(Impl::NatsServer), pa, &[], "");
    let t = node(&dir, "T", None, pt, &[pa], "");
    let b = node(&dir, "B", Some(Impl::NatsServer), pb, &[pa], "");
    for (s, others) in [(&a, ["B", "T"]), (&t, ["A", "B"]), (&b, ["A", "T"])] {
        until_peers(s, &others, &[&a, &t, &b]);
    }
    Trio { a, t, b, _dir: dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_nats_server_meshes_and_delivers_once() {
    let Some(_) = common::require_nats_server("route mesh") else {
        return;
    };
    let Trio { a, t, b, _dir } = trio("route-mesh");
    // Tachyon carries every account on one route per peer (nats-server pools three, plus
    // one for its system account).
    if common::under_test() == Impl::Tachyon {
        let z = routez(&t);
        assert_eq!(z["num_routes"], 2, "{z}");
    }

    let ca = async_nats::connect(&a.url).await.expect("a");
    let cb = async_nats::connect(&b.url).await.expect("b");
    // Several connections, so that the server under test's shards all have some.
    let mut ct = Vec::new();
    for _ in 0..6 {
        ct.push(async_nats::connect(&t.url).await.expect("t"));
    }

    // Plain interest on every node; publishers on every node.
    let mut subs = Vec::new();
    for c in [&ca, &cb, &ct[1]] {
        subs.push(c.subscribe("mesh.>").await.expect("sub"));
    }
    for (i, c) in [&ca, &cb, &ct[2]].into_iter().enumerate() {
        for s in subs.iter_mut() {
            until_seen(c, &format!("mesh.probe.{i}"), s).await;
        }
    }
    const PER: usize = 500;
    let publishers: Vec<&async_nats::Client> = vec![&ca, &cb, &ct[0], &ct[3], &ct[4], &ct[5]];
    for (i, c) in publishers.iter().enumerate() {
        for n in 0..PER {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Seq", n.to_string().as_str());
            c.publish_with_headers(format!("mesh.{i}"), h, format!("{i}:{n}").into())
                .await
                .expect("publish");
        }
        c.flush().await.expect("flush");
    }
    for (k, s) in subs.iter_mut().enumerate() {
        let got = drain(s).await;
        assert_eq!(got.len(), PER * publishers.len(), "subscriber {k}");
        let mut next = vec![0usize; publishers.len()];
        for text in got {
            let (i, n) = text.split_once(':').expect("payload");
            let (i, n): (usize, usize) = (i.parse().expect("i"), n.parse().expect("n"));
            assert_eq!(
                n, next[i],
                "subscriber {k}: publisher {i} out of order or twice"
            );
            next[i] += 1;
        }
    }

    // A queue group with members on all three nodes: each message once, every node used.
    let mut qs = Vec::new();
    for c in [&ca, &cb, &ct[1], &ct[2]] {
        qs.push(c.queue_subscribe("work", "q".into()).await.expect("qsub"));
        c.flush().await.expect("flush");
    }
    // Interest crosses asynchronously: wait until A and B see T's members.
    let deadline = Instant::now() + STEP;
    while !routez(&a)["routes"].as_array().is_some_and(|r| {
        r.iter().any(|r| {
            r["remote_name"] == "T" && r["subscriptions_list"].to_string().contains("work")
        })
    }) {
        assert!(Instant::now() < deadline, "A never heard T's queue members");
        std::thread::sleep(Duration::from_millis(50));
    }
    const WORK: usize = 600;
    for (i, c) in [&ca, &cb, &ct[0]].into_iter().enumerate() {
        for n in 0..WORK / 3 {
            c.publish("work", format!("{i}:{n}").into())
                .await
                .expect("publish");
        }
        c.flush().await.expect("flush");
    }
    let mut all = Vec::new();
    let mut per_member = Vec::new();
    for q in qs.iter_mut() {
        let got = drain(q).await;
        per_member.push(got.len());
        all.extend(got);
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a queued message was delivered twice");
    assert_eq!(all.len(), WORK, "each queued message once: {per_member:?}");
    assert!(
        per_member.iter().all(|&n| n > 0),
        "every member got some: {per_member:?}"
    );

    // Request/reply across the cluster, both ways.
    let mut svc = ct[3].subscribe("svc.t").await.expect("svc");
    let responder = ct[3].clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(r) = m.reply {
                let _ = responder.publish(r, m.payload).await;
            }
        }
    });
    let mut svc_b = cb.subscribe("svc.b").await.expect("svc b");
    let responder_b = cb.clone();
    tokio::spawn(async move {
        while let Some(m) = svc_b.next().await {
            if let Some(r) = m.reply {
                let _ = responder_b.publish(r, m.payload).await;
            }
        }
    });
    ct[3].flush().await.expect("flush");
    cb.flush().await.expect("flush");
    let deadline = Instant::now() + STEP;
    for (from, subject) in [(&ca, "svc.t"), (&ct[5], "svc.b")] {
        loop {
            match tokio::time::timeout(Duration::from_secs(1), from.request(subject, "ping".into()))
                .await
            {
                Ok(Ok(m)) => {
                    assert_eq!(&m.payload[..], b"ping");
                    break;
                }
                _ => assert!(Instant::now() < deadline, "no answer on {subject}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_learn_the_other_servers_as_they_come_and_go() {
    let Some(_) = common::require_nats_server("route client discovery") else {
        return;
    };
    let dir = TempDir::new("route-urls");
    let (pa, pt, pb) = (free_port(), free_port(), free_port());
    let a = node(&dir, "A", Some(Impl::NatsServer), pa, &[], "");
    let t = node(&dir, "T", None, pt, &[pa], "");
    until_peers(&t, &["A"], &[&a, &t]);
    // A client of the server under test, registered (CONNECT, PING, PONG) with protocol 1.
    let mut c = RawConn::connect(t.port, STEP);
    let info = c.info.clone();
    let a_url = format!("127.0.0.1:{}", a.port);
    let t_url = format!("127.0.0.1:{}", t.port);
    assert!(info.contains(&a_url) && info.contains(&t_url), "{info}");
    assert!(info.contains("\"cluster\":\"c1\""), "{info}");
    c.send(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\nPING\r\n");
    c.read_until(b"PONG\r\n", STEP);
    // B joins (routed to A only): the client is told of it without asking.
    let b = node(&dir, "B", Some(Impl::NatsServer), pb, &[pa], "");
    let b_url = format!("127.0.0.1:{}", b.port);
    let got = c.read_until(b_url.as_bytes(), STEP);
    assert!(got.text().contains("INFO "), "{}", got.text());
    // B leaves: told again, without B.
    drop(b);
    let deadline = Instant::now() + STEP;
    let mut seen = String::new();
    loop {
        let got = c.read_until(b"\r\n", Duration::from_secs(1));
        seen.push_str(&got.text());
        if let Some(line) = seen.lines().rev().find(|l| l.starts_with("INFO ")) {
            if !line.contains(&b_url) && line.contains(&a_url) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no INFO without B: {seen}");
    }
    // The official client keeps them as servers to reconnect to.
    let client = async_nats::connect(&t.url).await.expect("connect");
    client.flush().await.expect("flush");
    let known = client.server_info().connect_urls;
    assert!(known.iter().any(|u| u.contains(&a_url)), "{known:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_and_restarted_is_routed_again() {
    let Some(_) = common::require_nats_server("route restart") else {
        return;
    };
    let dir = TempDir::new("route-restart");
    let (pa, pt) = (free_port(), free_port());
    let mut a = node(&dir, "A", Some(Impl::NatsServer), pa, &[], "");
    let t = node(&dir, "T", None, pt, &[pa], "");
    until_peers(&t, &["A"], &[&a, &t]);
    let ct = async_nats::connect(&t.url).await.expect("t");
    let mut sub = ct.subscribe("after.>").await.expect("sub");
    ct.flush().await.expect("flush");
    {
        let ca = async_nats::connect(&a.url).await.expect("a");
        until_seen(&ca, "after.probe", &mut sub).await;
    }
    // SIGKILL: no goodbye on the route.
    unsafe {
        libc::kill(a.pid() as i32, libc::SIGKILL);
    }
    a.restart();
    until_peers(&t, &["A"], &[&a, &t]);
    // The subscription is announced again: no client action.
    let ca = async_nats::connect(&a.url).await.expect("a again");
    until_seen(&ca, "after.probe", &mut sub).await;
    for n in 0..100 {
        ca.publish("after.x", n.to_string().into())
            .await
            .expect("publish");
    }
    ca.flush().await.expect("flush");
    assert_eq!(drain(&mut sub).await.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_stay_apart_across_routes() {
    let Some(_) = common::require_nats_server("route accounts") else {
        return;
    };
    let dir = TempDir::new("route-accounts");
    let (pa, pt) = (free_port(), free_port());
    let accounts = "accounts {\n  A: { users: [{user: a, password: a}] }\n  B: { users: [{user: b, password: b}] }\n}\n";
    let a = node(&dir, "A", Some(Impl::NatsServer), pa, &[], accounts);
    let t = node(&dir, "T", None, pt, &[pa], accounts);
    until_peers(&t, &["A"], &[&a, &t]);
    let as_user = |s: &Server, u: &str| {
        async_nats::ConnectOptions::with_user_and_password(u.into(), u.into())
            .connect(s.url.clone())
    };
    let ta = as_user(&t, "a").await.expect("t a");
    let tb = as_user(&t, "b").await.expect("t b");
    let aa = as_user(&a, "a").await.expect("a a");
    let ab = as_user(&a, "b").await.expect("a b");
    let mut sa = aa.subscribe("x").await.expect("sub");
    let mut sb = ab.subscribe("x").await.expect("sub");
    until_seen(&ta, "x", &mut sa).await;
    until_seen(&tb, "x", &mut sb).await;
    ta.publish("x", "from-a".into()).await.expect("pub");
    tb.publish("x", "from-b".into()).await.expect("pub");
    ta.flush().await.expect("flush");
    tb.flush().await.expect("flush");
    assert_eq!(drain(&mut sa).await, ["from-a"]);
    assert_eq!(drain(&mut sb).await, ["from-b"]);
}

#[test]
fn a_cluster_name_mismatch_is_refused_both_ways() {
    let Some(_) = common::require_nats_server("route name mismatch") else {
        return;
    };
    let dir = TempDir::new("route-names");
    let (pa, pt) = (free_port(), free_port());
    let conf = |name: &str, cluster: &str, port: u16, routes: &[u16]| {
        let routes: Vec<String> = routes
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        write_conf(
            &dir,
            &format!("{name}.conf"),
            &format!(
                "server_name: {name}\ncluster {{\n  name: {cluster}\n  listen: \"127.0.0.1:{port}\"\n  routes: [{}]\n}}\n",
                routes.join(", ")
            ),
        )
    };
    let ca = conf("A", "one", pa, &[pt]);
    let ct = conf("T", "two", pt, &[pa]);
    let a = Server::start(Impl::NatsServer, &["-c", &ca, "-m", "-1"]);
    let t = Server::under_test(SHARDS, &["-c", &ct, "-m", "-1"]);
    // Both dial, both refuse: nats-server's words on both sides.
    let deadline = Instant::now() + STEP;
    let want_t = "Rejecting connection, cluster name \"one\" does not match \"two\"";
    let want_a = "Rejecting connection, cluster name \"two\" does not match \"one\"";
    while !(t.log().contains(want_t) && a.log().contains(want_a)) {
        assert!(
            Instant::now() < deadline,
            "no refusal both ways;\nT:\n{}\nA:\n{}",
            t.log(),
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(peers(&t).is_empty() && peers(&a).is_empty());
}

/// What the route port answers `bytes` sent after its INFO, and whether it closed.
fn route_port_answer(port: u16, bytes: &[u8]) -> (String, String, bool) {
    let mut c = RawConn::connect(port, STEP);
    let info = c.info.clone();
    c.send(bytes);
    let got = c.read_to_close(Duration::from_secs(3));
    (info, got.text(), got.closed)
}

#[test]
fn bad_input_on_the_route_port_gets_nats_servers_answers() {
    let Some(_) = common::require_nats_server("route bad input") else {
        return;
    };
    let dir = TempDir::new("route-bad");
    let (pn, pt) = (free_port(), free_port());
    let n = node(&dir, "N", Some(Impl::NatsServer), pn, &[], "");
    let t = node(&dir, "T", None, pt, &[], "");
    let connect =
        "CONNECT {\"echo\":true,\"name\":\"NFAKE\",\"cluster\":\"c1\",\"headers\":true}\r\n";
    let cases: Vec<(&str, String)> = vec![
        ("an op before CONNECT", "PING\r\n".into()),
        ("garbage", "HELLO WORLD\r\n".into()),
        (
            "a client's CONNECT",
            "CONNECT {\"verbose\":false,\"lang\":\"go\",\"version\":\"1.0\"}\r\n".into(),
        ),
        (
            "another cluster's CONNECT",
            "CONNECT {\"echo\":true,\"name\":\"NFAKE\",\"cluster\":\"other\"}\r\n".into(),
        ),
        (
            "an unknown op after CONNECT",
            format!("{connect}BOGUS x\r\n"),
        ),
    ];
    for (what, bytes) in cases {
        let (ninfo, want, nclosed) = route_port_answer(pn, bytes.as_bytes());
        let (tinfo, got, tclosed) = route_port_answer(pt, bytes.as_bytes());
        for info in [&ninfo, &tinfo] {
            let json: serde_json::Value =
                serde_json::from_str(info.trim_end().trim_start_matches("INFO ")).expect("info");
            assert!(
                json["server_id"].is_string() && json["client_id"].is_null(),
                "{info}"
            );
            assert_eq!(json["cluster"], "c1", "{info}");
        }
        let errs = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| l.starts_with("-ERR"))
                .map(String::from)
                .collect()
        };
        assert_eq!(
            errs(&got),
            errs(&want),
            "{what}: {got:?} vs nats-server {want:?}"
        );
        assert_eq!(tclosed, nclosed, "{what}: closed");
    }
    // Both still serve clients and a real route.
    for s in [&n, &t] {
        let mut c = RawConn::connect(s.port, STEP);
        c.send(b"CONNECT {}\r\nPING\r\n");
        assert!(c.read_until(b"PONG\r\n", STEP).text().contains("PONG"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leafs_of_a_clustered_server_reach_the_cluster() {
    let Some(_) = common::require_nats_server("route and leaf") else {
        return;
    };
    let dir = TempDir::new("route-leaf");
    let (pa, pt, pl) = (free_port(), free_port(), free_port());
    let a = node(&dir, "A", Some(Impl::NatsServer), pa, &[], "");
    let t = node(
        &dir,
        "T",
        None,
        pt,
        &[pa],
        &format!("leafnodes {{\n  port: {pl}\n  host: \"127.0.0.1\"\n}}\n"),
    );
    until_peers(&t, &["A"], &[&a, &t]);
    let lconf = write_conf(
        &dir,
        "leaf.conf",
        &format!("leafnodes {{\n  remotes = [ {{ url: \"nats-leaf://127.0.0.1:{pl}\" }} ]\n}}\n"),
    );
    let l = Server::start(Impl::NatsServer, &["-c", &lconf]);
    let ca = async_nats::connect(&a.url).await.expect("a");
    let cl = async_nats::connect(&l.url).await.expect("leaf");
    // Leaf to cluster, through the server under test.
    let mut sa = ca.subscribe("up").await.expect("sub");
    until_seen(&cl, "up", &mut sa).await;
    // Cluster to leaf.
    let mut sl = cl.subscribe("down").await.expect("sub");
    until_seen(&ca, "down", &mut sl).await;
    for n in 0..50 {
        cl.publish("up", n.to_string().into()).await.expect("pub");
        ca.publish("down", n.to_string().into()).await.expect("pub");
    }
    cl.flush().await.expect("flush");
    ca.flush().await.expect("flush");
    assert_eq!(drain(&mut sa).await.len(), 50);
    assert_eq!(drain(&mut sl).await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_authorization_both_ways_and_for_gossiped_peers() {
    let Some(_) = common::require_nats_server("route authorization") else {
        return;
    };
    let dir = TempDir::new("route-auth");
    let (pa, pt, pb, px) = (free_port(), free_port(), free_port(), free_port());
    let auth = "  authorization { user: ruser, password: pwd }\n";
    let conf = |name: &str, port: u16, routes: &[String]| {
        let routes: Vec<String> = routes.iter().map(|r| format!("\"{r}\"")).collect();
        write_conf(
            &dir,
            &format!("{name}.conf"),
            &format!(
                "server_name: {name}\ncluster {{\n  name: c1\n  listen: \"127.0.0.1:{port}\"\n{auth}  routes: [{}]\n}}\n",
                routes.join(", ")
            ),
        )
    };
    let good = |p: u16| format!("nats-route://ruser:pwd@127.0.0.1:{p}");
    let a = Server::start(Impl::NatsServer, &["-c", &conf("A", pa, &[]), "-m", "-1"]);
    let t = Server::under_test(SHARDS, &["-c", &conf("T", pt, &[good(pa)]), "-m", "-1"]);
    // B reaches T by gossip only: T dials it with its own cluster credentials (or B dials T
    // with B's), and both require them.
    let b = Server::start(
        Impl::NatsServer,
        &["-c", &conf("B", pb, &[good(pa)]), "-m", "-1"],
    );
    until_peers(&t, &["A", "B"], &[&a, &t, &b]);
    until_peers(&b, &["A", "T"], &[&a, &t, &b]);
    // A peer with a wrong password is refused by the server under test.
    let bad = format!("nats-route://ruser:wrong@127.0.0.1:{pt}");
    let xconf = write_conf(
        &dir,
        "X.conf",
        &format!(
            "server_name: X\ncluster {{\n  name: c1\n  listen: \"127.0.0.1:{px}\"\n  routes: [\"{bad}\"]\n}}\n"
        ),
    );
    let x = Server::start(Impl::NatsServer, &["-c", &xconf, "-m", "-1"]);
    let deadline = Instant::now() + STEP;
    while !x.log().contains("Authorization Violation") {
        assert!(Instant::now() < deadline, "X was not refused:\n{}", x.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(peers(&t), ["A", "B"]);
}
