//! The Python client (nats-py) against the server under test: runs `tests/py/smoke.py` (core)
//! and `tests/py/js_smoke.py` (JetStream) with the
//! venv's python (`$TACHYON_PYTHON`, else `.venv/bin/python`, both set up by scripts/setup.sh).

mod common;

use common::Server;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TACHYON_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.is_file().then_some(venv)
}

#[test]
fn nats_py_smoke() {
    let server = Server::under_test(4, &[]);
    run_script("smoke.py", &server);
}

/// JetStream streams and KV with nats-py (`tests/py/js_smoke.py`).
#[test]
fn nats_py_jetstream() {
    let dir = common::TempDir::new("py-js");
    let sd = dir.0.to_string_lossy().into_owned();
    let server = Server::under_test(3, &["-js", "-sd", &sd]);
    run_script("js_smoke.py", &server);
}

/// nats-py over WebSocket (`tests/py/ws_smoke.py`, its aiohttp transport), and aiohttp with
/// permessage-deflate.
#[test]
fn nats_py_websocket() {
    let dir = common::TempDir::new("py-ws");
    let conf = dir.0.join("ws.conf");
    std::fs::write(
        &conf,
        "websocket {\n  port: -1\n  no_tls: true\n  compression: true\n}\n",
    )
    .expect("config");
    let conf = conf.to_string_lossy().into_owned();
    let server = Server::under_test(3, &["-c", &conf]);
    let url = format!("ws://127.0.0.1:{}", server.websocket_port());
    run_script_with("ws_smoke.py", &server, &[&url]);
}

/// The same over wss (`websocket { tls {} }`), the client verifying the server's certificate.
#[test]
fn nats_py_websocket_tls() {
    let dir = common::TempDir::new("py-wss");
    let (cert, key) = common::self_signed(&dir);
    let conf = dir.0.join("wss.conf");
    std::fs::write(
        &conf,
        format!(
            "websocket {{\n  port: -1\n  compression: true\n  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n  }}\n}}\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("config");
    let conf = conf.to_string_lossy().into_owned();
    let server = Server::under_test(3, &["-c", &conf]);
    let url = format!("wss://localhost:{}", server.port_of("websocket", "wss"));
    run_script_with("ws_smoke.py", &server, &[&url, &cert.to_string_lossy()]);
}

/// Runs `tests/py/<script> URL` with the venv's python; it prints "<script stem>: all passed".
fn run_script(name: &str, server: &Server) {
    run_script_with(name, server, &[&server.url]);
}

fn run_script_with(name: &str, server: &Server, args: &[&str]) {
    let Some(py) = python() else {
        if std::env::var("TACHYON_ALLOW_SKIP").as_deref() == Ok("1") {
            eprintln!("SKIP {name}: no venv python (run scripts/setup.sh)");
            return;
        }
        panic!("{name}: no python with nats-py: run scripts/setup.sh or set TACHYON_PYTHON");
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name);
    let mut child = match Command::new(&py)
        .arg(&script)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("run {py:?}: {e}"),
    };
    // The scripts bound themselves at 60 s; this is the backstop should the interpreter hang.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => panic!("wait for {name}: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "{name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        out.status,
        server.log()
    );
    let stem = name.trim_end_matches(".py");
    assert!(
        stdout.contains(&format!("{stem}: all passed")),
        "{name} did not finish: {stdout}"
    );
}
