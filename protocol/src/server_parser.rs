//! Incremental, zero-copy parser for what a server sends to a client
//! (INFO, MSG, HMSG, PING, PONG, +OK, -ERR). Used by the bench harness and tests.
//! Control lines may end in `\r\n` or `\n`; payloads must be followed by `\r\n`.

use bytes::{Bytes, BytesMut};

use crate::line::{is_ws, LineScanner};
use crate::parser::{parse_size, Limits, ProtocolError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// The JSON text after `INFO`.
    Info(Bytes),
    Msg {
        subject: Bytes,
        sid: Bytes,
        reply: Option<Bytes>,
        payload: Bytes,
    },
    HMsg {
        subject: Bytes,
        sid: Bytes,
        reply: Option<Bytes>,
        header_len: usize,
        /// Header block followed by the payload.
        message: Bytes,
    },
    Ping,
    Pong,
    Ok,
    /// The text of `-ERR`, without the surrounding single quotes.
    Err(Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    line_len: usize,
    subject: (usize, usize),
    sid: (usize, usize),
    reply: Option<(usize, usize)>,
    header_len: Option<usize>,
    size: usize,
}

#[derive(Debug)]
pub struct ServerParser {
    limits: Limits,
    pending: Option<Pending>,
    lines: LineScanner,
}

impl Default for ServerParser {
    fn default() -> Self {
        ServerParser::new()
    }
}

fn spans(line: &[u8], start: usize) -> ([(usize, usize); 6], usize) {
    let mut out = [(0, 0); 6];
    let mut n = 0;
    let mut i = start;
    while i < line.len() {
        while i < line.len() && is_ws(line[i]) {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let s = i;
        while i < line.len() && !is_ws(line[i]) {
            i += 1;
        }
        if n == out.len() {
            return (out, n + 1);
        }
        out[n] = (s, i);
        n += 1;
    }
    (out, n)
}

impl ServerParser {
    /// Generous limits: a server's INFO can be long (connect_urls) and the harness
    /// must accept whatever payload size the server allows.
    pub fn new() -> Self {
        ServerParser::with_limits(Limits {
            max_payload: 64 * 1024 * 1024,
            max_control_line: 1024 * 1024,
        })
    }

    pub fn with_limits(limits: Limits) -> Self {
        ServerParser {
            limits,
            pending: None,
            lines: LineScanner::default(),
        }
    }

    /// Parses the next complete op at the front of `buf`, consuming its bytes.
    /// `Ok(None)` means more bytes are needed.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<ServerOp>, ProtocolError> {
        let r = self.step(buf);
        if r.is_err() {
            self.pending = None;
            self.lines.reset();
        }
        r
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<ServerOp>, ProtocolError> {
        if let Some(p) = self.pending {
            return self.payload(p, buf);
        }
        let Some(l) = self.lines.next(buf, self.limits.max_control_line)? else {
            return Ok(None);
        };
        let (line_len, end, rest_start) = (l.len, l.end, l.rest);
        let line = &buf[..end];
        let op = &line[..l.op_end];
        let up = |name: &[u8]| op.eq_ignore_ascii_case(name);
        if up(b"PING") || up(b"PONG") || up(b"+OK") {
            let r = if up(b"PING") {
                ServerOp::Ping
            } else if up(b"PONG") {
                ServerOp::Pong
            } else {
                ServerOp::Ok
            };
            let _ = buf.split_to(line_len);
            return Ok(Some(r));
        }
        if up(b"INFO") || up(b"-ERR") {
            let is_info = up(b"INFO");
            let mut s = rest_start;
            let mut e = end;
            if !is_info && e >= s + 2 && buf[s] == b'\'' && buf[e - 1] == b'\'' {
                s += 1;
                e -= 1;
            }
            let frame = buf.split_to(line_len).freeze();
            let text = frame.slice(s..e);
            return Ok(Some(if is_info {
                ServerOp::Info(text)
            } else {
                ServerOp::Err(text)
            }));
        }
        let headers = if up(b"MSG") {
            false
        } else if up(b"HMSG") {
            true
        } else {
            return Err(ProtocolError::UnknownOp);
        };
        let name = if headers { "HMSG" } else { "MSG" };
        let (a, n) = spans(line, rest_start);
        let arg = |i: usize| &line[a[i].0..a[i].1];
        let (reply, sizes_at) = match (headers, n) {
            (false, 3) | (true, 4) => (None, 2),
            (false, 4) | (true, 5) => (Some(a[2]), 3),
            _ => return Err(ProtocolError::ArgCount { op: name }),
        };
        let header_len = if headers {
            Some(parse_size(arg(sizes_at)).ok_or(ProtocolError::BadHeaderSize { op: name })?)
        } else {
            None
        };
        let size_at = if headers { sizes_at + 1 } else { sizes_at };
        let size = parse_size(arg(size_at)).ok_or(ProtocolError::BadSize { op: name })?;
        if header_len.is_some_and(|h| h > size) {
            return Err(ProtocolError::HeaderSizeTooLarge { op: name });
        }
        if size > self.limits.max_payload {
            return Err(ProtocolError::MaxPayload {
                size,
                max: self.limits.max_payload,
            });
        }
        let p = Pending {
            line_len,
            subject: a[0],
            sid: a[1],
            reply,
            header_len,
            size,
        };
        self.pending = Some(p);
        self.payload(p, buf)
    }

    fn payload(
        &mut self,
        p: Pending,
        buf: &mut BytesMut,
    ) -> Result<Option<ServerOp>, ProtocolError> {
        let end = p.line_len + p.size;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::UnknownOp);
        }
        self.pending = None;
        let frame = buf.split_to(end + 2).freeze();
        let subject = frame.slice(p.subject.0..p.subject.1);
        let sid = frame.slice(p.sid.0..p.sid.1);
        let reply = p.reply.map(|r| frame.slice(r.0..r.1));
        let body = frame.slice(p.line_len..end);
        Ok(Some(match p.header_len {
            None => ServerOp::Msg {
                subject,
                sid,
                reply,
                payload: body,
            },
            Some(header_len) => ServerOp::HMsg {
                subject,
                sid,
                reply,
                header_len,
                message: body,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Result<Vec<ServerOp>, ProtocolError> {
        let mut p = ServerParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(op) = p.parse(&mut buf)? {
            out.push(op);
        }
        Ok(out)
    }

    #[test]
    fn parses_every_server_op() {
        let ops = all(b"INFO {\"a\":1}\r\nMSG foo 1 5\r\nhello\r\nMSG foo 2 bar 0\r\n\r\nHMSG s 3 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\nPONG\nping\r\n+OK\r\n-ERR 'Unknown Protocol Operation'\r\n").unwrap();
        assert_eq!(
            ops,
            vec![
                ServerOp::Info(Bytes::from_static(b"{\"a\":1}")),
                ServerOp::Msg {
                    subject: Bytes::from_static(b"foo"),
                    sid: Bytes::from_static(b"1"),
                    reply: None,
                    payload: Bytes::from_static(b"hello")
                },
                ServerOp::Msg {
                    subject: Bytes::from_static(b"foo"),
                    sid: Bytes::from_static(b"2"),
                    reply: Some(Bytes::from_static(b"bar")),
                    payload: Bytes::new()
                },
                ServerOp::HMsg {
                    subject: Bytes::from_static(b"s"),
                    sid: Bytes::from_static(b"3"),
                    reply: Some(Bytes::from_static(b"r")),
                    header_len: 12,
                    message: Bytes::from_static(b"NATS/1.0\r\n\r\nhi")
                },
                ServerOp::Ping,
                ServerOp::Pong,
                ServerOp::Ping,
                ServerOp::Ok,
                ServerOp::Err(Bytes::from_static(b"Unknown Protocol Operation")),
            ]
        );
    }

    #[test]
    fn split_anywhere() {
        let input: &[u8] =
            b"MSG foo 1 5\r\nhello\r\nHMSG s 3 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n";
        let whole = all(input).unwrap();
        for cut in 0..=input.len() {
            let mut p = ServerParser::new();
            let mut buf = BytesMut::from(&input[..cut]);
            let mut got = Vec::new();
            while let Some(op) = p.parse(&mut buf).unwrap() {
                got.push(op);
            }
            buf.extend_from_slice(&input[cut..]);
            while let Some(op) = p.parse(&mut buf).unwrap() {
                got.push(op);
            }
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(all(b"FOO\r\n"), Err(ProtocolError::UnknownOp));
        assert_eq!(
            all(b"MSG foo 1\r\n"),
            Err(ProtocolError::ArgCount { op: "MSG" })
        );
        assert_eq!(
            all(b"MSG foo 1 x\r\n"),
            Err(ProtocolError::BadSize { op: "MSG" })
        );
        assert_eq!(
            all(b"HMSG foo 1 5 3\r\n"),
            Err(ProtocolError::HeaderSizeTooLarge { op: "HMSG" })
        );
        assert_eq!(
            all(b"MSG foo 1 2\r\nabc\r\n"),
            Err(ProtocolError::UnknownOp)
        );
        let mut p = ServerParser::with_limits(Limits {
            max_payload: 10,
            max_control_line: 8,
        });
        let mut buf = BytesMut::from(&b"INFO 0123456789"[..]);
        assert!(matches!(
            p.parse(&mut buf),
            Err(ProtocolError::MaxControlLine { .. })
        ));
        let mut buf = BytesMut::from(&b"MSG a 1 11\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf),
            Err(ProtocolError::MaxPayload { size: 11, max: 10 })
        );
    }
}
