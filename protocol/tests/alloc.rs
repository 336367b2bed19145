//! Proves `Parser::parse` allocates nothing per PUB once the read buffer is shared, nor the
//! leafnode and route parsers per `LMSG`/`RMSG`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use tachyon_protocol::{encode, ClientOp, Limits, Parser};

struct Counting;

thread_local! {
    // Per thread, so the test harness's own threads do not count. A const-initialized
    // Cell needs no allocation to access.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parse_allocates_nothing_per_pub() {
    let n = 1000;
    let mut wire = Vec::new();
    for i in 0..n + 10 {
        let reply: Option<&[u8]> = if i % 2 == 0 {
            Some(b"_INBOX.abc")
        } else {
            None
        };
        encode::pub_(&mut wire, b"telemetry.device.42", reply, &[b'x'; 128]);
        if i % 3 == 0 {
            encode::hpub(
                &mut wire,
                b"h",
                None,
                b"NATS/1.0\r\nA: b\r\n\r\n",
                b"payload",
            );
        }
        if i % 5 == 0 {
            wire.extend_from_slice(b"PING\r\nSUB a.* q 1\r\nUNSUB 1 5\r\n");
        }
    }
    let mut buf = BytesMut::with_capacity(wire.len());
    buf.extend_from_slice(&wire);
    let mut p = Parser::new(Limits::default());
    // warm up: the first split turns the buffer into a shared one (one allocation)
    for _ in 0..10 {
        assert!(p.parse(&mut buf).unwrap().is_some());
    }
    let first = allocs();
    assert!(p.parse(&mut buf).unwrap().is_some());
    // sanity: the counter works (this Vec allocates)
    let v: Vec<u8> = Vec::with_capacity(8);
    assert_eq!(allocs(), first + 1);
    drop(v);
    let before = allocs();
    let mut pubs = 0;
    while let Some(op) = p.parse(&mut buf).unwrap() {
        if matches!(op, ClientOp::Pub { .. }) {
            pubs += 1;
        }
        drop(op);
    }
    let after = allocs();
    assert!(pubs >= n - 10, "parsed {pubs} PUBs");
    assert_eq!(after - before, 0, "allocations while parsing {pubs} PUBs");
}

#[test]
fn link_parsers_allocate_nothing_per_message() {
    use tachyon_protocol::leaf::{self, LeafOp, LeafParser};
    let n = 1000;
    let q = [bytes::Bytes::from_static(b"q")];
    for route in [false, true] {
        let account: Option<&[u8]> = route.then_some(b"$G");
        let mut wire = Vec::new();
        for i in 0..n + 10 {
            let reply: Option<&[u8]> = (i % 2 == 0).then_some(b"_INBOX.abc");
            let queues: &[bytes::Bytes] = if i % 3 == 0 { &q } else { &[] };
            leaf::msg(
                &mut wire,
                account,
                b"telemetry.device.42",
                reply,
                queues,
                None,
                &[b'x'; 128],
            );
            if i % 5 == 0 {
                wire.extend_from_slice(b"PING\r\n");
            }
        }
        let mut buf = BytesMut::with_capacity(wire.len());
        buf.extend_from_slice(&wire);
        let limits = Limits::default();
        let mut p = if route {
            LeafParser::route(limits)
        } else {
            LeafParser::new(limits)
        };
        // warm up: the first split turns the buffer into a shared one
        for _ in 0..10 {
            assert!(p.parse(&mut buf).unwrap().is_some());
        }
        let before = allocs();
        let mut msgs = 0;
        while let Some(op) = p.parse(&mut buf).unwrap() {
            if matches!(op, LeafOp::Msg { .. }) {
                msgs += 1;
            }
            drop(op);
        }
        let after = allocs();
        assert!(msgs >= n - 10, "parsed {msgs} messages");
        assert_eq!(
            after - before,
            0,
            "allocations while parsing {msgs} messages (route: {route})"
        );
    }
}
