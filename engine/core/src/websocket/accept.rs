//! A WebSocket client from accept to an established connection: TLS first for `wss`, the
//! upgrade request (within `handshake_timeout` when one is set), nats-server's answer, then
//! INFO (with the WebSocket port's host, port and TLS flags) and the ordinary connection
//! loop over a [`WsSession`].

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use tachyon_protocol::encode;

use super::upgrade::{self, AllowedOrigin, Upgrade, UpgradeRules};
use super::WsSession;
use crate::client::ClientState;
use crate::shard::Shard;
use crate::tls::{Established, HandshakeError, TlsSession};

const READ_CHUNK: usize = 16 * 1024;

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let global = shard.global.clone();
    let cfg = global.config();
    let Some(ws) = cfg.opts.websocket.clone() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let peer_text = peer.map(|p| p.to_string()).unwrap_or_default();
    let mut tls: Option<Box<dyn TlsSession>> = None;
    let mut cert = None;
    if let Some(acceptor) = cfg.ws_tls.clone() {
        let timeout = acceptor.settings().timeout;
        let deadline = async {
            glommio::timer::sleep(timeout).await;
            Err(HandshakeError::Timeout)
        };
        match futures_lite::future::or(acceptor.handshake(&mut stream, &[]), deadline).await {
            Ok(Established { session, cert: c }) => {
                tls = Some(session);
                cert = c;
            }
            Err(e) => {
                tracing::debug!("{peer_text} - websocket TLS handshake error: {e}");
                let _ = stream.close().await;
                return;
            }
        }
    }
    let rules = rules(&ws, cfg.ws_tls.is_some());
    let deadline = (!ws.handshake_timeout.is_zero()).then(|| Instant::now() + ws.handshake_timeout);
    let mut request = BytesMut::new();
    let mut raw = vec![0u8; READ_CHUNK];
    let outcome = loop {
        match upgrade::upgrade(&request, &rules, SystemTime::now()) {
            Upgrade::Partial => {}
            Upgrade::Refused {
                response,
                reason,
                close: false,
                consumed,
            } => {
                // As Go's server: the connection stays for another request.
                tracing::error!("{peer_text} - websocket handshake error: {reason}");
                if send(&mut stream, tls.as_mut(), &response).await.is_err() {
                    let _ = stream.close().await;
                    return;
                }
                let _ = request.split_to(consumed);
                continue;
            }
            done => break done,
        }
        // The TLS session may already hold the request: a client can send it in the same flight
        // as its last handshake message (nats.py does on a resumed session).
        if let Some(t) = tls.as_mut() {
            match t.take(&mut request) {
                Ok(crate::tls::Taken::Bytes(n)) if n > 0 => continue,
                Ok(crate::tls::Taken::Bytes(_)) => {}
                Ok(crate::tls::Taken::Closed) | Err(_) => {
                    let _ = stream.close().await;
                    return;
                }
            }
        }
        let n = match read_until(&mut stream, &mut raw, deadline).await {
            Some(n) if n > 0 => n,
            _ => {
                let _ = stream.close().await;
                return;
            }
        };
        match tls.as_mut() {
            None => request.extend_from_slice(&raw[..n]),
            Some(t) => {
                if t.feed(&raw[..n], &mut request).is_err() {
                    let _ = stream.close().await;
                    return;
                }
            }
        }
    };
    let (no_masking, compress, browser, client_ip, cookies) = match outcome {
        Upgrade::Partial => return,
        Upgrade::Refused {
            response, reason, ..
        } => {
            tracing::error!("{peer_text} - websocket handshake error: {reason}");
            let _ = send(&mut stream, tls.as_mut(), &response).await;
            let _ = stream.close().await;
            return;
        }
        Upgrade::Accepted {
            response,
            consumed,
            no_masking,
            compress,
            browser,
            client_ip,
            cookies,
        } => {
            // RFC 6455 has the client wait for the answer before it sends frames. nats-server
            // closes a connection whose frames came with the request, answering nothing (its
            // HTTP error cannot be written on the hijacked connection).
            if consumed < request.len() {
                tracing::error!(
                    "{peer_text} - websocket handshake error: client sent data before handshake is complete"
                );
                let _ = stream.close().await;
                return;
            }
            if send(&mut stream, tls.as_mut(), &response).await.is_err() {
                let _ = stream.close().await;
                return;
            }
            (no_masking, compress, browser, client_ip, cookies)
        }
    };
    let session = WsSession::new(tls, !no_masking, browser, compress, cfg.opts.max_payload);
    let (reader, writer) = crate::tls::split(Box::new(session));

    let fd = stream.as_raw_fd();
    let cid = global.next_client_id();
    let client = Rc::new(ClientState::new(cid, peer, fd, cfg.opts.max_pending));
    client.websocket.set(true);
    *client.forwarded_for.borrow_mut() = client_ip;
    let cookie = |name: &Option<String>| {
        let name = name.as_deref()?;
        cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let found = [
        cookie(&ws.user_cookie),
        cookie(&ws.pass_cookie),
        cookie(&ws.token_cookie),
    ];
    if found.iter().any(Option::is_some) {
        *client.ws_cookies.borrow_mut() = Some(Box::new(found));
    }
    let mut info = global.info_template();
    info.client_id = cid;
    // The socket's address, as nats-server's INFO has it; X-Forwarded-For only names the
    // client in log lines.
    info.client_ip = peer.map(|p| p.ip().to_string());
    info.host = ws.host.clone();
    info.port = global.ws_port.load(Ordering::Acquire);
    let wss = cfg.ws_tls.is_some();
    info.tls_required = wss;
    info.tls_available = wss;
    info.tls_verify = false;
    // As nats-server: its own authentication makes WebSocket clients authenticate.
    info.auth_required |= ws.auth_override();
    let nonce = cfg.auth_for(true).nonce();
    info.nonce = nonce.clone();
    let mut buf = Vec::new();
    encode::info(&mut buf, &info);
    client.send_raw(&buf);
    crate::conn::established(
        shard,
        cfg.clone(),
        stream,
        client,
        nonce,
        (Some(reader), Some(writer), cert),
        Vec::new(),
    )
    .await;
}

/// The upgrade's rules from the settings.
fn rules(ws: &tachyon_settings::websocket::WebsocketOpts, tls: bool) -> UpgradeRules {
    let allowed_origins = ws
        .allowed_origins
        .iter()
        .filter_map(|o| {
            let (scheme, rest) = o.split_once("://")?;
            let authority = rest.split('/').next().unwrap_or("");
            let (host, port) = upgrade::host_and_port(scheme == "https", authority);
            Some(AllowedOrigin {
                host,
                scheme: scheme.to_string(),
                port,
            })
        })
        .collect();
    let extra_headers = ws
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    UpgradeRules {
        same_origin: ws.same_origin,
        allowed_origins,
        extra_headers,
        tls,
        compression: ws.compression,
    }
}

/// One read, bounded by `deadline` (the read times out in the kernel's ring: no cancelled read
/// that could swallow bytes). `None`: the deadline passed or the read failed.
async fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Option<usize> {
    let timeout = deadline.map(|d| {
        d.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    });
    stream.set_read_timeout(timeout).ok()?;
    let r = stream.read(buf).await;
    let _ = stream.set_read_timeout(None);
    r.ok()
}

/// Writes `bytes` as they are, or sealed in the TLS session.
async fn send(
    stream: &mut TcpStream,
    tls: Option<&mut Box<dyn TlsSession>>,
    bytes: &[u8],
) -> std::io::Result<()> {
    match tls {
        None => stream.write_all(bytes).await,
        Some(t) => {
            let mut out = Vec::new();
            t.seal(bytes, &mut out)?;
            stream.write_all(&out).await
        }
    }
}
