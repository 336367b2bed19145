use bytes::{Buf, Bytes, BytesMut};

use super::super::tests::mixed_stream;
use super::super::{ClientOp, Limits, Parser, ProtocolError};

/// Everything a parse run produced: the ops, the error that stopped it, the bytes left over.
type Outcome = (Vec<ClientOp>, Option<ProtocolError>, usize);

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// The state machine alone.
    Slow,
    /// `parse` on the growing buffer: fast path first.
    Fast,
    /// As a connection reads: each read frozen, PUBs found in place (`peek_pub`), the rest
    /// parsed from the frozen bytes, what is left copied back before the next read.
    Reader,
}

/// Feeds `input` in the pieces `cuts` makes, parsing after each piece as `mode` says.
fn run(input: &[u8], cuts: &[usize], limits: Limits, mode: Mode) -> Outcome {
    let mut p = Parser::new(limits);
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[prev..c]);
        prev = c;
        if let Mode::Reader = mode {
            if p.needs_more(buf.len()) {
                continue;
            }
            let mut rest = buf.split().freeze();
            loop {
                if let Some(f) = p.peek_pub(&rest) {
                    let (subject, reply) = (rest.slice(f.subject), f.reply.map(|r| rest.slice(r)));
                    let body = rest.slice(f.body);
                    ops.push(ClientOp::publish(subject, reply, f.header_len, body));
                    rest.advance(f.len);
                    continue;
                }
                match p.parse(&mut rest) {
                    Ok(Some(op)) => ops.push(op),
                    Ok(None) => break,
                    Err(e) => return (ops, Some(e), rest.len()),
                }
            }
            buf.extend_from_slice(&rest);
            continue;
        }
        loop {
            let r = match mode {
                Mode::Fast => p.parse(&mut buf),
                _ => p.parse_slow(&mut buf),
            };
            match r {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => return (ops, Some(e), buf.len()),
            }
        }
    }
    (ops, None, buf.len())
}

fn same_with_and_without_fast_path(input: &[u8], limits: Limits) {
    let show = String::from_utf8_lossy(input);
    let whole = run(input, &[], limits, Mode::Slow);
    assert_eq!(run(input, &[], limits, Mode::Fast), whole, "input {show:?}");
    assert_eq!(
        run(input, &[], limits, Mode::Reader),
        whole,
        "input {show:?}"
    );
    for cut in 0..=input.len() {
        let slow = run(input, &[cut], limits, Mode::Slow);
        assert_eq!(
            run(input, &[cut], limits, Mode::Fast),
            slow,
            "input {show:?} cut at {cut}"
        );
        assert_eq!(
            run(input, &[cut], limits, Mode::Reader),
            slow,
            "input {show:?} cut at {cut}, read in place"
        );
    }
}

/// Calls the fast path alone on `input`; returns its op and what it left in the buffer.
fn fast_only(input: &[u8], limits: Limits) -> (Option<ClientOp>, Bytes) {
    let mut p = Parser::new(limits);
    let mut buf = BytesMut::from(input);
    let op = p.fast_pub(&mut buf);
    assert!(p.is_idle());
    (op, buf.freeze())
}

const LIMITS: Limits = Limits {
    max_payload: 16,
    max_control_line: 24,
};

/// Ordinary ops the fast path must take, each followed by a PING to show where it stopped.
const TAKEN: &[&[u8]] = &[
    b"PUB foo 5\r\nhello\r\n",
    b"pub foo 5\r\nhello\r\n",
    b"pUb foo 5\r\nhello\r\n",
    b"PUB\tfoo\t5\r\nhello\r\n",
    b"PUB  \t foo \t bar\t 5 \t\r\nhello\r\n",
    b"PUB foo bar 5\r\nhello\r\n",
    b"PUB foo 0\r\n\r\n",
    b"PUB foo r 0\r\n\r\n",
    b"PUB foo 000000016\r\n0123456789abcdef\r\n",
    b"PUB foo 16\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
    b"PUB f\rx 1\r\n.\r\n",
    b"PUB 123456789012345678 1 1\r\n.\r\n",
    b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    b"hpub foo 12 12\r\nNATS/1.0\r\n\r\n\r\n",
    b"HPub\tfoo  _INBOX.x\t12 16\r\nNATS/1.0\r\n\r\nhiya\r\n",
    b"HPUB foo 0 0\r\n\r\n",
];

#[test]
fn takes_ordinary_pub_and_hpub_like_the_state_machine() {
    for input in TAKEN {
        let mut with_ping = input.to_vec();
        with_ping.extend_from_slice(b"PING\r\n");
        let (op, rest) = fast_only(&with_ping, LIMITS);
        let show = String::from_utf8_lossy(input);
        assert!(op.is_some(), "fast path declined {show:?}");
        assert_eq!(&rest[..], b"PING\r\n", "input {show:?}");
        let (slow, err, _) = run(&with_ping, &[], LIMITS, Mode::Slow);
        assert_eq!(err, None);
        assert_eq!(Some(&slow[0]), op.as_ref(), "input {show:?}");
        same_with_and_without_fast_path(&with_ping, LIMITS);
    }
}

#[test]
fn fields_match_the_wire() {
    let (op, _) = fast_only(b"PUB\tfoo.bar  _INBOX.1 3\r\nabc\r\n", Limits::default());
    assert_eq!(
        op,
        Some(ClientOp::Pub {
            subject: Bytes::from_static(b"foo.bar"),
            reply: Some(Bytes::from_static(b"_INBOX.1")),
            payload: Bytes::from_static(b"abc"),
        })
    );
    let (op, _) = fast_only(b"hpub s 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", Limits::default());
    assert_eq!(
        op,
        Some(ClientOp::HPub {
            subject: Bytes::from_static(b"s"),
            reply: None,
            header_len: 12,
            message: Bytes::from_static(b"NATS/1.0\r\n\r\nhi"),
        })
    );
}

/// Inputs the fast path must leave to the state machine (untouched), with why.
const DECLINED: &[&[u8]] = &[
    b"PUB foo 5\nhello\r\n",   // bare \n: the state machine looks for a \r
    b"PUB foo 5\r\nhello\r",   // partial: trailer incomplete
    b"PUB foo 5\r\nhel",       // partial payload
    b"PUB foo 5\r",            // partial line
    b"PUB ",                   // nothing after the name
    b"PUB \r\n",               // first argument byte is \r
    b"PUB \n",                 // first argument byte is \n
    b"PUB foo 5\r\nhello\rx",  // bad trailer
    b"PUB foo 5\r\nhellox\n",  // bad trailer
    b"PUB foo 5\r\nhello\n\r", // bad trailer
    b"PUB foo 17\r\n0123456789abcdefg\r\n", // over max_payload
    b"PUB 12345678901234567890123 1\r\n.\r\n", // over max_control_line
    b"PUB foo\r\n",            // too few arguments
    b"PUB a b c 1\r\n.\r\n",   // too many
    b"PUB foo 1x\r\n.\r\n",    // bad size
    b"PUB foo 0123456789\r\n", // ten digits
    b"PUB foo -1\r\n.\r\n",    // sign
    b"HPUB foo 5\r\nhello\r\n", // missing header size
    b"HPUB foo 6 5\r\nhello\r\n", // header larger than total
    b"HPUB foo x 5\r\nhello\r\n", // bad header size
    b"HPUB a b c 1 1\r\n.\r\n", // too many
    b"PUBS foo 1\r\n.\r\n",    // not PUB
    b"PU",                     // partial name
    b"HPUBfoo 1\r\n.\r\n",     // no blank after the name
    b"SUB foo 1\r\n",          // other ops
    b"PING\r\n",
];

#[test]
fn leaves_everything_unusual_to_the_state_machine() {
    for input in DECLINED {
        let (op, rest) = fast_only(input, LIMITS);
        let show = String::from_utf8_lossy(input);
        assert_eq!(op, None, "fast path took {show:?}");
        assert_eq!(&rest[..], *input, "fast path touched {show:?}");
        same_with_and_without_fast_path(input, LIMITS);
    }
}

#[test]
fn limits_are_inclusive() {
    let at_payload = b"PUB foo 16\r\n0123456789abcdef\r\n";
    assert!(fast_only(at_payload, LIMITS).0.is_some());
    // 24 argument bytes exactly
    let at_line = b"PUB 1234567890123456789012 1\r\n.\r\n";
    assert!(fast_only(at_line, LIMITS).0.is_some());
    let over_line = b"PUB 12345678901234567890123 1\r\n.\r\n";
    assert_eq!(fast_only(over_line, LIMITS).0, None);
    assert!(matches!(
        run(over_line, &[], LIMITS, Mode::Fast).1,
        Some(ProtocolError::MaxControlLine { len: 25, max: 24 })
    ));
    assert!(matches!(
        run(b"PUB foo 17\r\n", &[], LIMITS, Mode::Fast).1,
        Some(ProtocolError::MaxPayload { size: 17, max: 16 })
    ));
}

#[test]
fn mixed_stream_same_with_and_without_fast_path() {
    same_with_and_without_fast_path(&mixed_stream(), Limits::default());
}

#[test]
fn every_ok_and_declined_input_back_to_back() {
    let mut all = Vec::new();
    for input in TAKEN {
        all.extend_from_slice(input);
    }
    for input in DECLINED {
        let mut stream = all.clone();
        stream.extend_from_slice(input);
        same_with_and_without_fast_path(&stream, LIMITS);
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_path_changes_nothing(
            data in proptest::collection::vec(
                prop_oneof![
                    Just(&b"PUB "[..]), Just(&b"pub\t"[..]), Just(&b"HPUB "[..]), Just(&b"hpub "[..]),
                    Just(&b" "[..]), Just(&b"\t"[..]), Just(&b"\r\n"[..]), Just(&b"\r"[..]),
                    Just(&b"\n"[..]), Just(&b"1"[..]), Just(&b"0"[..]), Just(&b"12"[..]),
                    Just(&b"foo"[..]), Just(&b"x"[..]), Just(&b"PING\r\n"[..]),
                ],
                0..40),
            cuts in proptest::collection::vec(0usize..200, 0..4))
        {
            let input: Vec<u8> = data.concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let limits = Limits { max_payload: 12, max_control_line: 16 };
            let slow = run(&input, &cuts, limits, Mode::Slow);
            prop_assert_eq!(run(&input, &cuts, limits, Mode::Fast), slow.clone());
            prop_assert_eq!(run(&input, &cuts, limits, Mode::Reader), slow);
        }
    }
}

#[test]
fn peeking_takes_nothing_and_finds_what_parse_takes() {
    let p = Parser::new(Limits::default());
    let input = b"PUB foo.bar _INBOX.1 3\r\nabc\r\nPING\r\n";
    let f = p.peek_pub(input).expect("an ordinary PUB");
    assert_eq!(&input[f.subject.clone()], b"foo.bar");
    assert_eq!(f.reply.clone().map(|r| &input[r]), Some(&b"_INBOX.1"[..]));
    assert_eq!(&input[f.body.clone()], b"abc");
    assert_eq!(f.header_len, None);
    assert_eq!(&input[f.len..], b"PING\r\n");
    // Mid-op, the state machine owns the bytes: nothing is peeked.
    let mut mid = Parser::new(Limits::default());
    let mut buf = BytesMut::from(&b"PUB foo 5\r\nhe"[..]);
    assert_eq!(mid.parse(&mut buf), Ok(None));
    assert!(!mid.is_idle());
    assert_eq!(mid.peek_pub(b"PUB foo 1\r\nx\r\n"), None);
}

#[test]
fn a_payload_still_arriving_needs_more() {
    let mut p = Parser::new(Limits::default());
    let mut buf = BytesMut::from(&b"PUB foo 5\r\nhe"[..]);
    assert!(
        !p.needs_more(buf.len()),
        "nothing pending before the first parse"
    );
    assert_eq!(p.parse(&mut buf), Ok(None));
    // Arguments start the buffer: "foo 5\r\n" + 5 + "\r\n" is 14 bytes.
    assert_eq!(&buf[..], b"foo 5\r\nhe");
    assert!(p.needs_more(buf.len()));
    assert!(p.needs_more(13));
    assert!(!p.needs_more(14));
    buf.extend_from_slice(b"llo\r\n");
    assert!(!p.needs_more(buf.len()));
    assert!(matches!(p.parse(&mut buf), Ok(Some(ClientOp::Pub { .. }))));
    assert!(!p.needs_more(0));
}
