//! MSG/HMSG encoding into a reused outbound buffer, as delivery does per subscriber.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tachyon_protocol::encode;

const SIZES: [usize; 3] = [16, 128, 1024];
const HEADERS: &[u8] = b"NATS/1.0\r\nNats-Msg-Id: 0123456789abcdef\r\n\r\n";

fn encode_msg(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_msg");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let payload = vec![b'x'; size];
        let mut out = Vec::with_capacity(4096);
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                out.clear();
                encode::msg(
                    &mut out,
                    black_box(b"bench.subject.foo"),
                    black_box(b"42"),
                    None,
                    black_box(p),
                );
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn encode_hmsg(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_hmsg");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let mut message = HEADERS.to_vec();
        message.resize(HEADERS.len() + size, b'x');
        let mut out = Vec::with_capacity(4096);
        group.bench_with_input(BenchmarkId::from_parameter(size), &message, |b, m| {
            b.iter(|| {
                out.clear();
                encode::hmsg(
                    &mut out,
                    black_box(b"bench.subject.foo"),
                    black_box(b"42"),
                    Some(black_box(b"_INBOX.abc")),
                    HEADERS.len(),
                    black_box(m),
                );
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode_msg, encode_hmsg);
criterion_main!(benches);
