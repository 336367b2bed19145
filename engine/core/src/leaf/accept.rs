//! Leafs connecting to this server (`leafnodes { port }`: it is their hub): the leafnode
//! port on the link shard, nats-server's hub INFO (a client id and `leafnode_urls`, which a
//! leaf checks to know it reached a leafnode port), the leaf's CONNECT checked against
//! `leafnodes { authorization }` (which also picks the account), the confirming INFO, then
//! the same link life as a remote's (`link::run_link`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::net::TcpStream;
use tachyon_protocol::leaf::{LeafConnectIn, LeafInfo, LeafOp, LeafParser};
use tachyon_protocol::{errors, Limits};
use tachyon_settings::leafnode::LeafListen;

use super::interest::Side;
use super::link::{run_link, LinkEnd, Reading};
use crate::accounts::AccountId;
use crate::client::{ClientFlags, ClientState};
use crate::shard::Shard;
use crate::socket::Socket;

/// The protocol level a hub announces (2: no message tracing).
const HUB_PROTO: i32 = 2;
const READ_CHUNK: usize = 4096;
/// What nats-server tells a client that dialed its leafnode port.
const WRONG_PORT: &str = "attempted to connect to leaf node port";

/// Binds the leafnode port and serves leafs until the shard stops accepting.
pub async fn listen(shard: Rc<Shard>, cfg: LeafListen) {
    let listener = match crate::socket::listen_reusable(&cfg.host, cfg.port) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(
                "Error listening on leafnode port {}:{}: {e}",
                cfg.host,
                cfg.port
            );
            return;
        }
    };
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(cfg.port);
    tracing::info!(
        "Listening for leafnode connections on {}",
        crate::gotext::host_port(&cfg.host, bound)
    );
    let cfg = Rc::new(cfg);
    while shard.accepting.get() {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve(shard.clone(), stream, cfg.clone(), bound)).detach();
            }
            Err(e) => {
                tracing::debug!("leafnode accept error: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The account a leaf's CONNECT binds, or `None` when its credentials are refused.
fn authenticate(shard: &Shard, cfg: &LeafListen, c: &LeafConnectIn) -> Option<AccountId> {
    let account = |name: &Option<String>| super::account_of(&shard.global, name.as_deref());
    let Some(auth) = &cfg.auth else {
        return Some(0);
    };
    if let Some(u) = &auth.user {
        if *u == c.user && auth.password.as_deref().unwrap_or("") == c.pass {
            return account(&auth.account);
        }
    }
    auth.users
        .iter()
        .find(|u| u.user == c.user && u.password == c.pass)
        .and_then(|u| account(&u.account))
}

async fn serve(shard: Rc<Shard>, stream: TcpStream, cfg: Rc<LeafListen>, port: u16) {
    use futures_lite::AsyncWriteExt;
    let _ = stream.set_nodelay(true);
    let Ok(addr) = stream.peer_addr() else {
        return;
    };
    let mut stream = stream;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let global = shard.global.clone();
    let config = global.config();
    let cid = global.next_client_id();
    let advertised = if cfg.no_advertise {
        Vec::new()
    } else {
        vec![cfg
            .advertise
            .clone()
            .unwrap_or_else(|| crate::gotext::host_port(&advertise_host(&cfg.host), port))]
    };
    let acceptor = config.leaf_accept_tls.clone();
    let mut info = LeafInfo {
        server_id: config.server_id.clone(),
        server_name: config.server_name.clone(),
        version: tachyon_settings::NATS_VERSION.to_string(),
        proto: HUB_PROTO,
        go: "go1.24".into(),
        host: cfg.host.clone(),
        port,
        headers: true,
        // nats-server says so on every leafnode port, with or without `authorization`.
        auth_required: true,
        tls_required: acceptor.is_some(),
        max_payload: config.opts.max_payload as i64,
        client_id: cid,
        leafnode_urls: advertised,
        info_on_connect: true,
        connect_info: false,
        remote_account: String::new(),
    };
    // INFO in plain text, then the TLS handshake when the port has `tls {}`.
    let mut out = Vec::new();
    tachyon_protocol::leaf::info(&mut out, &info);
    if stream.write_all(&out).await.is_err() {
        return;
    }
    let (mut tls_reader, mut tls_writer) = (None, None);
    if let Some(acceptor) = acceptor {
        let timeout = acceptor.settings().timeout;
        let deadline = async {
            glommio::timer::sleep(timeout).await;
            Err(crate::tls::HandshakeError::Timeout)
        };
        match futures_lite::future::or(acceptor.handshake(&mut stream, &[]), deadline).await {
            Ok(e) => {
                let (r, w) = crate::tls::split(e.session);
                (tls_reader, tls_writer) = (Some(r), Some(w));
            }
            Err(e) => {
                tracing::error!("{addr} - lid:{cid} - TLS handshake error: {e}");
                return;
            }
        }
    }
    let socket = Socket::new(stream);

    // The leaf's CONNECT, within the authorization timeout.
    let mut parser = LeafParser::new(Limits {
        max_payload: config.opts.max_payload,
        max_control_line: config.opts.max_control_line.max(4096),
    });
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let timeout = cfg
        .auth
        .as_ref()
        .and_then(|a| a.timeout)
        .unwrap_or(config.opts.auth_timeout);
    let connect = futures_lite::future::or(
        first_connect(&socket, tls_reader.as_mut(), &mut parser, &mut rbuf),
        async {
            glommio::timer::sleep(timeout).await;
            Err("authentication timeout".to_string())
        },
    )
    .await;
    // As nats-server: anything before CONNECT is an authorization failure.
    let connect = match connect {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{addr} - lid:{cid} - authentication error: {e}");
            refuse(
                &socket,
                tls_writer.as_mut(),
                errors::AUTHORIZATION_VIOLATION,
            )
            .await;
            return;
        }
    };
    if connect.lang.is_some() {
        tracing::error!("{addr} - lid:{cid} - attempted to connect to leaf node port");
        refuse(&socket, tls_writer.as_mut(), WRONG_PORT).await;
        return;
    }
    let Some(account) = authenticate(&shard, &cfg, &connect) else {
        tracing::error!("{addr} - lid:{cid} - authentication error");
        refuse(
            &socket,
            tls_writer.as_mut(),
            errors::AUTHORIZATION_VIOLATION,
        )
        .await;
        return;
    };

    let link = Rc::new(ClientState::new(
        cid,
        Some(addr),
        fd,
        super::link::LINK_MAX_PENDING,
    ));
    link.account.set(account);
    link.leaf.set(true);
    link.link.set(true);
    link.leaf_accepted.set(true);
    link.flags.set(ClientFlags::link(connect.headers));
    let account_name = global.accounts.name(account).to_string();
    info.connect_info = true;
    info.remote_account = account_name.clone();
    let mut out = Vec::new();
    tachyon_protocol::leaf::info(&mut out, &info);
    out.extend_from_slice(tachyon_protocol::encode::PING);
    link.send_raw(&out);
    let ping_sent = Rc::new(Cell::new(Some(std::time::Instant::now())));
    tracing::info!(
        "{addr} - lid:{cid} - Leafnode connection created for account: {account_name} {}",
        connect.name
    );
    let remote_name = if connect.name.is_empty() {
        addr.to_string()
    } else {
        connect.name.clone()
    };
    let mut learned = Vec::new();
    let _ = run_link(
        &shard,
        link,
        socket,
        Reading { parser, rbuf },
        LinkEnd {
            account,
            addr,
            side: Side::Hub,
            remote_name,
            what: "leaf".into(),
        },
        ping_sent,
        true,
        &mut learned,
        (tls_reader, tls_writer),
    )
    .await;
}

/// `-ERR '<text>'` (sealed when the connection is TLS), then the end.
async fn refuse(socket: &Socket, tls: Option<&mut crate::tls::TlsWriter>, text: &str) {
    let mut out = Vec::new();
    tachyon_protocol::encode::err(&mut out, text);
    let bytes = match tls {
        Some(t) => match t.seal(&out) {
            Ok(sealed) => sealed.to_vec(),
            Err(_) => Vec::new(),
        },
        None => out,
    };
    let _ = write_all(socket, &bytes).await;
    socket.shutdown();
}

/// The host leafs are told to reconnect to: the bound one, or loopback for "any".
fn advertise_host(host: &str) -> String {
    match host {
        "0.0.0.0" | "::" | "" => "127.0.0.1".to_string(),
        h => h.to_string(),
    }
}

async fn write_all(socket: &Socket, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let n = socket.write(bytes).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// The leaf's first op, which must be its CONNECT (read through TLS when the port has it).
async fn first_connect(
    socket: &Socket,
    mut tls: Option<&mut crate::tls::TlsReader>,
    parser: &mut LeafParser,
    rbuf: &mut BytesMut,
) -> Result<LeafConnectIn, String> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match parser.parse(rbuf) {
            Ok(Some(LeafOp::Connect(json))) => {
                return LeafConnectIn::parse(&json).map_err(|e| e.to_string())
            }
            Ok(Some(other)) => return Err(format!("expected CONNECT, got {other:?}")),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let read = match tls.as_deref_mut() {
            Some(t) => {
                t.read_into(socket, rbuf, &crate::signal::LocalSignal::default())
                    .await
            }
            None => socket.read(&mut buf).await.inspect(|&n| {
                rbuf.extend_from_slice(buf.get(..n).unwrap_or_default());
            }),
        };
        match read {
            Ok(0) | Err(_) => return Err("connection closed".into()),
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_host_is_reachable() {
        assert_eq!(advertise_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(advertise_host("10.0.0.5"), "10.0.0.5");
    }

    #[test]
    fn hub_info_has_what_a_leaf_checks() {
        let mut out = Vec::new();
        tachyon_protocol::leaf::info(
            &mut out,
            &LeafInfo {
                client_id: 7,
                leafnode_urls: Vec::new(),
                ..LeafInfo::default()
            },
        );
        let text = String::from_utf8_lossy(&out);
        let json = &text["INFO ".len()..text.len() - 2];
        let back = tachyon_protocol::leaf::HubInfo::parse(json.as_bytes()).expect("parse");
        assert!(back.is_leafnode_port(), "{text}");
        assert!(!text.contains("connect_info"), "{text}");
    }
}
