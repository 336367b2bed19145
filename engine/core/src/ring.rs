//! Bounded lock-free single-producer/single-consumer ring, the only channel between shards.
//!
//! The producer owns `tail`, the consumer owns `head`; both are free-running counters (they
//! wrap around `usize`, and `index & mask` picks the slot), so "full" and "empty" need no
//! spare slot. Each side keeps a private copy of the other side's counter and re-reads the
//! shared one only when its copy says the ring is full (producer) or empty (consumer), so in
//! steady state each operation touches just its own cache line.
//!
//! Ordering: a producer writes the slot, then publishes `tail` with `Release`; the consumer
//! reads `tail` with `Acquire` before reading the slot. Symmetrically the consumer moves the
//! value out, then publishes `head` with `Release`, and the producer reads `head` with
//! `Acquire` before overwriting a slot.

use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use self::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

mod arena;

use self::arena::Arena;
pub use self::arena::{InSlot, Stored};

/// Switches between std and loom primitives so the same code runs under the loom model checker.
#[cfg(tachyon_loom)]
mod sync {
    pub(super) use loom::cell::UnsafeCell;
    pub(super) use loom::sync::atomic::{AtomicUsize, Ordering};
    pub(super) use loom::sync::Arc;
}

#[cfg(not(tachyon_loom))]
mod sync {
    pub(super) use std::sync::atomic::{AtomicUsize, Ordering};
    pub(super) use std::sync::Arc;

    /// `std::cell::UnsafeCell` behind loom's closure-based API.
    #[derive(Debug)]
    pub(super) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(super) fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        pub(super) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// `PhantomData<Cell<()>>` is `Send` but not `Sync`: each end is used by one thread at a time.
type NotSync = PhantomData<Cell<()>>;

struct Shared<T> {
    /// Next slot the consumer reads. Written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next slot the producer writes. Written only by the producer.
    tail: CachePadded<AtomicUsize>,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Bytes pushed with items (`Producer::push_with_bytes`); empty for a ring without them.
    arena: Arena,
}

// SAFETY: the slots are accessed by at most two threads: the producer only writes slots in
// `[tail, head + capacity)` and the consumer only reads slots in `[head, tail)`. Those ranges
// never overlap, and the Acquire/Release pairs on `head`/`tail` order the hand-over of each
// slot. Values cross threads, hence `T: Send`; no `&T` is ever shared, so `T: Sync` is not needed.
// The arena follows the same hand-over: the producer writes only bytes that no item in
// `[head, tail)` holds, the consumer reads only the bytes of the item at `head`.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: owning the ring owns the `T`s in it; moving it moves them, which `T: Send` allows.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Shared<T> {
    fn capacity(&self) -> usize {
        self.mask + 1
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both ends are gone (this is the last Arc), and dropping an Arc synchronises with the
        // other end's last writes, so Relaxed loads see the final indices.
        let mut head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        while head != tail {
            self.slots[head & self.mask].with_mut(|slot| {
                // SAFETY: slots in [head, tail) were written by the producer and not yet moved
                // out by the consumer, so each holds an initialised value dropped exactly once here.
                unsafe { (*slot).assume_init_drop() }
            });
            head = head.wrapping_add(1);
        }
    }
}

/// Sending end of a ring. Moves to the thread that produces; not `Clone`, not `Sync`.
///
/// ```compile_fail
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<tachyon_core::ring::Producer<u32>>();
/// ```
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    cached_head: usize,
    /// Where the arena's bytes ended after each pushed item, by ring position modulo twice the
    /// capacity: the entry for the item just before the head outlives every push the ring can
    /// hold. Empty without an arena.
    ends: Box<[usize]>,
    /// Arena bytes ever written (skipped ends of the buffer included), and ever released (those
    /// of items the consumer finished); free-running like `tail`.
    written: usize,
    released: usize,
    /// The head `released` was read at.
    released_at: usize,
    _not_sync: NotSync,
}

/// Receiving end of a ring. Moves to the thread that consumes; not `Clone`, not `Sync`.
///
/// ```compile_fail
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<tachyon_core::ring::Consumer<u32>>();
/// ```
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    cached_tail: usize,
    _not_sync: NotSync,
}

/// Creates a ring holding at least `capacity` items (rounded up to a power of two, minimum 1).
///
/// # Panics
/// If the rounded capacity overflows `usize`; capacity comes from configuration, not clients.
pub fn channel<T: Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    channel_with_bytes(capacity, 0)
}

/// A ring whose items may carry up to `arena` bytes in flight altogether
/// ([`Producer::push_with_bytes`]); `arena` is zero or a power of two below 4 GiB.
///
/// # Panics
/// As [`channel`], and for an arena size that is not zero or such a power of two.
pub fn channel_with_bytes<T: Send>(capacity: usize, arena: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity
        .max(1)
        .checked_next_power_of_two()
        .unwrap_or_else(|| panic!("ring capacity {capacity} is too large"));
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: capacity - 1,
        arena: Arena::new(arena),
    });
    let ends = if arena == 0 { 0 } else { 2 * capacity };
    let producer = Producer {
        shared: shared.clone(),
        tail: 0,
        cached_head: 0,
        ends: vec![0; ends].into_boxed_slice(),
        written: 0,
        released: 0,
        released_at: 0,
        _not_sync: PhantomData,
    };
    let consumer = Consumer {
        shared,
        head: 0,
        cached_tail: 0,
        _not_sync: PhantomData,
    };
    (producer, consumer)
}

impl<T: Send> Producer<T> {
    /// Appends `value`, or hands it back when the ring is full. Never blocks.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if !self.has_room() {
            return Err(value);
        }
        self.write_slot(value);
        Ok(())
    }

    /// Copies `parts`, back to back, into the ring's arena and pushes `make(stored)`, where
    /// `stored` says where they lie. False, with nothing pushed and `make` not called, when the
    /// ring is full or its arena has no room for them now.
    #[must_use]
    pub fn push_with_bytes(&mut self, parts: &[&[u8]], make: impl FnOnce(Stored) -> T) -> bool {
        if !self.has_room() {
            return false;
        }
        let len = parts.iter().map(|p| p.len()).sum();
        let Some(at) = self.reserve(len) else {
            return false;
        };
        let mut to = at;
        for part in parts {
            // SAFETY: `reserve` gave `[at, at + len)` inside the arena, outside the bytes of
            // every item in [head, tail) as of a head read with Acquire (so the consumer is
            // done reading what was there), and the item that will hold it is published only
            // by `write_slot` below.
            unsafe { self.shared.arena.write(to, part) };
            to += part.len();
        }
        let stored = Stored::new(&self.shared.arena, at, len, self.tail);
        self.write_slot(make(stored));
        true
    }

    /// Whether the slot at `tail` is free, re-reading the consumer's head only when the cached
    /// copy says the ring is full.
    #[inline]
    fn has_room(&mut self) -> bool {
        let capacity = self.shared.capacity();
        if self.tail.wrapping_sub(self.cached_head) == capacity {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.cached_head) == capacity {
                return false;
            }
        }
        true
    }

    /// Writes the free slot at `tail` (the caller checked `has_room`) and publishes it.
    #[inline]
    fn write_slot(&mut self, value: T) {
        if !self.ends.is_empty() {
            let mask = self.ends.len() - 1;
            self.ends[self.tail & mask] = self.written;
        }
        self.shared.slots[self.tail & self.shared.mask].with_mut(|slot| {
            // SAFETY: tail - head < capacity, so this slot is outside [head, tail): the consumer
            // does not read it, and its previous value (if any) was moved out before the consumer
            // published the head we acquired. Writing over MaybeUninit drops nothing.
            unsafe { (*slot).write(value) };
        });
        self.tail = self.tail.wrapping_add(1);
        self.shared.tail.store(self.tail, Ordering::Release);
    }

    /// Takes `len` contiguous arena bytes (skipping the end of the buffer when they do not fit
    /// before it) and returns their offset, or `None` when the consumer still holds too much.
    fn reserve(&mut self, len: usize) -> Option<usize> {
        let size = self.shared.arena.len();
        if size == 0 || len > size {
            return None;
        }
        let offset = self.written & (size - 1);
        let skip = if offset + len > size {
            size - offset
        } else {
            0
        };
        let start = self.written.wrapping_add(skip);
        if start.wrapping_add(len).wrapping_sub(self.released) > size {
            self.refresh_released();
            if self.released == self.written {
                // No item holds bytes: the skipped end of the buffer is nobody's either.
                self.released = start;
            }
            if start.wrapping_add(len).wrapping_sub(self.released) > size {
                return None;
            }
        }
        self.written = start.wrapping_add(len);
        debug_assert!(self.written.wrapping_sub(self.released) <= size);
        Some(start & (size - 1))
    }

    /// Frees the bytes of every item the consumer finished: all bytes written before the item
    /// at the head were pushed.
    fn refresh_released(&mut self) {
        let head = self.shared.head.load(Ordering::Acquire);
        self.cached_head = head;
        if head != self.released_at {
            // The entry for `head - 1` is still that item's: it is overwritten only by the push
            // at `head - 1 + 2 * capacity`, past `tail <= head + capacity`.
            let mask = self.ends.len() - 1;
            let end = self.ends[head.wrapping_sub(1) & mask];
            // Never backwards: `reserve` may have moved `released` past a skipped end of the
            // buffer while only items without bytes were left, whose ends lie before it.
            if end.wrapping_sub(self.released) as isize > 0 {
                self.released = end;
            }
            self.released_at = head;
        }
    }

    /// Whether a `push` now would fail. The consumer may free room right after this returns.
    pub fn is_full(&self) -> bool {
        let capacity = self.shared.capacity();
        // Head only moves forward, so a stale copy can only over-report fullness.
        self.tail.wrapping_sub(self.cached_head) == capacity
            && self
                .tail
                .wrapping_sub(self.shared.head.load(Ordering::Acquire))
                == capacity
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Number of items in the ring; the consumer may shrink it concurrently.
    pub fn len(&self) -> usize {
        self.tail
            .wrapping_sub(self.shared.head.load(Ordering::Acquire))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the consumer has been dropped (nobody will ever pop what is pushed).
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}

impl<T: Send> Consumer<T> {
    /// Removes the oldest item, if any.
    pub fn pop(&mut self) -> Option<T> {
        if !self.has_item() {
            return None;
        }
        let value = self.take_slot();
        self.head = self.head.wrapping_add(1);
        self.shared.head.store(self.head, Ordering::Release);
        Some(value)
    }

    /// Hands the oldest item, if any, to `f` where it lies in its slot, then drops it there:
    /// unlike [`pop`](Self::pop) nothing is moved out, which for a large `T` saves copying it.
    /// If `f` panics the item still counts as consumed and is dropped exactly once.
    pub fn pop_with<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.pop_in_slot(|item, _| f(item))
    }

    /// As [`pop_with`](Self::pop_with), also lending the [`InSlot`] that reads the bytes the
    /// item was pushed with (`Producer::push_with_bytes`).
    pub fn pop_in_slot<R>(&mut self, f: impl FnOnce(&mut T, &InSlot<'_>) -> R) -> Option<R> {
        if !self.has_item() {
            return None;
        }
        let slot = ConsumeInSlot(self);
        let seq = slot.0.head;
        let shared: &Shared<T> = &slot.0.shared;
        let result = shared.slots[seq & shared.mask].with_mut(|cell| {
            let in_slot = InSlot {
                arena: &shared.arena,
                seq,
            };
            // SAFETY: as in `take_slot`: head is in [head, tail) as observed through an Acquire
            // load of tail, so the value is initialised and the producer leaves the slot alone
            // until a head past it is published, which only `ConsumeInSlot::drop` does, after
            // the last use of this reference.
            f(unsafe { (*cell).assume_init_mut() }, &in_slot)
        });
        drop(slot);
        Some(result)
    }

    /// Pops up to `max` items, calling `f` for each; publishes the new head once per batch.
    /// Returns how many items were popped. If `f` panics, the items already handed to it stay
    /// consumed and the rest stay in the ring.
    pub fn pop_batch(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut available = self.cached_tail.wrapping_sub(self.head);
        if available < max {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            available = self.cached_tail.wrapping_sub(self.head);
        }
        let count = available.min(max);
        if count == 0 {
            return 0;
        }
        // Publishes the head on the way out, panicking or not, so that a value moved out of its
        // slot is never dropped a second time by `Shared::drop`.
        let guard = PublishHead(self);
        for _ in 0..count {
            let value = guard.0.take_slot();
            guard.0.head = guard.0.head.wrapping_add(1);
            f(value);
        }
        drop(guard);
        count
    }

    /// Whether a `pop` now would return `None`. The producer may add items right after.
    pub fn is_empty(&self) -> bool {
        self.head == self.cached_tail && self.head == self.shared.tail.load(Ordering::Acquire)
    }

    /// Number of items in the ring; the producer may grow it concurrently.
    pub fn len(&self) -> usize {
        self.shared
            .tail
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Whether the producer has been dropped (what is in the ring is all there will be).
    pub fn is_abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }

    /// Moves the value at `self.head` out. Caller must have seen `head != tail` via an Acquire
    /// load of `tail`, and must advance `self.head` (and eventually publish it) afterwards.
    /// Whether the slot at `head` holds an item; re-reads the producer's tail (Acquire) only
    /// when the cached copy says the ring is empty.
    #[inline]
    fn has_item(&mut self) -> bool {
        if self.head == self.cached_tail {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        }
        self.head != self.cached_tail
    }

    fn take_slot(&mut self) -> T {
        self.shared.slots[self.head & self.shared.mask].with_mut(|slot| {
            // SAFETY: head is in [head, tail) as observed through an Acquire load of tail, so the
            // producer's write of this slot happened-before; the producer will not touch it again
            // until we publish a head past it. Advancing head right after makes this the only read.
            unsafe { (*slot).assume_init_read() }
        })
    }
}

/// Drops the item at `head` in its slot, then advances and publishes `head`, whether or not the
/// code that used the item panicked.
struct ConsumeInSlot<'a, T>(&'a mut Consumer<T>);

impl<T> Drop for ConsumeInSlot<'_, T> {
    fn drop(&mut self) {
        let index = self.0.head & self.0.shared.mask;
        // Counted as consumed before its drop runs: if that drop panics, `Shared::drop` must not
        // drop it again. The head is published (by `PublishHead`) only after the drop, so the
        // producer cannot reuse the slot while it is being dropped.
        self.0.head = self.0.head.wrapping_add(1);
        let publish = PublishHead(&mut *self.0);
        publish.0.shared.slots[index].with_mut(|cell| {
            // SAFETY: the slot held an initialised value that nothing moved out (`pop_with` only
            // lent it), and the producer cannot touch it before `publish` stores the new head.
            unsafe { (*cell).assume_init_drop() }
        });
        drop(publish);
    }
}

struct PublishHead<'a, T>(&'a mut Consumer<T>);

impl<T> Drop for PublishHead<'_, T> {
    fn drop(&mut self) {
        self.0.shared.head.store(self.0.head, Ordering::Release);
    }
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.shared.capacity())
            .field("tail", &self.tail)
            .finish()
    }
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.shared.capacity())
            .field("head", &self.head)
            .finish()
    }
}

#[cfg(all(test, not(tachyon_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    fn assert_send<T: Send>() {}

    #[test]
    fn ends_are_send() {
        assert_send::<Producer<String>>();
        assert_send::<Consumer<String>>();
    }

    #[test]
    fn capacity_rounds_up_to_power_of_two() {
        assert_eq!(channel::<u8>(0).0.capacity(), 1);
        assert_eq!(channel::<u8>(1).0.capacity(), 1);
        assert_eq!(channel::<u8>(3).0.capacity(), 4);
        assert_eq!(channel::<u8>(1000).1.capacity(), 1024);
        assert_eq!(channel::<u8>(1024).0.capacity(), 1024);
    }

    #[test]
    fn push_until_full_then_pop_in_order() {
        let (mut tx, mut rx) = channel(4);
        assert!(rx.is_empty());
        assert_eq!(rx.pop(), None);
        for i in 0..4 {
            assert!(!tx.is_full());
            assert_eq!(tx.push(i), Ok(()));
        }
        assert!(tx.is_full());
        assert_eq!(tx.push(99), Err(99));
        assert_eq!(rx.len(), 4);
        for i in 0..4 {
            assert_eq!(rx.pop(), Some(i));
        }
        assert_eq!(rx.pop(), None);
        assert!(rx.is_empty());
        assert!(!tx.is_full());
    }

    #[test]
    fn wraps_around_many_times() {
        let (mut tx, mut rx) = channel(2);
        for i in 0..1000u32 {
            tx.push(i).unwrap();
            if i % 2 == 1 {
                assert_eq!(rx.pop(), Some(i - 1));
                assert_eq!(rx.pop(), Some(i));
            }
        }
        assert!(rx.is_empty());
    }

    #[test]
    fn indices_survive_usize_wraparound() {
        let (mut tx, mut rx) = channel(4);
        let start = usize::MAX - 5;
        tx.tail = start;
        tx.cached_head = start;
        tx.shared.tail.store(start, Ordering::Relaxed);
        tx.shared.head.store(start, Ordering::Relaxed);
        rx.head = start;
        rx.cached_tail = start;
        for round in 0..5u32 {
            for i in 0..4 {
                tx.push(round * 10 + i).unwrap();
            }
            assert_eq!(tx.push(0), Err(0));
            let mut got = Vec::new();
            assert_eq!(rx.pop_batch(10, |v| got.push(v)), 4);
            assert_eq!(got, (0..4).map(|i| round * 10 + i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn pop_batch_respects_max_and_order() {
        let (mut tx, mut rx) = channel(8);
        for i in 0..7 {
            tx.push(i).unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(rx.pop_batch(3, |v| got.push(v)), 3);
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(rx.pop_batch(0, |v| got.push(v)), 0);
        assert_eq!(rx.pop_batch(100, |v| got.push(v)), 4);
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(rx.pop_batch(100, |v| got.push(v)), 0);
        // The batch freed room for the producer.
        for i in 0..8 {
            tx.push(i).unwrap();
        }
        assert!(tx.is_full());
    }

    struct Counted(Arc<StdAtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn dropping_ring_drops_leftovers_once() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = channel(8);
        for _ in 0..6 {
            assert!(tx.push(Counted(drops.clone())).is_ok());
        }
        drop(rx.pop());
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        drop(tx);
        assert!(rx.is_abandoned());
        drop(rx);
        assert_eq!(drops.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn rejected_push_returns_the_value_undropped() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let (mut tx, rx) = channel(1);
        assert!(tx.push(Counted(drops.clone())).is_ok());
        let back = tx.push(Counted(drops.clone()));
        assert!(back.is_err());
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        drop(back);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        drop(rx);
        assert!(tx.is_abandoned());
        drop(tx);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn panic_inside_pop_batch_does_not_double_drop() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = channel(8);
        for _ in 0..5 {
            assert!(tx.push(Counted(drops.clone())).is_ok());
        }
        let mut seen = 0;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rx.pop_batch(5, |v| {
                seen += 1;
                drop(v);
                if seen == 2 {
                    panic!("consumer callback failed");
                }
            })
        }));
        assert!(result.is_err());
        assert_eq!(drops.load(Ordering::Relaxed), 2);
        assert_eq!(rx.len(), 3);
        drop((tx, rx));
        assert_eq!(drops.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn pop_with_lends_in_order_and_drops_once() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = channel(4);
        for i in 0..10u32 {
            assert!(tx.push((i, Counted(drops.clone()))).is_ok());
            let got = rx.pop_with(|(v, _)| {
                *v += 100;
                *v
            });
            assert_eq!(got, Some(i + 100));
            assert_eq!(drops.load(Ordering::Relaxed), i as usize + 1);
        }
        assert_eq!(rx.pop_with(|_| ()), None);
        // The slot is free again: the ring takes a full capacity after the loop.
        for _ in 0..4 {
            assert!(tx.push((0, Counted(drops.clone()))).is_ok());
        }
        assert!(tx.push((0, Counted(drops.clone()))).is_err());
        assert_eq!(drops.load(Ordering::Relaxed), 11);
        drop((tx, rx));
        assert_eq!(drops.load(Ordering::Relaxed), 15);
    }

    #[test]
    fn panic_inside_pop_with_consumes_and_drops_once() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let (mut tx, mut rx) = channel(4);
        for _ in 0..3 {
            assert!(tx.push(Counted(drops.clone())).is_ok());
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rx.pop_with(|_| panic!("consumer failed"))
        }));
        assert!(result.is_err());
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert_eq!(rx.len(), 2);
        assert_eq!(tx.len(), 2);
        drop((tx, rx));
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    }

    /// Pops the item at the head with its bytes.
    fn pop_bytes(rx: &mut Consumer<(u32, Stored)>) -> Option<(u32, Vec<u8>)> {
        rx.pop_in_slot(|(v, stored), slot| (*v, slot.bytes(stored).to_vec()))
    }

    #[test]
    fn bytes_travel_with_their_items_in_order() {
        let (mut tx, mut rx) = channel_with_bytes::<(u32, Stored)>(4, 64);
        assert!(tx.push_with_bytes(&[b"ab", b"", b"cde"], |s| (1, s)));
        assert!(tx.push_with_bytes(&[], |s| (2, s)));
        assert!(tx.push_with_bytes(&[b"xyz"], |s| (3, s)));
        assert_eq!(pop_bytes(&mut rx), Some((1, b"abcde".to_vec())));
        assert_eq!(pop_bytes(&mut rx), Some((2, Vec::new())));
        assert_eq!(pop_bytes(&mut rx), Some((3, b"xyz".to_vec())));
        assert_eq!(pop_bytes(&mut rx), None);
    }

    #[test]
    fn a_full_arena_refuses_until_the_consumer_moves_on() {
        let (mut tx, mut rx) = channel_with_bytes::<(u32, Stored)>(8, 16);
        assert!(tx.push_with_bytes(&[&[1; 10]], |s| (1, s)));
        // 10 + 10 > 16: refused, and `make` is not called.
        assert!(!tx.push_with_bytes(&[&[2; 10]], |_| unreachable!()));
        // More than the whole arena never fits.
        assert!(!tx.push_with_bytes(&[&[0; 17]], |_| unreachable!()));
        // Six bytes still fit at the end.
        assert!(tx.push_with_bytes(&[&[3; 6]], |s| (3, s)));
        assert_eq!(pop_bytes(&mut rx), Some((1, vec![1; 10])));
        // The buffer is full to its end: ten bytes go to its start, which the first item freed.
        assert!(tx.push_with_bytes(&[&[4; 10]], |s| (4, s)));
        assert_eq!(pop_bytes(&mut rx), Some((3, vec![3; 6])));
        assert_eq!(pop_bytes(&mut rx), Some((4, vec![4; 10])));
    }

    #[test]
    fn bytes_that_do_not_fit_before_the_end_wrap_to_the_start() {
        let (mut tx, mut rx) = channel_with_bytes::<(u32, Stored)>(8, 16);
        for round in 0..100u32 {
            let len = 1 + (round as usize * 7) % 16;
            let fill = round as u8;
            assert!(tx.push_with_bytes(&[&vec![fill; len]], |s| (round, s)));
            assert_eq!(pop_bytes(&mut rx), Some((round, vec![fill; len])));
        }
    }

    #[test]
    fn plain_pushes_and_pushes_with_bytes_mix() {
        let (mut tx, mut rx) = channel_with_bytes::<(u32, Option<Stored>)>(2, 8);
        for i in 0..50u32 {
            if i % 3 == 0 {
                assert!(tx.push((i, None)).is_ok());
            } else {
                assert!(tx.push_with_bytes(&[&i.to_le_bytes()], |s| (i, Some(s))));
            }
            let got =
                rx.pop_in_slot(|(v, s), slot| (*v, s.as_ref().map(|s| slot.bytes(s).to_vec())));
            let want = (i % 3 != 0).then(|| i.to_le_bytes().to_vec());
            assert_eq!(got, Some((i, want)));
        }
    }

    #[test]
    fn released_bytes_never_move_back_past_a_skipped_end() {
        let (mut tx, mut rx) = channel_with_bytes::<(u32, Option<Stored>)>(4, 16);
        let pop = |rx: &mut Consumer<(u32, Option<Stored>)>| {
            rx.pop_in_slot(|(v, s), slot| (*v, s.as_ref().map(|s| slot.bytes(s).to_vec())))
        };
        assert!(tx.push_with_bytes(&[&[0; 9]], |s| (0, Some(s))));
        assert_eq!(pop(&mut rx), Some((0, Some(vec![0; 9]))));
        // An item without bytes stays in the ring while 15 bytes skip the buffer's last 7.
        assert!(tx.push((1, None)).is_ok());
        assert!(tx.push_with_bytes(&[&[2; 15]], |s| (2, Some(s))));
        assert_eq!(pop(&mut rx), Some((1, None)));
        // One byte fits after them; the arena is then full until the 15 are read.
        assert!(tx.push_with_bytes(&[&[3]], |s| (3, Some(s))));
        assert!(!tx.push_with_bytes(&[&[4]], |_| unreachable!()));
        assert_eq!(
            tx.released, 16,
            "freed bytes went back to an older item's end"
        );
        assert_eq!(pop(&mut rx), Some((2, Some(vec![2; 15]))));
        assert!(tx.push_with_bytes(&[&[4; 15]], |s| (4, Some(s))));
        assert_eq!(pop(&mut rx), Some((3, Some(vec![3]))));
        assert_eq!(pop(&mut rx), Some((4, Some(vec![4; 15]))));
    }

    #[test]
    fn a_full_ring_refuses_bytes_without_taking_arena_room() {
        let (mut tx, mut rx) = channel_with_bytes::<(u32, Stored)>(1, 8);
        assert!(tx.push_with_bytes(&[b"1234"], |s| (1, s)));
        assert!(!tx.push_with_bytes(&[b"5"], |_| unreachable!()));
        assert_eq!(pop_bytes(&mut rx), Some((1, b"1234".to_vec())));
        assert!(tx.push_with_bytes(&[b"56781234"], |s| (2, s)));
        assert_eq!(pop_bytes(&mut rx), Some((2, b"56781234".to_vec())));
    }

    #[test]
    fn a_ring_without_an_arena_refuses_bytes() {
        let (mut tx, _rx) = channel::<(u32, Stored)>(4);
        assert!(!tx.push_with_bytes(&[], |_| unreachable!()));
        assert!(!tx.push_with_bytes(&[b"x"], |_| unreachable!()));
    }

    #[test]
    #[should_panic(expected = "outside the slot they came with")]
    fn bytes_moved_out_of_their_slot_cannot_be_read() {
        let (mut tx, mut rx) = channel_with_bytes::<Option<Stored>>(4, 16);
        assert!(tx.push_with_bytes(&[b"old"], Some));
        assert!(tx.push_with_bytes(&[b"new"], Some));
        let kept = rx.pop_with(Option::take).flatten();
        let kept = kept.expect("the first item's bytes");
        rx.pop_in_slot(|_, slot| slot.bytes(&kept).to_vec());
    }

    #[test]
    #[should_panic(expected = "outside the slot they came with")]
    fn bytes_of_another_ring_cannot_be_read() {
        let (mut tx_a, _rx_a) = channel_with_bytes::<Option<Stored>>(4, 16);
        let (mut tx_b, mut rx_b) = channel_with_bytes::<Option<Stored>>(4, 16);
        let mut other = None;
        assert!(tx_a.push_with_bytes(&[b"a"], |s| {
            other = Some(s);
            None
        }));
        assert!(tx_b.push_with_bytes(&[b"b"], Some));
        let other = other.expect("made");
        rx_b.pop_in_slot(|_, slot| slot.bytes(&other).to_vec());
    }

    #[test]
    fn zero_sized_items() {
        let (mut tx, mut rx) = channel::<()>(2);
        tx.push(()).unwrap();
        tx.push(()).unwrap();
        assert_eq!(tx.push(()), Err(()));
        assert_eq!(rx.pop(), Some(()));
        assert_eq!(rx.pop(), Some(()));
        assert_eq!(rx.pop(), None);
    }
}

#[cfg(all(test, tachyon_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// Capacity 2, 3 items: forces the producer to see a full ring and wrap onto a reused slot.
    #[test]
    fn fifo_across_threads_with_pop() {
        loom::model(|| {
            let (mut tx, mut rx) = channel::<u32>(2);
            let producer = thread::spawn(move || {
                for i in 0..3 {
                    let mut value = i;
                    while let Err(back) = tx.push(value) {
                        value = back;
                        thread::yield_now();
                    }
                }
            });
            let mut next = 0;
            while next < 3 {
                match rx.pop() {
                    Some(v) => {
                        assert_eq!(v, next);
                        next += 1;
                    }
                    None => thread::yield_now(),
                }
            }
            producer.join().unwrap();
            assert_eq!(rx.pop(), None);
        });
    }

    #[test]
    fn fifo_across_threads_with_pop_batch() {
        loom::model(|| {
            let (mut tx, mut rx) = channel::<u32>(2);
            let producer = thread::spawn(move || {
                for i in 0..3 {
                    let mut value = i;
                    while let Err(back) = tx.push(value) {
                        value = back;
                        thread::yield_now();
                    }
                }
            });
            let mut next = 0;
            while next < 3 {
                let n = rx.pop_batch(2, |v| {
                    assert_eq!(v, next);
                    next += 1;
                });
                if n == 0 {
                    thread::yield_now();
                }
            }
            producer.join().unwrap();
        });
    }

    /// `pop_with` drops in the slot before publishing the head: the producer, which reuses
    /// slots as soon as it sees the head move, must never write over a value being dropped.
    #[test]
    fn fifo_and_single_drop_across_threads_with_pop_with() {
        use loom::sync::atomic::AtomicUsize;

        struct Tracked(u32, Arc<AtomicUsize>);
        impl Drop for Tracked {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }

        loom::model(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let (mut tx, mut rx) = channel::<Tracked>(2);
            let producer_drops = drops.clone();
            let producer = thread::spawn(move || {
                for i in 0..3 {
                    let mut value = Tracked(i, producer_drops.clone());
                    while let Err(back) = tx.push(value) {
                        value = back;
                        thread::yield_now();
                    }
                }
            });
            let mut next = 0;
            while next < 3 {
                match rx.pop_with(|t| t.0) {
                    Some(v) => {
                        assert_eq!(v, next);
                        next += 1;
                    }
                    None => thread::yield_now(),
                }
            }
            producer.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), 3);
        });
    }

    /// Arena of 8 bytes, items of 3, 3 and 5 bytes: the third skips the buffer's end and needs
    /// the bytes of both earlier ones, which the producer must never write while the consumer
    /// may still read them.
    #[test]
    fn bytes_reused_only_after_the_consumer_is_done() {
        const LENS: [usize; 3] = [3, 3, 5];
        loom::model(|| {
            let (mut tx, mut rx) = channel_with_bytes::<(u8, Stored)>(2, 8);
            let producer = thread::spawn(move || {
                for (i, len) in LENS.into_iter().enumerate() {
                    let bytes = vec![i as u8; len];
                    while !tx.push_with_bytes(&[&bytes], |s| (i as u8, s)) {
                        thread::yield_now();
                    }
                }
            });
            let mut next = 0;
            while next < LENS.len() {
                match rx.pop_in_slot(|(i, s), slot| (*i, slot.bytes(s).to_vec())) {
                    Some((i, bytes)) => {
                        assert_eq!(i as usize, next);
                        assert_eq!(bytes, vec![i; LENS[next]]);
                        next += 1;
                    }
                    None => thread::yield_now(),
                }
            }
            producer.join().unwrap();
        });
    }

    /// Both ends dropped on different threads with items in flight: every item dropped exactly once.
    #[test]
    fn leftovers_dropped_exactly_once() {
        use loom::sync::atomic::AtomicUsize;

        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }

        loom::model(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let (mut tx, mut rx) = channel::<Counted>(2);
            let producer_drops = drops.clone();
            let producer = thread::spawn(move || {
                let mut pushed = 0;
                for _ in 0..3 {
                    if tx.push(Counted(producer_drops.clone())).is_ok() {
                        pushed += 1;
                    }
                }
                pushed
            });
            let popped = usize::from(rx.pop().is_some());
            drop(rx);
            let pushed = producer.join().unwrap();
            assert!(popped <= pushed);
            // Rejected pushes are dropped by the producer, the rest by pop or the ring's drop.
            assert_eq!(drops.load(Ordering::Relaxed), 3);
        });
    }
}
