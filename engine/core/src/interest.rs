//! Remote interest: which other shards subscribe to which subject patterns (and queue groups, with
//! how many members each), kept from the interest deltas that arrive on the rings.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;

use crate::sublist::{MatchResult, Sublist};

/// One (pattern, queue, shard) key in the trie; `weight` is how many subscriptions that shard has
/// under that key, shared with the count map so weight changes need no trie update.
#[derive(Clone)]
pub struct RemoteEntry {
    pub shard: u16,
    pub weight: Rc<Cell<u32>>,
    /// A leafnode link's subscriptions (the hub's interest): a queue group's members there
    /// are picked only when it has no other (nats-server's preference for local members).
    pub leaf: bool,
}

impl PartialEq for RemoteEntry {
    fn eq(&self, other: &Self) -> bool {
        self.shard == other.shard && Rc::ptr_eq(&self.weight, &other.weight)
    }
}

type Key = (Bytes, Option<Bytes>, u16, bool);

#[derive(Default)]
pub struct RemoteInterest {
    trie: Sublist<RemoteEntry>,
    counts: HashMap<Key, Rc<Cell<u32>>>,
}

impl RemoteInterest {
    pub fn new() -> Self {
        RemoteInterest {
            trie: Sublist::new(),
            counts: HashMap::new(),
        }
    }

    pub fn add(&mut self, shard: u16, subject: Bytes, queue: Option<Bytes>) {
        self.add_of(shard, subject, queue, false);
    }

    /// As [`RemoteInterest::add`], for a leafnode link's subscription when `leaf` is set.
    pub fn add_of(&mut self, shard: u16, subject: Bytes, queue: Option<Bytes>, leaf: bool) {
        let key = (subject, queue, shard, leaf);
        if let Some(w) = self.counts.get(&key) {
            w.set(w.get() + 1);
            return;
        }
        let weight = Rc::new(Cell::new(1));
        self.trie.insert(
            &key.0,
            key.1.as_ref(),
            RemoteEntry {
                shard,
                weight: weight.clone(),
                leaf,
            },
        );
        self.counts.insert(key, weight);
    }

    /// Takes back one `add` of the same key. Deltas from one shard arrive in order on one ring,
    /// so a remove always follows its add: an unknown key is a bug.
    pub fn remove(&mut self, shard: u16, subject: Bytes, queue: Option<Bytes>) {
        self.remove_of(shard, subject, queue, false);
    }

    /// As [`RemoteInterest::remove`], for what [`RemoteInterest::add_of`] added.
    pub fn remove_of(&mut self, shard: u16, subject: Bytes, queue: Option<Bytes>, leaf: bool) {
        let key = (subject, queue, shard, leaf);
        let Some(w) = self.counts.get(&key) else {
            panic!(
                "removing interest shard {shard} never added: {:?} {:?}",
                key.0, key.1
            );
        };
        if w.get() > 1 {
            w.set(w.get() - 1);
            return;
        }
        if let Some(weight) = self.counts.remove(&key) {
            self.trie.remove(
                &key.0,
                key.1.as_deref(),
                &RemoteEntry {
                    shard,
                    weight,
                    leaf,
                },
            );
        }
    }

    pub fn match_subject(&mut self, subject: &[u8]) -> Rc<MatchResult<RemoteEntry>> {
        self.trie.match_subject(subject)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_adds_and_removes() {
        let mut ri = RemoteInterest::new();
        let q = Some(Bytes::from_static(b"q"));
        ri.add(2, Bytes::from_static(b"foo.*"), q.clone());
        ri.add(2, Bytes::from_static(b"foo.*"), q.clone());
        ri.add(3, Bytes::from_static(b"foo.bar"), None);
        let r = ri.match_subject(b"foo.bar");
        assert_eq!(r.plain.len(), 1);
        assert_eq!(r.plain[0].shard, 3);
        assert_eq!(r.queues.len(), 1);
        assert_eq!(r.queues[0].members[0].weight.get(), 2);
        ri.remove(2, Bytes::from_static(b"foo.*"), q.clone());
        let r = ri.match_subject(b"foo.bar");
        assert_eq!(r.queues[0].members[0].weight.get(), 1);
        ri.remove(2, Bytes::from_static(b"foo.*"), q);
        ri.remove(3, Bytes::from_static(b"foo.bar"), None);
        let r = ri.match_subject(b"foo.bar");
        assert!(r.plain.is_empty() && r.queues.is_empty());
        assert!(ri.is_empty());
    }

    #[test]
    fn unrelated_interest_keeps_cached_matches() {
        let mut ri = RemoteInterest::new();
        ri.add(1, Bytes::from_static(b"orders.*"), None);
        // Cached on its second use.
        ri.match_subject(b"orders.new");
        let warm = ri.match_subject(b"orders.new");
        // Another shard's inbox subscription coming and going must not cost this subject a miss.
        ri.add(2, Bytes::from_static(b"_INBOX.x"), None);
        ri.add(2, Bytes::from_static(b"_INBOX.*"), None);
        ri.remove(2, Bytes::from_static(b"_INBOX.x"), None);
        ri.remove(2, Bytes::from_static(b"_INBOX.*"), None);
        assert!(Rc::ptr_eq(&warm, &ri.match_subject(b"orders.new")));
        // Interest it matches does change it.
        ri.add(3, Bytes::from_static(b"orders.>"), None);
        let r = ri.match_subject(b"orders.new");
        assert_eq!(r.plain.len(), 2);
    }

    #[test]
    #[should_panic(expected = "never added")]
    fn removing_unknown_interest_is_a_bug() {
        let mut ri = RemoteInterest::new();
        ri.remove(1, Bytes::from_static(b"a"), None);
    }
}
