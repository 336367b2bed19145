//! The protocols between two servers: leafnodes (nats-server's `leafnode.go`) and routes
//! (`route.go`), one grammar with two dialects. A leaf link says interest as
//! `LS+ subject [queue weight]` / `LS- subject [queue]` and messages as
//! `LMSG subject [reply | + reply queues... | | queues...] size` (`HMSG` with a header size
//! before the total); a route says the same as `RS+`/`RS-`/`RMSG`/`HMSG`, each naming the
//! account first, since one route carries every account. The parser reads what the other
//! server sends; the encoders write what this one sends. Zero-copy: every field is a slice of
//! the read buffer.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::encode::num;
use crate::line::{is_ws, LineScanner};
use crate::parser::{parse_size, Limits, ProtocolError};

const CRLF: &[u8] = b"\r\n";

/// One op from the other side of a leafnode connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafOp {
    /// The JSON text after `INFO`.
    Info(Bytes),
    /// The JSON text after `CONNECT` (a leaf connecting to us).
    Connect(Bytes),
    Ping,
    Pong,
    Ok,
    /// The text of `-ERR`, without its quotes.
    Err(Bytes),
    /// `LS+`: interest in `subject` (a queue group with `weight` members when `queue` is set).
    /// `key` is the subject, or subject and queue, that a later `LS-` names.
    Sub {
        /// The account (routes only).
        account: Option<Bytes>,
        key: Bytes,
        subject: Bytes,
        queue: Option<Bytes>,
        weight: u32,
    },
    /// `LS-`: the interest `key` names is gone.
    Unsub {
        account: Option<Bytes>,
        key: Bytes,
        subject: Bytes,
        queue: Option<Bytes>,
    },
    /// `LMSG` or `HMSG`. `queues` is the space-separated list of queue groups the sender picked
    /// this side for (none: plain subscribers only); `message` is the header block (when
    /// `header_len` is set) followed by the payload.
    Msg {
        account: Option<Bytes>,
        subject: Bytes,
        reply: Option<Bytes>,
        queues: Option<Bytes>,
        header_len: Option<usize>,
        message: Bytes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    line_len: usize,
    account: Option<(usize, usize)>,
    subject: (usize, usize),
    reply: Option<(usize, usize)>,
    queues: Option<(usize, usize)>,
    header_len: Option<usize>,
    size: usize,
}

/// Which server-to-server protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `LS+`/`LS-`/`LMSG`: one account per connection.
    Leaf,
    /// `RS+`/`RS-`/`RMSG`: the account named in every op.
    Route,
}

/// Incremental parser of a leafnode or route connection's inbound ops.
#[derive(Debug)]
pub struct LeafParser {
    limits: Limits,
    dialect: Dialect,
    pending: Option<Pending>,
    lines: LineScanner,
}

/// Up to `N` whitespace-separated words of `line` from `start`; the count (more than `N` means
/// too many).
fn words<const N: usize>(line: &[u8], start: usize) -> ([(usize, usize); N], usize) {
    let mut out = [(0, 0); N];
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
        if n == N {
            return (out, N + 1);
        }
        out[n] = (s, i);
        n += 1;
    }
    (out, n)
}

/// The most words an `LMSG`/`HMSG` line may have: subject, indicator, reply, sizes and queue
/// names (nats-server has no limit; a sender picks one name per group it routes to).
const MAX_MSG_WORDS: usize = 64;

impl LeafParser {
    pub fn new(limits: Limits) -> LeafParser {
        LeafParser::with_dialect(limits, Dialect::Leaf)
    }

    /// A parser of what a route peer sends.
    pub fn route(limits: Limits) -> LeafParser {
        LeafParser::with_dialect(limits, Dialect::Route)
    }

    fn with_dialect(limits: Limits, dialect: Dialect) -> LeafParser {
        LeafParser {
            limits,
            dialect,
            pending: None,
            lines: LineScanner::default(),
        }
    }

    /// Parses the next complete op at the front of `buf`, consuming its bytes. `Ok(None)`:
    /// more bytes are needed.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<LeafOp>, ProtocolError> {
        let r = self.step(buf);
        if r.is_err() {
            self.pending = None;
            self.lines.reset();
        }
        r
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<LeafOp>, ProtocolError> {
        if let Some(p) = self.pending {
            return self.payload(p, buf);
        }
        let Some(l) = self.lines.next(buf, self.limits.max_control_line)? else {
            return Ok(None);
        };
        let (line_len, end, op_end, rest) = (l.len, l.end, l.op_end, l.rest);
        let line = &buf[..end];
        // Op names are at most 7 bytes: uppercased on the stack, not in a Vec per message.
        let mut upper = [0u8; 8];
        let raw = &line[..op_end];
        if raw.len() > upper.len() {
            return Err(ProtocolError::UnknownOp);
        }
        for (u, b) in upper.iter_mut().zip(raw) {
            *u = b.to_ascii_uppercase();
        }
        let op = &upper[..raw.len()];
        match op {
            b"PING" | b"PONG" | b"+OK" => {
                let r = match op {
                    b"PING" => LeafOp::Ping,
                    b"PONG" => LeafOp::Pong,
                    _ => LeafOp::Ok,
                };
                let _ = buf.split_to(line_len);
                Ok(Some(r))
            }
            b"INFO" | b"CONNECT" | b"-ERR" => {
                let (mut s, mut e) = (rest, end);
                if op == b"-ERR" && e >= s + 2 && buf[s] == b'\'' && buf[e - 1] == b'\'' {
                    s += 1;
                    e -= 1;
                }
                let frame = buf.split_to(line_len).freeze();
                let text = frame.slice(s..e);
                Ok(Some(match op {
                    b"INFO" => LeafOp::Info(text),
                    b"CONNECT" => LeafOp::Connect(text),
                    _ => LeafOp::Err(text),
                }))
            }
            b"LS+" | b"LS-" | b"RS+" | b"RS-" => {
                let route = self.dialect == Dialect::Route;
                if route != op.starts_with(b"R") {
                    return Err(ProtocolError::UnknownOp);
                }
                let add = op[2] == b'+';
                let name = match (route, add) {
                    (false, true) => "LS+",
                    (false, false) => "LS-",
                    (true, true) => "RS+",
                    (true, false) => "RS-",
                };
                // A route names the account first.
                let skip = usize::from(route);
                let (all, n) = words::<4>(line, rest);
                let account = route.then_some(all[0]);
                let a = &all[skip..];
                let n = n.saturating_sub(skip);
                let (queue, weight) = match (add, n) {
                    (_, 1) => (None, 1),
                    (true, 3) => {
                        let w = parse_size(&line[a[2].0..a[2].1])
                            .ok_or(ProtocolError::ArgCount { op: name })?;
                        (Some(a[1]), w.min(u32::MAX as usize) as u32)
                    }
                    (false, 2) => (Some(a[1]), 0),
                    _ => return Err(ProtocolError::ArgCount { op: name }),
                };
                let key_end = queue.map_or(a[0].1, |q| q.1);
                let frame = buf.split_to(line_len).freeze();
                let key = frame.slice(a[0].0..key_end);
                let subject = frame.slice(a[0].0..a[0].1);
                let queue = queue.map(|q| frame.slice(q.0..q.1));
                let account = account.map(|a| frame.slice(a.0..a.1));
                Ok(Some(if add {
                    LeafOp::Sub {
                        account,
                        key,
                        subject,
                        queue,
                        weight,
                    }
                } else {
                    LeafOp::Unsub {
                        account,
                        key,
                        subject,
                        queue,
                    }
                }))
            }
            b"LMSG" | b"RMSG" | b"HMSG" => {
                let route = self.dialect == Dialect::Route;
                let headers = op == b"HMSG";
                if !headers && route != (op == b"RMSG") {
                    return Err(ProtocolError::UnknownOp);
                }
                let name = match (headers, route) {
                    (true, _) => "HMSG",
                    (false, false) => "LMSG",
                    (false, true) => "RMSG",
                };
                let (all, n) = words::<MAX_MSG_WORDS>(line, rest);
                let skip = usize::from(route);
                let account = route.then_some(all[0]);
                let a = &all[skip..];
                let n = if n > MAX_MSG_WORDS {
                    n
                } else {
                    n.saturating_sub(skip)
                };
                let sizes = if headers { 2 } else { 1 };
                if n < 1 + sizes || n > MAX_MSG_WORDS {
                    return Err(ProtocolError::ArgCount { op: name });
                }
                let arg = |i: usize| &line[a[i].0..a[i].1];
                // Between the subject and the sizes: nothing, a reply, or `+ reply queues...`
                // / `| queues...`.
                let middle = n - 1 - sizes;
                let (reply, queues) = match middle {
                    0 => (None, None),
                    1 => (Some(a[1]), None),
                    _ => {
                        let (reply, first_queue) = match arg(1) {
                            b"+" => (Some(a[2]), 3),
                            b"|" => (None, 2),
                            _ => return Err(ProtocolError::ArgCount { op: name }),
                        };
                        let last = n - 1 - sizes;
                        let queues = (first_queue <= last).then(|| (a[first_queue].0, a[last].1));
                        (reply, queues)
                    }
                };
                let size = parse_size(arg(n - 1)).ok_or(ProtocolError::BadSize { op: name })?;
                let header_len = if headers {
                    let h =
                        parse_size(arg(n - 2)).ok_or(ProtocolError::BadHeaderSize { op: name })?;
                    if h > size {
                        return Err(ProtocolError::HeaderSizeTooLarge { op: name });
                    }
                    Some(h)
                } else {
                    None
                };
                if size > self.limits.max_payload {
                    return Err(ProtocolError::MaxPayload {
                        size,
                        max: self.limits.max_payload,
                    });
                }
                let p = Pending {
                    line_len,
                    account,
                    subject: a[0],
                    reply,
                    queues,
                    header_len,
                    size,
                };
                self.pending = Some(p);
                self.payload(p, buf)
            }
            _ => Err(ProtocolError::UnknownOp),
        }
    }

    fn payload(&mut self, p: Pending, buf: &mut BytesMut) -> Result<Option<LeafOp>, ProtocolError> {
        let end = p.line_len + p.size;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != CRLF {
            return Err(ProtocolError::UnknownOp);
        }
        self.pending = None;
        let frame = buf.split_to(end + 2).freeze();
        Ok(Some(LeafOp::Msg {
            account: p.account.map(|a| frame.slice(a.0..a.1)),
            subject: frame.slice(p.subject.0..p.subject.1),
            reply: p.reply.map(|r| frame.slice(r.0..r.1)),
            queues: p.queues.map(|q| frame.slice(q.0..q.1)),
            header_len: p.header_len,
            message: frame.slice(p.line_len..end),
        }))
    }
}

/// What a leaf reads in the hub's INFO (the rest is ignored).
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct HubInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i32,
    pub headers: bool,
    pub max_payload: i64,
    pub nonce: String,
    pub cluster: String,
    /// A leafnode port's INFO has a client id and this list; a client port's has no list,
    /// a route port's no client id (nats-server's wrong-port check).
    pub client_id: u64,
    pub leafnode_urls: Option<Vec<String>>,
    /// The hub sends a second INFO once it processed CONNECT: the leaf waits for it before
    /// sending its interest.
    pub info_on_connect: bool,
    pub connect_info: bool,
    pub remote_account: String,
    pub auth_required: bool,
    pub tls_required: bool,
}

impl HubInfo {
    /// The JSON of an INFO op.
    pub fn parse(json: &[u8]) -> Result<HubInfo, ProtocolError> {
        serde_json::from_slice(json).map_err(|e| ProtocolError::BadInfo(e.to_string()))
    }

    /// Whether this INFO came from a leafnode port (nats-server's `processLeafnodeInfo`).
    pub fn is_leafnode_port(&self) -> bool {
        self.client_id != 0 && self.leafnode_urls.is_some()
    }
}

/// The CONNECT a leaf sends its hub (nats-server's `leafConnectInfo`): no `lang`, no
/// `gateway`; `compression: "off"` keeps the connection in plain text.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct LeafConnect {
    pub version: String,
    pub server_id: String,
    pub name: String,
    pub cluster: String,
    pub headers: bool,
    pub remote_account: String,
    pub proto: i32,
    pub compression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// A credentials file's user JWT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// The INFO a hub sends a leaf that connects to it: the fields nats-server's leaf reads (its
/// wrong-port check wants `client_id` and `leafnode_urls`).
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i32,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    pub auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_required: bool,
    pub max_payload: i64,
    pub client_id: u64,
    pub leafnode_urls: Vec<String>,
    pub info_on_connect: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub connect_info: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remote_account: String,
}

/// `INFO {json}\r\n`
pub fn info(out: &mut Vec<u8>, i: &LeafInfo) {
    crate::encode::json_op(out, b"INFO ", i);
}

/// What a leaf's CONNECT says (nats-server's `leafConnectInfo`), as far as a hub reads it.
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct LeafConnectIn {
    pub user: String,
    pub pass: String,
    pub auth_token: String,
    pub name: String,
    pub cluster: String,
    pub headers: bool,
    pub remote_account: String,
    /// Only a client's CONNECT has it: a client dialed the leafnode port.
    pub lang: Option<String>,
}

impl LeafConnectIn {
    pub fn parse(json: &[u8]) -> Result<LeafConnectIn, ProtocolError> {
        serde_json::from_slice(json).map_err(|e| ProtocolError::BadConnect(e.to_string()))
    }
}

/// `CONNECT {json}\r\n`
pub fn connect(out: &mut Vec<u8>, c: &LeafConnect) {
    crate::encode::json_op(out, b"CONNECT ", c);
}

/// The queue names of an `LMSG`'s list, one by one.
pub fn queue_names(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| is_ws(b)).filter(|w| !w.is_empty())
}

/// `LS+ subject\r\n`, or `LS+ subject queue weight\r\n` for a queue group.
pub fn sub(out: &mut Vec<u8>, subject: &[u8], queue: Option<(&[u8], u32)>) {
    interest(
        out,
        b"LS+ ",
        None,
        subject,
        queue.map(|(q, w)| (q, Some(w))),
    );
}

/// `LS- subject [queue]\r\n`
pub fn unsub(out: &mut Vec<u8>, subject: &[u8], queue: Option<&[u8]>) {
    interest(out, b"LS- ", None, subject, queue.map(|q| (q, None)));
}

/// `RS+ account subject [queue weight]\r\n`
pub fn route_sub(out: &mut Vec<u8>, account: &[u8], subject: &[u8], queue: Option<(&[u8], u32)>) {
    interest(
        out,
        b"RS+ ",
        Some(account),
        subject,
        queue.map(|(q, w)| (q, Some(w))),
    );
}

/// `RS- account subject [queue]\r\n`
pub fn route_unsub(out: &mut Vec<u8>, account: &[u8], subject: &[u8], queue: Option<&[u8]>) {
    interest(
        out,
        b"RS- ",
        Some(account),
        subject,
        queue.map(|q| (q, None)),
    );
}

fn interest(
    out: &mut Vec<u8>,
    op: &[u8],
    account: Option<&[u8]>,
    subject: &[u8],
    queue: Option<(&[u8], Option<u32>)>,
) {
    out.extend_from_slice(op);
    if let Some(a) = account {
        out.extend_from_slice(a);
        out.push(b' ');
    }
    out.extend_from_slice(subject);
    if let Some((q, w)) = queue {
        out.push(b' ');
        out.extend_from_slice(q);
        if let Some(w) = w {
            out.push(b' ');
            num(out, w);
        }
    }
    out.extend_from_slice(CRLF);
}

/// `LMSG`/`HMSG` (a leaf link) or `RMSG`/`HMSG` naming `account` (a route), with nats-server's
/// argument forms: the queue groups picked for the other side follow `+ reply` or `|`.
pub fn msg(
    out: &mut Vec<u8>,
    account: Option<&[u8]>,
    subject: &[u8],
    reply: Option<&[u8]>,
    queues: &[Bytes],
    header_len: Option<usize>,
    message: &[u8],
) {
    out.reserve(subject.len() + reply.map_or(0, <[u8]>::len) + message.len() + 40);
    out.extend_from_slice(match (header_len.is_some(), account.is_some()) {
        (true, _) => b"HMSG ",
        (false, false) => b"LMSG ",
        (false, true) => b"RMSG ",
    });
    if let Some(a) = account {
        out.extend_from_slice(a);
        out.push(b' ');
    }
    out.extend_from_slice(subject);
    match (reply, queues.is_empty()) {
        (None, true) => {}
        (Some(r), true) => {
            out.push(b' ');
            out.extend_from_slice(r);
        }
        (Some(r), false) => {
            out.extend_from_slice(b" + ");
            out.extend_from_slice(r);
        }
        (None, false) => out.extend_from_slice(b" |"),
    }
    for q in queues {
        out.push(b' ');
        out.extend_from_slice(q);
    }
    if let Some(h) = header_len {
        out.push(b' ');
        num(out, h);
    }
    out.push(b' ');
    num(out, message.len());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(message);
    out.extend_from_slice(CRLF);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> LeafParser {
        LeafParser::new(Limits {
            max_payload: 1 << 20,
            max_control_line: 4096,
        })
    }

    fn all(wire: &[u8], split: usize) -> Vec<LeafOp> {
        let mut p = parser();
        let mut buf = BytesMut::new();
        let mut ops = Vec::new();
        for chunk in wire.chunks(split) {
            buf.extend_from_slice(chunk);
            while let Some(op) = p.parse(&mut buf).expect("parse") {
                ops.push(op);
            }
        }
        assert!(buf.is_empty());
        ops
    }

    #[test]
    fn every_form_in_any_split() {
        let wire =
            b"INFO {\"a\":1}\r\nPING\r\nLS+ foo.*\r\nLS+ foo q 3\r\nLS- foo q\r\nLS- foo.*\r\n\
LMSG a 2\r\nhi\r\nLMSG a r 2\r\nhi\r\nLMSG a + r q1 q2 2\r\nhi\r\nLMSG a | q1 2\r\nhi\r\n\
HMSG a + r q 12 14\r\nNATS/1.0\r\n\r\nhi\r\n-ERR 'Loop detected'\r\n";
        for split in [1, 3, 7, wire.len()] {
            let ops = all(wire, split);
            assert_eq!(ops.len(), 12, "split {split}");
            assert_eq!(ops[0], LeafOp::Info(Bytes::from_static(b"{\"a\":1}")));
            assert_eq!(
                ops[3],
                LeafOp::Sub {
                    account: None,
                    key: Bytes::from_static(b"foo q"),
                    subject: Bytes::from_static(b"foo"),
                    queue: Some(Bytes::from_static(b"q")),
                    weight: 3
                }
            );
            assert_eq!(
                ops[4],
                LeafOp::Unsub {
                    account: None,
                    key: Bytes::from_static(b"foo q"),
                    subject: Bytes::from_static(b"foo"),
                    queue: Some(Bytes::from_static(b"q")),
                }
            );
            let LeafOp::Msg { reply, queues, .. } = &ops[8] else {
                panic!("{:?}", ops[8]);
            };
            assert_eq!(reply.as_deref(), Some(&b"r"[..]));
            let names: Vec<&[u8]> = queue_names(queues.as_deref().unwrap_or_default()).collect();
            assert_eq!(names, [&b"q1"[..], b"q2"]);
            let LeafOp::Msg {
                reply,
                queues,
                header_len,
                message,
                ..
            } = &ops[10]
            else {
                panic!("{:?}", ops[10]);
            };
            assert_eq!(
                (reply.as_deref(), queues.as_deref(), *header_len),
                (Some(&b"r"[..]), Some(&b"q"[..]), Some(12))
            );
            assert_eq!(&message[..], b"NATS/1.0\r\n\r\nhi");
            assert_eq!(ops[11], LeafOp::Err(Bytes::from_static(b"Loop detected")));
        }
    }

    #[test]
    fn encoders_write_what_the_parser_reads() {
        let mut out = Vec::new();
        sub(&mut out, b"foo", None);
        sub(&mut out, b"foo", Some((b"q", 2)));
        unsub(&mut out, b"foo", Some(b"q"));
        let qs = [Bytes::from_static(b"q1"), Bytes::from_static(b"q2")];
        msg(&mut out, None, b"a", None, &[], None, b"x");
        msg(&mut out, None, b"a", Some(b"r"), &[], None, b"x");
        msg(&mut out, None, b"a", Some(b"r"), &qs, None, b"x");
        msg(&mut out, None, b"a", None, &qs[..1], Some(2), b"hdx");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "LS+ foo\r\nLS+ foo q 2\r\nLS- foo q\r\nLMSG a 1\r\nx\r\nLMSG a r 1\r\nx\r\n\
LMSG a + r q1 q2 1\r\nx\r\nHMSG a | q1 2 3\r\nhdx\r\n"
        );
        assert_eq!(all(&out, 5).len(), 7);
    }

    #[test]
    fn the_route_dialect_names_the_account() {
        let mut out = Vec::new();
        route_sub(&mut out, b"$G", b"foo", None);
        route_sub(&mut out, b"ACC", b"foo", Some((b"q", 4)));
        route_unsub(&mut out, b"ACC", b"foo", Some(b"q"));
        let qs = [Bytes::from_static(b"q")];
        msg(&mut out, Some(b"$G"), b"a", Some(b"r"), &qs, None, b"x");
        msg(&mut out, Some(b"$G"), b"a", None, &[], Some(2), b"hdx");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "RS+ $G foo\r\nRS+ ACC foo q 4\r\nRS- ACC foo q\r\nRMSG $G a + r q 1\r\nx\r\n\
HMSG $G a 2 3\r\nhdx\r\n"
        );
        let mut p = LeafParser::route(Limits {
            max_payload: 1 << 20,
            max_control_line: 4096,
        });
        let mut buf = BytesMut::from(&out[..]);
        let mut ops = Vec::new();
        while let Some(op) = p.parse(&mut buf).expect("parse") {
            ops.push(op);
        }
        assert_eq!(ops.len(), 5);
        assert_eq!(
            ops[1],
            LeafOp::Sub {
                account: Some(Bytes::from_static(b"ACC")),
                key: Bytes::from_static(b"foo q"),
                subject: Bytes::from_static(b"foo"),
                queue: Some(Bytes::from_static(b"q")),
                weight: 4
            }
        );
        let LeafOp::Msg {
            account,
            subject,
            reply,
            queues,
            ..
        } = &ops[3]
        else {
            panic!("{:?}", ops[3]);
        };
        assert_eq!(account.as_deref(), Some(&b"$G"[..]));
        assert_eq!(&subject[..], b"a");
        assert_eq!(reply.as_deref(), Some(&b"r"[..]));
        assert_eq!(queues.as_deref(), Some(&b"q"[..]));
        // Each dialect refuses the other's ops.
        for (route, bad) in [
            (true, &b"LS+ foo\r\n"[..]),
            (true, b"LMSG a 1\r\nx\r\n"),
            (false, b"RS+ $G foo\r\n"),
            (false, b"RMSG $G a 1\r\nx\r\n"),
            (true, b"RS+ $G\r\n"),
        ] {
            let mut p = if route {
                LeafParser::route(Limits {
                    max_payload: 1 << 20,
                    max_control_line: 4096,
                })
            } else {
                parser()
            };
            let mut buf = BytesMut::from(bad);
            assert!(
                p.parse(&mut buf).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in [
            &b"LS+ a q\r\n"[..],
            b"LS+ a q x\r\n",
            b"LS- a b c\r\n",
            b"LMSG a\r\n",
            b"LMSG a x y 2\r\nhi\r\n",
            b"LMSG a two\r\n",
            b"HMSG a 5 2\r\nhi\r\n",
            b"NOPE\r\n",
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(
                parser().parse(&mut buf).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut buf = BytesMut::from(&b"LMSG a 2\r\nhiX\r\n"[..]);
        assert!(
            parser().parse(&mut buf).is_err(),
            "payload not ended by CRLF"
        );
    }
}
