//! Sequence-ordered containers for the message bookkeeping: a sorted deque with lazy deletion.
//!
//! Sequences arrive in increasing order (appends; recovery walks segments in order), so an
//! insert is a push at the back, and retention mostly removes from the front, which pops.
//! A removal in the middle only marks its slot; when marked slots outnumber live ones the
//! deque is compacted, so memory stays proportional to the live entries (a KV-style stream
//! with one old key and millions of rewritten ones keeps two slots, not millions) and each
//! removal costs amortised O(1) plus the lookup. Lookups guess the slot from the first
//! sequence (exact while nothing in the middle was removed) and fall back to binary search.
//! Compared with a `BTreeMap` this is one contiguous push per append instead of a node walk
//! and, now and then, a node allocation.

use std::collections::VecDeque;

/// Marked slots below this count are never worth a compaction pass.
const MIN_COMPACT: usize = 32;

/// A slot of a [`SeqDeque`]: a sequence, and whether it still holds something.
pub(crate) trait Slot {
    fn seq(&self) -> u64;
    fn is_live(&self) -> bool;
}

#[derive(Debug)]
pub(crate) struct SeqDeque<S> {
    slots: VecDeque<S>,
    live: usize,
}

impl<S> Default for SeqDeque<S> {
    fn default() -> Self {
        SeqDeque {
            slots: VecDeque::new(),
            live: 0,
        }
    }
}

impl<S: Slot> SeqDeque<S> {
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The slot holding `seq` (live or not), or where it would go.
    fn pos(&self, seq: u64) -> Result<usize, usize> {
        if let Some(front) = self.slots.front() {
            let guess = seq.wrapping_sub(front.seq());
            if let Some(s) = usize::try_from(guess).ok().and_then(|g| self.slots.get(g)) {
                if s.seq() == seq {
                    return Ok(guess as usize);
                }
            }
        }
        self.slots.binary_search_by_key(&seq, |s| s.seq())
    }

    /// Adds a live slot; a slot with the same sequence is replaced and returned.
    fn put(&mut self, slot: S) -> Option<S> {
        let seq = slot.seq();
        if self.slots.back().is_none_or(|b| b.seq() < seq) {
            self.slots.push_back(slot);
            self.live += 1;
            return None;
        }
        match self.pos(seq) {
            Ok(i) => {
                let old = std::mem::replace(&mut self.slots[i], slot);
                if old.is_live() {
                    Some(old)
                } else {
                    self.live += 1;
                    None
                }
            }
            Err(i) => {
                self.slots.insert(i, slot);
                self.live += 1;
                None
            }
        }
    }

    fn get_slot(&self, seq: u64) -> Option<&S> {
        let s = self.slots.get(self.pos(seq).ok()?)?;
        s.is_live().then_some(s)
    }

    fn get_slot_mut(&mut self, seq: u64) -> Option<&mut S> {
        let i = self.pos(seq).ok()?;
        let s = self.slots.get_mut(i)?;
        if s.is_live() {
            Some(s)
        } else {
            None
        }
    }

    /// Marks the live slot of `seq` removed with `kill`, which returns what it held.
    fn take<T>(&mut self, seq: u64, kill: impl FnOnce(&mut S) -> Option<T>) -> Option<T> {
        let i = self.pos(seq).ok()?;
        let out = kill(self.slots.get_mut(i)?)?;
        self.live -= 1;
        while self.slots.front().is_some_and(|s| !s.is_live()) {
            self.slots.pop_front();
        }
        while self.slots.back().is_some_and(|s| !s.is_live()) {
            self.slots.pop_back();
        }
        let dead = self.slots.len() - self.live;
        if dead >= MIN_COMPACT && dead > self.live {
            self.slots.retain(|s| s.is_live());
        }
        // Give memory back after a large purge, with room to grow again without reallocating
        // at once.
        let cap = self.slots.capacity();
        if cap > 64 && cap > 4 * self.slots.len() {
            self.slots.shrink_to(2 * self.slots.len());
        }
        Some(out)
    }

    /// Live slots from `from` on, in order.
    fn slots_from(&self, from: u64) -> impl DoubleEndedIterator<Item = &S> {
        let start = self.pos(from).unwrap_or_else(|i| i);
        self.slots.range(start..).filter(|s| s.is_live())
    }

    /// Live slots in order. The first and last slots are always live (removal trims the ends).
    fn live_slots(&self) -> impl DoubleEndedIterator<Item = &S> {
        self.slots.iter().filter(|s| s.is_live())
    }

    pub fn first_seq(&self) -> Option<u64> {
        self.slots.front().map(Slot::seq)
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.slots.back().map(Slot::seq)
    }

    /// Slots actually held, live or marked (for tests of the memory bound).
    #[cfg(test)]
    fn capacity_used(&self) -> usize {
        self.slots.len()
    }
}

/// A sequence and its value; `None` once removed.
#[derive(Debug)]
pub(crate) struct Keyed<T> {
    seq: u64,
    val: Option<T>,
}

impl<T> Slot for Keyed<T> {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn is_live(&self) -> bool {
        self.val.is_some()
    }
}

/// Values by sequence.
pub(crate) type SeqMap<T> = SeqDeque<Keyed<T>>;

impl<T> SeqMap<T> {
    pub fn insert(&mut self, seq: u64, val: T) -> Option<T> {
        self.put(Keyed {
            seq,
            val: Some(val),
        })
        .and_then(|k| k.val)
    }

    pub fn get(&self, seq: u64) -> Option<&T> {
        self.get_slot(seq).and_then(|k| k.val.as_ref())
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut T> {
        self.get_slot_mut(seq).and_then(|k| k.val.as_mut())
    }

    pub fn remove(&mut self, seq: u64) -> Option<T> {
        self.take(seq, |k| k.val.take())
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &T)> {
        self.live_slots()
            .filter_map(|k| k.val.as_ref().map(|v| (k.seq, v)))
    }

    pub fn range_from(&self, from: u64) -> impl DoubleEndedIterator<Item = (u64, &T)> {
        self.slots_from(from)
            .filter_map(|k| k.val.as_ref().map(|v| (k.seq, v)))
    }

    pub fn first(&self) -> Option<(u64, &T)> {
        self.iter().next()
    }

    pub fn last(&self) -> Option<(u64, &T)> {
        self.iter().next_back()
    }
}

/// A sequence; the top bit marks it removed (the order of the rest is kept for searching).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bare(u64);

const GONE: u64 = 1 << 63;

impl Slot for Bare {
    fn seq(&self) -> u64 {
        self.0 & !GONE
    }
    fn is_live(&self) -> bool {
        self.0 & GONE == 0
    }
}

/// A set of sequences (below 2^63, as every stream sequence is).
pub(crate) type SeqSet = SeqDeque<Bare>;

impl SeqSet {
    pub fn from_seq(seq: u64) -> Self {
        let mut s = SeqSet::default();
        s.insert(seq);
        s
    }

    pub fn insert(&mut self, seq: u64) {
        self.put(Bare(seq & !GONE));
    }

    pub fn remove(&mut self, seq: u64) -> bool {
        self.take(seq, |b| {
            if b.is_live() {
                b.0 |= GONE;
                Some(())
            } else {
                None
            }
        })
        .is_some()
    }

    #[cfg(test)]
    pub fn contains(&self, seq: u64) -> bool {
        self.get_slot(seq).is_some()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.live_slots().map(Slot::seq)
    }

    pub fn range_from(&self, from: u64) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.slots_from(from).map(Slot::seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u64),
        Insert(u64),
        Remove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..4).prop_map(Op::Push),
            1 => (1u64..400).prop_map(Op::Insert),
            5 => (0u64..400).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Both containers against a `BTreeMap`, through every query, after every step.
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec(op(), 1..300)) {
            let mut map: SeqMap<u64> = SeqMap::default();
            let mut set = SeqSet::default();
            let mut model: BTreeMap<u64, u64> = BTreeMap::new();
            let mut next = 1u64;
            for (i, op) in ops.into_iter().enumerate() {
                let v = i as u64;
                match op {
                    Op::Push(gap) => {
                        next += gap;
                        prop_assert_eq!(map.insert(next, v), model.insert(next, v));
                        set.insert(next);
                    }
                    Op::Insert(seq) => {
                        prop_assert_eq!(map.insert(seq, v), model.insert(seq, v));
                        set.insert(seq);
                        next = next.max(seq);
                    }
                    Op::Remove(seq) => {
                        let want = model.remove(&seq);
                        prop_assert_eq!(set.remove(seq), want.is_some());
                        prop_assert_eq!(map.remove(seq), want);
                    }
                }
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(set.len(), model.len());
                let all: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(map.iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>(), all.clone());
                prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.keys().copied().collect::<Vec<_>>());
                prop_assert_eq!(map.first().map(|(k, _)| k), model.keys().next().copied());
                prop_assert_eq!(map.last().map(|(k, _)| k), model.keys().next_back().copied());
                prop_assert_eq!(map.first_seq(), model.keys().next().copied());
                prop_assert_eq!(set.last_seq(), model.keys().next_back().copied());
                for probe in [0, 1, next / 2, next, next + 1] {
                    prop_assert_eq!(map.get(probe), model.get(&probe));
                    prop_assert_eq!(set.contains(probe), model.contains_key(&probe));
                    prop_assert_eq!(
                        map.range_from(probe).map(|(k, _)| k).next(),
                        model.range(probe..).next().map(|(k, _)| *k)
                    );
                    prop_assert_eq!(
                        set.range_from(probe).next_back(),
                        model.range(probe..).next_back().map(|(k, _)| *k)
                    );
                }
                // Memory stays within twice the live entries (plus the compaction slack).
                prop_assert!(map.capacity_used() <= 2 * map.len() + MIN_COMPACT);
                prop_assert!(set.capacity_used() <= 2 * set.len() + MIN_COMPACT);
            }
        }
    }

    #[test]
    fn one_old_key_among_many_rewrites_keeps_memory_small() {
        let mut m: SeqMap<()> = SeqMap::default();
        m.insert(1, ());
        for seq in 2..200_000u64 {
            m.insert(seq, ());
            if seq > 2 {
                m.remove(seq - 1);
            }
        }
        assert_eq!(m.len(), 2);
        assert!(
            m.capacity_used() <= 2 + MIN_COMPACT + 1,
            "{}",
            m.capacity_used()
        );
        assert_eq!(m.get(1), Some(&()));
        assert_eq!(m.get(199_999), Some(&()));
    }

    #[test]
    fn memory_is_given_back_after_a_purge() {
        let mut m: SeqMap<[u64; 4]> = SeqMap::default();
        for seq in 1..=100_000u64 {
            m.insert(seq, [seq; 4]);
        }
        for seq in 1..=99_990u64 {
            m.remove(seq);
        }
        assert_eq!(m.len(), 10);
        assert!(m.slots.capacity() <= 64, "capacity {}", m.slots.capacity());
        assert_eq!(m.first_seq(), Some(99_991));
    }

    #[test]
    fn get_mut_changes_the_value() {
        let mut m: SeqMap<u32> = SeqMap::default();
        for s in 1..10 {
            m.insert(s, 0);
        }
        m.remove(4);
        *m.get_mut(7).unwrap() = 70;
        assert_eq!(m.get(7), Some(&70));
        assert_eq!(m.get_mut(4), None);
    }
}
