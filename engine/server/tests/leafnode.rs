//! Tachyon as a leaf of a real nats-server 2.15 hub (`leafnodes { remotes }`), driven by the
//! official Rust client on both sides: the hub's `/leafz` sees the leaf and exactly the
//! interest of its clients on every shard; messages cross both ways once each, in order per
//! publisher, with headers and replies; queue groups split across the two get each message
//! once, local members first; a hub restart is survived without client action; a wrong port and
//! a loop are detected. `TACHYON_TEST_AGAINST=nats-server` runs the leaf as nats-server too.

mod common;

use std::time::{Duration, Instant};

use common::{drain, until_seen, Impl, Server, TempDir, PROBE};
use futures::StreamExt;

const SHARDS: usize = 3;
const STEP: Duration = Duration::from_secs(10);

use common::free_port;

/// A nats-server hub with its leafnode port at `leaf_port` and monitoring on.
fn hub(dir: &TempDir, leaf_port: u16) -> Server {
    let conf = write_conf(
        dir,
        "hub.conf",
        &format!("leafnodes {{\n  port: {leaf_port}\n  host: \"127.0.0.1\"\n}}\n"),
    );
    Server::start(Impl::NatsServer, &["-c", &conf, "-m", "-1"])
}

/// The server under test as a leaf, with one remote per URL in `urls`.
fn leaf(dir: &TempDir, urls: &[String], extra: &str) -> Server {
    let remotes: Vec<String> = urls.iter().map(|u| format!("{{ url: \"{u}\" }}")).collect();
    let conf = write_conf(
        dir,
        "leaf.conf",
        &format!(
            "leafnodes {{\n  reconnect: \"200ms\"\n  remotes = [ {} ]\n}}\n{extra}",
            remotes.join(", ")
        ),
    );
    Server::under_test(SHARDS, &["-c", &conf, "-m", "-1"])
}

fn leafz(hub: &Server) -> serde_json::Value {
    let (_, _, body) = common::http_get(hub.monitor_port(), "/leafz?subs=1");
    serde_json::from_str(&body).expect("leafz json")
}

/// Waits until the hub lists `n` leafs; returns its /leafz.
fn until_leafs(hub: &Server, n: u64, leaf: &Server) -> serde_json::Value {
    let deadline = Instant::now() + STEP;
    loop {
        let z = leafz(hub);
        if z["leafnodes"].as_u64() == Some(n) {
            return z;
        }
        assert!(
            Instant::now() < deadline,
            "hub lists {} leafs, want {n}; leaf log:\n{}",
            z["leafnodes"],
            leaf.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The subjects the hub says the leaf is interested in, each with how often it is listed.
fn hub_interest(hub: &Server) -> Vec<String> {
    let z = leafz(hub);
    z["leafs"][0]["subscriptions_list"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .filter(|s| !s.starts_with("$LDS."))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn until_interest(hub: &Server, want: impl Fn(&[String]) -> bool, what: &str) -> Vec<String> {
    let deadline = Instant::now() + STEP;
    loop {
        let got = hub_interest(hub);
        if want(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "{what}: hub lists {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn clients(url: &str, n: usize) -> Vec<async_nats::Client> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(async_nats::connect(url).await.expect("connect"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_both_ways_once_in_order() {
    let Some(_) = common::require_nats_server("leafnode messages") else {
        return;
    };
    let dir = TempDir::new("leaf-msgs");
    let lport = free_port();
    let h = hub(&dir, lport);
    let l = leaf(&dir, &[format!("nats-leaf://127.0.0.1:{lport}")], "");
    let z = until_leafs(&h, 1, &l);
    assert_eq!(z["leafs"][0]["account"], "$G", "{z}");

    let hc = async_nats::connect(&h.url).await.expect("hub client");
    // Enough connections that the leaf's shards all have some.
    let lcs = clients(&l.url, 6).await;

    // Fan-in: every leaf connection publishes; the hub subscriber gets each message once, in
    // order per publisher, headers and reply subjects intact.
    let mut hsub = hc.subscribe("fanin.>").await.expect("subscribe");
    until_seen(&lcs[0], "fanin.probe", &mut hsub).await;
    const PER: usize = 2000;
    for (i, c) in lcs.iter().enumerate() {
        for n in 0..PER {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Seq", n.to_string().as_str());
            c.publish_with_reply_and_headers(
                format!("fanin.{i}"),
                format!("reply.{i}.{n}"),
                h,
                format!("{i}:{n}").into(),
            )
            .await
            .expect("publish");
        }
        c.flush().await.expect("flush");
    }
    let mut next = vec![0usize; lcs.len()];
    let mut total = 0;
    while total < PER * lcs.len() {
        let m = match tokio::time::timeout(STEP, hsub.next()).await {
            Ok(Some(m)) => m,
            _ => panic!(
                "hub got {total} of {}; leaf log:\n{}",
                PER * lcs.len(),
                l.log()
            ),
        };
        if &m.payload[..] == PROBE {
            continue;
        }
        let text = String::from_utf8_lossy(&m.payload).into_owned();
        let (i, n) = text.split_once(':').expect("payload");
        let (i, n): (usize, usize) = (i.parse().expect("i"), n.parse().expect("n"));
        assert_eq!(n, next[i], "publisher {i} out of order or duplicated");
        next[i] += 1;
        assert_eq!(m.subject.as_str(), format!("fanin.{i}"));
        assert_eq!(m.reply.as_deref(), Some(format!("reply.{i}.{n}").as_str()));
        let seq = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Seq"))
            .map(|v| v.to_string());
        assert_eq!(seq.as_deref(), Some(n.to_string().as_str()));
        total += 1;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), hsub.next())
            .await
            .is_err(),
        "nothing more, no duplicate"
    );
    // The leaf's own /leafz and /varz, as nats-server's leaf side shows them.
    let lz = leafz(&l);
    assert_eq!(lz["leafnodes"], 1, "{lz}");
    let link = &lz["leafs"][0];
    assert_eq!(link["is_spoke"], true, "{lz}");
    assert_eq!(link["account"], "$G", "{lz}");
    assert!(
        link["out_msgs"].as_u64().unwrap_or(0) >= (PER * lcs.len()) as u64,
        "{lz}"
    );
    assert!(!link["rtt"].as_str().unwrap_or("").is_empty(), "{lz}");
    let list: Vec<&str> = link["subscriptions_list"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    assert!(list.contains(&"fanin.>"), "the hub's interest: {lz}");
    let hub_name = leafz(&h)["leafs"][0]["name"].clone();
    assert!(link["name"].is_string(), "{lz}");
    assert_ne!(link["name"], hub_name, "each side names the other");
    let (_, _, varz) = common::http_get(l.monitor_port(), "/varz");
    let varz: serde_json::Value = serde_json::from_str(&varz).expect("varz");
    assert_eq!(varz["leafnodes"], 1, "{varz}");

    // Hub to leaf: subscribers on several connections each get every message once.
    let mut lsubs = Vec::new();
    for c in &lcs[..3] {
        lsubs.push(c.subscribe("down.x").await.expect("subscribe"));
    }
    for s in lsubs.iter_mut() {
        until_seen(&hc, "down.x", s).await;
    }
    for n in 0..100 {
        hc.publish("down.x", format!("{n}").into())
            .await
            .expect("publish");
    }
    hc.flush().await.expect("flush");
    for s in lsubs.iter_mut() {
        let mut n = 0;
        while n < 100 {
            let m = tokio::time::timeout(STEP, s.next())
                .await
                .expect("in time")
                .expect("message");
            if &m.payload[..] == PROBE {
                continue;
            }
            assert_eq!(m.payload, format!("{n}").as_bytes());
            n += 1;
        }
    }

    // Request/reply both ways.
    let mut svc = hc.subscribe("svc.hub").await.expect("subscribe");
    let hc2 = hc.clone();
    let hub_task = tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(r) = m.reply {
                let _ = hc2.publish(r, m.payload).await;
            }
        }
    });
    let mut lsvc = lcs[4].subscribe("svc.leaf").await.expect("subscribe");
    let lc4 = lcs[4].clone();
    let leaf_task = tokio::spawn(async move {
        while let Some(m) = lsvc.next().await {
            if let Some(r) = m.reply {
                let _ = lc4.publish(r, m.payload).await;
            }
        }
    });
    let deadline = Instant::now() + STEP;
    let answer = loop {
        match tokio::time::timeout(
            Duration::from_secs(1),
            lcs[1].request("svc.hub", "up".into()),
        )
        .await
        {
            Ok(Ok(m)) => break m,
            _ if Instant::now() < deadline => continue,
            other => panic!("leaf -> hub request: {other:?}"),
        }
    };
    assert_eq!(answer.payload, "up".as_bytes());
    let deadline = Instant::now() + STEP;
    let answer = loop {
        match tokio::time::timeout(
            Duration::from_secs(1),
            hc.request("svc.leaf", "down".into()),
        )
        .await
        {
            Ok(Ok(m)) => break m,
            _ if Instant::now() < deadline => continue,
            other => panic!("hub -> leaf request: {other:?}"),
        }
    };
    assert_eq!(answer.payload, "down".as_bytes());
    hub_task.abort();
    leaf_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interest_is_the_union_over_shards_and_goes_with_the_last_unsub() {
    let Some(_) = common::require_nats_server("leafnode interest") else {
        return;
    };
    let dir = TempDir::new("leaf-interest");
    let lport = free_port();
    let h = hub(&dir, lport);
    let l = leaf(&dir, &[format!("nats-leaf://127.0.0.1:{lport}")], "");
    until_leafs(&h, 1, &l);
    let lcs = clients(&l.url, 6).await;
    let mut subs = Vec::new();
    for c in &lcs {
        subs.push(c.subscribe("many.a").await.expect("subscribe"));
        c.flush().await.expect("flush");
    }
    let got = until_interest(&h, |s| s.iter().any(|x| x == "many.a"), "interest arrives");
    assert_eq!(
        got.iter().filter(|x| *x == "many.a").count(),
        1,
        "announced once: {got:?}"
    );
    // All but one go: the hub still has it.
    for s in subs.iter_mut().skip(1) {
        s.unsubscribe().await.expect("unsubscribe");
    }
    for c in &lcs {
        c.flush().await.expect("flush");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(hub_interest(&h).iter().any(|x| x == "many.a"));
    // The last one goes: so does the hub's interest, and hub publishes stop crossing.
    subs[0].unsubscribe().await.expect("unsubscribe");
    lcs[0].flush().await.expect("flush");
    until_interest(&h, |s| !s.iter().any(|x| x == "many.a"), "interest leaves");
    let z = leafz(&h);
    let out_before = z["leafs"][0]["out_msgs"].as_u64().unwrap_or(0);
    let hc = async_nats::connect(&h.url).await.expect("hub client");
    for _ in 0..10 {
        hc.publish("many.a", "x".into()).await.expect("publish");
    }
    hc.flush().await.expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    let z = leafz(&h);
    assert_eq!(
        z["leafs"][0]["out_msgs"].as_u64().unwrap_or(0),
        out_before,
        "no interest, nothing crossed: {z}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_groups_split_over_hub_and_leaf_get_each_message_once_local_first() {
    let Some(_) = common::require_nats_server("leafnode queues") else {
        return;
    };
    let dir = TempDir::new("leaf-queue");
    let lport = free_port();
    let h = hub(&dir, lport);
    let l = leaf(&dir, &[format!("nats-leaf://127.0.0.1:{lport}")], "");
    until_leafs(&h, 1, &l);
    let hcs = clients(&h.url, 2).await;
    let lcs = clients(&l.url, 3).await;
    let mut hq = Vec::new();
    for c in &hcs {
        hq.push(c.queue_subscribe("work", "q".into()).await.expect("qsub"));
    }
    let mut lq = Vec::new();
    for c in &lcs[..2] {
        lq.push(c.queue_subscribe("work", "q".into()).await.expect("qsub"));
        c.flush().await.expect("flush");
    }
    until_interest(
        &h,
        |s| s.iter().any(|x| x.starts_with("work")),
        "queue interest",
    );
    for c in &hcs {
        c.flush().await.expect("flush");
    }
    // Give the hub's own queue interest time to reach the leaf.
    tokio::time::sleep(Duration::from_millis(500)).await;

    async fn count(subs: &mut [async_nats::Subscriber]) -> usize {
        let mut n = 0;
        for s in subs.iter_mut() {
            while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), s.next()).await
            {
                n += 1;
            }
        }
        n
    }
    // From the leaf: its own members take everything.
    for _ in 0..200 {
        lcs[2].publish("work", "l".into()).await.expect("publish");
    }
    lcs[2].flush().await.expect("flush");
    let (at_leaf, at_hub) = (count(&mut lq).await, count(&mut hq).await);
    assert_eq!((at_leaf, at_hub), (200, 0), "leaf publishes stay local");
    // From the hub: nats-server keeps them at its members.
    for _ in 0..200 {
        hcs[0].publish("work", "h".into()).await.expect("publish");
    }
    hcs[0].flush().await.expect("flush");
    let (at_leaf, at_hub) = (count(&mut lq).await, count(&mut hq).await);
    assert_eq!(at_leaf + at_hub, 200, "exactly once");
    assert_eq!(at_hub, 200, "hub publishes stay at the hub");
    // Without leaf members, the leaf's publishes go to the hub's, once each.
    for s in lq.iter_mut() {
        s.unsubscribe().await.expect("unsubscribe");
    }
    for c in &lcs {
        c.flush().await.expect("flush");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..200 {
        lcs[2].publish("work", "l2".into()).await.expect("publish");
    }
    lcs[2].flush().await.expect("flush");
    assert_eq!(count(&mut hq).await, 200, "to the hub's members, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_restart_is_survived_without_client_action() {
    let Some(_) = common::require_nats_server("leafnode hub restart") else {
        return;
    };
    let dir = TempDir::new("leaf-restart");
    let lport = free_port();
    let mut h = hub(&dir, lport);
    let l = leaf(&dir, &[format!("nats-leaf://127.0.0.1:{lport}")], "");
    until_leafs(&h, 1, &l);
    let lc = async_nats::connect(&l.url).await.expect("leaf client");
    let mut lsub = lc.subscribe("back.down").await.expect("subscribe");
    lc.flush().await.expect("flush");
    until_interest(&h, |s| s.iter().any(|x| x == "back.down"), "interest");

    h.restart();
    until_leafs(&h, 1, &l);
    // The leaf's interest came back with the link, no client did anything.
    until_interest(&h, |s| s.iter().any(|x| x == "back.down"), "interest again");
    let hc = async_nats::connect(&h.url).await.expect("hub client");
    until_seen(&hc, "back.down", &mut lsub).await;
    let mut hsub = hc.subscribe("back.up").await.expect("subscribe");
    until_seen(&lc, "back.up", &mut hsub).await;
    assert!(
        !l.log().contains("Client Closed") || l.log().contains("Leafnode connection closed"),
        "clients stay"
    );
    // The leaf's client connection was never dropped: it still publishes and receives.
    lc.publish("back.up", "after".into())
        .await
        .expect("publish");
    lc.flush().await.expect("flush");
    let m = tokio::time::timeout(STEP, hsub.next())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(m.payload, "after".as_bytes());
}

#[test]
fn a_wrong_port_and_a_loop_are_detected() {
    let Some(_) = common::require_nats_server("leafnode wrong port and loop") else {
        return;
    };
    let dir = TempDir::new("leaf-wrong");
    let lport = free_port();
    let h = hub(&dir, lport);
    // The hub's client port is not a leafnode port.
    let l = leaf(&dir, std::slice::from_ref(&h.url), "");
    until_log(&l, "attempted to connect to wrong port");
    // The leaf keeps serving its own clients.
    let mut c = common::RawConn::connect(l.port, Duration::from_secs(2));
    c.send(b"CONNECT {}\r\nPING\r\n");
    assert!(c
        .read_until(b"PONG\r\n", Duration::from_secs(2))
        .text()
        .contains("PONG"));
    drop(l);

    // A loop: hub 2 is a leaf of hub 1, and the leaf under test joins both. Hub 1 passes the
    // leaf's loop-detection subject to hub 2, which passes it back to the leaf.
    let dir2 = TempDir::new("leaf-loop");
    let lport2 = free_port();
    let conf = write_conf(&dir2, "hub2.conf", &format!(
            "leafnodes {{\n  port: {lport2}\n  host: \"127.0.0.1\"\n  remotes = [ {{ url: \"nats-leaf://127.0.0.1:{lport}\" }} ]\n}}\n"
        ));
    let h2 = Server::start(Impl::NatsServer, &["-c", &conf, "-m", "-1"]);
    until_leafs(&h, 1, &h2);
    let l = leaf(
        &dir2,
        &[
            format!("nats-leaf://127.0.0.1:{lport}"),
            format!("nats-leaf://127.0.0.1:{lport2}"),
        ],
        "",
    );
    let deadline = Instant::now() + STEP;
    while !l
        .log()
        .contains("Loop detected for leafnode account=\"$G\"")
    {
        assert!(
            Instant::now() < deadline,
            "leaf log:\n{}\nhub 2 log:\n{}",
            l.log(),
            h2.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `s` logged `needle`.
fn until_log(s: &Server, needle: &str) {
    let deadline = Instant::now() + STEP;
    while !s.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The accounts of the links `/leafz` lists, sorted.
fn link_accounts(z: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = z["leafs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["account"].as_str().map(String::from))
        .collect();
    v.sort();
    v
}

/// Writes a config file `name` in `dir`; its path, for `-c`.
use common::write_conf;

/// Accounts: each remote binds a local account to the hub account its credentials log into;
/// traffic stays inside each pair. A remote with a wrong password is refused and retried
/// while the others work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_pair_up_and_stay_apart() {
    let Some(_) = common::require_nats_server("leafnode accounts") else {
        return;
    };
    let dir = TempDir::new("leaf-accounts");
    let lport = free_port();
    let conf = write_conf(&dir, "hub.conf", &format!(
            "leafnodes {{\n  port: {lport}\n  host: \"127.0.0.1\"\n}}\n\
             accounts {{\n  A: {{ users: [ {{ user: a, password: pa }}, {{ user: ca, password: x }} ] }}\n  \
             B: {{ users: [ {{ user: b, password: pb }}, {{ user: cb, password: x }} ] }}\n}}\n"
        ));
    let h = Server::start(Impl::NatsServer, &["-c", &conf, "-m", "-1"]);
    let lconf = write_conf(
        &dir,
        "leaf.conf",
        &format!(
            "accounts {{\n  LA: {{ users: [ {{ user: la, password: x }} ] }}\n  \
             LB: {{ users: [ {{ user: lb, password: x }} ] }}\n}}\n\
             leafnodes {{\n  reconnect: \"200ms\"\n  remotes = [\n    \
             {{ url: \"nats-leaf://a:pa@127.0.0.1:{lport}\", account: LA }}\n    \
             {{ url: \"nats-leaf://b:pb@127.0.0.1:{lport}\", account: LB }}\n    \
             {{ url: \"nats-leaf://b:wrong@127.0.0.1:{lport}\", account: LB }}\n  ]\n}}\n"
        ),
    );
    let l = Server::under_test(SHARDS, &["-c", &lconf]);
    let z = until_leafs(&h, 2, &l);
    assert_eq!(link_accounts(&z), ["A", "B"], "{z}");
    until_log(&l, "Authorization Violation");

    let user = |u: &str, s: &Server| {
        let (u, url) = (u.to_string(), s.url.clone());
        async move {
            async_nats::ConnectOptions::with_user_and_password(u.clone(), "x".into())
                .connect(url)
                .await
                .unwrap_or_else(|e| panic!("{u}: {e}"))
        }
    };
    let ha = user("ca", &h).await;
    let hb = user("cb", &h).await;
    let la = user("la", &l).await;
    let lb = user("lb", &l).await;
    let mut ha_sub = ha.subscribe("iso.>").await.expect("subscribe");
    let mut hb_sub = hb.subscribe("iso.>").await.expect("subscribe");
    let mut lb_sub = lb.subscribe("iso.>").await.expect("subscribe");
    until_seen(&la, "iso.probe", &mut ha_sub).await;
    until_seen(&hb, "iso.probe", &mut lb_sub).await;
    // LA → A only; B → LB only.
    la.publish("iso.a", "from LA".into())
        .await
        .expect("publish");
    la.flush().await.expect("flush");
    hb.publish("iso.b", "from B".into()).await.expect("publish");
    hb.flush().await.expect("flush");
    let m = tokio::time::timeout(STEP, ha_sub.next())
        .await
        .expect("A gets it")
        .expect("msg");
    assert_eq!(m.payload, "from LA".as_bytes());
    let m = tokio::time::timeout(STEP, lb_sub.next())
        .await
        .expect("LB gets it")
        .expect("msg");
    assert_eq!(m.payload, "from B".as_bytes());
    // Nothing else anywhere: B sees its own publish, A nothing from B, LB nothing from LA.
    assert_eq!(drain(&mut hb_sub).await, ["from B"]);
    assert!(drain(&mut ha_sub).await.is_empty());
    assert!(drain(&mut lb_sub).await.is_empty());
}

/// JetStream on both sides: as nats-server does without domains, JetStream's API, KV and
/// object-store subjects stay off the link both ways, so each side's API answers once, alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_subjects_stay_on_their_side() {
    let Some(_) = common::require_nats_server("leafnode jetstream") else {
        return;
    };
    let dir = TempDir::new("leaf-js");
    let lport = free_port();
    let hub_store = dir.0.join("hub-js");
    let conf = write_conf(
        &dir,
        "hub.conf",
        &format!(
            "leafnodes {{\n  port: {lport}\n  host: \"127.0.0.1\"\n}}\njetstream {{\n  store_dir: \"{}\"\n}}\n",
            hub_store.display()
        ),
    );
    let h = Server::start(Impl::NatsServer, &["-c", &conf, "-m", "-1"]);
    let leaf_store = dir.0.join("leaf-js");
    let l = leaf(
        &dir,
        &[format!("nats-leaf://127.0.0.1:{lport}")],
        &format!(
            "jetstream {{\n  store_dir: \"{}\"\n}}\n",
            leaf_store.display()
        ),
    );
    until_leafs(&h, 1, &l);
    let hc = async_nats::connect(&h.url).await.expect("hub client");
    let lc = async_nats::connect(&l.url).await.expect("leaf client");
    // Plain interest crosses (the link is up and announcing)...
    let mut hsub = hc.subscribe("plain.x").await.expect("subscribe");
    until_seen(&lc, "plain.x", &mut hsub).await;
    // ...JetStream's does not.
    let listed = hub_interest(&h);
    assert!(
        !listed
            .iter()
            .any(|s| s.starts_with("$JS.API") || s.starts_with("$KV.")),
        "{listed:?}"
    );
    for (who, c, url) in [("hub", &hc, &h.url), ("leaf", &lc, &l.url)] {
        let inbox = c.new_inbox();
        let mut replies = c.subscribe(inbox.clone()).await.expect("inbox");
        c.publish_with_reply("$JS.API.INFO", inbox, "".into())
            .await
            .expect("request");
        c.flush().await.expect("flush");
        let answers = drain(&mut replies).await;
        assert_eq!(answers.len(), 1, "{who} ({url}): {answers:?}");
        assert!(answers[0].contains("io.nats.jetstream.api.v1.account_info_response"));
    }
    // The leaf never offered its JetStream interest: the hub, which refuses it, logged no
    // permissions violation for it.
    assert!(!h.log().contains("Permissions Violation"), "{}", h.log());
    assert!(!l.log().contains("Permissions Violation"), "{}", l.log());
}

/// The server under test as a hub: its leafnode port at `port`, `extra` inside the block.
fn hub_under_test(dir: &TempDir, port: u16, extra: &str) -> Server {
    let conf = write_conf(
        dir,
        "hub-ut.conf",
        &format!("leafnodes {{\n  port: {port}\n  host: \"127.0.0.1\"\n{extra}}}\n"),
    );
    Server::under_test(SHARDS, &["-c", &conf, "-m", "-1"])
}

/// A nats-server (or Tachyon, `which`) leaf of the hub at `port`.
fn leaf_of(dir: &TempDir, which: Impl, name: &str, url: &str) -> Server {
    let conf = write_conf(
        dir,
        &format!("{name}.conf"),
        &format!(
            "leafnodes {{\n  reconnect: \"200ms\"\n  remotes = [ {{ url: \"{url}\" }} ]\n}}\n"
        ),
    );
    match which {
        Impl::Tachyon => Server::tachyon(SHARDS, &["-c", &conf, "-m", "-1"]),
        other => Server::start(other, &["-c", &conf, "-m", "-1"]),
    }
}

/// Leafs connecting to the server under test: a nats-server leaf and a Tachyon leaf on one
/// hub, messages between the hub and each leaf and from one leaf to the other (the hub passes
/// each leaf's interest to the other), queue members on a leaf used only when the hub has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leafs_connect_to_us_and_reach_each_other_through_us() {
    let Some(_) = common::require_nats_server("leafnode hub") else {
        return;
    };
    let dir = TempDir::new("leaf-hub");
    let lport = free_port();
    let h = hub_under_test(&dir, lport, "");
    let url = format!("nats-leaf://127.0.0.1:{lport}");
    let a = leaf_of(&dir, Impl::NatsServer, "leaf-a", &url);
    let b = leaf_of(&dir, Impl::Tachyon, "leaf-b", &url);
    let z = until_leafs(&h, 2, &a);
    for l in z["leafs"].as_array().expect("leafs") {
        assert_eq!(l["is_spoke"], false, "{z}");
        assert_eq!(l["account"], "$G", "{z}");
    }
    let hc = async_nats::connect(&h.url).await.expect("hub client");
    let ac = async_nats::connect(&a.url).await.expect("leaf a client");
    let bc = async_nats::connect(&b.url).await.expect("leaf b client");
    // Hub <-> each leaf.
    let mut hsub = hc.subscribe("up.>").await.expect("subscribe");
    until_seen(&ac, "up.a", &mut hsub).await;
    until_seen(&bc, "up.b", &mut hsub).await;
    let mut asub = ac.subscribe("down.a").await.expect("subscribe");
    until_seen(&hc, "down.a", &mut asub).await;
    // Leaf A -> leaf B, through the hub, once.
    let mut bsub = bc.subscribe("across").await.expect("subscribe");
    until_seen(&ac, "across", &mut bsub).await;
    for n in 0..50 {
        ac.publish("across", format!("{n}").into())
            .await
            .expect("publish");
    }
    ac.flush().await.expect("flush");
    let got = drain(&mut bsub).await;
    let want: Vec<String> = (0..50).map(|n| n.to_string()).collect();
    assert_eq!(got, want, "each once, in order");
    // Request from leaf B answered on leaf A.
    let mut svc = ac.subscribe("svc.a").await.expect("subscribe");
    let ac2 = ac.clone();
    let task = tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(r) = m.reply {
                let _ = ac2.publish(r, m.payload).await;
            }
        }
    });
    let deadline = Instant::now() + STEP;
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(1), bc.request("svc.a", "hi".into())).await {
            Ok(Ok(m)) => break m,
            _ if Instant::now() < deadline => continue,
            other => panic!("leaf b -> leaf a request: {other:?}"),
        }
    };
    assert_eq!(answer.payload, "hi".as_bytes());
    task.abort();
    // The hub's own queue members take the hub's messages; without them, a leaf's do.
    let mut aq = ac.queue_subscribe("jobs", "q".into()).await.expect("qsub");
    let mut hq = hc.queue_subscribe("jobs", "q".into()).await.expect("qsub");
    hc.flush().await.expect("flush");
    until_interest_at(&h, "jobs").await;
    for _ in 0..100 {
        hc.publish("jobs", "x".into()).await.expect("publish");
    }
    hc.flush().await.expect("flush");
    assert_eq!(
        (drain(&mut hq).await.len(), drain(&mut aq).await.len()),
        (100, 0)
    );
    hq.unsubscribe().await.expect("unsubscribe");
    hc.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..100 {
        hc.publish("jobs", "y".into()).await.expect("publish");
    }
    hc.flush().await.expect("flush");
    assert_eq!(
        drain(&mut aq).await.len(),
        100,
        "to the leaf's member, once each"
    );
}

/// Waits until the hub under test's /leafz lists `subject` among some leaf's subscriptions.
async fn until_interest_at(hub: &Server, subject: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let z = leafz(hub);
        let found = z["leafs"].as_array().into_iter().flatten().any(|l| {
            l["subscriptions_list"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s.as_str().is_some_and(|s| s.starts_with(subject)))
        });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "{subject} never listed: {z}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `leafnodes { authorization { users } }`: each user binds its account; a wrong password is
/// refused with nats-server's error.
#[test]
fn leaf_users_bind_accounts_and_bad_passwords_are_refused() {
    let Some(_) = common::require_nats_server("leafnode hub auth") else {
        return;
    };
    let dir = TempDir::new("leaf-hub-auth");
    let lport = free_port();
    let conf = write_conf(&dir, "hub-auth.conf", &format!(
            "accounts {{ A: {{}}, B: {{}} }}\n\
             leafnodes {{\n  port: {lport}\n  host: \"127.0.0.1\"\n  authorization {{\n    \
             users = [ {{ user: la, password: pa, account: A }}, {{ user: lb, password: pb, account: B }} ]\n  }}\n}}\n"
        ));
    let h = Server::under_test(SHARDS, &["-c", &conf, "-m", "-1"]);
    let a = leaf_of(
        &dir,
        Impl::NatsServer,
        "la",
        &format!("nats-leaf://la:pa@127.0.0.1:{lport}"),
    );
    let b = leaf_of(
        &dir,
        Impl::NatsServer,
        "lb",
        &format!("nats-leaf://lb:pb@127.0.0.1:{lport}"),
    );
    let bad = leaf_of(
        &dir,
        Impl::NatsServer,
        "lx",
        &format!("nats-leaf://la:nope@127.0.0.1:{lport}"),
    );
    let z = until_leafs(&h, 2, &a);
    assert_eq!(link_accounts(&z), ["A", "B"], "{z}");
    until_log(&bad, "Authorization Violation");
    drop(b);
}

/// Bad input on the leafnode port gets what nats-server's gives it: an op before CONNECT is an
/// authorization failure, a client's CONNECT is told it reached the leafnode port, an unknown
/// op after CONNECT is a protocol error; each closes only that connection.
#[test]
fn bad_input_on_the_leafnode_port_as_nats_server() {
    let Some(_) = common::require_nats_server("leafnode port bad input") else {
        return;
    };
    let cases: [(&str, Vec<&[u8]>); 4] = [
        ("garbage first", vec![b"GARBAGE\r\n"]),
        ("ping first", vec![b"PING\r\n"]),
        (
            "a client",
            vec![b"CONNECT {\"verbose\":false,\"lang\":\"rust\",\"version\":\"1\",\"protocol\":1}\r\nPING\r\n"],
        ),
        ("unknown op", vec![b"CONNECT {}\r\nBOGUS\r\n"]),
    ];
    let mut seen: Vec<Vec<String>> = Vec::new();
    for which in [Impl::NatsServer, Impl::Tachyon] {
        let dir = TempDir::new("leaf-bad");
        let lport = free_port();
        let conf = write_conf(
            &dir,
            "hub.conf",
            &format!("leafnodes {{\n  port: {lport}\n  host: \"127.0.0.1\"\n}}\n"),
        );
        let s = match which {
            Impl::Tachyon => Server::tachyon(SHARDS, &["-c", &conf]),
            other => Server::start(other, &["-c", &conf]),
        };
        let mut answers = Vec::new();
        for (name, steps) in &cases {
            let mut c = common::RawConn::connect(lport, Duration::from_secs(2));
            let info = c.info.clone();
            let json: serde_json::Value =
                serde_json::from_str(info[5..].trim()).expect("leaf INFO json");
            assert!(
                json["client_id"].as_u64().unwrap_or(0) > 0,
                "{name}: {info}"
            );
            assert!(json["leafnode_urls"].is_array(), "{name}: {info}");
            assert_eq!(json["auth_required"], true, "{name}: {info}");
            for step in steps {
                c.send(step);
            }
            let got = c.read_to_close(Duration::from_secs(3));
            let closed = got.closed;
            let got = got.text();
            // Keep what is comparable: the errors and the close (INFO and the hub's own
            // interest differ between servers by nature).
            let mut lines: Vec<String> = got
                .split("\r\n")
                .filter(|l| l.starts_with("-ERR"))
                .map(String::from)
                .collect();
            lines.push(format!("{name}: closed={closed}"));
            answers.push(lines.join(" | "));
        }
        // The server still serves clients.
        let mut c = common::RawConn::connect(s.port, Duration::from_secs(2));
        c.send(b"CONNECT {}\r\nPING\r\n");
        assert!(c
            .read_until(b"PONG\r\n", Duration::from_secs(2))
            .text()
            .contains("PONG"));
        seen.push(answers);
    }
    assert_eq!(seen[0], seen[1]);
}

/// Two leafs under test on one nats-server hub: a message published anywhere reaches each
/// subscriber once (no path carries it twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leafs_on_one_hub_deliver_once_everywhere() {
    let Some(_) = common::require_nats_server("leafnode two leafs") else {
        return;
    };
    let dir = TempDir::new("leaf-two");
    let lport = free_port();
    let h = hub(&dir, lport);
    let url = format!("nats-leaf://127.0.0.1:{lport}");
    let l1 = leaf(&dir, std::slice::from_ref(&url), "");
    let dir2 = TempDir::new("leaf-two-b");
    let l2 = leaf(&dir2, std::slice::from_ref(&url), "");
    until_leafs(&h, 2, &l1);
    let hc = async_nats::connect(&h.url).await.expect("hub");
    let c1 = async_nats::connect(&l1.url).await.expect("leaf 1");
    let c2 = async_nats::connect(&l2.url).await.expect("leaf 2");
    let mut subs = Vec::new();
    for c in [&hc, &c1, &c2] {
        subs.push(c.subscribe("all.>").await.expect("subscribe"));
    }
    // Every subscription visible from every publisher.
    for p in [&hc, &c1, &c2] {
        for s in subs.iter_mut() {
            until_seen(p, "all.probe", s).await;
        }
    }
    for s in subs.iter_mut() {
        drain(s).await;
    }
    for (i, p) in [&hc, &c1, &c2].into_iter().enumerate() {
        for n in 0..20 {
            p.publish(format!("all.{i}"), format!("{i}:{n}").into())
                .await
                .expect("publish");
        }
        p.flush().await.expect("flush");
    }
    for (k, s) in subs.iter_mut().enumerate() {
        let mut got = drain(s).await;
        got.sort();
        let mut want: Vec<String> = (0..3)
            .flat_map(|i| (0..20).map(move |n| format!("{i}:{n}")))
            .collect();
        want.sort();
        assert_eq!(got, want, "subscriber {k}: each message once");
    }
}

/// TLS to a hub that requires it: the remote's `tls { ca_file }` verifies the hub's
/// certificate; without a `tls {}` block the leaf says why it cannot join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_hub_that_requires_it() {
    let Some(_) = common::require_nats_server("leafnode tls") else {
        return;
    };
    let dir = TempDir::new("leaf-tls");
    let (cert, key) = common::self_signed(&dir);
    let lport = free_port();
    let conf = write_conf(&dir, "hub.conf", &format!(
            "leafnodes {{\n  port: {lport}\n  host: \"127.0.0.1\"\n  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n  }}\n}}\n",
            cert.display(),
            key.display()
        ));
    let h = Server::start(Impl::NatsServer, &["-c", &conf, "-m", "-1"]);
    let lconf = write_conf(&dir, "leaf.conf", &format!(
            "leafnodes {{\n  reconnect: \"200ms\"\n  remotes = [ {{\n    url: \"tls://127.0.0.1:{lport}\"\n    tls {{ ca_file: \"{}\" }}\n  }} ]\n}}\n",
            cert.display()
        ));
    let l = Server::under_test(SHARDS, &["-c", &lconf]);
    until_leafs(&h, 1, &l);
    let hc = async_nats::connect(&h.url).await.expect("hub client");
    let lc = async_nats::connect(&l.url).await.expect("leaf client");
    let mut hsub = hc.subscribe("secure.>").await.expect("subscribe");
    until_seen(&lc, "secure.up", &mut hsub).await;
    let mut lsub = lc.subscribe("secure.down").await.expect("subscribe");
    until_seen(&hc, "secure.down", &mut lsub).await;
    let big = vec![7u8; 200_000];
    hc.publish("secure.down", big.clone().into())
        .await
        .expect("publish");
    hc.flush().await.expect("flush");
    let m = tokio::time::timeout(STEP, lsub.next())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(m.payload.len(), big.len());
    drop(l);

    // No tls {} block: the leaf does not join, and says why.
    let dir2 = TempDir::new("leaf-tls-none");
    let l = leaf(&dir2, &[format!("nats-leaf://127.0.0.1:{lport}")], "");
    until_log(&l, "TLS");
}

/// A leafnode port with `tls {}`: a nats-server leaf with the CA joins over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leafs_join_us_over_tls() {
    let Some(_) = common::require_nats_server("leafnode hub tls") else {
        return;
    };
    let dir = TempDir::new("leaf-hub-tls");
    let (cert, key) = common::self_signed(&dir);
    let lport = free_port();
    let h = hub_under_test(
        &dir,
        lport,
        &format!(
            "  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n  }}\n",
            cert.display(),
            key.display()
        ),
    );
    let lconf = write_conf(&dir, "leaf-tls.conf", &format!(
            "leafnodes {{\n  reconnect: \"200ms\"\n  remotes = [ {{\n    url: \"tls://127.0.0.1:{lport}\"\n    tls {{ ca_file: \"{}\" }}\n  }} ]\n}}\n",
            cert.display()
        ));
    let l = Server::start(Impl::NatsServer, &["-c", &lconf, "-m", "-1"]);
    until_leafs(&h, 1, &l);
    let hc = async_nats::connect(&h.url).await.expect("hub client");
    let lc = async_nats::connect(&l.url).await.expect("leaf client");
    let mut hsub = hc.subscribe("tls.up").await.expect("subscribe");
    until_seen(&lc, "tls.up", &mut hsub).await;
    let mut lsub = lc.subscribe("tls.down").await.expect("subscribe");
    until_seen(&hc, "tls.down", &mut lsub).await;
    // A plain-text leaf gets no further than the INFO.
    let mut raw = common::RawConn::connect(lport, Duration::from_secs(2));
    assert!(raw.info.contains("\"tls_required\":true"), "{}", raw.info);
    raw.send(b"CONNECT {}\r\n");
    assert!(raw.read_to_close(Duration::from_secs(5)).closed);
}

/// A remote's `nkey`: the hub's nonce signed with the seed's key, the hub accepting the key
/// as one of its users; a seed that is not one stops the start, as nats-server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_remotes_sign_the_hubs_nonce() {
    let Some(_) = common::require_nats_server("leafnode nkey") else {
        return;
    };
    let kp = nkeys::KeyPair::new_user();
    let seed = kp.seed().expect("seed");
    let dir = TempDir::new("leaf-nkey");
    let lport = free_port();
    let conf = write_conf(&dir, "hub.conf", &format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }}, {{ user: c, password: x }} ] }}\nleafnodes {{\n  port: {lport}\n  host: \"127.0.0.1\"\n}}\n",
            kp.public_key()
        ));
    let h = Server::start(Impl::NatsServer, &["-c", &conf, "-m", "-1"]);
    let lconf = write_conf(&dir, "leaf.conf", &format!(
            "leafnodes {{\n  reconnect: \"200ms\"\n  remotes = [ {{ url: \"nats-leaf://127.0.0.1:{lport}\", nkey: \"{seed}\" }} ]\n}}\n"
        ));
    let l = Server::under_test(SHARDS, &["-c", &lconf]);
    until_leafs(&h, 1, &l);
    let hc = async_nats::ConnectOptions::with_user_and_password("c".into(), "x".into())
        .connect(&h.url)
        .await
        .expect("hub client");
    let lc = async_nats::connect(&l.url).await.expect("leaf client");
    let mut hsub = hc.subscribe("signed.>").await.expect("subscribe");
    until_seen(&lc, "signed.up", &mut hsub).await;
    drop(l);

    let bad = write_conf(&dir, "bad.conf", &format!(
            "leafnodes {{ remotes = [ {{ url: \"nats-leaf://127.0.0.1:{lport}\", nkey: \"{}\" }} ] }}\n",
            kp.public_key()
        ));
    let bin = match common::under_test() {
        Impl::Tachyon => std::path::PathBuf::from(env!("CARGO_BIN_EXE_tachyon")),
        Impl::NatsServer => common::nats_server_bin().expect("nats-server"),
    };
    let out = std::process::Command::new(bin)
        .args(["-c", &bad, "-p", "-1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("not a valid seed"), "{text}");
}

/// A JWT in the shape nats-server's operator mode reads (`ed25519-nkey`, claims under `nats`),
/// signed by `issuer` for `subject`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "jti": format!("J{now}{}", subject.len()),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let sig = issuer.sign(body.as_bytes()).expect("sign");
    format!("{body}.{}", b64(&sig))
}

/// The text of a user credentials file, as `nsc` writes one.
fn creds_file(user_jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

/// A remote's `credentials` file against a hub in operator mode: CONNECT carries the user JWT
/// and the nonce signed with the file's seed, and the hub binds the link to the JWT's account;
/// a file whose seed does not match its JWT is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_file_remotes_join_an_operator_mode_hub() {
    let Some(_) = common::require_nats_server("leafnode credentials") else {
        return;
    };
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let op_jwt = jwt(
        &operator,
        &operator.public_key(),
        "OP",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let limits = serde_json::json!({"subs": -1, "data": -1, "payload": -1, "imports": -1,
        "exports": -1, "wildcards": true, "conn": -1, "leaf": -1});
    let acc_jwt = jwt(
        &operator,
        &account.public_key(),
        "ACC",
        serde_json::json!({"limits": limits, "type": "account", "version": 2}),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "U",
        serde_json::json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2}),
    );
    let dir = TempDir::new("leaf-creds");
    let lport = free_port();
    let hconf = write_conf(
        &dir,
        "hub.conf",
        &format!(
            "operator: \"{op_jwt}\"\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{acc_jwt}\"\n}}\nleafnodes {{\n  port: {lport}\n  host: \"127.0.0.1\"\n}}\n",
            account.public_key()
        ),
    );
    let h = Server::start(Impl::NatsServer, &["-c", &hconf, "-m", "-1"]);
    let creds = dir.0.join("user.creds");
    std::fs::write(&creds, creds_file(&user_jwt, &user.seed().expect("seed"))).expect("creds");
    let lconf = write_conf(
        &dir,
        "leaf.conf",
        &format!(
            "leafnodes {{\n  reconnect: \"200ms\"\n  remotes = [ {{ url: \"nats-leaf://127.0.0.1:{lport}\", credentials: \"{}\" }} ]\n}}\n",
            creds.display()
        ),
    );
    let l = Server::under_test(SHARDS, &["-c", &lconf]);
    let z = until_leafs(&h, 1, &l);
    assert_eq!(z["leafs"][0]["account"], account.public_key(), "{z}");
    // A hub client of the same account hears the leaf's clients.
    let hc = async_nats::ConnectOptions::with_credentials(&creds_file(
        &user_jwt,
        &user.seed().expect("seed"),
    ))
    .expect("credentials")
    .connect(&h.url)
    .await
    .expect("hub client");
    let lc = async_nats::connect(&l.url).await.expect("leaf client");
    let mut hsub = hc.subscribe("creds.>").await.expect("subscribe");
    until_seen(&lc, "creds.up", &mut hsub).await;
    drop(l);

    // The JWT with another key's seed: the signature does not verify.
    let other = nkeys::KeyPair::new_user();
    std::fs::write(&creds, creds_file(&user_jwt, &other.seed().expect("seed"))).expect("creds");
    let l = Server::under_test(SHARDS, &["-c", &lconf]);
    let deadline = Instant::now() + STEP;
    while !l.log().contains("Authorization Violation") {
        assert!(Instant::now() < deadline, "not refused:\n{}", l.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leafz(&h)["leafnodes"], 0);
}
