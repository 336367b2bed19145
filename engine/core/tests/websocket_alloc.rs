//! The WebSocket session allocates nothing per message once warm: client frames decode
//! (unmasked into the parser's buffer) and server batches encode into reused buffers.

mod alloc_counter;

use alloc_counter::{allocations, CountingAllocator};
use bytes::BytesMut;
use tachyon_core::tls::{Taken, TlsSession};
use tachyon_core::websocket::WsSession;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// A masked client frame carrying `payload`.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![0x82];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

#[test]
fn steady_state_frames_allocate_nothing() {
    let mut s = WsSession::new(None, true, false, false, 1 << 20);
    let mut wire = Vec::new();
    for _ in 0..100 {
        wire.extend(client_frame(
            b"PUB telemetry.dev1.temp 16\r\n0123456789abcdef\r\n",
        ));
    }
    let batch: Vec<u8> = b"MSG telemetry.dev1.temp 1 16\r\n0123456789abcdef\r\n".repeat(100);
    let mut plain = BytesMut::with_capacity(64 * 1024);
    let mut out = Vec::with_capacity(64 * 1024);
    let round = |s: &mut WsSession, plain: &mut BytesMut, out: &mut Vec<u8>| {
        // Split where a reader would: in the middle of frames.
        for chunk in wire.chunks(1000) {
            match s.feed(chunk, plain) {
                Ok(Taken::Bytes(_)) => {}
                other => panic!("{:?}", other.is_ok()),
            }
        }
        let n = plain.len();
        plain.clear();
        s.seal(&batch, out).expect("seal");
        (n, out.len())
    };
    round(&mut s, &mut plain, &mut out);
    let before = allocations();
    let mut decoded = 0;
    let mut encoded = 0;
    for _ in 0..1000 {
        let (n, m) = round(&mut s, &mut plain, &mut out);
        decoded += n;
        encoded += m;
    }
    let allocated = allocations() - before;
    assert_eq!(decoded, 1000 * 100 * 46);
    assert_eq!(encoded, 1000 * (batch.len() + 4));
    assert_eq!(
        allocated, 0,
        "{allocated} allocations for 100 000 frames each way"
    );
}
