//! Messages crossing shards, raw protocol. One small enough travels copied into the ring's
//! byte arena; a larger one, or one that finds the arena full, travels as handles on the
//! publisher's read buffer (`ring/arena.rs`, `shard::routing::COPY_MAX`). Either way the
//! subscriber on the other shard gets every byte, in order, with its reply, its headers and its
//! queue group's delivery. More shards than cores; `--migrate off` keeps the pair apart.

mod common;

use std::thread;
use std::time::Duration;

use common::{connect_where, shard_of, Impl, RawConn, Server};

const STEP: Duration = Duration::from_secs(5);

fn connect(port: u16) -> RawConn {
    let mut c = RawConn::connect(port, STEP);
    c.send(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n");
    c.ping_pong(STEP);
    c
}

/// A server with more shards than cores whose connections stay where the kernel put them.
fn server() -> Server {
    Server::start(Impl::Tachyon, &["--shards", "3", "--migrate", "off", "-D"])
}

/// A subscriber, and a publisher on another shard.
fn pair(s: &Server) -> (RawConn, RawConn) {
    let sub = connect(s.port);
    let home = shard_of(s, &sub);
    let publisher = connect_where(s, |shard| shard != home, || connect(s.port));
    (sub, publisher)
}

/// `len` bytes that say which message they belong to: its number, then a pattern of it.
fn payload(seq: usize, len: usize) -> Vec<u8> {
    let mut p = format!("{seq:08}|").into_bytes();
    p.truncate(len);
    let mut i = 0u8;
    while p.len() < len {
        p.push(b'a' + (seq as u8).wrapping_add(i) % 26);
        i = i.wrapping_add(1);
    }
    p
}

/// Reads until `want` bytes came, or nothing more came for a second.
fn read_bytes(c: &mut RawConn, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let more = c.read_quiet(Duration::from_secs(1), STEP);
        if more.bytes.is_empty() {
            break;
        }
        got.extend_from_slice(&more.bytes);
    }
    got
}

/// Compares two streams and names the first difference instead of printing megabytes.
fn assert_same_stream(got: &[u8], want: &[u8]) {
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        let from = at.saturating_sub(80);
        panic!(
            "streams differ at byte {at}: got {:?}, want {:?}",
            String::from_utf8_lossy(&got[from..(at + 80).min(got.len())]),
            String::from_utf8_lossy(&want[from..(at + 80).min(want.len())])
        );
    }
    assert_eq!(got.len(), want.len(), "stream lengths differ");
}

#[test]
fn sizes_around_the_copy_limit_arrive_intact_across_shards() {
    let s = server();
    let (mut sub, mut publisher) = pair(&s);
    // A plain subscription and a queue group of one: the group is picked on the publisher's
    // shard, and its name travels with the message.
    sub.send(b"SUB cross.> 1\r\nSUB cross.> workers 2\r\n");
    sub.ping_pong(STEP);
    let sizes = [
        0usize, 1, 16, 128, 1000, 1200, 1240, 1250, 1260, 1270, 1280, 1290, 1300, 2048, 5000,
        70_000,
    ];
    let mut sent = Vec::new();
    let mut want = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let subject = format!("cross.{}", "s".repeat(1 + i * 3));
        let body = payload(i, len);
        let reply = (i % 2 == 0).then(|| format!("_INBOX.reply.{i}"));
        let reply_part = reply.as_ref().map(|r| format!(" {r}")).unwrap_or_default();
        if i % 3 == 0 {
            let headers = format!("NATS/1.0\r\nX-Seq: {i}\r\n\r\n");
            let total = headers.len() + body.len();
            sent.extend_from_slice(
                format!("HPUB {subject}{reply_part} {} {total}\r\n", headers.len()).as_bytes(),
            );
            sent.extend_from_slice(headers.as_bytes());
            sent.extend_from_slice(&body);
            sent.extend_from_slice(b"\r\n");
            for sid in [1, 2] {
                want.extend_from_slice(
                    format!(
                        "HMSG {subject} {sid}{reply_part} {} {total}\r\n",
                        headers.len()
                    )
                    .as_bytes(),
                );
                want.extend_from_slice(headers.as_bytes());
                want.extend_from_slice(&body);
                want.extend_from_slice(b"\r\n");
            }
        } else {
            sent.extend_from_slice(
                format!("PUB {subject}{reply_part} {}\r\n", body.len()).as_bytes(),
            );
            sent.extend_from_slice(&body);
            sent.extend_from_slice(b"\r\n");
            for sid in [1, 2] {
                want.extend_from_slice(
                    format!("MSG {subject} {sid}{reply_part} {}\r\n", body.len()).as_bytes(),
                );
                want.extend_from_slice(&body);
                want.extend_from_slice(b"\r\n");
            }
        }
    }
    publisher.send(&sent);
    publisher.ping_pong(STEP);
    let got = read_bytes(&mut sub, want.len());
    assert_same_stream(&got, &want);
}

#[test]
fn a_burst_that_outruns_the_ring_arrives_in_order() {
    const MSGS: usize = 20_000;
    const LEN: usize = 1000;
    let s = server();
    let (mut sub, mut publisher) = pair(&s);
    sub.send(b"SUB burst 1\r\n");
    sub.ping_pong(STEP);
    // 20 MB in one go: more than a ring's arena (1 MiB) and its 4 096 slots hold, so copies
    // and handles mix on the way, in whatever proportion the two shards' pace gives.
    let sending = thread::spawn(move || {
        let mut all = Vec::with_capacity(MSGS * (LEN + 24));
        for seq in 0..MSGS {
            all.extend_from_slice(format!("PUB burst {LEN}\r\n").as_bytes());
            all.extend_from_slice(&payload(seq, LEN));
            all.extend_from_slice(b"\r\n");
        }
        publisher.send(&all);
        publisher.ping_pong(STEP);
    });
    let mut want = Vec::with_capacity(MSGS * (LEN + 24));
    for seq in 0..MSGS {
        want.extend_from_slice(format!("MSG burst 1 {LEN}\r\n").as_bytes());
        want.extend_from_slice(&payload(seq, LEN));
        want.extend_from_slice(b"\r\n");
    }
    let got = read_bytes(&mut sub, want.len());
    if sending.join().is_err() {
        panic!("the publisher failed");
    }
    assert_same_stream(&got, &want);
}
