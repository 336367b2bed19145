//! The second load generator: `natsbench` (`bench-harness/go/natsbench`), driven by the official
//! Go client as `nats bench` is. `compare --go-client PATH` runs the core workloads with it
//! instead of the harness's own client; the run's result comes back as JSON.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{BenchError, Result};
use crate::stats::LatencySummary;
use crate::workloads::{Plan, RunResult, Workload};

#[derive(Deserialize)]
struct GoLatency {
    count: u64,
    min_us: f64,
    mean_us: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

#[derive(Deserialize)]
struct GoResult {
    published: u64,
    delivered: u64,
    elapsed_s: f64,
    pub_elapsed_s: f64,
    latency: Option<GoLatency>,
}

/// Whether `natsbench` has this workload.
pub fn supports(w: Workload) -> bool {
    matches!(
        w,
        Workload::Pub
            | Workload::Pubsub
            | Workload::Fanout
            | Workload::Fanin
            | Workload::Queue
            | Workload::Reqrep
            | Workload::LeafFanin
            | Workload::RouteFanin
    )
}

/// One run of `plan` with `natsbench` at `bin`: publishers on `addr`, subscribers on `sub_addr`.
pub fn run(
    bin: &Path,
    plan: &Plan,
    addr: SocketAddr,
    sub_addr: SocketAddr,
    stall: Duration,
    raw_sub: bool,
) -> Result<RunResult> {
    let workload = match plan.workload {
        Workload::LeafFanin | Workload::RouteFanin => "fanin",
        w => w.name(),
    };
    let out = Command::new(bin)
        .args([
            "-url",
            &format!("nats://{addr}"),
            "-sub-url",
            &format!("nats://{sub_addr}"),
            "-workload",
            workload,
            "-msgs",
            &plan.msgs.to_string(),
            "-size",
            &plan.size.to_string(),
            "-pub",
            &plan.pubs.to_string(),
            "-sub",
            &plan.subs.max(1).to_string(),
            "-stall",
            &format!("{}ms", stall.as_millis()),
            &format!("-raw-sub={raw_sub}"),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BenchError::Process(format!("cannot run {}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(BenchError::Verify(format!(
            "natsbench {workload}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let g: GoResult = serde_json::from_slice(&out.stdout)
        .map_err(|e| BenchError::Process(format!("natsbench printed no result: {e}")))?;
    let headline = if plan.workload == Workload::Pub {
        g.published
    } else {
        g.delivered
    };
    let secs = g.elapsed_s.max(1e-9);
    let rate = headline as f64 / secs;
    Ok(RunResult {
        plan: plan.clone(),
        published: g.published,
        delivered: g.delivered,
        elapsed_s: g.elapsed_s,
        msgs_per_s: rate,
        mb_per_s: rate * plan.size as f64 / 1e6,
        pub_msgs_per_s: g.published as f64 / g.pub_elapsed_s.max(1e-9),
        latency: g.latency.map(|l| LatencySummary {
            count: l.count,
            min_us: l.min_us,
            mean_us: l.mean_us,
            p50_us: l.p50_us,
            p90_us: l.p90_us,
            p99_us: l.p99_us,
            p999_us: l.p999_us,
            max_us: l.max_us,
            curve: Vec::new(),
        }),
        connect_latency: None,
        publisher_spread: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::Options;

    /// A stand-in for natsbench: prints what `script` says.
    fn fake(dir: &Path, script: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("natsbench");
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    #[test]
    fn results_map_and_failures_say_why() {
        let dir = std::env::temp_dir().join(format!("natsbench-fake-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let addr: SocketAddr = "127.0.0.1:4222".parse().expect("addr");
        let o = Options {
            msgs: Some(1000),
            size: 16,
            ..Options::default()
        };
        let plan = Plan::new(Workload::Pubsub, &o).expect("plan");
        let ok = fake(
            &dir,
            r#"echo '{"workload":"pubsub","published":1000,"delivered":1000,"elapsed_s":0.5,"pub_elapsed_s":0.25,"latency":{"count":1000,"min_us":1,"mean_us":2,"p50_us":2,"p90_us":3,"p99_us":4,"p999_us":5,"max_us":6}}'"#,
        );
        let r = run(&ok, &plan, addr, addr, Duration::from_secs(1), false).expect("result");
        assert_eq!((r.published, r.delivered), (1000, 1000));
        assert!((r.msgs_per_s - 2000.0).abs() < 1e-6);
        assert!((r.pub_msgs_per_s - 4000.0).abs() < 1e-6);
        assert_eq!(r.latency.expect("latency").p999_us, 5.0);
        let bad = fake(
            &dir,
            "echo 'natsbench: lost messages: 10 of 1000 delivered' >&2; exit 1",
        );
        let e = run(&bad, &plan, addr, addr, Duration::from_secs(1), false).unwrap_err();
        assert!(e.to_string().contains("lost messages"), "{e}");
        // Raw subscribers are asked for by flag.
        let raw = fake(
            &dir,
            r#"case "$*" in *-raw-sub=true*) echo '{"workload":"pubsub","published":1,"delivered":1,"elapsed_s":1,"pub_elapsed_s":1}' ;; *) echo "no -raw-sub: $*" >&2; exit 1 ;; esac"#,
        );
        let r = run(&raw, &plan, addr, addr, Duration::from_secs(1), true).expect("raw");
        assert_eq!(r.delivered, 1);
        assert!(run(&raw, &plan, addr, addr, Duration::from_secs(1), false).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
