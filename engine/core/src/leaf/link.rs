//! One remote's connection to its hub, on the link shard: dial (each URL in turn, the
//! reconnect delay between attempts), the hub's INFO (a leafnode port's, or "attempted to
//! connect to wrong port"), CONNECT in nats-server's leaf form, the interest once the hub
//! confirmed it (`connect_info`), then the hub's `LS+`/`LS-`/`LMSG` until the connection
//! ends; its subscriptions go with it and the next attempt starts.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::net::TcpStream;
use tachyon_protocol::leaf::{HubInfo, LeafConnect, LeafOp, LeafParser};
use tachyon_protocol::{encode, Limits};
use tachyon_settings::leafnode::{LeafUrl, RemoteLeaf};

use super::interest::Side;
use crate::accounts::AccountId;
use crate::client::{ClientFlags, ClientState, CloseReason};
use crate::shard::Shard;
use crate::socket::Socket;

const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the hub has to send its INFO (nats-server's first-INFO wait is of this order).
const INFO_TIMEOUT: Duration = Duration::from_secs(2);
/// After a loop was detected, nats-server waits this long before dialing again.
const LOOP_DELAY: Duration = Duration::from_secs(30);
/// A hub link is not cut off like a slow client: nats-server sets no pending limit on leaf
/// connections. Its feeders still pause at the stall mark.
pub(crate) const LINK_MAX_PENDING: usize = 1 << 30;
const READ_CHUNK: usize = 64 * 1024;
/// The leaf protocol version sent in CONNECT (2: no message tracing).
const LEAF_PROTO: i32 = 2;

/// Why a connection to the hub ended, for the delay before the next.
pub(super) enum Ended {
    /// Dial again after the reconnect delay.
    Retry,
    /// The hub saw our loop-detection subject come back (or told us so).
    Loop,
}

/// Keeps a remote connected for the life of the shard.
pub async fn run(shard: Rc<Shard>, index: usize, remote: RemoteLeaf, account: AccountId) {
    let mut next = 0usize;
    // The configured URLs, then those the hub advertises (`leafnode_urls`), which take the
    // credentials of the URL they were learned through, as in nats-server.
    let mut urls = remote.urls.clone();
    loop {
        if !shard.accepting.get() {
            return;
        }
        let url = urls[next % urls.len()].clone();
        next += 1;
        let mut learned = Vec::new();
        let ended = match crate::socket::dial(&url.host, url.port, DIAL_TIMEOUT).await {
            Ok((stream, addr)) => {
                serve(
                    &shard,
                    index,
                    &remote,
                    &url,
                    account,
                    stream,
                    addr,
                    &mut learned,
                )
                .await
            }
            Err(e) => {
                tracing::debug!(
                    "Error trying to connect as leafnode to remote server {:?}: {e}",
                    url.shown
                );
                Ended::Retry
            }
        };
        for hostport in learned {
            if let Some(u) = discovered(&hostport, &url) {
                if !urls.iter().any(|k| k.host == u.host && k.port == u.port) {
                    tracing::debug!("leafnode: learned the hub's URL {}", u.shown);
                    urls.push(u);
                }
            }
        }
        let delay = match ended {
            Ended::Loop => LOOP_DELAY,
            Ended::Retry => shard.global.config().opts.leafnodes.reconnect,
        };
        glommio::timer::sleep(delay).await;
    }
}

/// A `host:port` a hub advertised, with the credentials of `via`.
fn discovered(hostport: &str, via: &LeafUrl) -> Option<LeafUrl> {
    let hostport = hostport.rsplit_once("://").map_or(hostport, |(_, h)| h);
    let (host, port) = hostport.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Some(LeafUrl {
        shown: format!("nats-leaf://{hostport}"),
        host,
        port,
        user: via.user.clone(),
        password: via.password.clone(),
        tls: via.tls,
    })
}

/// One connection's life.
#[allow(clippy::too_many_arguments)]
async fn serve(
    shard: &Rc<Shard>,
    index: usize,
    remote: &RemoteLeaf,
    url: &LeafUrl,
    account: AccountId,
    stream: TcpStream,
    addr: SocketAddr,
    learned: &mut Vec<String>,
) -> Ended {
    let cfg = shard.global.config();
    let mut stream = stream;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let mut parser = LeafParser::new(Limits {
        max_payload: 64 << 20,
        max_control_line: 1 << 20,
    });
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);

    // The hub speaks first.
    let info = match first_info(&mut stream, &mut parser, &mut rbuf).await {
        Some(Ok(info)) => info,
        Some(Err(e)) => {
            tracing::error!("{addr} - leafnode error reading the hub's INFO: {e}");
            return Ended::Retry;
        }
        None => return Ended::Retry,
    };
    if !info.is_leafnode_port() {
        tracing::error!("{addr} - attempted to connect to wrong port");
        return Ended::Retry;
    }
    // TLS once the hub's INFO is read, as nats-server's leafs do: when the URL says
    // `tls://`, the remote has a `tls {}` block, or the hub requires it.
    let mut tls = (None, None);
    if url.tls || remote.tls.is_some() || info.tls_required {
        let Some(connector) = cfg.leaf_tls.get(index).cloned().flatten() else {
            tracing::error!(
                "{addr} - TLS configuration mismatch: the hub requires TLS but the leafnode remote has no tls {{}} block"
            );
            return Ended::Retry;
        };
        let timeout = connector.timeout();
        let handshake = connector.connect(&mut stream, &url.host);
        let deadline = async {
            glommio::timer::sleep(timeout).await;
            Err(crate::tls::HandshakeError::Timeout)
        };
        match futures_lite::future::or(handshake, deadline).await {
            Ok(e) => {
                let (r, w) = crate::tls::split(e.session);
                tls = (Some(r), Some(w));
            }
            Err(e) => {
                tracing::error!("{addr} - TLS handshake error: {e}");
                return Ended::Retry;
            }
        }
    }
    let socket = Socket::new(stream);
    learned.extend(info.leafnode_urls.iter().flatten().cloned());

    let link = Rc::new(ClientState::new(
        shard.global.next_client_id(),
        Some(addr),
        fd,
        LINK_MAX_PENDING,
    ));
    link.account.set(account);
    link.leaf.set(true);
    link.link.set(true);
    link.flags.set(ClientFlags::link(info.headers));
    let account_name = shard.global.accounts.name(account).to_string();
    // A key signs the hub's nonce.
    let proof = match cfg.leaf_signers.get(index).cloned().flatten() {
        None => None,
        Some(signer) => match signer.prove(info.nonce.as_bytes()) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!("{addr} - {e}");
                return Ended::Retry;
            }
        },
    };
    let (nkey, jwt, sig) = match proof {
        Some(p) => (p.nkey, p.jwt, Some(p.sig)),
        None => (None, None, None),
    };
    let mut out = Vec::new();
    tachyon_protocol::leaf::connect(
        &mut out,
        &LeafConnect {
            version: tachyon_settings::NATS_VERSION.to_string(),
            server_id: cfg.server_id.clone(),
            name: cfg.server_name.clone(),
            // A standalone server names its cluster after itself (a hub refuses a leaf
            // from its own cluster).
            cluster: cfg.server_name.clone(),
            headers: true,
            remote_account: account_name.clone(),
            proto: LEAF_PROTO,
            compression: "off".into(),
            user: url.user.clone().filter(|_| url.password.is_some()),
            pass: url.password.clone(),
            // A user name alone is a token, as nats-server sends both.
            auth_token: url.user.clone().filter(|_| url.password.is_none()),
            nkey,
            jwt,
            sig,
        },
    );
    // A first PING measures the round trip (`/leafz` shows it).
    out.extend_from_slice(encode::PING);
    let ping_sent = Rc::new(Cell::new(Some(std::time::Instant::now())));
    link.send_raw(&out);
    tracing::info!(
        "{addr} - lid:{} - Leafnode connection created for account: {account_name} {}",
        link.id,
        info.server_name
    );
    let remote_name = if info.server_name.is_empty() {
        info.server_id.clone()
    } else {
        info.server_name.clone()
    };
    let what = remote
        .urls
        .first()
        .map(|u| u.shown.clone())
        .unwrap_or_default();
    run_link(
        shard,
        link,
        socket,
        Reading { parser, rbuf },
        LinkEnd {
            account,
            addr,
            side: Side::Spoke,
            remote_name,
            what,
        },
        ping_sent,
        !info.info_on_connect,
        learned,
        tls,
    )
    .await
}

/// The parser and what it has not parsed yet.
pub(super) struct Reading {
    pub parser: LeafParser,
    pub rbuf: BytesMut,
}

/// Who is at the other end of a link, for its tracker and its log lines.
pub(super) struct LinkEnd {
    pub account: AccountId,
    pub addr: SocketAddr,
    pub side: Side,
    /// The other server's name.
    pub remote_name: String,
    /// How the log names the connection (a remote's URL, or "leaf").
    pub what: String,
}

/// A link once its handshake is done: writer, keepalive, its interest (now, or once the hub's
/// `connect_info` INFO says so), then what the other server sends until the connection ends;
/// its subscriptions go with it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_link(
    shard: &Rc<Shard>,
    link: Rc<ClientState>,
    socket: Socket,
    reading: Reading,
    end: LinkEnd,
    ping_sent: Rc<Cell<Option<std::time::Instant>>>,
    attach_now: bool,
    learned: &mut Vec<String>,
    (mut tls_reader, tls_writer): (Option<crate::tls::TlsReader>, Option<crate::tls::TlsWriter>),
) -> Ended {
    let cfg = shard.global.config();
    let Reading {
        mut parser,
        mut rbuf,
    } = reading;
    let LinkEnd {
        account,
        addr,
        side,
        remote_name,
        what,
    } = end;
    let account_name = shard.global.accounts.name(account).to_string();
    let writer = glommio::spawn_local(crate::conn::write_loop(
        link.clone(),
        socket.clone(),
        cfg.opts.write_deadline,
        tls_writer,
    ))
    .detach();
    let pings_out = Rc::new(Cell::new(0u32));
    let pinger = glommio::spawn_local(keepalive(
        link.clone(),
        socket.clone(),
        pings_out.clone(),
        ping_sent.clone(),
        cfg.opts.ping_interval,
        cfg.opts.ping_max,
    ))
    .detach();
    shard.leaf_links.borrow_mut().push(super::LinkInfo {
        client: link.clone(),
        remote_name,
    });
    let attached = Cell::new(false);
    let attach = || {
        if !attached.replace(true) {
            if let Some(li) = shard.leaf_interest.borrow_mut().get_mut(&account) {
                li.attach(link.clone(), side);
            }
        }
    };
    if attach_now {
        attach();
    }

    let lds = shard
        .leaf_interest
        .borrow()
        .get(&account)
        .map(|li| li.lds().clone())
        .unwrap_or_default();
    let mut ended = Ended::Retry;
    let mut buf = vec![0u8; READ_CHUNK];
    'conn: loop {
        loop {
            let op = match parser.parse(&mut rbuf) {
                Ok(Some(op)) => op,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("{addr} - lid:{} - leafnode protocol error: {e}", link.id);
                    if e.sends_err() {
                        link.send_err(e.err_text());
                    }
                    link.close(CloseReason::ProtocolViolation);
                    break 'conn;
                }
            };
            match op {
                LeafOp::Info(json) => {
                    if let Ok(i) = HubInfo::parse(&json) {
                        learned.extend(i.leafnode_urls.iter().flatten().cloned());
                        if i.connect_info {
                            attach();
                        }
                    }
                }
                LeafOp::Ping => link.send_raw(encode::PONG),
                LeafOp::Pong => {
                    if let Some(t) = ping_sent.take() {
                        link.rtt.set(t.elapsed());
                    }
                }
                LeafOp::Ok => {}
                LeafOp::Err(text) => {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    tracing::error!("{addr} - lid:{} - Leafnode Error '{text}'", link.id);
                    if text.starts_with("Loop detected") {
                        ended = Ended::Loop;
                    }
                }
                LeafOp::Sub {
                    key,
                    subject,
                    queue,
                    ..
                } => {
                    if !lds.is_empty() && subject == lds {
                        let text = format!(
                            "Loop detected for leafnode account=\"{account_name}\". Delaying attempt to reconnect for {LOOP_DELAY:?}"
                        );
                        tracing::error!("{addr} - lid:{} - {text}", link.id);
                        link.send_err(&text);
                        link.close(CloseReason::ProtocolViolation);
                        ended = Ended::Loop;
                        break 'conn;
                    }
                    // A queue's weight changed: one subscription stands for the group.
                    if super::js_denied(&subject) {
                        tracing::debug!("{addr} - lid:{} - JetStream interest not taken", link.id);
                    } else if !link.subs.borrow().contains_key(&key) {
                        let _ = shard.subscribe(&link, subject, queue, key);
                    }
                }
                LeafOp::Unsub { key, .. } => shard.unsubscribe(&link, &key, None),
                LeafOp::Msg {
                    subject,
                    reply,
                    queues,
                    header_len,
                    message,
                    ..
                } => {
                    if super::js_denied(&subject) {
                        continue;
                    }
                    link.count_in(message.len());
                    shard.publish_from_leaf(
                        &link,
                        &subject,
                        reply.as_ref(),
                        queues,
                        header_len,
                        &message,
                    );
                    // Like a service, the link never pauses for a slow subscriber here.
                    shard.forget_stalled();
                }
                LeafOp::Connect(_) => {
                    tracing::error!("{addr} - lid:{} - a hub sent CONNECT", link.id);
                    link.close(CloseReason::ProtocolViolation);
                    break 'conn;
                }
            }
        }
        shard.after_sends();
        if link.is_closed() {
            break;
        }
        let read = match tls_reader.as_mut() {
            Some(t) => t.read_into(&socket, &mut rbuf, &link.writer_wake).await,
            None => socket.read(&mut buf).await.inspect(|&n| {
                rbuf.extend_from_slice(buf.get(..n).unwrap_or_default());
            }),
        };
        match read {
            Ok(0) | Err(_) => {
                link.close(CloseReason::ReadError);
                break;
            }
            // Anything from the other side shows it alive.
            Ok(_) => pings_out.set(0),
        }
    }
    link.close(link.close_reason().unwrap_or(CloseReason::ReadError));
    pinger.cancel();
    let _ = writer.await;
    if let Some(li) = shard.leaf_interest.borrow_mut().get_mut(&account) {
        li.detach(&link);
    }
    // The hub's interest goes with the connection.
    shard.remove_internal(&link);
    shard
        .leaf_links
        .borrow_mut()
        .retain(|l| !Rc::ptr_eq(&l.client, &link));
    tracing::info!(
        "{addr} - lid:{} - Leafnode connection closed: {} (remote {:?}, account {account_name})",
        link.id,
        link.close_reason()
            .map(crate::monitor::snapshot::reason_text)
            .unwrap_or("Client Closed"),
        what
    );
    ended
}

/// PINGs the hub every `interval`; `max` unanswered ones end the link as stale (a hub gone
/// without closing the connection is noticed).
pub(crate) async fn keepalive(
    link: Rc<ClientState>,
    socket: Socket,
    pings_out: Rc<Cell<u32>>,
    ping_sent: Rc<Cell<Option<std::time::Instant>>>,
    interval: Duration,
    max: u32,
) {
    loop {
        glommio::timer::sleep(interval).await;
        if link.is_closed() {
            return;
        }
        if pings_out.get() + 1 > max {
            link.send_err(tachyon_protocol::errors::STALE_CONNECTION);
            link.close(CloseReason::StaleConnection);
            socket.shutdown();
            return;
        }
        pings_out.set(pings_out.get() + 1);
        if ping_sent.get().is_none() {
            ping_sent.set(Some(std::time::Instant::now()));
        }
        link.send_raw(encode::PING);
    }
}

/// The hub's first op, which must be its INFO.
async fn first_info(
    stream: &mut TcpStream,
    parser: &mut LeafParser,
    rbuf: &mut BytesMut,
) -> Option<Result<HubInfo, String>> {
    use futures_lite::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let read = async {
        loop {
            match parser.parse(rbuf) {
                Ok(Some(LeafOp::Info(json))) => {
                    return Some(HubInfo::parse(&json).map_err(|e| e.to_string()))
                }
                Ok(Some(other)) => return Some(Err(format!("expected INFO, got {other:?}"))),
                Ok(None) => {}
                Err(e) => return Some(Err(e.to_string())),
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => rbuf.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    };
    let timeout = async {
        glommio::timer::sleep(INFO_TIMEOUT).await;
        Some(Err("timed out waiting for INFO".to_string()))
    };
    futures_lite::future::or(read, timeout).await
}
