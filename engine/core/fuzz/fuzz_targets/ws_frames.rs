//! The WebSocket frame decoder on arbitrary bytes: it never panics, never yields more data
//! than it was given, and decodes the same whatever the split (all at once, byte by byte, or
//! at the points the input's first byte picks).
//!
//! Run: `cd engine/core/fuzz && cargo +nightly fuzz run ws_frames`
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tachyon_core::websocket::frame::Decoder;

fn decode(data: &[u8], masked: bool, step: usize) -> (Vec<u8>, Vec<u8>, bool) {
    let mut d = Decoder::new(masked);
    let mut out = BytesMut::new();
    for chunk in data.chunks(step.max(1)) {
        d.feed(chunk, &mut out);
    }
    let mut replies = Vec::new();
    d.take_replies(&mut replies);
    (out.to_vec(), replies, d.closing().is_some())
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let masked = first & 1 == 1;
    let whole = decode(rest, masked, rest.len());
    assert!(whole.0.len() <= rest.len());
    assert_eq!(decode(rest, masked, 1), whole);
    assert_eq!(decode(rest, masked, (first as usize >> 1) + 1), whole);
});
