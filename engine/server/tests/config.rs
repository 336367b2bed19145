//! `-c FILE`: nats-server's config format drives the real binary; flags override the file;
//! a bad file is fatal with its position; SIGHUP reloads without dropping connections.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{RawConn, Server, TempDir};

const SHARDS: usize = 4;
const STEP: Duration = Duration::from_secs(5);

fn tachyon_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tachyon"))
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        panic!("write {path:?}: {e}");
    }
}

/// Connects, sends CONNECT with `auth` JSON fields and a PING; returns the connection and
/// what came back up to PONG or an error.
fn connect_with(port: u16, auth: &str) -> (RawConn, String) {
    let mut c = RawConn::connect(port, STEP);
    let sep = if auth.is_empty() { "" } else { "," };
    c.send(format!("CONNECT {{\"verbose\":false{sep}{auth}}}\r\nPING\r\n").as_bytes());
    let got = c.read_until(b"\r\n", STEP).text();
    (c, got)
}

fn ping(c: &mut RawConn) -> String {
    c.send(b"PING\r\n");
    c.read_until(b"\r\n", STEP).text()
}

/// Polls the server's log until it contains `needle`.
fn wait_log(s: &Server, needle: &str) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let log = s.log();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn sighup(s: &Server) {
    // SAFETY: kill has no memory effects; the pid is our own child, still unreaped.
    let rc = unsafe { libc::kill(s.pid() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn run_to_exit(args: &[&str]) -> Outcome {
    let out = match Command::new(tachyon_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|c| c.wait_with_output())
    {
        Ok(o) => o,
        Err(e) => panic!("run tachyon {args:?}: {e}"),
    };
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn every_construct_takes_effect_and_flags_override_the_file_port() {
    let dir = TempDir::new("cfg-all");
    // Held open so the server can only start if the -p flag beats the file's port.
    let blocker = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let file_port = blocker.local_addr().map(|a| a.port()).unwrap_or(1);
    std::env::set_var("TACHYON_CFG_IT_NAME", "from-env");
    write(&dir.0.join("auth.conf"), "token: 's3cr3t'\ntimeout: 2\n");
    let conf = dir.0.join("server.conf");
    write(
        &conf,
        &format!(
            "# a comment\n// another\nPAYLOAD = 2KB\nlisten: 127.0.0.1:{file_port}\n\
             server_name $TACHYON_CFG_IT_NAME\nmax_payload: $PAYLOAD; max_control_line: 1KB\n\
             debug: off\nlogtime = yes\nping_interval: '2m'\n\
             authorization {{\n  include 'auth.conf'\n}}\n"
        ),
    );
    let conf_s = conf.to_string_lossy().into_owned();
    let s = Server::tachyon(SHARDS, &["-c", &conf_s]);
    assert_ne!(s.port, file_port);
    let (mut c, got) = connect_with(s.port, "\"auth_token\":\"s3cr3t\"");
    assert_eq!(got, "PONG\r\n", "{}", s.log());
    assert!(c.info.contains("\"max_payload\":2048"), "{}", c.info);
    assert!(c.info.contains("\"auth_required\":true"), "{}", c.info);
    assert!(
        c.info.contains("\"server_name\":\"from-env\""),
        "{}",
        c.info
    );
    // max_payload from the file is enforced.
    c.send(format!("PUB x 2049\r\n{}\r\n", "a".repeat(2049)).as_bytes());
    let got = c.read_until(b"\r\n", STEP).text();
    assert!(got.contains("Maximum Payload Violation"), "{got:?}");
    let (_, got) = connect_with(s.port, "\"auth_token\":\"wrong\"");
    assert!(got.contains("Authorization Violation"), "{got:?}");
    drop(blocker);
}

#[test]
fn port_comes_from_the_file() {
    let dir = TempDir::new("cfg-port");
    let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("bind: {e}"),
    };
    let conf = dir.0.join("p.conf");
    write(
        &conf,
        &format!("listen: \"127.0.0.1:{port}\"\nmax_payload: 4KB\n"),
    );
    let mut child = match Command::new(tachyon_bin())
        .args(["--shards", "4", "-c"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("spawn: {e}"),
    };
    // Startup has no ports file here (none configured): poll the port the file names.
    let deadline = Instant::now() + STEP;
    let stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break Some(s),
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let info = stream.map(|s| RawConn::from_stream(s, STEP).info);
    let _ = child.kill();
    let _ = child.wait();
    let info = info.unwrap_or_else(|| panic!("nothing listening on the file's port {port}"));
    assert!(info.contains("\"max_payload\":4096"), "{info}");
}

#[test]
fn malformed_file_is_fatal_and_names_line_and_column() {
    let dir = TempDir::new("cfg-bad");
    let conf = dir.0.join("bad.conf");
    write(&conf, "port: 4222\n\nauthorization {\n  user: \"abc\n}\n");
    let conf_s = conf.to_string_lossy().into_owned();
    let o = run_to_exit(&["-c", &conf_s]);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stderr.contains("[FTL]"), "{}", o.stderr);
    assert!(
        o.stderr
            .contains(&format!("{conf_s}:4:9: unterminated quoted string")),
        "{}",
        o.stderr
    );
    // nats-server's wording, which client test harnesses wait for.
    assert!(
        o.stderr
            .contains("nats-server: Parse error on line 4: 'unterminated quoted string'"),
        "{}",
        o.stderr
    );

    write(&conf, "port: 4222\nbogus_key: 1\n");
    let o = run_to_exit(&["-c", &conf_s]);
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr
            .contains(&format!("{conf_s}:2:1: unknown field \"bogus_key\"")),
        "{}",
        o.stderr
    );

    write(&conf, "port: 4222\ngateway {\n  port: 7222\n}\n");
    let o = run_to_exit(&["-c", &conf_s]);
    assert_eq!(o.code, Some(1));
    assert!(
        o.stderr
            .contains("2:1: config option 'gateway' is not supported yet"),
        "{}",
        o.stderr
    );

    let o = run_to_exit(&["-c", &dir.0.join("missing.conf").to_string_lossy()]);
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("missing.conf"), "{}", o.stderr);
}

#[test]
fn test_flag_checks_the_file_and_exits() {
    let dir = TempDir::new("cfg-t");
    let conf = dir.0.join("ok.conf");
    write(&conf, "port: 4222\nmax_payload: 1MB\n");
    let conf_s = conf.to_string_lossy().into_owned();
    let o = run_to_exit(&["-t", "-c", &conf_s]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stderr.contains("is valid"), "{}", o.stderr);
    write(&conf, "port: [\n");
    let o = run_to_exit(&["-t", "-c", &conf_s]);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
}

#[test]
fn reload_changes_auth_for_new_connections_and_keeps_open_ones() {
    let dir = TempDir::new("cfg-reload");
    let conf = dir.0.join("r.conf");
    let auth = |pass: &str| {
        format!(
            "authorization {{ users = [ {{user: alice, password: {pass}}}, \
             {{user: bob, password: b}} ] }}\n"
        )
    };
    write(&conf, &auth("one"));
    let conf_s = conf.to_string_lossy().into_owned();
    let s = Server::tachyon(SHARDS, &["-c", &conf_s]);
    let old_login = "\"user\":\"alice\",\"pass\":\"one\"";
    let new_login = "\"user\":\"alice\",\"pass\":\"two\"";
    let (mut old_alice, got) = connect_with(s.port, old_login);
    assert_eq!(got, "PONG\r\n", "{}", s.log());
    let (mut kept, got) = connect_with(s.port, "\"user\":\"bob\",\"pass\":\"b\"");
    assert_eq!(got, "PONG\r\n", "{}", s.log());
    kept.send(b"SUB kept.subject 1\r\n");
    assert_eq!(ping(&mut kept), "PONG\r\n");

    write(&conf, &auth("two"));
    sighup(&s);
    let log = wait_log(&s, "Reloaded server configuration");
    assert!(log.contains("Reloaded server configuration"), "{log}");

    // Open connections are re-checked too (tests/reload.rs has the details).
    let got = old_alice.read_to_close(STEP);
    assert_eq!(got.text(), "-ERR 'Authorization Violation'\r\n");
    assert!(got.closed);
    let (_, got) = connect_with(s.port, old_login);
    assert!(got.contains("Authorization Violation"), "{got:?}");
    let (mut fresh, got) = connect_with(s.port, new_login);
    assert_eq!(got, "PONG\r\n");
    // A connection whose credentials still pass is alive and still receives.
    fresh.send(b"PUB kept.subject 2\r\nhi\r\nPING\r\n");
    assert_eq!(fresh.read_until(b"PONG\r\n", STEP).text(), "PONG\r\n");
    let got = kept.read_until(b"hi\r\n", STEP).text();
    assert!(got.contains("MSG kept.subject 1 2\r\nhi\r\n"), "{got:?}");
    assert_eq!(ping(&mut kept), "PONG\r\n");

    // --signal reload=PID takes the same path.
    write(&conf, &auth("three"));
    let pid = s.pid().to_string();
    let o = run_to_exit(&["--signal", &format!("reload={pid}")]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let deadline = Instant::now() + STEP;
    let three = "\"user\":\"alice\",\"pass\":\"three\"";
    let got = loop {
        let (_, got) = connect_with(s.port, three);
        if got == "PONG\r\n" || Instant::now() > deadline {
            break got;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(got, "PONG\r\n", "{}", s.log());
}

#[test]
fn a_bad_reload_keeps_the_running_config() {
    let dir = TempDir::new("cfg-badreload");
    let conf = dir.0.join("r.conf");
    write(&conf, "authorization { token: first }\nmax_payload: 1KB\n");
    let conf_s = conf.to_string_lossy().into_owned();
    let s = Server::tachyon(SHARDS, &["-c", &conf_s]);
    let (mut kept, got) = connect_with(s.port, "\"auth_token\":\"first\"");
    assert_eq!(got, "PONG\r\n", "{}", s.log());

    write(&conf, "authorization { token: second\nmax_payload: [\n");
    sighup(&s);
    let log = wait_log(&s, "Failed to reload server configuration");
    assert!(
        log.contains("[ERR] Failed to reload server configuration"),
        "{log}"
    );
    assert!(log.contains("r.conf:"), "{log}");

    let (c, got) = connect_with(s.port, "\"auth_token\":\"first\"");
    assert_eq!(got, "PONG\r\n");
    assert!(c.info.contains("\"max_payload\":1024"), "{}", c.info);
    let (_, got) = connect_with(s.port, "\"auth_token\":\"second\"");
    assert!(got.contains("Authorization Violation"), "{got:?}");
    assert_eq!(ping(&mut kept), "PONG\r\n");
}

/// async-nats's test harness starts every server with `--store_dir DIR` (and no `-js`):
/// nats-server starts and leaves it unused until JetStream is on, so Tachyon must start too.
#[test]
fn store_dir_without_jetstream_starts() {
    let dir = TempDir::new("cfg-sd");
    let d = dir.0.to_string_lossy().into_owned();
    for args in [
        vec!["--store_dir", d.as_str()],
        vec!["-sd", d.as_str()],
        vec!["--store_dir=/nonexistent/tachyon-test"],
    ] {
        let server = Server::tachyon(2, &args);
        let mut c = RawConn::connect(server.port, Duration::from_secs(5));
        c.send(b"CONNECT {}\r\nPING\r\n");
        let got = c.read_until(b"PONG\r\n", Duration::from_secs(5));
        assert!(got.text().ends_with("PONG\r\n"), "{args:?}: {}", got.text());
    }
}
