//! One-pass parsing of a whole, ordinary `PUB`/`HPUB` that is already in the buffer.
//!
//! Every publish goes through here, so it must cost a few tens of nanoseconds: one `memchr`
//! for the line end, one walk over the arguments, no `advance` between steps, two `Bytes`
//! handles (the whole op, the body), or none when the caller reads the op in place
//! ([`Parser::peek_pub`]). It only takes the op when the result is certain to be
//! what the state machine would return: anything unusual (partial data, a bare `\n` line end,
//! a line or payload over its limit, a malformed argument, a wrong byte after the payload)
//! leaves the buffer untouched and the state machine, which follows nats-server in every
//! corner, decides.

use std::ops::Range;

use bytes::Buf;

use super::{is_blank, parse_size, ClientOp, Input, Parser};

/// Most arguments an ordinary op has: HPUB `<subject> <reply> <hdr> <size>`.
const MAX_ARGS: usize = 4;

/// Lower-cases ASCII letters; other bytes change too but never into a letter of an op name,
/// so comparing with a lower-case name is an exact case-insensitive match.
fn lower(b: u8) -> u8 {
    b | 0x20
}

/// Length of the op name and its blank (`PUB ` 4, `HPUB ` 5) and whether it is HPUB.
fn pub_name(b: &[u8]) -> Option<(usize, bool)> {
    match b {
        [p, u, b_, s, ..]
            if lower(*p) == b'p' && lower(*u) == b'u' && lower(*b_) == b'b' && is_blank(*s) =>
        {
            Some((4, false))
        }
        [h, p, u, b_, s, ..]
            if lower(*h) == b'h'
                && lower(*p) == b'p'
                && lower(*u) == b'u'
                && lower(*b_) == b'b'
                && is_blank(*s) =>
        {
            Some((5, true))
        }
        _ => None,
    }
}

/// Where the first `\n` of a control line is and the arguments before it.
struct Line {
    /// Index of the `\n`.
    nl: usize,
    /// Argument spans, absolute indices; `n` of them are set.
    spans: [(usize, usize); MAX_ARGS],
    n: usize,
}

/// Finds the `\n` ending the control line whose arguments start at `b[start]` (a non-blank
/// byte) and splits the arguments at blanks. `None` when there is no `\n` before `limit`, the
/// byte before it is not `\r`, or there are more than [`MAX_ARGS`] arguments.
fn scan_line(b: &[u8], start: usize, limit: usize) -> Option<Line> {
    let nl = start + memchr::memchr(b'\n', b.get(start..limit.min(b.len()))?)?;
    if b.get(nl.checked_sub(1)?) != Some(&b'\r') {
        return None;
    }
    let arg = b.get(..nl - 1)?;
    let mut spans = [(0, 0); MAX_ARGS];
    let mut n = 0;
    let mut i = start;
    // Plain byte loops: measured faster here than eight-bytes-at-a-time scans or a single
    // byte loop that also looks for the `\n` (their serial dependencies cost more than the
    // instructions they save).
    loop {
        while i < arg.len() && is_blank(arg[i]) {
            i += 1;
        }
        if i >= arg.len() {
            return Some(Line { nl, spans, n });
        }
        let token = i;
        while i < arg.len() && !is_blank(arg[i]) {
            i += 1;
        }
        *spans.get_mut(n)? = (token, i);
        n += 1;
    }
}

/// A whole, ordinary PUB/HPUB at the front of a buffer, found without taking it: offsets
/// into that buffer. A reader that handles the op straight from its buffer skips `len` bytes
/// afterwards; it pays for a `Bytes` handle only where the message must outlive the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubFrame {
    pub subject: Range<usize>,
    pub reply: Option<Range<usize>>,
    /// HPUB only: the header block's length, at the start of `body`.
    pub header_len: Option<usize>,
    /// The payload (header block included for HPUB), without its `\r\n`.
    pub body: Range<usize>,
    /// Bytes the op takes, through the `\r\n` after the payload.
    pub len: usize,
}

impl Parser {
    /// Finds a complete, ordinary PUB/HPUB at the front of `b` without consuming it; `None`
    /// when the parser is in the middle of an op or the state machine must decide.
    #[inline]
    pub fn peek_pub(&self, b: &[u8]) -> Option<PubFrame> {
        if !self.is_idle() {
            return None;
        }
        let (name_len, headers) = pub_name(b)?;
        let start = name_len + b[name_len..].iter().take_while(|&&c| is_blank(c)).count();
        // The state machine takes the first argument byte as is, even `\r` or `\n`.
        if matches!(b.get(start)?, b'\r' | b'\n') {
            return None;
        }
        // Search no further than the longest acceptable line, so a long partial line is not
        // scanned twice: the argument bytes, then `\r\n`. A line ending in `\r\n` means the
        // state machine saw a `\r` and drops exactly the byte before `\n`; a bare `\n` needs
        // its scan for a `\r` elsewhere in the line.
        let Line { nl, spans: s, n } =
            scan_line(b, start, start + self.limits.max_control_line + 2)?;
        let (subject, reply, header_len, size) = match (headers, n) {
            (false, 2) => (s[0], None, None, s[1]),
            (false, 3) => (s[0], Some(s[1]), None, s[2]),
            (true, 3) => (s[0], None, Some(s[1]), s[2]),
            (true, 4) => (s[0], Some(s[1]), Some(s[2]), s[3]),
            _ => return None,
        };
        let size = parse_size(&b[size.0..size.1])?;
        let header_len = match header_len {
            Some(h) => Some(parse_size(&b[h.0..h.1]).filter(|&h| h <= size)?),
            None => None,
        };
        if size > self.limits.max_payload {
            return None;
        }
        let end = nl + 1 + size;
        if b.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        Some(PubFrame {
            subject: subject.0..subject.1,
            reply: reply.map(|r| r.0..r.1),
            header_len,
            body: nl + 1..end,
            len: end + 2,
        })
    }

    /// Takes a complete, ordinary PUB/HPUB from the front of `buf`, or returns `None` with
    /// `buf` untouched. Only called in `State::Start`, which it leaves unchanged.
    #[inline]
    pub(super) fn fast_pub<I: Input>(&mut self, buf: &mut I) -> Option<ClientOp> {
        let f = self.peek_pub(buf)?;
        // One handle for the whole op and one slice for the body: two handles, each an atomic
        // increment and decrement on the read buffer.
        let frame = buf.take(f.len);
        let body = frame.slice(f.body);
        let reply = f.reply.map(|r| frame.slice(r));
        let mut subject_bytes = frame;
        subject_bytes.truncate(f.subject.end);
        subject_bytes.advance(f.subject.start);
        Some(ClientOp::publish(subject_bytes, reply, f.header_len, body))
    }
}

#[cfg(test)]
mod tests;
