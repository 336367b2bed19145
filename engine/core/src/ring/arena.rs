//! Bytes that travel in a ring beside its items.
//!
//! A message crossing shards used to hold reference-counted handles on the publisher's read
//! buffer: the publisher's thread raised the count, the receiver's thread lowered it, and that
//! one cache line went back and forth between the two cores on every message (42 % of the
//! samples of a pub/sub spread over two shards were `shared_v_clone`/`shared_v_drop`). Copying a
//! small message into the ring costs less than that.
//!
//! The arena is a circular byte buffer that the producer fills in push order. An item pushed
//! with bytes holds a [`Stored`] saying where they lie; they stay the consumer's until the
//! ring's head moves past that item, which is also when the producer may write there again. So
//! the arena has no counters of its own: the producer remembers where each slot's bytes ended
//! and reads the ring's head.

use std::cell::UnsafeCell;

/// The byte storage. Both ends reach it through the ring's shared state; which bytes each may
/// touch is decided by the ring's head and tail (see the producer's `reserve`).
pub(super) struct Arena {
    data: Box<[UnsafeCell<u8>]>,
    /// Loom cannot follow a slice, so each byte has a tracked cell that every write and read
    /// touches: the model checker then sees the same accesses the real code makes.
    #[cfg(tachyon_loom)]
    shadow: Box<[loom::cell::UnsafeCell<()>]>,
}

impl Arena {
    /// `len` is zero (a ring without bytes) or a power of two below 4 GiB.
    pub(super) fn new(len: usize) -> Self {
        assert!(
            len == 0 || (len.is_power_of_two() && len <= u32::MAX as usize),
            "arena of {len} bytes: zero or a power of two below 4 GiB"
        );
        // Zeroed by the allocator: a large arena is mapped, not written, so only the part a
        // busy ring goes through becomes resident.
        let zeroed = vec![0u8; len].into_boxed_slice();
        // SAFETY: `UnsafeCell<u8>` is `repr(transparent)` over `u8`, so the slice has the same
        // layout and length, and the allocation is handed over whole (no other owner).
        let data = unsafe { Box::from_raw(Box::into_raw(zeroed) as *mut [UnsafeCell<u8>]) };
        Arena {
            data,
            #[cfg(tachyon_loom)]
            shadow: (0..len).map(|_| loom::cell::UnsafeCell::new(())).collect(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.data.len()
    }

    /// Tells one ring's arena from another's, so that bytes are never read through the wrong
    /// ring.
    fn id(&self) -> usize {
        self.data.as_ptr() as usize
    }

    /// Copies `src` to `at`.
    ///
    /// # Safety
    /// `at + src.len()` is within the arena, and the consumer can reach none of those bytes
    /// until this write is published (the ring's tail, stored with `Release`, after it).
    pub(super) unsafe fn write(&self, at: usize, src: &[u8]) {
        debug_assert!(at + src.len() <= self.len());
        #[cfg(tachyon_loom)]
        for cell in &self.shadow[at..at + src.len()] {
            cell.with_mut(|_| {});
        }
        // SAFETY: in bounds (caller); `UnsafeCell<u8>` has `u8`'s layout, and writing through
        // a pointer derived from the cells is allowed; nothing reads these bytes meanwhile
        // (caller), so no reference to them exists.
        unsafe {
            let dst = UnsafeCell::raw_get(self.data.as_ptr().add(at));
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
        }
    }

    /// The `len` bytes at `at`.
    ///
    /// # Safety
    /// They are within the arena, were written before the consumer acquired the tail that
    /// published them, and the producer writes none of them again while the returned slice
    /// lives (they belong to an item still in its slot).
    unsafe fn read(&self, at: usize, len: usize) -> &[u8] {
        debug_assert!(at + len <= self.len());
        #[cfg(tachyon_loom)]
        for cell in &self.shadow[at..at + len] {
            cell.with(|_| {});
        }
        // SAFETY: in bounds and not written while the slice lives (caller); the cells have
        // `u8`'s layout.
        unsafe { std::slice::from_raw_parts(UnsafeCell::raw_get(self.data.as_ptr().add(at)), len) }
    }
}

/// Where an item's bytes lie in its ring's arena. Made only by the producer, for the item it
/// pushes with them; read only through that item's [`InSlot`].
#[derive(Debug)]
pub struct Stored {
    at: u32,
    len: u32,
    /// The ring position of the item it came with.
    seq: usize,
    arena: usize,
}

impl Stored {
    pub(super) fn new(arena: &Arena, at: usize, len: usize, seq: usize) -> Self {
        debug_assert!(at + len <= arena.len());
        // Both fit: the arena is below 4 GiB (`Arena::new`).
        Stored {
            at: at as u32,
            len: len as u32,
            seq,
            arena: arena.id(),
        }
    }
}

/// The consumer's view of the item it is handling in its slot: what reads that item's bytes.
/// It lives only inside `Consumer::pop_in_slot`'s callback, so a slice it gives cannot outlive
/// the slot.
pub struct InSlot<'a> {
    pub(super) arena: &'a Arena,
    pub(super) seq: usize,
}

impl<'a> InSlot<'a> {
    /// The bytes `stored` points at.
    ///
    /// # Panics
    /// If `stored` did not come with this slot's item (moved out of another slot, or from
    /// another ring): its bytes may be written over already.
    pub fn bytes(&self, stored: &Stored) -> &'a [u8] {
        assert!(
            stored.seq == self.seq && stored.arena == self.arena.id(),
            "ring bytes read outside the slot they came with"
        );
        // SAFETY: `stored` was made by the producer for the item at ring position `seq`, within
        // the arena, with its bytes written before that item's tail was published; the consumer
        // acquired that tail before lending the item. The item is still in its slot (this
        // `InSlot` exists only while it is lent), and the producer writes those bytes again only
        // after the consumer publishes a head past it, which happens after the callback that
        // holds this `InSlot` (and every slice with its lifetime) returned.
        unsafe { self.arena.read(stored.at as usize, stored.len as usize) }
    }
}
