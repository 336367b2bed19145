//! Service-import response tracking, as nats-server's response service imports: a request
//! that crosses into an exporting account gets a fresh reply subject `_R_.<shard>.<token>` on
//! the shard that routed it, and that shard alone decides what answers reach the requester:
//! one (singleton, the default), any number (stream), or chunks until an empty one (chunked),
//! each until the export's response threshold passes (since the last response for streams and
//! chunks). A response published on another shard is forwarded here (`Envelope::Response`).
//! The exporter never sees the requester's reply subject, and an answer cannot be replayed.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tachyon_settings::accounts::{ResponseType, Responses};

use crate::accounts::AccountId;
use crate::piece::Piece;

const PREFIX: &[u8] = b"_R_.";

/// One request waiting for its responses.
#[derive(Debug)]
struct Pending {
    /// The requester's account and reply subject.
    to: AccountId,
    reply: Bytes,
    /// Only clients of this account answer.
    exporter: AccountId,
    responses: Responses,
    /// Opened, or last answered (streams and chunks).
    since: Instant,
}

/// What becomes of one response.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it in `to` under the requester's `reply`.
    Deliver { to: AccountId, reply: Bytes },
    /// Unknown, spent, expired, or not from the exporter: nobody gets it.
    Drop,
}

/// The reply subjects one shard opened.
pub struct ResponseTable {
    shard: u16,
    next: u64,
    /// Keys the tokens, so a client cannot guess another request's reply subject.
    key: std::collections::hash_map::RandomState,
    open: HashMap<u64, Pending>,
}

impl ResponseTable {
    pub fn new(shard: u16) -> ResponseTable {
        ResponseTable {
            shard,
            next: 0,
            key: Default::default(),
            open: HashMap::new(),
        }
    }

    /// A reply subject for a request of `to` (answering on `reply`) into `exporter`.
    pub fn open<'a>(
        &mut self,
        to: AccountId,
        reply: impl Into<Piece<'a>>,
        exporter: AccountId,
        responses: Responses,
        now: Instant,
    ) -> Bytes {
        let token = loop {
            self.next += 1;
            let t = self.key.hash_one(self.next);
            if !self.open.contains_key(&t) {
                break t;
            }
        };
        self.open.insert(
            token,
            Pending {
                to,
                reply: reply.into().to_bytes(),
                exporter,
                responses,
                since: now,
            },
        );
        let mut out = BytesMut::with_capacity(PREFIX.len() + 24);
        out.put_slice(PREFIX);
        use std::fmt::Write as _;
        let _ = write!(out, "{}.{token:x}", self.shard);
        out.freeze()
    }

    /// The request behind `subject` found no responder: its reply subject closes at once.
    pub fn close(&mut self, subject: &[u8]) {
        if let Some((shard, token)) = parse(subject) {
            if shard == self.shard {
                self.open.remove(&token);
            }
        }
    }

    /// A response published in `account` on this shard's reply subject `token`; `empty`: it
    /// has neither headers nor body (a chunked stream's end).
    pub fn answer(&mut self, token: u64, account: AccountId, empty: bool, now: Instant) -> Verdict {
        let Some(p) = self.open.get_mut(&token) else {
            return Verdict::Drop;
        };
        if p.exporter != account {
            return Verdict::Drop;
        }
        if now.saturating_duration_since(p.since) > p.responses.threshold {
            self.open.remove(&token);
            return Verdict::Drop;
        }
        let verdict = Verdict::Deliver {
            to: p.to,
            reply: p.reply.clone(),
        };
        match p.responses.kind {
            ResponseType::Singleton => {
                self.open.remove(&token);
            }
            ResponseType::Chunked if empty => {
                self.open.remove(&token);
            }
            ResponseType::Streamed | ResponseType::Chunked => p.since = now,
        }
        verdict
    }

    /// Forgets reply subjects past their threshold.
    pub fn sweep(&mut self, now: Instant) {
        self.open
            .retain(|_, p| now.saturating_duration_since(p.since) <= p.responses.threshold);
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// How often a shard forgets expired reply subjects (answers check the threshold themselves).
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// `(shard, token)` of a reply subject `_R_.<shard>.<token>`.
pub fn parse(subject: &[u8]) -> Option<(u16, u64)> {
    let rest = subject.strip_prefix(PREFIX)?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let shard = std::str::from_utf8(rest.get(..dot)?).ok()?.parse().ok()?;
    let token = u64::from_str_radix(std::str::from_utf8(rest.get(dot + 1..)?).ok()?, 16).ok()?;
    Some((shard, token))
}

/// The `Nats-Request-Info` header nats-server adds to a request crossing into an exporting
/// account (`{"acc":..,"rtt":..}`: what it shares without `share: true`), in front of the
/// message's own headers. Returns the new header length and message.
pub fn with_request_info(
    account: &str,
    rtt: Duration,
    header_len: Option<usize>,
    payload: &[u8],
) -> (usize, Bytes) {
    let mut line = String::with_capacity(48 + account.len());
    line.push_str("Nats-Request-Info: {\"acc\":");
    json_string(&mut line, account);
    let nanos = rtt.as_nanos();
    if nanos > 0 {
        use std::fmt::Write as _;
        let _ = write!(line, ",\"rtt\":{nanos}");
    }
    line.push_str("}\r\n");
    let mut out = BytesMut::with_capacity(payload.len() + line.len() + 16);
    let body_at = match header_len {
        // `NATS/1.0 ...\r\n<headers>\r\n`: the line goes before the blank line that ends it.
        Some(h) if h >= 4 && payload.get(..h).is_some_and(|b| b.ends_with(b"\r\n\r\n")) => {
            out.put_slice(&payload[..h - 2]);
            h
        }
        _ => {
            out.put_slice(b"NATS/1.0\r\n");
            header_len.unwrap_or(0)
        }
    };
    out.put_slice(line.as_bytes());
    out.put_slice(b"\r\n");
    let new_header_len = out.len();
    out.put_slice(payload.get(body_at..).unwrap_or_default());
    (new_header_len, out.freeze())
}

/// `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responses(kind: ResponseType, ms: u64) -> Responses {
        Responses {
            kind,
            threshold: Duration::from_millis(ms),
        }
    }

    fn token(subject: &Bytes) -> u64 {
        match parse(subject) {
            Some((3, t)) => t,
            other => panic!("{subject:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn a_singleton_reply_subject_takes_one_answer_from_the_exporter() {
        let now = Instant::now();
        let mut t = ResponseTable::new(3);
        let reply = Bytes::from_static(b"_INBOX.x");
        let s = t.open(2, &reply, 1, Responses::default(), now);
        assert!(
            !s.windows(8).any(|w| w == b"_INBOX.x"),
            "the exporter sees {s:?}"
        );
        let tok = token(&s);
        // Another account cannot answer, nor use it up.
        assert_eq!(t.answer(tok, 2, false, now), Verdict::Drop);
        assert_eq!(
            t.answer(tok, 1, false, now),
            Verdict::Deliver { to: 2, reply }
        );
        assert_eq!(t.answer(tok, 1, false, now), Verdict::Drop);
        assert_eq!(t.answer(tok ^ 1, 1, false, now), Verdict::Drop);
        assert!(t.is_empty());
    }

    #[test]
    fn streams_last_while_answered_and_chunks_end_on_an_empty_message() {
        let now = Instant::now();
        let mut t = ResponseTable::new(3);
        let reply = Bytes::from_static(b"r");
        let s = token(&t.open(0, &reply, 1, responses(ResponseType::Streamed, 100), now));
        for i in 1..=5 {
            let at = now + Duration::from_millis(80 * i);
            assert!(matches!(t.answer(s, 1, false, at), Verdict::Deliver { .. }));
        }
        // 100 ms of silence: closed.
        assert_eq!(
            t.answer(s, 1, false, now + Duration::from_millis(400 + 101)),
            Verdict::Drop
        );
        let c = token(&t.open(0, &reply, 1, responses(ResponseType::Chunked, 100), now));
        assert!(matches!(
            t.answer(c, 1, false, now),
            Verdict::Deliver { .. }
        ));
        assert!(matches!(t.answer(c, 1, true, now), Verdict::Deliver { .. }));
        assert_eq!(t.answer(c, 1, false, now), Verdict::Drop);
    }

    #[test]
    fn a_late_answer_is_dropped_and_sweeps_forget() {
        let now = Instant::now();
        let mut t = ResponseTable::new(3);
        let reply = Bytes::from_static(b"r");
        let s = token(&t.open(0, &reply, 1, responses(ResponseType::Singleton, 50), now));
        t.open(0, &reply, 1, responses(ResponseType::Singleton, 50), now);
        assert_eq!(
            t.answer(s, 1, false, now + Duration::from_millis(51)),
            Verdict::Drop
        );
        assert_eq!(t.len(), 1);
        t.sweep(now + Duration::from_millis(51));
        assert!(t.is_empty());
    }

    #[test]
    fn parse_refuses_what_open_never_makes() {
        assert_eq!(parse(b"_R_.1.ff"), Some((1, 255)));
        for bad in [
            &b"_R_.x.ff"[..],
            b"_R_.1",
            b"_R_.1.zz",
            b"_R_.1.ff.g",
            b"foo",
            b"_R_.",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn account_names_are_json_escaped() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\u0001\"");
    }

    #[test]
    fn request_info_goes_in_front_of_the_messages_own_headers() {
        let (h, m) = with_request_info("B", Duration::from_nanos(1500), None, b"hi");
        assert_eq!(
            &m[..],
            b"NATS/1.0\r\nNats-Request-Info: {\"acc\":\"B\",\"rtt\":1500}\r\n\r\nhi"
        );
        assert_eq!(&m[h..], b"hi");
        let own = b"NATS/1.0\r\nX: 1\r\n\r\nbody";
        let (h, m) = with_request_info("B", Duration::ZERO, Some(18), own);
        assert_eq!(
            &m[..],
            b"NATS/1.0\r\nX: 1\r\nNats-Request-Info: {\"acc\":\"B\"}\r\n\r\nbody"
        );
        assert_eq!(&m[h..], b"body");
    }
}
