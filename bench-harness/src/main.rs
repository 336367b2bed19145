use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tachyon_bench::compare::{self, CompareConfig};
use tachyon_bench::jetstream::{Storage, StreamUse};
use tachyon_bench::link::Transport;
use tachyon_bench::server::ServerSpec;
use tachyon_bench::workloads::{self, Options, Plan, RunResult, Workload};
use tachyon_bench::{conn, report, sink, BenchError, Result};

#[derive(Parser)]
#[command(
    name = "tachyon-bench",
    about = "NATS load generator and server comparison harness"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// One value, parsed once at start-up: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run one workload against a server.
    Run {
        workload: Workload,
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        url: String,
        #[command(flatten)]
        opts: LoadOpts,
        /// Print the result as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Render a saved comparison (`compare --json`) again: terminal table, HTML, Markdown.
    Report {
        /// The JSON report `compare --json` wrote.
        json: PathBuf,
        #[arg(long)]
        html: Option<PathBuf>,
        #[arg(long)]
        md: Option<PathBuf>,
    },
    /// Start each server binary and run the workloads against each in turn. For the
    /// JetStream workloads (js-pub, js-async, kv-put, kv-get) each server gets
    /// `-js -sd <fresh dir>` after the harness's own flags and before its own arguments.
    Compare {
        /// "NAME=PATH [ARG...]"; the first is the server under test, the rest references.
        /// ARGs go to the server as they are, e.g. "nats-always=nats-server -c sync_always.conf".
        #[arg(long = "server", required = true)]
        servers: Vec<ServerSpec>,
        /// How many of the first servers are under test (compared with the references, never
        /// with each other), e.g. one binary in two configurations.
        #[arg(long, default_value_t = 1)]
        under_test: usize,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "pub,pubsub,fanout,fanin,queue,reqrep,latency,conns"
        )]
        workloads: Vec<Workload>,
        #[arg(long, value_delimiter = ',', default_value = "16,128,1024")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[command(flatten)]
        opts: LoadOpts,
        /// Requests per reqrep run.
        #[arg(long, default_value_t = 5000)]
        reqrep_msgs: u64,
        /// Open-loop rate (msgs/s) of the latency workload.
        #[arg(long, default_value_t = 5000)]
        latency_rate: u64,
        #[arg(long, default_value_t = 5000)]
        latency_msgs: u64,
        /// Connections in the conns workload.
        #[arg(long, default_value_t = 500)]
        conns: usize,
        /// Messages per second per connection in conns.
        #[arg(long, default_value_t = 10)]
        conns_rate: u64,
        #[arg(long, default_value_t = 1.0)]
        conns_duration: f64,
        /// Messages per js-async, kv-put and kv-get run.
        #[arg(long, default_value_t = 20_000)]
        js_msgs: u64,
        /// Messages per js-pub run (synchronous: one ack, possibly one fsync, per message).
        #[arg(long, default_value_t = 2_000)]
        js_pub_msgs: u64,
        /// Messages a js-ordered run replays (loaded first, not measured).
        #[arg(long, default_value_t = 1_000_000)]
        replay_msgs: u64,
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        html: Option<PathBuf>,
        #[arg(long)]
        md: Option<PathBuf>,
        /// Where servers keep their ports files and logs while they run.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// The hub (a nats-server binary) of the leafnode workloads (leaf-fanin): started
        /// fresh for each run with a leafnode port, each server under test its leaf.
        #[arg(long)]
        hub: Option<PathBuf>,
        /// Run pub, pubsub, fanout, fanin, queue, reqrep and leaf-fanin with the official Go
        /// client instead: the `natsbench` binary at this path (scripts/setup.sh --bench builds
        /// it as target/natsbench).
        #[arg(long)]
        go_client: Option<PathBuf>,
        /// With --go-client: the subscribers speak the protocol over plain TCP (nats.go
        /// publishers, raw subscribers), as the "raw subscriber" rows.
        #[arg(long, requires = "go_client")]
        go_raw_sub: bool,
        /// Run every server on these CPUs only (`taskset -c` syntax: 1, 0,2, 0-3).
        #[arg(long)]
        server_cpus: Option<String>,
        /// Run the load generator (this harness's threads and natsbench) on these CPUs only.
        #[arg(long)]
        client_cpus: Option<String>,
    },
    /// Serve a discard-everything NATS sink (the harness's own ceiling).
    Sink {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Also feed every subscription a message per publish, up to this many (the Go
        /// client's ceiling: `natsbench -url` this sink).
        #[arg(long)]
        source_msgs: Option<u64>,
        /// Payload size of the source's messages.
        #[arg(long, default_value_t = 16)]
        source_size: usize,
        /// Deliver each publish to the subscriptions it matches, a write per message (the Go
        /// client's request/reply floor: `natsbench -workload reqrep -url` this sink).
        #[arg(long, conflicts_with = "source_msgs")]
        route: bool,
    },
}

#[derive(Args, Clone)]
struct LoadOpts {
    /// Messages in total (split across publishers).
    #[arg(long)]
    msgs: Option<u64>,
    /// Payload bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Publishers (requesters for reqrep, connections for conns).
    #[arg(long = "pub")]
    pubs: Option<usize>,
    /// Subscribers (responders for reqrep, queue members for queue).
    #[arg(long = "sub")]
    subs: Option<usize>,
    #[arg(long, default_value = "bench")]
    subject: String,
    /// Cycle each publisher through this many subjects.
    #[arg(long)]
    multisubject: Option<usize>,
    /// Run for this many seconds instead of a message count.
    #[arg(long)]
    duration: Option<f64>,
    /// Messages per second per publisher (0: unlimited).
    #[arg(long)]
    rate: Option<u64>,
    /// Pin harness threads to cores round-robin.
    #[arg(long)]
    pin: bool,
    /// Seconds without progress before the run is declared lossy.
    #[arg(long, default_value_t = 10.0)]
    stall_timeout: f64,
    /// How the harness drives its sockets.
    #[arg(long, value_enum, default_value_t = Transport::default())]
    transport: Transport,
    /// SUB/UNSUB pairs per second on unrelated subjects during streaming runs (0: none).
    #[arg(long, default_value_t = 0)]
    churn: u64,
    /// Acks outstanding per publisher in js-async and kv-put (js-pub and kv-get: 1).
    #[arg(long)]
    window: Option<usize>,
    /// Storage of the JetStream workloads' stream.
    #[arg(long, value_enum, default_value_t = Storage::File)]
    storage: Storage,
    /// Distinct keys kv-put writes (`k<i % keys>`) and kv-get loads and reads.
    #[arg(long, default_value_t = workloads::DEFAULT_KEYS)]
    keys: usize,
    /// Key-value bucket of kv-put and kv-get (stream KV_<bucket>).
    #[arg(long, default_value = workloads::DEFAULT_BUCKET)]
    bucket: String,
    /// JetStream runs: create and delete the stream (fresh), leave it (keep), or read the one
    /// a `keep` run left, e.g. after a restart (reuse; kv-get only).
    #[arg(long, value_enum, default_value_t = StreamUse::Fresh)]
    stream_use: StreamUse,
}

impl LoadOpts {
    fn options(&self) -> Result<Options> {
        let secs = |v: f64, what: &str| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| BenchError::Config(format!("bad {what}: {v}")))
        };
        Ok(Options {
            msgs: self.msgs,
            size: self.size,
            pubs: self.pubs,
            subs: self.subs,
            subject: self.subject.clone(),
            multisubject: self.multisubject,
            duration: self.duration.map(|d| secs(d, "--duration")).transpose()?,
            rate: self.rate,
            pin: self.pin,
            stall_timeout: secs(self.stall_timeout, "--stall-timeout")?,
            transport: self.transport,
            churn: self.churn,
            window: self.window,
            storage: self.storage,
            keys: self.keys,
            bucket: self.bucket.clone(),
            stream_use: self.stream_use,
        })
    }
}

pub fn print_result(r: &RunResult) {
    let p = &r.plan;
    println!(
        "{} size={}B pubs={} subs={} transport={}: published {} delivered {} in {:.3}s",
        p.workload.name(),
        p.size,
        p.pubs,
        p.subs,
        p.transport.name(),
        r.published,
        r.delivered,
        r.elapsed_s
    );
    println!(
        "  throughput {:.0} msgs/s  {:.2} MB/s  (publish {:.0} msgs/s)",
        r.msgs_per_s, r.mb_per_s, r.pub_msgs_per_s
    );
    for (name, l) in [("latency", &r.latency), ("connect", &r.connect_latency)] {
        if let Some(l) = l {
            println!(
                "  {name} us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (n={})",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.count
            );
        }
    }
    if let Some(s) = &r.publisher_spread {
        println!(
            "  per-publisher mean latency us: fastest {:.1}  slowest {:.1} (publisher {})",
            s.fastest_mean_us, s.slowest_mean_us, s.slowest
        );
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            workload,
            url,
            opts,
            json,
        } => {
            let o = opts.options()?;
            let plan = Plan::new(workload, &o)?;
            let addr = conn::resolve(&url)?;
            let r = workloads::run(&plan, addr, o.stall_timeout)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r)
                        .map_err(|e| BenchError::Config(e.to_string()))?
                );
            } else {
                print_result(&r);
            }
        }
        Cmd::Compare {
            servers,
            under_test,
            workloads,
            sizes,
            rounds,
            opts,
            reqrep_msgs,
            latency_rate,
            latency_msgs,
            conns,
            conns_rate,
            conns_duration,
            js_msgs,
            js_pub_msgs,
            replay_msgs,
            json,
            html,
            md,
            work_dir,
            hub,
            go_client,
            go_raw_sub,
            server_cpus,
            client_cpus,
        } => {
            // One server alone is allowed (no ratios); several under test need a reference.
            if under_test == 0 || (under_test > 1 && under_test >= servers.len()) {
                return Err(BenchError::Config(format!(
                    "--under-test {under_test} needs at least one reference after it ({} servers)",
                    servers.len()
                )));
            }
            let cfg = CompareConfig {
                servers,
                under_test,
                workloads,
                sizes,
                rounds: rounds.max(1),
                base: opts.options()?,
                reqrep_msgs,
                latency_rate,
                latency_msgs,
                conns,
                conns_rate,
                conns_duration,
                js_msgs,
                js_pub_msgs,
                replay_msgs,
                work_dir: work_dir.unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("tachyon-bench-{}", std::process::id()))
                }),
                hub,
                go_client,
                go_raw_sub,
                server_cpus: server_cpus
                    .as_deref()
                    .map(tachyon_bench::cpus::parse_list)
                    .transpose()?,
                client_cpus: client_cpus
                    .as_deref()
                    .map(tachyon_bench::cpus::parse_list)
                    .transpose()?,
            };
            let rep = compare::run(&cfg)?;
            let _ = std::fs::remove_dir_all(&cfg.work_dir);
            print!("{}", report::terminal(&rep));
            if let Some(p) = &json {
                let text = serde_json::to_string_pretty(&rep)
                    .map_err(|e| BenchError::Config(e.to_string()))?;
                write(p, text)?;
            }
            render(&rep, html.as_ref(), md.as_ref())?;
            let failed = rep.cases.iter().filter(|c| !c.failures.is_empty()).count();
            if failed > 0 {
                return Err(BenchError::Verify(format!(
                    "{failed} cases had failed runs"
                )));
            }
        }
        Cmd::Report { json, html, md } => {
            let text = std::fs::read_to_string(&json)?;
            let rep: compare::Report = serde_json::from_str(&text)
                .map_err(|e| BenchError::Config(format!("{}: {e}", json.display())))?;
            print!("{}", report::terminal(&rep));
            render(&rep, html.as_ref(), md.as_ref())?;
        }
        Cmd::Sink {
            listen,
            source_msgs,
            source_size,
            route,
        } => {
            let mode = match (source_msgs, route) {
                (Some(msgs), _) => sink::Mode::Source(sink::Source {
                    msgs,
                    size: source_size,
                }),
                (None, true) => sink::Mode::Route,
                (None, false) => sink::Mode::Discard,
            };
            let s = sink::start_with(&listen, mode)?;
            println!("sink listening on nats://{}", s.addr);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
    Ok(())
}

fn write(p: &PathBuf, text: String) -> Result<()> {
    if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(p, text)?;
    println!("wrote {}", p.display());
    Ok(())
}

fn render(rep: &compare::Report, html: Option<&PathBuf>, md: Option<&PathBuf>) -> Result<()> {
    if let Some(p) = html {
        write(p, report::html(rep))?;
    }
    if let Some(p) = md {
        write(p, report::markdown(rep))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tachyon-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
