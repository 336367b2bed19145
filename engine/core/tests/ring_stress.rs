//! Two real threads hammer one ring: FIFO order, no loss, every item dropped exactly once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tachyon_core::ring::{channel, channel_with_bytes, Stored};

/// Carries a sequence number and counts its own drop, so loss and double drops both show.
struct Item {
    seq: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Item {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Enough to interleave heavily, small enough to stay around a second in a debug build.
const ITEMS: u64 = 5_000_000;
const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn two_threads_fifo_no_loss_no_double_drop() {
    let drops = Arc::new(AtomicUsize::new(0));
    // Small capacity so the producer hits "full" often and both sides wrap many times.
    let (mut tx, mut rx) = channel::<Item>(64);
    let started = Instant::now();

    let producer_drops = drops.clone();
    let producer = thread::spawn(move || {
        let mut full_hits = 0u64;
        for seq in 0..ITEMS {
            let mut item = Item {
                seq,
                drops: producer_drops.clone(),
            };
            loop {
                match tx.push(item) {
                    Ok(()) => break,
                    Err(back) => {
                        item = back;
                        full_hits += 1;
                        assert!(started.elapsed() < DEADLINE, "producer stuck");
                        thread::yield_now();
                    }
                }
            }
        }
        full_hits
    });

    let mut expected = 0u64;
    let mut use_batch = true;
    while expected < ITEMS {
        // Alternate single pops and batches so both paths race the producer.
        let got = if use_batch {
            rx.pop_batch(32, |item| {
                assert_eq!(item.seq, expected, "out of order or lost");
                expected += 1;
            })
        } else {
            match rx.pop() {
                Some(item) => {
                    assert_eq!(item.seq, expected, "out of order or lost");
                    expected += 1;
                    1
                }
                None => 0,
            }
        };
        use_batch = !use_batch;
        if got == 0 {
            assert!(started.elapsed() < DEADLINE, "consumer stuck");
            thread::yield_now();
        }
    }
    let full_hits = producer.join().expect("producer panicked");
    assert!(rx.pop().is_none(), "more items than were pushed");
    assert_eq!(drops.load(Ordering::Relaxed) as u64, ITEMS);
    drop(rx);
    assert_eq!(drops.load(Ordering::Relaxed) as u64, ITEMS);
    // Not a correctness property, but shows the full path was exercised on this run.
    eprintln!(
        "ring stress: {ITEMS} items in {:?}, producer saw full {full_hits} times",
        started.elapsed()
    );
}

#[test]
fn items_left_in_flight_are_dropped_once_when_both_ends_go() {
    let drops = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    for round in 0..200 {
        let (mut tx, mut rx) = channel::<Item>(16);
        let producer_drops = drops.clone();
        let producer_total = total.clone();
        let producer = thread::spawn(move || {
            for seq in 0..(round % 40) {
                let _ = tx.push(Item {
                    seq,
                    drops: producer_drops.clone(),
                });
                producer_total.fetch_add(1, Ordering::Relaxed);
            }
            // tx dropped here, possibly while the consumer is mid-pop.
        });
        let mut last = None;
        for _ in 0..(round % 7) {
            if let Some(item) = rx.pop() {
                if let Some(prev) = last {
                    assert!(item.seq > prev);
                }
                last = Some(item.seq);
            }
        }
        drop(rx);
        producer.join().expect("producer panicked");
    }
    assert_eq!(
        drops.load(Ordering::Relaxed),
        total.load(Ordering::Relaxed),
        "every created item dropped exactly once"
    );
}

/// Bytes pushed with items, from a real second thread: each item's bytes are a pattern of its
/// sequence number and length, so a byte written over too early, or read from the wrong place,
/// shows. The arena is small, so the producer wraps, skips ends and waits for room all the time.
#[test]
fn two_threads_bytes_arrive_intact() {
    const N: u64 = 1_000_000;
    let (mut tx, mut rx) = channel_with_bytes::<(u64, Stored)>(64, 4096);
    let started = Instant::now();
    let pattern = |seq: u64| -> Vec<u8> {
        let len = (seq.wrapping_mul(2654435761) % 300) as usize;
        (0..len)
            .map(|i| (seq as u8).wrapping_add(i as u8))
            .collect()
    };
    let producer = thread::spawn(move || {
        let mut refused = 0u64;
        for seq in 0..N {
            let bytes = pattern(seq);
            let (head, tail) = bytes.split_at(bytes.len() / 3);
            while !tx.push_with_bytes(&[head, tail], |s| (seq, s)) {
                refused += 1;
                assert!(started.elapsed() < DEADLINE, "producer stuck");
                thread::yield_now();
            }
        }
        refused
    });
    let mut expected = 0u64;
    while expected < N {
        let got = rx.pop_in_slot(|(seq, stored), slot| {
            assert_eq!(*seq, expected, "out of order or lost");
            assert_eq!(
                slot.bytes(stored),
                &pattern(*seq)[..],
                "bytes of item {seq}"
            );
        });
        match got {
            Some(()) => expected += 1,
            None => {
                assert!(started.elapsed() < DEADLINE, "consumer stuck");
                thread::yield_now();
            }
        }
    }
    let refused = producer.join().expect("producer panicked");
    eprintln!(
        "ring bytes stress: {N} items in {:?}, producer refused {refused} times",
        started.elapsed()
    );
}
