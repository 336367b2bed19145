use bytes::{Bytes, BytesMut};

use super::super::tests::mixed_stream;
use super::super::{ClientOp, Limits, Parser, ProtocolError};

/// Everything a parse run produced: the ops, the error that stopped it, the bytes left over.
type Outcome = (Vec<ClientOp>, Option<ProtocolError>, usize);

/// Feeds `input` in the pieces `cuts` makes, parsing after each piece, with or without the
/// fast path.
fn run(input: &[u8], cuts: &[usize], limits: Limits, fast: bool) -> Outcome {
    let mut p = Parser::new(limits);
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[prev..c]);
        prev = c;
        loop {
            let r = if fast {
                p.parse(&mut buf)
            } else {
                p.parse_slow(&mut buf)
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
    let whole = run(input, &[], limits, false);
    assert_eq!(run(input, &[], limits, true), whole, "input {show:?}");
    for cut in 0..=input.len() {
        assert_eq!(
            run(input, &[cut], limits, true),
            run(input, &[cut], limits, false),
            "input {show:?} cut at {cut}"
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
        let (slow, err, _) = run(&with_ping, &[], LIMITS, false);
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
        run(over_line, &[], LIMITS, true).1,
        Some(ProtocolError::MaxControlLine { len: 25, max: 24 })
    ));
    assert!(matches!(
        run(b"PUB foo 17\r\n", &[], LIMITS, true).1,
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
            prop_assert_eq!(run(&input, &cuts, limits, true), run(&input, &cuts, limits, false));
        }
    }
}
