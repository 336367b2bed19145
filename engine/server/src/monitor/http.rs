//! A small HTTP/1.1 server for monitoring: one thread accepts, one short-lived thread per
//! connection parses requests (httparse), asks [`Monitor::route`] and writes the answer with
//! the headers nats-server's Go server sends. Keep-alive is honoured; request bodies are skipped.
//!
//! Limits, as nats-server's `http.Server` has them: a request head must arrive within 5 s
//! (`ReadHeaderTimeout`) and fit in 1 MiB (+ Go's 4 KiB slack, else 431); an HTTP/1.1 request
//! without `Host` gets Go's 400. Threads are not goroutines: at most [`MAX_CONNS`] connections
//! are served at once (more are closed at accept), each on a small stack, so a slowloris flood
//! costs a bounded number of threads for at most the header timeout.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::endpoints::Reply;
use super::gofmt::http_date;
use super::Monitor;

/// nats-server's `MaxHeaderBytes` (1 MiB) plus the 4 KiB Go's server allows over it.
const MAX_HEAD: usize = (1 << 20) + 4096;
/// nats-server's `ReadHeaderTimeout`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kept-alive connection may wait for its next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; one thread each.
pub const MAX_CONNS: usize = 256;
const CONN_STACK: usize = 256 * 1024;

pub fn serve(listener: TcpListener, monitor: Arc<Monitor>) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut refused_logged = false;
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNS {
                    open.fetch_sub(1, Ordering::AcqRel);
                    if !refused_logged {
                        tracing::warn!(
                            "monitoring: {MAX_CONNS} connections open, closing new ones until some end"
                        );
                        refused_logged = true;
                    }
                    drop(s);
                    continue;
                }
                refused_logged = false;
                let m = monitor.clone();
                let slot = open.clone();
                let spawned = std::thread::Builder::new()
                    .name("monitor-conn".into())
                    .stack_size(CONN_STACK)
                    .spawn(move || {
                        if let Err(e) = serve_conn(s, &m) {
                            tracing::trace!("monitor connection: {e}");
                        }
                        slot.fetch_sub(1, Ordering::AcqRel);
                    });
                if let Err(e) = spawned {
                    open.fetch_sub(1, Ordering::AcqRel);
                    tracing::error!("monitor: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                tracing::error!("monitor: accept error: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// One parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub keep_alive: bool,
    /// HTTP/1.1 without a `Host` header (Go's server refuses it).
    pub missing_host: bool,
    pub body_len: usize,
    /// Bytes of `buf` the head took.
    pub len: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Partial,
    Done(Head),
    Bad,
}

pub fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad,
    };
    let version = req.version.unwrap_or(0);
    let mut keep_alive = version >= 1;
    let mut body_len = 0;
    let mut host = false;
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("host") {
            host = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match value.trim().parse() {
                Ok(n) => body_len = n,
                Err(_) => return Parsed::Bad,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked request bodies are not expected from monitoring tools.
            return Parsed::Bad;
        }
    }
    Parsed::Done(Head {
        method: req.method.unwrap_or("GET").to_string(),
        target: req.path.unwrap_or("/").to_string(),
        keep_alive,
        missing_host: version >= 1 && !host,
        body_len,
        len,
    })
}

/// Go's answer to a request it cannot serve, then the connection closes.
fn refuse(stream: &mut TcpStream, public: &str) -> std::io::Result<()> {
    let text = format!(
        "HTTP/1.1 {public}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{public}"
    );
    stream.write_all(text.as_bytes())
}

fn serve_conn(mut stream: TcpStream, monitor: &Monitor) -> std::io::Result<()> {
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    // The first head is due from the accept on; a kept-alive connection's next one from its
    // first byte (until then it may idle).
    let mut head_started = Some(Instant::now());
    loop {
        let head = loop {
            match parse_head(&buf) {
                Parsed::Done(h) => break h,
                Parsed::Bad => return refuse(&mut stream, "400 Bad Request"),
                Parsed::Partial if buf.len() > MAX_HEAD => {
                    return refuse(&mut stream, "431 Request Header Fields Too Large");
                }
                Parsed::Partial => {}
            }
            if head_started.is_none() && !buf.is_empty() {
                head_started = Some(Instant::now());
            }
            let wait = match head_started {
                Some(at) => HEADER_TIMEOUT.saturating_sub(at.elapsed()),
                None => IDLE_TIMEOUT,
            };
            if wait.is_zero() {
                // As Go's server: a head that is late is dropped without an answer.
                return Ok(());
            }
            stream.set_read_timeout(Some(wait))?;
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        head_started = None;
        if head.missing_host {
            return refuse(&mut stream, "400 Bad Request: missing required Host header");
        }
        // Skip the body, whether or not it arrived yet.
        let mut skip = head.body_len;
        let have = buf.len() - head.len;
        if have >= skip {
            buf.drain(..head.len + skip);
        } else {
            skip -= have;
            buf.clear();
            while skip > 0 {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Ok(());
                }
                let used = n.min(skip);
                skip -= used;
                buf.extend_from_slice(&chunk[used..n]);
            }
        }
        let (path, query) = match head.target.split_once('?') {
            Some((p, q)) => (p, q),
            None => (head.target.as_str(), ""),
        };
        let reply = monitor.route(path, query);
        let bytes = frame(
            &reply,
            head.method == "HEAD",
            head.keep_alive,
            SystemTime::now(),
        );
        stream.write_all(&bytes)?;
        if !head.keep_alive {
            return Ok(());
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Error",
    }
}

/// The response bytes, with the headers Go's server and nats-server's handlers set.
pub fn frame(reply: &Reply, head_only: bool, keep_alive: bool, now: SystemTime) -> Vec<u8> {
    let mut h = format!(
        "HTTP/1.1 {} {}\r\n",
        reply.status,
        reason_phrase(reply.status)
    );
    if reply.status == 200 && reply.content_type == "application/json" {
        h.push_str("Access-Control-Allow-Origin: *\r\n");
    }
    h.push_str(&format!("Content-Type: {}\r\n", reply.content_type));
    if reply.status == 404 {
        h.push_str("X-Content-Type-Options: nosniff\r\n");
    }
    h.push_str(&format!("Date: {}\r\n", http_date(now)));
    h.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    if !keep_alive {
        h.push_str("Connection: close\r\n");
    }
    h.push_str("\r\n");
    let mut out = h.into_bytes();
    if !head_only {
        out.extend_from_slice(&reply.body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        assert_eq!(
            parse_head(b"GET /varz HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        );
        let Parsed::Done(h) = parse_head(b"GET /connz?subs=1 HTTP/1.1\r\nHost: x\r\n\r\nrest")
        else {
            panic!("not parsed");
        };
        assert_eq!(h.target, "/connz?subs=1");
        assert!(h.keep_alive);
        assert_eq!(h.len, 39);
        let Parsed::Done(h) = parse_head(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc") else {
            panic!("not parsed");
        };
        assert!(!h.keep_alive);
        assert_eq!(h.body_len, 3);
        assert_eq!(parse_head(b"\x01\x02 nonsense\r\n\r\n"), Parsed::Bad);
    }

    #[test]
    fn frames_like_go() {
        let r = Reply::not_found();
        let t = SystemTime::UNIX_EPOCH;
        let text = String::from_utf8(frame(&r, false, false, t)).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Content-Length: 19\r\n"));
        assert!(text.ends_with("\r\n\r\n404 page not found\n"));
        let ok = Reply::json(&serde_json::json!({"a": 1}));
        let text = String::from_utf8(frame(&ok, true, true, t)).unwrap();
        assert!(text.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
