//! Per-message entries indexed by sequence. Sequences are handed out in order, so the live ones
//! sit in a window `[base, base + slots.len())`: an append is a push at the back, a load is an
//! index, a delete marks its slot empty. Empty slots at either end are dropped at once, so the
//! first and last slots are always live; deleted slots in the middle cost one slot each until
//! everything before them is gone.

use std::collections::VecDeque;

#[derive(Debug)]
pub(crate) struct SeqMap<T> {
    /// Sequence of `slots[0]`; meaningless while `slots` is empty.
    base: u64,
    slots: VecDeque<Option<T>>,
    live: usize,
}

impl<T> Default for SeqMap<T> {
    fn default() -> Self {
        SeqMap {
            base: 0,
            slots: VecDeque::new(),
            live: 0,
        }
    }
}

impl<T> SeqMap<T> {
    pub fn len(&self) -> usize {
        self.live
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        (i < self.slots.len()).then_some(i)
    }

    /// Stores `value` at `seq`, returning what was there.
    pub fn insert(&mut self, seq: u64, value: T) -> Option<T> {
        if self.slots.is_empty() {
            self.base = seq;
        } else if seq < self.base {
            // Only recovery inserts out of order; appends always go at the back.
            for _ in seq..self.base {
                self.slots.push_front(None);
            }
            self.base = seq;
        }
        let back = self.base + self.slots.len() as u64;
        if seq >= back {
            for _ in back..seq {
                self.slots.push_back(None);
            }
            self.slots.push_back(Some(value));
            self.live += 1;
            return None;
        }
        let i = self.index(seq)?;
        let old = self.slots.get_mut(i)?.replace(value);
        if old.is_none() {
            self.live += 1;
        }
        old
    }

    pub fn remove(&mut self, seq: u64) -> Option<T> {
        let i = self.index(seq)?;
        let old = self.slots.get_mut(i)?.take()?;
        self.live -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        while matches!(self.slots.back(), Some(None)) {
            self.slots.pop_back();
        }
        Some(old)
    }

    pub fn get(&self, seq: u64) -> Option<&T> {
        self.slots.get(self.index(seq)?)?.as_ref()
    }

    pub fn first(&self) -> Option<(u64, &T)> {
        Some((self.base, self.slots.front()?.as_ref()?))
    }

    pub fn last(&self) -> Option<(u64, &T)> {
        let back = self.slots.back()?.as_ref()?;
        Some((self.base + self.slots.len() as u64 - 1, back))
    }

    /// Live entries in sequence order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.range_from(self.base)
    }

    /// Live entries at or after `from`, in sequence order.
    pub fn range_from(&self, from: u64) -> impl Iterator<Item = (u64, &T)> {
        let skip = usize::try_from(from.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let base = self.base;
        self.slots
            .iter()
            .enumerate()
            .skip(skip)
            .filter_map(move |(i, v)| Some((base + i as u64, v.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::SeqMap;

    #[test]
    fn ends_stay_live_and_holes_are_skipped() {
        let mut m = SeqMap::default();
        for s in 5..=10 {
            assert_eq!(m.insert(s, s * 10), None);
        }
        assert_eq!(m.remove(7), Some(70));
        assert_eq!(m.remove(7), None);
        assert_eq!(m.remove(5), Some(50));
        assert_eq!(m.first(), Some((6, &60)));
        assert_eq!(m.remove(10), Some(100));
        assert_eq!(m.last(), Some((9, &90)));
        let seqs: Vec<u64> = m.range_from(0).map(|(s, _)| s).collect();
        assert_eq!(seqs, [6, 8, 9]);
        assert_eq!(m.range_from(7).next(), Some((8, &80)));
        assert_eq!(m.len(), 3);
        for s in [6, 8, 9] {
            m.remove(s);
        }
        assert_eq!((m.len(), m.first(), m.last()), (0, None, None));
        // An empty map starts again wherever the next insert lands.
        assert_eq!(m.insert(1000, 1), None);
        assert_eq!(m.first(), Some((1000, &1)));
    }

    #[test]
    fn recovery_may_insert_below_the_base_and_twice() {
        let mut m = SeqMap::default();
        m.insert(10, 'a');
        m.insert(3, 'b');
        assert_eq!(m.insert(10, 'c'), Some('a'));
        assert_eq!(m.len(), 2);
        assert_eq!(m.iter().collect::<Vec<_>>(), [(3, &'b'), (10, &'c')]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(u64),
    }

    proptest! {
        /// Any mix of inserts and removes reads back like a `BTreeMap`.
        #[test]
        fn behaves_like_a_btreemap(ops in prop::collection::vec(
            prop_oneof![(0u64..200).prop_map(Op::Insert), (0u64..200).prop_map(Op::Remove)],
            0..300,
        ), probe in 0u64..220) {
            let mut m = SeqMap::default();
            let mut model = BTreeMap::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(s) => prop_assert_eq!(m.insert(s, i), model.insert(s, i)),
                    Op::Remove(s) => prop_assert_eq!(m.remove(s), model.remove(&s)),
                }
            }
            prop_assert_eq!(m.len(), model.len());
            prop_assert_eq!(m.get(probe), model.get(&probe));
            prop_assert_eq!(m.first(), model.iter().next().map(|(s, v)| (*s, v)));
            prop_assert_eq!(m.last(), model.iter().next_back().map(|(s, v)| (*s, v)));
            let got: Vec<_> = m.range_from(probe).collect();
            let want: Vec<_> = model.range(probe..).map(|(s, v)| (*s, v)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
