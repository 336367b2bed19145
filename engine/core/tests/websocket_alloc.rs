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

/// Runs `rounds` rounds after a warm-up one: `wire` fed in `chunk`-byte reads, then `batch`
/// sealed. Returns the NATS bytes decoded, the bytes sealed, and the allocations counted.
fn rounds(
    s: &mut WsSession,
    wire: &[u8],
    chunk: usize,
    batch: &[u8],
    rounds: usize,
) -> (usize, usize, usize) {
    let mut plain = BytesMut::with_capacity(256 * 1024);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut round = |s: &mut WsSession| {
        // Split where a reader would: in the middle of frames.
        for piece in wire.chunks(chunk) {
            match s.feed(piece, &mut plain) {
                Ok(Taken::Bytes(_)) => {}
                other => panic!("{:?}", other.is_ok()),
            }
        }
        let n = plain.len();
        plain.clear();
        s.seal(batch, &mut out).expect("seal");
        (n, out.len())
    };
    round(s);
    let before = allocations();
    let (mut decoded, mut sealed) = (0, 0);
    for _ in 0..rounds {
        let (n, m) = round(s);
        decoded += n;
        sealed += m;
    }
    (decoded, sealed, allocations() - before)
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
    let (decoded, encoded, allocated) = rounds(&mut s, &wire, 1000, &batch, 1000);
    assert_eq!(decoded, 1000 * 100 * 46);
    assert_eq!(encoded, 1000 * (batch.len() + 4));
    assert_eq!(
        allocated, 0,
        "{allocated} allocations for 100 000 frames each way"
    );
}

/// With permessage-deflate: compressed client messages inflate through the connection's one
/// inflater straight into the parse buffer, and batches deflate into reused buffers.
#[test]
fn compressed_frames_allocate_nothing() {
    use tachyon_core::websocket::frame::Compressor;
    let mut s = WsSession::new(None, true, false, true, 1 << 20);
    let text = b"PUB telemetry.dev1.temp 16\r\n0123456789abcdef\r\n".repeat(100);
    let mut deflated = Vec::new();
    Compressor::default().encode(&mut deflated, &text, false);
    let at = match deflated[1] {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let mut frame = client_frame(&deflated[at..]);
    frame[0] |= 0x40;
    let wire = frame.repeat(10);
    let batch: Vec<u8> = b"MSG telemetry.dev1.temp 1 16\r\n0123456789abcdef\r\n".repeat(100);
    let (decoded, deflated_out, allocated) = rounds(&mut s, &wire, 100, &batch, 200);
    assert_eq!(decoded, 200 * 10 * text.len());
    assert!(
        deflated_out < 200 * batch.len() / 4,
        "batches were deflated"
    );
    assert_eq!(
        allocated, 0,
        "{allocated} allocations for 2 000 compressed messages in, 200 out"
    );
}

/// Uncompressed server frames go out as a header written before the batch (one `sendmsg`):
/// the batch is not copied, and making the header allocates nothing.
#[test]
fn frame_headers_go_before_the_batch_without_a_copy() {
    let mut s = WsSession::new(None, true, false, false, 1 << 20);
    let batch = vec![b'x'; 70_000];
    let mut head = Vec::with_capacity(64);
    assert!(s.prefix(&batch, &mut head));
    assert_eq!(head, [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    let before = allocations();
    for n in [10usize, 300, 70_000] {
        assert!(s.prefix(&batch[..n], &mut head));
    }
    assert_eq!(allocations() - before, 0);
    // Browser clients get 4 KiB fragments, and compressed sessions deflate: both go through
    // seal, which builds the frames.
    let mut browser = WsSession::new(None, true, true, false, 1 << 20);
    assert!(!browser.prefix(&batch, &mut head));
    assert!(browser.prefix(&batch[..4096], &mut head));
    let mut deflating = WsSession::new(None, true, false, true, 1 << 20);
    assert!(!deflating.prefix(&batch, &mut head));
}
