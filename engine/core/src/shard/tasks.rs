//! The tasks a shard runs on its executor: the inbound ring consumers, the overflow flusher,
//! the acceptor, and at the end lame duck and close-all. Start-up builds the parts
//! (`mesh.rs`) and hands each executor its own.

use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;

use super::mailbox::{Control, Orders};
use super::Shard;
use crate::client::CloseReason;
use crate::doorbell::BellReceiver;
use crate::envelope::Envelope;
use crate::global::Global;
use crate::outlet::Outlet;
use crate::ring::Consumer;

/// How many envelopes a ring consumer handles before it lets other tasks run.
pub const RING_BATCH: usize = 256;
const _: () = assert!(
    RING_BATCH <= super::mesh::RING_CAPACITY,
    "a batch never exceeds a ring"
);

/// nats-server's back-off between failed accepts (`ACCEPT_MIN_SLEEP`, `ACCEPT_MAX_SLEEP`).
const ACCEPT_MIN_SLEEP: Duration = Duration::from_millis(10);
const ACCEPT_MAX_SLEEP: Duration = Duration::from_secs(1);

/// Work a shard does at start, before any shard accepts a client: services subscribe here
/// (and wait for a barrier, so their interest is visible everywhere when clients arrive).
pub type StartHook =
    Box<dyn FnOnce(Rc<Shard>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + Send>;

/// Runs on the shard once every client is closed at shutdown (a service saving its state).
pub type StopHook = StartHook;

/// Counts shards past their start hooks. No shard accepts clients, and the server does not
/// say it is ready, until every shard arrived.
#[derive(Debug)]
pub struct Ready {
    arrived: AtomicUsize,
    shards: usize,
}

impl Ready {
    pub fn new(shards: usize) -> Ready {
        Ready {
            arrived: AtomicUsize::new(0),
            shards,
        }
    }

    fn arrive(&self) {
        let before = self.arrived.fetch_add(1, Ordering::AcqRel);
        assert!(before < self.shards, "a shard arrived twice");
    }

    pub fn all(&self) -> bool {
        self.arrived.load(Ordering::Acquire) == self.shards
    }

    /// Start-up only: polled, since a cross-thread wake-up is not worth its machinery here.
    async fn wait(&self) {
        while !self.all() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Everything one shard's executor starts from, built by `mesh::build`.
pub struct ShardParts {
    pub id: usize,
    /// This shard's `SO_REUSEPORT` listening socket, handed over once.
    pub listener_fd: RawFd,
    /// Its socket in the WebSocket port's `SO_REUSEPORT` group, if `websocket {}` is on.
    pub ws_listener_fd: Option<RawFd>,
    pub(crate) outlets: Vec<Option<Outlet>>,
    pub(crate) inlets: Vec<(u16, Consumer<Envelope>, BellReceiver)>,
    pub(crate) inbox: super::mailbox::Inbox,
    pub(crate) placement: super::rebalance::Placement,
    pub(crate) ready: Arc<Ready>,
    /// Run in order once the shard's ring consumers run, before it accepts clients.
    pub on_start: Vec<StartHook>,
    pub on_stop: Vec<StopHook>,
}

/// One shard's life on its executor: the shard state, its monitoring and reload listeners, a
/// consumer per inbound ring, the overflow flusher and the acceptor; then, once the control
/// order comes, lame duck (if asked) and closing every client.
pub async fn run(parts: ShardParts, n: usize, global: Arc<Global>) {
    let ShardParts {
        id,
        listener_fd,
        ws_listener_fd,
        outlets,
        inlets,
        inbox,
        placement,
        ready,
        on_start,
        on_stop,
    } = parts;
    let shard = Rc::new(Shard::new(id as u16, n, global.clone(), outlets, placement));
    #[cfg(debug_assertions)]
    panic_for_tests(id);
    let orders = Rc::new(Orders::default());
    glommio::spawn_local(inbox.serve(shard.clone(), orders.clone())).detach();

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

    if global.accounts.any_imports {
        let s = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(super::responses::SWEEP_EVERY).await;
                s.responses.borrow_mut().sweep(std::time::Instant::now());
            }
        })
        .detach();
    }
    for hook in on_start {
        hook(shard.clone()).await;
    }
    ready.arrive();
    ready.wait().await;
    crate::leaf::start(&shard);
    crate::route::start(&shard);
    if global.config().opts.cluster.is_some() {
        glommio::spawn_local(crate::route::push_info(shard.clone())).detach();
    }

    let acceptor = glommio::spawn_local(accept_loop(shard.clone(), listener_fd, false));
    let ws_acceptor =
        ws_listener_fd.map(|fd| glommio::spawn_local(accept_loop(shard.clone(), fd, true)));

    let order = orders.next().await;
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
    if let Some(fd) = ws_listener_fd {
        // SAFETY: as above, the WebSocket port's socket of this shard, still open.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
    // The acceptor ends by itself: its pending accept fails now, and a connection it completed
    // just before is dropped (closed) by it since `accepting` is off. Cancelling it instead
    // could strand a socket accepted in that moment in a completion nobody reads, open and never
    // served (seen once in tests/lifecycle.rs under a loaded suite).
    futures_lite::future::or(acceptor, async {
        glommio::timer::sleep(Duration::from_millis(200)).await;
    })
    .await;
    if let Some(a) = ws_acceptor {
        futures_lite::future::or(a, async {
            glommio::timer::sleep(Duration::from_millis(200)).await;
        })
        .await;
    }
    if order == Control::LameDuck {
        lame_duck(&shard).await;
    }
    close_all(&shard, CloseReason::ServerShutdown).await;
    for hook in on_stop {
        hook(shard.clone()).await;
    }
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
        // Never pauses for a subscriber that fell behind: the ring carries every publisher of
        // the other shard. Those that fed it are told (`Envelope::Stall`) and pause there.
        while got < RING_BATCH {
            // Handled where it lies in the ring: an envelope is ~150 bytes, and moving it out
            // cost a copy per message (flamegraphs/README.md).
            match consumer.pop_in_slot(|env, slot| shard.on_envelope(from, env, slot)) {
                None => break,
                Some(None) => {}
                // A connection that moved here: it runs on this shard from now on.
                Some(Some(arrived)) => crate::conn::resume(shard.clone(), arrived),
            }
            got += 1;
        }
        if got > 0 {
            shard.tick(std::time::Instant::now());
            shard.after_sends();
            glommio::yield_if_needed().await;
            continue;
        }
        bell.wait_for(&consumer).await;
        // The clock of the batch to come (it may have slept for long).
        shard.recent.set(std::time::Instant::now());
    }
}

async fn lame_duck(shard: &Rc<Shard>) {
    let cfg = shard.global.config();
    let mut info = shard.global.info_template();
    info.ldm = true;
    let clients: Vec<_> = shard.clients.borrow().values().cloned().collect();
    // As nats-server: only clients that take asynchronous INFO (protocol 1) and are fully
    // registered (their first PONG went out) are told.
    for c in clients
        .iter()
        .filter(|c| c.flags.get().protocol >= 1 && c.first_pong_sent.get())
    {
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

/// Accepts clients on `listener_fd` (the client port, or with `websocket` the WebSocket port)
/// until the shard stops accepting.
async fn accept_loop(s: Rc<Shard>, listener_fd: RawFd, websocket: bool) {
    // SAFETY: `listener_fd` is a listening socket created for this shard alone and handed over
    // exactly once.
    let listener = unsafe { TcpListener::from_raw_fd(listener_fd) };
    let mut delay = ACCEPT_MIN_SLEEP;
    loop {
        match listener.accept().await {
            Ok(stream) => {
                delay = ACCEPT_MIN_SLEEP;
                if !s.accepting.get() {
                    drop(stream);
                    continue;
                }
                if websocket {
                    glommio::spawn_local(crate::websocket::accept::serve(s.clone(), stream))
                        .detach();
                } else {
                    glommio::spawn_local(crate::conn::serve(s.clone(), stream)).detach();
                }
            }
            Err(_) if !s.accepting.get() => return,
            Err(e) => {
                // As nats-server: out of descriptors (or another passing failure), the
                // connection waits in the backlog while the acceptor backs off, so the
                // log gets a line per attempt, at most one a second, not one per client.
                let info = s.global.info_template();
                let e = std::io::Error::from(e);
                let addr = crate::gotext::host_port(&info.host, info.port);
                tracing::error!(
                    "Temporary Client Accept Error({}), sleeping {}ms",
                    crate::gotext::op_error("accept", &format!("tcp {addr}"), "accept4", &e),
                    delay.as_millis()
                );
                glommio::timer::sleep(delay).await;
                delay = (delay * 2).min(ACCEPT_MAX_SLEEP);
            }
        }
    }
}
