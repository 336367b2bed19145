//! The client side of NATS over WebSocket, for the `ws-*` workloads: the HTTP upgrade, masked
//! binary frames out (deflated when permessage-deflate was agreed), server frames in. Written
//! here rather than taken from the engine so the harness checks the server's framing with an
//! independent implementation, as a browser or nats.js would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

use crate::error::{BenchError, Result};

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const OP_CONTINUATION: u8 = 0;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;
/// Messages at most this large go out uncompressed (nats-server's own threshold).
const COMPRESS_THRESHOLD: usize = 64;
/// The empty stored block a sync flush ends with; RFC 7692 has the sender drop it and the
/// receiver add it back.
const SYNC_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
const INFLATE_CHUNK: usize = 256 * 1024;

/// Whether a WebSocket connection asks for permessage-deflate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsMode {
    pub compress: bool,
}

/// A WebSocket connection's framing state.
pub struct WsCodec {
    /// Set when the server agreed to permessage-deflate.
    deflate: Option<Box<CompressorOxide>>,
    inflate: Option<Box<InflateState>>,
    /// Deflated bytes before they are framed.
    deflated: Vec<u8>,
    /// A compressed message's bytes until its last frame.
    cbuf: Vec<u8>,
    inflated: Vec<u8>,
    /// A frame header split across reads.
    header: [u8; 10],
    header_len: usize,
    /// Payload bytes left in the current frame.
    remaining: u64,
    in_frame: bool,
    opcode: u8,
    fin: bool,
    /// The message being read is compressed (its first frame had RSV1).
    compressed: bool,
    control: Vec<u8>,
    /// Control answers (pongs) to send before the next data frame.
    replies: Vec<u8>,
    mask_seed: u32,
}

/// Sends the upgrade request and reads the `101` answer. Bytes that came after the answer's
/// header (the server's first frames) are returned for the decoder.
pub fn upgrade(
    stream: &mut TcpStream,
    mode: WsMode,
    timeout: Duration,
) -> Result<(WsCodec, Vec<u8>)> {
    let host = stream.peer_addr()?;
    let mut req = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if mode.compress {
        req.push_str(
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; \
             server_no_context_takeover\r\n",
        );
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = memchr::memmem::find(&got, b"\r\n\r\n") {
            break i + 4;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(
                "waiting for the websocket upgrade".into(),
            ));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err(BenchError::Closed),
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") {
        let line = head.lines().next().unwrap_or_default().to_string();
        return Err(BenchError::Server(format!(
            "websocket upgrade refused: {line}"
        )));
    }
    let agreed = head
        .lines()
        .any(|l| l.starts_with("sec-websocket-extensions:") && l.contains("permessage-deflate"));
    if mode.compress && !agreed {
        return Err(BenchError::Config(
            "the server did not agree to permessage-deflate (is `compression: true` set?)".into(),
        ));
    }
    Ok((WsCodec::new(agreed), got.split_off(end)))
}

impl WsCodec {
    fn new(compress: bool) -> WsCodec {
        WsCodec {
            deflate: compress.then(|| {
                // Level 1 raw deflate: what nats-server itself uses, cheap for the harness.
                Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(
                    1, -15, 0,
                )))
            }),
            inflate: compress.then(|| InflateState::new_boxed(DataFormat::Raw)),
            deflated: Vec::new(),
            cbuf: Vec::new(),
            inflated: Vec::new(),
            header: [0; 10],
            header_len: 0,
            remaining: 0,
            in_frame: false,
            opcode: 0,
            fin: true,
            compressed: false,
            control: Vec::new(),
            replies: Vec::new(),
            mask_seed: 0x9e37_79b9,
        }
    }

    pub fn compressing(&self) -> bool {
        self.deflate.is_some()
    }

    /// Appends `data` to `out` as one masked binary message (and any pending control answers
    /// first).
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.append(&mut self.replies);
        if data.is_empty() {
            return;
        }
        if let Some(d) = self
            .deflate
            .as_mut()
            .filter(|_| data.len() > COMPRESS_THRESHOLD)
        {
            d.reset();
            self.deflated.clear();
            let deflated = &mut self.deflated;
            let (status, _) = compress_to_output(d, data, TDEFLFlush::Sync, |c| {
                deflated.extend_from_slice(c);
                true
            });
            if status == TDEFLStatus::Okay && self.deflated.ends_with(&SYNC_TAIL) {
                let n = self.deflated.len() - SYNC_TAIL.len();
                let key = self.next_key();
                put_frame(out, OP_BINARY | RSV1, &self.deflated[..n], key);
                return;
            }
        }
        let key = self.next_key();
        put_frame(out, OP_BINARY, data, key);
    }

    /// Whether control answers wait to be sent.
    pub fn has_replies(&self) -> bool {
        !self.replies.is_empty()
    }

    /// Decodes server frames, appending the NATS bytes they carry to `out`. A close frame
    /// or a framing error ends the connection.
    pub fn decode(&mut self, mut input: &[u8], out: &mut BytesMut) -> Result<()> {
        while !input.is_empty() {
            if !self.in_frame {
                let used = self.read_header(input, out)?;
                input = &input[used..];
                continue;
            }
            let n = self.remaining.min(input.len() as u64) as usize;
            let (chunk, rest) = input.split_at(n);
            input = rest;
            self.remaining -= n as u64;
            match self.opcode {
                OP_CLOSE | OP_PING | OP_PONG => self.control.extend_from_slice(chunk),
                _ if self.compressed => self.cbuf.extend_from_slice(chunk),
                _ => out.extend_from_slice(chunk),
            }
            if self.remaining == 0 {
                self.end_frame(out)?;
            }
        }
        Ok(())
    }

    fn read_header(&mut self, input: &[u8], out: &mut BytesMut) -> Result<usize> {
        let mut used = 0;
        loop {
            let need = if self.header_len < 2 {
                2
            } else {
                match self.header[1] & 0x7f {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                }
            };
            if self.header_len >= need {
                break;
            }
            let Some(&b) = input.get(used) else {
                return Ok(used);
            };
            self.header[self.header_len] = b;
            self.header_len += 1;
            used += 1;
        }
        let h = self.header;
        if h[1] & 0x80 != 0 {
            return Err(BenchError::Server(
                "websocket: the server masked a frame".into(),
            ));
        }
        self.remaining = match h[1] & 0x7f {
            126 => u16::from_be_bytes([h[2], h[3]]) as u64,
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => n as u64,
        };
        self.header_len = 0;
        self.opcode = h[0] & 0x0f;
        match self.opcode {
            OP_CLOSE | OP_PING | OP_PONG => self.control.clear(),
            OP_CONTINUATION => {}
            _ => self.compressed = h[0] & RSV1 != 0,
        }
        if h[0] & RSV1 != 0 && self.inflate.is_none() {
            return Err(BenchError::Server(
                "websocket: compressed frame without permessage-deflate".into(),
            ));
        }
        self.fin = h[0] & FIN != 0;
        self.in_frame = true;
        if self.remaining == 0 {
            // No payload: the frame ends with its header (an empty data frame or control).
            self.end_frame(out)?;
        }
        Ok(used)
    }

    fn end_frame(&mut self, out: &mut BytesMut) -> Result<()> {
        self.in_frame = false;
        match self.opcode {
            OP_CLOSE => {
                let status = self
                    .control
                    .get(..2)
                    .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]));
                let text = String::from_utf8_lossy(self.control.get(2..).unwrap_or_default());
                return Err(BenchError::Server(format!(
                    "websocket closed by the server: {status} {text}"
                )));
            }
            OP_PING => {
                let key = self.next_key();
                let body = std::mem::take(&mut self.control);
                put_frame(&mut self.replies, OP_PONG, &body, key);
                self.control = body;
            }
            OP_PONG => {}
            _ if self.fin && self.compressed => {
                self.compressed = false;
                self.inflate_message(out)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn inflate_message(&mut self, out: &mut BytesMut) -> Result<()> {
        let Some(state) = self.inflate.as_mut() else {
            return Ok(());
        };
        state.reset(DataFormat::Raw);
        self.cbuf.extend_from_slice(&SYNC_TAIL);
        self.inflated.resize(INFLATE_CHUNK, 0);
        let mut input = &self.cbuf[..];
        loop {
            let r = inflate(state, input, &mut self.inflated, MZFlush::Sync);
            out.extend_from_slice(self.inflated.get(..r.bytes_written).unwrap_or_default());
            input = &input[r.bytes_consumed..];
            match r.status {
                Ok(MZStatus::StreamEnd) => break,
                Ok(_) if input.is_empty() && r.bytes_written < self.inflated.len() => break,
                Ok(_) => {}
                Err(e) => {
                    return Err(BenchError::Server(format!(
                        "websocket: bad compressed message: {e:?}"
                    )))
                }
            }
        }
        self.cbuf.clear();
        Ok(())
    }

    /// A mask key per frame. Servers must unmask whatever the key; a cheap generator is enough.
    fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_seed = x;
        x.to_le_bytes()
    }
}

/// Appends one final, masked frame.
fn put_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], key: [u8; 4]) {
    let n = payload.len();
    out.reserve(n + 14);
    out.push(FIN | first);
    if n <= 125 {
        out.push(0x80 | n as u8);
    } else if n <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    let at = out.len();
    out.extend_from_slice(payload);
    mask(&mut out[at..], key);
}

/// XORs `buf` with `key`, eight bytes at a time.
fn mask(buf: &mut [u8], key: [u8; 4]) {
    let k8 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ k8).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a server sends: unmasked frames.
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_frame(&mut v, first, payload, [0; 4]);
        // put_frame masks; a server frame has the mask bit clear and no key.
        v[1] &= 0x7f;
        let hdr = v.len() - payload.len();
        v.drain(hdr - 4..hdr);
        v
    }

    #[test]
    fn masks_and_frames() {
        let mut c = WsCodec::new(false);
        let mut out = Vec::new();
        let data = b"PUB a 11\r\nhello world\r\n";
        c.encode(data, &mut out);
        assert_eq!(out[0], FIN | OP_BINARY);
        assert_eq!(out[1], 0x80 | data.len() as u8);
        let key = [out[2], out[3], out[4], out[5]];
        let mut body = out[6..].to_vec();
        mask(&mut body, key);
        assert_eq!(&body, data);
        assert_ne!(&out[6..], data, "masked on the wire");
    }

    #[test]
    fn decodes_split_frames_pings_and_close() {
        let mut c = WsCodec::new(false);
        let mut wire = server_frame(OP_BINARY, b"INFO {}\r\n");
        wire.extend(server_frame(OP_PING, b"p"));
        wire.extend(server_frame(OP_BINARY, &vec![b'x'; 300]));
        let mut out = BytesMut::new();
        for b in wire.chunks(3) {
            c.decode(b, &mut out).unwrap();
        }
        assert_eq!(out.len(), 9 + 300);
        assert!(c.has_replies(), "a ping is answered");
        let e = c
            .decode(&server_frame(OP_CLOSE, b"\x03\xe8bye"), &mut out)
            .unwrap_err();
        assert!(e.to_string().contains("1000 bye"), "{e}");
    }

    #[test]
    fn deflate_round_trip() {
        let mut c = WsCodec::new(true);
        let data = b"MSG bench 1 16\r\n0123456789abcdef\r\n".repeat(100);
        let mut out = Vec::new();
        c.encode(&data, &mut out);
        assert_eq!(out[0], FIN | OP_BINARY | RSV1);
        assert!(out.len() < data.len() / 4, "compressed");
        // Unmask it and feed it back as a server frame would come.
        let (len, at) = match out[1] & 0x7f {
            126 => (u16::from_be_bytes([out[2], out[3]]) as usize, 4),
            n => (n as usize, 2),
        };
        let key = [out[at], out[at + 1], out[at + 2], out[at + 3]];
        let mut body = out[at + 4..at + 4 + len].to_vec();
        mask(&mut body, key);
        let mut got = BytesMut::new();
        c.decode(&server_frame(OP_BINARY | RSV1, &body), &mut got)
            .unwrap();
        assert_eq!(&got[..], &data[..]);
    }
}
