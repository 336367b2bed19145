//! Process start-up: listeners, the ring mesh between shards, one pinned executor per shard,
//! signal handling, and the files tools wait on (log lines, ports file, pid file).

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::client::CloseReason;
use crate::doorbell::{self, BellReceiver};
use crate::envelope::{Control, Envelope};
use crate::global::{Config, Global};
use crate::listener::{self, ListenError};
use crate::outlet::Outlet;
use crate::ring::{self, Consumer};
use crate::shard::{Feeder, Shard};
use crate::{conn, logging, monitor, portsfile};
use tachyon_config::Options;

/// Envelopes per shard-pair ring. Small enough that a many-shard mesh stays modest in memory.
const RING_CAPACITY: usize = 4096;
/// How many envelopes a ring consumer handles before it lets other tasks run.
const RING_BATCH: usize = 256;
/// Shards at most: the mesh holds n·(n−1) rings of `RING_CAPACITY` envelopes, each with a
/// socket pair, so memory and descriptors grow with the square of the count (128 shards: 16 256
/// rings, 32 512 descriptors). One shard per core is the design; no host Tachyon is for has more.
pub const MAX_SHARDS: usize = 128;
const _: () = assert!(MAX_SHARDS <= u16::MAX as usize, "shard ids are u16");
const _: () = assert!(RING_BATCH <= RING_CAPACITY, "a batch never exceeds a ring");

/// Descriptors the mesh and listeners take for `n` shards (two per doorbell), plus headroom for
/// the process's own files and a first client per shard.
fn mesh_descriptors(n: usize) -> u64 {
    let n = n as u64;
    2 * n * n.saturating_sub(1) + 2 * n /* control bells */ + 2 * n /* reload */ + n + 64
}

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
    #[error(
        "--shards must be between 1 and {MAX_SHARDS} (the ring mesh grows with the square of the \
         shard count), got {0}"
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
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Config(#[from] tachyon_config::ConfigError),
}

struct ShardParts {
    id: usize,
    listener_fd: RawFd,
    outlets: Vec<Option<Outlet>>,
    inlets: Vec<(u16, Consumer<Envelope>, BellReceiver)>,
    control: BellReceiver,
    monitor: Option<monitor::mailbox::Inbox>,
    reload: crate::reload::Listener,
    placement: crate::shard::rebalance::Placement,
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

pub fn run(opts: Options) -> Result<(), StartError> {
    die_on_panic();
    let n = opts.shards.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |c| c.get())
            .min(MAX_SHARDS)
    });
    if n == 0 || n > MAX_SHARDS {
        return Err(StartError::Shards(n));
    }
    let (needed, limit) = (mesh_descriptors(n), descriptor_limit());
    if needed > limit {
        return Err(StartError::Descriptors {
            shards: n,
            needed,
            limit,
        });
    }
    let sigset = block_signals();
    let accounts = crate::accounts::Accounts::resolve(&opts.accounts)?;
    let mut config = Config::with_accounts(&opts, &accounts);
    config.tls = opts
        .tls
        .as_ref()
        .map(|t| crate::tls::ServerTls::load(t, opts.allow_non_tls))
        .transpose()?;
    let (fds, bound) = listener::bind_listeners(&config.opts.host, config.opts.port, n)?;
    let global = Arc::new(Global::with_accounts(config, bound.port(), accounts));
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

    // The mesh: ring i→j feeds shard j from shard i, with a doorbell to wake j.
    let mut parts: Vec<ShardParts> = Vec::with_capacity(n);
    let mut controls = Vec::with_capacity(n);
    let mut mailboxes = Vec::new();
    let order = Arc::new(AtomicU8::new(0));
    let (reloads, mut reload_listeners) =
        crate::reload::channel(n).map_err(StartError::Socketpair)?;
    let mut placements =
        crate::shard::rebalance::Placement::for_shards(opts.migrate, n).into_iter();
    for ((id, fd), reload) in fds.iter().enumerate().zip(reload_listeners.drain(..)) {
        let Some(placement) = placements.next() else {
            return Err(StartError::Shards(n));
        };
        let (ctl_tx, ctl_rx) = doorbell::doorbell().map_err(StartError::Socketpair)?;
        controls.push(ctl_tx);
        let inbox = if http.is_some() {
            let (mb, inbox) = monitor::mailbox::mailbox().map_err(StartError::Socketpair)?;
            mailboxes.push(mb);
            Some(inbox)
        } else {
            None
        };
        let mut outlets = Vec::with_capacity(n);
        outlets.resize_with(n, || None);
        parts.push(ShardParts {
            id,
            listener_fd: *fd,
            outlets,
            inlets: Vec::new(),
            control: ctl_rx,
            monitor: inbox,
            reload,
            placement,
        });
    }
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let (p, c) = ring::channel::<Envelope>(RING_CAPACITY);
            let (bell, bell_rx) = doorbell::doorbell().map_err(StartError::Socketpair)?;
            parts[i].outlets[j] = Some(Outlet::new(p, bell));
            parts[j].inlets.push((i as u16, c, bell_rx));
        }
    }

    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut handles = Vec::with_capacity(n);
    for p in parts {
        let g = global.clone();
        let order = order.clone();
        let placement = if n <= cores {
            Placement::Fixed(p.id)
        } else {
            Placement::Unbound
        };
        let id = p.id;
        let mut builder = LocalExecutorBuilder::new(placement).name(&format!("shard-{id}"));
        if !opts.spin_before_park.is_zero() {
            builder = builder.spin_before_park(opts.spin_before_park);
        }
        let h = builder
            .spawn(move || async move { shard_main(p, n, g, order).await })
            .map_err(|e| StartError::Executor(id, e.to_string()))?;
        handles.push(h);
    }

    // Signals are taken by a plain thread; it posts the order and rings every shard's bell.
    let reload_global = global.clone();
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
                            if !reloads.notify() {
                                tracing::warn!("Not every shard applied the reload in time");
                            }
                            tracing::info!("Reloaded server configuration")
                        }
                        Err(e) => tracing::error!("Failed to reload server configuration: {e}"),
                    }
                    continue;
                }
            };
            order.store(next as u8, Ordering::SeqCst);
            for bell in &controls {
                bell.ring();
            }
            return;
        })
        .map_err(|e| StartError::Thread("signals", e))?;

    let http_addr = match http {
        Some((bound_http, port)) => {
            tracing::info!("Starting http monitor on {}", bound_http.display);
            let addr = bound_http.addr;
            monitor::start(bound_http, global.clone(), mailboxes, http_host, port)
                .map_err(|e| StartError::Thread("monitor", e))?;
            Some(addr)
        }
        None => None,
    };
    let host_display = match bound {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    };
    tracing::info!("Listening for client connections on {host_display}");
    let tls_on = global.config().tls.is_some();
    if let Some(t) = &global.config().tls {
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
    #[error("jetstream is not supported yet")]
    JetStream,
    #[error(transparent)]
    Logging(#[from] logging::LoggingError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
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
    crate::accounts::Accounts::resolve(&new.accounts)?;
    // The listeners are bound once; nats-server refuses these on reload too.
    if new.host != current.opts.host {
        return Err(ReloadError::NotReloadable("Host"));
    }
    if new.port != current.opts.port {
        return Err(ReloadError::NotReloadable("Port"));
    }
    if new.jetstream.as_ref().is_some_and(|j| j.enabled) {
        return Err(ReloadError::JetStream);
    }
    // Shards size their per-account tables at start and routes are fixed: only the users (and
    // their permissions) of accounts reload.
    if !same_accounts(&new.accounts, &current.opts.accounts) {
        return Err(ReloadError::NotReloadable("Accounts"));
    }
    // Certificates are re-read too (rotation), and a bad one refuses the whole reload.
    let tls = new
        .tls
        .as_ref()
        .map(|t| crate::tls::ServerTls::load(t, new.allow_non_tls))
        .transpose()?;
    logging::reconfigure(&logging::LogOptions::from(&new))?;
    global.set_config(&new, tls);
    Ok(())
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

async fn shard_main(parts: ShardParts, n: usize, global: Arc<Global>, order: Arc<AtomicU8>) {
    let ShardParts {
        id,
        listener_fd,
        outlets,
        inlets,
        control,
        monitor,
        reload,
        placement,
    } = parts;
    let shard = Rc::new(Shard::new(id as u16, n, global.clone(), outlets, placement));
    #[cfg(debug_assertions)]
    panic_for_tests(id);
    if let Some(inbox) = monitor {
        glommio::spawn_local(inbox.serve(shard.clone())).detach();
    }
    glommio::spawn_local(reload.serve(shard.clone())).detach();

    // Ring consumers run in the default task queue on purpose: glommio puts the I/O of a
    // `Latency::Matters` queue on its latency ring, and a sleeping executor is not reliably woken
    // by completions there on this kernel (measured: shards asleep for seconds with a doorbell
    // read complete). The doorbell read on the main ring wakes the executor like any socket.
    for (from, consumer, bell) in inlets {
        let s = shard.clone();
        glommio::spawn_local(inbound_loop(s, from, consumer, bell)).detach();
    }
    let s = shard.clone();
    glommio::spawn_local(async move {
        loop {
            s.overflow_pending.wait().await;
            s.wait_outlets_drained().await;
        }
    })
    .detach();

    // SAFETY: `listener_fd` is a listening socket created for this shard alone and handed over
    // exactly once.
    let listener = unsafe { TcpListener::from_raw_fd(listener_fd) };
    let s = shard.clone();
    let acceptor = glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    if !s.accepting.get() {
                        drop(stream);
                        continue;
                    }
                    glommio::spawn_local(conn::serve(s.clone(), stream)).detach();
                }
                Err(_) if !s.accepting.get() => return,
                Err(e) => {
                    tracing::error!("Error accepting client connection: {e}");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });

    let mut control = control.attach();
    control
        .wait_until(|| order.load(Ordering::SeqCst) != 0)
        .await;
    let order = Control::from_u8(order.load(Ordering::SeqCst));
    shard.accepting.set(false);
    // Refuse new clients now, as nats-server closes its listener. Cancelling the acceptor alone
    // leaves the socket listening for a while (its accept is still in flight): a client that
    // connects then sits in the backlog, never served nor reset (tests/lifecycle.rs). Shutting
    // the socket down stops the listening, resets what is queued and fails that accept.
    // SAFETY: `listener_fd` is this shard's listening socket, still open (the acceptor owns it);
    // shutdown has no memory effects.
    unsafe {
        libc::shutdown(listener_fd, libc::SHUT_RDWR);
    }
    // The acceptor ends by itself: its pending accept fails now, and a connection it completed
    // just before is dropped (closed) by it since `accepting` is off. Cancelling it instead
    // could strand a socket accepted in that moment in a completion nobody reads, open and never
    // served (seen once in tests/lifecycle.rs under a loaded suite).
    futures_lite::future::or(acceptor, async {
        glommio::timer::sleep(Duration::from_millis(200)).await;
    })
    .await;
    if order == Control::LameDuck {
        lame_duck(&shard).await;
    }
    close_all(&shard, CloseReason::ServerShutdown).await;
}

/// Debug builds only: `TACHYON_TEST_PANIC_SHARD=ID` makes shard ID panic 300 ms after start,
/// so the tests can check that a dying shard takes the process down (`tests/lifecycle.rs`).
#[cfg(debug_assertions)]
fn panic_for_tests(id: usize) {
    if std::env::var("TACHYON_TEST_PANIC_SHARD").ok() == Some(id.to_string()) {
        glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(300)).await;
            panic!("TACHYON_TEST_PANIC_SHARD={id}");
        })
        .detach();
    }
}

async fn inbound_loop(
    shard: Rc<Shard>,
    from: u16,
    mut consumer: Consumer<Envelope>,
    bell: BellReceiver,
) {
    let mut bell = bell.attach();
    loop {
        let mut got = 0;
        // One envelope at a time so a subscriber that falls behind pauses this ring at once
        // (the ring then fills and the publisher's shard stops reading it).
        while got < RING_BATCH {
            // Handled where it lies in the ring: an envelope is ~150 bytes, and moving it out
            // cost a copy per message (flamegraphs/README.md).
            if consumer
                .pop_with(|env| shard.on_envelope(from, env))
                .is_none()
            {
                break;
            }
            got += 1;
            if shard.has_stalled() {
                break;
            }
        }
        if got > 0 {
            shard.tick(std::time::Instant::now());
            shard.after_sends();
            shard.wait_stalled(Feeder::Ring).await;
            glommio::yield_if_needed().await;
            continue;
        }
        bell.wait_for(&consumer).await;
    }
}

async fn lame_duck(shard: &Rc<Shard>) {
    let cfg = shard.global.config();
    let mut info = shard.global.info_template();
    info.ldm = true;
    let clients: Vec<_> = shard.clients.borrow().values().cloned().collect();
    for c in &clients {
        let mut i = info.clone();
        i.client_id = c.id;
        let mut buf = Vec::new();
        tachyon_protocol::encode::info(&mut buf, &i);
        c.send_raw(&buf);
    }
    glommio::timer::sleep(cfg.opts.lame_duck_grace_period).await;
    let spread = cfg
        .opts
        .lame_duck_duration
        .saturating_sub(cfg.opts.lame_duck_grace_period);
    let step = if clients.is_empty() {
        Duration::ZERO
    } else {
        spread / clients.len() as u32
    };
    for c in clients {
        c.close(CloseReason::LameDuck);
        if !step.is_zero() {
            glommio::timer::sleep(step.min(Duration::from_secs(1))).await;
        }
    }
}

async fn close_all(shard: &Rc<Shard>, reason: CloseReason) {
    let clients: Vec<_> = shard.clients.borrow().values().cloned().collect();
    for c in &clients {
        c.close(reason);
    }
    // Give writers a bounded moment to flush what was queued.
    for _ in 0..200 {
        if shard.clients.borrow().is_empty() {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}
