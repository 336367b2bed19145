//! A TCP sink that speaks just enough NATS for a client (INFO, PONG) and throws publishes away:
//! `run pub` against it measures the harness's own ceiling. With a [`Source`] it also feeds
//! every subscription one message per publish received (on any connection), as a server with
//! no routing cost would: natsbench against it measures what the Go client itself can do.
//! Paced by the publishes, not as fast as the socket takes them: nats.go's reader moves what
//! arrives into an unbounded pending list, and a source running ahead of the publishers only
//! measures how that list grows.
//!
//! With [`Mode::Route`] it delivers each publish to the subscriptions it matches, a write per
//! message with no batching: the least a server can do for a request/reply round trip, which
//! natsbench's `reqrep` against it measures (the Go client's latency floor).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use memchr::memchr;
use tachyon_protocol::encode;
use tracing::debug;

use crate::error::Result;

#[derive(Default)]
pub struct SinkCounters {
    pub msgs: AtomicU64,
    pub bytes: AtomicU64,
}

/// What the sink sends each subscription: up to `msgs` messages of `size` bytes, never more
/// than the publishes received so far.
#[derive(Clone, Copy, Debug)]
pub struct Source {
    pub msgs: u64,
    pub size: usize,
}

/// What the sink does besides discarding publishes.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Nothing: a publish sink.
    Discard,
    /// Feeds every subscription a message per publish.
    Source(Source),
    /// Delivers each publish to the subscriptions it matches.
    Route,
}

/// A subscription in [`Mode::Route`].
struct Route {
    conn: u64,
    subject: Vec<u8>,
    sid: Vec<u8>,
    out: Arc<Mutex<TcpStream>>,
}

/// State the connections of one sink share.
struct Shared {
    counters: Arc<SinkCounters>,
    mode: Mode,
    routes: Mutex<Vec<Route>>,
    next_conn: AtomicU64,
    /// Publishes received so far, for the sources to follow.
    published: (Mutex<u64>, Condvar),
    stop: AtomicBool,
}

impl Shared {
    fn add_published(&self, n: u64) {
        let mut p = self.published.0.lock().unwrap_or_else(|e| e.into_inner());
        *p += n;
        self.published.1.notify_all();
    }

    /// How many more messages a source that sent `sent` may send, waiting until that is at
    /// least `want` (a whole chunk: a write per publisher read would cost the sink more than
    /// a server spends). Zero once the sink is dropped.
    fn wait_for_more(&self, sent: u64, want: u64) -> u64 {
        let mut p = self.published.0.lock().unwrap_or_else(|e| e.into_inner());
        while p.saturating_sub(sent) < want && !self.stop.load(Ordering::Relaxed) {
            p = self.published.1.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        if self.stop.load(Ordering::Relaxed) {
            return 0;
        }
        p.saturating_sub(sent)
    }
}

pub struct Sink {
    pub addr: SocketAddr,
    pub counters: Arc<SinkCounters>,
    shared: Arc<Shared>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Under the lock, so a source between its check and its wait cannot miss it.
        let _p = self.shared.published.0.lock();
        self.shared.published.1.notify_all();
    }
}

/// Binds `addr` (port 0 for a free one) and serves every connection on its own thread.
pub fn start(addr: &str) -> Result<Sink> {
    start_with(addr, Mode::Discard)
}

/// [`start`], in `mode`. Threads the sink starts inherit the calling thread's CPU mask.
pub fn start_with(addr: &str, mode: Mode) -> Result<Sink> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let counters = Arc::new(SinkCounters::default());
    let shared = Arc::new(Shared {
        counters: counters.clone(),
        mode,
        routes: Mutex::new(Vec::new()),
        next_conn: AtomicU64::new(0),
        published: (Mutex::new(0), Condvar::new()),
        stop: AtomicBool::new(false),
    });
    let sh = shared.clone();
    std::thread::Builder::new()
        .name("sink-accept".into())
        .spawn(move || {
            // Polls so that a dropped sink's thread ends (an accept cannot be interrupted).
            while !sh.stop.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    Err(e) => {
                        debug!("sink accept: {e}");
                        continue;
                    }
                };
                let sh = sh.clone();
                let _ = std::thread::Builder::new()
                    .name("sink-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(stream, local, &sh) {
                            debug!("sink connection ended: {e}");
                        }
                    });
            }
        })?;
    Ok(Sink {
        addr: local,
        counters,
        shared,
    })
}

/// One client operation, as far as the sink cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Ping,
    /// PUB, payload included.
    Pub {
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        payload: &'a [u8],
    },
    /// HPUB, payload included.
    Msg,
    Sub {
        subject: &'a [u8],
        sid: &'a [u8],
    },
    Other,
}

/// Where one client operation ends and what it is, or `None` if it is not all here yet.
pub fn client_op(buf: &[u8]) -> Option<(usize, Op<'_>)> {
    let nl = memchr(b'\n', buf)?;
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let mut fields = line.split(|c| *c == b' ').filter(|f| !f.is_empty());
    let op = fields.next().unwrap_or_default();
    let is_pub = op.eq_ignore_ascii_case(b"PUB");
    if is_pub || op.eq_ignore_ascii_case(b"HPUB") {
        // The payload length is the last field for both (HPUB: total length).
        let rest: Vec<&[u8]> = fields.collect();
        let len: usize = rest
            .last()
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|s| s.parse().ok())?;
        let end = nl + 1 + len + 2;
        if buf.len() < end {
            return None;
        }
        let what = match (is_pub, rest.len()) {
            (true, 2 | 3) => Op::Pub {
                subject: rest[0],
                reply: (rest.len() == 3).then(|| rest[1]),
                payload: &buf[nl + 1..nl + 1 + len],
            },
            _ => Op::Msg,
        };
        return Some((end, what));
    }
    let what = if op.eq_ignore_ascii_case(b"PING") {
        Op::Ping
    } else if op.eq_ignore_ascii_case(b"SUB") {
        // SUB <subject> [queue] <sid>
        let rest: Vec<&[u8]> = fields.collect();
        match (rest.first(), rest.last()) {
            (Some(subject), Some(sid)) if rest.len() >= 2 => Op::Sub { subject, sid },
            _ => Op::Other,
        }
    } else {
        Op::Other
    };
    Some((nl + 1, what))
}

fn serve(s: TcpStream, local: SocketAddr, sh: &Arc<Shared>) -> Result<()> {
    s.set_nodelay(true)?;
    let mut reader = s.try_clone()?;
    // Replies and a source's messages share the socket: one writer at a time, whole frames.
    let out = Arc::new(Mutex::new(s));
    let conn = sh.next_conn.fetch_add(1, Ordering::Relaxed);
    let served = serve_ops(&mut reader, &out, conn, local, sh);
    sh.routes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|r| r.conn != conn);
    served
}

fn serve_ops(
    reader: &mut TcpStream,
    out: &Arc<Mutex<TcpStream>>,
    conn: u64,
    local: SocketAddr,
    sh: &Arc<Shared>,
) -> Result<()> {
    let info = format!(
        "INFO {{\"server_id\":\"tachyon-bench-sink\",\"server_name\":\"sink\",\"version\":\"2.12.0\",\"proto\":1,\"host\":\"{}\",\"port\":{},\"headers\":true,\"max_payload\":1048576}}\r\n",
        local.ip(),
        local.port()
    );
    write_locked(out, info.as_bytes())?;
    let mut buf = vec![0u8; 4 * 1024 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    // Routed messages are encoded here, one at a time.
    let mut frame = Vec::new();
    loop {
        if end == buf.len() {
            if start == 0 {
                let n = buf.len() * 2;
                buf.resize(n, 0);
            } else {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
        }
        let n = match reader.read(&mut buf[end..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        end += n;
        sh.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let mut pongs = 0;
        let mut msgs = 0;
        while let Some((used, op)) = client_op(&buf[start..end]) {
            match (op, sh.mode) {
                (Op::Ping, _) => pongs += 1,
                (
                    Op::Pub {
                        subject,
                        reply,
                        payload,
                    },
                    Mode::Route,
                ) => {
                    msgs += 1;
                    route(sh, &mut frame, subject, reply, payload);
                }
                (Op::Pub { .. } | Op::Msg, _) => msgs += 1,
                (Op::Sub { subject, sid }, Mode::Source(src)) => {
                    feed(out, sh, src, subject, sid)?;
                }
                (Op::Sub { subject, sid }, Mode::Route) => {
                    sh.routes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Route {
                            conn,
                            subject: subject.to_vec(),
                            sid: sid.to_vec(),
                            out: out.clone(),
                        });
                }
                (Op::Sub { .. } | Op::Other, _) => {}
            }
            start += used;
        }
        if start == end {
            start = 0;
            end = 0;
        }
        if msgs > 0 {
            sh.counters.msgs.fetch_add(msgs, Ordering::Relaxed);
            if matches!(sh.mode, Mode::Source(_)) {
                sh.add_published(msgs);
            }
        }
        for _ in 0..pongs {
            write_locked(out, b"PONG\r\n")?;
        }
    }
}

/// Whether `subject` matches the subscription `pattern` (`*` one token, `>` the rest).
fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut p = pattern.split(|c| *c == b'.');
    let mut s = subject.split(|c| *c == b'.');
    loop {
        match (p.next(), s.next()) {
            (Some(b">"), Some(_)) => return true,
            (Some(b"*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// [`Mode::Route`]: one write per matching subscription, as the message arrives, with no
/// allocation (`frame` is the publishing connection's buffer): the floor it measures must not
/// carry costs a server would not have.
fn route(sh: &Shared, frame: &mut Vec<u8>, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    let routes = sh.routes.lock().unwrap_or_else(|e| e.into_inner());
    for r in routes.iter().filter(|r| matches(&r.subject, subject)) {
        frame.clear();
        encode::msg(frame, subject, &r.sid, reply, payload);
        // A subscriber gone away is its own thread's business, not the publisher's.
        if let Err(e) = write_locked(&r.out, frame) {
            debug!("sink route: {e}");
        }
    }
}

fn write_locked(out: &Mutex<TcpStream>, bytes: &[u8]) -> std::io::Result<()> {
    out.lock()
        .unwrap_or_else(|e| e.into_inner())
        .write_all(bytes)
}

/// Starts a thread that sends subscription `sid` a message per publish, up to `src.msgs`.
/// A wildcard subscription gets a subject it matches (each wildcard token as `x`).
fn feed(
    out: &Arc<Mutex<TcpStream>>,
    sh: &Arc<Shared>,
    src: Source,
    subject: &[u8],
    sid: &[u8],
) -> Result<()> {
    let subject: Vec<&[u8]> = subject
        .split(|c| *c == b'.')
        .map(|t| if t == b"*" || t == b">" { &b"x"[..] } else { t })
        .collect();
    let mut one = Vec::new();
    encode::msg(
        &mut one,
        &subject.join(&b'.'),
        sid,
        None,
        &vec![0; src.size],
    );
    let frame = one.len();
    // Where the payload starts in each frame.
    let head = frame - src.size - 2;
    let per_chunk = (64 * 1024 / frame).max(1);
    let chunk_len = per_chunk * frame;
    let mut chunk: Vec<u8> = one.iter().copied().cycle().take(chunk_len).collect();
    let (out, sh) = (out.clone(), sh.clone());
    std::thread::Builder::new()
        .name("sink-source".into())
        .spawn(move || {
            let mut sent = 0u64;
            while sent < src.msgs {
                let want = (src.msgs - sent).min(per_chunk as u64);
                let more = sh.wait_for_more(sent, want);
                if more == 0 {
                    return;
                }
                let n = more.min(src.msgs - sent).min(per_chunk as u64) as usize;
                // Payloads start with the send time, as natsbench's publishers stamp them.
                if src.size >= 8 {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64)
                        .to_le_bytes();
                    for i in 0..n {
                        let at = i * frame + head;
                        chunk[at..at + 8].copy_from_slice(&now);
                    }
                }
                if let Err(e) = write_locked(&out, &chunk[..n * frame]) {
                    debug!("sink source ended: {e}");
                    return;
                }
                sent += n as u64;
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    #[test]
    fn client_ops_are_framed() {
        let buf = b"CONNECT {}\r\nPUB a 5\r\nPING!\r\nHPUB b 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\nSUB t.> q 7\r\nSUB u 8\r\n";
        let mut off = 0;
        let mut got = Vec::new();
        while let Some((used, op)) = client_op(&buf[off..]) {
            got.push(op);
            off += used;
        }
        assert_eq!(off, buf.len());
        // The payload "PING!" must not count as a PING.
        assert_eq!(
            got,
            vec![
                Op::Other,
                Op::Pub {
                    subject: b"a",
                    reply: None,
                    payload: b"PING!"
                },
                Op::Msg,
                Op::Ping,
                Op::Sub {
                    subject: b"t.>",
                    sid: b"7"
                },
                Op::Sub {
                    subject: b"u",
                    sid: b"8"
                },
            ]
        );
        assert_eq!(client_op(b"PUB a 5\r\nhel"), None);
    }

    /// A subscriber gets a message per publish, in whole frames and whole chunks, up to what
    /// the source was told to send.
    #[test]
    fn a_source_feeds_each_subscription_a_message_per_publish() {
        let sink = start_with(
            "127.0.0.1:0",
            Mode::Source(Source {
                msgs: 5000,
                size: 16,
            }),
        )
        .expect("sink");
        let sub = TcpStream::connect(sink.addr).expect("connect");
        sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = std::io::BufReader::new(sub.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("INFO "), "{line}");
        (&sub)
            .write_all(b"CONNECT {}\r\nSUB telemetry.> 3\r\nPING\r\n")
            .unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "PONG\r\n", "a message came before any publish");
        let mut publisher = TcpStream::connect(sink.addr).expect("connect");
        publisher.write_all(b"PUB x 2\r\nhi\r\n").unwrap();
        let mut payload = [0u8; 18];
        // Less than a chunk published: nothing yet, the next thing to arrive is the PONG.
        std::thread::sleep(Duration::from_millis(50));
        (&sub).write_all(b"PING\r\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "PONG\r\n", "a message for a fraction of a chunk");
        publisher
            .write_all("PUB x 2\r\nhi\r\n".repeat(5100).as_bytes())
            .unwrap();
        for i in 0..5000 {
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "MSG telemetry.x 3 16\r\n", "message {i}");
            r.read_exact(&mut payload).unwrap();
            assert_eq!(&payload[16..], b"\r\n");
        }
        (&sub).write_all(b"PING\r\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "PONG\r\n", "more than 5000 messages");
    }

    #[test]
    fn subjects_match_as_nats_patterns() {
        assert!(matches(b"bench.req", b"bench.req"));
        assert!(!matches(b"bench.req", b"bench.reqs"));
        assert!(matches(b"_INBOX.abc.*", b"_INBOX.abc.7"));
        assert!(!matches(b"_INBOX.abc.*", b"_INBOX.abc.7.8"));
        assert!(matches(b"telemetry.>", b"telemetry.1.2"));
        assert!(!matches(b"telemetry.>", b"telemetry"));
    }

    /// A request reaches the responder's subscription with its reply subject, and the reply
    /// reaches the requester's wildcard inbox.
    #[test]
    fn a_router_carries_a_request_and_its_reply() {
        let sink = start_with("127.0.0.1:0", Mode::Route).expect("sink");
        let hello = |subs: &str| {
            let c = TcpStream::connect(sink.addr).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut r = std::io::BufReader::new(c.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            (&c).write_all(format!("CONNECT {{}}\r\n{subs}PING\r\n").as_bytes())
                .unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "PONG\r\n");
            (c, r)
        };
        let (responder, mut rr) = hello("SUB bench.req 1\r\n");
        let (requester, mut qr) = hello("SUB _INBOX.x.* 9\r\n");
        (&requester)
            .write_all(b"PUB bench.req _INBOX.x.1 3\r\nabc\r\n")
            .unwrap();
        let mut line = String::new();
        rr.read_line(&mut line).unwrap();
        assert_eq!(line, "MSG bench.req 1 _INBOX.x.1 3\r\n");
        line.clear();
        rr.read_line(&mut line).unwrap();
        assert_eq!(line, "abc\r\n");
        (&responder)
            .write_all(b"PUB _INBOX.x.1 2\r\nok\r\n")
            .unwrap();
        line.clear();
        qr.read_line(&mut line).unwrap();
        assert_eq!(line, "MSG _INBOX.x.1 9 2\r\n");
        line.clear();
        qr.read_line(&mut line).unwrap();
        assert_eq!(line, "ok\r\n");
    }
}
