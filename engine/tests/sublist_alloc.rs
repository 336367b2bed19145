//! A cache hit in `Sublist::match_subject` must not allocate: it is on every publish.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use tachyon_engine::sublist::Sublist;

/// Counts allocations made by the current thread only, so the test harness's own threads
/// cannot disturb the measurement.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // try_with: the allocator can run while thread locals are being torn down.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// const-initialised thread local, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

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
