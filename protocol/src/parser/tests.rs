use super::*;

fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

/// Parses all of `input` in one buffer; returns the ops and the error that stopped it.
fn run(input: &[u8], limits: Limits) -> (Vec<ClientOp>, Option<ProtocolError>, usize) {
    let mut p = Parser::new(limits);
    let mut buf = BytesMut::from(input);
    let mut ops = Vec::new();
    loop {
        match p.parse(&mut buf) {
            Ok(Some(op)) => ops.push(op),
            Ok(None) => return (ops, None, buf.len()),
            Err(e) => return (ops, Some(e), buf.len()),
        }
    }
}

fn ok(input: &[u8]) -> Vec<ClientOp> {
    let (ops, err, _) = run(input, Limits::default());
    assert_eq!(err, None, "input {:?}", String::from_utf8_lossy(input));
    ops
}

fn one(input: &[u8]) -> ClientOp {
    let ops = ok(input);
    assert_eq!(ops.len(), 1, "input {:?}", String::from_utf8_lossy(input));
    ops.into_iter().next().unwrap()
}

fn fails(input: &[u8]) -> ProtocolError {
    let (_, err, _) = run(input, Limits::default());
    err.unwrap_or_else(|| panic!("no error for {:?}", String::from_utf8_lossy(input)))
}

fn publ(subject: &'static [u8], reply: Option<&'static [u8]>, payload: &'static [u8]) -> ClientOp {
    ClientOp::Pub {
        subject: b(subject),
        reply: reply.map(b),
        payload: b(payload),
    }
}

#[test]
fn pub_forms() {
    assert_eq!(one(b"PUB foo 5\r\nhello\r\n"), publ(b"foo", None, b"hello"));
    assert_eq!(
        one(b"PUB foo bar 5\r\nhello\r\n"),
        publ(b"foo", Some(b"bar"), b"hello")
    );
    assert_eq!(one(b"PUB foo 0\r\n\r\n"), publ(b"foo", None, b""));
    // case-insensitive op, tabs and runs of blanks, leading zeros
    assert_eq!(
        one(b"pUb\t foo \t bar\t\t0003 \r\nabc\r\n"),
        publ(b"foo", Some(b"bar"), b"abc")
    );
    // bare \n ends a control line
    assert_eq!(one(b"PUB foo 2\nab\r\n"), publ(b"foo", None, b"ab"));
    // payload may contain CR LF
    assert_eq!(
        one(b"PUB foo 4\r\n\r\n\r\n\r\n"),
        publ(b"foo", None, b"\r\n\r\n")
    );
    // nats-server does not validate the subject of a non-pedantic PUB
    assert_eq!(one(b"PUB foo.. 1\r\na\r\n"), publ(b"foo..", None, b"a"));
}

#[test]
fn pub_errors() {
    assert_eq!(fails(b"PUB foo\r\n"), ProtocolError::ArgCount { op: "PUB" });
    assert_eq!(
        fails(b"PUB foo a b 1\r\n"),
        ProtocolError::ArgCount { op: "PUB" }
    );
    assert_eq!(
        fails(b"PUB foo -1\r\n"),
        ProtocolError::BadSize { op: "PUB" }
    );
    assert_eq!(
        fails(b"PUB foo abc\r\n"),
        ProtocolError::BadSize { op: "PUB" }
    );
    assert_eq!(
        fails(b"PUB foo 1234567890\r\n"),
        ProtocolError::BadSize { op: "PUB" }
    );
    assert_eq!(fails(b"PUB \r\n"), ProtocolError::ArgCount { op: "PUB" });
    assert_eq!(fails(b"PUB\r\n"), ProtocolError::UnknownOp);
    assert_eq!(fails(b"PUBX foo 1\r\n"), ProtocolError::UnknownOp);
    // a \r anywhere after the first argument byte drops the byte before \n (nats-server)
    assert_eq!(
        fails(b"PUB foo 1\rX\na\r\n"),
        ProtocolError::BadSize { op: "PUB" }
    );
    // payload must be followed by exactly CR LF
    assert_eq!(fails(b"PUB foo 2\r\nabc\r\n"), ProtocolError::UnknownOp);
    assert_eq!(fails(b"PUB foo 2\r\nab\n"), ProtocolError::UnknownOp);
    assert_eq!(fails(b"PUB foo 2\r\nab\rx"), ProtocolError::UnknownOp);
}

#[test]
fn payload_errors_fail_as_soon_as_the_bad_byte_arrives() {
    let (_, err, _) = run(b"PUB foo 2\r\nabX", Limits::default());
    assert_eq!(err, Some(ProtocolError::UnknownOp));
    let (_, err, _) = run(b"PUB foo 2\r\nab\r", Limits::default());
    assert_eq!(err, None);
}

#[test]
fn max_payload() {
    let limits = Limits {
        max_payload: 10,
        max_control_line: 4096,
    };
    let (ops, err, _) = run(b"PUB foo 10\r\n0123456789\r\n", limits);
    assert_eq!((ops.len(), err), (1, None));
    // fails on the control line, before any payload byte arrives
    let (_, err, _) = run(b"PUB foo 11\r\n", limits);
    assert_eq!(err, Some(ProtocolError::MaxPayload { size: 11, max: 10 }));
    let (_, err, _) = run(b"HPUB foo 2 11\r\n", limits);
    assert_eq!(err, Some(ProtocolError::MaxPayload { size: 11, max: 10 }));
    let e = ProtocolError::MaxPayload { size: 11, max: 10 };
    assert_eq!(e.err_text(), "Maximum Payload Violation");
    assert!(e.sends_err() && e.closes_connection());
}

#[test]
fn hpub_forms_and_errors() {
    let m = one(b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
    assert_eq!(
        m,
        ClientOp::HPub {
            subject: b(b"foo"),
            reply: None,
            header_len: 12,
            message: b(b"NATS/1.0\r\n\r\nhi"),
        }
    );
    let m = one(b"hpub foo r 0 0\r\n\r\n");
    assert_eq!(
        m,
        ClientOp::HPub {
            subject: b(b"foo"),
            reply: Some(b(b"r")),
            header_len: 0,
            message: Bytes::new(),
        }
    );
    assert_eq!(
        fails(b"HPUB foo 5 3\r\n"),
        ProtocolError::HeaderSizeTooLarge { op: "HPUB" }
    );
    assert_eq!(
        fails(b"HPUB foo 3\r\n"),
        ProtocolError::ArgCount { op: "HPUB" }
    );
    assert_eq!(
        fails(b"HPUB a b c 1 2\r\n"),
        ProtocolError::ArgCount { op: "HPUB" }
    );
    assert_eq!(
        fails(b"HPUB foo -1 3\r\n"),
        ProtocolError::BadHeaderSize { op: "HPUB" }
    );
    assert_eq!(
        fails(b"HPUB foo 1 x\r\n"),
        ProtocolError::BadSize { op: "HPUB" }
    );
    // client-sent HMSG/MSG are not accepted
    assert_eq!(fails(b"HMSG foo 1 2 3\r\n"), ProtocolError::UnknownOp);
    assert_eq!(fails(b"MSG foo 1 2\r\n"), ProtocolError::UnknownOp);
}

#[test]
fn sub_forms_and_errors() {
    assert_eq!(
        one(b"SUB foo 1\r\n"),
        ClientOp::Sub {
            subject: b(b"foo"),
            queue: None,
            sid: b(b"1")
        }
    );
    assert_eq!(
        one(b"sub\tfoo.*  workers\t42\n"),
        ClientOp::Sub {
            subject: b(b"foo.*"),
            queue: Some(b(b"workers")),
            sid: b(b"42")
        }
    );
    // syntactically fine; subject validity is the engine's call (subject::valid_subscribe)
    assert_eq!(ok(b"SUB foo.. 1\r\n").len(), 1);
    assert_eq!(fails(b"SUB foo\r\n"), ProtocolError::ArgCount { op: "SUB" });
    assert_eq!(
        fails(b"SUB foo q r 1\r\n"),
        ProtocolError::ArgCount { op: "SUB" }
    );
    assert_eq!(fails(b"SUB\r\n"), ProtocolError::UnknownOp);
}

#[test]
fn unsub_forms_and_errors() {
    let u = |sid: &'static [u8], max| ClientOp::Unsub { sid: b(sid), max };
    assert_eq!(one(b"UNSUB 1\r\n"), u(b"1", None));
    assert_eq!(one(b"UNSUB 1 5\r\n"), u(b"1", Some(5)));
    assert_eq!(one(b"unsub  7\t10\n"), u(b"7", Some(10)));
    // nats-server unsubscribes at once for 0 or an unparsable max
    assert_eq!(one(b"UNSUB 1 0\r\n"), u(b"1", None));
    assert_eq!(one(b"UNSUB 1 abc\r\n"), u(b"1", None));
    assert_eq!(fails(b"UNSUB\r\n"), ProtocolError::UnknownOp);
    assert_eq!(
        fails(b"UNSUB \r\n"),
        ProtocolError::ArgCount { op: "UNSUB" }
    );
    assert_eq!(
        fails(b"UNSUB 1 2 3\r\n"),
        ProtocolError::ArgCount { op: "UNSUB" }
    );
}

#[test]
fn ping_pong_ok_ignore_rest_of_line() {
    assert_eq!(
        ok(b"PING\r\nPONG\r\nping\npong\r\nPINGxx\r\nPING \r\nPINGPONG\r\n+OK\r\n+okjunk\r\n"),
        vec![
            ClientOp::Ping,
            ClientOp::Pong,
            ClientOp::Ping,
            ClientOp::Pong,
            ClientOp::Ping,
            ClientOp::Ping,
            ClientOp::Ping,
            ClientOp::Ok,
            ClientOp::Ok,
        ]
    );
    assert_eq!(fails(b"P\r\n"), ProtocolError::UnknownOp);
    assert_eq!(fails(b"PIN\r\n"), ProtocolError::UnknownOp);
}

#[test]
fn junk_after_ping_is_consumed_not_buffered() {
    let mut p = Parser::default();
    let mut buf = BytesMut::from(&b"PING"[..]);
    buf.extend_from_slice(&[b'a'; 10000]);
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(buf.is_empty());
    buf.extend_from_slice(b"b\r\n");
    assert_eq!(p.parse(&mut buf), Ok(Some(ClientOp::Ping)));
}

#[test]
fn connect_info_err() {
    assert_eq!(
        one(b"CONNECT {\"verbose\":false}\r\n"),
        ClientOp::Connect(b(b"{\"verbose\":false}"))
    );
    // no blank needed after CONNECT/INFO
    assert_eq!(one(b"connect{}\n"), ClientOp::Connect(b(b"{}")));
    assert_eq!(one(b"CONNECT\t \t{}\r\n"), ClientOp::Connect(b(b"{}")));
    // "CONNECT\r\n": the \r becomes the argument, as in nats-server (then bad JSON)
    assert_eq!(one(b"CONNECT\r\n"), ClientOp::Connect(b(b"\r")));
    assert_eq!(one(b"INFO {}\r\n"), ClientOp::Info(b(b"{}")));
    assert_eq!(one(b"-ERR 'x'\r\n"), ClientOp::Err(b(b"'x'")));
    assert_eq!(fails(b"CONNECX {}\r\n"), ProtocolError::UnknownOp);
    assert_eq!(fails(b"-ERR\r\n"), ProtocolError::UnknownOp);
}

#[test]
fn unknown_ops() {
    for input in [
        &b"FOO\r\n"[..],
        b"\r\n",
        b" PING\r\n",
        b"RS+ foo 1\r\n",
        b"A+ foo\r\n",
        b"LS+ foo\r\n",
        b"+ER\r\n",
    ] {
        assert_eq!(fails(input), ProtocolError::UnknownOp, "{input:?}");
    }
    let e = ProtocolError::UnknownOp;
    assert_eq!(e.err_text(), "Unknown Protocol Operation");
    assert!(e.sends_err() && e.closes_connection());
}

#[test]
fn partial_names_wait_for_more() {
    for input in [
        &b"P"[..],
        b"PU",
        b"PUB",
        b"C",
        b"CONNEC",
        b"UNSU",
        b"+",
        b"-ER",
        b"h",
    ] {
        let (ops, err, left) = run(input, Limits::default());
        assert!(ops.is_empty() && err.is_none(), "{input:?}");
        assert_eq!(left, input.len(), "{input:?}: nothing consumed");
    }
}

#[test]
fn control_line_limit_counts_argument_bytes_only() {
    let limits = Limits {
        max_payload: 1024,
        max_control_line: 10,
    };
    // "a12345 789" is exactly 10 argument bytes
    let (ops, err, _) = run(b"SUB   a12345 789\r\n", limits);
    assert_eq!((ops.len(), err), (1, None));
    let (_, err, _) = run(b"SUB a123456 789\r\n", limits);
    assert_eq!(
        err,
        Some(ProtocolError::MaxControlLine { len: 11, max: 10 })
    );
    // a line still incomplete fails once its arguments exceed the limit...
    let (_, err, _) = run(b"PUB aaaaaaaaaaa", limits);
    assert_eq!(
        err,
        Some(ProtocolError::MaxControlLine { len: 11, max: 10 })
    );
    // ...but not before
    let (_, err, _) = run(b"PUB aaaaaaaaaa", limits);
    assert_eq!(err, None);
    // applies to CONNECT too
    let (_, err, _) = run(b"CONNECT {\"name\":\"x\"}\r\n", limits);
    assert!(matches!(err, Some(ProtocolError::MaxControlLine { .. })));
    // the blanks before the first argument are not counted, and are consumed
    let mut p = Parser::new(limits);
    let mut buf = BytesMut::from(&b"SUB "[..]);
    buf.extend_from_slice(&[b' '; 100]);
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(buf.is_empty());
    let e = ProtocolError::MaxControlLine { len: 11, max: 10 };
    assert_eq!(e.err_text(), "maximum control line exceeded");
    assert!(e.sends_err() && e.closes_connection());
}

#[test]
fn default_limits_match_nats_server() {
    let l = Limits::default();
    assert_eq!(l.max_payload, 1024 * 1024);
    assert_eq!(l.max_control_line, 4096);
    // 4096 argument bytes pass, 4097 fail (checked against nats-server 2.15)
    let mut line = b"PUB ".to_vec();
    line.extend_from_slice(&[b'a'; 4094]);
    line.extend_from_slice(b" 1\r\nx\r\n");
    assert_eq!(ok(&line).len(), 1);
    let mut line = b"PUB ".to_vec();
    line.extend_from_slice(&[b'a'; 4095]);
    line.extend_from_slice(b" 1\r\nx\r\n");
    assert!(matches!(fails(&line), ProtocolError::MaxControlLine { .. }));
}

#[test]
fn silent_errors() {
    for e in [
        ProtocolError::ArgCount { op: "PUB" },
        ProtocolError::BadSize { op: "PUB" },
        ProtocolError::BadHeaderSize { op: "HPUB" },
        ProtocolError::HeaderSizeTooLarge { op: "HPUB" },
        ProtocolError::BadConnect(String::new()),
        ProtocolError::BadInfo(String::new()),
        ProtocolError::HeadersNotSupported,
    ] {
        assert!(!e.sends_err(), "{e:?}");
        assert!(e.closes_connection(), "{e:?}");
    }
    for e in [
        ProtocolError::InvalidSubject,
        ProtocolError::InvalidPublishSubject,
        ProtocolError::MaxSubscriptions,
    ] {
        assert!(e.sends_err() && !e.closes_connection(), "{e:?}");
    }
    assert_eq!(ProtocolError::InvalidSubject.err_text(), "Invalid Subject");
    assert_eq!(
        ProtocolError::BadClientProtocol.err_text(),
        "invalid client protocol"
    );
}

#[test]
fn fields_are_slices_of_the_read_buffer() {
    let mut p = Parser::default();
    let mut buf = BytesMut::from(&b"PUB foo bar 3\r\nabc\r\nPING\r\n"[..]);
    let start = buf.as_ptr() as usize;
    let Some(ClientOp::Pub {
        subject,
        reply,
        payload,
    }) = p.parse(&mut buf).unwrap()
    else {
        panic!("expected PUB");
    };
    assert_eq!(subject.as_ptr() as usize, start + 4);
    assert_eq!(reply.unwrap().as_ptr() as usize, start + 8);
    assert_eq!(payload.as_ptr() as usize, start + 15);
    assert_eq!(&buf[..], b"PING\r\n");
}

#[test]
fn state_survives_payload_split() {
    let mut p = Parser::default();
    let mut buf = BytesMut::from(&b"PUB foo 10\r\n01234"[..]);
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(!p.is_idle());
    buf.extend_from_slice(b"56789\r\n");
    assert_eq!(
        p.parse(&mut buf),
        Ok(Some(publ(b"foo", None, b"0123456789")))
    );
    assert!(p.is_idle());
    assert!(buf.is_empty());
}

/// A stream covering every op and spacing variant, for the split tests.
pub(super) fn mixed_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"CONNECT {\"verbose\":false,\"headers\":true}\r\n");
    s.extend_from_slice(b"PING\r\n");
    s.extend_from_slice(b"SUB foo.* 1\r\n");
    s.extend_from_slice(b"sub  bar\tq 2\n");
    s.extend_from_slice(b"PUB foo.a 5\r\nhello\r\n");
    s.extend_from_slice(b"PUB foo.b _INBOX.x 0\r\n\r\n");
    s.extend_from_slice(b"HPUB foo.c 20 25\r\nNATS/1.0\r\nA: bcd\r\n\r\nworld\r\n");
    s.extend_from_slice(b"hpub foo.d r 12 12\r\nNATS/1.0\r\n\r\n\r\n");
    s.extend_from_slice(b"PINGjunk\r\n");
    s.extend_from_slice(b"PUB big 300\r\n");
    s.extend((0..300u32).map(|i| b"\r\n xyz"[i as usize % 6]));
    s.extend_from_slice(b"\r\n");
    s.extend_from_slice(b"UNSUB 1 10\r\n");
    s.extend_from_slice(b"UNSUB 2\r\n");
    s.extend_from_slice(b"+OK\r\nPONG\r\n");
    s.extend_from_slice(b"INFO {}\r\n");
    s.extend_from_slice(b"-ERR 'bye'\r\n");
    s
}

fn parse_chunked(input: &[u8], cuts: &[usize]) -> Vec<ClientOp> {
    let mut p = Parser::default();
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[prev..c]);
        prev = c;
        while let Some(op) = p.parse(&mut buf).unwrap() {
            ops.push(op);
        }
    }
    assert!(buf.is_empty());
    ops
}

#[test]
fn mixed_stream_whole() {
    let ops = ok(&mixed_stream());
    assert_eq!(ops.len(), 16);
    assert_eq!(
        ops[6],
        ClientOp::HPub {
            subject: b(b"foo.c"),
            reply: None,
            header_len: 20,
            message: b(b"NATS/1.0\r\nA: bcd\r\n\r\nworld"),
        }
    );
    assert_eq!(ops[15], ClientOp::Err(b(b"'bye'")));
}

#[test]
fn mixed_stream_split_at_every_position() {
    let input = mixed_stream();
    let whole = ok(&input);
    for cut in 0..=input.len() {
        assert_eq!(parse_chunked(&input, &[cut]), whole, "cut at {cut}");
    }
    // every pair of cuts near the interesting ops
    for a in 0..120 {
        for b_ in a..130 {
            assert_eq!(parse_chunked(&input, &[a, b_]), whole, "cuts {a} {b_}");
        }
    }
}

#[test]
fn mixed_stream_byte_by_byte() {
    let input = mixed_stream();
    let cuts: Vec<usize> = (1..input.len()).collect();
    assert_eq!(parse_chunked(&input, &cuts), ok(&input));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_chunkings(mut cuts in proptest::collection::vec(0usize..700, 0..40)) {
            let input = mixed_stream();
            for c in cuts.iter_mut() {
                *c = (*c).min(input.len());
            }
            cuts.sort_unstable();
            prop_assert_eq!(parse_chunked(&input, &cuts), ok(&input));
        }

        #[test]
        fn any_split_gives_the_same_result(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'1'), Just(b'P'), Just(b'U'), Just(b'B'), Just(b'S'), Just(b'I'), Just(b'N'), Just(b'G'), any::<u8>()],
            0..200), cut in 0usize..200)
        {
            let limits = Limits { max_payload: 64, max_control_line: 32 };
            let go = |cut: usize| {
                let mut p = Parser::new(limits);
                let mut buf = BytesMut::new();
                let mut ops = Vec::new();
                for piece in [&data[..cut], &data[cut..]] {
                    buf.extend_from_slice(piece);
                    loop {
                        match p.parse(&mut buf) {
                            Ok(Some(op)) => ops.push(op),
                            Ok(None) => break,
                            Err(e) => return (ops, Some(std::mem::discriminant(&e))),
                        }
                    }
                }
                (ops, None)
            };
            let cut = cut.min(data.len());
            prop_assert_eq!(go(cut), go(data.len()));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
            let mut p = Parser::new(Limits { max_payload: 64, max_control_line: 32 });
            let cut = cut.min(data.len());
            let mut buf = BytesMut::from(&data[..cut]);
            while let Ok(Some(_)) = p.parse(&mut buf) {}
            buf.extend_from_slice(&data[cut..]);
            let mut steps = 0;
            while let Ok(Some(_)) = p.parse(&mut buf) {
                steps += 1;
            }
            // every op consumes at least two bytes, so parsing must terminate
            prop_assert!(steps <= data.len());
        }
    }
}
