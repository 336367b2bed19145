//! A route's connection: the route port (accepting peers), dialing configured and gossiped
//! peers, the handshake in nats-server's order (the accepting side's INFO first; the dialing
//! side's CONNECT then INFO; each side registers the route when it has read the other's
//! INFO), then `RS+`/`RS-`/`RMSG`/`HMSG`, INFO updates and keepalive until it ends.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use glommio::net::TcpStream;
use tachyon_protocol::leaf::{LeafOp, LeafParser};
use tachyon_protocol::route::{
    RouteConnect, RouteInfo, GOSSIP_DEFAULT, GOSSIP_DISABLED, GOSSIP_OVERRIDE,
};
use tachyon_protocol::{encode, errors, Limits};
use tachyon_settings::cluster::{RouteUrl, DEFAULT_ROUTE_CONNECT};

use super::{Cluster, Peer, RouteKind};
use crate::client::{ClientFlags, ClientState, CloseReason};
use crate::shard::Shard;
use crate::socket::Socket;

/// nats-server's `DEFAULT_ROUTE_DIAL`.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// nats-server pings routes at most this far apart.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(30);
const READ_CHUNK: usize = 64 * 1024;
/// The protocol level announced to peers (1: no message tracing).
const ROUTE_PROTO: i32 = 1;
/// What nats-server tells a client that dialed its route port.
const CLIENT_ON_ROUTE_PORT: &str = "attempted to connect to route port";

/// Binds the route port, then dials the configured routes; serves peers until the shard
/// stops accepting.
pub async fn listen(shard: Rc<Shard>, cluster: Rc<Cluster>) {
    let host = cluster.opts.host.clone();
    // The start-up probe saw the port free; a listener of a process killed a moment ago
    // may still hold it briefly.
    let mut bound = crate::socket::listen_reusable(&host, cluster.opts.port);
    for _ in 0..50 {
        if bound.is_ok() {
            break;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
        bound = crate::socket::listen_reusable(&host, cluster.opts.port);
    }
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                "Error listening on router port: {} - {e}",
                cluster.opts.port
            );
            return;
        }
    };
    let bound = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(cluster.opts.port);
    cluster.port.set(bound);
    tracing::info!("Cluster name is {}", cluster.name.borrow());
    if cluster.dynamic.get() {
        tracing::warn!("Cluster name was dynamically generated, consider setting one");
    }
    tracing::info!(
        "Listening for route connections on {}",
        crate::gotext::host_port(&host, bound)
    );
    for url in cluster.opts.routes.clone() {
        glommio::spawn_local(solicit(
            shard.clone(),
            cluster.clone(),
            url,
            RouteKind::Explicit,
        ))
        .detach();
    }
    while shard.accepting.get() {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let Ok(addr) = stream.peer_addr() else {
                    continue;
                };
                glommio::spawn_local(run(shard.clone(), cluster.clone(), stream, addr, None))
                    .detach();
            }
            Err(e) => {
                tracing::debug!("route accept error: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Dials `url`: a configured route for as long as the server runs (again whenever its
/// server is not connected), a gossiped one until it connects or `connect_retries` runs out.
pub async fn solicit(shard: Rc<Shard>, cluster: Rc<Cluster>, url: RouteUrl, kind: RouteKind) {
    let key = url.host_port();
    let mut attempts = 0u32;
    loop {
        if !shard.accepting.get() {
            return;
        }
        let known = cluster.url_ids.borrow().get(&key).cloned();
        if kind == RouteKind::Explicit
            && known
                .as_deref()
                .is_some_and(|id| cluster.peer(id).is_some())
        {
            glommio::timer::sleep(DEFAULT_ROUTE_CONNECT).await;
            continue;
        }
        tracing::debug!("Trying to connect to route on {key}");
        match crate::socket::dial(&url.host, url.port, DIAL_TIMEOUT).await {
            Ok((stream, addr)) => {
                attempts = 0;
                let reached = run(
                    shard.clone(),
                    cluster.clone(),
                    stream,
                    addr,
                    Some((url.clone(), kind)),
                )
                .await;
                if let Some(id) = reached {
                    if id == shard.global.config().server_id {
                        tracing::debug!("Detected route to self, ignoring {}", url.shown);
                        return;
                    }
                    cluster.url_ids.borrow_mut().insert(key.clone(), id);
                }
                if kind != RouteKind::Explicit {
                    return;
                }
            }
            Err(e) => {
                attempts += 1;
                let text = format!("Error trying to connect to route (attempt {attempts}): {e}");
                if attempts == 1 || attempts.is_multiple_of(30) {
                    tracing::error!("{text}");
                } else {
                    tracing::debug!("{text}");
                }
                if kind != RouteKind::Explicit && attempts > cluster.opts.connect_retries {
                    return;
                }
            }
        }
        use rand::Rng;
        let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..100));
        glommio::timer::sleep(DEFAULT_ROUTE_CONNECT + jitter).await;
    }
}

/// This server's route INFO.
fn our_info(shard: &Shard, cluster: &Cluster) -> RouteInfo {
    let cfg = shard.global.config();
    let (host, port, ip) = match &cluster.opts.advertise {
        Some(a) => {
            let u = RouteUrl::parse(a).ok();
            let host = u.as_ref().map_or_else(|| a.clone(), |u| u.host.clone());
            let port = u.as_ref().map_or(cluster.port.get(), |u| u.port);
            let ip = format!("nats-route://{}/", crate::gotext::host_port(&host, port));
            (host, port, ip)
        }
        None => (cluster.opts.host.clone(), cluster.port.get(), String::new()),
    };
    RouteInfo {
        server_id: cfg.server_id.clone(),
        server_name: cfg.server_name.clone(),
        version: tachyon_settings::NATS_VERSION.to_string(),
        proto: ROUTE_PROTO,
        go: "go1.24.4".into(),
        host,
        port,
        headers: true,
        auth_required: cluster.opts.user.is_some(),
        max_payload: cfg.opts.max_payload as i64,
        ip,
        nonce: nonce(),
        cluster: cluster.name.borrow().clone(),
        cluster_dynamic: cluster.dynamic.get(),
        connect_urls: if cluster.opts.no_advertise {
            Vec::new()
        } else {
            super::client_urls(&shard.global)
        },
        ..RouteInfo::default()
    }
}

fn nonce() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..11)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Where a connection is in its handshake.
struct Handshake {
    /// Accepted: the peer's CONNECT was read (and accepted).
    connected: bool,
    /// The peer's first INFO was read and the route registered.
    peer: Option<Rc<Peer>>,
    /// Set from the peer's CONNECT (accepted side) or INFO.
    remote_id: String,
}

/// One route connection's life; returns the peer's server id once its INFO was read.
async fn run(
    shard: Rc<Shard>,
    cluster: Rc<Cluster>,
    stream: TcpStream,
    addr: SocketAddr,
    dialed: Option<(RouteUrl, RouteKind)>,
) -> Option<String> {
    let cfg = shard.global.config();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let socket = Socket::new(stream);
    let conn = Rc::new(ClientState::new(
        shard.global.next_client_id(),
        Some(addr),
        fd,
        crate::leaf::link::LINK_MAX_PENDING,
    ));
    conn.route.set(true);
    conn.flags.set(ClientFlags::link(true));
    let rid = conn.id;
    let writer = glommio::spawn_local(crate::conn::write_loop(
        conn.clone(),
        socket.clone(),
        cfg.opts.write_deadline,
        None,
    ))
    .detach();
    let mut out = Vec::new();
    if let Some((url, _)) = &dialed {
        tachyon_protocol::route::connect(
            &mut out,
            &RouteConnect {
                echo: true,
                user: url.user.clone().unwrap_or_default(),
                pass: url.password.clone().unwrap_or_default(),
                headers: true,
                name: cfg.server_id.clone(),
                cluster: cluster.name.borrow().clone(),
                cluster_dynamic: cluster.dynamic.get(),
                ..RouteConnect::default()
            },
        );
    }
    tachyon_protocol::route::info(&mut out, &our_info(&shard, &cluster));
    conn.send_raw(&out);
    tracing::info!("{addr} - rid:{rid} - Route connection created");

    let pings_out = Rc::new(Cell::new(0u32));
    let ping_sent = Rc::new(Cell::new(None::<Instant>));
    let pinger = glommio::spawn_local(crate::leaf::link::keepalive(
        conn.clone(),
        socket.clone(),
        pings_out.clone(),
        ping_sent.clone(),
        cfg.opts.ping_interval.min(MAX_PING_INTERVAL),
        cfg.opts.ping_max,
    ))
    .detach();
    // An accepted route must authenticate in time when the cluster has a user.
    let deadline = (dialed.is_none() && cluster.opts.user.is_some())
        .then(|| Instant::now() + cluster.opts.auth_timeout.unwrap_or(cfg.opts.auth_timeout));

    let mut parser = LeafParser::route(Limits {
        max_payload: cfg.opts.max_payload.max(64 << 20),
        max_control_line: cfg.opts.max_control_line.max(1 << 20),
    });
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut hs = Handshake {
        connected: dialed.is_some(),
        peer: None,
        remote_id: String::new(),
    };
    'conn: loop {
        loop {
            // As nats-server: an accepted route speaks CONNECT first, judged by the first byte.
            if !hs.connected && rbuf.first().is_some_and(|b| !b.eq_ignore_ascii_case(&b'C')) {
                tracing::error!("{addr} - rid:{rid} - Authorization Violation");
                conn.send_err(errors::AUTHORIZATION_VIOLATION);
                conn.close(CloseReason::AuthViolation);
                break 'conn;
            }
            let op = match parser.parse(&mut rbuf) {
                Ok(Some(op)) => op,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("{addr} - rid:{rid} - route protocol error: {e}");
                    if e.sends_err() {
                        conn.send_err(e.err_text());
                    }
                    conn.close(CloseReason::ProtocolViolation);
                    break 'conn;
                }
            };
            let go_on = handle(
                &shard, &cluster, &conn, &mut hs, &dialed, op, &ping_sent, addr,
            );
            if !go_on {
                break 'conn;
            }
        }
        shard.after_sends();
        if conn.is_closed() {
            break;
        }
        let read = socket.read(&mut buf);
        let read = match deadline.filter(|_| !hs.connected) {
            None => read.await,
            Some(at) => {
                let timeout = async {
                    glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                    Err(std::io::ErrorKind::TimedOut.into())
                };
                match futures_lite::future::or(read, timeout).await {
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        tracing::error!("{addr} - rid:{rid} - Authentication Timeout");
                        conn.send_err(errors::AUTHENTICATION_TIMEOUT);
                        conn.close(CloseReason::AuthTimeout);
                        break;
                    }
                    r => r,
                }
            }
        };
        match read {
            Ok(0) | Err(_) => {
                conn.close(CloseReason::ReadError);
                break;
            }
            Ok(n) => {
                rbuf.extend_from_slice(buf.get(..n).unwrap_or_default());
                pings_out.set(0);
            }
        }
    }
    conn.close(conn.close_reason().unwrap_or(CloseReason::ReadError));
    pinger.cancel();
    let _ = writer.await;
    if let Some(peer) = hs.peer.take() {
        unregister(&shard, &cluster, &peer);
    }
    tracing::info!(
        "{addr} - rid:{rid} - Router connection closed: {}",
        conn.close_reason()
            .map(crate::monitor::snapshot::reason_text)
            .unwrap_or("Client Closed")
    );
    (!hs.remote_id.is_empty()).then_some(hs.remote_id)
}

/// One op from the peer; `false` ends the connection.
#[allow(clippy::too_many_arguments)]
fn handle(
    shard: &Rc<Shard>,
    cluster: &Rc<Cluster>,
    conn: &Rc<ClientState>,
    hs: &mut Handshake,
    dialed: &Option<(RouteUrl, RouteKind)>,
    op: LeafOp,
    ping_sent: &Cell<Option<Instant>>,
    addr: SocketAddr,
) -> bool {
    let rid = conn.id;
    match op {
        LeafOp::Connect(json) => {
            if hs.connected {
                return true;
            }
            let c = match RouteConnect::parse(&json) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("{addr} - rid:{rid} - {e}");
                    conn.send_err(errors::AUTHORIZATION_VIOLATION);
                    conn.close(CloseReason::AuthViolation);
                    return false;
                }
            };
            if c.lang.is_some() {
                tracing::error!("{addr} - rid:{rid} - {CLIENT_ON_ROUTE_PORT}");
                conn.send_err(CLIENT_ON_ROUTE_PORT);
                conn.close(CloseReason::ProtocolViolation);
                return false;
            }
            if !c.gateway.is_empty() {
                let text = format!(
                    "Rejecting connection from gateway {:?} on the Route port",
                    c.gateway
                );
                tracing::error!("{addr} - rid:{rid} - {text}");
                conn.send_err(&text);
                conn.close(CloseReason::ProtocolViolation);
                return false;
            }
            if !cluster.reconcile_name(&shard.global, &c.cluster, c.cluster_dynamic) {
                let text = format!(
                    "Rejecting connection, cluster name {:?} does not match {:?}",
                    c.cluster,
                    cluster.name.borrow()
                );
                tracing::error!("{addr} - rid:{rid} - {text}");
                conn.send_err(&text);
                conn.close(CloseReason::ProtocolViolation);
                return false;
            }
            if let Some(user) = &cluster.opts.user {
                let pass = cluster.opts.password.as_deref().unwrap_or("");
                if c.user != *user || c.pass != pass {
                    tracing::error!("{addr} - rid:{rid} - Authorization Violation");
                    conn.send_err(errors::AUTHORIZATION_VIOLATION);
                    conn.close(CloseReason::AuthViolation);
                    return false;
                }
            }
            hs.connected = true;
            hs.remote_id = c.name;
        }
        LeafOp::Info(json) => {
            let info = match RouteInfo::parse(&json) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!("{addr} - rid:{rid} - {e}");
                    conn.close(CloseReason::ProtocolViolation);
                    return false;
                }
            };
            match &hs.peer {
                None => {
                    ping_sent.set(Some(Instant::now()));
                    return first_info(shard, cluster, conn, hs, dialed, info, addr);
                }
                Some(peer) if info.server_id != peer.remote_id => {
                    implicit_route(shard, cluster, info);
                }
                Some(peer) => {
                    let changed = peer.info.borrow().connect_urls != info.connect_urls || info.ldm;
                    let mut info = info;
                    if info.ldm {
                        // A peer in lame duck mode: clients should not be sent there.
                        info.connect_urls.clear();
                    }
                    *peer.info.borrow_mut() = info;
                    if changed {
                        super::publish_urls(shard, cluster);
                    }
                }
            }
        }
        LeafOp::Ping => conn.send_raw(encode::PONG),
        LeafOp::Pong => {
            if let Some(t) = ping_sent.take() {
                conn.rtt.set(t.elapsed());
            }
        }
        LeafOp::Ok => {}
        LeafOp::Err(text) => {
            tracing::error!(
                "{addr} - rid:{rid} - Router Error '{}'",
                String::from_utf8_lossy(&text)
            );
        }
        LeafOp::Sub {
            account,
            key,
            subject,
            queue,
            ..
        } => {
            let Some(stand_in) = stand_in(shard, hs, account.as_deref()) else {
                return true;
            };
            if !stand_in.subs.borrow().contains_key(&key) {
                let _ = shard.subscribe(&stand_in, subject, queue, key);
            }
        }
        LeafOp::Unsub { account, key, .. } => {
            if let Some(stand_in) = stand_in(shard, hs, account.as_deref()) {
                shard.unsubscribe(&stand_in, &key, None);
            }
        }
        LeafOp::Msg {
            account,
            subject,
            reply,
            queues,
            header_len,
            message,
        } => {
            conn.count_in(message.len());
            let Some(stand_in) = stand_in(shard, hs, account.as_deref()) else {
                tracing::debug!(
                    "{addr} - rid:{rid} - Unknown account for routed message on subject {:?}",
                    String::from_utf8_lossy(&subject)
                );
                return true;
            };
            shard.publish_from_leaf(
                &stand_in,
                &subject,
                reply.as_ref(),
                queues,
                header_len,
                &message,
            );
            // Like a service, a route never pauses for a slow subscriber here.
            shard.forget_stalled();
        }
    }
    true
}

/// The stand-in of the account an op names, once the route is registered.
fn stand_in(shard: &Shard, hs: &Handshake, account: Option<&[u8]>) -> Option<Rc<ClientState>> {
    let peer = hs.peer.as_ref()?;
    let account = super::account_named(&shard.global, account?)?;
    Some(peer.stand_in(shard, account))
}

/// The peer's first INFO: checks, then the route is registered (or dropped as a duplicate).
fn first_info(
    shard: &Rc<Shard>,
    cluster: &Rc<Cluster>,
    conn: &Rc<ClientState>,
    hs: &mut Handshake,
    dialed: &Option<(RouteUrl, RouteKind)>,
    info: RouteInfo,
    addr: SocketAddr,
) -> bool {
    let rid = conn.id;
    let cfg = shard.global.config();
    hs.remote_id = info.server_id.clone();
    if info.server_id == cfg.server_id {
        conn.close(CloseReason::DuplicateRoute);
        return false;
    }
    if info.client_id != 0 {
        // A client or leafnode port answered.
        tracing::error!("{addr} - rid:{rid} - attempted to connect to wrong port");
        conn.close(CloseReason::ProtocolViolation);
        return false;
    }
    if !info.cluster.is_empty()
        && !cluster.reconcile_name(&shard.global, &info.cluster, info.cluster_dynamic)
    {
        tracing::error!(
            "{addr} - rid:{rid} - Rejecting connection, cluster name {:?} does not match {:?}",
            info.cluster,
            cluster.name.borrow()
        );
        conn.close(CloseReason::ProtocolViolation);
        return false;
    }
    if dialed.is_none() && info.server_name == cfg.server_name {
        tracing::error!(
            "{addr} - rid:{rid} - Remote server has a duplicate name: {:?}",
            info.server_name
        );
        conn.close(CloseReason::ProtocolViolation);
        return false;
    }
    if !info.route_account.is_empty() {
        // A nats-server peer's route for one pinned account: Tachyon carries every account
        // on one route, and the peer drops this one once it reads our INFO.
        tracing::debug!(
            "{addr} - rid:{rid} - no dedicated route for account {:?}",
            info.route_account
        );
        conn.close(CloseReason::ProtocolViolation);
        return false;
    }
    if let Some(existing) = cluster.peer(&info.server_id) {
        tracing::debug!(
            "{addr} - rid:{rid} - Detected duplicate remote route {:?}",
            info.server_id
        );
        if let Some((url, kind)) = dialed {
            if !existing.solicited.replace(true) {
                *existing.url.borrow_mut() = Some(url.clone());
            }
            if *kind == RouteKind::Explicit {
                existing.kind.set(RouteKind::Explicit);
            }
        }
        // Should the kept connection fail too, dial again.
        existing.redial.set(true);
        conn.close(CloseReason::DuplicateRoute);
        return false;
    }
    let kind = dialed
        .as_ref()
        .map_or(RouteKind::Implicit(GOSSIP_DEFAULT), |d| d.1);
    let peer = Rc::new(Peer {
        remote_id: info.server_id.clone(),
        remote_name: info.server_name.clone(),
        conn: conn.clone(),
        info: std::cell::RefCell::new(info.clone()),
        solicited: Cell::new(dialed.is_some()),
        kind: Cell::new(kind),
        url: std::cell::RefCell::new(dialed.as_ref().map(|d| d.0.clone())),
        stand_ins: std::cell::RefCell::new(Default::default()),
        redial: Cell::new(false),
        connected_at: std::time::SystemTime::now(),
    });
    conn.flags.set(ClientFlags {
        headers: info.headers,
        ..conn.flags.get()
    });
    tracing::debug!(
        "{addr} - rid:{rid} - Registering remote route {:?}",
        info.server_id
    );
    // Gossip first (the peers learn of this one), then our interest to it.
    gossip(cluster, &peer, &info, dialed);
    cluster.peers.borrow_mut().push(peer.clone());
    let mut trackers = shard.leaf_interest.borrow_mut();
    for (account, tracker) in trackers.iter_mut() {
        let stand_in = peer.stand_in(shard, *account);
        let name = bytes::Bytes::from(shard.global.accounts.name(*account).to_string());
        tracker.attach_route(conn.clone(), stand_in.id, name);
    }
    drop(trackers);
    conn.send_raw(encode::PING);
    super::publish_urls(shard, cluster);
    hs.peer = Some(peer);
    true
}

/// Tells the other peers of a new route, as nats-server's `forwardNewRouteInfoToKnownServers`
/// (no storm: a route made from gossip is not gossiped again unless told to).
fn gossip(cluster: &Cluster, new: &Peer, info: &RouteInfo, dialed: &Option<(RouteUrl, RouteKind)>) {
    let did_solicit = dialed.is_some();
    let kind = new.kind.get();
    let from_gossip = did_solicit && matches!(kind, RouteKind::Implicit(_));
    if (from_gossip && kind != RouteKind::Implicit(GOSSIP_OVERRIDE))
        || info.gossip_mode == GOSSIP_DISABLED
    {
        return;
    }
    let mut fwd = info.clone();
    fwd.nonce.clear();
    for p in cluster.peers.borrow().iter() {
        if p.remote_id == new.remote_id {
            continue;
        }
        fwd.gossip_mode = if (!did_solicit && p.kind.get() == RouteKind::Explicit)
            || (did_solicit && kind == RouteKind::Explicit)
        {
            GOSSIP_OVERRIDE
        } else if !did_solicit {
            GOSSIP_DISABLED
        } else {
            GOSSIP_DEFAULT
        };
        let mut out = Vec::new();
        tachyon_protocol::route::info(&mut out, &fwd);
        p.conn.send_raw(&out);
    }
}

/// An INFO about another server, from a peer: dial it unless it is us, already a route,
/// configured (its own task dials it) or being dialed.
fn implicit_route(shard: &Rc<Shard>, cluster: &Rc<Cluster>, info: RouteInfo) {
    let id = info.server_id.clone();
    if id == shard.global.config().server_id
        || cluster.peer(&id).is_some()
        || cluster.is_configured(&info.host, info.port, &info.ip)
        || !cluster.dialing.borrow_mut().insert(id.clone())
    {
        return;
    }
    let text = if info.ip.is_empty() {
        crate::gotext::host_port(&info.host, info.port)
    } else {
        info.ip.clone()
    };
    let Ok(mut url) = RouteUrl::parse(&text) else {
        cluster.dialing.borrow_mut().remove(&id);
        return;
    };
    if info.auth_required {
        url.user = cluster.opts.user.clone();
        url.password = cluster.opts.password.clone();
    }
    let (shard, cluster) = (shard.clone(), cluster.clone());
    glommio::spawn_local(async move {
        solicit(
            shard,
            cluster.clone(),
            url,
            RouteKind::Implicit(info.gossip_mode),
        )
        .await;
        cluster.dialing.borrow_mut().remove(&id);
    })
    .detach();
}

/// The route ended: its interest goes, clients hear of the URLs it took with it, and a
/// route we were told to keep is dialed again.
fn unregister(shard: &Rc<Shard>, cluster: &Rc<Cluster>, peer: &Rc<Peer>) {
    for tracker in shard.leaf_interest.borrow_mut().values_mut() {
        tracker.detach(&peer.conn);
    }
    let stand_ins: Vec<_> = peer
        .stand_ins
        .borrow_mut()
        .drain()
        .map(|(_, s)| s)
        .collect();
    for s in &stand_ins {
        s.close(CloseReason::ClientClosed);
        shard.remove_internal(s);
    }
    cluster.peers.borrow_mut().retain(|p| !Rc::ptr_eq(p, peer));
    super::publish_urls(shard, cluster);
    let url = peer.url.borrow().clone();
    if let (true, Some(url), RouteKind::Implicit(mode)) = (peer.redial.get(), url, peer.kind.get())
    {
        if cluster.peer(&peer.remote_id).is_none()
            && cluster.dialing.borrow_mut().insert(peer.remote_id.clone())
        {
            let (shard, cluster, id) = (shard.clone(), cluster.clone(), peer.remote_id.clone());
            glommio::spawn_local(async move {
                solicit(shard, cluster.clone(), url, RouteKind::Implicit(mode)).await;
                cluster.dialing.borrow_mut().remove(&id);
            })
            .detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_url_safe() {
        let n = nonce();
        assert_eq!(n.len(), 11);
        assert!(n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
