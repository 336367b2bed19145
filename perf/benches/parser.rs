//! Client-op parsing throughput: a read buffer holding many PUB or HPUB ops, parsed to the end,
//! the way a connection's read loop drains one socket read.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use tachyon_protocol::{encode, ClientOp, Limits, Parser};

/// Ops per buffer: enough that per-buffer setup is noise, small enough to stay in cache for 16 B.
const OPS: usize = 1000;
const SIZES: [usize; 3] = [16, 128, 1024];
const HEADERS: &[u8] = b"NATS/1.0\r\nNats-Msg-Id: 0123456789abcdef\r\n\r\n";

fn pub_buffer(size: usize) -> BytesMut {
    let payload = vec![b'x'; size];
    let mut out = Vec::new();
    for _ in 0..OPS {
        encode::pub_(&mut out, b"bench.subject.foo", None, &payload);
    }
    BytesMut::from(&out[..])
}

fn hpub_buffer(size: usize) -> BytesMut {
    let payload = vec![b'x'; size];
    let mut out = Vec::new();
    for _ in 0..OPS {
        encode::hpub(
            &mut out,
            b"bench.subject.foo",
            Some(b"_INBOX.abc"),
            HEADERS,
            &payload,
        );
    }
    BytesMut::from(&out[..])
}

/// Parses every op in `buf`, returning how many there were so the work cannot be elided.
fn drain(parser: &mut Parser, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Ok(Some(op)) = parser.parse(buf) {
        if let ClientOp::Pub { payload, .. }
        | ClientOp::HPub {
            message: payload, ..
        } = op
        {
            black_box(payload);
        }
        n += 1;
    }
    n
}

fn bench(c: &mut Criterion, name: &str, make: fn(usize) -> BytesMut) {
    let mut group = c.benchmark_group(name);
    for size in SIZES {
        let template = make(size);
        let mut parser = Parser::new(Limits::default());
        assert_eq!(drain(&mut parser, &mut template.clone()), OPS);
        group.throughput(Throughput::Elements(OPS as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &template, |b, t| {
            b.iter_batched_ref(
                || t.clone(),
                |buf| drain(&mut parser, buf),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn parse_pub(c: &mut Criterion) {
    bench(c, "parse_pub", pub_buffer);
}

fn parse_hpub(c: &mut Criterion) {
    bench(c, "parse_hpub", hpub_buffer);
}

criterion_group!(benches, parse_pub, parse_hpub);
criterion_main!(benches);
