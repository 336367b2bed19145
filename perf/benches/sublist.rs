//! Sublist match cost at 10k and 1M subscriptions, literal and wildcard patterns, with the match
//! cache hit (the steady state of a hot subject) and bypassed (a subject seen for the first time
//! since the last interest change).

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tachyon_core::sublist::Sublist;

const COUNTS: [usize; 2] = [10_000, 1_000_000];

/// `bench.<a>.<b>` for i in 0..n: a two-level fan-out of 1000 so the trie is wide, not deep.
fn literal(n: usize) -> Sublist<u64> {
    let mut s = Sublist::new();
    for i in 0..n {
        let subject = format!("bench.{}.{}", i / 1000, i % 1000);
        s.insert(subject.as_bytes(), None, i as u64);
    }
    s
}

/// A third each of `bench.<a>.*`, `bench.*.<b>` and `bench.<a>.>` (duplicates kept), so a
/// literal subject walks the literal, `*` and `>` edges at every level.
fn wildcard(n: usize) -> Sublist<u64> {
    let mut s = Sublist::new();
    for i in 0..n {
        let (a, b) = (i / 1000 % 1000, i % 1000);
        let subject = match i % 3 {
            0 => format!("bench.{a}.*"),
            1 => format!("bench.*.{b}"),
            _ => format!("bench.{a}.>"),
        };
        s.insert(subject.as_bytes(), None, i as u64);
    }
    s
}

fn run(c: &mut Criterion, kind: &str, build: fn(usize) -> Sublist<u64>) {
    let mut group = c.benchmark_group(format!("sublist_{kind}"));
    for n in COUNTS {
        let started = Instant::now();
        let mut sublist = build(n);
        eprintln!("sublist_{kind}/{n}: built in {:?}", started.elapsed());
        // A subject in the middle of the populated range, so it matches something at any size.
        let subject = b"bench.7.42";
        let matched = sublist.match_uncached(subject);
        assert!(!matched.is_empty());
        group.bench_with_input(BenchmarkId::new("cache_hit", n), &(), |b, ()| {
            b.iter(|| black_box(sublist.match_subject(black_box(subject))))
        });
        group.bench_with_input(BenchmarkId::new("cache_miss", n), &(), |b, ()| {
            b.iter(|| black_box(sublist.match_uncached(black_box(subject))))
        });
        // A subject with no interest at all: what a publish to an unused subject costs.
        group.bench_with_input(BenchmarkId::new("no_match", n), &(), |b, ()| {
            b.iter(|| black_box(sublist.match_uncached(black_box(b"other.7.42"))))
        });
        drop(sublist);
    }
    group.finish();
}

fn sublist_literal(c: &mut Criterion) {
    run(c, "literal", literal);
}

fn sublist_wildcard(c: &mut Criterion) {
    run(c, "wildcard", wildcard);
}

criterion_group!(benches, sublist_literal, sublist_wildcard);
criterion_main!(benches);
