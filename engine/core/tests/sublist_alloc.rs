//! A cache hit in `Sublist::match_subject` must not allocate: it is on every publish (of a
//! subject seen before: the cache admits a subject on its second miss).

mod alloc_counter;

use alloc_counter::{allocations, CountingAllocator};

use bytes::Bytes;
use tachyon_core::sublist::Sublist;

/// Counts allocations made by the current thread only, so the test harness's own threads
/// cannot disturb the measurement.
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn cache_hit_allocates_nothing_and_miss_does() {
    let mut list = Sublist::new();
    let workers = Bytes::from_static(b"workers");
    list.insert(b"orders.*.created", None, 1u64);
    list.insert(b"orders.>", Some(&workers), 2);
    list.insert(b"orders.eu.created", Some(&workers), 3);
    let subject = b"orders.eu.created".to_vec();

    let before_miss = allocations();
    let first = list.match_subject(&subject);
    assert!(
        allocations() > before_miss,
        "the counter must see the miss's allocations, or the hit check proves nothing"
    );
    assert_eq!(first.plain, vec![1]);
    assert_eq!(first.queues.len(), 1);
    drop(first);
    // A subject is cached on its second miss (one-time subjects never take an entry).
    drop(list.match_subject(&subject));

    let before_hits = allocations();
    let mut delivered = 0;
    for _ in 0..1000 {
        let hit = list.match_subject(&subject);
        delivered += hit.plain.len() + hit.queues[0].members.len();
    }
    let hit_allocations = allocations() - before_hits;
    assert_eq!(hit_allocations, 0, "cache hits allocated");
    assert_eq!(delivered, 3000);
}
