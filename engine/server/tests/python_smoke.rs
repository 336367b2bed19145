//! The Python client (nats-py) against the server under test: runs `tests/py/smoke.py` with the
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
    let Some(py) = python() else {
        if std::env::var("TACHYON_ALLOW_SKIP").as_deref() == Ok("1") {
            eprintln!("SKIP nats_py_smoke: no venv python (run scripts/setup.sh)");
            return;
        }
        panic!("nats_py_smoke: no python with nats-py: run scripts/setup.sh or set TACHYON_PYTHON");
    };
    let server = Server::under_test(4, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/smoke.py");
    let mut child = match Command::new(&py)
        .arg(&script)
        .arg(&server.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("run {py:?}: {e}"),
    };
    // smoke.py bounds itself at 60 s; this is the backstop should the interpreter hang.
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
        Err(e) => panic!("wait for smoke.py: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "smoke.py failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        out.status,
        server.log()
    );
    assert!(
        stdout.contains("smoke: all passed"),
        "smoke.py did not finish: {stdout}"
    );
}
