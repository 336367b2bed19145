//! Process lifecycle of the real `tachyon` binary: signals (SIGTERM, SIGUSR2 lame duck), the
//! command line (`--version`, `-h`, unknown and unsupported flags), the files tools wait on
//! (`-l` log, `-P` pid file, ports file) and listen addresses (`-p -1`, IPv6).

mod common;

use std::io::Read;
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{RawConn, Server, TempDir};

const SHARDS: usize = 4;
const STEP: Duration = Duration::from_secs(5);

/// A protocol-1 client past its first PONG, and the INFO that follows it.
fn async_info_client(port: u16) -> RawConn {
    let mut c = RawConn::connect(port, STEP);
    c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n");
    let got = c.read_until(b"PONG\r\n", STEP);
    assert!(got.text().ends_with("PONG\r\n"), "got {:?}", got.text());
    let info = c.read_until(b"\r\n", STEP);
    assert!(info.text().starts_with("INFO "), "got {:?}", info.text());
    c
}

fn client(port: u16) -> RawConn {
    let mut c = RawConn::connect(port, STEP);
    c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
    let got = c.read_until(b"PONG\r\n", STEP);
    assert!(got.text().ends_with("PONG\r\n"), "got {:?}", got.text());
    c
}

fn signal(s: &Server, sig: libc::c_int) {
    let pid = s.pid() as libc::pid_t;
    // SAFETY: kill has no memory effects; the pid is our own child, still unreaped.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

fn ports_files(dir: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("ports"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Polls `path` until it contains every one of `needles` (log lines are written asynchronously).
fn wait_for_text(path: &Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if needles.iter().all(|n| text.contains(n)) || Instant::now() > deadline {
            return text;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- signals --------------------------------------------------------------------------------------

#[test]
fn sigterm_closes_clients_and_exits_cleanly() {
    let mut s = Server::tachyon(SHARDS, &[]);
    let mut clients: Vec<RawConn> = (0..4).map(|_| client(s.port)).collect();
    let ports = s.ports_dir();
    assert_eq!(ports_files(&ports).len(), 1, "no ports file while running");

    let started = Instant::now();
    signal(&s, libc::SIGTERM);
    let status = s.wait_exit(STEP);
    let took = started.elapsed();
    let log = s.log();
    let status = match status {
        Some(st) => st,
        None => panic!("still running {STEP:?} after SIGTERM; log:\n{log}"),
    };
    assert!(
        status.success(),
        "exit status {status} after SIGTERM; log:\n{log}"
    );
    eprintln!("SIGTERM to exit: {took:?}");
    for c in &mut clients {
        let got = c.read_to_close(STEP);
        assert!(
            got.closed,
            "client not closed by shutdown: {:?}",
            got.text()
        );
    }
    assert!(
        ports_files(&ports).is_empty(),
        "ports file left behind: {:?}",
        ports_files(&ports)
    );
    assert!(log.contains("Server Exiting"), "log:\n{log}");
    assert!(log.contains("Trapped \"terminated\" signal"), "log:\n{log}");
}

#[test]
fn sigusr2_lame_duck_tells_clients_closes_them_and_exits() {
    let mut s = Server::tachyon(
        SHARDS,
        &[
            "--lame_duck_duration",
            "2s",
            "--lame_duck_grace_period",
            "100ms",
        ],
    );
    // nats-server tells only clients that take asynchronous INFO (protocol 1) and are fully
    // registered (first PONG sent): a protocol-0 client and one that never sent its PING
    // hear nothing before they are closed.
    let mut clients: Vec<RawConn> = (0..4).map(|_| async_info_client(s.port)).collect();
    let mut quiet = vec![client(s.port), {
        let mut c = RawConn::connect(s.port, STEP);
        c.send(b"CONNECT {\"verbose\":false,\"protocol\":1}\r\n");
        c
    }];
    let started = Instant::now();
    signal(&s, libc::SIGUSR2);

    for c in &mut clients {
        let got = c.read_until(b"\r\n", STEP);
        let text = got.text();
        assert!(
            text.starts_with("INFO ") && text.contains("\"ldm\":true"),
            "expected a lame duck INFO, got {text:?} (closed: {})",
            got.closed
        );
    }
    // Like nats-server, which closes its listener: new clients are refused. A connection the
    // kernel accepted in the moment a shard switched over must be reset or served, never left
    // hanging in a backlog nobody accepts from any more.
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        match TcpStream::connect(("127.0.0.1", s.port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            Err(e) => panic!("connect after SIGUSR2: {e}"),
            Ok(mut late) => {
                let _ = late.set_read_timeout(Some(Duration::from_millis(300)));
                let mut buf = [0u8; 4096];
                match late.read(&mut buf) {
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        panic!("connection after SIGUSR2 accepted but never served nor closed")
                    }
                    // Reset, closed, or served by a shard that had not switched yet.
                    other => eprintln!("connect after SIGUSR2: accepted, read {other:?}"),
                }
                assert!(
                    Instant::now() < deadline,
                    "connections still accepted 500ms into lame duck mode"
                );
            }
        }
    }
    for c in &mut quiet {
        let got = c.read_to_close(STEP);
        assert!(got.closed, "client not closed: {:?}", got.text());
        assert!(!got.text().contains("ldm"), "{:?}", got.text());
    }
    for c in &mut clients {
        let got = c.read_to_close(STEP);
        assert!(
            got.closed,
            "client not closed in lame duck mode: {:?}",
            got.text()
        );
    }
    let status = s.wait_exit(STEP);
    let log = s.log();
    match status {
        Some(st) => assert!(st.success(), "exit status {st}; log:\n{log}"),
        None => panic!("still running after lame duck; log:\n{log}"),
    }
    let took = started.elapsed();
    eprintln!("SIGUSR2 to exit: {took:?}");
    assert!(
        took >= Duration::from_millis(100),
        "exited before the grace period: {took:?}"
    );
    assert!(log.contains("Entering lame duck mode"), "log:\n{log}");
}

// ---- command line -----------------------------------------------------------------------------

struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` to completion; a process still running after 10s is a failure
/// (an ignored flag would leave a server running).
fn run_bin(bin: &Path, args: &[&str]) -> Outcome {
    run_bin_env(bin, args, &[])
}

/// [`run_bin`] with `envs` added to the process's environment.
fn run_bin_env(bin: &Path, args: &[&str], envs: &[(&str, &str)]) -> Outcome {
    let dir = TempDir::new("cli");
    let out_path = dir.0.join("out");
    let err_path = dir.0.join("err");
    let (out, err) = match (
        std::fs::File::create(&out_path),
        std::fs::File::create(&err_path),
    ) {
        (Ok(o), Ok(e)) => (o, e),
        _ => panic!("cannot create output files in {:?}", dir.0),
    };
    let mut child = match Command::new(bin)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("spawn {bin:?}: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{bin:?} {args:?} did not exit within 10s");
            }
        }
    };
    Outcome {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn tachyon_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tachyon"))
}

#[test]
fn version_flag_prints_the_nats_version_and_tachyon_version() {
    for flag in ["--version", "-v", "-version"] {
        let o = run_bin(tachyon_bin(), &[flag]);
        assert!(o.status.success(), "{flag}: {}", o.status);
        let line = o.stdout.trim_end();
        assert!(
            line.starts_with("nats-server: v2.12.0 (tachyon ") && line.ends_with(')'),
            "{flag}: {line:?}"
        );
    }
}

#[test]
fn help_prints_usage() {
    for flag in ["-h", "--help"] {
        let o = run_bin(tachyon_bin(), &[flag]);
        assert!(o.status.success(), "{flag}: {}", o.status);
        assert!(
            o.stdout.contains("Usage: nats-server [options]"),
            "{flag}: {:?}",
            o.stdout
        );
        assert!(o.stdout.contains("--max_payload") || o.stdout.contains("-p, --port"));
    }
}

#[test]
fn unknown_flag_is_rejected_with_usage_like_nats_server() {
    let o = run_bin(tachyon_bin(), &["--no_such_flag"]);
    assert!(
        o.stderr
            .contains("flag provided but not defined: -no_such_flag"),
        "stderr: {:?}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Usage: nats-server"),
        "stderr: {:?}",
        o.stderr
    );
    // nats-server's usage function exits 0 after a flag syntax error.
    assert_eq!(o.status.code(), Some(0), "{}", o.status);
    if let Some(reference) = common::require_nats_server("unknown flag") {
        let r = run_bin(&reference, &["--no_such_flag"]);
        assert_eq!(
            r.status.code(),
            o.status.code(),
            "nats-server: {}",
            r.stderr
        );
        assert!(r
            .stderr
            .contains("flag provided but not defined: -no_such_flag"));
    }
}

#[test]
fn unsupported_features_fail_loudly_instead_of_being_ignored() {
    let dir = TempDir::new("conf");
    let conf = dir.0.join("server.conf");
    if let Err(e) = std::fs::write(&conf, "port: 4222\ngateway { port: 7222 }\n") {
        panic!("write {conf:?}: {e}");
    }
    let conf = conf.to_string_lossy().into_owned();
    for (args, want) in [
        (
            vec!["-c", conf.as_str()],
            "config option 'gateway' is not supported yet",
        ),
        (
            vec!["-r", "udp://127.0.0.1:514"],
            "flag -r is not supported yet",
        ),
        (vec!["-s"], "flag -s is not supported yet"),
    ] {
        let o = run_bin(tachyon_bin(), &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", o.status);
        assert!(o.stderr.contains(want), "{args:?}: stderr {:?}", o.stderr);
        assert!(
            !o.stderr.contains("Server is ready") && !o.stdout.contains("Server is ready"),
            "{args:?} started a server"
        );
    }
}

/// `-js` starts JetStream with nats-server's start-up lines, which tools wait for.
#[test]
fn jetstream_start_up_lines() {
    let dir = TempDir::new("js-lines");
    let sd = dir.0.join("store").to_string_lossy().into_owned();
    let s = Server::tachyon(2, &["-js", "-sd", &sd]);
    let want = format!("[INF]   Store Directory: \"{sd}/jetstream\"");
    let log = s.log();
    for line in [
        "[INF] Starting JetStream",
        "[INF] ---------------- JETSTREAM ----------------",
        "[INF]   Strict:          true",
        "[INF]   API Level:       2",
        want.as_str(),
        "[INF] Server is ready",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    let starting = log.find("Starting JetStream").unwrap_or(usize::MAX);
    let ready = log.find("Server is ready").unwrap_or(0);
    assert!(
        starting < ready,
        "JetStream must be up before the server says it is ready"
    );
}

// ---- files tools wait on --------------------------------------------------------------------------

#[test]
fn log_file_pid_file_and_ports_file() {
    let dir = TempDir::new("files");
    let log = dir.0.join("server.log");
    let pid = dir.0.join("server.pid");
    let (log_s, pid_s) = (
        log.to_string_lossy().into_owned(),
        pid.to_string_lossy().into_owned(),
    );
    let s = Server::tachyon(2, &["-l", &log_s, "-P", &pid_s]);

    let listen = format!(
        "[INF] Listening for client connections on 127.0.0.1:{}",
        s.port
    );
    let text = wait_for_text(&log, &[&listen, "[INF] Server is ready"]);
    assert!(text.contains(&listen), "log file:\n{text}");
    assert!(text.contains("[INF] Server is ready"), "log file:\n{text}");
    let listen_at = text.find(&listen).unwrap_or(usize::MAX);
    let ready_at = text.find("Server is ready").unwrap_or(0);
    assert!(listen_at < ready_at, "ready before listening:\n{text}");

    let pid_text = std::fs::read_to_string(&pid).unwrap_or_default();
    assert_eq!(pid_text.trim(), s.pid().to_string(), "pid file {pid:?}");

    let files = ports_files(&s.ports_dir());
    assert_eq!(files.len(), 1, "ports files: {files:?}");
    let name = files[0]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(name, format!("tachyon_{}.ports", s.pid()));
    let json: serde_json::Value =
        match serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap_or_default()) {
            Ok(v) => v,
            Err(e) => panic!("ports file {:?} is not JSON: {e}", files[0]),
        };
    assert_eq!(
        json["nats"],
        serde_json::json!([format!("nats://127.0.0.1:{}", s.port)]),
        "ports file: {json}"
    );
    // The log is not also on stderr when it goes to a file.
    assert!(
        !s.log().contains("Server is ready"),
        "log went to stderr too:\n{}",
        s.log()
    );
}

#[test]
fn random_port_gives_distinct_working_ports() {
    // Server::start passes `-p -1`.
    let a = Server::tachyon(2, &[]);
    let b = Server::tachyon(2, &[]);
    assert_ne!(a.port, 4222);
    assert_ne!(a.port, b.port, "two random ports collided");
    client(a.port);
    client(b.port);
}

/// Listeners use SO_REUSEPORT, which would let a second Tachyon on the same port join the group
/// and take some of the connections. It must refuse the port as nats-server does, and the first
/// server must keep every connection.
#[test]
fn a_busy_port_fails_start_up_like_nats_server() {
    let first = Server::tachyon(2, &[]);
    let port = first.port.to_string();
    let want = format!(
        "[FTL] Error listening on port: 127.0.0.1:{port}, \
         \"listen tcp 127.0.0.1:{port}: bind: address already in use\""
    );
    let o = run_bin(
        tachyon_bin(),
        &["-a", "127.0.0.1", "-p", &port, "--shards", "2"],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout {}\nstderr {}",
        o.stdout,
        o.stderr
    );
    assert!(o.stderr.contains(&want), "stderr: {}", o.stderr);
    if let Some(reference) = common::require_nats_server("busy port") {
        let r = run_bin(&reference, &["-a", "127.0.0.1", "-p", &port]);
        assert_eq!(r.status.code(), Some(1), "nats-server: {}", r.stderr);
        assert!(
            r.stderr.contains(&want),
            "nats-server says otherwise: {}",
            r.stderr
        );
    }
    // Every connection still reaches the first server: two clients on the same subject talk.
    let mut sub = client(first.port);
    sub.send(b"SUB busy.port 1\r\nPING\r\n");
    sub.read_until(b"PONG\r\n", STEP);
    for i in 0..8 {
        let mut p = client(first.port);
        p.send(format!("PUB busy.port 2\r\n{i:02}\r\nPING\r\n").as_bytes());
        p.read_until(b"PONG\r\n", STEP);
        let got = sub.read_until(format!("{i:02}\r\n").as_bytes(), STEP);
        assert!(
            got.text()
                .contains(&format!("MSG busy.port 1 2\r\n{i:02}\r\n")),
            "publisher {i} did not reach the subscriber: {:?}",
            got.text()
        );
    }
}

#[test]
fn a_busy_monitor_port_fails_start_up_like_nats_server() {
    let taken = match std::net::TcpListener::bind(("127.0.0.1", 0)) {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let port = match taken.local_addr() {
        Ok(a) => a.port().to_string(),
        Err(e) => panic!("local_addr: {e}"),
    };
    let want = format!(
        "[FTL] Can't start monitoring: can't listen to the monitor port: \
         listen tcp 127.0.0.1:{port}: bind: address already in use"
    );
    let args = ["-a", "127.0.0.1", "-p", "-1", "-m", &port];
    let o = run_bin(tachyon_bin(), &args);
    assert_eq!(o.status.code(), Some(1), "stderr {}", o.stderr);
    assert!(o.stderr.contains(&want), "stderr: {}", o.stderr);
    if let Some(reference) = common::require_nats_server("busy monitor port") {
        let r = run_bin(&reference, &args);
        assert!(r.stderr.contains(&want), "nats-server says: {}", r.stderr);
    }
}

#[test]
fn listens_on_ipv6_loopback() {
    if std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        eprintln!("SKIP listens_on_ipv6_loopback: ::1 cannot be bound on this machine");
        return;
    }
    // A later -a overrides the helper's 127.0.0.1, as Go's flag package does.
    let s = Server::tachyon(2, &["-a", "::1"]);
    let files = ports_files(&s.ports_dir());
    let text = files
        .first()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    assert!(
        text.contains(&format!("nats://[::1]:{}", s.port)),
        "ports file: {text}"
    );
    let addr = SocketAddr::from((Ipv6Addr::LOCALHOST, s.port));
    let stream = match TcpStream::connect(addr) {
        Ok(st) => st,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    let mut c = RawConn::from_stream(stream, STEP);
    c.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
    let got = c.read_until(b"PONG\r\n", STEP);
    assert!(got.text().ends_with("PONG\r\n"), "got {:?}", got.text());
    assert!(
        s.log().contains(&format!(
            "Listening for client connections on [::1]:{}",
            s.port
        )),
        "log:\n{}",
        s.log()
    );
}

// ---- connection churn -------------------------------------------------------------------------

/// Descriptor numbers are reused as soon as they are closed: a connection's teardown must never
/// touch a descriptor after closing it, or it cuts whichever socket was accepted next. Many
/// threads connect and hang up at once; every connection must live until its client drops it.
#[test]
fn connection_churn_never_cuts_a_live_connection() {
    let s = Server::tachyon(SHARDS, &[]);
    let port = s.port;
    let workers: Vec<_> = (0..6)
        .map(|w| {
            thread::spawn(move || {
                for i in 0..150 {
                    let mut c = RawConn::connect(port, STEP);
                    c.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
                    for round in 0..3 {
                        let got = c.read_until(b"PONG\r\n", STEP);
                        assert!(
                            !got.closed && got.text().ends_with("PONG\r\n"),
                            "worker {w} connection {i} round {round}: got {:?}, closed {}",
                            got.text(),
                            got.closed
                        );
                        c.send(b"PING\r\n");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        if let Err(e) = w.join() {
            panic!("{}\nserver log:\n{}", panic_text(&e), s.log());
        }
    }
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Voluntary context switches of the server's shard threads: each is one sleep ended.
fn shard_wakeups(s: &Server) -> u64 {
    let mut total = 0;
    let tasks = std::fs::read_dir(format!("/proc/{}/task", s.pid())).expect("tasks");
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("shard-") {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// A server with clients but no traffic sleeps: after the last message a shard may wake once
/// for the preemption timer it kept across sleeps (vendor/README.md item 7), then not again
/// until I/O or a user timer (the clients' pings are minutes away). A kept timer re-armed on
/// every wake-up would wake each shard ten times a second.
#[test]
fn an_idle_server_does_not_wake_its_shards() {
    let s = Server::tachyon(SHARDS, &[]);
    let mut clients: Vec<RawConn> = (0..8).map(|_| client(s.port)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("SUB idle.{i} 1\r\nPUB idle.{i} 2\r\nhi\r\nPING\r\n").as_bytes());
        let got = c.read_until(b"PONG\r\n", STEP);
        assert!(got.text().contains("MSG idle."), "got {:?}", got.text());
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = shard_wakeups(&s);
    std::thread::sleep(Duration::from_secs(2));
    let woke = shard_wakeups(&s) - before;
    eprintln!("shard wake-ups over 2 s idle: {woke}");
    assert!(
        woke <= 2 * SHARDS as u64,
        "{SHARDS} idle shards woke {woke} times in 2 s"
    );
    drop(clients);
}

/// The server runs on 4 KiB pages: transparent huge pages are turned off for the process
/// (`small_pages` in main.rs), whatever the host's THP setting, so a burst of held messages
/// does not make the kernel zero 2 MiB at every first touch.
#[test]
fn the_server_turns_transparent_huge_pages_off_for_itself() {
    let s = Server::tachyon(1, &[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).expect("status");
    let Some(thp) = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")) else {
        eprintln!("this kernel does not report THP_enabled; nothing to check");
        return;
    };
    assert_eq!(thp.trim(), "0", "THP_enabled: {thp}");
}

/// A panic on one shard ends the whole process with an `[FTL]` line and a non-zero status
/// (nats-server exits on a panic too), instead of leaving the other shards waiting on its rings.
#[test]
fn a_panicking_shard_ends_the_process_with_a_fatal_line() {
    if !cfg!(debug_assertions) {
        return; // the trigger exists in debug builds only
    }
    let o = run_bin_env(
        tachyon_bin(),
        &["-a", "127.0.0.1", "-p", "-1", "--shards", "3"],
        &[("TACHYON_TEST_PANIC_SHARD", "1")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("[FTL] panic on thread shard-1")
            && o.stderr.contains("TACHYON_TEST_PANIC_SHARD=1"),
        "{}",
        o.stderr
    );
}

#[test]
fn shard_count_is_bounded_by_the_ring_mesh() {
    let o = run_bin(tachyon_bin(), &["-p", "-1", "--shards", "100000"]);
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("[FTL] --shards must be between 1 and 128"),
        "{}",
        o.stderr
    );
    // Within the bound, but more doorbell descriptors than the process may open.
    let o = run_bin(
        Path::new("/bin/sh"),
        &[
            "-c",
            &format!(
                "ulimit -n 256 && exec {} -p -1 --shards 40",
                tachyon_bin().display()
            ),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("--shards 40 needs") && o.stderr.contains("ulimit -n"),
        "{}",
        o.stderr
    );
}

/// A supervisor restarts a server killed with `kill -9` at once, on the same port: the dead
/// process's listeners linger for a few milliseconds while the kernel tears its io_uring
/// instance down, and start-up must ride that out (nats-server restarts at once) instead of
/// failing with EADDRINUSE. Tried several times, since the window is short.
#[test]
fn an_immediate_restart_after_kill_9_takes_the_same_port() {
    let mut s = Server::tachyon(2, &[]);
    let port = s.port;
    for round in 0..5 {
        s.stop(); // SIGKILL, then reaped
        let dir = TempDir::new("restart");
        let err_path = dir.0.join("err");
        let err = std::fs::File::create(&err_path).expect("stderr file");
        let mut child = Command::new(tachyon_bin())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--shards", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn tachyon");
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = loop {
            let text = std::fs::read_to_string(&err_path).unwrap_or_default();
            if text.contains("Server is ready") {
                break true;
            }
            if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                break false;
            }
            thread::sleep(Duration::from_millis(5));
        };
        let text = std::fs::read_to_string(&err_path).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            ready,
            "round {round}: restart on port {port} failed: {text}"
        );
        // The next round kills a fresh server on the same port again.
        s = Server::start(
            common::Impl::Tachyon,
            &["--shards", "2", "-p", &port.to_string()],
        );
    }
}

/// The first server PING comes about 2 s after CONNECT (nats-server's
/// `firstClientPingInterval`, up to 20 % later), whatever the client sends meanwhile; both
/// servers, same steps.
#[test]
fn the_first_ping_comes_two_seconds_after_connect() {
    let mut servers = vec![Server::tachyon(2, &[])];
    if common::require_nats_server("first ping").is_some() {
        servers.push(Server::start(common::Impl::NatsServer, &[]));
    }
    for s in &servers {
        let name = s.which.name();
        let mut c = client(s.port);
        let connected = Instant::now();
        // Traffic does not put the first PING off.
        c.send(b"PUB x 1\r\na\r\n");
        let got = c.read_until(b"PING\r\n", Duration::from_millis(3500));
        let after = connected.elapsed();
        assert!(
            got.text().ends_with("PING\r\n"),
            "{name}: no PING within 3.5 s: {:?}",
            got.text()
        );
        assert!(
            after >= Duration::from_millis(1900),
            "{name}: PING after {after:?}"
        );
    }
}

/// The CPUs each thread of process `pid` may run on (`Cpus_allowed_list`), by thread name.
fn thread_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        else {
            continue;
        };
        let mut cpus = Vec::new();
        for part in list.trim().split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (usize, usize) = (a.parse().expect("cpu"), b.parse().expect("cpu"));
            cpus.extend(a..=b);
        }
        out.push((comm.trim().to_string(), cpus));
    }
    out
}

/// A server started inside a CPU mask (`taskset -c`, a cpuset, a container) keeps every thread
/// inside it, and gives each shard a CPU of its own from it. Shards were pinned to CPU `id` of
/// the machine: under `taskset -c 1` the one shard ran on CPU 0.
#[test]
fn shards_stay_inside_the_cpu_mask_the_server_was_started_with() {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let me = Pid::from_raw(0);
    let all = sched_getaffinity(me).expect("mask");
    let cpus: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| all.is_set(c).unwrap_or(false))
        .collect();
    // The upper half of what the test may use (CPU 1 of 2): a child inherits the mask of the
    // thread that starts it.
    let mask: Vec<usize> = cpus[cpus.len() / 2..].to_vec();
    let mut set = CpuSet::new();
    for &c in &mask {
        set.set(c).expect("cpu");
    }
    sched_setaffinity(me, &set).expect("narrow");
    // Default shard count (one per allowed CPU), and one shard explicitly.
    let servers = [
        Server::start(common::Impl::Tachyon, &[]),
        Server::tachyon(1, &[]),
    ];
    sched_setaffinity(me, &all).expect("restore");
    for s in &servers {
        let threads = thread_cpus(s.pid());
        let shards: Vec<&(String, Vec<usize>)> = threads
            .iter()
            .filter(|(n, _)| n.starts_with("shard-"))
            .collect();
        assert!(!shards.is_empty(), "no shard threads in {threads:?}");
        for (name, on) in &threads {
            assert!(
                on.iter().all(|c| mask.contains(c)),
                "{name} may run on {on:?}, outside the mask {mask:?}"
            );
        }
        // Each executor has helper threads of the same name, pinned with it.
        let mut pinned: Vec<(&str, usize)> = Vec::new();
        for (name, on) in &shards {
            assert_eq!(on.len(), 1, "{name} is not pinned: {on:?}");
            pinned.push((name.as_str(), on[0]));
        }
        pinned.sort_unstable();
        pinned.dedup();
        let mut on: Vec<usize> = pinned.iter().map(|p| p.1).collect();
        on.sort_unstable();
        on.dedup();
        assert_eq!(on.len(), pinned.len(), "two shards share a CPU: {pinned:?}");
    }
}
