//! The HTTP upgrade a WebSocket client starts with, answered as nats-server answers it
//! (`wsUpgrade`): the checks of RFC 6455 4.2.1 in its order and with its reasons, the origin
//! rules (`same_origin`, `allowed_origins`), `Nats-No-Masking`, the configured extra headers;
//! errors in the shape Go's `http.Error` writes them.

use std::time::SystemTime;

use tachyon_settings::gofmt::http_date;

/// The GUID RFC 6455 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest request head taken (Go's server allows 1 MiB of headers).
pub const MAX_REQUEST: usize = 1 << 20;

/// An allowed origin: scheme and port, by host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    pub host: String,
    pub scheme: String,
    pub port: String,
}

/// What the upgrade needs from the `websocket {}` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeRules {
    pub same_origin: bool,
    pub allowed_origins: Vec<AllowedOrigin>,
    /// `headers {}` rendered as `Name: value\r\n` lines.
    pub extra_headers: String,
    /// The port serves TLS (for the same-origin check's scheme).
    pub tls: bool,
    /// `compression`: permessage-deflate is agreed when the client offers it.
    pub compression: bool,
}

/// The outcome of reading a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// More bytes are needed.
    Partial,
    /// Upgraded: send `response`, then speak WebSocket. `consumed` bytes were the request.
    Accepted {
        response: Vec<u8>,
        consumed: usize,
        no_masking: bool,
        /// permessage-deflate agreed (no context takeover either way).
        compress: bool,
        /// A browser (User-Agent `Mozilla/...`): frames of at most 4 KiB.
        browser: bool,
        /// `X-Forwarded-For`, when it is an IP address.
        client_ip: Option<String>,
        /// The request's cookies, by name.
        cookies: Vec<(String, String)>,
    },
    /// Refused: send `response`; `reason` is what nats-server logs; `close` when Go's server
    /// would close the connection too (a request it could not parse).
    Refused {
        response: Vec<u8>,
        reason: String,
        close: bool,
        /// Bytes of the refused request; Go's server reads the next one after them.
        consumed: usize,
    },
}

/// Reads the request head in `buf` and decides.
pub fn upgrade(buf: &[u8], rules: &UpgradeRules, now: SystemTime) -> Upgrade {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => return Upgrade::Partial,
        _ => return bad_request("malformed HTTP request"),
    };
    let get = |name: &str| -> Vec<&str> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .collect()
    };
    let first = |name: &str| get(name).first().map(|v| v.trim().to_string());
    let contains = |name: &str, value: &str| {
        get(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(value))
    };
    let http11 = req.version == Some(1);
    let host = first("Host").unwrap_or_default();
    if http11 && get("Host").is_empty() {
        // Go's server refuses this before any handler runs.
        return Upgrade::Refused {
            response: b"HTTP/1.1 400 Bad Request: missing required Host header\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header".to_vec(),
            reason: "missing required Host header".into(),
            close: true,
            consumed,
        };
    }
    let path = req.path.unwrap_or("/");
    let refused = |status, reason: &str| refused(status, reason, now, consumed);
    if path.split('?').next().unwrap_or("").ends_with("/mqtt") {
        return refused(404, "mqtt websocket endpoint not enabled");
    }
    if req.method != Some("GET") {
        return refused(405, "request method must be GET");
    }
    if host.is_empty() {
        return refused(400, "'Host' missing in request");
    }
    if !contains("Upgrade", "websocket") {
        return refused(400, "invalid value for header 'Upgrade'");
    }
    if !contains("Connection", "Upgrade") {
        return refused(400, "invalid value for header 'Connection'");
    }
    let key = first("Sec-WebSocket-Key").unwrap_or_default();
    if key.is_empty() {
        return refused(400, "key missing");
    }
    if base64_decoded_len(&key) != Some(16) {
        return refused(400, "invalid websocket key");
    }
    if !contains("Sec-WebSocket-Version", "13") {
        return refused(400, "invalid version");
    }
    let origin = first("Origin")
        .filter(|o| !o.is_empty())
        .or_else(|| first("Sec-WebSocket-Origin"));
    if let Err(e) = check_origin(origin.as_deref(), &host, rules) {
        return refused(403, &format!("origin not allowed: {e}"));
    }
    let no_masking = first("Nats-No-Masking").as_deref() == Some("true");
    // As nats-server: the extension's presence is enough; the answer says both sides keep no
    // context.
    let compress = rules.compression
        && get("Sec-WebSocket-Extensions")
            .iter()
            .flat_map(|v| v.split([',', ';']))
            .any(|p| {
                p.trim_matches([' ', '\t'])
                    .eq_ignore_ascii_case("permessage-deflate")
            });
    let mut response = Vec::with_capacity(256);
    response.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    response.extend_from_slice(accept_key(&key).as_bytes());
    response.extend_from_slice(b"\r\n");
    if compress {
        response.extend_from_slice(
            b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n",
        );
    }
    if no_masking {
        response.extend_from_slice(b"Nats-No-Masking: true\r\n");
    }
    response.extend_from_slice(rules.extra_headers.as_bytes());
    response.extend_from_slice(b"\r\n");
    let browser = first("User-Agent").is_some_and(|ua| ua.starts_with("Mozilla/"));
    let client_ip = get("X-Forwarded-For")
        .first()
        .map(|v| v.trim().to_string())
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    let cookies = get("Cookie")
        .iter()
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect();
    Upgrade::Accepted {
        response,
        consumed,
        no_masking,
        compress,
        browser,
        client_ip,
        cookies,
    }
}

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64_encode(&h.digest().bytes())
}

fn check_origin(origin: Option<&str>, host: &str, rules: &UpgradeRules) -> Result<(), String> {
    if !rules.same_origin && rules.allowed_origins.is_empty() {
        return Ok(());
    }
    let Some(origin) = origin else { return Ok(()) };
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or_else(|| format!("parse {origin:?}: invalid URI for request"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let (oh, op) = host_and_port(scheme.eq_ignore_ascii_case("https"), authority);
    if rules.same_origin {
        let (rh, rp) = host_and_port(rules.tls, host);
        let rs = if rules.tls { "https" } else { "http" };
        if oh != rh || op != rp || !scheme.eq_ignore_ascii_case(rs) {
            return Err("not same origin".into());
        }
    }
    if !rules.allowed_origins.is_empty()
        && !rules
            .allowed_origins
            .iter()
            .any(|a| a.host == oh && a.scheme == scheme && a.port == op)
    {
        return Err("not in the allowed list".into());
    }
    Ok(())
}

/// Host (lower case) and port of `host[:port]`, the scheme's default port when there is none.
pub fn host_and_port(tls: bool, hostport: &str) -> (String, String) {
    let (h, p) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            if h.contains(':') && !h.starts_with('[') {
                // A bare IPv6 address without a port.
                (hostport, "")
            } else {
                (h, p)
            }
        }
        _ => (hostport, ""),
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    let p = if p.is_empty() {
        if tls {
            "443"
        } else {
            "80"
        }
    } else {
        p
    };
    (h.to_ascii_lowercase(), p.to_string())
}

fn refused(status: u16, reason: &str, now: SystemTime, consumed: usize) -> Upgrade {
    let text = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    };
    let body = format!("{text}\n");
    let response = format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nSec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\nDate: {}\r\nContent-Length: {}\r\n\r\n{body}",
        http_date(now),
        body.len()
    );
    Upgrade::Refused {
        response: response.into_bytes(),
        reason: reason.into(),
        close: false,
        consumed,
    }
}

fn bad_request(reason: &str) -> Upgrade {
    Upgrade::Refused {
        response: b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request".to_vec(),
        reason: reason.into(),
        close: true,
        consumed: 0,
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How many bytes standard base64 `s` decodes to; `None` if it is not valid base64.
fn base64_decoded_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &b[..b.len() - pad];
    if !body.iter().all(|c| B64.contains(c)) {
        return None;
    }
    Some(b.len() / 4 * 3 - pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const OK: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn at() -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(1_796_419_774)
    }

    #[test]
    fn accepts_as_nats_server_answers() {
        match upgrade(OK, &UpgradeRules::default(), at()) {
            Upgrade::Accepted {
                response,
                consumed,
                no_masking,
                ..
            } => {
                // RFC 6455's example key, and nats-server's exact answer.
                assert_eq!(
                    response,
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec()
                );
                assert_eq!(consumed, OK.len());
                assert!(!no_masking);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            upgrade(&OK[..20], &UpgradeRules::default(), at()),
            Upgrade::Partial
        );
    }

    #[test]
    fn refusals_have_nats_servers_reasons() {
        let cases: [(&[u8], u16, &str); 6] = [
            (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "request method must be GET"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid value for header 'Upgrade'"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 400, "invalid value for header 'Connection'"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n", 400, "key missing"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\n\r\n", 400, "invalid websocket key"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 400, "invalid version"),
        ];
        for (req, status, why) in cases {
            match upgrade(req, &UpgradeRules::default(), at()) {
                Upgrade::Refused {
                    response,
                    reason,
                    close,
                    ..
                } => {
                    assert_eq!(reason, why);
                    assert!(!close);
                    let text = String::from_utf8(response).expect("text");
                    assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
                    assert!(
                        text.contains("Date: Fri, 04 Dec 2026 21:29:34 GMT\r\n"),
                        "{text}"
                    );
                }
                other => panic!("{why}: {other:?}"),
            }
        }
        match upgrade(b"garbage\r\n\r\n", &UpgradeRules::default(), at()) {
            Upgrade::Refused {
                close, response, ..
            } => {
                assert!(close);
                assert!(response.ends_with(b"\r\n\r\n400 Bad Request"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn origins_same_and_allowed() {
        let with_origin = |o: &str| {
            let s = String::from_utf8_lossy(OK)
                .replace("\r\n\r\n", &format!("\r\nOrigin: {o}\r\n\r\n"));
            s.into_bytes()
        };
        let same = UpgradeRules {
            same_origin: true,
            ..Default::default()
        };
        assert!(matches!(
            upgrade(&with_origin("http://x"), &same, at()),
            Upgrade::Accepted { .. }
        ));
        assert!(matches!(
            upgrade(&with_origin("http://y"), &same, at()),
            Upgrade::Refused { reason, .. } if reason == "origin not allowed: not same origin"
        ));
        let allowed = UpgradeRules {
            allowed_origins: vec![AllowedOrigin {
                host: "app.example".into(),
                scheme: "https".into(),
                port: "443".into(),
            }],
            ..Default::default()
        };
        assert!(matches!(
            upgrade(&with_origin("https://App.Example"), &allowed, at()),
            Upgrade::Accepted { .. }
        ));
        assert!(matches!(
            upgrade(&with_origin("http://app.example"), &allowed, at()),
            Upgrade::Refused { reason, .. } if reason == "origin not allowed: not in the allowed list"
        ));
    }

    #[test]
    fn dates_and_base64() {
        assert_eq!(http_date(at()), "Fri, 04 Dec 2026 21:29:34 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_decoded_len("dGhlIHNhbXBsZSBub25jZQ=="), Some(16));
        assert_eq!(base64_decoded_len("abc"), None);
        assert_eq!(
            host_and_port(false, "Host:8080"),
            ("host".into(), "8080".into())
        );
        assert_eq!(host_and_port(true, "h"), ("h".into(), "443".into()));
        assert_eq!(
            host_and_port(false, "[::1]:80"),
            ("::1".into(), "80".into())
        );
    }
}
