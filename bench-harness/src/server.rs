//! Starting and stopping a server binary under test, the way test tools start
//! nats-server: a random port announced through the ports file.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::conn::resolve;
use crate::error::{BenchError, Result};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerSpec {
    pub name: String,
    pub path: PathBuf,
    /// Extra arguments after the harness's own (`-c auth.conf -m -1`), to compare one binary
    /// with itself under another configuration.
    #[serde(default)]
    pub args: Vec<String>,
}

impl std::str::FromStr for ServerSpec {
    type Err = BenchError;

    /// `NAME=PATH` or `NAME=PATH ARG...` (whitespace-separated; no quoting).
    fn from_str(s: &str) -> Result<ServerSpec> {
        let bad = || BenchError::Config(format!("--server wants NAME=PATH [ARG...], got {s:?}"));
        let (name, rest) = s.split_once('=').ok_or_else(bad)?;
        let mut words = rest.split_whitespace();
        let path = words.next().ok_or_else(bad)?;
        if name.is_empty() {
            return Err(bad());
        }
        Ok(ServerSpec {
            name: name.into(),
            path: path.into(),
            args: words.map(String::from).collect(),
        })
    }
}

/// The first line of `PATH --version`, or why there is none.
pub fn version_of(path: &Path) -> String {
    match Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => format!("unavailable: {e}"),
    }
}

/// Reads the client URL out of a nats-server ports file: `{"nats":["nats://h:p"],...}`.
pub fn parse_ports_file(text: &str) -> Result<SocketAddr> {
    Ok(parse_ports(text)?.0)
}

/// The client URL and the WebSocket URL (`"websocket":["ws://h:p"]`, when it is on) of a
/// ports file.
fn parse_ports(text: &str) -> Result<(SocketAddr, Option<SocketAddr>)> {
    #[derive(Deserialize)]
    struct Ports {
        nats: Vec<String>,
        #[serde(default)]
        websocket: Vec<String>,
    }
    let p: Ports = serde_json::from_str(text)
        .map_err(|e| BenchError::Process(format!("bad ports file: {e}")))?;
    let url = p
        .nats
        .first()
        .ok_or_else(|| BenchError::Process("ports file lists no client URL".into()))?;
    let ws = p.websocket.first().map(|u| resolve(u)).transpose()?;
    Ok((resolve(url)?, ws))
}

/// The `websocket {}` block the `ws-*` workloads need: a random port, no TLS, compression
/// allowed (used only where the client asks for it).
const WEBSOCKET_CONF: &str =
    "websocket {\n  host: \"127.0.0.1\"\n  port: -1\n  no_tls: true\n  compression: true\n}\n";

pub struct RunningServer {
    child: Child,
    pub addr: SocketAddr,
    /// The WebSocket port, when it was asked for.
    pub ws_addr: Option<SocketAddr>,
    dir: PathBuf,
}

impl RunningServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Whether the process is still alive (a crash mid-run shows here).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the server and removes its folder (JetStream store included); dropping it does
    /// the same, so a failed test or run leaves no server behind.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn spawn(spec: &ServerSpec, dir: &Path, args: &[&str], extra: &[String]) -> Result<Child> {
    let log = fs::File::create(dir.join("server.log"))?;
    let log2 = log.try_clone()?;
    Command::new(&spec.path)
        .args(args)
        .args(extra)
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| BenchError::Process(format!("cannot start {}: {e}", spec.path.display())))
}

fn find_ports_file(dir: &Path) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "ports"))
        .and_then(|e| fs::read_to_string(e.path()).ok())
        .filter(|t| !t.trim().is_empty())
}

fn wait_connectable(addr: SocketAddr, child: &mut Child, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(BenchError::Process(format!("server exited early: {st}")));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Process(format!("{addr} never accepted")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `spec` on a random loopback port in a fresh folder under `work`.
pub fn start(spec: &ServerSpec, work: &Path, seq: usize) -> Result<RunningServer> {
    start_with(spec, work, seq, false)
}

/// The flags that turn JetStream on with its store in `dir` (both Tachyon and nats-server
/// take them; a `-c` file among the spec's own arguments keeps its other JetStream settings).
pub fn jetstream_args(dir: &Path) -> Vec<String> {
    vec![
        "-js".into(),
        "-sd".into(),
        dir.join("jetstream").to_string_lossy().into_owned(),
    ]
}

/// [`start`], with JetStream on (`-js -sd <its folder>/jetstream`, removed with the folder
/// by [`RunningServer::stop`]) when `jetstream` is set.
pub fn start_with(
    spec: &ServerSpec,
    work: &Path,
    seq: usize,
    jetstream: bool,
) -> Result<RunningServer> {
    start_full(spec, work, seq, jetstream, false)
}

/// What a server is started with beyond the harness's own flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Setup {
    /// `-js -sd <its folder>/jetstream`.
    pub jetstream: bool,
    /// A `websocket {}` port, found through the ports file.
    pub websocket: bool,
    /// A hub: accepts leafnodes on this loopback port.
    pub leaf_port: Option<u16>,
    /// A leaf of the hub whose leafnode port this is.
    pub hub_port: Option<u16>,
    /// A cluster member listening for routes on this loopback port.
    pub cluster_port: Option<u16>,
    /// A cluster member that dials the route port of this one.
    pub route_to: Option<u16>,
}

impl Setup {
    /// The config file the blocks need (`-c`, before the spec's own arguments), if any.
    fn conf(&self) -> Option<String> {
        let mut c = String::new();
        if self.websocket {
            c.push_str(WEBSOCKET_CONF);
        }
        if let Some(p) = self.leaf_port {
            c.push_str(&format!(
                "leafnodes {{\n  port: {p}\n  host: \"127.0.0.1\"\n}}\n"
            ));
        }
        if let Some(p) = self.cluster_port {
            c.push_str(&format!(
                "cluster {{\n  name: bench\n  listen: \"127.0.0.1:{p}\"\n}}\n"
            ));
        }
        if let Some(p) = self.route_to {
            c.push_str(&format!(
                "cluster {{\n  name: bench\n  listen: \"127.0.0.1:-1\"\n  routes: [\"nats-route://127.0.0.1:{p}\"]\n}}\n"
            ));
        }
        if let Some(p) = self.hub_port {
            c.push_str(&format!(
                "leafnodes {{\n  remotes = [ {{ url: \"nats-leaf://127.0.0.1:{p}\" }} ]\n}}\n"
            ));
        }
        (!c.is_empty()).then_some(c)
    }
}

/// [`start_with`], and with a WebSocket port (a `-c` file holding a `websocket {}` block,
/// before the spec's own arguments) when `websocket` is set. That port is found through the
/// ports file.
pub fn start_full(
    spec: &ServerSpec,
    work: &Path,
    seq: usize,
    jetstream: bool,
    websocket: bool,
) -> Result<RunningServer> {
    start_setup(
        spec,
        work,
        seq,
        Setup {
            jetstream,
            websocket,
            ..Setup::default()
        },
    )
}

/// Starts `spec` as `setup` says, on a random loopback client port in a fresh folder.
pub fn start_setup(
    spec: &ServerSpec,
    work: &Path,
    seq: usize,
    setup: Setup,
) -> Result<RunningServer> {
    let Setup {
        jetstream,
        websocket,
        ..
    } = setup;
    let dir = work.join(format!("{}-{seq}", spec.name));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let mut extra = if jetstream {
        jetstream_args(&dir)
    } else {
        Vec::new()
    };
    if let Some(text) = setup.conf() {
        let conf = dir.join("bench.conf");
        fs::write(&conf, text)?;
        extra.push("-c".into());
        extra.push(conf.to_string_lossy().into_owned());
    }
    let dir_s = dir.to_string_lossy().into_owned();
    let mut child = spawn(
        spec,
        &dir,
        &["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", &dir_s],
        &extra,
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(text) = find_ports_file(&dir) {
            match parse_ports(&text) {
                Ok((_, None)) if websocket => debug!("ports file lists no websocket port yet"),
                Ok((addr, ws_addr)) => {
                    wait_connectable(addr, &mut child, Duration::from_secs(5))?;
                    debug!("{} on {addr} (ports file)", spec.name);
                    return Ok(RunningServer {
                        child,
                        addr,
                        ws_addr,
                        dir,
                    });
                }
                // Possibly half written: read again.
                Err(e) => debug!("ports file not ready: {e}"),
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            warn!(
                "{} exited ({st}) with --ports_file_dir; retrying with a fixed free port",
                spec.name
            );
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if websocket {
        return Err(BenchError::Process(format!(
            "{} wrote no ports file listing its websocket port",
            spec.name
        )));
    }
    // No ports file support: pick a free port ourselves. A tiny race with other
    // programs binding the same port is possible; the connect check catches it.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let port_s = port.to_string();
    let mut child = spawn(spec, &dir, &["-a", "127.0.0.1", "-p", &port_s], &extra)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if let Err(e) = wait_connectable(addr, &mut child, Duration::from_secs(10)) {
        let _ = child.kill();
        let _ = child.wait();
        let log = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        return Err(BenchError::Process(format!(
            "{} did not start: {e}; log: {}",
            spec.name,
            log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
        )));
    }
    Ok(RunningServer {
        child,
        addr,
        ws_addr: None,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_spec_parses() {
        let s: ServerSpec = "nats=/usr/bin/nats-server".parse().unwrap();
        assert_eq!(s.name, "nats");
        assert_eq!(s.path, PathBuf::from("/usr/bin/nats-server"));
        assert!(s.args.is_empty());
        let a: ServerSpec = "auth=/bin/tachyon -c a.conf -m -1".parse().unwrap();
        assert_eq!(a.path, PathBuf::from("/bin/tachyon"));
        assert_eq!(a.args, ["-c", "a.conf", "-m", "-1"]);
        assert!("nats".parse::<ServerSpec>().is_err());
        assert!("=x".parse::<ServerSpec>().is_err());
    }

    #[test]
    fn ports_file() {
        let a = parse_ports_file(r#"{"nats":["nats://127.0.0.1:4567"],"monitoring":[]}"#).unwrap();
        assert_eq!(a, SocketAddr::from(([127, 0, 0, 1], 4567)));
        assert!(parse_ports_file(r#"{"nats":[]}"#).is_err());
        assert!(parse_ports_file("{").is_err());
        let (a, ws) = parse_ports(
            r#"{"nats":["nats://127.0.0.1:4567"],"websocket":["ws://127.0.0.1:8080"]}"#,
        )
        .unwrap();
        assert_eq!(a.port(), 4567);
        assert_eq!(ws, Some(SocketAddr::from(([127, 0, 0, 1], 8080))));
    }
}
