//! Differential test: every raw client session in `tests/corpus/*.session` is played byte for byte
//! against the reference nats-server and against tachyon (`--shards 4`); what each server sends
//! back (INFO normalized, everything else literal) and whether it closed the connection must match.
//!
//! Session file format, one item per line:
//! - empty lines and `# comment` (a `#` followed by a space) are ignored;
//! - `#args ARG...`: extra server arguments, before any data (split on whitespace);
//! - `#conn NAME`: later lines go to connection NAME, opened on first use (the first data line
//!   opens connection `A`); transcripts are compared per connection, in order of opening;
//! - `#sleep MS`: pause;
//! - `#wait TEXT`: wait (at most 3 s) until the current connection has received TEXT (escapes
//!   allowed) since its last wait; used to order effects across connections without sleeping;
//! - `#repeat N TEXT`: send TEXT (escapes allowed) N times;
//! - anything else is data: sent as written, without the line's own newline; the escapes
//!   `\r`, `\n`, `\t`, `\\`, `\xHH` stand for those bytes.
//!
//! With `TACHYON_TEST_AGAINST=nats-server`, the reference is compared with itself: that checks
//! that the harness and the corpus are deterministic.

mod common;

use common::{Impl, RawConn, Server};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a connection must stay silent before its transcript is taken as complete.
const QUIET: Duration = Duration::from_millis(300);
/// Upper bound on collecting one connection's final output.
const COLLECT_MAX: Duration = Duration::from_secs(3);
const WAIT_MAX: Duration = Duration::from_secs(3);
const TACHYON_SHARDS: usize = 4;
const PARALLEL: usize = 6;

/// INFO keys whose values belong to one server instance or build, not to the protocol.
const INFO_VOLATILE: &[&str] = &[
    "server_id",
    "server_name",
    "version",
    "go",
    "git_commit",
    "host",
    "port",
    "client_id",
    "client_ip",
    "nonce",
    "xkey",
    "connect_urls",
    "ws_connect_urls",
    "tachyon",
    "jetstream",
    "domain",
    "cluster",
    "cluster_dynamic",
    "ip",
    // Tied to the advertised version, like `version`.
    "api_lvl",
];

#[derive(Debug)]
enum Step {
    Conn(String),
    Send(Vec<u8>),
    Sleep(Duration),
    Wait(Vec<u8>),
}

#[derive(Debug)]
struct Session {
    name: String,
    args: Vec<String>,
    steps: Vec<Step>,
}

fn unescape(text: &str, file: &str, line: usize) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = text
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{file}:{line}: bad \\x escape"))?;
                out.push(hex);
                i += 2;
            }
            _ => return Err(format!("{file}:{line}: unknown escape in {text:?}")),
        }
        i += 2;
    }
    Ok(out)
}

fn parse_session(path: &Path) -> Result<Session, String> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("?")
        .to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path:?}: {e}"))?;
    let mut session = Session {
        name: name.clone(),
        args: Vec::new(),
        steps: Vec::new(),
    };
    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        if raw.is_empty() || raw == "#" || raw.starts_with("# ") {
            continue;
        }
        let Some(directive) = raw.strip_prefix('#') else {
            session
                .steps
                .push(Step::Send(unescape(raw, &name, line_no)?));
            continue;
        };
        let (word, rest) = directive.split_once(' ').unwrap_or((directive, ""));
        match word {
            "args" => {
                if !session.steps.is_empty() {
                    return Err(format!("{name}:{line_no}: #args must come before any data"));
                }
                session
                    .args
                    .extend(rest.split_whitespace().map(str::to_string));
            }
            "conn" => session.steps.push(Step::Conn(rest.trim().to_string())),
            "sleep" => {
                let ms: u64 = rest
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}:{line_no}: #sleep wants milliseconds"))?;
                session.steps.push(Step::Sleep(Duration::from_millis(ms)));
            }
            "wait" => session
                .steps
                .push(Step::Wait(unescape(rest, &name, line_no)?)),
            "repeat" => {
                let (n, what) = rest
                    .split_once(' ')
                    .ok_or_else(|| format!("{name}:{line_no}: #repeat N TEXT"))?;
                let n: usize = n
                    .parse()
                    .map_err(|_| format!("{name}:{line_no}: #repeat wants a count"))?;
                session
                    .steps
                    .push(Step::Send(unescape(what, &name, line_no)?.repeat(n)));
            }
            other => return Err(format!("{name}:{line_no}: unknown directive #{other}")),
        }
    }
    Ok(session)
}

/// One connection's view of a run.
struct ConnRun {
    name: String,
    conn: RawConn,
    received: Vec<u8>,
    /// How far `#wait` has consumed `received`.
    waited_to: usize,
    notes: Vec<String>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Plays `session` against `server`; returns the normalized transcript of every connection.
fn play(session: &Session, server: &Server) -> String {
    let mut conns: Vec<ConnRun> = Vec::new();
    let mut current: Option<usize> = None;
    let open = |conns: &mut Vec<ConnRun>, name: &str| -> usize {
        if let Some(i) = conns.iter().position(|c| c.name == name) {
            return i;
        }
        let conn = RawConn::connect(server.port, Duration::from_secs(5));
        let received = conn.info.clone().into_bytes();
        conns.push(ConnRun {
            name: name.to_string(),
            conn,
            received,
            waited_to: 0,
            notes: Vec::new(),
        });
        conns.len() - 1
    };
    for step in &session.steps {
        match step {
            Step::Conn(name) => current = Some(open(&mut conns, name)),
            Step::Send(bytes) => {
                let i = match current {
                    Some(i) => i,
                    None => {
                        let i = open(&mut conns, "A");
                        current = Some(i);
                        i
                    }
                };
                conns[i].conn.send(bytes);
            }
            Step::Sleep(d) => std::thread::sleep(*d),
            Step::Wait(text) => {
                let Some(i) = current else { continue };
                let c = &mut conns[i];
                let deadline = Instant::now() + WAIT_MAX;
                loop {
                    if let Some(pos) = find(&c.received[c.waited_to..], text) {
                        c.waited_to += pos + text.len();
                        break;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        c.notes.push(format!(
                            "<#wait {:?} timed out>",
                            String::from_utf8_lossy(text)
                        ));
                        break;
                    }
                    let got = c.conn.read_quiet(Duration::from_millis(20), deadline - now);
                    c.received.extend_from_slice(&got.bytes);
                    if got.closed && find(&c.received[c.waited_to..], text).is_none() {
                        c.notes.push(format!(
                            "<#wait {:?}: connection closed>",
                            String::from_utf8_lossy(text)
                        ));
                        break;
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for c in &mut conns {
        let got = c.conn.read_quiet(QUIET, COLLECT_MAX);
        c.received.extend_from_slice(&got.bytes);
        out.push_str(&format!("== connection {} ==\n", c.name));
        out.push_str(&render(&c.received));
        for note in &c.notes {
            out.push_str(note);
            out.push('\n');
        }
        out.push_str(if got.closed {
            "<server closed the connection>\n"
        } else {
            "<connection still open>\n"
        });
    }
    out
}

/// One line per protocol line, with control bytes escaped and INFO normalized.
fn render(bytes: &[u8]) -> String {
    let mut out = String::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if let Some(json) = text.strip_prefix("INFO ") {
            let (json, end) = match json.strip_suffix("\r\n") {
                Some(j) => (j, "\\r\\n"),
                None => (json, ""),
            };
            out.push_str("INFO ");
            out.push_str(&normalize_info(json));
            out.push_str(end);
        } else {
            out.push_str(&escape(line));
        }
        out.push('\n');
    }
    out
}

fn normalize_info(json: &str) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(json) else {
        return format!("<not a JSON object: {json}>");
    };
    // Whether a volatile key is present is not compared either: tachyon may add or omit some.
    for key in INFO_VOLATILE {
        map.remove(*key);
    }
    serde_json::Value::Object(map).to_string()
}

fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// A readable line diff: common prefix elided, then both sides from the first differing line.
fn diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let from = first.saturating_sub(3);
    let mut out = String::new();
    if from > 0 {
        out.push_str(&format!("   ... {from} equal lines ...\n"));
    }
    for line in &e[from..first] {
        out.push_str(&format!("   {}\n", clip(line)));
    }
    for line in e.iter().skip(first).take(20) {
        out.push_str(&format!(" - {}\n", clip(line)));
    }
    for line in a.iter().skip(first).take(20) {
        out.push_str(&format!(" + {}\n", clip(line)));
    }
    out
}

/// Long payload lines are cut so a failure stays readable.
fn clip(line: &str) -> String {
    const MAX: usize = 300;
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}... ({} bytes)", &line[..at], line.len()),
        None => line.to_string(),
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn load_corpus() -> Vec<Session> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().and_then(|e| e.to_str()) == Some("session"));
    paths.sort();
    paths
        .iter()
        .map(|p| parse_session(p).unwrap_or_else(|e| panic!("bad session file: {e}")))
        .collect()
}

fn start(which: Impl, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match which {
        Impl::Tachyon => Server::tachyon(TACHYON_SHARDS, &args),
        Impl::NatsServer => Server::start(Impl::NatsServer, &args),
    }
}

fn run_one(session: &Session, candidate: Impl) -> Result<(), String> {
    let reference = {
        let server = start(Impl::NatsServer, &session.args);
        play(session, &server)
    };
    if reference.contains("<#wait") {
        return Err(format!(
            "session {} is broken: a #wait never completes against nats-server:\n{reference}",
            session.name
        ));
    }
    let actual = {
        let server = start(candidate, &session.args);
        play(session, &server)
    };
    if let Some(dir) = std::env::var_os("TACHYON_DUMP_DIR") {
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join(format!("{}.nats-server.txt", session.name)),
            &reference,
        );
        let _ = std::fs::write(
            dir.join(format!("{}.{}.txt", session.name, candidate.name())),
            &actual,
        );
    }
    if reference == actual {
        Ok(())
    } else {
        Err(format!(
            "session {}: {} differs from nats-server (- nats-server, + {}):\n{}",
            session.name,
            candidate.name(),
            candidate.name(),
            diff(&reference, &actual)
        ))
    }
}

#[test]
fn corpus_matches_nats_server() {
    if common::require_nats_server("corpus_matches_nats_server").is_none() {
        return;
    }
    let candidate = common::under_test();
    let sessions = load_corpus();
    assert!(
        sessions.len() >= 30,
        "corpus has only {} sessions",
        sessions.len()
    );
    let only = std::env::var("TACHYON_SESSION").ok();
    let queue: Arc<Mutex<VecDeque<Session>>> = Arc::new(Mutex::new(
        sessions
            .into_iter()
            .filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o)))
            .collect(),
    ));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let passed: Arc<Mutex<usize>> = Arc::default();
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let failures = Arc::clone(&failures);
            let passed = Arc::clone(&passed);
            std::thread::spawn(move || loop {
                let next = queue.lock().map(|mut q| q.pop_front()).ok().flatten();
                let Some(session) = next else { break };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_one(&session, candidate)
                }));
                let outcome = match result {
                    Ok(r) => r,
                    Err(p) => Err(format!(
                        "session {} panicked: {}",
                        session.name,
                        p.downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| p.downcast_ref::<&str>().copied())
                            .unwrap_or("?")
                    )),
                };
                match outcome {
                    Ok(()) => {
                        if let Ok(mut n) = passed.lock() {
                            *n += 1;
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failures.lock() {
                            f.push(e);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    let passed = passed.lock().map(|n| *n).unwrap_or(0);
    eprintln!(
        "differential ({} vs nats-server): {passed} sessions equal, {} differ",
        candidate.name(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} sessions differ:\n\n{}",
        failures.len(),
        failures.len() + passed,
        failures.join("\n")
    );
}

#[test]
fn session_parser_handles_escapes_and_directives() {
    let dir = common::TempDir::new("session-parse");
    let path = dir.0.join("x.session");
    std::fs::write(
        &path,
        "# comment\n#args --user a --pass b\nPUB a 2\\r\\nhi\\r\\n\n#sleep 5\n#conn B\n#wait PONG\\r\\n\n#repeat 3 ab\n\\x41\\t\\\\\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let s = parse_session(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.args, ["--user", "a", "--pass", "b"]);
    assert_eq!(s.steps.len(), 6);
    assert!(matches!(&s.steps[0], Step::Send(b) if b == b"PUB a 2\r\nhi\r\n"));
    assert!(matches!(&s.steps[1], Step::Sleep(d) if *d == Duration::from_millis(5)));
    assert!(matches!(&s.steps[2], Step::Conn(c) if c == "B"));
    assert!(matches!(&s.steps[3], Step::Wait(w) if w == b"PONG\r\n"));
    assert!(matches!(&s.steps[4], Step::Send(b) if b == b"ababab"));
    assert!(matches!(&s.steps[5], Step::Send(b) if b == b"A\t\\"));
    std::fs::write(&path, "#bogus\n").unwrap_or_else(|e| panic!("write: {e}"));
    assert!(parse_session(&path).is_err());
}

#[test]
fn info_normalization_drops_instance_fields_only() {
    let a = normalize_info(
        r#"{"server_id":"X","version":"2.15.1","port":1,"max_payload":1048576,"headers":true,"client_id":5}"#,
    );
    let b = normalize_info(
        r#"{"headers":true,"server_id":"Y","version":"2.12.0","port":2,"max_payload":1048576,"client_id":9,"tachyon":"0.1"}"#,
    );
    assert_eq!(a, b);
    let c = normalize_info(r#"{"max_payload":1024,"headers":true}"#);
    assert_ne!(a, c);
    assert_eq!(
        render(b"+OK\r\nMSG a 1 2\r\nhi\r\n"),
        "+OK\\r\\n\nMSG a 1 2\\r\\n\nhi\\r\\n\n"
    );
}
