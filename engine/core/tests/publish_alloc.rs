//! The publish path allocates nothing per message: parse a PUB out of the read buffer, match the
//! sublist, encode MSG into the subscriber's outbound buffer, hand it to the writer.

mod alloc_counter;

use alloc_counter::{allocations, CountingAllocator};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tachyon_core::client::ClientState;
use tachyon_core::global::{Config, Global};
use tachyon_core::piece::Piece;
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
    spare: Vec<u8>,
}

impl Rig {
    /// Feeds `batches` read-sized chunks of PUBs through parser → shard → outbound buffer,
    /// draining the subscriber's buffer like the writer does; returns how many were published.
    fn pump(&mut self, chunk: &[u8], batches: usize) -> usize {
        let mut published = 0;
        for _ in 0..batches {
            self.rbuf.extend_from_slice(chunk);
            // As a connection reads: ops are routed straight from a frozen view of the read.
            let mut rest = self.rbuf.split().freeze();
            while let Some(f) = self.parser.peek_pub(&rest) {
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
            }
            while let Ok(Some(op)) = self.parser.parse(&mut rest) {
                if let ClientOp::Pub {
                    subject,
                    reply,
                    payload,
                } = op
                {
                    self.shard.publish(
                        &self.publisher,
                        Piece::from(&subject),
                        reply.as_ref().map(Piece::from),
                        None,
                        Piece::from(&payload),
                    );
                    published += 1;
                }
            }
            self.rbuf.extend_from_slice(&rest);
            self.subscriber.take_out(&mut self.spare);
        }
        published
    }
}

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
        rbuf: BytesMut::with_capacity(64 * 1024),
        spare: Vec::with_capacity(64 * 1024),
    };

    // Warm up: buffers reach their working size, the match cache fills.
    rig.pump(&chunk, 50);

    let before = allocations();
    let delivered = rig.pump(&chunk, 500);
    let allocated = allocations() - before;
    let spare = &rig.spare;
    assert_eq!(delivered, 100_000);
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
