//! Process start-up: listeners, the ring mesh between shards, one pinned executor per shard,
//! signal handling, config reload, and the files tools wait on (log lines, ports file, pid
//! file). What each shard does once started lives in the core (`tachyon_core::shard::tasks`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use glommio::{LocalExecutorBuilder, Placement};

use crate::listener::{self, ListenError};
use crate::{logging, monitor, portsfile};
use tachyon_config::Options;
use tachyon_core::auth::Authenticate;
use tachyon_core::global::{Config, Global};
use tachyon_core::shard::mailbox::{Control, Job};
use tachyon_core::shard::mesh::{self, Mesh};
use tachyon_core::shard::tasks;
use tachyon_core::tls::TlsAcceptor;

/// The soft `RLIMIT_NOFILE`, raised to the hard limit first (as Go's runtime does at start).
fn descriptor_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return u64::MAX;
        }
        if r.rlim_cur < r.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        r.rlim_cur as u64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("Can't start JetStream: {0}")]
    JetStream(String),
    #[error(
        "--shards must be between 1 and {max} (the ring mesh grows with the square of the \
         shard count), got {0}",
        max = mesh::MAX_SHARDS
    )]
    Shards(usize),
    #[error(
        "--shards {shards} needs {needed} file descriptors for its ring doorbells and client \
         port, more than the limit of {limit}: raise it (`ulimit -n`, LimitNOFILE in a systemd \
         unit) or run fewer shards"
    )]
    Descriptors {
        shards: usize,
        needed: u64,
        limit: u64,
    },
    #[error("failed to create a wake-up socket pair: {0}")]
    Socketpair(std::io::Error),
    #[error("failed to start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error(transparent)]
    Monitor(#[from] monitor::MonitorError),
    #[error(
        "failed to start shard executor {0}: {1}. io_uring needs locked memory: raise RLIMIT_MEMLOCK \
         (e.g. `ulimit -l unlimited`, or LimitMEMLOCK=infinity in a systemd unit)"
    )]
    Executor(usize, String),
    #[error("{0}")]
    Tls(#[from] tachyon_auth::TlsError),
    #[error(transparent)]
    Config(#[from] tachyon_config::ConfigError),
    #[error(transparent)]
    LeafNkey(#[from] tachyon_auth::BadSeed),
    /// nats-server's fatal `Error listening on router port: PORT - listen tcp H:P: bind: ...`.
    #[error("Error listening on router port: {port} - {text}")]
    RoutePort { port: u16, text: String },
}

/// Blocks the signals the control thread handles, so no shard thread is interrupted by them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a zeroed local set; pthread_sigmask affects this thread
    // and the threads it spawns afterwards.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGHUP,
        ] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is a valid initialised sigset and `sig` a valid out pointer.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}

/// A panic on any thread ends the process at once with an `[FTL]` line and exit status 2 (a Go
/// panic's), as nats-server does: the other shards would otherwise wait forever on the rings
/// of the one that died, a server that looks alive and serves nobody.
fn die_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        logging::fatal(&format!("panic on thread {name}: {info}"));
        std::process::exit(2);
    }));
}

/// How long a shard's task queue runs before glommio makes it yield (glommio's default is
/// 100 ms). Measured: with 100 ms, one request/reply in a thousand waited 0.5-0.7 ms more
/// (p99.9 755-795 µs against 180-225 µs with 1-10 ms, one shard, 16 B, 3 rounds of 20 000);
/// an idle shard costs nothing either way (the timer is not armed while it sleeps).
const PREEMPT_TIMER: std::time::Duration = std::time::Duration::from_millis(5);

/// A route port another process holds stops the start, as in nats-server (the shard that
/// serves it binds it once every shard is up; this probe makes the failure fatal and early).
fn check_route_port(opts: &Options) -> Result<(), StartError> {
    let Some(c) = opts.cluster.as_ref().filter(|c| c.port != 0) else {
        return Ok(());
    };
    // A Tachyon killed with `kill -9` keeps its listeners while the kernel tears its io_uring
    // down (listener.rs): a port that stays busy for a second is another process's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut bound = std::net::TcpListener::bind((c.host.as_str(), c.port));
    while bound.is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        bound = std::net::TcpListener::bind((c.host.as_str(), c.port));
    }
    match bound {
        Ok(_) => Ok(()),
        Err(e) => {
            let target = format!("tcp {}", tachyon_core::gotext::host_port(&c.host, c.port));
            Err(StartError::RoutePort {
                port: c.port,
                text: tachyon_core::gotext::op_error("listen", &target, "bind", &e),
            })
        }
    }
}

pub fn run(opts: Options) -> Result<(), StartError> {
    die_on_panic();
    let n = opts.shards.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |c| c.get())
            .min(mesh::MAX_SHARDS)
    });
    if n == 0 || n > mesh::MAX_SHARDS {
        return Err(StartError::Shards(n));
    }
    let (needed, limit) = (mesh::descriptors(n), descriptor_limit());
    if needed > limit {
        return Err(StartError::Descriptors {
            shards: n,
            needed,
            limit,
        });
    }
    check_route_port(&opts)?;
    let sigset = block_signals();
    let accounts = tachyon_core::accounts::Accounts::resolve(&opts.accounts)?;
    let (auth, tls, ws_tls, ws_auth) = services(&opts, &accounts)?;
    let mut config = Config::new(&opts, auth, tls);
    config.ws_tls = ws_tls;
    config.ws_auth = ws_auth;
    config.leaf_tls = opts
        .leafnodes
        .remotes
        .iter()
        .map(|r| {
            r.tls
                .as_ref()
                .map(|t| {
                    tachyon_auth::ClientTls::load(t)
                        .map(|c| Arc::new(c) as Arc<dyn tachyon_core::tls::TlsConnector>)
                })
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    config.leaf_signers = opts
        .leafnodes
        .remotes
        .iter()
        .map(|r| {
            if let Some(path) = &r.credentials {
                let s = tachyon_auth::CredsSigner(path.clone());
                return Ok(Some(Arc::new(s) as Arc<dyn tachyon_core::leaf::LeafSigner>));
            }
            r.nkey_seed
                .as_deref()
                .map(|seed| {
                    tachyon_auth::NkeySigner::from_seed(seed)
                        .map(|s| Arc::new(s) as Arc<dyn tachyon_core::leaf::LeafSigner>)
                })
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    config.leaf_accept_tls = match opts.leafnodes.listen.as_ref().and_then(|l| l.tls.as_ref()) {
        Some(t) => Some(Arc::new(tachyon_auth::ServerTls::load(t, false)?) as Arc<dyn TlsAcceptor>),
        None => None,
    };
    // nats-server opens the WebSocket port before the client port.
    let ws_bound = match &opts.websocket {
        Some(ws) => Some(listener::bind_listeners(&ws.host, ws.port, n)?),
        None => None,
    };
    let (fds, bound) = listener::bind_listeners(&config.opts.host, config.opts.port, n)?;
    let global = Arc::new(Global::with_accounts(config, bound.port(), accounts));
    if let Some((_, b)) = &ws_bound {
        global
            .ws_port
            .store(b.port(), std::sync::atomic::Ordering::Release);
    }
    // Bound before the shards start, so a busy monitor port fails start-up cleanly.
    let http_host = opts.http_host.clone().unwrap_or_else(|| opts.host.clone());
    let http = match opts.http_port {
        Some(port) => Some((monitor::bind(&http_host, port)?, port)),
        None => None,
    };

    tracing::info!(
        "Starting nats-server (tachyon {})",
        tachyon_config::TACHYON_VERSION
    );
    tracing::info!("  Version:  {}", tachyon_config::NATS_VERSION);
    tracing::info!("  Shards:   {n}");
    tracing::info!("  Name:     {}", global.config().server_name);
    tracing::info!("  ID:       {}", global.config().server_id);

    let Mesh {
        parts,
        mailboxes,
        ready,
    } = mesh::build(&fds, opts.migrate).map_err(StartError::Socketpair)?;
    #[cfg(debug_assertions)]
    let parts = {
        let mut parts = parts;
        crate::test_service::install(&mut parts);
        parts
    };
    let mut parts = parts;
    if let Some((ws_fds, _)) = &ws_bound {
        for (p, fd) in parts.iter_mut().zip(ws_fds) {
            p.ws_listener_fd = Some(*fd);
        }
    }
    let mut jetstream = None;
    if let Some(mut js) = crate::jetstream::settings(&opts) {
        js.server_name = global.config().server_name.clone();
        let started = std::time::Instant::now();
        let temporary = !opts.explicit.contains(&"store_dir")
            && opts
                .jetstream
                .as_ref()
                .is_some_and(|j| j.store_dir.is_none())
            && opts.store_dir.is_none();
        crate::jetstream::log_start(&js, temporary);
        if opts.cluster.is_some() {
            // Streams are not replicated: with routes, this server's JetStream serves its own
            // streams, and its API subjects are announced to the peers like any interest.
            tracing::warn!(
                "JetStream is not clustered in Tachyon: this server's streams live on it alone"
            );
        }
        let limits = crate::jetstream::account_limits(&opts, &global.accounts);
        let installed =
            crate::jetstream::install(&mut parts, js, limits).map_err(StartError::JetStream)?;
        tracing::info!("Took {:?} to start JetStream", started.elapsed());
        jetstream = Some(monitor::JetStreamSource {
            js: installed,
            compress_ok: crate::jetstream::compress_ok(&opts),
        });
    }

    let allowed = crate::cpus::allowed();
    let mut handles = Vec::with_capacity(n);
    for p in parts {
        let g = global.clone();
        let placement = match crate::cpus::for_shard(p.id, n, &allowed) {
            Some(cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let id = p.id;
        let mut builder = LocalExecutorBuilder::new(placement).name(&format!("shard-{id}"));
        if !opts.spin_before_park.is_zero() {
            builder = builder.spin_before_park(opts.spin_before_park);
        }
        builder = builder.preempt_timer(PREEMPT_TIMER);
        let h = builder
            .spawn(move || async move { tasks::run(p, n, g).await })
            .map_err(|e| StartError::Executor(id, e.to_string()))?;
        handles.push(h);
    }

    // Signals are taken by a plain thread; it posts the order to every shard's mailbox.
    let reload_global = global.clone();
    let boxes = mailboxes.clone();
    let mut reloads = 0u64;
    let control = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let sig = wait_signal(&sigset);
            let next = match sig {
                libc::SIGINT | libc::SIGTERM => {
                    let name = if sig == libc::SIGINT {
                        "interrupt"
                    } else {
                        "terminated"
                    };
                    tracing::info!("Trapped \"{name}\" signal");
                    tracing::info!("Initiating Shutdown...");
                    Control::Shutdown
                }
                libc::SIGUSR2 => {
                    tracing::info!("Entering lame duck mode, stop accepting new clients");
                    Control::LameDuck
                }
                libc::SIGUSR1 => {
                    tracing::info!("Reopening log file");
                    if let Err(e) = logging::reopen() {
                        tracing::error!("Error reopening log: {e}");
                    }
                    continue;
                }
                _ => {
                    match reload(&reload_global) {
                        Ok(()) => {
                            // Open connections are re-checked before the reload is reported.
                            reloads += 1;
                            if !tachyon_core::reload::apply(&boxes, reloads) {
                                tracing::warn!("Not every shard applied the reload in time");
                            }
                            tracing::info!("Reloaded server configuration")
                        }
                        Err(e) => tracing::error!("Failed to reload server configuration: {e}"),
                    }
                    continue;
                }
            };
            for b in boxes.iter() {
                b.post(Job::Control(next));
            }
            return;
        })
        .map_err(|e| StartError::Thread("signals", e))?;

    // Every shard ran its start hooks (services subscribed, their interest visible on every
    // shard) and accepts clients before anything tools wait on appears.
    while !ready.all() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let http_addr = match http {
        Some((bound_http, port)) => {
            tracing::info!("Starting http monitor on {}", bound_http.display);
            let addr = bound_http.addr;
            monitor::start(
                bound_http,
                global.clone(),
                mailboxes,
                http_host,
                port,
                jetstream,
            )
            .map_err(|e| StartError::Thread("monitor", e))?;
            Some(addr)
        }
        None => None,
    };
    let host_display = match bound {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    };
    if let (Some(ws), Some((_, b))) = (&opts.websocket, &ws_bound) {
        let scheme = if ws.tls.is_some() { "wss" } else { "ws" };
        tracing::info!(
            "Listening for websocket clients on {scheme}://{}:{}",
            ws.host,
            b.port()
        );
        if ws.tls.is_none() {
            tracing::warn!("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!");
        }
    }
    tracing::info!("Listening for client connections on {host_display}");
    let tls_on = global.config().tls.is_some();
    if let Some(t) = global.config().tls.as_ref().map(|t| t.settings().clone()) {
        // TLS-first without a fallback needs the handshake, whatever `allow_non_tls` says.
        let first_only = t.handshake_first && t.fallback.is_zero();
        if t.allow_non_tls && !first_only {
            tracing::info!("TLS available for client connections");
        } else {
            tracing::info!("TLS required for client connections");
        }
        if first_only {
            tracing::warn!(
                "Clients that are not using \"TLS Handshake First\" option will fail to connect"
            );
        }
    }
    let ports_path: Option<PathBuf> = opts.ports_file_dir.as_ref().and_then(|dir| {
        let ports = portsfile::Ports {
            nats: portsfile::urls(if tls_on { "tls" } else { "nats" }, bound),
            monitoring: http_addr
                .map(|a| portsfile::urls("http", a))
                .unwrap_or_default(),
            websocket: match (&opts.websocket, &ws_bound) {
                (Some(ws), Some((_, b))) => {
                    portsfile::urls(if ws.tls.is_some() { "wss" } else { "ws" }, *b)
                }
                _ => Vec::new(),
            },
            ..Default::default()
        };
        match portsfile::write(dir, &ports) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!("Error writing ports file: {e}");
                None
            }
        }
    });
    if let Some(pid) = &opts.pid_file {
        if let Err(e) = portsfile::write_pid_file(pid) {
            tracing::error!("Could not write pidfile: {e}");
        }
    }
    tracing::info!("Server is ready");

    for h in handles {
        let _ = h.join();
    }
    let _ = control.join();
    if let Some(p) = ports_path {
        let _ = portsfile::remove(&p);
    }
    tracing::info!("Server Exiting..");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("can only reload config when a file is provided using -c or --config")]
    NoConfigFile,
    #[error("{}", .0.located())]
    Config(#[from] tachyon_config::ConfigError),
    #[error("config reload not supported for {0}")]
    NotReloadable(&'static str),
    #[error(transparent)]
    Logging(#[from] logging::LoggingError),
    #[error(transparent)]
    Tls(#[from] tachyon_auth::TlsError),
}

/// SIGHUP: re-reads the config file (the command line's flags still win) and installs it; the
/// caller then has the shards re-check their open connections (`reload.rs`). On any error the
/// running configuration stays as it was.
pub fn reload(global: &Global) -> Result<(), ReloadError> {
    let current = global.config();
    if current.opts.config_file.is_none() {
        return Err(ReloadError::NoConfigFile);
    }
    let new = tachyon_config::resolve(&current.opts)?;
    tachyon_core::accounts::Accounts::resolve(&new.accounts)?;
    // The listeners are bound once; nats-server refuses these on reload too.
    if new.host != current.opts.host {
        return Err(ReloadError::NotReloadable("Host"));
    }
    if new.port != current.opts.port {
        return Err(ReloadError::NotReloadable("Port"));
    }
    // JetStream starts with the server: turning it on or off takes a restart here.
    let on = |o: &Options| o.jetstream.as_ref().is_some_and(|j| j.enabled);
    if on(&new) != on(&current.opts) {
        return Err(ReloadError::NotReloadable("JetStream"));
    }
    // Shards size their per-account tables at start and routes are fixed: only the users (and
    // their permissions) of accounts reload.
    if !same_accounts(&new.accounts, &current.opts.accounts) {
        return Err(ReloadError::NotReloadable("Accounts"));
    }
    // Certificates are re-read too (rotation), and a bad one refuses the whole reload.
    // The WebSocket port is bound once too, and its TLS settings start with it.
    if new.websocket != current.opts.websocket {
        return Err(ReloadError::NotReloadable("Websocket"));
    }
    let (auth, tls, _, ws_auth) = services(&new, &global.accounts)?;
    logging::reconfigure(&logging::LogOptions::from(&new))?;
    global.set_config(&new, auth, tls, current.ws_tls.clone(), ws_auth);
    Ok(())
}

type Services = (
    Arc<dyn Authenticate>,
    Option<Arc<dyn TlsAcceptor>>,
    Option<Arc<dyn TlsAcceptor>>,
    Option<Arc<dyn Authenticate>>,
);

/// The authentication and TLS services `opts` describe, for the core to call through its
/// traits. Certificates are read here (a bad one fails start-up or the reload).
fn services(
    opts: &Options,
    accounts: &tachyon_core::accounts::Accounts,
) -> Result<Services, tachyon_auth::TlsError> {
    let auth =
        tachyon_auth::Authenticator::with_accounts(opts.authorization.as_ref(), opts, accounts);
    let tls = match &opts.tls {
        Some(t) => Some(
            Arc::new(tachyon_auth::ServerTls::load(t, opts.allow_non_tls)?) as Arc<dyn TlsAcceptor>,
        ),
        None => None,
    };
    let ws_tls = match opts.websocket.as_ref().and_then(|w| w.tls.as_ref()) {
        Some(t) => Some(Arc::new(tachyon_auth::ServerTls::load(t, false)?) as Arc<dyn TlsAcceptor>),
        None => None,
    };
    Ok((Arc::new(auth), tls, ws_tls, ws_auth(opts, accounts)))
}

/// The websocket block's own authentication (nats-server's `authOverride`): its single user or
/// token instead of the server's, its `no_auth_user`; the server's users stay (a
/// `no_auth_user` names one of them).
fn ws_auth(
    opts: &Options,
    accounts: &tachyon_core::accounts::Accounts,
) -> Option<Arc<dyn Authenticate>> {
    let ws = opts.websocket.as_ref().filter(|w| w.auth_override())?;
    let mut o = opts.clone();
    o.user = ws.username.clone();
    o.pass = ws.password.clone();
    o.auth_token = ws.token.clone();
    o.no_auth_user = ws.no_auth_user.clone();
    let file = opts.authorization.as_ref().map(|a| {
        let mut a = a.clone();
        a.user = None;
        a.pass = None;
        a.token = None;
        a
    });
    Some(Arc::new(tachyon_auth::Authenticator::with_accounts(
        file.as_ref(),
        &o,
        accounts,
    )))
}

/// Same accounts, exports and imports, in the same order (so the same ids).
fn same_accounts(
    a: &[tachyon_config::accounts::AccountDef],
    b: &[tachyon_config::accounts::AccountDef],
) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.exports == y.exports
                && x.imports.len() == y.imports.len()
                && x.imports.iter().zip(&y.imports).all(|(i, j)| {
                    i.kind == j.kind
                        && i.account == j.account
                        && i.subject == j.subject
                        && i.local == j.local
                })
        })
}
