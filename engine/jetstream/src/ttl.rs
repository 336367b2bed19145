//! Per-message TTL (`Nats-TTL`, streams with `allow_msg_ttl`), as nats-server 2.11+ runs it:
//! a message stored with a TTL of N seconds is removed N seconds after its timestamp. With
//! `subject_delete_marker_ttl`, removing the last message of a subject that way leaves a
//! marker in its place (`Nats-Marker-Reason: MaxAge`, itself expiring after the marker TTL,
//! rolling up the subject), which is how KV watchers see a key expire.
//!
//! The expiry queue lives in memory with its stream; after a restart it is rebuilt by
//! reading the stream's messages once (`Nats-TTL` is in each message's headers, as
//! nats-server rebuilds its wheel by a scan when its state file is missing).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::errors::{self, ApiError};

/// A `Nats-TTL` value: seconds (positive), or -1 for "never expires" (`never`, `-1` is not
/// accepted: nats-server's parse treats a negative number as a failure). Go duration
/// strings count whole seconds and must be at least one second.
pub(crate) fn parse(v: &[u8]) -> Result<i64, ApiError> {
    let invalid = || errors::MESSAGE_TTL_INVALID.err();
    let s = std::str::from_utf8(v).map_err(|_| invalid())?;
    if s.eq_ignore_ascii_case("never") {
        return Ok(-1);
    }
    if let Some(d) = crate::consumer_config::parse_go_duration(s) {
        if d < 1_000_000_000 {
            return Err(invalid());
        }
        return Ok(d / 1_000_000_000);
    }
    // A bare number of seconds; nats-server's integer parse takes ASCII digits only.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    s.parse::<i64>().map_err(|_| invalid())
}

/// The headers of a subject delete marker whose own TTL is `ttl_s` seconds.
pub(crate) fn marker_headers(ttl_s: i64) -> Vec<u8> {
    let ttl = tachyon_settings::gofmt::go_duration(Duration::from_secs(ttl_s.max(0) as u64));
    format!("NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: {ttl}\r\nNats-Rollup: sub\r\n\r\n")
        .into_bytes()
}

/// `headers` with the `Nats-TTL` value replaced by `ttl_s` (nats-server raises a TTL below the
/// subject delete marker TTL to it and says so in the stored headers).
pub(crate) fn with_ttl(headers: &[u8], ttl_s: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len() + 8);
    let mut lines = headers.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let is_last = lines.peek().is_none();
        let name = line.split(|b| *b == b':').next().unwrap_or(&[]);
        if name.eq_ignore_ascii_case(b"Nats-TTL") && line.contains(&b':') {
            out.extend_from_slice(format!("Nats-TTL: {ttl_s}\r").as_bytes());
        } else {
            out.extend_from_slice(line);
        }
        if !is_last {
            out.push(b'\n');
        }
    }
    out
}

/// Messages due to expire, soonest first.
#[derive(Default)]
pub(crate) struct Expiries {
    due: BinaryHeap<Reverse<(i64, u64)>>,
}

impl Expiries {
    pub(crate) fn push(&mut self, at: i64, seq: u64) {
        self.due.push(Reverse((at, seq)));
    }

    /// When the next one is due (ns since the epoch).
    pub(crate) fn next(&self) -> Option<i64> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the sequences due at `now`, in sequence order.
    pub(crate) fn take_due(&mut self, now: i64) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            out.push(seq);
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ttls_as_nats_server() {
        assert_eq!(parse(b"2s").ok(), Some(2));
        assert_eq!(parse(b"1.5s").ok(), Some(1));
        assert_eq!(parse(b"1m").ok(), Some(60));
        assert_eq!(parse(b"1h30m").ok(), Some(5400));
        assert_eq!(parse(b"10").ok(), Some(10));
        assert_eq!(parse(b"never").ok(), Some(-1));
        assert_eq!(parse(b"NEVER").ok(), Some(-1));
        for bad in [
            &b"500ms"[..],
            b"-1",
            b"abc",
            b"",
            b"1x",
            b"-5s",
            b"0s",
            b"0",
        ] {
            assert_eq!(
                parse(bad).err(),
                Some(errors::MESSAGE_TTL_INVALID.err()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn markers_and_raised_ttls_read_back() {
        let m = marker_headers(3);
        assert_eq!(
            m,
            b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 3s\r\nNats-Rollup: sub\r\n\r\n"
        );
        let h = b"NATS/1.0\r\nA: b\r\nNats-TTL: 1s\r\n\r\n";
        assert_eq!(
            with_ttl(h, 5),
            b"NATS/1.0\r\nA: b\r\nNats-TTL: 5\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn expiries_come_due_in_order() {
        let mut e = Expiries::default();
        e.push(30, 3);
        e.push(10, 1);
        e.push(20, 7);
        assert_eq!(e.next(), Some(10));
        assert_eq!(e.take_due(20), vec![1, 7]);
        assert_eq!(e.next(), Some(30));
        assert!(e.take_due(29).is_empty());
        assert_eq!(e.take_due(i64::MAX), vec![3]);
        assert_eq!(e.next(), None);
    }
}
