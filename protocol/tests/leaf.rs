//! The leafnode protocol: what the encoders write parses back the same in any split, and
//! arbitrary bytes never panic the parser nor parse differently when split.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tachyon_protocol::leaf::{self, LeafOp, LeafParser};
use tachyon_protocol::Limits;

fn token() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no separators", |b| !b" \t\r\n".contains(b)),
        1..16,
    )
}

const LIMITS: Limits = Limits {
    max_payload: 1 << 16,
    max_control_line: 4096,
};

/// Every op in `wire` fed in `chunk`-sized pieces; `None` on the first error.
fn ops(wire: &[u8], chunk: usize) -> Option<Vec<LeafOp>> {
    ops_of(LeafParser::new(LIMITS), wire, chunk)
}

/// As `ops`, for what a route peer sends.
fn route_ops(wire: &[u8], chunk: usize) -> Option<Vec<LeafOp>> {
    ops_of(LeafParser::route(LIMITS), wire, chunk)
}

fn ops_of(mut p: LeafParser, wire: &[u8], chunk: usize) -> Option<Vec<LeafOp>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match p.parse(&mut buf) {
                Ok(Some(op)) => out.push(op),
                Ok(None) => break,
                Err(_) => return None,
            }
        }
    }
    Some(out)
}

proptest! {
    #[test]
    fn messages_round_trip(
        subject in token(),
        reply in proptest::option::of(token()),
        queues in proptest::collection::vec(token(), 0..4),
        header in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        chunk in 1usize..64,
    ) {
        // "+" and "|" mark the queue forms; a reply or a queue spelled so is ambiguous on the
        // wire for nats-server too.
        prop_assume!(reply.as_deref() != Some(b"+") && reply.as_deref() != Some(b"|"));
        let queues: Vec<Bytes> = queues.into_iter().map(Bytes::from).collect();
        let mut message = header.clone().unwrap_or_default();
        message.extend_from_slice(&body);
        let mut wire = Vec::new();
        leaf::msg(&mut wire, None, &subject, reply.as_deref(), &queues, header.as_ref().map(Vec::len), &message);
        let got = ops(&wire, chunk).expect("parses");
        prop_assert_eq!(got.len(), 1);
        let LeafOp::Msg { subject: s, reply: r, queues: q, header_len, message: m, .. } = &got[0] else {
            panic!("{:?}", got[0]);
        };
        prop_assert_eq!(&s[..], &subject[..]);
        prop_assert_eq!(r.as_deref(), reply.as_deref());
        let names: Vec<&[u8]> = q.as_deref().map(|l| leaf::queue_names(l).collect()).unwrap_or_default();
        let want: Vec<&[u8]> = queues.iter().map(|b| &b[..]).collect();
        prop_assert_eq!(names, want);
        prop_assert_eq!(*header_len, header.as_ref().map(Vec::len));
        prop_assert_eq!(&m[..], &message[..]);
    }

    #[test]
    fn interest_round_trips(subject in token(), queue in proptest::option::of((token(), 1u32..1000)), chunk in 1usize..32) {
        let mut wire = Vec::new();
        leaf::sub(&mut wire, &subject, queue.as_ref().map(|(q, w)| (&q[..], *w)));
        leaf::unsub(&mut wire, &subject, queue.as_ref().map(|(q, _)| &q[..]));
        let got = ops(&wire, chunk).expect("parses");
        prop_assert_eq!(got.len(), 2);
        let LeafOp::Sub { key, weight, .. } = &got[0] else { panic!("{:?}", got[0]) };
        let LeafOp::Unsub { key: key2, .. } = &got[1] else { panic!("{:?}", got[1]) };
        prop_assert_eq!(key, key2, "LS- names what LS+ announced");
        prop_assert_eq!(*weight, queue.as_ref().map_or(1, |(_, w)| *w));
    }

    #[test]
    fn route_ops_round_trip(
        account in token(),
        subject in token(),
        reply in proptest::option::of(token()),
        queue in proptest::option::of((token(), 1u32..1000)),
        body in proptest::collection::vec(any::<u8>(), 0..100),
        chunk in 1usize..48,
    ) {
        prop_assume!(reply.as_deref() != Some(b"+") && reply.as_deref() != Some(b"|"));
        let mut wire = Vec::new();
        leaf::route_sub(&mut wire, &account, &subject, queue.as_ref().map(|(q, w)| (&q[..], *w)));
        let queues: Vec<Bytes> = queue.iter().map(|(q, _)| Bytes::from(q.clone())).collect();
        leaf::msg(&mut wire, Some(&account), &subject, reply.as_deref(), &queues, None, &body);
        leaf::route_unsub(&mut wire, &account, &subject, queue.as_ref().map(|(q, _)| &q[..]));
        let got = route_ops(&wire, chunk).expect("parses");
        prop_assert_eq!(got.len(), 3);
        let LeafOp::Sub { account: a, key, .. } = &got[0] else { panic!("{:?}", got[0]) };
        prop_assert_eq!(a.as_deref(), Some(&account[..]));
        let LeafOp::Msg { account: ma, subject: s, reply: r, message, .. } = &got[1] else { panic!("{:?}", got[1]) };
        prop_assert_eq!(ma.as_deref(), Some(&account[..]));
        prop_assert_eq!(&s[..], &subject[..]);
        prop_assert_eq!(r.as_deref(), reply.as_deref());
        prop_assert_eq!(&message[..], &body[..]);
        let LeafOp::Unsub { key: key2, .. } = &got[2] else { panic!("{:?}", got[2]) };
        prop_assert_eq!(key, key2);
    }

    #[test]
    fn arbitrary_bytes_parse_the_same_in_any_split(data in proptest::collection::vec(any::<u8>(), 0..300), chunk in 1usize..50) {
        for parse in [ops, route_ops] {
            let whole = parse(&data, data.len().max(1));
            let split = parse(&data, chunk);
            if let (Some(a), Some(b)) = (whole, split) {
                prop_assert_eq!(a, b);
            }
        }
    }
}
