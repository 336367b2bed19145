//! Incremental, zero-copy parser for what a client sends to the server.
//!
//! It follows nats-server's `server/parser.go` byte for byte where a client could tell
//! the difference: op names are case-insensitive, arguments are separated by spaces or
//! tabs, control lines may end in `\r\n` or a bare `\n`, a payload must be followed by
//! exactly `\r\n`, `PING`/`PONG`/`+OK` ignore anything up to the end of their line,
//! `CONNECT`/`INFO` need no blank before their argument, and the control-line limit
//! counts only the argument bytes (not the op name, the blanks after it, or the `\r`).
//!
//! Ops are returned only when complete; their `Bytes` fields are slices of one frozen
//! split of the caller's read buffer, so nothing is copied and, once the buffer is
//! shared, nothing is allocated per op. Partial input is left in the buffer, except
//! bytes that carry no information (op names and blanks, junk after PING), which are
//! consumed so a hostile client cannot grow the buffer with them.

use bytes::{Buf, Bytes, BytesMut};

use crate::errors;

mod fast;

pub use fast::PubFrame;

/// What the parser reads from: a connection's growing buffer, or one frozen read of it.
/// Taking bytes out costs a reference-counted handle on either, never a copy.
pub trait Input: std::ops::Deref<Target = [u8]> {
    fn skip(&mut self, n: usize);
    fn take(&mut self, n: usize) -> Bytes;
    fn drop_all(&mut self);
}

impl Input for BytesMut {
    fn skip(&mut self, n: usize) {
        self.advance(n);
    }
    fn take(&mut self, n: usize) -> Bytes {
        self.split_to(n).freeze()
    }
    fn drop_all(&mut self) {
        self.clear();
    }
}

impl Input for Bytes {
    fn skip(&mut self, n: usize) {
        self.advance(n);
    }
    fn take(&mut self, n: usize) -> Bytes {
        self.split_to(n)
    }
    fn drop_all(&mut self) {
        self.clear();
    }
}

/// Per-connection limits the parser enforces while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest PUB/HPUB total size accepted; a larger one fails before its payload is read.
    pub max_payload: usize,
    /// Longest control-line argument text accepted.
    pub max_control_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload: 1024 * 1024,
            max_control_line: 4096,
        }
    }
}

/// One complete operation sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// The raw JSON text after `CONNECT` (not validated here; see `json::parse_connect`).
    Connect(Bytes),
    Pub {
        subject: Bytes,
        reply: Option<Bytes>,
        payload: Bytes,
    },
    HPub {
        subject: Bytes,
        reply: Option<Bytes>,
        header_len: usize,
        /// Header block followed by the payload; `header_len` splits them.
        message: Bytes,
    },
    Sub {
        subject: Bytes,
        queue: Option<Bytes>,
        sid: Bytes,
    },
    Unsub {
        sid: Bytes,
        /// `Some(n)` only for a positive count. nats-server treats a missing, zero or
        /// unparsable count alike (unsubscribe now), so all of those are `None`.
        max: Option<u64>,
    },
    Ping,
    Pong,
    /// `INFO` from a client: nats-server parses the JSON and otherwise ignores it
    /// (bad JSON closes the connection silently; see `json::check_info`).
    Info(Bytes),
    /// `+OK` from a client: ignored by nats-server.
    Ok,
    /// `-ERR` from a client: nats-server logs it and closes the connection without a reply.
    Err(Bytes),
}

impl ClientOp {
    /// A PUB (`header_len` `None`) or an HPUB.
    pub fn publish(
        subject: Bytes,
        reply: Option<Bytes>,
        header_len: Option<usize>,
        body: Bytes,
    ) -> ClientOp {
        match header_len {
            None => ClientOp::Pub {
                subject,
                reply,
                payload: body,
            },
            Some(header_len) => ClientOp::HPub {
                subject,
                reply,
                header_len,
                message: body,
            },
        }
    }
}

/// Everything that can go wrong with client input, including the checks that happen
/// after parsing (CONNECT validation, subjects) so the engine has one error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown protocol operation")]
    UnknownOp,
    #[error("maximum payload exceeded: {size} vs {max}")]
    MaxPayload { size: usize, max: usize },
    #[error("maximum control line exceeded: {len} vs {max}")]
    MaxControlLine { len: usize, max: usize },
    #[error("{op} parse error: wrong number of arguments")]
    ArgCount { op: &'static str },
    #[error("{op}: bad or missing size")]
    BadSize { op: &'static str },
    #[error("{op}: bad or missing header size")]
    BadHeaderSize { op: &'static str },
    #[error("{op}: header size larger than total size")]
    HeaderSizeTooLarge { op: &'static str },
    #[error("invalid CONNECT JSON: {0}")]
    BadConnect(String),
    #[error("invalid INFO JSON: {0}")]
    BadInfo(String),
    #[error("message headers not supported")]
    HeadersNotSupported,
    #[error("invalid client protocol")]
    BadClientProtocol,
    #[error("no responders requires headers support")]
    NoRespondersRequiresHeaders,
    #[error("invalid subject")]
    InvalidSubject,
    #[error("invalid publish subject")]
    InvalidPublishSubject,
    #[error("maximum subscriptions exceeded")]
    MaxSubscriptions,
}

impl ProtocolError {
    /// The text nats-server puts inside `-ERR '...'` for this error. For errors after
    /// which nats-server closes silently (see [`ProtocolError::sends_err`]) this is a
    /// description for logs, never meant for the wire.
    pub fn err_text(&self) -> &str {
        match self {
            ProtocolError::UnknownOp => errors::UNKNOWN_PROTOCOL_OPERATION,
            ProtocolError::MaxPayload { .. } => errors::MAX_PAYLOAD_VIOLATION,
            ProtocolError::MaxControlLine { .. } => errors::MAX_CONTROL_LINE_EXCEEDED,
            ProtocolError::ArgCount { .. } => "Parse Error",
            ProtocolError::BadSize { .. } => "Bad or Missing Size",
            ProtocolError::BadHeaderSize { .. } => "Bad or Missing Header Size",
            ProtocolError::HeaderSizeTooLarge { .. } => "Header Size larger then TotalSize",
            ProtocolError::BadConnect(_) => "Invalid CONNECT",
            ProtocolError::BadInfo(_) => "Invalid INFO",
            ProtocolError::HeadersNotSupported => "message headers not supported",
            ProtocolError::BadClientProtocol => errors::INVALID_CLIENT_PROTOCOL,
            ProtocolError::NoRespondersRequiresHeaders => errors::NO_RESPONDERS_REQUIRES_HEADERS,
            ProtocolError::InvalidSubject => errors::INVALID_SUBJECT,
            ProtocolError::InvalidPublishSubject => errors::INVALID_PUBLISH_SUBJECT,
            ProtocolError::MaxSubscriptions => errors::MAX_SUBSCRIPTIONS_EXCEEDED,
        }
    }

    /// Whether nats-server sends `-ERR '<err_text>'` for this error. Malformed
    /// arguments, bad CONNECT/INFO JSON and HPUB without negotiated headers close the
    /// connection with no `-ERR` at all (checked against the real binary).
    pub fn sends_err(&self) -> bool {
        !matches!(
            self,
            ProtocolError::ArgCount { .. }
                | ProtocolError::BadSize { .. }
                | ProtocolError::BadHeaderSize { .. }
                | ProtocolError::HeaderSizeTooLarge { .. }
                | ProtocolError::BadConnect(_)
                | ProtocolError::BadInfo(_)
                | ProtocolError::HeadersNotSupported
        )
    }

    /// Whether nats-server closes the connection after this error. Every error the
    /// parser itself returns closes; the subject and subscription-limit errors do not.
    pub fn closes_connection(&self) -> bool {
        !matches!(
            self,
            ProtocolError::InvalidSubject
                | ProtocolError::InvalidPublishSubject
                | ProtocolError::MaxSubscriptions
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgOp {
    Pub,
    HPub,
    Sub,
    Unsub,
    Connect,
    Info,
    Err,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineOp {
    Ping,
    Pong,
    Ok,
}

/// A PUB/HPUB whose control line is parsed but whose payload has not fully arrived.
/// Offsets are relative to the start of the arguments, which is `buf[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    line_len: usize,
    subject: (usize, usize),
    reply: Option<(usize, usize)>,
    header_len: Option<usize>,
    size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    /// Op name consumed; skipping blanks before the first argument byte.
    Blanks(ArgOp),
    /// Arguments start at `buf[0]`; waiting for the end of the line.
    Args(ArgOp),
    Payload(Pending),
    /// PING/PONG/+OK name seen; everything up to `\n` is ignored.
    LineEnd(LineOp),
}

/// Incremental client-protocol parser. One per connection.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// In `Args`: how far `\n` has been searched, so a slowly arriving line is not rescanned.
    scanned: usize,
    /// In `Args`: a `\r` was seen after the first argument byte. nats-server then drops
    /// the byte before `\n` from the arguments, whatever it is.
    saw_cr: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new(Limits::default())
    }
}

const MAX_ARGS: usize = 4;
type Spans = [(usize, usize); MAX_ARGS + 1];

/// Splits `arg` into at most `MAX_ARGS + 1` spans; a count over `MAX_ARGS` means "too many".
fn split_args(arg: &[u8], seps: &[u8]) -> (Spans, usize) {
    let mut spans: Spans = [(0, 0); MAX_ARGS + 1];
    let mut n = 0;
    let mut start: Option<usize> = None;
    for (i, &b) in arg.iter().enumerate() {
        if seps.contains(&b) {
            if let Some(s) = start.take() {
                if n > MAX_ARGS {
                    return (spans, n);
                }
                spans[n] = (s, i);
                n += 1;
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        if n <= MAX_ARGS {
            spans[n] = (s, arg.len());
        }
        n += 1;
    }
    (spans, n)
}

const PUB_SEPS: &[u8] = b" \t";
const SUB_SEPS: &[u8] = b" \t\r\n";

/// nats-server's `parseSize`: 1..=9 ASCII digits, nothing else.
pub(crate) fn parse_size(d: &[u8]) -> Option<usize> {
    if d.is_empty() || d.len() > 9 {
        return None;
    }
    let mut n = 0usize;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(b - b'0');
    }
    Some(n)
}

/// Compares what has arrived of an op name, case-insensitively.
/// Ok(true): whole name present; Ok(false): a prefix so far.
fn match_name(buf: &[u8], name: &[u8]) -> Result<bool, ProtocolError> {
    let n = buf.len().min(name.len());
    if buf[..n]
        .iter()
        .zip(name)
        .all(|(b, c)| b.to_ascii_uppercase() == *c)
    {
        Ok(buf.len() >= name.len())
    } else {
        Err(ProtocolError::UnknownOp)
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

enum Recognized {
    Incomplete,
    Args(ArgOp, usize),
    Line(LineOp, usize),
}

fn recognize(buf: &[u8]) -> Result<Recognized, ProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(Recognized::Incomplete);
    };
    // (name, op, needs a blank after the name)
    let (name, kind): (&[u8], Result<(ArgOp, bool), LineOp>) = match first.to_ascii_uppercase() {
        b'P' => match buf.get(1).map(u8::to_ascii_uppercase) {
            None => return Ok(Recognized::Incomplete),
            Some(b'U') => (b"PUB", Ok((ArgOp::Pub, true))),
            Some(b'I') => (b"PING", Err(LineOp::Ping)),
            Some(b'O') => (b"PONG", Err(LineOp::Pong)),
            Some(_) => return Err(ProtocolError::UnknownOp),
        },
        b'H' => (b"HPUB", Ok((ArgOp::HPub, true))),
        b'S' => (b"SUB", Ok((ArgOp::Sub, true))),
        b'U' => (b"UNSUB", Ok((ArgOp::Unsub, true))),
        b'C' => (b"CONNECT", Ok((ArgOp::Connect, false))),
        b'I' => (b"INFO", Ok((ArgOp::Info, false))),
        b'+' => (b"+OK", Err(LineOp::Ok)),
        b'-' => (b"-ERR", Ok((ArgOp::Err, true))),
        _ => return Err(ProtocolError::UnknownOp),
    };
    if !match_name(buf, name)? {
        return Ok(Recognized::Incomplete);
    }
    match kind {
        Err(line) => Ok(Recognized::Line(line, name.len())),
        Ok((op, false)) => Ok(Recognized::Args(op, name.len())),
        Ok((op, true)) => match buf.get(name.len()) {
            None => Ok(Recognized::Incomplete),
            Some(&b) if is_blank(b) => Ok(Recognized::Args(op, name.len() + 1)),
            Some(_) => Err(ProtocolError::UnknownOp),
        },
    }
}

impl Parser {
    pub fn new(limits: Limits) -> Self {
        Parser {
            limits,
            state: State::Start,
            scanned: 0,
            saw_cr: false,
        }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// True while the op being parsed cannot complete within `buffered` bytes: a reader
    /// that copies what it has not parsed at the end of each read need not try (nor copy a
    /// large payload again and again while it arrives).
    pub fn needs_more(&self, buffered: usize) -> bool {
        match self.state {
            State::Payload(p) => buffered < p.line_len + p.size + 2,
            _ => false,
        }
    }

    /// True when no op is partially parsed (useful to tell a clean EOF from a cut one).
    pub fn is_idle(&self) -> bool {
        self.state == State::Start
    }

    /// Parses the next complete op at the front of `buf`, consuming its bytes.
    /// `Ok(None)` means more bytes are needed; call again after appending to `buf`.
    /// After an `Err` the connection must be closed: the parser state is reset but the
    /// stream position is undefined.
    pub fn parse<I: Input>(&mut self, buf: &mut I) -> Result<Option<ClientOp>, ProtocolError> {
        if self.state == State::Start {
            if let Some(op) = self.fast_pub(buf) {
                return Ok(Some(op));
            }
        }
        self.parse_slow(buf)
    }

    /// The state machine alone: every op, every corner, partial input.
    fn parse_slow<I: Input>(&mut self, buf: &mut I) -> Result<Option<ClientOp>, ProtocolError> {
        let r = self.step(buf);
        if r.is_err() {
            self.state = State::Start;
        }
        r
    }

    fn step<I: Input>(&mut self, buf: &mut I) -> Result<Option<ClientOp>, ProtocolError> {
        loop {
            match self.state {
                State::Start => match recognize(buf)? {
                    Recognized::Incomplete => return Ok(None),
                    Recognized::Line(op, n) => {
                        buf.skip(n);
                        self.state = State::LineEnd(op);
                    }
                    Recognized::Args(op, n) => {
                        buf.skip(n);
                        self.state = State::Blanks(op);
                    }
                },
                State::LineEnd(op) => match memchr::memchr(b'\n', &buf[..]) {
                    Some(i) => {
                        buf.skip(i + 1);
                        self.state = State::Start;
                        return Ok(Some(match op {
                            LineOp::Ping => ClientOp::Ping,
                            LineOp::Pong => ClientOp::Pong,
                            LineOp::Ok => ClientOp::Ok,
                        }));
                    }
                    None => {
                        buf.drop_all();
                        return Ok(None);
                    }
                },
                State::Blanks(op) => {
                    let n = buf.iter().take_while(|&&b| is_blank(b)).count();
                    buf.skip(n);
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    // The first argument byte is taken as is, even `\r` or `\n`, exactly
                    // like nats-server's *_SPC states; the line end is searched after it.
                    self.state = State::Args(op);
                    self.scanned = 1;
                    self.saw_cr = false;
                }
                State::Args(op) => return self.args(op, buf),
                State::Payload(p) => return self.payload(p, buf),
            }
        }
    }

    fn args<I: Input>(
        &mut self,
        op: ArgOp,
        buf: &mut I,
    ) -> Result<Option<ClientOp>, ProtocolError> {
        let from = self.scanned.min(buf.len());
        let nl = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i);
        let seen_to = nl.unwrap_or(buf.len());
        if !self.saw_cr && memchr::memchr(b'\r', &buf[from..seen_to]).is_some() {
            self.saw_cr = true;
        }
        let Some(nl) = nl else {
            self.scanned = buf.len();
            let len = buf.len() - usize::from(self.saw_cr);
            if len > self.limits.max_control_line {
                return Err(ProtocolError::MaxControlLine {
                    len,
                    max: self.limits.max_control_line,
                });
            }
            return Ok(None);
        };
        let arg_end = nl - usize::from(self.saw_cr);
        if arg_end > self.limits.max_control_line {
            return Err(ProtocolError::MaxControlLine {
                len: arg_end,
                max: self.limits.max_control_line,
            });
        }
        let arg = &buf[..arg_end];
        let line_len = nl + 1;
        match op {
            ArgOp::Pub | ArgOp::HPub => {
                let pending = self.pub_args(op, arg, line_len)?;
                self.state = State::Payload(pending);
                self.payload(pending, buf)
            }
            ArgOp::Sub => {
                let (s, n) = split_args(arg, SUB_SEPS);
                let (subject, queue, sid) = match n {
                    2 => (s[0], None, s[1]),
                    3 => (s[0], Some(s[1]), s[2]),
                    _ => return Err(ProtocolError::ArgCount { op: "SUB" }),
                };
                let frame = self.take_line(buf, line_len);
                Ok(Some(ClientOp::Sub {
                    subject: frame.slice(subject.0..subject.1),
                    queue: queue.map(|q| frame.slice(q.0..q.1)),
                    sid: frame.slice(sid.0..sid.1),
                }))
            }
            ArgOp::Unsub => {
                let (s, n) = split_args(arg, SUB_SEPS);
                let (sid, max) = match n {
                    1 => (s[0], None),
                    2 => (
                        s[0],
                        parse_size(&arg[s[1].0..s[1].1])
                            .filter(|&m| m > 0)
                            .map(|m| m as u64),
                    ),
                    _ => return Err(ProtocolError::ArgCount { op: "UNSUB" }),
                };
                let frame = self.take_line(buf, line_len);
                Ok(Some(ClientOp::Unsub {
                    sid: frame.slice(sid.0..sid.1),
                    max,
                }))
            }
            ArgOp::Connect | ArgOp::Info | ArgOp::Err => {
                let frame = self.take_line(buf, line_len);
                let text = frame.slice(..arg_end);
                Ok(Some(match op {
                    ArgOp::Connect => ClientOp::Connect(text),
                    ArgOp::Info => ClientOp::Info(text),
                    _ => ClientOp::Err(text),
                }))
            }
        }
    }

    fn take_line<I: Input>(&mut self, buf: &mut I, line_len: usize) -> Bytes {
        self.state = State::Start;
        buf.take(line_len)
    }

    fn pub_args(&self, op: ArgOp, arg: &[u8], line_len: usize) -> Result<Pending, ProtocolError> {
        let (s, n) = split_args(arg, PUB_SEPS);
        let size_of = |span: (usize, usize)| parse_size(&arg[span.0..span.1]);
        let (subject, reply, header_len, size, name) = if op == ArgOp::Pub {
            match n {
                2 => (s[0], None, None, size_of(s[1]), "PUB"),
                3 => (s[0], Some(s[1]), None, size_of(s[2]), "PUB"),
                _ => return Err(ProtocolError::ArgCount { op: "PUB" }),
            }
        } else {
            let (subject, reply, hdr, size) = match n {
                3 => (s[0], None, s[1], s[2]),
                4 => (s[0], Some(s[1]), s[2], s[3]),
                _ => return Err(ProtocolError::ArgCount { op: "HPUB" }),
            };
            let hdr = size_of(hdr).ok_or(ProtocolError::BadHeaderSize { op: "HPUB" })?;
            (subject, reply, Some(hdr), size_of(size), "HPUB")
        };
        let size = size.ok_or(ProtocolError::BadSize { op: name })?;
        if header_len.is_some_and(|h| h > size) {
            return Err(ProtocolError::HeaderSizeTooLarge { op: name });
        }
        if size > self.limits.max_payload {
            return Err(ProtocolError::MaxPayload {
                size,
                max: self.limits.max_payload,
            });
        }
        Ok(Pending {
            line_len,
            subject,
            reply,
            header_len,
            size,
        })
    }

    fn payload<I: Input>(
        &mut self,
        p: Pending,
        buf: &mut I,
    ) -> Result<Option<ClientOp>, ProtocolError> {
        let end = p.line_len + p.size;
        // Like nats-server, a wrong byte after the payload fails as soon as it arrives.
        match buf.get(end) {
            None => return Ok(None),
            Some(b'\r') => {}
            Some(_) => return Err(ProtocolError::UnknownOp),
        }
        match buf.get(end + 1) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(ProtocolError::UnknownOp),
        }
        self.state = State::Start;
        // Two handles (control line, body) instead of a frame plus slices: every Bytes handle
        // is an atomic increment and decrement on the read buffer, per message.
        let line = buf.take(p.line_len);
        let body = buf.take(p.size);
        buf.skip(2);
        let reply = p.reply.map(|r| line.slice(r.0..r.1));
        let mut subject = line;
        subject.truncate(p.subject.1);
        subject.advance(p.subject.0);
        Ok(Some(ClientOp::publish(subject, reply, p.header_len, body)))
    }
}

#[cfg(test)]
mod tests;
