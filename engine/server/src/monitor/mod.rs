//! Monitoring over HTTP (`-m PORT`): nats-server's `/varz`, `/connz`, `/subsz`, `/healthz` and
//! friends, on a plain thread of its own. Figures come from the shards through their mailboxes
//! (`tachyon_core::shard::mailbox`), so nothing is shared or locked on the per-message path.

pub mod endpoints;
pub mod gofmt;
pub mod http;
pub mod process;
pub mod query;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use endpoints::Reply;
use query::Query;
use tachyon_core::monitor::snapshot::Want;
use tachyon_core::shard::mailbox::Mailbox;

use crate::listener::{go_op_error, host_port};
use tachyon_core::accounts::AccountId;
use tachyon_core::global::Global;
use tachyon_jetstream::JetStream;

/// How long a request waits for the shards before answering with those that replied.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// nats-server's text, e.g. `...: listen tcp HOST:PORT: bind: address already in use`.
    #[error("Can't start monitoring: can't listen to the monitor port: {0}")]
    Listen(String),
}

/// The monitoring server's shared state: one per process, read by every HTTP connection thread.
pub struct Monitor {
    global: Arc<Global>,
    boxes: std::sync::Arc<[Mailbox]>,
    http_host: String,
    /// As configured (-1 = random), for `/varz`.
    http_port: i64,
    cpu: Mutex<process::CpuMeter>,
    req_stats: Mutex<BTreeMap<String, u64>>,
    js: Option<JetStreamSource>,
}

/// JetStream as `/jsz` and `/varz` read it: the registry (its lock, never a shard) and what
/// the start-up settings said.
pub struct JetStreamSource {
    pub js: Arc<JetStream>,
    /// nats-server's `compress_ok`: both storage limits were configured.
    pub compress_ok: bool,
}

/// The listening socket and where it is bound, before the serving thread starts.
pub struct Bound {
    listener: TcpListener,
    pub addr: SocketAddr,
    /// `host:port` as nats-server logs it (`net.JoinHostPort` of the configured host).
    pub display: String,
}

/// Binds `host:port` (0 = random). The caller logs and starts it.
pub fn bind(host: &str, port: u16) -> Result<Bound, MonitorError> {
    let target = format!("tcp {}", host_port(host, port));
    let fail = |syscall, e| MonitorError::Listen(go_op_error("listen", &target, syscall, &e));
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail("lookup", e))?
        .next()
        .ok_or_else(|| fail("lookup", std::io::Error::other("no address")))?;
    let listener = TcpListener::bind(addr).map_err(|e| fail("bind", e))?;
    let addr = listener.local_addr().map_err(|e| fail("getsockname", e))?;
    let display = host_port(host, addr.port());
    Ok(Bound {
        listener,
        addr,
        display,
    })
}

/// Serves monitoring on its own thread for the life of the process.
pub fn start(
    bound: Bound,
    global: Arc<Global>,
    boxes: std::sync::Arc<[Mailbox]>,
    http_host: String,
    configured_port: u16,
    js: Option<JetStreamSource>,
) -> std::io::Result<()> {
    let monitor = Arc::new(Monitor {
        global,
        boxes,
        http_host,
        http_port: if configured_port == 0 {
            -1
        } else {
            i64::from(configured_port)
        },
        cpu: Mutex::new(process::CpuMeter::new()),
        req_stats: Mutex::new(BTreeMap::new()),
        js,
    });
    std::thread::Builder::new()
        .name("monitor".into())
        .spawn(move || http::serve(bound.listener, monitor))?;
    Ok(())
}

impl Monitor {
    fn count(&self, path: &str) {
        let mut s = self.req_stats.lock().unwrap_or_else(|e| e.into_inner());
        *s.entry(path.to_string()).or_insert(0) += 1;
    }

    fn gather(&self, want: Want) -> Vec<tachyon_core::monitor::snapshot::ShardSnapshot> {
        tachyon_core::shard::mailbox::gather(&self.boxes, want, GATHER_TIMEOUT)
    }

    /// JetStream's configuration, accounts and streams (their configs only with `configs`),
    /// or `None` when it is off.
    fn js_snapshot(&self, configs: bool) -> Option<endpoints::JsSnapshot> {
        let src = self.js.as_ref()?;
        let js = &*src.js;
        let accounts = &self.global.accounts;
        let mut out = endpoints::JsSnapshot {
            settings: js.settings.clone(),
            compress_ok: src.compress_ok,
            api_level: tachyon_jetstream::API_LEVEL,
            accounts: Vec::new(),
        };
        let reg = js.registry.lock();
        for id in 0..accounts.len().max(1) {
            let id = id as AccountId;
            if !js.enabled_for(id) {
                continue;
            }
            let (api_total, api_errors) = js.registry.api(id).map_or((0, 0), |c| {
                (
                    c.total.load(std::sync::atomic::Ordering::Relaxed),
                    c.errors.load(std::sync::atomic::Ordering::Relaxed),
                )
            });
            let streams = reg
                .get(&id)
                .into_iter()
                .flat_map(|a| a.streams.iter())
                // A stream still being created (or deleted) is not listed, as in STREAM.LIST.
                .filter(|(_, s)| s.ready)
                .map(|(name, s)| endpoints::JsStreamSnapshot {
                    name: name.clone(),
                    created: s.created,
                    memory: s.config.is_memory(),
                    max_bytes: s.config.max_bytes,
                    figures: s.figures.load(),
                    consumers: s.figures.consumer_count(),
                    config: configs.then(|| s.config.clone()),
                })
                .collect();
            out.accounts.push(endpoints::JsAccountSnapshot {
                name: accounts.name(id).to_string(),
                api_total,
                api_errors,
                streams,
            });
        }
        Some(out)
    }

    /// Answers one request: `path` without the query, `raw_query` after the `?`.
    pub fn route(&self, path: &str, raw_query: &str) -> Reply {
        let q = Query::parse(raw_query);
        let g = &*self.global;
        let config = g.config();
        let id = config.server_id.as_str();
        let known = matches!(
            path,
            "/" | "/varz"
                | "/connz"
                | "/subsz"
                | "/subscriptionsz"
                | "/healthz"
                | "/routez"
                | "/gatewayz"
                | "/leafz"
                | "/accountz"
                | "/accstatz"
                | "/jsz"
        );
        if !known {
            return Reply::not_found();
        }
        self.count(path);
        let now = SystemTime::now;
        match path {
            "/" => Reply {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: index_html().into_bytes(),
            },
            "/varz" => {
                let snaps = self.gather(Want::default());
                let cpu = self.cpu.lock().unwrap_or_else(|e| e.into_inner()).sample();
                let stats = self
                    .req_stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let js = self.js_snapshot(false);
                let inputs = endpoints::VarzInputs {
                    global: g,
                    http_host: &self.http_host,
                    http_port: self.http_port,
                    now: now(),
                    mem: process::rss_bytes(),
                    cpu,
                    cores: std::thread::available_parallelism().map_or(1, |c| c.get()),
                    http_req_stats: stats,
                    js: js.as_ref(),
                };
                Reply::json(&endpoints::varz(inputs, &snaps))
            }
            "/connz" => match endpoints::ConnzOpts::from_query(&q) {
                Ok(o) => {
                    let snaps = if o.state == endpoints::ConnState::Closed {
                        Vec::new()
                    } else {
                        self.gather(Want {
                            conns: true,
                            subs: o.wants_subs(),
                        })
                    };
                    let closed = if o.state == endpoints::ConnState::Open {
                        Vec::new()
                    } else {
                        g.closed.list()
                    };
                    Reply::json(&endpoints::connz(id, now(), &o, snaps, closed, &g.accounts))
                }
                Err(e) => Reply::bad_request(e),
            },
            "/subsz" | "/subscriptionsz" => match endpoints::SubszOpts::from_query(&q) {
                Ok(o) => {
                    let snaps = self.gather(Want {
                        conns: o.wants_conns(),
                        subs: o.subs,
                    });
                    Reply::json(&endpoints::subsz(id, now(), &o, snaps, &g.accounts))
                }
                Err(e) => Reply::bad_request(e),
            },
            "/healthz" => Reply {
                status: 200,
                content_type: "application/json",
                body: br#"{"status":"ok"}"#.to_vec(),
            },
            "/routez" => match q.bool("subs") {
                Ok(subs) => {
                    let snaps = self.gather(Want { conns: false, subs });
                    Reply::json(&endpoints::routez(g, now(), &snaps, subs))
                }
                Err(e) => Reply::bad_request(e),
            },
            "/gatewayz" => Reply::json(&endpoints::gatewayz(g, now())),
            "/leafz" => match q.bool("subs") {
                Ok(subs) => {
                    let snaps = self.gather(Want { conns: false, subs });
                    Reply::json(&endpoints::leafz(g, now(), &snaps, subs, q.get("acc")))
                }
                Err(e) => Reply::bad_request(e),
            },
            "/accountz" => Reply::json(&endpoints::accountz(g, now())),
            "/accstatz" => Reply::json(&endpoints::accstatz(g, now())),
            _ => match endpoints::JszOpts::from_query(&q) {
                Ok(o) => {
                    let js = self.js_snapshot(o.config);
                    match endpoints::jsz(g, now(), &o, js.as_ref()) {
                        Ok(j) => Reply::json(&j),
                        Err(e) => Reply::bad_request(e),
                    }
                }
                Err(e) => Reply::bad_request(e),
            },
        }
    }
}

fn index_html() -> String {
    let links = [
        ("varz", "General"),
        ("jsz", "JetStream"),
        ("connz", "Connections"),
        ("accountz", "Accounts"),
        ("accstatz", "Account Stats"),
        ("subsz", "Subscriptions"),
        ("routez", "Routes"),
        ("leafz", "LeafNodes"),
        ("gatewayz", "Gateways"),
        ("healthz", "Health Probe"),
    ];
    let mut s = String::from(
        "<html lang=\"en\">\n\t<head>\n\t<link rel=\"shortcut icon\" href=\"https://nats.io/favicon.ico\">\n\t</head>\n\t<body>\n",
    );
    s.push_str(&format!(
        "\t<a href=https://github.com/nats-io/nats-server class='version'>v{} (tachyon {})</a>\n\t<br/>\n",
        tachyon_config::NATS_VERSION,
        tachyon_config::TACHYON_VERSION
    ));
    for (path, label) in links {
        s.push_str(&format!(
            "\t<a href=./{path}>{label}<span class=\"endpoint\"> /{path}</span></a>\n"
        ));
    }
    s.push_str("\t<a href=https://docs.nats.io/running-a-nats-service/nats_admin/monitoring class=\"help\">Help</a>\n  </body>\n</html>");
    s
}
