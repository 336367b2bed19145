//! NATS message header blocks: `NATS/1.0[ code[ description]]\r\n(Key: value\r\n)*\r\n`.

/// The version line every header block starts with.
pub const VERSION: &[u8] = b"NATS/1.0";
/// An empty header block.
pub const EMPTY_BLOCK: &[u8] = b"NATS/1.0\r\n\r\n";
/// Status code of a no-responders reply.
pub const NO_RESPONDERS: u16 = 503;

/// A status-only block, e.g. `NATS/1.0 503\r\n\r\n` or `NATS/1.0 408 Request Timeout\r\n\r\n`.
pub fn status_block(code: u16, description: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + description.map_or(0, str::len));
    write_status_line(&mut out, code, description);
    out.extend_from_slice(b"\r\n");
    out
}

fn write_status_line(out: &mut Vec<u8>, code: u16, description: Option<&str>) {
    out.extend_from_slice(VERSION);
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        out.push(b' ');
        out.extend_from_slice(d.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// The header block nats-server sends to a requester with no responders:
/// `NATS/1.0 503\r\nNats-Subject: <subject>\r\n\r\n` (32 bytes plus the subject).
pub fn no_responders_block(out: &mut Vec<u8>, subject: &[u8]) {
    write_status_line(out, NO_RESPONDERS, None);
    out.extend_from_slice(b"Nats-Subject: ");
    out.extend_from_slice(subject);
    out.extend_from_slice(b"\r\n\r\n");
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header block does not start with NATS/1.0")]
    MissingVersion,
    #[error("bad status code in header block")]
    BadStatus,
    #[error("malformed header line")]
    BadLine,
    #[error("header block not terminated by an empty line")]
    Unterminated,
}

/// A parsed view of a header block; borrows the block, allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderBlock<'a> {
    pub status: Option<u16>,
    pub description: Option<&'a str>,
    /// The `Key: value\r\n` lines, already checked by [`parse`].
    fields: &'a [u8],
}

impl<'a> HeaderBlock<'a> {
    /// `(key, value)` pairs in order, value with surrounding blanks trimmed.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.fields
            .split(|&b| b == b'\n')
            .filter_map(|line| split_field(line.strip_suffix(b"\r").unwrap_or(line)))
    }

    /// First value of `key`, compared exactly like nats-server's `sliceHeader`.
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// First value of `key`, compared ignoring ASCII case (MIME header semantics).
    pub fn get_ignore_case(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if line.is_empty() {
        return None;
    }
    let colon = memchr::memchr(b':', line)?;
    Some((&line[..colon], trim(&line[colon + 1..])))
}

/// Parses a header block as the NATS clients do: the version line with an optional
/// 3-digit status and description, then `Key: value` lines, then an empty line.
pub fn parse(block: &[u8]) -> Result<HeaderBlock<'_>, HeaderError> {
    let rest = block
        .strip_prefix(VERSION)
        .ok_or(HeaderError::MissingVersion)?;
    let eol = memchr::memchr(b'\n', rest).ok_or(HeaderError::Unterminated)?;
    let first = &rest[..eol];
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let mut status = None;
    let mut description = None;
    let first = trim(first);
    if !first.is_empty() {
        if first.len() < 3 || !first[..3].iter().all(u8::is_ascii_digit) {
            return Err(HeaderError::BadStatus);
        }
        if first.len() > 3 && !matches!(first[3], b' ' | b'\t') {
            return Err(HeaderError::BadStatus);
        }
        let code = first[..3]
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        status = Some(code);
        let d = trim(&first[3..]);
        if !d.is_empty() {
            description = Some(std::str::from_utf8(d).map_err(|_| HeaderError::BadStatus)?);
        }
    }
    let fields_all = &rest[eol + 1..];
    let mut pos = 0;
    loop {
        let nl = memchr::memchr(b'\n', &fields_all[pos..]).ok_or(HeaderError::Unterminated)?;
        let line = &fields_all[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(HeaderBlock {
                status,
                description,
                fields: &fields_all[..pos],
            });
        }
        match split_field(line) {
            Some((k, _)) if !k.is_empty() && !k.iter().any(|&b| matches!(b, b' ' | b'\t')) => {}
            _ => return Err(HeaderError::BadLine),
        }
        pos += nl + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_blocks() {
        assert_eq!(status_block(503, None), b"NATS/1.0 503\r\n\r\n");
        assert_eq!(
            status_block(408, Some("Request Timeout")),
            b"NATS/1.0 408 Request Timeout\r\n\r\n"
        );
        let b = status_block(404, Some("No Messages"));
        let h = parse(&b).unwrap();
        assert_eq!(h.status, Some(404));
        assert_eq!(h.description, Some("No Messages"));
        assert!(h.is_empty());
    }

    #[test]
    fn no_responders_matches_nats_server_length() {
        let mut out = Vec::new();
        no_responders_block(&mut out, b"foo.bar");
        assert_eq!(out, b"NATS/1.0 503\r\nNats-Subject: foo.bar\r\n\r\n");
        assert_eq!(out.len(), 32 + 7);
        let h = parse(&out).unwrap();
        assert_eq!(h.status, Some(503));
        assert_eq!(h.get(b"Nats-Subject"), Some(&b"foo.bar"[..]));
    }

    #[test]
    fn fields() {
        let b = b"NATS/1.0\r\nA: 1\r\nNats-Msg-Id:  x y \r\nA: 2\r\n\r\n";
        let h = parse(b).unwrap();
        assert_eq!(h.status, None);
        assert_eq!(h.description, None);
        assert_eq!(h.get(b"A"), Some(&b"1"[..]));
        assert_eq!(h.get(b"nats-msg-id"), None);
        assert_eq!(h.get_ignore_case(b"nats-msg-id"), Some(&b"x y"[..]));
        let all: Vec<_> = h.iter().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2], (&b"A"[..], &b"2"[..]));
    }

    #[test]
    fn empty_block() {
        let h = parse(EMPTY_BLOCK).unwrap();
        assert!(h.is_empty());
        assert_eq!(h.status, None);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"HTTP/1.0\r\n\r\n"), Err(HeaderError::MissingVersion));
        assert_eq!(parse(b"NATS/1.0 5x3\r\n\r\n"), Err(HeaderError::BadStatus));
        assert_eq!(parse(b"NATS/1.0 5034\r\n\r\n"), Err(HeaderError::BadStatus));
        assert_eq!(
            parse(b"NATS/1.0\r\nA: 1\r\n"),
            Err(HeaderError::Unterminated)
        );
        assert_eq!(parse(b"NATS/1.0"), Err(HeaderError::Unterminated));
        assert_eq!(
            parse(b"NATS/1.0\r\nnocolon\r\n\r\n"),
            Err(HeaderError::BadLine)
        );
        assert_eq!(
            parse(b"NATS/1.0\r\nA B: 1\r\n\r\n"),
            Err(HeaderError::BadLine)
        );
    }
}
