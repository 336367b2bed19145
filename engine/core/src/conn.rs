//! The life of one client connection on its shard: INFO, the reader (parse straight out of the read
//! buffer and act), the writer (one write per loop turn for everything queued), keepalive.

use std::cell::Cell;
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use tachyon_protocol::{encode, errors, json, subject, ClientOp, Limits, Parser};

use crate::client::{Affinity, ClientFlags, ClientState, CloseReason};
use crate::global::Config;
use crate::handover::SessionParts;
use crate::piece::Piece;
use crate::shard::{Shard, SubscribeError, STALL_BUDGET};
use crate::signal::LocalSignal;
use crate::socket::Socket;

const READ_CHUNK: usize = 32 * 1024;

/// Keepalive bookkeeping shared by the reader and the ping timer.
struct Liveness {
    last_in: Cell<Instant>,
    pings_out: Cell<u32>,
    /// When the oldest unanswered PING left, for the RTT monitoring reports.
    ping_sent: Cell<Option<Instant>>,
    rtt_known: Cell<bool>,
    /// Raised when CONNECT was handled: the ping loop starts the short first PING then.
    connected: LocalSignal,
}

/// nats-server's `firstClientPingInterval`: the first PING after CONNECT, so the RTT is
/// measured early (up to 20 % later, at random, so clients connected together do not answer
/// together).
const FIRST_CLIENT_PING: Duration = Duration::from_secs(2);

enum Next {
    Continue,
    Close(CloseReason),
    /// PONG after every other shard applied this client's interest changes.
    PongAfterBarrier,
}

struct Session {
    cfg: Arc<Config>,
    shard: Rc<Shard>,
    client: Rc<ClientState>,
    live: Rc<Liveness>,
    connected: bool,
    connect_opts: json::ConnectOptions,
    /// Cancelled by the first successful CONNECT: the timeout is for authenticating, not for
    /// the whole connection.
    auth_timer: Option<glommio::task::JoinHandle<()>>,
    /// The challenge this connection's INFO carried for nkey users to sign.
    nonce: Option<String>,
    /// The reader's half of the TLS session; `None` on a plaintext connection.
    tls: Option<crate::tls::TlsReader>,
    /// The verified client certificate (DER), for `verify_and_map`.
    cert: Option<bytes::Bytes>,
    parser: Parser,
    /// Read but not yet parsed (a partial op waits here for the rest).
    rbuf: BytesMut,
    window: ReadWindow,
}

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let global = shard.global.clone();
    // This connection lives by the configuration it was accepted under (limits, TLS); only its
    // authentication and permissions follow a reload (`reload.rs`).
    let cfg = global.config();
    let fd = stream.as_raw_fd();
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let cid = global.next_client_id();
    let client = Rc::new(ClientState::new(cid, peer, fd, cfg.opts.max_pending));

    let mut info = global.info_template();
    info.client_id = cid;
    if let Some(p) = peer {
        info.client_ip = Some(p.ip().to_string());
    }
    let nonce = cfg.auth.nonce();
    info.nonce = nonce.clone();
    let mut buf = Vec::new();
    encode::info(&mut buf, &info);
    // A TLS client gets INFO and its handshake here, before any task starts (as in
    // nats-server); a plaintext one gets INFO through the writer.
    let mut early = Vec::new();
    let (tls_reader, tls_writer, cert) = match &cfg.tls {
        None => {
            client.send_raw(&buf);
            (None, None, None)
        }
        Some(tls) => {
            // Sent encrypted after a TLS-first handshake, which TLS was required for.
            let mut first = Vec::new();
            info.tls_required = true;
            info.tls_available = false;
            encode::info(&mut first, &info);
            match crate::tls::accept(&mut stream, tls.as_ref(), &buf, &first).await {
                Ok(crate::tls::Start::Tls {
                    reader,
                    writer,
                    cert,
                }) => (Some(reader), Some(writer), cert),
                Ok(crate::tls::Start::Plain(sent)) => {
                    early = sent;
                    (None, None, None)
                }
                Err(e) => {
                    tracing::debug!(
                        "{} - cid:{cid} - TLS handshake error: {e}",
                        client.peer_string()
                    );
                    let _ = stream.close().await;
                    return;
                }
            }
        }
    };

    established(
        shard,
        cfg,
        stream,
        client,
        nonce,
        (tls_reader, tls_writer, cert),
        early,
    )
    .await;
}

/// Runs a connection whose INFO is queued (or sent) and whose TLS or WebSocket session, if
/// any, is set up: the writer, the connection limit, keepalive, the reader.
pub(crate) async fn established(
    shard: Rc<Shard>,
    cfg: Arc<Config>,
    stream: TcpStream,
    client: Rc<ClientState>,
    nonce: Option<String>,
    (tls_reader, tls_writer, cert): (
        Option<crate::tls::TlsReader>,
        Option<crate::tls::TlsWriter>,
        Option<bytes::Bytes>,
    ),
    early: Vec<u8>,
) {
    let global = shard.global.clone();
    let cid = client.id;
    // Reader and writer share the one descriptor (`socket.rs`).
    let socket = Socket::new(stream);
    let writer = glommio::spawn_local(write_loop(
        client.clone(),
        socket.clone(),
        cfg.opts.write_deadline,
        tls_writer,
    ))
    .detach();

    let over_limit = global.conn_count.fetch_add(1, Ordering::AcqRel) >= cfg.opts.max_connections;
    if over_limit {
        // A refused connection holds no slot while its error is flushed.
        global.conn_count.fetch_sub(1, Ordering::AcqRel);
        client.send_err(errors::MAX_CONNECTIONS_EXCEEDED);
        client.close(CloseReason::MaxConnections);
        let _ = writer.await;
        return;
    }
    shard.add_client(&client);
    tracing::debug!(
        "{} - cid:{cid} - Client connection created",
        client.peer_string()
    );
    // Tests read placement from this line (the kernel spreads connections over the shards).
    tracing::debug!("cid:{cid} - served by shard {}", shard.id);
    let live = Rc::new(Liveness {
        last_in: Cell::new(Instant::now()),
        pings_out: Cell::new(0),
        ping_sent: Cell::new(None),
        rtt_known: Cell::new(false),
        connected: LocalSignal::default(),
    });
    let pinger =
        glommio::spawn_local(ping_loop(shard.clone(), client.clone(), live.clone())).detach();
    let ws = client.websocket.get();
    let timeout = match (ws, cfg.opts.websocket.as_ref().and_then(|w| w.auth_timeout)) {
        (true, Some(t)) if cfg.ws_auth.is_some() => t,
        _ => cfg.opts.auth_timeout,
    };
    let auth_timer = cfg
        .auth_for(ws)
        .required()
        .then(|| glommio::spawn_local(auth_timeout(client.clone(), timeout)).detach());
    let session = Session {
        cfg: cfg.clone(),
        shard: shard.clone(),
        client: client.clone(),
        live,
        connected: false,
        connect_opts: json::ConnectOptions::default(),
        auth_timer,
        nonce,
        tls: tls_reader,
        cert,
        parser: Parser::new(Limits {
            max_payload: cfg.opts.max_payload,
            max_control_line: cfg.opts.max_control_line,
        }),
        rbuf: {
            let mut b = BytesMut::with_capacity(READ_CHUNK * 2);
            b.extend_from_slice(&early);
            b
        },
        window: ReadWindow::default(),
    };
    run(session, socket, writer, pinger).await;
}

/// Waits for `pause` unless the connection is picked to move first (true): a move ends the
/// pause, and the publisher stops at an op boundary and pauses again on its new home if it must.
/// Of 500 publishers into one slow subscriber, nearly all wait in such a pause at any moment,
/// behind each other, and their moves held every other move back for as long.
async fn unless_moving(affinity: &Affinity, pause: impl Future<Output = ()>) -> bool {
    let picked = futures_lite::future::or(
        async {
            affinity.move_wake.wait().await;
            true
        },
        async {
            pause.await;
            false
        },
    )
    .await;
    picked && affinity.move_to.get().is_some()
}

/// A connection's life on one shard, from its first read here to its close or its move.
async fn run(
    mut session: Session,
    socket: Socket,
    writer: glommio::task::JoinHandle<()>,
    pinger: glommio::task::JoinHandle<()>,
) {
    let shard = session.shard.clone();
    let client = session.client.clone();
    let global = shard.global.clone();
    let cid = client.id;
    let reason = loop {
        match session.read_loop(&socket).await {
            Err(reason) => break reason,
            Ok(to) => {
                if client.affinity.in_batch.get() && !client.subs.borrow().is_empty() {
                    // It subscribed after it was picked: moves alongside others are safe only
                    // for connections nothing is routed to (`Placement::moving`).
                    shard.move_abandoned(&client);
                    continue;
                }
                // SAFETY: `client.fd` is the open socket owned by `socket`; dup returns a new
                // descriptor, owned from here on by the move (and then the new home).
                let fd = unsafe { libc::dup(client.fd) };
                if fd < 0 {
                    tracing::debug!(
                        "cid:{cid} - not moved, dup failed: {}",
                        std::io::Error::last_os_error()
                    );
                    shard.move_abandoned(&client);
                    continue;
                }
                pinger.cancel();
                let migrant = Box::new(crate::handover::Migrant {
                    client: client.snapshot(),
                    subs: client
                        .subs
                        .borrow()
                        .values()
                        .map(|s| (s.sid.clone(), s.subject.clone(), s.queue.clone()))
                        .collect(),
                    session: session.into_parts(),
                    fd,
                });
                shard.depart(&client, to, migrant, writer).await;
                // The socket lives on in `fd`; only this descriptor goes (dropped: glommio's
                // close would shut the socket down for writing). The writer, which held the
                // other handle, has ended.
                drop(socket);
                return;
            }
        }
    };
    client.close(reason);
    shard.move_abandoned(&client);
    pinger.cancel();
    if let Some(t) = session.auth_timer.take() {
        t.cancel();
    }
    shard.remove_client(&client);
    tracing::debug!(
        "{} - cid:{cid} - Client connection closed: {:?}",
        client.peer_string(),
        client.close_reason().unwrap_or(reason)
    );
    let _ = writer.await;
    // The descriptor (`client.fd`) is closed only now, after every task that may shut it
    // down has ended: closing it earlier would let the kernel hand its number to the next
    // accepted socket, which a late shutdown would then cut. The writer shut it down.
    drop(socket);
    global.conn_count.fetch_sub(1, Ordering::AcqRel);
}

/// New home: runs a connection that moved here (`shard/migration.rs`), reading from `client.fd`,
/// the socket duplicated for the move.
pub fn resume(shard: Rc<Shard>, arrived: crate::handover::Arrived) {
    let crate::handover::Arrived {
        client,
        session: parts,
    } = arrived;
    let SessionParts {
        cfg,
        connect_opts,
        nonce,
        parser,
        rbuf,
        window,
        last_in,
        pings_out,
        ping_sent,
        rtt_known,
    } = parts;
    glommio::spawn_local(async move {
        // SAFETY: `client.fd` was duplicated by the old home for this move alone and handed over
        // once; nothing else owns it.
        let socket = Socket::new(unsafe { TcpStream::from_raw_fd(client.fd) });
        // A reload that came while the connection was between shards applies now.
        let now = shard.global.config();
        crate::reload::recheck_client(
            &shard,
            now.auth_for(client.websocket.get()).as_ref(),
            &client,
        );
        let writer = glommio::spawn_local(write_loop(
            client.clone(),
            socket.clone(),
            cfg.opts.write_deadline,
            None,
        ))
        .detach();
        let live = Rc::new(Liveness {
            last_in: Cell::new(last_in),
            pings_out: Cell::new(pings_out),
            ping_sent: Cell::new(ping_sent),
            rtt_known: Cell::new(rtt_known),
            connected: LocalSignal::default(),
        });
        // It moved past CONNECT; a first PING still due goes out on this shard.
        live.connected.raise();
        let pinger =
            glommio::spawn_local(ping_loop(shard.clone(), client.clone(), live.clone())).detach();
        let session = Session {
            cfg,
            shard: shard.clone(),
            client,
            live,
            connected: true,
            connect_opts,
            auth_timer: None,
            nonce,
            tls: None,
            cert: None,
            parser,
            rbuf,
            window: ReadWindow { size: window },
        };
        run(session, socket, writer, pinger).await;
    })
    .detach();
}

async fn auth_timeout(client: Rc<ClientState>, after: Duration) {
    glommio::timer::sleep(after).await;
    client.send_err(errors::AUTHENTICATION_TIMEOUT);
    client.close(CloseReason::AuthTimeout);
    shutdown_read(client.fd);
}

fn shutdown_read(fd: i32) {
    // SAFETY: shutdown on a descriptor has no memory effects; a stale fd only yields EBADF.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

pub(crate) async fn write_loop(
    client: Rc<ClientState>,
    socket: Socket,
    deadline: Duration,
    mut tls: Option<crate::tls::TlsWriter>,
) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut healthy = true;
    loop {
        if client.affinity.detaching.get() {
            // The connection moves to another shard, which writes what is left: no shutdown.
            return;
        }
        if client.skips_flush() {
            healthy = false;
            break;
        }
        client.pull_backlog();
        if !client.has_out() {
            // Records rustls produced while reading (alerts, key updates) go out on their own.
            if let Some(t) = tls.as_mut().filter(|t| t.wants_write()) {
                let sent = match t.pending() {
                    Ok(records) => write_within(&socket, &client, &[], records, deadline).await,
                    Err(e) => Err(e.into()),
                };
                if sent.is_err() {
                    client.close(CloseReason::WriteError);
                    healthy = false;
                    break;
                }
                continue;
            }
            if client.is_closed() {
                break;
            }
            client.writer_wake.wait().await;
            continue;
        }
        client.take_out(&mut buf);
        let written = match tls.as_mut() {
            None => write_within(&socket, &client, &[], &buf, deadline).await,
            Some(t) => match t.prefix(&buf) {
                // A WebSocket frame header, then the bytes as they are.
                Some(head) => write_within(&socket, &client, head, &buf, deadline).await,
                None => match t.seal(&buf) {
                    Ok(records) => write_within(&socket, &client, &[], records, deadline).await,
                    Err(e) => Err(e.into()),
                },
            },
        };
        client.wrote();
        let e = match written {
            Ok(()) => continue,
            Err(WriteStop::Detached { written }) => {
                debug_assert!(tls.is_none(), "a TLS connection never moves");
                // What the socket did not take goes first on the new home.
                client.prepend_out(buf.get(written..).unwrap_or_default().to_vec());
                continue;
            }
            Err(WriteStop::Abandoned) => {
                healthy = false;
                break;
            }
            Err(WriteStop::Failed(e)) => e,
        };
        let reason = if e.kind() == std::io::ErrorKind::TimedOut {
            tracing::info!(
                "{} - cid:{} - Slow Consumer Detected: WriteDeadline of {:?} exceeded with 1 chunks of {} total bytes.",
                client.peer_string(),
                client.id,
                deadline,
                buf.len()
            );
            CloseReason::SlowConsumerWriteDeadline
        } else {
            CloseReason::WriteError
        };
        client.close(reason);
        healthy = false;
        break;
    }
    if let (Some(t), true) = (tls.as_mut(), healthy) {
        if let Ok(records) = t.close_for(client.close_reason()) {
            let _ = write_within(&socket, &client, &[], records, deadline).await;
        }
    }
    // The reader's pending read returns; the descriptor stays open until its handle goes too.
    socket.shutdown();
}

/// Why a flush stopped before writing everything.
enum WriteStop {
    Failed(std::io::Error),
    /// The connection moves to another shard (plaintext only): the first `written` bytes went
    /// out, the rest travel with the connection.
    Detached {
        written: usize,
    },
    /// The connection was closed for a reason that writes nothing more.
    Abandoned,
}

impl From<std::io::Error> for WriteStop {
    fn from(e: std::io::Error) -> Self {
        WriteStop::Failed(e)
    }
}

/// Writes all of `bytes`, or fails with `TimedOut` once `deadline` passed since the socket
/// first refused more: the whole flush has one deadline, as in nats-server (glommio's write
/// timeout restarts with each partial write, which cut a stuck client at twice the deadline).
/// A timer is armed only when the socket refuses bytes, so an ordinary flush costs none; the
/// client learns whether its socket takes bytes (`ClientState::note_blocked`). A move to
/// another shard does not wait for a socket that takes nothing.
async fn write_within(
    socket: &Socket,
    client: &ClientState,
    head: &[u8],
    bytes: &[u8],
    deadline: Duration,
) -> Result<(), WriteStop> {
    let mut off = 0;
    let total = head.len() + bytes.len();
    let mut blocked_at: Option<Instant> = None;
    while off < total {
        let (h, b) = match off.checked_sub(head.len()) {
            None => (head.get(off..).unwrap_or_default(), bytes),
            Some(at) => (&[][..], bytes.get(at..).unwrap_or_default()),
        };
        let mut write = std::pin::pin!(socket.write_two(h, b));
        let n = match futures_lite::future::poll_once(&mut write).await {
            Some(r) => r?,
            None => {
                let now = Instant::now();
                let since = *blocked_at.get_or_insert(now);
                client.note_blocked(true);
                let left = (since + deadline).saturating_duration_since(now);
                let timeout = async {
                    glommio::timer::sleep(left).await;
                    Err(WriteStop::Failed(std::io::ErrorKind::TimedOut.into()))
                };
                let detach = async {
                    loop {
                        if client.affinity.detaching.get() {
                            debug_assert!(head.is_empty(), "framed connections never move");
                            return Err(WriteStop::Detached { written: off });
                        }
                        if client.skips_flush() {
                            return Err(WriteStop::Abandoned);
                        }
                        client.writer_wake.wait().await;
                    }
                };
                let write = async { write.await.map_err(WriteStop::Failed) };
                futures_lite::future::or(write, futures_lite::future::or(timeout, detach)).await?
            }
        };
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        client.note_blocked(false);
        off += n;
    }
    Ok(())
}

async fn ping_loop(shard: Rc<Shard>, client: Rc<ClientState>, live: Rc<Liveness>) {
    let cfg = shard.global.config();
    // As nats-server: `websocket { ping_interval }` replaces the server's for its clients.
    let interval = match cfg.opts.websocket.as_ref().and_then(|w| w.ping_interval) {
        Some(d) if client.websocket.get() && !d.is_zero() => d,
        _ => cfg.opts.ping_interval,
    };
    let max_out = cfg.opts.ping_max;
    let mut wait = interval;
    // As nats-server: CONNECT restarts the timer with the short first PING, which goes out
    // whatever the client sent (it measures the RTT).
    let mut forced = false;
    if !live.rtt_known.get() && !cfg.opts.disable_short_first_ping {
        let connected = futures_lite::future::or(
            async {
                live.connected.wait().await;
                true
            },
            async {
                glommio::timer::sleep(interval).await;
                false
            },
        )
        .await;
        if connected {
            let first = interval.min(FIRST_CLIENT_PING);
            wait = first + jitter(first / 5, client.id);
            forced = true;
        } else {
            wait = Duration::ZERO;
        }
    }
    loop {
        glommio::timer::sleep(wait).await;
        wait = interval;
        if client.is_closed() {
            return;
        }
        // Like nats-server: skip the PING when the client was heard from within the interval,
        // once its RTT is known.
        if !std::mem::take(&mut forced)
            && live.rtt_known.get()
            && live.last_in.get().elapsed() < interval
        {
            continue;
        }
        if live.pings_out.get() + 1 > max_out {
            client.send_err(errors::STALE_CONNECTION);
            client.close(CloseReason::StaleConnection);
            shutdown_read(client.fd);
            return;
        }
        live.pings_out.set(live.pings_out.get() + 1);
        if live.ping_sent.get().is_none() {
            live.ping_sent.set(Some(Instant::now()));
        }
        client.send_raw(encode::PING);
    }
}

/// Up to `max`, different per client and per run.
fn jitter(max: Duration, seed: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let x = (seed ^ nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let max = max.as_nanos().max(1) as u64;
    Duration::from_nanos((x >> 11) % max)
}

/// How much room a plaintext read gets at the end of the parse buffer, sized to what the
/// connection has been sending: a full read doubles it (up to READ_CHUNK), a short one halves it
/// (down to 4 KiB), so a quiet connection does not reserve 32 KiB per PING. The socket reads
/// straight into the buffer's spare capacity (no bounce copy, and no zeroing first: that was
/// 2-3 % of the CPU of a 1 KiB pub/sub, `flamegraphs/README.md`).
struct ReadWindow {
    size: usize,
}

const MIN_READ: usize = 4 * 1024;

impl Default for ReadWindow {
    fn default() -> Self {
        ReadWindow { size: MIN_READ }
    }
}

impl ReadWindow {
    async fn read(&mut self, socket: &Socket, rbuf: &mut BytesMut) -> std::io::Result<usize> {
        let start = rbuf.len();
        rbuf.reserve(self.size);
        let room = &mut rbuf.spare_capacity_mut()[..self.size];
        let read = socket.read_uninit(room).await;
        let n = (*read.as_ref().unwrap_or(&0)).min(self.size);
        // SAFETY: `read_uninit` returned `n`: recv wrote the first `n` bytes of the spare
        // capacity (never more than the `self.size` bytes it was given, which `reserve` made
        // room for), so they are initialised and lie within the capacity.
        unsafe { rbuf.set_len(start + n) };
        self.size = if n == self.size {
            (self.size * 2).min(READ_CHUNK)
        } else if n < self.size / 4 {
            (self.size / 2).max(MIN_READ)
        } else {
            self.size
        };
        read
    }
}

impl Session {
    /// What a moving session takes along.
    fn into_parts(self) -> SessionParts {
        // Every field is named: a new one must travel or be dropped here on purpose.
        let Session {
            cfg,
            shard: _,
            client: _,
            live,
            connected: _,
            connect_opts,
            auth_timer: _,
            nonce,
            tls: _,
            cert: _,
            parser,
            rbuf,
            window,
        } = self;
        SessionParts {
            cfg,
            connect_opts,
            nonce,
            parser,
            rbuf,
            window: window.size,
            last_in: live.last_in.get(),
            pings_out: live.pings_out.get(),
            ping_sent: live.ping_sent.get(),
            rtt_known: live.rtt_known.get(),
        }
    }

    /// Reads and handles ops until the connection ends (`Err`) or its shard moves it to the
    /// shard returned (`Ok`, at a read boundary: every op read so far was handled).
    async fn read_loop(&mut self, socket: &Socket) -> Result<u16, CloseReason> {
        let auth_required = self.cfg.auth_for(self.client.websocket.get()).required();
        // Bytes already here (sent before a plaintext client was told from a TLS one, or
        // carried along by a move) are parsed before the first read.
        let mut unparsed = !self.rbuf.is_empty();
        loop {
            let read = match self.tls.as_mut() {
                _ if std::mem::take(&mut unparsed) => Ok(self.rbuf.len()),
                None => {
                    let (window, rbuf, affinity) =
                        (&mut self.window, &mut self.rbuf, &self.client.affinity);
                    // A pending read holds only a readiness poll (the data is received by the
                    // read itself), so dropping it for a move loses nothing. (A publisher
                    // whose socket always has bytes never gets here pending: it stops after
                    // handling a read, below.)
                    let read = futures_lite::future::or(
                        async { Some(window.read(socket, rbuf).await) },
                        async {
                            affinity.move_wake.wait().await;
                            None
                        },
                    )
                    .await;
                    match read {
                        Some(r) => r,
                        None => match affinity.move_to.get() {
                            Some(to) => return Ok(to),
                            None => continue,
                        },
                    }
                }
                Some(t) => {
                    t.read_into(socket, &mut self.rbuf, &self.client.writer_wake)
                        .await
                }
            };
            match read {
                Ok(0) => return Err(CloseReason::ClientClosed),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    tracing::debug!(
                        "{} - cid:{} - read error: {e}",
                        self.client.peer_string(),
                        self.client.id
                    );
                    return Err(CloseReason::ReadError);
                }
            }
            if let Some(r) = self.client.close_reason() {
                return Err(r);
            }
            let now = Instant::now();
            self.live.last_in.set(now);
            self.client.last_activity.set(now);
            self.shard.tick(now);
            if self.parser.needs_more(self.rbuf.len()) {
                // A payload still arriving: nothing to parse, nothing to copy back.
                continue;
            }
            // What has arrived, frozen: a PUB is routed straight from it, and only a message
            // that outlives the read (one crossing shards) takes a handle on it. What is not
            // parsed (at most the start of one op) starts the buffer of the next read.
            let mut rest = self.rbuf.split().freeze();
            let handled = self.handle_read(&mut rest, auth_required).await;
            crate::piece::put_back(&mut self.rbuf, rest);
            handled?;
            if let Some(to) = self.client.affinity.move_to.get() {
                // At an op boundary, maybe with whole ops left in `rbuf` (a pause cut short
                // for the move): the new home parses them before it reads.
                return Ok(to);
            }
            if self.shard.after_sends() {
                // Back-pressure: stop reading this client until the rings took its messages.
                self.shard.wait_own_overflow_flushed().await;
            }
        }
    }

    /// Handles every complete op in `rest`, leaving in it what is not complete yet; or, paused
    /// (on a slow client, on a full ring) when its connection is picked to move, stops there
    /// and leaves in it every op not handled yet.
    async fn handle_read(
        &mut self,
        rest: &mut Bytes,
        auth_required: bool,
    ) -> Result<(), CloseReason> {
        let mut stall_budget = STALL_BUDGET;
        loop {
            let next = if let Some(f) = self
                .parser
                .peek_pub(rest)
                .filter(|_| self.connected || !auth_required)
            {
                let frame: &Bytes = rest;
                let next = self.publish(
                    Piece::of(frame, f.subject),
                    f.reply.map(|r| Piece::of(frame, r)),
                    f.header_len,
                    Piece::of(frame, f.body),
                );
                rest.advance(f.len);
                next
            } else {
                let op = match self.parser.parse(rest) {
                    Ok(Some(op)) => op,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        if e.sends_err() {
                            self.client.send_err(e.err_text());
                        }
                        if e.closes_connection() {
                            self.shard.after_sends();
                            return Err(match e {
                                tachyon_protocol::ProtocolError::MaxPayload { .. } => {
                                    CloseReason::MaxPayload
                                }
                                _ => CloseReason::ProtocolViolation,
                            });
                        }
                        continue;
                    }
                };
                if auth_required && !self.connected && !matches!(op, ClientOp::Connect(_)) {
                    self.client.send_err(errors::AUTHORIZATION_VIOLATION);
                    return Err(CloseReason::AuthViolation);
                }
                self.handle(op)
            };
            match next {
                Next::Continue => {
                    // Per message, not per read, as nats-server: a read of 32 KiB delivered
                    // in one go could carry a subscriber from its stall mark past
                    // max_pending. The pauses of one read add up to STALL_BUDGET.
                    let mut moving = false;
                    if self.shard.must_pause(&self.client) {
                        if stall_budget.is_zero() && !self.shard.must_pause_deep(&self.client) {
                            // This read's pauses are spent (see `wait_stalled`).
                            self.shard.forget_stalled();
                        } else {
                            self.shard.after_sends();
                            moving = unless_moving(
                                &self.client.affinity,
                                self.shard.wait_stalled(&self.client, &mut stall_budget),
                            )
                            .await;
                        }
                    }
                    if !moving && self.shard.rings_backed_up() {
                        self.shard.after_sends();
                        moving = unless_moving(
                            &self.client.affinity,
                            self.shard.wait_own_overflow_flushed(),
                        )
                        .await;
                    }
                    if moving {
                        // The pause may not have begun: what this op fed is not the next
                        // reader's to wait for.
                        self.shard.forget_stalled();
                        tracing::debug!(
                            "{} - cid:{} - pause cut short for a move, {} bytes left to parse",
                            self.client.peer_string(),
                            self.client.id,
                            rest.len()
                        );
                        return Ok(());
                    }
                }
                Next::Close(reason) => {
                    self.shard.after_sends();
                    return Err(reason);
                }
                Next::PongAfterBarrier => {
                    self.client.interest_dirty.set(false);
                    self.shard.barrier().await;
                    self.pong();
                }
            }
        }
    }

    fn ok(&self) {
        if self.client.flags.get().verbose {
            self.client.send_raw(encode::OK);
        }
    }

    fn pong(&mut self) {
        self.client.send_raw(encode::PONG);
        let flags = self.client.flags.get();
        if self.connected && !self.client.first_pong_sent.replace(true) && flags.protocol >= 1 {
            let g = &self.shard.global;
            let mut info = g.info_template();
            info.client_id = self.client.id;
            if let Some(p) = self.client.peer {
                info.client_ip = Some(p.ip().to_string());
            }
            info.connect_info = true;
            info.remote_account = Some(g.accounts.name(self.client.account.get()).to_string());
            let mut buf = Vec::new();
            encode::info(&mut buf, &info);
            self.client.send_raw(&buf);
        }
    }

    fn handle(&mut self, op: ClientOp) -> Next {
        let client = &self.client;
        match op {
            ClientOp::Pub {
                subject,
                reply,
                payload,
            } => {
                return self.publish(
                    Piece::from(&subject),
                    reply.as_ref().map(Piece::from),
                    None,
                    Piece::from(&payload),
                )
            }
            ClientOp::HPub {
                subject,
                reply,
                header_len,
                message,
            } => {
                return self.publish(
                    Piece::from(&subject),
                    reply.as_ref().map(Piece::from),
                    Some(header_len),
                    Piece::from(&message),
                )
            }
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => {
                let pedantic = client.flags.get().pedantic;
                if !subject::valid_subscribe(&subject, pedantic) {
                    client.send_err(errors::INVALID_SUBJECT);
                    return Next::Continue;
                }
                if let Some(q) = &queue {
                    if !subject::valid_queue(q) {
                        client.send_err(errors::INVALID_SUBJECT);
                        return Next::Continue;
                    }
                }
                if !may_subscribe(client, &subject, queue.as_deref()) {
                    return Next::Continue;
                }
                match self.shard.subscribe(client, subject, queue, sid) {
                    Ok(()) => self.ok(),
                    Err(SubscribeError::MaxSubscriptions) => {
                        client.send_err(errors::MAX_SUBSCRIPTIONS_EXCEEDED);
                    }
                }
            }
            ClientOp::Unsub { sid, max } => {
                self.shard.unsubscribe(client, &sid, max);
                self.ok();
            }
            ClientOp::Ping => {
                self.live.last_in.set(Instant::now());
                if self.shard.nshards > 1 && client.interest_dirty.get() {
                    return Next::PongAfterBarrier;
                }
                self.pong();
            }
            ClientOp::Pong => {
                self.live.pings_out.set(0);
                self.live.rtt_known.set(true);
                if let Some(sent) = self.live.ping_sent.take() {
                    client.rtt.set(sent.elapsed().max(Duration::from_nanos(1)));
                }
            }
            ClientOp::Connect(raw) => return self.connect(&raw),
            ClientOp::Info(raw) => {
                if json::check_info(&raw).is_err() {
                    return Next::Close(CloseReason::ProtocolViolation);
                }
            }
            ClientOp::Ok => {}
            ClientOp::Err(text) => {
                tracing::debug!(
                    "{} - cid:{} - client sent -ERR {}",
                    client.peer_string(),
                    client.id,
                    String::from_utf8_lossy(&text)
                );
                return Next::Close(CloseReason::ClientClosed);
            }
        }
        Next::Continue
    }

    /// A PUB (`header_len` `None`) or HPUB, read from the buffer the pieces borrow.
    fn publish(
        &mut self,
        subject: Piece<'_>,
        reply: Option<Piece<'_>>,
        header_len: Option<usize>,
        body: Piece<'_>,
    ) -> Next {
        let client = &self.client;
        if header_len.is_some() && !client.flags.get().headers {
            // nats-server closes, without a word, a client that did not negotiate headers.
            return Next::Close(CloseReason::ProtocolViolation);
        }
        client.count_in(body.len());
        // nats-server complains to a pedantic client but still routes the message.
        if client.flags.get().pedantic && !subject::valid_publish(&subject, true) {
            client.send_err(errors::INVALID_PUBLISH_SUBJECT);
        }
        if !may_publish(client, &subject) {
            return Next::Continue;
        }
        // nats-server acknowledges a verbose PUB before it routes it.
        self.ok();
        // A zero-length header block is no header block: nats-server delivers a MSG.
        let header_len = header_len.filter(|&h| h > 0);
        self.shard
            .publish(&self.client, subject, reply, header_len, body);
        Next::Continue
    }

    fn connect(&mut self, raw: &[u8]) -> Next {
        let client = &self.client;
        // A second CONNECT overrides only the fields it names, as in nats-server.
        let opts = match json::parse_connect_over(raw, self.connect_opts.clone()) {
            Ok(o) => o,
            Err(e) => {
                if e.sends_err() {
                    client.send_err(e.err_text());
                }
                return Next::Close(CloseReason::ProtocolViolation);
            }
        };
        // The config in force now, not the one the connection was accepted under: a reload in
        // between already re-checked every connected client, so this one must match it too.
        let cfg = self.shard.global.config();
        // Every CONNECT authenticates, as in nats-server: a second one with other credentials
        // switches user (and account) or ends the connection.
        let mut proof =
            crate::auth::Credentials::new(&opts, self.nonce.as_deref(), self.cert.as_ref());
        if let Some(c) = client.ws_cookies.borrow().as_ref() {
            // As nats-server: the upgrade's cookies stand in for credentials CONNECT left out.
            let [user, pass, token] = &**c;
            let fill = |field: &mut Option<String>, cookie: &Option<String>| {
                if field.as_deref().is_none_or(str::is_empty) {
                    if let Some(v) = cookie {
                        *field = Some(v.clone());
                    }
                }
            };
            fill(&mut proof.connect.user, user);
            fill(&mut proof.connect.pass, pass);
            fill(&mut proof.connect.auth_token, token);
        }
        let auth = cfg.auth_for(client.websocket.get());
        let mut switched_account = None;
        if auth.required() {
            match auth.authenticate(&proof) {
                Ok(who) => {
                    *client.perms.borrow_mut() = who.perms.map(crate::auth::PermChecker::new);
                    if self.connected && who.account != client.account.get() {
                        switched_account = Some(who.account);
                    } else {
                        // Before any SUB or PUB: the account picks the subject space they use.
                        client.account.set(who.account);
                    }
                    *client.auth_user.borrow_mut() = who.user;
                }
                Err(e) => {
                    tracing::error!(
                        "{} - cid:{} - authentication error: {e}",
                        client.peer_string(),
                        client.id
                    );
                    client.send_err(errors::AUTHORIZATION_VIOLATION);
                    return Next::Close(CloseReason::AuthViolation);
                }
            }
        }
        if let Some(account) = switched_account {
            // Its subscriptions follow it into the new account's subject space.
            let subs: Vec<(bytes::Bytes, bytes::Bytes, Option<bytes::Bytes>)> = client
                .subs
                .borrow()
                .values()
                .map(|s| (s.sid.clone(), s.subject.clone(), s.queue.clone()))
                .collect();
            for (sid, _, _) in &subs {
                self.shard.unsubscribe(client, sid, None);
            }
            client.account.set(account);
            for (sid, subject, queue) in subs {
                let _ = self.shard.subscribe(client, subject, queue, sid);
            }
        }
        if let Err(e) = opts.validate(true) {
            client.send_err(e.err_text());
            return Next::Close(CloseReason::ProtocolViolation);
        }
        *client.credentials.borrow_mut() = Some(proof);
        client.flags.set(ClientFlags::from_connect(&opts));
        *client.name.borrow_mut() = opts.name.clone();
        *client.lang.borrow_mut() = opts.lang.clone();
        *client.version.borrow_mut() = opts.version.clone();
        if client.rtt.get().is_zero() {
            // nats-server's first estimate: the time from accept to CONNECT.
            client
                .rtt
                .set(client.start_mono.elapsed().max(Duration::from_nanos(1)));
        }
        self.connect_opts = opts;
        if !self.connected {
            self.live.connected.raise();
        }
        self.connected = true;
        client.affinity.movable.set(self.tls.is_none());
        if let Some(t) = self.auth_timer.take() {
            t.cancel();
        }
        self.ok();
        Next::Continue
    }
}

/// Publish permission check; a refused PUB is answered and dropped, the connection stays.
#[inline]
fn may_publish(client: &ClientState, subject: &[u8]) -> bool {
    let allowed = match client.perms.borrow_mut().as_mut() {
        None => return true,
        Some(p) => p.can_publish(subject),
    };
    if !allowed {
        client.send_err(&errors::publish_violation(subject));
        tracing::error!(
            "{} - cid:{} - Publish Violation - Subject {}",
            client.peer_string(),
            client.id,
            errors::go_quote(subject)
        );
    }
    allowed
}

/// Subscribe permission check (queue entries included); a refused SUB creates nothing.
fn may_subscribe(client: &ClientState, subject: &[u8], queue: Option<&[u8]>) -> bool {
    let allowed = match client.perms.borrow().as_ref() {
        None => return true,
        Some(p) => p.can_subscribe(subject, queue),
    };
    if !allowed {
        client.send_err(&errors::subscribe_violation(subject, queue));
        tracing::error!(
            "{} - cid:{} - Subscription Violation - Subject {}",
            client.peer_string(),
            client.id,
            errors::go_quote(subject)
        );
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ReadWindow::read` reads into uninitialised spare capacity and extends the buffer over
    /// what the socket wrote: every byte sent must come out once, in order, whatever the read
    /// sizes, the window's growth and shrinking, and buffers reallocated under frozen slices.
    #[test]
    fn read_window_returns_exactly_the_bytes_sent() {
        const TOTAL: usize = 3 * 1024 * 1024;
        let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("local_addr: {e}"),
        };
        let pattern = |i: usize| (i.wrapping_mul(7) ^ (i >> 9)) as u8;
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut s = match std::net::TcpStream::connect(addr) {
                Ok(s) => s,
                Err(e) => panic!("connect: {e}"),
            };
            let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
            // Bursts of growing and shrinking size, with pauses, so reads come back both full
            // and short.
            let mut at = 0;
            let mut step = 1;
            while at < TOTAL {
                let n = (step * 997 % 70_000).max(1).min(TOTAL - at);
                if let Err(e) = s.write_all(&data[at..at + n]) {
                    panic!("write: {e}");
                }
                at += n;
                step += 1;
                if step % 16 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let (std_stream, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) => panic!("accept: {e}"),
        };
        let ex = match glommio::LocalExecutorBuilder::default().make() {
            Ok(ex) => ex,
            Err(e) => panic!("executor: {e}"),
        };
        let got = ex.run(async move {
            use std::os::fd::IntoRawFd;
            // SAFETY: the descriptor comes from a std stream we own and hand over whole.
            let socket = Socket::new(unsafe { TcpStream::from_raw_fd(std_stream.into_raw_fd()) });
            let mut window = ReadWindow::default();
            let mut rbuf = BytesMut::new();
            let mut held: Vec<bytes::Bytes> = Vec::new();
            let mut seen = 0usize;
            loop {
                match window.read(&socket, &mut rbuf).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => panic!("read: {e}"),
                }
                // Consume all but a few bytes, as a parser leaves a partial op behind, and keep
                // some frozen slices alive so the next reserve cannot reuse the allocation.
                let keep = rbuf.len() % 7;
                let part = rbuf.split_to(rbuf.len() - keep).freeze();
                for (k, b) in part.iter().enumerate() {
                    assert_eq!(*b, pattern(seen + k), "byte {}", seen + k);
                }
                seen += part.len();
                held.push(part);
                if held.len() > 3 {
                    held.remove(0);
                }
            }
            for (k, b) in rbuf.iter().enumerate() {
                assert_eq!(*b, pattern(seen + k));
            }
            seen + rbuf.len()
        });
        if writer.join().is_err() {
            panic!("writer thread panicked");
        }
        assert_eq!(got, TOTAL);
    }
}
