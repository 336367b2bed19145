//! Encode with the client/server encoders, parse back, compare.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tachyon_protocol::{encode, ClientOp, Limits, Parser, ServerOp, ServerParser};

fn token() -> impl Strategy<Value = Vec<u8>> {
    // any byte but blanks, CR, LF: what can travel as one protocol argument
    proptest::collection::vec(
        any::<u8>().prop_filter("no separators", |b| !b" \t\r\n".contains(b)),
        1..20,
    )
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200)
}

fn parse_client(wire: &[u8], chunk: usize) -> Vec<ClientOp> {
    let mut p = Parser::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(op) = p.parse(&mut buf).expect("valid encoding") {
            ops.push(op);
        }
    }
    assert!(buf.is_empty());
    ops
}

fn parse_server(wire: &[u8], chunk: usize) -> Vec<ServerOp> {
    let mut p = ServerParser::new();
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(op) = p.parse(&mut buf).expect("valid encoding") {
            ops.push(op);
        }
    }
    assert!(buf.is_empty());
    ops
}

proptest! {
    #[test]
    fn pub_round_trip(subject in token(), reply in proptest::option::of(token()), data in payload(), chunk in 1usize..64) {
        let mut wire = Vec::new();
        encode::pub_(&mut wire, &subject, reply.as_deref(), &data);
        let ops = parse_client(&wire, chunk);
        prop_assert_eq!(ops, vec![ClientOp::Pub {
            subject: Bytes::from(subject),
            reply: reply.map(Bytes::from),
            payload: Bytes::from(data),
        }]);
    }

    #[test]
    fn hpub_round_trip(subject in token(), reply in proptest::option::of(token()), hdr in payload(), data in payload(), chunk in 1usize..64) {
        let mut wire = Vec::new();
        encode::hpub(&mut wire, &subject, reply.as_deref(), &hdr, &data);
        let ops = parse_client(&wire, chunk);
        let mut message = hdr.clone();
        message.extend_from_slice(&data);
        prop_assert_eq!(ops, vec![ClientOp::HPub {
            subject: Bytes::from(subject),
            reply: reply.map(Bytes::from),
            header_len: hdr.len(),
            message: Bytes::from(message),
        }]);
    }

    #[test]
    fn sub_unsub_round_trip(subject in token(), queue in proptest::option::of(token()), sid in token(), max in proptest::option::of(1u64..999_999_999), chunk in 1usize..64) {
        let mut wire = Vec::new();
        encode::sub(&mut wire, &subject, queue.as_deref(), &sid);
        encode::unsub(&mut wire, &sid, max);
        let ops = parse_client(&wire, chunk);
        prop_assert_eq!(ops, vec![
            ClientOp::Sub {
                subject: Bytes::from(subject),
                queue: queue.map(Bytes::from),
                sid: Bytes::from(sid.clone()),
            },
            ClientOp::Unsub { sid: Bytes::from(sid), max },
        ]);
    }

    #[test]
    fn msg_hmsg_round_trip(subject in token(), sid in token(), reply in proptest::option::of(token()), hdr in payload(), data in payload(), chunk in 1usize..64) {
        let mut message = hdr.clone();
        message.extend_from_slice(&data);
        let mut wire = Vec::new();
        encode::msg(&mut wire, &subject, &sid, reply.as_deref(), &data);
        encode::hmsg(&mut wire, &subject, &sid, reply.as_deref(), hdr.len(), &message);
        wire.extend_from_slice(encode::PING);
        let ops = parse_server(&wire, chunk);
        prop_assert_eq!(ops, vec![
            ServerOp::Msg {
                subject: Bytes::from(subject.clone()),
                sid: Bytes::from(sid.clone()),
                reply: reply.clone().map(Bytes::from),
                payload: Bytes::from(data),
            },
            ServerOp::HMsg {
                subject: Bytes::from(subject),
                sid: Bytes::from(sid),
                reply: reply.map(Bytes::from),
                header_len: hdr.len(),
                message: Bytes::from(message),
            },
            ServerOp::Ping,
        ]);
    }
}

#[test]
fn connect_and_info_round_trip() {
    let opts = tachyon_protocol::json::ConnectOptions {
        verbose: false,
        pedantic: false,
        name: "bench".into(),
        headers: true,
        no_responders: true,
        protocol: 1,
        ..Default::default()
    };
    let mut wire = Vec::new();
    encode::connect(&mut wire, &opts);
    let ops = parse_client(&wire, 7);
    let [ClientOp::Connect(json)] = &ops[..] else {
        panic!("expected one CONNECT, got {ops:?}");
    };
    assert_eq!(tachyon_protocol::json::parse_connect(json).unwrap(), opts);

    let info = tachyon_protocol::json::ServerInfo {
        server_id: "S".into(),
        max_payload: 1024,
        headers: true,
        ..Default::default()
    };
    let mut wire = Vec::new();
    encode::info(&mut wire, &info);
    let ops = parse_server(&wire, 5);
    let [ServerOp::Info(json)] = &ops[..] else {
        panic!("expected one INFO, got {ops:?}");
    };
    let back: tachyon_protocol::json::ServerInfo = serde_json::from_slice(json).unwrap();
    assert_eq!(back, info);
}
