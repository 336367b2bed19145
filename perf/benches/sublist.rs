//! Sublist match cost at 10k and 1M subscriptions, literal and wildcard patterns, with the match
//! cache hit (the steady state of a hot subject) and bypassed (a subject seen for the first time
//! since the last interest change); and match cost on a warm cache while other subscriptions
//! churn (`sublist_churn`), which is what a SUB/UNSUB elsewhere costs every publisher.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
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

/// Literal subjects published to round-robin: 1000 keeps them all in the default cache.
const HOT_SUBJECTS: usize = 1000;
/// Publishes between two churn steps; each step is one SUB and its UNSUB.
const CHURN_EVERY: usize = 100;

/// 10k subscriptions plus interest in every hot subject: one literal subscriber each and a
/// queue group over all of them, so a cached result carries both kinds.
fn churn_base() -> Sublist<u64> {
    let mut s = literal(10_000);
    let workers = Bytes::from_static(b"workers");
    for i in 0..HOT_SUBJECTS {
        s.insert(format!("hot.{i}").as_bytes(), None, 1_000_000 + i as u64);
    }
    s.insert(b"hot.*", Some(&workers), 2_000_000);
    s
}

fn hot_subjects() -> Vec<Vec<u8>> {
    (0..HOT_SUBJECTS)
        .map(|i| format!("hot.{i}").into_bytes())
        .collect()
}

/// Subscriptions churned between publishes, none of which match a hot subject: a literal one
/// (an inbox, the common case) and a wildcard one (which no single cache key names).
#[derive(Clone, Copy)]
enum Churn {
    None,
    Literal,
    Wildcard,
}

impl Churn {
    fn name(self) -> &'static str {
        match self {
            Churn::None => "no_churn",
            Churn::Literal => "literal_churn",
            Churn::Wildcard => "wildcard_churn",
        }
    }

    fn pattern(self, step: usize) -> Option<Vec<u8>> {
        match self {
            Churn::None => None,
            Churn::Literal => Some(format!("_INBOX.{step}").into_bytes()),
            Churn::Wildcard => Some(format!("churn.*.{step}").into_bytes()),
        }
    }
}

/// One publish to the next hot subject, with a SUB+UNSUB first every `CHURN_EVERY` publishes.
struct Publisher {
    sublist: Sublist<u64>,
    subjects: Vec<Vec<u8>>,
    churn: Churn,
    count: usize,
}

impl Publisher {
    fn new(churn: Churn) -> Self {
        let mut sublist = churn_base();
        let subjects = hot_subjects();
        for subject in &subjects {
            sublist.match_subject(subject);
        }
        Self {
            sublist,
            subjects,
            churn,
            count: 0,
        }
    }

    fn churn_step(&mut self) {
        let step = self.count / CHURN_EVERY;
        if let Some(pattern) = self.churn.pattern(step) {
            self.sublist.insert(&pattern, None, u64::MAX);
            assert!(self.sublist.remove(&pattern, None, &u64::MAX));
        }
    }

    fn publish(&mut self) -> usize {
        let subject = &self.subjects[self.count % HOT_SUBJECTS];
        let result = self.sublist.match_subject(black_box(subject));
        self.count += 1;
        result.plain.len() + result.queues.len()
    }
}

/// Per-publish latency percentiles, churn excluded from the timed span (it is the other
/// client's work; its cost shows in the criterion mean instead). Includes `Instant::now`.
fn latency_percentiles(churn: Churn) {
    const PUBLISHES: usize = 200_000;
    let mut publisher = Publisher::new(churn);
    let mut samples = Vec::with_capacity(PUBLISHES);
    for _ in 0..PUBLISHES {
        if publisher.count.is_multiple_of(CHURN_EVERY) {
            publisher.churn_step();
        }
        let started = Instant::now();
        black_box(publisher.publish());
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    eprintln!(
        "sublist_churn/{}: per-publish p50 {:?} p99 {:?} p99.9 {:?} (cached entries at end: {})",
        churn.name(),
        at(0.50),
        at(0.99),
        at(0.999),
        publisher.sublist.cache_len()
    );
}

fn sublist_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("sublist_churn");
    for churn in [Churn::None, Churn::Literal, Churn::Wildcard] {
        latency_percentiles(churn);
        let mut publisher = Publisher::new(churn);
        group.bench_function(BenchmarkId::new(churn.name(), CHURN_EVERY), |b| {
            b.iter(|| {
                if publisher.count.is_multiple_of(CHURN_EVERY) {
                    publisher.churn_step();
                }
                publisher.publish()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sublist_literal, sublist_wildcard);
criterion_group! {
    name = churn;
    // Short: the effect is an order of magnitude, and the machine has two cores.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = sublist_churn
}
criterion_main!(benches, churn);
