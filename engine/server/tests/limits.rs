//! Limits of the core engine, driven over raw TCP against the real `tachyon` binary with more
//! shards than cores and several connections per test (so clients land on different shards):
//! keepalive, connection/subscription/payload/control-line limits, authentication, slow
//! consumers, back-pressure through full rings, queue groups and auto-unsubscribe.

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{RawConn, Server};

const SHARDS: usize = 4;
/// Upper bound on one protocol round trip.
const STEP: Duration = Duration::from_secs(5);

fn server(extra_args: &[&str]) -> Server {
    Server::tachyon(SHARDS, extra_args)
}

/// A connection that sent a non-verbose CONNECT and got its PONG.
fn client(port: u16) -> RawConn {
    let mut c = RawConn::connect(port, STEP);
    c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
    sync(&mut c);
    c
}

/// PING, and everything up to its PONG. After a SUB this is the interest barrier: a publish on
/// any shard reaches the subscription from then on.
fn sync(c: &mut RawConn) -> String {
    c.send(b"PING\r\n");
    let got = c.read_until(b"PONG\r\n", STEP);
    let text = got.text();
    assert!(
        text.ends_with("PONG\r\n"),
        "expected PONG, got {text:?} (closed: {})",
        got.closed
    );
    text
}

fn assert_closed_with(c: &mut RawConn, err: &str, within: Duration) -> String {
    let got = c.read_to_close(within);
    let text = got.text();
    let line = format!("-ERR '{err}'\r\n");
    assert!(
        text.contains(&line),
        "expected {line:?}, got {text:?} (closed: {})",
        got.closed
    );
    assert!(
        got.closed,
        "server did not close after {line:?}; got {text:?}"
    );
    text
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

// ---- a MSG stream reader for tests that move many messages -------------------------------------

#[derive(Debug)]
enum Frame {
    Msg {
        subject: String,
        sid: String,
        payload: Vec<u8>,
    },
    /// Any other server line (PONG, -ERR ..., INFO ...), without its CRLF.
    Line(String),
}

/// Parses server output straight off a socket; linear in the bytes read.
struct FrameReader {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    closed: bool,
}

impl FrameReader {
    fn new(conn: RawConn) -> FrameReader {
        let (stream, pending) = conn.into_parts();
        FrameReader {
            stream,
            buf: pending,
            start: 0,
            closed: false,
        }
    }

    fn parse_one(&mut self) -> Option<Frame> {
        let avail = &self.buf[self.start..];
        let eol = avail.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8_lossy(&avail[..eol]).into_owned();
        if let Some(rest) = line.strip_prefix("MSG ") {
            let parts: Vec<&str> = rest.split(' ').collect();
            assert!(
                parts.len() == 3 || parts.len() == 4,
                "bad MSG line {line:?}"
            );
            let len: usize = match parts[parts.len() - 1].parse() {
                Ok(n) => n,
                Err(_) => panic!("bad MSG size in {line:?}"),
            };
            let need = eol + 2 + len + 2;
            if avail.len() < need {
                return None;
            }
            let payload = avail[eol + 2..eol + 2 + len].to_vec();
            assert_eq!(
                &avail[eol + 2 + len..need],
                b"\r\n",
                "MSG not CRLF-terminated"
            );
            self.start += need;
            return Some(Frame::Msg {
                subject: parts[0].to_string(),
                sid: parts[1].to_string(),
                payload,
            });
        }
        self.start += eol + 2;
        Some(Frame::Line(line))
    }

    /// The next frame, or `None` when the server closed or nothing complete arrived by `deadline`.
    fn next(&mut self, deadline: Instant) -> Option<Frame> {
        loop {
            if let Some(f) = self.parse_one() {
                return Some(f);
            }
            if self.start > 0 && self.start * 2 > self.buf.len() {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let now = Instant::now();
            if self.closed || now >= deadline {
                return None;
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            if self.stream.set_read_timeout(Some(wait)).is_err() {
                self.closed = true;
                continue;
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }
}

/// Payloads of `sid`'s MSGs until `want` arrived or `within` passed; other lines are returned too.
fn collect(reader: &mut FrameReader, want: usize, within: Duration) -> (Vec<Vec<u8>>, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut msgs = Vec::with_capacity(want);
    let mut lines = Vec::new();
    while msgs.len() < want {
        match reader.next(deadline) {
            Some(Frame::Msg { payload, .. }) => msgs.push(payload),
            // The server's first PING (~2 s after CONNECT) is not the test's business.
            Some(Frame::Line(l)) if l == "PING" => {}
            Some(Frame::Line(l)) => lines.push(l),
            None => break,
        }
    }
    (msgs, lines)
}

fn seq_of(payload: &[u8]) -> u64 {
    match std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => n,
        None => panic!("payload {payload:?} is not a sequence number"),
    }
}

// ---- keepalive --------------------------------------------------------------------------------

#[test]
fn stale_connection_is_pinged_then_closed() {
    let s = server(&["--ping_interval", "100ms", "--ping_max", "2"]);
    let mut silent = client(s.port);
    let started = Instant::now();
    let text = assert_closed_with(&mut silent, "Stale Connection", Duration::from_secs(3));
    assert!(
        count(&text, "PING\r\n") >= 2,
        "expected the server's PINGs before giving up, got {text:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "stale connection detected only after {:?}",
        started.elapsed()
    );
}

#[test]
fn client_answering_pings_stays_connected() {
    let s = server(&["--ping_interval", "100ms", "--ping_max", "2"]);
    let mut live = client(s.port);
    let until = Instant::now() + Duration::from_millis(1000);
    let mut pings = 0;
    while Instant::now() < until {
        let got = live.read_until(b"PING\r\n", Duration::from_millis(300));
        assert!(!got.closed, "answering client was closed: {:?}", got.text());
        if got.text().ends_with("PING\r\n") {
            pings += 1;
            live.send(b"PONG\r\n");
        }
    }
    // Without the PONGs the server would have given up after ping_max (2) unanswered PINGs.
    assert!(pings >= 3, "expected at least 3 PINGs in 1s, got {pings}");
    let text = sync(&mut live);
    assert!(!text.contains("-ERR"), "unexpected error: {text:?}");
}

// ---- connection and subscription limits ---------------------------------------------------------

#[test]
fn max_connections_rejects_then_admits_after_a_close() {
    let s = server(&["--max_connections", "2"]);
    let a = client(s.port);
    let mut b = client(s.port);
    let mut third = RawConn::connect(s.port, STEP);
    assert!(third.info.starts_with("INFO {"), "got {:?}", third.info);
    assert_closed_with(&mut third, "maximum connections exceeded", STEP);
    drop(third);

    // The two admitted ones still work.
    sync(&mut b);
    drop(a);

    // Once the server noticed the close, a new connection is admitted.
    let deadline = Instant::now() + STEP;
    loop {
        let mut c = RawConn::connect(s.port, STEP);
        c.send(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
        let got = c.read_until(b"PONG\r\n", STEP);
        let text = got.text();
        if text.ends_with("PONG\r\n") {
            assert!(!text.contains("-ERR"), "got {text:?}");
            break;
        }
        assert!(
            text.contains("maximum connections exceeded"),
            "unexpected answer {text:?}"
        );
        assert!(
            Instant::now() < deadline,
            "no connection admitted after one of the two closed"
        );
        thread::sleep(Duration::from_millis(50));
    }
    sync(&mut b);
}

#[test]
fn max_subscriptions_refuses_the_extra_sub_and_keeps_the_connection() {
    let s = server(&["--max_subscriptions", "2"]);
    let mut c = client(s.port);
    c.send(b"SUB a 1\r\nSUB b 2\r\nSUB c 3\r\n");
    let text = sync(&mut c);
    assert_eq!(
        count(&text, "-ERR 'maximum subscriptions exceeded'\r\n"),
        1,
        "got {text:?}"
    );
    // The first two work, the refused one does not exist.
    let mut p = client(s.port);
    // One publisher's messages reach one connection in order: "end" comes after the others.
    p.send(b"PUB a 1\r\nx\r\nPUB b 1\r\ny\r\nPUB c 1\r\nz\r\nPUB b 3\r\nend\r\n");
    let text = c.read_until(b"end\r\n", STEP).text();
    assert!(text.contains("MSG a 1 1\r\nx\r\n"), "got {text:?}");
    assert!(text.contains("MSG b 2 1\r\ny\r\n"), "got {text:?}");
    assert!(
        !text.contains("MSG c"),
        "refused sub got a message: {text:?}"
    );
    // Room frees up after an UNSUB.
    c.send(b"UNSUB 1\r\nSUB c 3\r\n");
    let text = sync(&mut c);
    assert!(!text.contains("-ERR"), "got {text:?}");
}

// ---- protocol size limits -----------------------------------------------------------------------

#[test]
fn max_payload_is_advertised_and_enforced() {
    let s = server(&["--max_payload", "100"]);
    let mut sub = client(s.port);
    assert!(
        sub.info.contains("\"max_payload\":100,") || sub.info.contains("\"max_payload\":100}"),
        "INFO does not advertise max_payload 100: {}",
        sub.info
    );
    sub.send(b"SUB big 1\r\n");
    sync(&mut sub);

    let mut p = client(s.port);
    let ok = vec![b'a'; 100];
    let mut cmd = b"PUB big 100\r\n".to_vec();
    cmd.extend_from_slice(&ok);
    cmd.extend_from_slice(b"\r\n");
    p.send(&cmd);
    sync(&mut p);
    let got = sub.read_until(b"aaaa\r\n", STEP).text();
    assert!(got.contains("MSG big 1 100\r\n"), "got {got:?}");

    let mut cmd = b"PUB big 101\r\n".to_vec();
    cmd.extend_from_slice(&[b'b'; 101]);
    cmd.extend_from_slice(b"\r\n");
    p.send(&cmd);
    assert_closed_with(&mut p, "Maximum Payload Violation", STEP);
    // A later message on another connection arrives, the oversized one never did.
    let mut p2 = client(s.port);
    p2.send(b"PUB big 3\r\nend\r\n");
    let got = sub.read_until(b"end\r\n", STEP).text();
    assert!(got.ends_with("end\r\n"), "got {got:?}");
    assert!(
        !got.contains("bbbb"),
        "oversized message was delivered: {got:?}"
    );
}

#[test]
fn max_control_line_closes_the_connection() {
    let s = server(&["--max_control_line", "64"]);
    let mut c = client(s.port);
    // A line that fits is fine.
    c.send(b"SUB short.subject 1\r\n");
    let text = sync(&mut c);
    assert!(!text.contains("-ERR"), "got {text:?}");
    let long = format!("SUB {} 2\r\n", "x".repeat(80));
    c.send(long.as_bytes());
    assert_closed_with(&mut c, "maximum control line exceeded", STEP);
}

// ---- authentication -----------------------------------------------------------------------------

const AUTH: [&str; 6] = ["--user", "a", "--pass", "b", "--auth_timeout", "300ms"];

#[test]
fn auth_timeout_closes_a_client_that_never_connects() {
    let s = server(&AUTH);
    let mut c = RawConn::connect(s.port, STEP);
    assert!(
        c.info.contains("\"auth_required\":true"),
        "INFO: {}",
        c.info
    );
    let started = Instant::now();
    assert_closed_with(&mut c, "Authentication Timeout", Duration::from_secs(3));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(2500),
        "auth timeout of 300ms fired after {took:?}"
    );
}

#[test]
fn wrong_password_is_an_authorization_violation() {
    let s = server(&AUTH);
    let mut c = RawConn::connect(s.port, STEP);
    c.send(b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"nope\"}\r\nPING\r\n");
    let text = assert_closed_with(&mut c, "Authorization Violation", STEP);
    assert!(!text.contains("PONG"), "got {text:?}");
}

#[test]
fn pub_before_connect_is_an_authorization_violation() {
    let s = server(&AUTH);
    let mut c = RawConn::connect(s.port, STEP);
    c.send(b"PUB foo 2\r\nhi\r\n");
    assert_closed_with(&mut c, "Authorization Violation", STEP);
}

#[test]
fn authenticated_client_outlives_the_auth_timeout() {
    let s = server(&AUTH);
    let mut c = RawConn::connect(s.port, STEP);
    c.send(b"CONNECT {\"verbose\":false,\"user\":\"a\",\"pass\":\"b\"}\r\n");
    let text = sync(&mut c);
    assert!(!text.contains("-ERR"), "got {text:?}");
    // Well past the 300ms auth timeout.
    let got = c.read_quiet(Duration::from_millis(800), Duration::from_millis(800));
    assert!(
        !got.closed && got.bytes.is_empty(),
        "authenticated client got {:?} (closed: {})",
        got.text(),
        got.closed
    );
    sync(&mut c);
}

// ---- slow consumers -----------------------------------------------------------------------------

/// A subscriber whose socket has a tiny receive buffer, so the server's writes to it stall as
/// soon as the test stops reading.
fn tiny_window_subscriber(port: u16, subject: &str) -> RawConn {
    let mut c = RawConn::connect_tiny_window(port, STEP);
    c.send(
        format!("CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {subject} 1\r\n")
            .as_bytes(),
    );
    sync(&mut c);
    c
}

fn subscriber(port: u16, subject: &str) -> RawConn {
    let mut c = client(port);
    c.send(format!("SUB {subject} 1\r\n").as_bytes());
    sync(&mut c);
    c
}

/// Publishes `n` numbered PACED_PAYLOAD-byte messages on `subject` in batches of 32, each followed by a PING
/// round trip (so the publisher is known to be served throughout). The next batch waits until
/// the healthy subscriber counted the last one: the test measures the server's handling of a
/// stalled consumer, not how far a healthy one may fall behind on an oversubscribed machine.
fn publish_paced(p: &mut RawConn, subject: &str, n: u64, healthy_progress: &AtomicU64) {
    let mut batch = Vec::with_capacity(40 * 1024);
    for i in 0..n {
        let mut payload = format!("{i}").into_bytes();
        payload.resize(PACED_PAYLOAD, b'.');
        batch.extend_from_slice(format!("PUB {subject} {}\r\n", payload.len()).as_bytes());
        batch.extend_from_slice(&payload);
        batch.extend_from_slice(b"\r\n");
        if i % 32 == 31 || i + 1 == n {
            p.send(&batch);
            batch.clear();
            let text = sync(p);
            assert!(!text.contains("-ERR"), "publisher got {text:?}");
            let deadline = Instant::now() + STEP;
            while healthy_progress.load(Ordering::SeqCst) <= i {
                assert!(
                    Instant::now() < deadline,
                    "healthy subscriber stuck at {} of {}",
                    healthy_progress.load(Ordering::SeqCst),
                    i + 1
                );
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn seq_prefix(payload: &[u8]) -> u64 {
    let end = payload
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(payload.len());
    seq_of(&payload[..end])
}

/// Reads `n` numbered messages, checking their order, on a separate thread; `progress` counts
/// them as they arrive.
fn spawn_counting_reader(
    conn: RawConn,
    n: u64,
    progress: Arc<AtomicU64>,
) -> thread::JoinHandle<Result<u64, String>> {
    thread::spawn(move || {
        let mut r = FrameReader::new(conn);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut next = 0u64;
        while next < n {
            match r.next(deadline) {
                Some(Frame::Msg { payload, .. }) => {
                    let seq = seq_prefix(&payload);
                    if seq != next {
                        return Err(format!("expected message {next}, got {seq}"));
                    }
                    next += 1;
                    progress.store(next, Ordering::SeqCst);
                }
                // The server's first PING comes ~2 s after CONNECT, as nats-server's.
                Some(Frame::Line(l)) if l == "PING" => {}
                Some(Frame::Line(l)) => return Err(format!("got {l:?} after {next} messages")),
                None => return Err(format!("got {next} of {n} messages")),
            }
        }
        Ok(next)
    })
}

fn join_healthy(h: thread::JoinHandle<Result<u64, String>>) {
    match h.join() {
        Ok(Ok(n)) => assert_eq!(n, SLOW_MSGS),
        Ok(Err(e)) => panic!("healthy subscriber: {e}"),
        Err(_) => panic!("healthy subscriber thread panicked"),
    }
}

/// What a stalled subscriber gets once it reads again: MSGs, then (maybe) an error, then EOF.
fn drain_stalled(conn: RawConn) -> (usize, Vec<String>, bool) {
    let mut r = FrameReader::new(conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut msgs = 0;
    let mut lines = Vec::new();
    loop {
        match r.next(deadline) {
            Some(Frame::Msg { .. }) => msgs += 1,
            Some(Frame::Line(l)) if l == "PING" => {}
            Some(Frame::Line(l)) => lines.push(l),
            None => break,
        }
    }
    (msgs, lines, r.closed)
}

const SLOW_MSGS: u64 = 4096;
/// 4096 messages of this size (16 MiB) exceed what the kernel can buffer for a socket whose
/// reader stopped (send buffers autotune up to 4 MiB on loopback), so the server must stall.
const PACED_PAYLOAD: usize = 4096;

#[test]
fn slow_consumer_over_max_pending_is_cut_off_without_hurting_others() {
    let s = server(&["--max_pending", "64KB"]);
    let stalled = tiny_window_subscriber(s.port, "firehose");
    let progress = Arc::new(AtomicU64::new(0));
    let healthy =
        spawn_counting_reader(subscriber(s.port, "firehose"), SLOW_MSGS, progress.clone());
    let mut p = client(s.port);
    publish_paced(&mut p, "firehose", SLOW_MSGS, &progress);
    join_healthy(healthy);
    let (msgs, lines, closed) = drain_stalled(stalled);
    eprintln!("stalled subscriber: {msgs} messages, then {lines:?}, closed: {closed}");
    assert!(closed, "stalled subscriber was never disconnected");
    assert!(
        (msgs as u64) < SLOW_MSGS,
        "stalled subscriber got everything ({msgs}): it was not cut off"
    );
    for l in &lines {
        assert_eq!(
            l, "-ERR 'Slow Consumer'",
            "unexpected line to the slow consumer"
        );
    }
    sync(&mut p);
}

/// PONGs (and every other protocol byte) pass the `max_pending` gate like messages: a client
/// that pipelines PINGs and never reads is cut off as a slow consumer long before the write
/// deadline, and the server's memory for it stays bounded.
#[test]
fn pipelined_pings_never_read_make_a_slow_consumer() {
    let s = server(&["--max_pending", "64KB", "--write_deadline", "60s"]);
    let stalled = tiny_window_subscriber(s.port, "unused");
    let (mut stream, _) = stalled.into_parts();
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let flood = thread::spawn(move || {
        use std::io::Write;
        let chunk = b"PING\r\n".repeat(10_000);
        // 24 MB of PONGs: far past what loopback socket buffers hold.
        for _ in 0..400 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while !s.log().contains("Slow Consumer Detected") {
        assert!(
            Instant::now() < deadline,
            "a client that never reads its PONGs was not cut off: {}",
            s.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let _ = flood.join();
    // Nobody else noticed.
    let mut other = client(s.port);
    sync(&mut other);
}

#[test]
fn slow_consumer_past_write_deadline_is_cut_off_without_hurting_others() {
    let s = server(&["--write_deadline", "200ms"]);
    let stalled = tiny_window_subscriber(s.port, "firehose");
    let progress = Arc::new(AtomicU64::new(0));
    let healthy =
        spawn_counting_reader(subscriber(s.port, "firehose"), SLOW_MSGS, progress.clone());
    let mut p = client(s.port);
    publish_paced(&mut p, "firehose", SLOW_MSGS, &progress);
    join_healthy(healthy);
    // Past the deadline with the last writes stalled.
    thread::sleep(Duration::from_millis(500));
    let (msgs, lines, closed) = drain_stalled(stalled);
    eprintln!("stalled subscriber: {msgs} messages, then {lines:?}, closed: {closed}");
    assert!(closed, "stalled subscriber was never disconnected");
    assert!(
        (msgs as u64) < SLOW_MSGS,
        "stalled subscriber got everything ({msgs}): it was not cut off"
    );
    sync(&mut p);
}

// ---- cross-shard delivery under load ------------------------------------------------------------

const FLOOD: u64 = 200_000;

#[test]
fn full_rings_back_pressure_the_publisher_without_loss() {
    let s = server(&[]);
    let readers: Vec<_> = (0..5)
        .map(|_| {
            let conn = subscriber(s.port, "flood");
            thread::spawn(move || {
                let mut r = FrameReader::new(conn);
                let deadline = Instant::now() + Duration::from_secs(40);
                let mut next = 0u64;
                while next < FLOOD {
                    match r.next(deadline) {
                        Some(Frame::Msg {
                            subject,
                            sid,
                            payload,
                        }) => {
                            if subject != "flood" || sid != "1" {
                                return Err(format!("MSG {subject} {sid} at {next}"));
                            }
                            let seq = seq_of(&payload);
                            if seq != next {
                                return Err(format!("expected {next}, got {seq}"));
                            }
                            next += 1;
                        }
                        Some(Frame::Line(l)) if l == "PING" => {}
                        Some(Frame::Line(l)) => return Err(format!("got {l:?} at {next}")),
                        None => return Err(format!("only {next} of {FLOOD} arrived")),
                    }
                }
                Ok(next)
            })
        })
        .collect();

    let mut p = client(s.port);
    let mut all = Vec::with_capacity(FLOOD as usize * 24);
    for i in 0..FLOOD {
        let payload = format!("{i:08}");
        all.extend_from_slice(format!("PUB flood {}\r\n{payload}\r\n", payload.len()).as_bytes());
    }
    let started = Instant::now();
    p.send(&all);
    p.send(b"PING\r\n");
    let got = p.read_until(b"PONG\r\n", Duration::from_secs(40));
    assert!(
        got.text().ends_with("PONG\r\n"),
        "publisher got {:?} (closed: {})",
        got.text(),
        got.closed
    );
    for r in readers {
        match r.join() {
            Ok(Ok(n)) => assert_eq!(n, FLOOD),
            Ok(Err(e)) => panic!("subscriber: {e}"),
            Err(_) => panic!("subscriber thread panicked"),
        }
    }
    eprintln!(
        "{FLOOD} messages to 5 subscribers in {:?}",
        started.elapsed()
    );
}

#[test]
fn queue_group_gets_each_message_exactly_once_over_eight_shards() {
    const MEMBERS: usize = 6;
    const PER_PUB: usize = 10_000;
    const TOTAL: usize = 2 * PER_PUB;
    let s = Server::tachyon(8, &[]);
    let received = Arc::new(AtomicUsize::new(0));
    let members: Vec<_> = (0..MEMBERS)
        .map(|_| {
            let mut c = client(s.port);
            c.send(b"SUB work workers 1\r\n");
            sync(&mut c);
            let received = received.clone();
            thread::spawn(move || {
                let mut r = FrameReader::new(c);
                let hard = Instant::now() + Duration::from_secs(30);
                let mut got = Vec::new();
                // Until the group as a whole has everything, then a quiet spell to catch
                // duplicates.
                loop {
                    let done = received.load(Ordering::SeqCst) >= TOTAL;
                    let deadline = if done {
                        Instant::now() + Duration::from_millis(300)
                    } else {
                        (Instant::now() + Duration::from_millis(100)).min(hard)
                    };
                    match r.next(deadline) {
                        Some(Frame::Msg { payload, .. }) => {
                            got.push(String::from_utf8_lossy(&payload).into_owned());
                            received.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(Frame::Line(l)) if l == "PING" => {}
                        Some(Frame::Line(l)) => panic!("queue member got {l:?}"),
                        None if done || r.closed || Instant::now() >= hard => break,
                        None => {}
                    }
                }
                got
            })
        })
        .collect();
    let plain = subscriber(s.port, "work");
    let plain = thread::spawn(move || {
        let mut r = FrameReader::new(plain);
        collect(&mut r, TOTAL, Duration::from_secs(30))
    });

    let publishers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|tag| {
            let mut p = client(s.port);
            thread::spawn(move || {
                let mut all = Vec::new();
                for i in 0..PER_PUB {
                    let payload = format!("{tag}{i:06}");
                    all.extend_from_slice(
                        format!("PUB work {}\r\n{payload}\r\n", payload.len()).as_bytes(),
                    );
                }
                p.send(&all);
                sync(&mut p);
            })
        })
        .collect();
    for p in publishers {
        assert!(p.join().is_ok(), "publisher failed");
    }

    let (plain_msgs, plain_lines) = match plain.join() {
        Ok(v) => v,
        Err(_) => panic!("plain subscriber thread panicked"),
    };
    assert!(
        plain_lines.is_empty(),
        "plain subscriber got {plain_lines:?}"
    );
    assert_eq!(plain_msgs.len(), TOTAL, "plain subscriber missed messages");

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_member = Vec::new();
    for m in members {
        let got = match m.join() {
            Ok(g) => g,
            Err(_) => panic!("queue member thread panicked"),
        };
        per_member.push(got.len());
        for p in got {
            *seen.entry(p).or_default() += 1;
        }
    }
    let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(dups.is_empty(), "delivered more than once: {dups:?}");
    assert_eq!(
        seen.len(),
        TOTAL,
        "group missed {} messages (per member: {per_member:?})",
        TOTAL - seen.len()
    );
    let busy = per_member.iter().filter(|&&n| n > 0).count();
    assert!(busy >= 2, "one member took everything: {per_member:?}");
}

#[test]
fn auto_unsubscribe_is_exact_across_shards() {
    let s = server(&[]);
    let mut subs: Vec<RawConn> = (0..4)
        .map(|_| {
            let mut c = client(s.port);
            c.send(b"SUB foo 1\r\nUNSUB 1 5\r\n");
            sync(&mut c);
            c
        })
        .collect();
    let mut p = client(s.port);
    let mut all = Vec::new();
    for i in 0..100 {
        all.extend_from_slice(format!("PUB foo {}\r\n{i}\r\n", i.to_string().len()).as_bytes());
    }
    p.send(&all);
    sync(&mut p);
    for c in &mut subs {
        let got = c.read_quiet(Duration::from_millis(300), STEP);
        let text = got.text();
        assert_eq!(count(&text, "MSG foo 1 "), 5, "got {text:?}");
        for i in 0..5 {
            assert!(
                text.contains(&format!("\r\n{i}\r\n")),
                "missing {i}: {text:?}"
            );
        }
        // The subscription is gone: more publishes reach nobody.
        sync(c);
    }
    p.send(b"PUB foo 4\r\nmore\r\n");
    sync(&mut p);
    for c in &mut subs {
        let text = sync(c);
        assert!(!text.contains("MSG"), "after auto-unsubscribe got {text:?}");
    }
}
