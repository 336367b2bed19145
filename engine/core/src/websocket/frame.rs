//! WebSocket framing (RFC 6455) as nats-server speaks it to clients: the NATS byte stream
//! travels in binary (or text) frames, split anywhere; client frames are masked (unless the
//! client asked for `Nats-No-Masking`); pings are answered with pongs, a close is echoed and
//! ends the connection; control frames are at most 125 bytes and final. Server frames are
//! unmasked, one per flush, or 4 KiB fragments for browsers as nats-server sends them.
//!
//! The decoder unmasks payload bytes straight into the parser's buffer: no copy beyond that,
//! nothing allocated per frame (its state is a few integers and a 14-byte header buffer).

use bytes::BytesMut;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV23: u8 = 0x30;
const MASK: u8 = 0x80;
const OP_CONTINUATION: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;
/// Largest control frame payload (RFC 6455 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Frame size nats-server uses towards browsers, which cope better with small frames.
pub const BROWSER_FRAME: usize = 4096;
/// A frame header is at most 14 bytes (2 + 8 length + 4 mask key).
const MAX_HEADER: usize = 14;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_NO_STATUS: u16 = 1005;
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_INTERNAL: u16 = 1011;

/// What decoding found besides data: a reason to close, after the close frame
/// [`Decoder::take_control`] returns went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// The client sent a close frame (echoed).
    ByClient,
    /// A protocol error, with nats-server's text (a 1002 close frame says it).
    ProtocolError(String),
}

/// What nats-server appends to a compressed message before inflating it: the 4 bytes the
/// sender removed, and an empty final block so the inflater knows the stream ended.
const COMPRESS_TRAILER: [u8; 9] = [0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff];
/// The most an inflate step adds to the parse buffer at once.
const INFLATE_STEP: usize = 64 * 1024;
/// Outgoing batches at most this large are not compressed (nats-server's threshold).
pub const COMPRESS_THRESHOLD: usize = 64;

/// nats-server's limit on a compressed message: 8 times max_payload, at most 64 MiB.
pub fn max_compressed(max_payload: usize) -> usize {
    (max_payload.saturating_mul(8)).min(64 << 20)
}

/// A raw-deflate inflater kept by a connection.
struct Inflater(Box<miniz_oxide::inflate::stream::InflateState>);

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

/// The reading side: frames in, the NATS bytes they carry out, control answers queued.
#[derive(Debug)]
pub struct Decoder {
    /// Client frames must be masked.
    masked: bool,
    /// permessage-deflate was agreed: a message's first frame may say it is compressed.
    compress: bool,
    /// The message being read is compressed: its bytes gather in `cbuf` until its last frame.
    compressed: bool,
    cbuf: Vec<u8>,
    /// Made at the first compressed message, then reset for each.
    inflater: Option<Inflater>,
    /// Inflated messages may not be larger (max_payload).
    max_inflated: usize,
    /// Bytes of a frame header read so far (a header may be split across reads).
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Payload bytes left in the current frame (0: at a header).
    remaining: u64,
    in_frame: bool,
    opcode: u8,
    key: [u8; 4],
    key_pos: usize,
    /// Whether the last data frame was final (a new message may start).
    message_done: bool,
    /// A control frame's payload being collected.
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: usize,
    /// Frames to send back (pongs, the close echo), already encoded.
    replies: Vec<u8>,
    closing: Option<Closing>,
}

impl Decoder {
    pub fn new(masked: bool) -> Decoder {
        Decoder::with_compression(masked, false, usize::MAX)
    }

    /// With permessage-deflate agreed, and messages inflating to at most `max_payload`.
    pub fn with_compression(masked: bool, compress: bool, max_payload: usize) -> Decoder {
        Decoder {
            masked,
            compress,
            compressed: false,
            cbuf: Vec::new(),
            inflater: None,
            max_inflated: max_payload,
            header: [0; MAX_HEADER],
            header_len: 0,
            remaining: 0,
            in_frame: false,
            opcode: 0,
            key: [0; 4],
            key_pos: 0,
            message_done: true,
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            replies: Vec::new(),
            closing: None,
        }
    }

    /// Why the connection ends, once it does: nothing after it is decoded.
    pub fn closing(&self) -> Option<&Closing> {
        self.closing.as_ref()
    }

    /// Whether control frames (pong, close) wait to be sent.
    pub fn has_replies(&self) -> bool {
        !self.replies.is_empty()
    }

    /// Queues an encoded control frame (the server's own close).
    pub fn queue_reply(&mut self, frame: &[u8]) {
        self.replies.extend_from_slice(frame);
    }

    /// Moves the queued control frames into `out`.
    pub fn take_replies(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.replies);
    }

    /// Decodes `input`, appending the data it carries to `out`. Returns the data bytes added.
    pub fn feed(&mut self, mut input: &[u8], out: &mut BytesMut) -> usize {
        let start = out.len();
        while !input.is_empty() && self.closing.is_none() {
            if !self.in_frame {
                let used = self.read_header(input);
                input = &input[used..];
                continue;
            }
            let n = (self.remaining.min(input.len() as u64)) as usize;
            let (chunk, rest) = input.split_at(n);
            input = rest;
            self.remaining -= n as u64;
            if is_control(self.opcode) {
                let at = self.control_len;
                self.control[at..at + n].copy_from_slice(chunk);
                self.unmask(at, at + n, true);
                self.control_len += n;
            } else if self.compressed {
                if self.cbuf.len() + n > max_compressed(self.max_inflated) {
                    self.protocol_error("maximum payload exceeded".into());
                    break;
                }
                if self.masked {
                    let cbuf = &mut self.cbuf;
                    self.key_pos =
                        unmask_into(chunk, self.key, self.key_pos, |b| cbuf.extend_from_slice(b));
                } else {
                    self.cbuf.extend_from_slice(chunk);
                }
            } else if self.masked {
                // The one pass over each byte: unmasked as it moves into the parse buffer.
                self.key_pos =
                    unmask_into(chunk, self.key, self.key_pos, |b| out.extend_from_slice(b));
            } else {
                out.extend_from_slice(chunk);
            }
            if self.remaining == 0 {
                self.end_frame();
                if self.compressed && self.message_done && !is_control(self.opcode) {
                    self.inflate(out);
                }
            }
        }
        out.len() - start
    }

    /// The last frame of a compressed message arrived: inflate it into `out`, with the
    /// connection's one inflater (reset per message: no context takeover), straight into the
    /// parse buffer.
    fn inflate(&mut self, out: &mut BytesMut) {
        use miniz_oxide::inflate::stream::{inflate, InflateState};
        use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};
        self.compressed = false;
        self.cbuf.extend_from_slice(&COMPRESS_TRAILER);
        let state = &mut self
            .inflater
            .get_or_insert_with(|| Inflater(InflateState::new_boxed(DataFormat::Raw)))
            .0;
        state.reset(DataFormat::Raw);
        let start = out.len();
        let mut input = &self.cbuf[..];
        // Room for the first step: NATS text deflates about tenfold.
        let mut step = (input.len() * 8).clamp(1024, INFLATE_STEP);
        let outcome = loop {
            let produced = out.len() - start;
            if produced > self.max_inflated {
                break Err("maximum payload exceeded");
            }
            let room = step.min(self.max_inflated + 1 - produced);
            let at = out.len();
            out.resize(at + room, 0);
            let r = inflate(state, input, &mut out[at..], MZFlush::None);
            out.truncate(at + r.bytes_written);
            input = input.get(r.bytes_consumed..).unwrap_or_default();
            step = (step * 2).min(INFLATE_STEP);
            match r.status {
                Ok(MZStatus::StreamEnd) => break Ok(()),
                Ok(_) if r.bytes_consumed > 0 || r.bytes_written > 0 => {}
                // Output full: the next round has room (or the size check ends it).
                Err(MZError::Buf) if r.bytes_written == room => {}
                _ => break Err("invalid compressed data"),
            }
        };
        self.cbuf.clear();
        match outcome {
            Ok(()) if out.len() - start <= self.max_inflated => {}
            Ok(()) => self.protocol_error("maximum payload exceeded".into()),
            Err(e) => {
                out.truncate(start);
                self.protocol_error(e.into());
            }
        }
    }

    fn unmask(&mut self, from: usize, to: usize, control: bool) {
        if !self.masked {
            return;
        }
        debug_assert!(control);
        self.key_pos = unmask(&mut self.control[from..to], self.key, self.key_pos);
    }

    /// Takes header bytes from `input`; returns how many it used. Starts the frame once the
    /// whole header is there.
    fn read_header(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        // Bytes needed: 2, then the extended length and the key.
        loop {
            let need = self.header_need();
            if self.header_len >= need {
                break;
            }
            if used == input.len() {
                return used;
            }
            let take = (need - self.header_len).min(input.len() - used);
            self.header[self.header_len..self.header_len + take]
                .copy_from_slice(&input[used..used + take]);
            self.header_len += take;
            used += take;
            if self.header_len == 2 {
                if let Err(e) = self.check_first_two() {
                    self.protocol_error(e);
                    return input.len();
                }
            }
        }
        self.start_frame();
        used
    }

    /// Header length given what was read: 2 until the second byte says more.
    fn header_need(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let len7 = self.header[1] & 0x7f;
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if self.masked { 4 } else { 0 }
    }

    fn check_first_two(&mut self) -> Result<(), String> {
        let (b0, b1) = (self.header[0], self.header[1]);
        let op = b0 & 0x0f;
        let fin = b0 & FIN != 0;
        if b0 & RSV23 != 0 {
            return Err("RSV2 and RSV3 must be clear".into());
        }
        if b0 & RSV1 != 0 && !is_control(op) && !self.compress {
            return Err("compressed frame received without negotiated permessage-deflate".into());
        }
        if self.masked && b1 & MASK == 0 {
            return Err("mask bit missing".into());
        }
        let len7 = (b1 & 0x7f) as usize;
        match op {
            OP_PING | OP_PONG | OP_CLOSE => {
                if len7 > MAX_CONTROL_PAYLOAD {
                    return Err(format!(
                        "control frame length bigger than maximum allowed of {MAX_CONTROL_PAYLOAD} bytes"
                    ));
                }
                if !fin {
                    return Err("control frame does not have final bit set".into());
                }
                if b0 & RSV1 != 0 {
                    return Err("control frame must not be compressed".into());
                }
            }
            OP_TEXT | OP_BINARY => {
                if !self.message_done {
                    return Err(
                        "new message started before final frame for previous message was received"
                            .into(),
                    );
                }
                self.message_done = fin;
                self.compressed = b0 & RSV1 != 0;
            }
            OP_CONTINUATION => {
                // Only a message's first frame says it is compressed.
                if self.message_done || b0 & RSV1 != 0 {
                    return Err("invalid continuation frame".into());
                }
                self.message_done = fin;
            }
            other => return Err(format!("unknown opcode {other}")),
        }
        Ok(())
    }

    fn start_frame(&mut self) {
        let h = &self.header;
        self.opcode = h[0] & 0x0f;
        let len7 = h[1] & 0x7f;
        let (len, at) = match len7 {
            126 => (u16::from_be_bytes([h[2], h[3]]) as u64, 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (n as u64, 2),
        };
        if len & (1 << 63) != 0 {
            self.protocol_error("invalid 64-bit payload length".into());
            return;
        }
        if self.masked {
            self.key.copy_from_slice(&h[at..at + 4]);
        }
        self.key_pos = 0;
        self.header_len = 0;
        self.remaining = len;
        self.in_frame = true;
        self.control_len = 0;
        if len == 0 {
            self.end_frame();
        }
    }

    fn end_frame(&mut self) {
        self.in_frame = false;
        match self.opcode {
            OP_PING => {
                let body = self.control;
                let n = self.control_len;
                encode_frame(&mut self.replies, OP_PONG, true, &body[..n]);
            }
            OP_CLOSE => {
                // As nats-server: the status and text are echoed (none when none came), a bad
                // status or a 1-byte payload is a protocol error, a text that is not UTF-8 is
                // answered with 1007.
                let n = self.control_len;
                if n == 1 {
                    self.protocol_error("close frame payload cannot be 1 byte".into());
                    return;
                }
                if n == 0 {
                    encode_frame(&mut self.replies, OP_CLOSE, true, &[]);
                } else {
                    let status = u16::from_be_bytes([self.control[0], self.control[1]]);
                    if !valid_close_status(status) {
                        self.protocol_error(format!("invalid close status code {status}"));
                        return;
                    }
                    let body = self.control;
                    match std::str::from_utf8(&body[2..n]) {
                        Ok(text) => close_frame(&mut self.replies, status, text),
                        Err(_) => close_frame(
                            &mut self.replies,
                            CLOSE_INVALID_PAYLOAD,
                            "invalid utf8 body in close frame",
                        ),
                    }
                }
                self.closing = Some(Closing::ByClient);
            }
            _ => {}
        }
    }

    /// A 1002 close frame with nats-server's text, then the end. (nats-server queues the same
    /// frame but races it with closing the socket: sometimes it is not written.)
    fn protocol_error(&mut self, text: String) {
        close_frame(&mut self.replies, CLOSE_PROTOCOL_ERROR, &text);
        self.closing = Some(Closing::ProtocolError(text));
        self.in_frame = false;
    }
}

/// XORs `buf` with the mask `key` from position `pos`; returns the position after it.
fn unmask(buf: &mut [u8], key: [u8; 4], pos: usize) -> usize {
    let mut p = pos;
    for b in buf {
        *b ^= key[p & 3];
        p += 1;
    }
    p & 3
}

/// Unmasks `src` with `key` from position `pos`, handing the result to `put` in blocks;
/// returns the position after it. Words of eight bytes are unmasked at once into a block on
/// the stack, which `put` appends (the per-byte loop this replaced was a fifth of a
/// WebSocket publisher's shard time at 1 KiB).
fn unmask_into(src: &[u8], key: [u8; 4], pos: usize, mut put: impl FnMut(&[u8])) -> usize {
    // The key rotated so that each word starts at `pos`'s lane.
    let k = [
        key[pos & 3],
        key[(pos + 1) & 3],
        key[(pos + 2) & 3],
        key[(pos + 3) & 3],
    ];
    let k8 = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut block = [0u8; UNMASK_BLOCK];
    for chunk in src.chunks(UNMASK_BLOCK) {
        let dst = &mut block[..chunk.len()];
        let mut d = dst.chunks_exact_mut(8);
        let mut w = chunk.chunks_exact(8);
        for (o, i) in (&mut d).zip(&mut w) {
            let mut a = [0u8; 8];
            a.copy_from_slice(i);
            o.copy_from_slice(&(u64::from_ne_bytes(a) ^ k8).to_ne_bytes());
        }
        // UNMASK_BLOCK is a multiple of 4: the lanes restart at `k[0]` in every block's tail.
        for (j, (o, i)) in d.into_remainder().iter_mut().zip(w.remainder()).enumerate() {
            *o = i ^ k[j & 3];
        }
        put(dst);
    }
    (pos + src.len()) & 3
}

const UNMASK_BLOCK: usize = 512;
const _: () = assert!(
    UNMASK_BLOCK.is_multiple_of(8),
    "unmask blocks hold whole words"
);

/// nats-server's `wsIsValidCloseStatus`.
fn valid_close_status(code: u16) -> bool {
    !matches!(code, CLOSE_NO_STATUS | 1004 | 1006 | 1015)
        && (1000..5000).contains(&code)
        && !(1016..=2999).contains(&code)
}

fn is_control(op: u8) -> bool {
    op & 0x08 != 0
}

/// Appends one unmasked frame.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, fin: bool, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    put_header(out, if fin { FIN } else { 0 } | opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends the header of one final, uncompressed binary frame of `len` bytes; the bytes
/// follow it on the wire without being copied here.
pub fn data_header(out: &mut Vec<u8>, len: usize) {
    put_header(out, FIN | OP_BINARY, len);
}

fn put_header(out: &mut Vec<u8>, first: u8, n: usize) {
    out.push(first);
    if n <= 125 {
        out.push(n as u8);
    } else if n <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
}

/// Appends `data` as one binary message: one frame, or `BROWSER_FRAME` fragments.
pub fn encode_data(out: &mut Vec<u8>, data: &[u8], fragment: bool) {
    encode_message(out, data, fragment, false);
}

/// As [`encode_data`]; `compressed` marks the first frame (RSV1) as carrying deflated bytes.
fn encode_message(out: &mut Vec<u8>, data: &[u8], fragment: bool, compressed: bool) {
    let rsv1 = if compressed { RSV1 } else { 0 };
    if !fragment || data.len() <= BROWSER_FRAME {
        encode_frame(out, OP_BINARY | rsv1, true, data);
        return;
    }
    let mut chunks = data.chunks(BROWSER_FRAME).peekable();
    let mut op = OP_BINARY | rsv1;
    while let Some(c) = chunks.next() {
        encode_frame(out, op, chunks.peek().is_none(), c);
        op = OP_CONTINUATION;
    }
}

/// Deflates outgoing messages (raw deflate, fastest level, a fresh context per message as
/// `server_no_context_takeover` promises).
pub struct Compressor {
    deflate: Box<miniz_oxide::deflate::core::CompressorOxide>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compressor")
    }
}

impl Default for Compressor {
    fn default() -> Self {
        use miniz_oxide::deflate::core::{create_comp_flags_from_zip_params, CompressorOxide};
        // Level 1 (Go's BestSpeed, as nats-server), negative window bits: raw deflate.
        let flags = create_comp_flags_from_zip_params(1, -15, 0);
        Compressor {
            deflate: Box::new(CompressorOxide::new(flags)),
            scratch: Vec::new(),
        }
    }
}

impl Compressor {
    /// Appends `data` as one message, compressed when larger than [`COMPRESS_THRESHOLD`].
    pub fn encode(&mut self, out: &mut Vec<u8>, data: &[u8], fragment: bool) {
        use miniz_oxide::deflate::core::{compress_to_output, TDEFLFlush, TDEFLStatus};
        if data.len() <= COMPRESS_THRESHOLD {
            encode_message(out, data, fragment, false);
            return;
        }
        self.deflate.reset();
        self.scratch.clear();
        let scratch = &mut self.scratch;
        let (status, _) = compress_to_output(&mut self.deflate, data, TDEFLFlush::Sync, |c| {
            scratch.extend_from_slice(c);
            true
        });
        // A sync flush ends with an empty stored block, 00 00 ff ff, which the receiver adds
        // back (RFC 7692 7.2.1).
        if status != TDEFLStatus::Okay || !self.scratch.ends_with(&[0, 0, 0xff, 0xff]) {
            encode_message(out, data, fragment, false);
            return;
        }
        let n = self.scratch.len() - 4;
        encode_message(out, &self.scratch[..n], fragment, true);
    }
}

/// Appends a close frame with `status` and `text`; a text too long for a control frame is cut
/// and ends with "..." (nats-server's `wsCreateCloseMessage`).
pub fn close_frame(out: &mut Vec<u8>, status: u16, text: &str) {
    let mut body = [0u8; MAX_CONTROL_PAYLOAD];
    body[..2].copy_from_slice(&status.to_be_bytes());
    let n = if text.len() > MAX_CONTROL_PAYLOAD - 2 {
        let cut = MAX_CONTROL_PAYLOAD - 5;
        body[2..2 + cut].copy_from_slice(&text.as_bytes()[..cut]);
        body[2 + cut..2 + cut + 3].copy_from_slice(b"...");
        cut + 3
    } else {
        body[2..2 + text.len()].copy_from_slice(text.as_bytes());
        text.len()
    };
    encode_frame(out, OP_CLOSE, true, &body[..2 + n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `key`.
    fn client_frame(op: u8, fin: bool, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut f = Vec::new();
        f.push(if fin { FIN } else { 0 } | op);
        let n = payload.len();
        if n <= 125 {
            f.push(MASK | n as u8);
        } else if n <= 65535 {
            f.push(MASK | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            f.push(MASK | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    fn decode_all(d: &mut Decoder, bytes: &[u8], split: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        for c in bytes.chunks(split.max(1)) {
            d.feed(c, &mut out);
        }
        out.to_vec()
    }

    #[test]
    fn data_in_any_split_and_fragments() {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = client_frame(OP_BINARY, true, b"PUB a 2\r\nhi\r\n", [1, 2, 3, 4]);
        wire.extend(client_frame(OP_TEXT, false, &big[..300], [9, 8, 7, 6]));
        wire.extend(client_frame(OP_PING, true, b"p!", [5, 5, 5, 5]));
        wire.extend(client_frame(
            OP_CONTINUATION,
            true,
            &big[300..],
            [0, 1, 0, 1],
        ));
        let mut want = b"PUB a 2\r\nhi\r\n".to_vec();
        want.extend_from_slice(&big);
        for split in [1, 2, 3, 7, 13, 100, 4096, wire.len()] {
            let mut d = Decoder::new(true);
            assert_eq!(decode_all(&mut d, &wire, split), want, "split {split}");
            assert!(d.closing().is_none());
            let mut replies = Vec::new();
            d.take_replies(&mut replies);
            assert_eq!(replies, [0x8a, 2, b'p', b'!'], "pong echoes the ping");
        }
    }

    #[test]
    fn word_unmasking_matches_byte_unmasking() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let src: Vec<u8> = (0..1300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in (0..40).chain([511, 512, 513, 1024, 1299]) {
            for pos in 0..4 {
                let mut want = src[..len].to_vec();
                let end = unmask(&mut want, key, pos);
                let mut got = Vec::new();
                assert_eq!(
                    unmask_into(&src[..len], key, pos, |b| got.extend_from_slice(b)),
                    end
                );
                assert_eq!(got, want, "len {len} pos {pos}");
            }
        }
    }

    #[test]
    fn unmasked_frames_when_no_masking_was_agreed() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, OP_BINARY, true, b"PING\r\n");
        let mut d = Decoder::new(false);
        assert_eq!(decode_all(&mut d, &wire, 3), b"PING\r\n");
        // The same frame to a server expecting masks is a protocol error.
        let mut d = Decoder::new(true);
        decode_all(&mut d, &wire, 3);
        assert_eq!(
            d.closing(),
            Some(&Closing::ProtocolError("mask bit missing".into()))
        );
    }

    #[test]
    fn close_is_echoed_and_ends_decoding() {
        let mut wire = client_frame(OP_BINARY, true, b"A", [1, 1, 1, 1]);
        let mut body = 1001u16.to_be_bytes().to_vec();
        body.extend_from_slice(b"bye");
        wire.extend(client_frame(OP_CLOSE, true, &body, [2, 2, 2, 2]));
        wire.extend(client_frame(OP_BINARY, true, b"B", [1, 1, 1, 1]));
        let mut d = Decoder::new(true);
        assert_eq!(decode_all(&mut d, &wire, 5), b"A");
        assert_eq!(d.closing(), Some(&Closing::ByClient));
        let mut replies = Vec::new();
        d.take_replies(&mut replies);
        assert_eq!(replies, [0x88, 5, 0x03, 0xe9, b'b', b'y', b'e']);
        // An empty close is answered with an empty one.
        let mut d = Decoder::new(true);
        decode_all(&mut d, &client_frame(OP_CLOSE, true, b"", [0; 4]), 1);
        let mut replies = Vec::new();
        d.take_replies(&mut replies);
        assert_eq!(replies, [0x88, 0]);
        // A text that is not UTF-8 gets 1007.
        let mut d = Decoder::new(true);
        decode_all(
            &mut d,
            &client_frame(OP_CLOSE, true, &[0x03, 0xe8, 0xff], [0; 4]),
            1,
        );
        let mut replies = Vec::new();
        d.take_replies(&mut replies);
        assert_eq!(&replies[..4], &[0x88, 34, 0x03, 0xef]);
    }

    #[test]
    fn protocol_errors_have_nats_servers_texts() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                vec![0x82 | RSV23, 0x80, 0, 0, 0, 0],
                "RSV2 and RSV3 must be clear",
            ),
            (
                vec![0x82 | RSV1, 0x80, 0, 0, 0, 0],
                "compressed frame received without negotiated permessage-deflate",
            ),
            (
                client_frame(OP_PING, true, &[0; 126], [0; 4]),
                "control frame length bigger than maximum allowed of 125 bytes",
            ),
            (
                client_frame(OP_PING, false, b"x", [0; 4]),
                "control frame does not have final bit set",
            ),
            (
                client_frame(OP_CONTINUATION, true, b"x", [0; 4]),
                "invalid continuation frame",
            ),
            (client_frame(3, true, b"x", [0; 4]), "unknown opcode 3"),
            (
                client_frame(OP_CLOSE, true, b"x", [0; 4]),
                "close frame payload cannot be 1 byte",
            ),
            (
                client_frame(OP_CLOSE, true, &1005u16.to_be_bytes(), [0; 4]),
                "invalid close status code 1005",
            ),
            (
                {
                    let mut w = client_frame(OP_BINARY, false, b"x", [0; 4]);
                    w.extend(client_frame(OP_BINARY, true, b"y", [0; 4]));
                    w
                },
                "new message started before final frame for previous message was received",
            ),
            (
                vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
                "invalid 64-bit payload length",
            ),
        ];
        for (wire, text) in cases {
            let mut d = Decoder::new(true);
            decode_all(&mut d, &wire, 1);
            assert_eq!(
                d.closing(),
                Some(&Closing::ProtocolError(text.into())),
                "{text}"
            );
            let mut replies = Vec::new();
            d.take_replies(&mut replies);
            assert_eq!(&replies[..4], &[0x88, (2 + text.len()) as u8, 0x03, 0xea]);
        }
        // A long text is cut with "...".
        let mut out = Vec::new();
        close_frame(&mut out, 1002, &"x".repeat(200));
        assert_eq!(out.len(), 2 + 125);
        assert!(out.ends_with(b"x..."));
    }

    fn decode_in(data: &[u8], masked: bool, step: usize) -> (Vec<u8>, Vec<u8>, bool) {
        let mut d = Decoder::new(masked);
        let mut out = BytesMut::new();
        for chunk in data.chunks(step.max(1)) {
            d.feed(chunk, &mut out);
        }
        let mut replies = Vec::new();
        d.take_replies(&mut replies);
        (out.to_vec(), replies, d.closing().is_some())
    }

    proptest::proptest! {
        /// Whatever the bytes and however they are split, the decoder says the same (the
        /// property the `ws_frames` fuzz target checks too).
        #[test]
        fn any_split_decodes_the_same(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            masked: bool,
            step in 1usize..40,
        ) {
            let whole = decode_in(&data, masked, data.len());
            proptest::prop_assert!(whole.0.len() <= data.len());
            proptest::prop_assert_eq!(decode_in(&data, masked, step), whole);
        }

        /// Valid frames of any size and split decode to their payloads.
        #[test]
        fn valid_frames_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 1..6),
            key: [u8; 4],
            step in 1usize..64,
        ) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for p in &payloads {
                wire.extend(client_frame(OP_BINARY, true, p, key));
                want.extend_from_slice(p);
            }
            let (out, replies, closing) = decode_in(&wire, true, step);
            proptest::prop_assert_eq!(out, want);
            proptest::prop_assert!(replies.is_empty() && !closing);
        }
    }

    #[test]
    fn compressed_messages_round_trip_and_respect_limits() {
        let text: Vec<u8> = b"PUB greetings 11\r\nhello world\r\n".repeat(200);
        let mut c = Compressor::default();
        let mut wire = Vec::new();
        c.encode(&mut wire, &text, false);
        assert!(
            wire.len() < text.len() / 4,
            "compressed: {} bytes",
            wire.len()
        );
        assert_eq!(wire[0], 0x80 | RSV1 | OP_BINARY);
        // As a client would send it: masked, split over a continuation frame.
        let at = match wire[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        let payload = &wire[at..];
        let (a, b) = payload.split_at(payload.len() / 2);
        let mut client = client_frame(OP_BINARY, false, a, [3, 1, 4, 1]);
        client[0] |= RSV1;
        client.extend(client_frame(OP_CONTINUATION, true, b, [5, 9, 2, 6]));
        let mut d = Decoder::with_compression(true, true, 1 << 20);
        let got = decode_all(&mut d, &client, 7);
        assert!(got == text, "{} bytes back, {:?}", got.len(), d.closing());
        assert!(d.closing().is_none());
        // Inflating past max_payload ends the connection.
        let mut d = Decoder::with_compression(true, true, 100);
        let mut small = client_frame(OP_BINARY, true, payload, [0; 4]);
        small[0] |= RSV1;
        decode_all(&mut d, &small, 1000);
        assert_eq!(
            d.closing(),
            Some(&Closing::ProtocolError("maximum payload exceeded".into()))
        );
        // One inflater serves message after message (reset each time), messages larger than
        // one inflate step, and a message of exactly the limit.
        let big: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("PUB k.{i} 2\r\nhi\r\n").into_bytes())
            .collect();
        let mut d = Decoder::with_compression(true, true, big.len());
        for msg in [&text[..], &big[..], &text[..]] {
            let mut w = Vec::new();
            c.encode(&mut w, msg, false);
            let at = match w[1] {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            let mut f = client_frame(OP_BINARY, true, &w[at..], [7, 7, 1, 2]);
            f[0] |= RSV1;
            let got = decode_all(&mut d, &f, 4096);
            assert!(got == msg, "{} of {} bytes back", got.len(), msg.len());
        }
        assert!(d.closing().is_none(), "{:?}", d.closing());
        // Bytes that are not deflate end the connection.
        let mut d = Decoder::with_compression(true, true, 1 << 20);
        let mut junk = client_frame(OP_BINARY, true, &[0xff; 40], [1, 2, 3, 4]);
        junk[0] |= RSV1;
        assert!(decode_all(&mut d, &junk, 100).is_empty());
        assert_eq!(
            d.closing(),
            Some(&Closing::ProtocolError("invalid compressed data".into()))
        );
        // Small batches go uncompressed.
        let mut out = Vec::new();
        c.encode(&mut out, b"PONG\r\n", false);
        assert_eq!(out, [0x82, 6, b'P', b'O', b'N', b'G', b'\r', b'\n']);
    }

    #[test]
    fn server_frames_and_browser_fragments() {
        let mut out = Vec::new();
        encode_data(&mut out, &[7; 10_000], true);
        // 4096 + 4096 + 1808: binary (not final), continuation, final continuation.
        assert_eq!(&out[..2], &[0x02, 126]);
        let second = 4 + 4096;
        assert_eq!(&out[second..second + 2], &[0x00, 126]);
        let third = second + 4 + 4096;
        assert_eq!(&out[third..third + 4], &[0x80, 126, 0x07, 0x10]);
        let mut one = Vec::new();
        encode_data(&mut one, &[7; 10_000], false);
        assert_eq!(&one[..4], &[0x82, 126, 0x27, 0x10]);
        assert_eq!(one.len(), 10_004);
    }
}
