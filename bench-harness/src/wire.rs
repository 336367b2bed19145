//! Just enough of the NATS client protocol for a load generator: encoders that
//! append to a caller-owned buffer and an incremental parser that borrows from
//! the read buffer, so the per-message path allocates nothing.

use memchr::memchr;
use thiserror::Error;

/// Longest control line we accept; INFO from a big cluster fits easily.
pub const MAX_CONTROL_LINE: usize = 64 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("unknown protocol operation: {0:?}")]
    UnknownOp(String),
    #[error("malformed {op} line: {line:?}")]
    Malformed { op: &'static str, line: String },
    #[error("control line longer than {MAX_CONTROL_LINE} bytes")]
    LineTooLong,
    #[error("payload not terminated by CRLF")]
    MissingPayloadCrlf,
}

/// One server-to-client operation, borrowing from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Info(&'a [u8]),
    Msg {
        subject: &'a [u8],
        sid: u64,
        reply: Option<&'a [u8]>,
        /// Header block (empty for `MSG`), including the `NATS/1.0` line.
        headers: &'a [u8],
        payload: &'a [u8],
    },
    Ping,
    Pong,
    Ok,
    Err(&'a [u8]),
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn parse_num(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    Some(n)
}

/// Splits on runs of spaces/tabs into at most `N` fields without allocating.
fn split_fields<const N: usize>(line: &[u8]) -> Option<([&[u8]; N], usize)> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut n = 0;
    for field in line
        .split(|c| *c == b' ' || *c == b'\t')
        .filter(|f| !f.is_empty())
    {
        if n == N {
            return None;
        }
        out[n] = field;
        n += 1;
    }
    Some((out, n))
}

/// Parses one complete operation from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of an operation (read more and
/// call again), else the event and how many bytes it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Event<'_>, usize)>, WireError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > MAX_CONTROL_LINE {
            return Err(WireError::LineTooLong);
        }
        return Ok(None);
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let line = &buf[..line_end];
    let after_line = nl + 1;
    let op_end = line
        .iter()
        .position(|c| *c == b' ' || *c == b'\t')
        .unwrap_or(line.len());
    let op = &line[..op_end];
    let args = &line[op_end..];

    if op.eq_ignore_ascii_case(b"MSG") || op.eq_ignore_ascii_case(b"HMSG") {
        let with_headers = op.len() == 4;
        let name = if with_headers { "HMSG" } else { "MSG" };
        let bad = || WireError::Malformed {
            op: name,
            line: lossy(line),
        };
        let (f, n) = split_fields::<5>(args).ok_or_else(bad)?;
        let (subject, sid, reply, hdr_len, total_len) = match (with_headers, n) {
            (false, 3) => (f[0], f[1], None, Some(0), parse_num(f[2])),
            (false, 4) => (f[0], f[1], Some(f[2]), Some(0), parse_num(f[3])),
            (true, 4) => (f[0], f[1], None, parse_num(f[2]), parse_num(f[3])),
            (true, 5) => (f[0], f[1], Some(f[2]), parse_num(f[3]), parse_num(f[4])),
            _ => return Err(bad()),
        };
        let sid = parse_num(sid).ok_or_else(bad)?;
        let (Some(hdr_len), Some(total_len)) = (hdr_len, total_len) else {
            return Err(bad());
        };
        let hdr_len = usize::try_from(hdr_len).map_err(|_| bad())?;
        let total_len = usize::try_from(total_len).map_err(|_| bad())?;
        if hdr_len > total_len {
            return Err(bad());
        }
        let end = after_line
            .checked_add(total_len)
            .and_then(|e| e.checked_add(2))
            .ok_or_else(bad)?;
        if buf.len() < end {
            return Ok(None);
        }
        if &buf[end - 2..end] != b"\r\n" {
            return Err(WireError::MissingPayloadCrlf);
        }
        let body = &buf[after_line..after_line + total_len];
        let (headers, payload) = body.split_at(hdr_len);
        return Ok(Some((
            Event::Msg {
                subject,
                sid,
                reply,
                headers,
                payload,
            },
            end,
        )));
    }

    let ev = if op.eq_ignore_ascii_case(b"PING") {
        Event::Ping
    } else if op.eq_ignore_ascii_case(b"PONG") {
        Event::Pong
    } else if op.eq_ignore_ascii_case(b"+OK") {
        Event::Ok
    } else if op.eq_ignore_ascii_case(b"-ERR") {
        Event::Err(args.trim_ascii())
    } else if op.eq_ignore_ascii_case(b"INFO") {
        Event::Info(args.trim_ascii())
    } else {
        return Err(WireError::UnknownOp(lossy(op)));
    };
    Ok(Some((ev, after_line)))
}

fn push_num(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends `PUB subject [reply] len\r\npayload\r\n`.
pub fn encode_pub(out: &mut Vec<u8>, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(r) = reply {
        out.extend_from_slice(r);
        out.push(b' ');
    }
    push_num(out, payload.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Appends `SUB subject [queue] sid\r\n`.
pub fn encode_sub(out: &mut Vec<u8>, subject: &[u8], queue: Option<&[u8]>, sid: u64) {
    out.extend_from_slice(b"SUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(q) = queue {
        out.extend_from_slice(q);
        out.push(b' ');
    }
    push_num(out, sid);
    out.extend_from_slice(b"\r\n");
}

/// Appends a `CONNECT` that asks for no `+OK` echoes, so only data and PONGs come back.
pub fn encode_connect(out: &mut Vec<u8>, name: &str) {
    let opts = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "tls_required": false,
        "name": name,
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": 1,
        "headers": true,
        "no_responders": true,
        "echo": true,
    });
    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(opts.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn encode_ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PING\r\n");
}

pub fn encode_pong(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PONG\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_control_ops() {
        let buf = b"PING\r\nPONG\r\n+OK\r\n-ERR 'Slow Consumer'\r\nINFO {\"a\":1}\r\n";
        let mut off = 0;
        let mut seen = Vec::new();
        while let Some((ev, used)) = parse(&buf[off..]).unwrap() {
            seen.push(format!("{ev:?}"));
            off += used;
        }
        assert_eq!(off, buf.len());
        assert_eq!(seen[0], "Ping");
        assert_eq!(seen[1], "Pong");
        assert_eq!(seen[2], "Ok");
        assert!(matches!(
            parse(b"-ERR 'Slow Consumer'\r\n").unwrap(),
            Some((Event::Err(b"'Slow Consumer'"), _))
        ));
        assert!(matches!(
            parse(b"INFO {\"a\":1}\r\n").unwrap(),
            Some((Event::Info(b"{\"a\":1}"), _))
        ));
    }

    #[test]
    fn parses_msg_with_and_without_reply() {
        let (ev, used) = parse(b"MSG foo.bar 9 5\r\nhello\r\nPING").unwrap().unwrap();
        assert_eq!(used, 24);
        assert_eq!(
            ev,
            Event::Msg {
                subject: b"foo.bar",
                sid: 9,
                reply: None,
                headers: b"",
                payload: b"hello"
            }
        );
        let (ev, _) = parse(b"MSG a 1 _INBOX.x 2\r\nhi\r\n").unwrap().unwrap();
        assert!(matches!(
            ev,
            Event::Msg {
                reply: Some(b"_INBOX.x"),
                payload: b"hi",
                ..
            }
        ));
    }

    #[test]
    fn parses_hmsg() {
        let h = b"NATS/1.0\r\nA: b\r\n\r\n";
        let mut buf = format!("HMSG s 3 r {} {}\r\n", h.len(), h.len() + 3).into_bytes();
        buf.extend_from_slice(h);
        buf.extend_from_slice(b"xyz\r\n");
        let (ev, used) = parse(&buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(
            ev,
            Event::Msg {
                subject: b"s",
                sid: 3,
                reply: Some(b"r"),
                headers: h,
                payload: b"xyz"
            }
        );
    }

    #[test]
    fn partial_input_waits_for_more() {
        let full = b"MSG foo 1 5\r\nhello\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(full).unwrap().is_some());
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(parse(b"FOO\r\n"), Err(WireError::UnknownOp(_))));
        assert!(matches!(
            parse(b"MSG foo x 5\r\nhello\r\n"),
            Err(WireError::Malformed { .. })
        ));
        assert_eq!(
            parse(b"MSG foo 1 5\r\nhelloXX"),
            Err(WireError::MissingPayloadCrlf)
        );
        assert!(matches!(
            parse(b"HMSG foo 1 9 5\r\n"),
            Err(WireError::Malformed { .. })
        ));
        let long = vec![b'a'; MAX_CONTROL_LINE + 1];
        assert_eq!(parse(&long), Err(WireError::LineTooLong));
    }

    #[test]
    fn encoders_round_trip_shapes() {
        let mut out = Vec::new();
        encode_pub(&mut out, b"foo", None, b"hello");
        encode_pub(&mut out, b"foo", Some(b"r.1"), b"");
        encode_sub(&mut out, b"foo.>", None, 1);
        encode_sub(&mut out, b"foo", Some(b"q"), 12345);
        encode_ping(&mut out);
        encode_pong(&mut out);
        assert_eq!(
            out,
            b"PUB foo 5\r\nhello\r\nPUB foo r.1 0\r\n\r\nSUB foo.> 1\r\nSUB foo q 12345\r\nPING\r\nPONG\r\n"
        );
        let mut c = Vec::new();
        encode_connect(&mut c, "x");
        assert!(c.starts_with(b"CONNECT {"));
        assert!(c.ends_with(b"}\r\n"));
        let json: serde_json::Value = serde_json::from_slice(&c[8..c.len() - 2]).unwrap();
        assert_eq!(json["verbose"], false);
    }
}
