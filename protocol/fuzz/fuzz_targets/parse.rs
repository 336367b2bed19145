//! Feeds arbitrary bytes to the client-op, server-op and leafnode parsers, split at a
//! fuzzer-chosen point, and checks that splitting never changes the result and nothing panics.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tachyon_protocol::leaf::LeafParser;
use tachyon_protocol::{Limits, Parser, ServerParser};

const LIMITS: Limits = Limits {
    max_payload: 4096,
    max_control_line: 256,
};

/// Every op `parse` finds in `data` fed in two pieces cut at `cut`; whether it stopped on an
/// error.
fn ops<T, E>(
    data: &[u8],
    cut: usize,
    mut parse: impl FnMut(&mut BytesMut) -> Result<Option<T>, E>,
) -> (Vec<T>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            match parse(&mut buf) {
                Ok(Some(op)) => out.push(op),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fn client_ops(data: &[u8], cut: usize) -> (Vec<tachyon_protocol::ClientOp>, bool) {
    let mut p = Parser::new(LIMITS);
    ops(data, cut, |b| p.parse(b))
}

fn leaf_ops(data: &[u8], cut: usize, route: bool) -> (Vec<tachyon_protocol::leaf::LeafOp>, bool) {
    let mut p = if route {
        LeafParser::route(LIMITS)
    } else {
        LeafParser::new(LIMITS)
    };
    ops(data, cut, |b| p.parse(b))
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let cut = usize::from(first) % (data.len() + 1);
    let (whole, whole_err) = client_ops(data, data.len());
    let (split, split_err) = client_ops(data, cut);
    if !whole_err && !split_err {
        assert_eq!(whole, split);
    }

    let mut sp = ServerParser::new();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_)) = sp.parse(&mut buf) {}

    for route in [false, true] {
        let (whole, whole_err) = leaf_ops(data, data.len(), route);
        let (split, split_err) = leaf_ops(data, cut, route);
        if !whole_err && !split_err {
            assert_eq!(whole, split);
        }
    }
});

