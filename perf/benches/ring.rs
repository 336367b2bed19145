//! SPSC ring throughput: a producer thread pushing and a consumer thread popping, one by one or
//! in batches (as a shard drains its inbound rings), plus the uncontended single-thread cost.
//! `ring_message_bytes` moves a message's bytes across the threads both ways a shard can: a
//! `Bytes` handle on one shared buffer (a reference count both threads touch) or a copy into
//! the ring's arena (`push_with_bytes`), for the size below which shards copy.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tachyon_core::ring::{self, Consumer, Producer, Stored};

const CAPACITY: usize = 1024;

/// Spins briefly, then yields: the machine has fewer cores than busy threads, so a pure spin
/// would burn the peer's time slice.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

fn produce(mut tx: Producer<u64>, n: u64) {
    for i in 0..n {
        let mut v = i;
        let mut spins = 0;
        while let Err(back) = tx.push(v) {
            v = back;
            backoff(&mut spins);
        }
    }
}

fn consume(mut rx: Consumer<u64>, n: u64, batch: usize) -> u64 {
    let (mut got, mut sum) = (0u64, 0u64);
    let mut spins = 0;
    while got < n {
        let popped = if batch == 1 {
            match rx.pop() {
                Some(v) => {
                    sum = sum.wrapping_add(v);
                    1
                }
                None => 0,
            }
        } else {
            rx.pop_batch(batch, |v| sum = sum.wrapping_add(v))
        };
        if popped == 0 {
            backoff(&mut spins);
        } else {
            spins = 0;
            got += popped as u64;
        }
    }
    sum
}

/// Moves `n` items across threads and returns the elapsed time, thread start included (it is
/// amortised over the large `n` criterion picks).
fn cross_thread(n: u64, batch: usize) -> Duration {
    let (tx, rx) = ring::channel::<u64>(CAPACITY);
    let started = Instant::now();
    let consumer = thread::spawn(move || consume(rx, n, batch));
    produce(tx, n);
    let sum = consumer.join().unwrap_or_default();
    let elapsed = started.elapsed();
    black_box(sum);
    elapsed
}

fn ring_two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_two_threads");
    group.throughput(Throughput::Elements(1));
    for batch in [1usize, 64] {
        let name = if batch == 1 { "pop" } else { "pop_batch" };
        group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
            b.iter_custom(|iters| cross_thread(iters, batch))
        });
    }
    group.finish();
}

fn ring_one_thread(c: &mut Criterion) {
    let (mut tx, mut rx) = ring::channel::<u64>(CAPACITY);
    let mut group = c.benchmark_group("ring_one_thread");
    group.throughput(Throughput::Elements(1));
    group.bench_function("push_pop", |b| {
        b.iter(|| {
            let _ = tx.push(black_box(7));
            black_box(rx.pop())
        })
    });
    group.finish();
}

/// How a message's bytes cross: `Shared` as a handle on the publisher's buffer, `Copied` into
/// the ring's arena.
enum Carried {
    Shared(Bytes),
    Copied(Stored),
}

/// Moves `n` messages of `size` bytes across threads; the consumer reads every byte's first and
/// last, as delivery would read them.
fn cross_thread_bytes(n: u64, size: usize, copy: bool) -> Duration {
    let (mut tx, mut rx) = ring::channel_with_bytes::<Carried>(CAPACITY, 1 << 20);
    // One read buffer the messages are slices of, as a publisher's read is.
    let buffer = Bytes::from(vec![7u8; 64 * 1024]);
    let started = Instant::now();
    let consumer = thread::spawn(move || {
        let (mut got, mut sum, mut spins) = (0u64, 0u64, 0u32);
        while got < n {
            let seen = rx.pop_in_slot(|item, slot| {
                let bytes: &[u8] = match item {
                    Carried::Shared(b) => b,
                    Carried::Copied(s) => slot.bytes(s),
                };
                bytes[0] as u64 + bytes[bytes.len() - 1] as u64
            });
            match seen {
                Some(v) => {
                    sum = sum.wrapping_add(v);
                    got += 1;
                    spins = 0;
                }
                None => backoff(&mut spins),
            }
        }
        sum
    });
    let mut at = 0;
    for _ in 0..n {
        if at + size > buffer.len() {
            at = 0;
        }
        let msg = &buffer[at..at + size];
        at += size;
        let mut spins = 0;
        loop {
            let pushed = if copy {
                tx.push_with_bytes(&[msg], Carried::Copied)
            } else {
                tx.push(Carried::Shared(buffer.slice_ref(msg))).is_ok()
            };
            if pushed {
                break;
            }
            backoff(&mut spins);
        }
    }
    let sum = consumer.join().unwrap_or_default();
    let elapsed = started.elapsed();
    black_box(sum);
    elapsed
}

fn ring_message_bytes(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_message_bytes");
    group.throughput(Throughput::Elements(1));
    for size in [16usize, 128, 1024, 2048] {
        for (name, copy) in [("shared_handle", false), ("copied", true)] {
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                b.iter_custom(|iters| cross_thread_bytes(iters, size, copy))
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    ring_two_threads,
    ring_one_thread,
    ring_message_bytes
);
criterion_main!(benches);
