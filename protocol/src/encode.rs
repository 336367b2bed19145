//! Encoders that append protocol text to a `Vec<u8>`: server ops for the engine and
//! client ops for the bench harness and tests. Nothing allocates beyond the Vec growing.

use crate::json::{ConnectOptions, ServerInfo};

pub const PING: &[u8] = b"PING\r\n";
pub const PONG: &[u8] = b"PONG\r\n";
pub const OK: &[u8] = b"+OK\r\n";
const CRLF: &[u8] = b"\r\n";

pub(crate) fn num(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn word(out: &mut Vec<u8>, w: &[u8]) {
    out.push(b' ');
    out.extend_from_slice(w);
}

/// `MSG <subject> <sid> [reply] <size>\r\n<payload>\r\n`
pub fn msg(out: &mut Vec<u8>, subject: &[u8], sid: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    out.reserve(subject.len() + sid.len() + reply.map_or(0, <[u8]>::len) + payload.len() + 24);
    out.extend_from_slice(b"MSG");
    word(out, subject);
    word(out, sid);
    if let Some(r) = reply {
        word(out, r);
    }
    out.push(b' ');
    num(out, payload.len());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(payload);
    out.extend_from_slice(CRLF);
}

/// `HMSG <subject> <sid> [reply] <header_len> <total_len>\r\n<message>\r\n`,
/// where `message` is the header block followed by the payload.
pub fn hmsg(
    out: &mut Vec<u8>,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    header_len: usize,
    message: &[u8],
) {
    out.reserve(subject.len() + sid.len() + reply.map_or(0, <[u8]>::len) + message.len() + 36);
    out.extend_from_slice(b"HMSG");
    word(out, subject);
    word(out, sid);
    if let Some(r) = reply {
        word(out, r);
    }
    out.push(b' ');
    num(out, header_len);
    out.push(b' ');
    num(out, message.len());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(message);
    out.extend_from_slice(CRLF);
}

/// `-ERR '<text>'\r\n`
pub fn err(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"-ERR '");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"'\r\n");
}

/// `<op><json>\r\n` (`op` with its trailing space), for INFO and CONNECT of either protocol.
pub(crate) fn json_op(out: &mut Vec<u8>, op: &[u8], value: &impl serde::Serialize) {
    out.extend_from_slice(op);
    // Serializing strings, numbers and bools into a Vec cannot fail; on the
    // impossible error an empty object keeps the line well formed.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(CRLF);
}

/// `INFO <json>\r\n`
pub fn info(out: &mut Vec<u8>, info: &ServerInfo) {
    json_op(out, b"INFO ", info);
}

/// `PUB <subject> [reply] <size>\r\n<payload>\r\n`
pub fn pub_(out: &mut Vec<u8>, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    out.reserve(subject.len() + reply.map_or(0, <[u8]>::len) + payload.len() + 20);
    out.extend_from_slice(b"PUB");
    word(out, subject);
    if let Some(r) = reply {
        word(out, r);
    }
    out.push(b' ');
    num(out, payload.len());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(payload);
    out.extend_from_slice(CRLF);
}

/// `HPUB <subject> [reply] <header_len> <total_len>\r\n<headers><payload>\r\n`;
/// `headers` must be a complete block (see `headers`).
pub fn hpub(
    out: &mut Vec<u8>,
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) {
    out.reserve(subject.len() + reply.map_or(0, <[u8]>::len) + headers.len() + payload.len() + 32);
    out.extend_from_slice(b"HPUB");
    word(out, subject);
    if let Some(r) = reply {
        word(out, r);
    }
    out.push(b' ');
    num(out, headers.len());
    out.push(b' ');
    num(out, headers.len() + payload.len());
    out.extend_from_slice(CRLF);
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    out.extend_from_slice(CRLF);
}

/// `SUB <subject> [queue] <sid>\r\n`
pub fn sub(out: &mut Vec<u8>, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
    out.extend_from_slice(b"SUB");
    word(out, subject);
    if let Some(q) = queue {
        word(out, q);
    }
    word(out, sid);
    out.extend_from_slice(CRLF);
}

/// `UNSUB <sid> [max]\r\n`
pub fn unsub(out: &mut Vec<u8>, sid: &[u8], max: Option<u64>) {
    out.extend_from_slice(b"UNSUB");
    word(out, sid);
    if let Some(m) = max {
        out.push(b' ');
        num(out, m);
    }
    out.extend_from_slice(CRLF);
}

/// `CONNECT <json>\r\n`
pub fn connect(out: &mut Vec<u8>, options: &ConnectOptions) {
    json_op(out, b"CONNECT ", options);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ops() {
        let mut out = Vec::new();
        msg(&mut out, b"foo", b"1", None, b"hello");
        msg(&mut out, b"foo", b"22", Some(b"_INBOX.1"), b"");
        assert_eq!(
            out,
            b"MSG foo 1 5\r\nhello\r\nMSG foo 22 _INBOX.1 0\r\n\r\n".to_vec()
        );
        out.clear();
        hmsg(&mut out, b"s", b"9", Some(b"r"), 12, b"NATS/1.0\r\n\r\nhi");
        assert_eq!(out, b"HMSG s 9 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n".to_vec());
        out.clear();
        err(&mut out, crate::errors::INVALID_SUBJECT);
        assert_eq!(out, b"-ERR 'Invalid Subject'\r\n".to_vec());
        assert_eq!(PING, b"PING\r\n");
        assert_eq!(PONG, b"PONG\r\n");
        assert_eq!(OK, b"+OK\r\n");
    }

    #[test]
    fn info_line() {
        let mut out = Vec::new();
        let i = ServerInfo {
            server_id: "X".into(),
            ..Default::default()
        };
        info(&mut out, &i);
        assert!(out.starts_with(b"INFO {\"server_id\":\"X\","));
        assert!(out.ends_with(b"}\r\n"));
    }

    #[test]
    fn client_ops() {
        let mut out = Vec::new();
        pub_(&mut out, b"a", Some(b"r"), b"xy");
        hpub(&mut out, b"a", None, b"NATS/1.0\r\n\r\n", b"xy");
        sub(&mut out, b"a.*", Some(b"q"), b"1");
        sub(&mut out, b"a", None, b"2");
        unsub(&mut out, b"1", Some(5));
        unsub(&mut out, b"2", None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PUB a r 2\r\nxy\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nxy\r\nSUB a.* q 1\r\nSUB a 2\r\nUNSUB 1 5\r\nUNSUB 2\r\n"
        );
        let mut out = Vec::new();
        connect(
            &mut out,
            &ConnectOptions {
                verbose: false,
                ..Default::default()
            },
        );
        assert!(out.starts_with(b"CONNECT {\"verbose\":false,"));
        assert!(out.ends_with(b"}\r\n"));
    }
}
