//! Side-by-side comparison: each server binary is started fresh for every run,
//! servers alternate (A B A B ...) round by round so drift on the shared host
//! hits them alike, and the figures are medians over rounds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::error::Result;
use crate::procfs;
use crate::server::{self, ServerSpec};
use crate::sink;
use crate::stats::{median, median_summary, LatencySummary};
use crate::workloads::{self, Options, Plan, RunResult, Workload};

#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// The first `under_test` servers are under test (e.g. one binary in two configurations);
    /// the rest are references.
    pub servers: Vec<ServerSpec>,
    pub under_test: usize,
    pub workloads: Vec<Workload>,
    pub sizes: Vec<usize>,
    pub rounds: usize,
    /// Applied to the throughput workloads (pub, pubsub, fanout, fanin, queue).
    pub base: Options,
    pub reqrep_msgs: u64,
    pub latency_rate: u64,
    pub latency_msgs: u64,
    pub conns: usize,
    pub conns_rate: u64,
    pub conns_duration: f64,
    /// Messages per js-async, kv-put and kv-get run.
    pub js_msgs: u64,
    /// Messages per js-pub run (one ack at a time).
    pub js_pub_msgs: u64,
    /// Messages a js-ordered run replays.
    pub replay_msgs: u64,
    pub work_dir: PathBuf,
    /// The hub of the leafnode workloads (a nats-server binary), started fresh for each run.
    pub hub: Option<PathBuf>,
    /// `natsbench` (the Go client's load generator): the core workloads run with it.
    pub go_client: Option<PathBuf>,
    /// With `go_client`: raw-protocol subscribers instead of nats.go ones.
    pub go_raw_sub: bool,
    /// The CPUs every server (and hub) runs on; `None`: wherever the kernel puts it.
    pub server_cpus: Option<Vec<usize>>,
    /// The CPUs the load generator (the harness's threads, `natsbench`) runs on.
    pub client_cpus: Option<Vec<usize>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measurement {
    pub server: String,
    pub workload: Workload,
    pub size: usize,
    pub round: usize,
    pub result: Option<RunResult>,
    pub error: Option<String>,
    pub wall_s: f64,
    pub server_cpu_s: f64,
    pub cpu_s_per_million: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub harness_cpu_s: f64,
    /// CPU busy outside the server and the harness during the run, in cores.
    pub foreign_load_cores: f64,
    /// Server CPU seconds per thread name during the run. For Tachyon
    /// the `shard-*` threads tell where the kernel placed the connections.
    #[serde(default)]
    pub thread_cpu_s: Vec<(String, f64)>,
}

impl Measurement {
    /// For a server with several `shard-*` threads: whether the run's work stayed on one
    /// shard (the second busiest shard used under a tenth of the busiest's CPU).
    pub fn one_shard(&self) -> Option<bool> {
        let mut shards: Vec<f64> = self
            .thread_cpu_s
            .iter()
            .filter(|(n, _)| n.starts_with("shard-"))
            .map(|(_, s)| *s)
            .collect();
        if shards.len() < 2 {
            return None;
        }
        shards.sort_by(|a, b| b.total_cmp(a));
        Some(shards[1] < 0.1 * shards[0])
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ratios {
    pub msgs_per_s: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub cpu_per_million: Option<f64>,
    pub peak_rss: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseSummary {
    pub server: String,
    pub workload: Workload,
    pub size: usize,
    pub rounds_ok: usize,
    pub failures: Vec<String>,
    pub msgs_per_s: Option<f64>,
    pub mb_per_s: Option<f64>,
    pub latency: Option<LatencySummary>,
    pub connect_latency: Option<LatencySummary>,
    pub cpu_s_per_million: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub foreign_load_cores: Option<f64>,
    /// This server's figure divided by the best reference server's (excluding itself).
    pub vs_best_reference: Ratios,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ceiling {
    pub size: usize,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
}

/// The Go client's own ceiling on one workload: natsbench against the built-in sink and
/// source, no server in the way (median of the rounds).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoCeiling {
    pub workload: Workload,
    pub size: usize,
    pub msgs_per_s: f64,
    /// Request/reply: the round trip through the sink's router (medians of the rounds).
    #[serde(default)]
    pub latency: Option<LatencySummary>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    pub path: String,
    pub version: String,
    pub role: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostInfo {
    pub cpus: usize,
    pub loadavg_before: String,
    pub loadavg_after: String,
    pub kernel: String,
    pub pinned: bool,
    /// `--server-cpus` / `--client-cpus`, as `taskset -c` lists.
    #[serde(default)]
    pub server_cpus: Option<String>,
    #[serde(default)]
    pub client_cpus: Option<String>,
    pub note: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub generated_unix_s: u64,
    pub host: HostInfo,
    pub servers: Vec<ServerInfo>,
    pub workloads: Vec<Workload>,
    pub sizes: Vec<usize>,
    pub rounds: usize,
    pub ceiling: Vec<Ceiling>,
    #[serde(default)]
    pub go_ceiling: Vec<GoCeiling>,
    pub cases: Vec<CaseSummary>,
    pub measurements: Vec<Measurement>,
}

impl CompareConfig {
    pub fn plan(&self, w: Workload, size: usize) -> Result<Plan> {
        let mut o = self.base.clone();
        o.size = size;
        match w {
            Workload::Reqrep => {
                o.msgs = Some(self.reqrep_msgs);
                o.duration = None;
            }
            Workload::Latency => {
                o.size = size.max(16);
                o.msgs = Some(self.latency_msgs);
                o.rate = Some(self.latency_rate);
                o.duration = None;
                o.pubs = None;
                o.subs = None;
            }
            Workload::Conns => {
                o.pubs = Some(self.conns);
                o.subs = None;
                o.rate = Some(self.conns_rate);
                o.msgs = None;
                o.duration = Some(Duration::from_secs_f64(self.conns_duration));
            }
            Workload::JsPub => {
                o.msgs = Some(self.js_pub_msgs);
                o.duration = None;
            }
            Workload::JsAsync
            | Workload::KvPut
            | Workload::KvGet
            | Workload::JsConsume
            | Workload::JsPush
            | Workload::KvWatch => {
                o.msgs = Some(self.js_msgs);
                o.duration = None;
            }
            Workload::JsOrdered => {
                o.msgs = Some(self.replay_msgs);
                o.duration = None;
            }
            _ => {}
        }
        if !matches!(w, Workload::Latency | Workload::Conns) {
            // Throughput shapes keep their own fan-out unless --pub/--sub say otherwise.
            o.rate = self.base.rate;
        }
        Plan::new(w, &o)
    }
}

fn read_loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs one workload against a freshly started server and takes its /proc figures.
fn measure(
    cfg: &CompareConfig,
    spec: &ServerSpec,
    plan: &Plan,
    round: usize,
    seq: usize,
) -> Measurement {
    let tck = procfs::clock_ticks_per_sec();
    let mut m = Measurement {
        server: spec.name.clone(),
        workload: plan.workload,
        size: plan.size,
        round,
        result: None,
        error: None,
        wall_s: 0.0,
        server_cpu_s: 0.0,
        cpu_s_per_million: None,
        peak_rss_mib: None,
        harness_cpu_s: 0.0,
        foreign_load_cores: 0.0,
        thread_cpu_s: Vec::new(),
    };
    let ws = plan.workload.websocket().is_some();
    // A leafnode workload: a hub first, the server under test as its leaf.
    let hub = match (plan.workload.needs_hub(), &cfg.hub) {
        (false, _) => None,
        (true, None) => {
            m.error = Some(format!("{} needs --hub", plan.workload.name()));
            return m;
        }
        (true, Some(path)) => {
            let hub_spec = ServerSpec {
                name: format!("hub-for-{}", spec.name),
                path: path.clone(),
                args: Vec::new(),
            };
            let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr())
            {
                Ok(a) => a.port(),
                Err(e) => {
                    m.error = Some(e.to_string());
                    return m;
                }
            };
            let route = plan.workload == Workload::RouteFanin;
            let setup = server::Setup {
                leaf_port: (!route).then_some(port),
                cluster_port: route.then_some(port),
                ..server::Setup::default()
            };
            match crate::cpus::inside(cfg.server_cpus.as_deref(), || {
                server::start_setup(&hub_spec, &cfg.work_dir, seq, setup)
            }) {
                Ok(h) => Some((h, port)),
                Err(e) => {
                    m.error = Some(format!("hub: {e}"));
                    return m;
                }
            }
        }
    };
    let setup = server::Setup {
        jetstream: plan.workload.is_jetstream(),
        websocket: ws,
        hub_port: hub
            .as_ref()
            .filter(|_| plan.workload == Workload::LeafFanin)
            .map(|(_, p)| *p),
        route_to: hub
            .as_ref()
            .filter(|_| plan.workload == Workload::RouteFanin)
            .map(|(_, p)| *p),
        ..server::Setup::default()
    };
    let started = crate::cpus::inside(cfg.server_cpus.as_deref(), || {
        server::start_setup(spec, &cfg.work_dir, seq, setup)
    });
    let mut srv = match started {
        Ok(s) => s,
        Err(e) => {
            m.error = Some(e.to_string());
            return m;
        }
    };
    let pid = srv.pid();
    let s0 = procfs::pid_cpu_ticks(pid).unwrap_or(0);
    let threads0 = procfs::pid_thread_ticks(pid);
    let h0 = procfs::self_cpu_ticks().unwrap_or(0);
    let m0 = procfs::machine_ticks().unwrap_or_default();
    let t0 = Instant::now();
    let addr = match srv.ws_addr {
        Some(a) if ws => a,
        _ => srv.addr,
    };
    let sub_addr = hub.as_ref().map_or(addr, |(h, _)| h.addr);
    let r = match &cfg.go_client {
        Some(bin) if crate::goclient::supports(plan.workload) => crate::goclient::run(
            bin,
            plan,
            addr,
            sub_addr,
            cfg.base.stall_timeout,
            cfg.go_raw_sub,
        ),
        _ => workloads::run_split(plan, addr, sub_addr, cfg.base.stall_timeout),
    };
    m.wall_s = t0.elapsed().as_secs_f64();
    let s1 = procfs::pid_cpu_ticks(pid).unwrap_or(s0);
    m.thread_cpu_s = procfs::pid_thread_ticks(pid)
        .into_iter()
        .map(|(name, t1)| {
            let t0 = threads0.iter().find(|(n, _)| *n == name).map_or(0, |e| e.1);
            // Idle threads stay in: a shard that did nothing is the placement news.
            (name, t1.saturating_sub(t0) as f64 / tck)
        })
        .collect();
    let h1 = procfs::self_cpu_ticks().unwrap_or(h0);
    let m1 = procfs::machine_ticks().unwrap_or(m0);
    m.peak_rss_mib = procfs::pid_vm_hwm_kib(pid).map(|k| k as f64 / 1024.0);
    m.server_cpu_s = (s1 - s0) as f64 / tck;
    m.harness_cpu_s = h1.saturating_sub(h0) as f64 / tck;
    let foreign = m1.busy.saturating_sub(m0.busy) as f64 / tck - m.server_cpu_s - m.harness_cpu_s;
    m.foreign_load_cores = (foreign / m.wall_s.max(1e-3)).max(0.0);
    let alive = srv.alive();
    match r {
        Ok(r) => {
            if r.published > 0 {
                m.cpu_s_per_million = Some(m.server_cpu_s / (r.published as f64 / 1e6));
            }
            m.result = Some(r);
        }
        Err(e) => {
            let mut why = e.to_string();
            if !alive {
                why.push_str(&format!(" (server died; log: {})", srv.log_tail()));
            }
            m.error = Some(why);
        }
    }
    srv.stop();
    if let Some((h, _)) = hub {
        h.stop();
    }
    m
}

/// The harness's own ceiling: `pub` into the built-in sink, per size.
pub fn ceiling(cfg: &CompareConfig) -> Result<Vec<Ceiling>> {
    let s = sink::start("127.0.0.1:0")?;
    let mut out = Vec::new();
    for &size in &cfg.sizes {
        let mut plan = cfg.plan(Workload::Pub, size)?;
        // The sink takes publishes only.
        plan.subs = 0;
        let mut rates = Vec::new();
        for _ in 0..cfg.rounds.max(1) {
            let r = workloads::run(&plan, s.addr, cfg.base.stall_timeout)?;
            rates.push(r.msgs_per_s);
        }
        let rate = median(&rates).unwrap_or(0.0);
        out.push(Ceiling {
            size,
            msgs_per_s: rate,
            mb_per_s: rate * size as f64 / 1e6,
        });
    }
    Ok(out)
}

/// The Go client's ceiling: natsbench runs each streaming workload against a sink that
/// discards what the publishers send and feeds each subscription a message per publish, a
/// server with no routing cost, and request/reply through the sink's router, a write per
/// message (the sink on `--server-cpus`, natsbench on `--client-cpus`). Queue groups need a
/// server's picks and are left out.
pub fn go_ceiling(cfg: &CompareConfig, bin: &Path) -> Result<Vec<GoCeiling>> {
    let mut out = Vec::new();
    for &w in &cfg.workloads {
        if !matches!(
            w,
            Workload::Pub
                | Workload::Pubsub
                | Workload::Fanout
                | Workload::Fanin
                | Workload::Reqrep
        ) {
            continue;
        }
        for &size in &cfg.sizes {
            let plan = cfg.plan(w, size)?;
            let mode = match w {
                Workload::Pub => sink::Mode::Discard,
                Workload::Reqrep => sink::Mode::Route,
                _ => sink::Mode::Source(sink::Source {
                    msgs: plan.msgs,
                    size,
                }),
            };
            let mut rates = Vec::new();
            let mut latencies = Vec::new();
            for _ in 0..cfg.rounds.max(1) {
                // A fresh sink per round: its source starts at the round's first publish.
                let s = crate::cpus::inside(cfg.server_cpus.as_deref(), || {
                    sink::start_with("127.0.0.1:0", mode)
                })?;
                let r = crate::goclient::run(
                    bin,
                    &plan,
                    s.addr,
                    s.addr,
                    cfg.base.stall_timeout,
                    cfg.go_raw_sub,
                )?;
                rates.push(r.msgs_per_s);
                latencies.extend(r.latency.filter(|_| w == Workload::Reqrep));
            }
            out.push(GoCeiling {
                workload: w,
                size,
                msgs_per_s: median(&rates).unwrap_or(0.0),
                latency: median_summary(&latencies.iter().collect::<Vec<_>>()),
            });
        }
    }
    Ok(out)
}

pub fn run(cfg: &CompareConfig) -> Result<Report> {
    std::fs::create_dir_all(&cfg.work_dir)?;
    let host_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    if let Some(cpus) = &cfg.client_cpus {
        // Threads started from here on (load generators, natsbench) inherit it.
        crate::cpus::set_current(cpus)?;
    }
    let loadavg_before = read_loadavg();
    let ceiling = ceiling(cfg)?;
    let go_ceiling = match &cfg.go_client {
        Some(bin) => go_ceiling(cfg, bin)?,
        None => Vec::new(),
    };
    let mut measurements = Vec::new();
    let mut seq = 0;
    for &w in &cfg.workloads {
        for &size in &cfg.sizes {
            let plan = cfg.plan(w, size)?;
            for round in 0..cfg.rounds {
                for spec in &cfg.servers {
                    seq += 1;
                    let m = measure(cfg, spec, &plan, round, seq);
                    match (&m.result, &m.error) {
                        (Some(r), _) => info!(
                            "{} {}B round {round} {}: {:.0} msgs/s",
                            w.name(),
                            size,
                            spec.name,
                            r.msgs_per_s
                        ),
                        (None, Some(e)) => warn!(
                            "{} {}B round {round} {}: FAILED {e}",
                            w.name(),
                            size,
                            spec.name
                        ),
                        _ => {}
                    }
                    measurements.push(m);
                }
            }
        }
    }
    let cases = summarize_cases(cfg, &measurements);
    let servers = cfg
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| ServerInfo {
            name: s.name.clone(),
            path: s.path.display().to_string(),
            version: server::version_of(&s.path),
            role: if i < cfg.under_test.max(1) {
                "under test"
            } else {
                "reference"
            }
            .into(),
        })
        .collect();
    Ok(Report {
        generated_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        host: HostInfo {
            cpus: host_cpus,
            loadavg_before,
            loadavg_after: read_loadavg(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .into(),
            pinned: cfg.base.pin,
            server_cpus: cfg.server_cpus.as_deref().map(crate::cpus::show),
            client_cpus: cfg.client_cpus.as_deref().map(crate::cpus::show),
            note: format!(
                "Runs share a small host ({} CPUs) with other work: absolute figures are noise, \
                 ratios from one run are the result. Harness threads {}. Server processes {}. \
                 CPU s per million = server utime+stime per million messages published (requests for reqrep).",
                host_cpus,
                match (&cfg.client_cpus, cfg.base.pin) {
                    (Some(c), _) => format!(
                        "and the Go client on CPUs {} only",
                        crate::cpus::show(c)
                    ),
                    (None, true) => "pinned round-robin to cores with core_affinity".into(),
                    (None, false) => "not pinned".into(),
                },
                match &cfg.server_cpus {
                    Some(c) => format!(
                        "on CPUs {} only (each server gets those cores alone; nats-server's \
                         GOMAXPROCS follows the mask)",
                        crate::cpus::show(c)
                    ),
                    None => "are not pinned".into(),
                }
            ),
        },
        servers,
        workloads: cfg.workloads.clone(),
        sizes: cfg.sizes.clone(),
        rounds: cfg.rounds,
        ceiling,
        go_ceiling,
        cases,
        measurements,
    })
}

pub fn summarize_cases(cfg: &CompareConfig, ms: &[Measurement]) -> Vec<CaseSummary> {
    let mut cases = Vec::new();
    for &w in &cfg.workloads {
        for &size in &cfg.sizes {
            let first = cases.len();
            for spec in &cfg.servers {
                let mine: Vec<&Measurement> = ms
                    .iter()
                    .filter(|m| {
                        m.server == spec.name
                            && m.workload == w
                            && m.size == size.max(if w == Workload::Latency { 16 } else { 0 })
                    })
                    .collect();
                let ok: Vec<&RunResult> = mine.iter().filter_map(|m| m.result.as_ref()).collect();
                let okm: Vec<&&Measurement> = mine.iter().filter(|m| m.result.is_some()).collect();
                let med = |f: &dyn Fn(&RunResult) -> f64| {
                    median(&ok.iter().map(|r| f(r)).collect::<Vec<_>>())
                };
                let lats: Vec<&LatencySummary> =
                    ok.iter().filter_map(|r| r.latency.as_ref()).collect();
                let conn_lats: Vec<&LatencySummary> = ok
                    .iter()
                    .filter_map(|r| r.connect_latency.as_ref())
                    .collect();
                cases.push(CaseSummary {
                    server: spec.name.clone(),
                    workload: w,
                    size,
                    rounds_ok: ok.len(),
                    failures: mine.iter().filter_map(|m| m.error.clone()).collect(),
                    msgs_per_s: med(&|r| r.msgs_per_s),
                    mb_per_s: med(&|r| r.mb_per_s),
                    latency: median_summary(&lats),
                    connect_latency: median_summary(&conn_lats),
                    cpu_s_per_million: median(
                        &okm.iter()
                            .filter_map(|m| m.cpu_s_per_million)
                            .collect::<Vec<_>>(),
                    ),
                    peak_rss_mib: okm
                        .iter()
                        .filter_map(|m| m.peak_rss_mib)
                        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b)))),
                    foreign_load_cores: median(
                        &mine
                            .iter()
                            .map(|m| m.foreign_load_cores)
                            .collect::<Vec<_>>(),
                    ),
                    vs_best_reference: Ratios::default(),
                });
            }
            add_ratios(&mut cases[first..], cfg.under_test);
        }
    }
    cases
}

/// Fills each server's ratios against the best *other* reference server (the first
/// `under_test` entries, at least one, are under test and never a reference).
fn add_ratios(group: &mut [CaseSummary], under_test: usize) {
    let under_test = under_test.max(1);
    let pick = |c: &CaseSummary, which: usize| -> Option<f64> {
        match which {
            0 => c.msgs_per_s,
            1 => c.latency.as_ref().map(|l| l.p50_us),
            2 => c.latency.as_ref().map(|l| l.p99_us),
            3 => c.cpu_s_per_million,
            _ => c.peak_rss_mib,
        }
    };
    let snapshot: Vec<CaseSummary> = group.to_vec();
    for (i, c) in group.iter_mut().enumerate() {
        let mut r = [None; 5];
        for (which, slot) in r.iter_mut().enumerate() {
            let refs = snapshot
                .iter()
                .enumerate()
                .filter(|(j, _)| *j >= under_test && *j != i)
                .filter_map(|(_, o)| pick(o, which))
                .filter(|v| *v > 0.0);
            // Throughput: higher is better; everything else: lower is better.
            let best = if which == 0 {
                refs.fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))))
            } else {
                refs.fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b))))
            };
            *slot = pick(c, which).zip(best).map(|(v, b)| v / b);
        }
        c.vs_best_reference = Ratios {
            msgs_per_s: r[0],
            p50: r[1],
            p99: r[2],
            cpu_per_million: r[3],
            peak_rss: r[4],
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(threads: &[(&str, f64)]) -> Measurement {
        Measurement {
            server: "tachyon".into(),
            workload: Workload::Reqrep,
            size: 128,
            round: 0,
            result: None,
            error: None,
            wall_s: 1.0,
            server_cpu_s: threads.iter().map(|t| t.1).sum(),
            cpu_s_per_million: None,
            peak_rss_mib: None,
            harness_cpu_s: 0.0,
            foreign_load_cores: 0.0,
            thread_cpu_s: threads.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        }
    }

    #[test]
    fn one_shard_tells_placement_from_shard_threads() {
        let one = measured(&[("shard-0-1", 0.01), ("shard-1-2", 0.9), ("signals", 0.02)]);
        assert_eq!(one.one_shard(), Some(true));
        let spread = measured(&[("shard-0-1", 0.4), ("shard-1-2", 0.6)]);
        assert_eq!(spread.one_shard(), Some(false));
        // nats-server, or a single shard: nothing to tell.
        assert_eq!(measured(&[("nats-server", 1.0)]).one_shard(), None);
        assert_eq!(measured(&[("shard-0-1", 1.0)]).one_shard(), None);
    }

    fn case(server: &str, rate: f64, p50: f64) -> CaseSummary {
        CaseSummary {
            server: server.into(),
            workload: Workload::Pubsub,
            size: 16,
            rounds_ok: 1,
            failures: vec![],
            msgs_per_s: Some(rate),
            mb_per_s: None,
            latency: Some(LatencySummary {
                p50_us: p50,
                p99_us: p50 * 2.0,
                ..Default::default()
            }),
            connect_latency: None,
            cpu_s_per_million: Some(1.0),
            peak_rss_mib: None,
            foreign_load_cores: None,
            vs_best_reference: Ratios::default(),
        }
    }

    #[test]
    fn ratios_use_best_other_reference() {
        let mut g = vec![
            case("t", 300.0, 10.0),
            case("a", 100.0, 40.0),
            case("b", 200.0, 20.0),
        ];
        add_ratios(&mut g, 1);
        assert_eq!(g[0].vs_best_reference.msgs_per_s, Some(1.5));
        assert_eq!(g[0].vs_best_reference.p50, Some(0.5));
        // A reference compares against the best of the others, never itself.
        assert_eq!(g[1].vs_best_reference.msgs_per_s, Some(0.5));
        assert_eq!(g[2].vs_best_reference.msgs_per_s, Some(2.0));
        assert_eq!(g[0].vs_best_reference.peak_rss, None);
    }

    #[test]
    fn servers_under_test_are_never_references() {
        let mut g = vec![
            case("t1", 300.0, 10.0),
            case("t2", 900.0, 5.0),
            case("a", 100.0, 40.0),
            case("b", 200.0, 20.0),
        ];
        add_ratios(&mut g, 2);
        // Both compare against the best reference (b), not against each other.
        assert_eq!(g[0].vs_best_reference.msgs_per_s, Some(1.5));
        assert_eq!(g[1].vs_best_reference.msgs_per_s, Some(4.5));
        assert_eq!(g[1].vs_best_reference.p50, Some(0.25));
        assert_eq!(g[3].vs_best_reference.msgs_per_s, Some(2.0));
    }
}
