//! The publish path allocates nothing per message: parse a PUB out of the read buffer, match the
//! sublist, encode MSG into the subscriber's outbound buffer, hand it to the writer.

mod alloc_counter;

use alloc_counter::{allocations, CountingAllocator};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tachyon_core::client::ClientState;
use tachyon_core::global::{Config, Global};
use tachyon_core::piece::{put_back, Piece};
use tachyon_core::shard::rebalance::Placement;
use tachyon_core::shard::Shard;
use tachyon_protocol::{ClientOp, Limits, Parser};
use tachyon_settings::Options;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Everything one publishing connection and one subscriber need, reused across batches.
struct Rig {
    shard: Shard,
    publisher: Rc<ClientState>,
    subscriber: Rc<ClientState>,
    parser: Parser,
    rbuf: BytesMut,
    /// Where the next read starts in the repeated stream.
    at: usize,
    spare: Vec<u8>,
}

impl Rig {
    /// Feeds `batches` reads, each filling the buffer's room (at least `READ` bytes), cut from
    /// `stream` repeated (so messages are split across reads), through parser → shard
    /// → outbound buffer the way a connection does, draining the subscriber's buffer like the
    /// writer does; returns how many were published.
    fn pump(&mut self, stream: &[u8], batches: usize) -> usize {
        let mut published = 0;
        for _ in 0..batches {
            // The read takes all the room there is: no room is left after the unparsed tail.
            self.rbuf.reserve(READ);
            let mut want = self.rbuf.capacity() - self.rbuf.len();
            while want > 0 {
                let take = want.min(stream.len() - self.at);
                self.rbuf
                    .extend_from_slice(&stream[self.at..self.at + take]);
                self.at = (self.at + take) % stream.len();
                want -= take;
            }
            // Ops are routed straight from a frozen view of the read; what is left goes back.
            let mut rest = self.rbuf.split().freeze();
            loop {
                if let Some(f) = self.parser.peek_pub(&rest) {
                    let frame: &Bytes = &rest;
                    self.shard.publish(
                        &self.publisher,
                        Piece::of(frame, f.subject),
                        f.reply.map(|r| Piece::of(frame, r)),
                        f.header_len,
                        Piece::of(frame, f.body),
                    );
                    rest.advance(f.len);
                    published += 1;
                    continue;
                }
                match self.parser.parse(&mut rest) {
                    Ok(Some(ClientOp::Pub {
                        subject,
                        reply,
                        payload,
                    })) => {
                        self.shard.publish(
                            &self.publisher,
                            Piece::from(&subject),
                            reply.as_ref().map(Piece::from),
                            None,
                            Piece::from(&payload),
                        );
                        published += 1;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            put_back(&mut self.rbuf, rest);
            self.subscriber.take_out(&mut self.spare);
        }
        published
    }
}

/// Bytes per read: not a multiple of a message, so most reads end inside one.
const READ: usize = 8191;

#[test]
fn steady_state_publish_allocates_nothing() {
    let global = Arc::new(Global::new(Config::from_options(&Options::default()), 4222));
    let shard = Shard::new(0, 1, global, vec![None], Placement::off());
    let publisher = Rc::new(ClientState::new(1, None, -1, 64 << 20));
    let subscriber = Rc::new(ClientState::new(2, None, -1, 64 << 20));
    shard
        .subscribe(
            &subscriber,
            Bytes::from_static(b"telemetry.*.temp"),
            None,
            Bytes::from_static(b"1"),
        )
        .expect("subscribe");
    shard
        .subscribe(
            &subscriber,
            Bytes::from_static(b"telemetry.>"),
            None,
            Bytes::from_static(b"2"),
        )
        .expect("subscribe");
    shard
        .subscribe(
            &subscriber,
            Bytes::from_static(b"telemetry.dev1.temp"),
            Some(Bytes::from_static(b"workers")),
            Bytes::from_static(b"3"),
        )
        .expect("subscribe");

    let mut chunk = Vec::new();
    for _ in 0..200 {
        chunk.extend_from_slice(b"PUB telemetry.dev1.temp 16\r\n0123456789abcdef\r\n");
    }
    let mut rig = Rig {
        shard,
        publisher,
        subscriber,
        parser: Parser::new(Limits::default()),
        // Two reads fill it exactly: the second leaves no room after the unparsed tail.
        rbuf: BytesMut::with_capacity(64 * 1024),
        at: 0,
        spare: Vec::with_capacity(64 * 1024),
    };

    // Warm up: buffers reach their working size, the match cache fills.
    rig.pump(&chunk, 50);

    let before = allocations();
    let delivered = rig.pump(&chunk, 500);
    let allocated = allocations() - before;
    let spare = &rig.spare;
    // At least READ bytes a read.
    let whole = 500 * READ / (chunk.len() / 200);
    assert!(
        delivered >= whole,
        "{delivered} published, at least {whole} expected"
    );
    // Three subscriptions match each message; the outbound buffer really received them.
    assert!(
        spare.len() > 200 * 3 * 16,
        "subscriber got {} bytes",
        spare.len()
    );
    assert_eq!(
        allocated, 0,
        "{allocated} allocations for {delivered} messages"
    );
}
