use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tachyon_bench::workloads::{self, Options, Plan, RunResult, Workload};
use tachyon_bench::{conn, sink, BenchError, Result};

#[derive(Parser)]
#[command(name = "tachyon-bench", about = "NATS load generator and server comparison harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

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
    /// Serve a discard-everything NATS sink (the harness's own ceiling).
    Sink {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
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
        })
    }
}

pub fn print_result(r: &RunResult) {
    let p = &r.plan;
    println!(
        "{} size={}B pubs={} subs={}: published {} delivered {} in {:.3}s",
        p.workload.name(),
        p.size,
        p.pubs,
        p.subs,
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
                    serde_json::to_string_pretty(&r).map_err(|e| BenchError::Config(e.to_string()))?
                );
            } else {
                print_result(&r);
            }
        }
        Cmd::Sink { listen } => {
            let s = sink::start(&listen)?;
            println!("sink listening on nats://{}", s.addr);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
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
