//! Connections moving between shards (`--migrate`, `shard/migration.rs`) with the official Rust
//! client: in chaos mode every connection with traffic moves to a random shard every tick
//! (20 ms), more shards than cores, while publishers, plain subscribers, a queue group and a
//! request/reply pair run; nothing may be lost, duplicated or reordered. With the default policy,
//! a requester/responder pair the kernel spread over two shards ends up on one.

mod common;

use async_nats::{Client, Subscriber};
use common::{client_id, connect_where, RawConn, Server};
use futures::StreamExt;
use std::collections::HashSet;
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::timeout;

const SHARDS: usize = 4;
const STEP: Duration = Duration::from_secs(5);
const WHOLE: Duration = Duration::from_secs(90);

async fn bounded<F: Future<Output = ()>>(body: F) {
    if timeout(WHOLE, body).await.is_err() {
        panic!("test did not finish within {WHOLE:?}");
    }
}

async fn connect(url: &str) -> Client {
    match timeout(STEP, async_nats::connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("connect {url}: {e}"),
        Err(_) => panic!("connect {url}: timed out"),
    }
}

async fn flush(c: &Client) {
    match timeout(STEP, c.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("flush: {e}"),
        Err(_) => panic!("flush timed out"),
    }
}

async fn publish(c: &Client, subject: &str, payload: String) {
    if let Err(e) = c.publish(subject.to_string(), payload.into()).await {
        panic!("publish {subject}: {e}");
    }
}

/// A connection answering every request on `subject` with its payload, and the task doing it.
async fn echo_service(url: &str, subject: &str) -> (Client, tokio::task::JoinHandle<()>) {
    let responder = connect(url).await;
    let mut service = responder
        .subscribe(subject.to_string())
        .await
        .expect("subscribe");
    flush(&responder).await;
    let r = responder.clone();
    let serving = tokio::spawn(async move {
        while let Some(m) = service.next().await {
            if let Some(reply) = m.reply {
                if r.publish(reply, m.payload).await.is_err() {
                    return;
                }
            }
        }
    });
    (responder, serving)
}

/// Lines of the server's debug log saying a connection arrived on another shard.
fn moves(s: &Server) -> Vec<String> {
    s.log()
        .lines()
        .filter(|l| l.contains(" - moved from shard "))
        .map(str::to_string)
        .collect()
}

/// The server log's lines about these connections.
fn lines_of(s: &Server, ids: &[u64]) -> String {
    s.log()
        .lines()
        .filter(|l| ids.iter().any(|id| l.contains(&format!("cid:{id} "))))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A raw subscriber's socket cut into `MSG` frames as they arrive.
struct Frames {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
    chunk: Vec<u8>,
    last: Instant,
}

impl Frames {
    fn of(sub: RawConn) -> Frames {
        let (stream, buf) = sub.into_parts();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Frames {
            stream,
            buf,
            chunk: vec![0u8; 1 << 16],
            last: Instant::now(),
        }
    }

    /// Hands each whole frame read so far to `each` (its header line and its body), answers
    /// the server's PINGs, then reads for at most 100 ms. Panics if the server closed the
    /// connection.
    fn pump(&mut self, mut each: impl FnMut(&str, &[u8])) {
        let mut at = 0usize;
        loop {
            let rest = &self.buf[at..];
            let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                break;
            };
            let head = std::str::from_utf8(&rest[..eol]).expect("utf-8 header");
            if head == "PING" {
                // The server's first PING comes a second or two after CONNECT (a slow
                // host's run lasts that long): answered, as a client does.
                self.stream.write_all(b"PONG\r\n").expect("pong");
                at += eol + 2;
                continue;
            }
            let len: usize = head
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected {head:?}"));
            if rest.len() < eol + 2 + len + 2 {
                break;
            }
            each(head, &rest[eol + 2..eol + 2 + len]);
            at += eol + 2 + len + 2;
        }
        self.buf.drain(..at);
        match self.stream.read(&mut self.chunk) {
            Ok(0) => panic!("the server closed the subscriber"),
            Ok(n) => {
                self.buf.extend_from_slice(&self.chunk[..n]);
                self.last = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }

    /// How long since bytes last arrived.
    fn quiet(&self) -> Duration {
        self.last.elapsed()
    }
}

/// A raw client past CONNECT (verbose off) and its first PONG.
fn raw(port: u16) -> RawConn {
    let mut c = RawConn::connect(port, STEP);
    c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
    c.ping_pong(STEP);
    c
}

/// Writes `per_batch` messages every `every` for `run`, message `seq` being `frame(seq)`;
/// returns how many it wrote.
fn publish_paced(
    stream: &mut std::net::TcpStream,
    run: Duration,
    every: Duration,
    per_batch: usize,
    frame: impl Fn(u64) -> String,
) -> u64 {
    let (start, mut next, mut seq) = (Instant::now(), Instant::now(), 0u64);
    let mut batch = Vec::new();
    while start.elapsed() < run {
        batch.clear();
        for _ in 0..per_batch {
            batch.extend_from_slice(frame(seq).as_bytes());
            seq += 1;
        }
        stream.write_all(&batch).expect("publish");
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    seq
}

/// What one receiving connection got: (publisher, sequence) in arrival order.
type Got = Vec<(usize, u64)>;

/// Reads `sub` until `done` says the whole group got everything, then for a quiet moment more
/// (a duplicate would arrive then). Probes ("probe:<publisher>") are recorded in `probes` under
/// `key` and not returned.
async fn collect(
    mut sub: Subscriber,
    key: usize,
    probes: Arc<Mutex<HashSet<(usize, usize)>>>,
    total: Arc<AtomicUsize>,
    expected: usize,
) -> Got {
    let mut got = Got::new();
    let mut quiet_since: Option<tokio::time::Instant> = None;
    let mut last_progress = tokio::time::Instant::now();
    loop {
        if total.load(Ordering::SeqCst) >= expected {
            let since = *quiet_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > Duration::from_millis(300) {
                return got;
            }
        }
        assert!(
            last_progress.elapsed() < STEP * 3,
            "receiver {key}: stuck at {} of {expected} messages in its group",
            total.load(Ordering::SeqCst)
        );
        let m = match timeout(Duration::from_millis(50), sub.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => panic!("receiver {key}: subscription ended"),
            Err(_) => continue,
        };
        last_progress = tokio::time::Instant::now();
        let text = String::from_utf8_lossy(&m.payload).into_owned();
        if let Some(p) = text.strip_prefix("probe:") {
            let p: usize = p.parse().expect("probe publisher");
            probes.lock().expect("probes").insert((key, p));
            continue;
        }
        let (p, seq) = text.split_once(':').expect("payload publisher:seq");
        got.push((
            p.parse().expect("publisher"),
            seq.parse().expect("sequence"),
        ));
        total.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_moves_lose_duplicate_and_reorder_nothing() {
    const PUBS: usize = 4;
    const PER_PUB: u64 = 4000;
    const PLAIN: usize = 3;
    const QUEUE: usize = 3;
    let s = Server::tachyon(SHARDS, &["--migrate", "chaos", "-D"]);
    bounded(async {
        let expected = PUBS * PER_PUB as usize;
        let probes = Arc::new(Mutex::new(HashSet::new()));
        let queue_total = Arc::new(AtomicUsize::new(0));
        let mut receivers = Vec::new();
        let mut clients = Vec::new();
        for r in 0..PLAIN + QUEUE {
            let c = connect(&s.url).await;
            let sub = if r < PLAIN {
                c.subscribe("chaos.>").await
            } else {
                c.queue_subscribe("chaos.>", "workers".to_string()).await
            }
            .expect("subscribe");
            flush(&c).await;
            // Plain subscribers count alone; the queue members count together, and record
            // probes under one key (a probe reaches one member of the group).
            let (key, total) = if r < PLAIN {
                (r, Arc::new(AtomicUsize::new(0)))
            } else {
                (PLAIN, queue_total.clone())
            };
            receivers.push(tokio::spawn(collect(
                sub,
                key,
                probes.clone(),
                total,
                expected,
            )));
            clients.push(c);
        }
        let mut publishers = Vec::new();
        for _ in 0..PUBS {
            publishers.push(connect(&s.url).await);
        }
        // Every receiver (and the group) must see a probe from every publisher before the
        // counted messages start: interest then reaches each publisher's shard.
        let deadline = std::time::Instant::now() + STEP;
        loop {
            for (i, p) in publishers.iter().enumerate() {
                publish(p, &format!("chaos.probe.{i}"), format!("probe:{i}")).await;
                flush(p).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            if probes.lock().expect("probes").len() == (PLAIN + 1) * PUBS {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "interest never became visible"
            );
        }
        let mut senders = Vec::new();
        for (i, p) in publishers.into_iter().enumerate() {
            senders.push(tokio::spawn(async move {
                for seq in 0..PER_PUB {
                    publish(&p, &format!("chaos.p{i}"), format!("{i}:{seq}")).await;
                    if seq % 40 == 39 {
                        flush(&p).await;
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                }
                flush(&p).await;
                p
            }));
        }
        let mut publishers = Vec::new();
        for t in senders {
            publishers.push(t.await.expect("publisher task"));
        }
        let mut group: Vec<Got> = Vec::new();
        for (r, t) in receivers.into_iter().enumerate() {
            let got = t.await.expect("receiver task");
            if r < PLAIN {
                for i in 0..PUBS {
                    let seqs: Vec<u64> = got
                        .iter()
                        .filter(|(p, _)| *p == i)
                        .map(|(_, s)| *s)
                        .collect();
                    let want: Vec<u64> = (0..PER_PUB).collect();
                    if seqs != want {
                        let first_bad = seqs
                            .iter()
                            .zip(want.iter())
                            .position(|(a, b)| a != b)
                            .unwrap_or(seqs.len().min(want.len()));
                        panic!(
                            "subscriber {r}, publisher {i}: {} messages, first wrong at index {first_bad} \
                             (got {:?}); {} moves logged",
                            seqs.len(),
                            seqs.get(first_bad),
                            moves(&s).len()
                        );
                    }
                }
            } else {
                group.push(got);
            }
        }
        let mut all = HashSet::new();
        for (m, got) in group.iter().enumerate() {
            let mut last = [None; PUBS];
            for &(p, seq) in got {
                assert!(
                    last[p].is_none_or(|l| l < seq),
                    "queue member {m}: publisher {p}'s {seq} after {:?}",
                    last[p]
                );
                last[p] = Some(seq);
                assert!(all.insert((p, seq)), "queue group got {p}:{seq} twice");
            }
        }
        assert_eq!(all.len(), expected, "queue group lost messages");
        let moved = moves(&s).len();
        assert!(
            moved >= 20,
            "chaos mode logged only {moved} moves; the test proves little"
        );
        drop(publishers);
        drop(clients);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_moves_keep_request_reply_answering() {
    const REQUESTS: usize = 1500;
    let s = Server::tachyon(SHARDS, &["--migrate", "chaos", "-D"]);
    bounded(async {
        let (_responder, serving) = echo_service(&s.url, "svc.echo").await;
        let requester = connect(&s.url).await;
        // The service's interest reaches the requester's shard: retry the first request.
        let deadline = std::time::Instant::now() + STEP;
        loop {
            match timeout(
                Duration::from_millis(200),
                requester.request("svc.echo", "hello".into()),
            )
            .await
            {
                Ok(Ok(m)) if m.payload == "hello" => break,
                _ => assert!(
                    std::time::Instant::now() < deadline,
                    "service never answered"
                ),
            }
        }
        for i in 0..REQUESTS {
            let body = format!("req-{i}");
            let reply =
                match timeout(STEP, requester.request("svc.echo", body.clone().into())).await {
                    Ok(Ok(m)) => m,
                    Ok(Err(e)) => panic!("request {i}: {e}; {} moves logged", moves(&s).len()),
                    Err(_) => panic!("request {i} timed out; {} moves logged", moves(&s).len()),
                };
            assert_eq!(reply.payload, body.as_bytes(), "request {i}");
        }
        let moved = moves(&s).len();
        assert!(moved >= 5, "chaos mode logged only {moved} moves");
        serving.abort();
    })
    .await;
}

/// Two shards, default policy: pairs of requester and responder, each pair on its own subject.
/// The kernel puts both ends of a pair on one shard or spreads them; a spread pair must end up
/// together: exactly one of its two connections moves, once, to the other's shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spread_request_reply_pair_ends_up_on_one_shard() {
    let s = Server::tachyon(2, &["-D"]);
    bounded(async {
        let mut moved_pairs = 0;
        // 20 pairs all on one shard by chance: one run in a million.
        for pair in 0..20 {
            let subject = format!("pair.{pair}");
            let (responder, serving) = echo_service(&s.url, &subject).await;
            let requester = connect(&s.url).await;
            let ids = [
                responder.server_info().client_id,
                requester.server_info().client_id,
            ];
            let deadline = std::time::Instant::now() + STEP;
            loop {
                match timeout(
                    Duration::from_millis(200),
                    requester.request(subject.clone(), "x".into()),
                )
                .await
                {
                    Ok(Ok(_)) => break,
                    _ => assert!(
                        std::time::Instant::now() < deadline,
                        "pair {pair} never answered"
                    ),
                }
            }
            // A closed loop for well over a few rebalancer ticks.
            let start = std::time::Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_millis(300) {
                let body = format!("{n}");
                let m = timeout(
                    STEP,
                    requester.request(subject.clone(), body.clone().into()),
                )
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "pair {pair}: request {n} timed out; server log of {ids:?}:\n{}",
                        lines_of(&s, &ids)
                    )
                })
                .expect("request");
                assert_eq!(m.payload, body.as_bytes());
                n += 1;
            }
            serving.abort();
            let log = moves(&s);
            let mine: Vec<&String> = log
                .iter()
                .filter(|l| ids.iter().any(|id| l.contains(&format!("- cid:{id} - "))))
                .collect();
            assert!(
                mine.len() <= 1,
                "pair {pair} moved more than once: {mine:?}"
            );
            if !mine.is_empty() {
                moved_pairs += 1;
                if moved_pairs >= 2 {
                    break;
                }
            }
        }
        assert!(
            moved_pairs > 0,
            "no spread pair moved; log: {:?}",
            moves(&s)
        );
    })
    .await;
}

/// Two shards, default policy: a raw publisher on shard 1 streaming at 150 000 msgs/s, three
/// times the rate at which a connection keeps to itself (50 000), to its one subscriber on
/// shard 0. The two shards together stay under one core, so one of the two joins the other,
/// once, and the subscriber gets every message once, in order, across the move.
#[test]
fn a_busy_pair_on_shards_that_fit_one_core_ends_up_together() {
    const BATCH: usize = 1_500;
    const EVERY: Duration = Duration::from_millis(10);
    const RUN: Duration = Duration::from_millis(600);
    let s = Server::tachyon(2, &["-D"]);
    let mut sub = connect_where(&s, |shard| shard == 0, || raw(s.port));
    sub.send(b"SUB stream 1\r\nPING\r\n");
    assert!(sub
        .read_until(b"PONG\r\n", STEP)
        .text()
        .ends_with("PONG\r\n"));
    let publisher = connect_where(&s, |shard| shard == 1, || raw(s.port));
    let ids = [client_id(&sub.info), client_id(&publisher.info)];
    let mut sending = Some(std::thread::spawn(move || {
        let (mut stream, _) = publisher.into_parts();
        let start = Instant::now();
        let sent = publish_paced(&mut stream, RUN, EVERY, BATCH, |seq| {
            let body = seq.to_string();
            format!("PUB stream {}\r\n{body}\r\n", body.len())
        });
        (sent, start.elapsed())
    }));
    // Every message, in order: "MSG stream 1 <len>\r\n<seq>\r\n".
    let mut frames = Frames::of(sub);
    let mut got = 0u64;
    let mut total: Option<u64> = None;
    while total.is_none_or(|t| got < t) {
        if let Some(h) = sending.take_if(|h| h.is_finished()) {
            let (sent, took) = h.join().expect("publisher thread");
            assert!(
                sent as f64 / took.as_secs_f64() > 100_000.0,
                "the publisher managed only {sent} in {took:?}"
            );
            total = Some(sent);
        }
        frames.pump(|head, body| {
            assert_eq!(
                head,
                format!("MSG stream 1 {}", body.len()),
                "unexpected {head:?}"
            );
            assert_eq!(
                body,
                got.to_string().as_bytes(),
                "message {got} out of order"
            );
            got += 1;
        });
        assert!(
            frames.quiet() < STEP,
            "{got} arrived, then nothing; server log of {ids:?}:\n{}",
            lines_of(&s, &ids)
        );
    }
    let mine: Vec<String> = moves(&s)
        .into_iter()
        .filter(|l| ids.iter().any(|id| l.contains(&format!("- cid:{id} - "))))
        .collect();
    assert_eq!(mine.len(), 1, "one move expected: {mine:?}");
    let (subscriber_up, publisher_down) = (
        format!("cid:{} - moved from shard 0 to shard 1", ids[0]),
        format!("cid:{} - moved from shard 1 to shard 0", ids[1]),
    );
    assert!(
        mine[0].contains(&subscriber_up) || mine[0].contains(&publisher_down),
        "one end joins the other: {mine:?}"
    );
}

/// Three shards (more than cores), default policy: 48 raw publishers, spread by the kernel,
/// stream numbered messages into a raw subscriber on `tele.>` (shard 0) that reads nothing for
/// the first 600 ms, so that they pause behind it (`shard/backpressure.rs`). A second
/// subscriber (shard 1) keeps them from moving until it unsubscribes at 300 ms; then the
/// publish-only connections join the first subscriber's shard in batches
/// (`shard/rebalance.rs`), most of them cut out of their pause mid-read with whole ops left for
/// their new shard to parse. Every message arrives once, in its publisher's order.
#[test]
fn publishers_join_their_subscribers_shard_in_batches_and_lose_nothing() {
    const PUBLISHERS: usize = 48;
    const BATCH: usize = 40;
    const EVERY: Duration = Duration::from_millis(10);
    const RUN: Duration = Duration::from_millis(1_500);
    const DEAF: Duration = Duration::from_millis(600);
    const ALSO_UNTIL: Duration = Duration::from_millis(300);
    let s = Server::tachyon(3, &["-D"]);
    let mut sub = connect_where(&s, |shard| shard == 0, || raw(s.port));
    sub.send(b"SUB tele.> 1\r\n");
    sub.ping_pong(STEP);
    let mut also = connect_where(&s, |shard| shard == 1, || raw(s.port));
    also.send(b"SUB tele.> 1\r\n");
    also.ping_pong(STEP);
    let (mut also, _) = also.into_parts();
    let also_reads = std::thread::spawn(move || {
        also.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let begun = Instant::now();
        let mut chunk = vec![0u8; 1 << 16];
        while begun.elapsed() < ALSO_UNTIL {
            let _ = also.read(&mut chunk);
        }
        also.write_all(b"UNSUB 1\r\n").expect("unsubscribe");
        // Read on until the server is done with it (what was in flight).
        also.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        while matches!(also.read(&mut chunk), Ok(n) if n > 0) {}
    });
    let start = Instant::now();
    let senders: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let publisher = raw(s.port);
            std::thread::spawn(move || {
                let (mut stream, _) = publisher.into_parts();
                publish_paced(&mut stream, RUN, EVERY, BATCH, |seq| {
                    // 100 bytes: the sequence number, padded.
                    let body = format!("{seq:<100}");
                    format!("PUB tele.{p} {}\r\n{body}\r\n", body.len())
                })
            })
        })
        .collect();
    std::thread::sleep(DEAF.saturating_sub(start.elapsed()));
    let mut frames = Frames::of(sub);
    let mut expected = vec![0u64; PUBLISHERS];
    let mut got = 0u64;
    let mut total: Option<u64> = None;
    let mut senders = Some(senders);
    while total.is_none_or(|t| got < t) {
        if senders
            .as_ref()
            .is_some_and(|v| v.iter().all(|h| h.is_finished()))
        {
            let sent = senders.take().into_iter().flatten();
            total = Some(sent.map(|h| h.join().expect("publisher")).sum());
        }
        frames.pump(|head, body| {
            let p: usize = head
                .strip_prefix("MSG tele.")
                .and_then(|rest| rest.strip_suffix(&format!(" 1 {}", body.len())))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected {head:?}"));
            let body = std::str::from_utf8(body).expect("utf-8 body");
            let seq: u64 = body.trim_end().parse().expect("a sequence number");
            assert_eq!(
                seq, expected[p],
                "publisher {p}: message {seq} out of order"
            );
            expected[p] += 1;
            got += 1;
        });
        assert!(frames.quiet() < STEP, "{got} arrived, then nothing");
    }
    assert_eq!(Some(got), total, "more messages than were sent");
    also_reads.join().expect("second subscriber");
    let log = s.log();
    let batches: Vec<usize> = log
        .lines()
        .filter(|l| l.contains(" publish-only connections move to shard "))
        .filter_map(|l| l.split(": ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let moved = log
        .lines()
        .filter(|l| l.contains(" - moved from shard "))
        .count();
    // "... pause cut short for a move, N bytes left to parse": N > 0, whole ops carried over.
    let carried = log
        .lines()
        .filter_map(|l| l.split(" pause cut short for a move, ").nth(1))
        .filter(|rest| !rest.starts_with("0 "))
        .count();
    eprintln!("batches {batches:?}, {moved} moves, {carried} carried ops to their new shard");
    assert!(
        batches.iter().any(|&n| n > 1),
        "no batch of publish-only connections moved: {batches:?}"
    );
    assert!(moved >= PUBLISHERS / 3, "only {moved} moves");
    assert!(carried > 0, "no move left a pause with ops to parse");
}
