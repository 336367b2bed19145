//! What each leafnode link is told about interest (`LS+`/`LS-`): the subscriptions of every
//! shard in the link's account, kept on the link shard from the same deltas the remote-interest
//! index is built from, including those of other links, as nats-server counts them: a link to
//! our hub hears our clients' interest and that of leafs connected to us, not that of our other
//! hubs; a leaf connected to us hears everything but its own. Plain interest is announced on
//! 0↔1 only; a queue group's weight on every change (nats-server's `updateSmap`).

use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use tachyon_protocol::leaf;

use crate::client::ClientState;
use crate::envelope::InterestOp;

type Key = (Bytes, Option<Bytes>);

/// Which end of a link this server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// We dialed it: the other end is our hub.
    Spoke,
    /// It dialed us: the other end is our leaf.
    Hub,
}

/// Whose subscription an interest change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A client's or a service's.
    Local,
    /// A link's: the interest of the server at its other end.
    Link(u64, Side),
}

struct Attached {
    link: Rc<ClientState>,
    side: Side,
}

pub struct LeafInterest {
    /// Every subscription of the account, links' included.
    counts: HashMap<Key, u32>,
    /// Of those, the links to our hubs'.
    spoke: HashMap<Key, u32>,
    /// Of those, each link's own.
    owned: HashMap<(u64, Key), u32>,
    links: Vec<Attached>,
    /// `$LDS.<random>`: announced with the rest; hearing it back means a loop.
    lds: Bytes,
}

impl LeafInterest {
    pub fn new(lds: Bytes) -> LeafInterest {
        LeafInterest {
            counts: HashMap::new(),
            spoke: HashMap::new(),
            owned: HashMap::new(),
            links: Vec::new(),
            lds,
        }
    }

    pub fn lds(&self) -> &Bytes {
        &self.lds
    }

    /// How many subscriptions under `key` the link `a` is told of.
    fn seen_by(&self, a: &Attached, key: &Key) -> u32 {
        let total = self.counts.get(key).copied().unwrap_or(0);
        let hidden = match a.side {
            Side::Spoke => self.spoke.get(key).copied().unwrap_or(0),
            Side::Hub => self
                .owned
                .get(&(a.link.id, key.clone()))
                .copied()
                .unwrap_or(0),
        };
        total.saturating_sub(hidden)
    }

    /// One subscription came or went somewhere in the account.
    pub fn change(&mut self, op: InterestOp, subject: &Bytes, queue: &Option<Bytes>, owner: Owner) {
        if super::js_denied(subject) {
            return;
        }
        let key = (subject.clone(), queue.clone());
        if op == InterestOp::Remove && !self.counts.contains_key(&key) {
            return;
        }
        let before: Vec<u32> = self.links.iter().map(|a| self.seen_by(a, &key)).collect();
        step(&mut self.counts, key.clone(), op);
        if let Owner::Link(id, side) = owner {
            step(&mut self.owned, (id, key.clone()), op);
            if side == Side::Spoke {
                step(&mut self.spoke, key.clone(), op);
            }
        }
        for (a, before) in self.links.iter().zip(before) {
            let after = self.seen_by(a, &key);
            let mut out = Vec::new();
            match queue {
                Some(q) if after > 0 && after != before => {
                    leaf::sub(&mut out, subject, Some((q, after)))
                }
                Some(q) if after == 0 && before > 0 => leaf::unsub(&mut out, subject, Some(q)),
                None if before == 0 && after > 0 => leaf::sub(&mut out, subject, None),
                None if before > 0 && after == 0 => leaf::unsub(&mut out, subject, None),
                _ => continue,
            }
            a.link.send_raw(&out);
        }
    }

    /// A link is up: it hears all of the interest it may see, then every change.
    pub fn attach(&mut self, link: Rc<ClientState>, side: Side) {
        let a = Attached { link, side };
        let mut out = Vec::new();
        for (subject, queue) in self.counts.keys() {
            let n = self.seen_by(&a, &(subject.clone(), queue.clone()));
            if n == 0 {
                continue;
            }
            match queue {
                Some(q) => leaf::sub(&mut out, subject, Some((q, n))),
                None => leaf::sub(&mut out, subject, None),
            }
        }
        leaf::sub(&mut out, &self.lds, None);
        a.link.send_raw(&out);
        self.links.push(a);
    }

    /// `link` is gone (the account's other links stay).
    pub fn detach(&mut self, link: &Rc<ClientState>) {
        self.links.retain(|a| !Rc::ptr_eq(&a.link, link));
    }

    /// How many (subject, queue) keys have interest.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Adds or takes back one under `key`; a count that reaches 0 leaves the map.
fn step<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K, op: InterestOp) {
    match op {
        InterestOp::Add => *map.entry(key).or_insert(0) += 1,
        InterestOp::Remove => {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Rc<ClientState> {
        link_id(1)
    }

    fn link_id(id: u64) -> Rc<ClientState> {
        Rc::new(ClientState::new(id, None, -1, usize::MAX))
    }

    fn sent(c: &ClientState) -> String {
        let mut v = Vec::new();
        c.take_out(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn plain_on_edges_queues_on_every_change() {
        let mut li = LeafInterest::new(Bytes::from_static(b"$LDS.x"));
        let foo = Bytes::from_static(b"foo");
        let q = Some(Bytes::from_static(b"q"));
        li.change(InterestOp::Add, &foo, &None, Owner::Local);
        li.change(InterestOp::Add, &foo, &None, Owner::Local);
        li.change(InterestOp::Add, &foo, &q, Owner::Local);
        let l = link();
        li.attach(l.clone(), Side::Spoke);
        let dump = sent(&l);
        assert!(dump.contains("LS+ foo\r\n"), "{dump}");
        assert!(dump.contains("LS+ foo q 1\r\n"), "{dump}");
        assert!(dump.ends_with("LS+ $LDS.x\r\n"), "{dump}");
        li.change(InterestOp::Add, &foo, &q, Owner::Local);
        li.change(InterestOp::Remove, &foo, &None, Owner::Local);
        assert_eq!(sent(&l), "LS+ foo q 2\r\n", "plain 2 -> 1 says nothing");
        li.change(InterestOp::Remove, &foo, &None, Owner::Local);
        li.change(InterestOp::Remove, &foo, &q, Owner::Local);
        li.change(InterestOp::Remove, &foo, &q, Owner::Local);
        assert_eq!(sent(&l), "LS- foo\r\nLS+ foo q 1\r\nLS- foo q\r\n");
        assert!(li.is_empty());
        let other = link();
        li.attach(other.clone(), Side::Spoke);
        assert!(sent(&other).ends_with("LS+ $LDS.x\r\n"));
        li.detach(&l);
        li.change(InterestOp::Add, &foo, &None, Owner::Local);
        assert_eq!(sent(&l), "");
        assert_eq!(sent(&other), "LS+ foo\r\n", "the other link still hears");
        assert_eq!(li.len(), 1);
    }

    #[test]
    fn links_hear_each_other_as_nats_server_tells_them() {
        let mut li = LeafInterest::new(Bytes::from_static(b"$LDS.x"));
        let (hub, leaf_a, leaf_b) = (link_id(10), link_id(11), link_id(12));
        li.attach(hub.clone(), Side::Spoke);
        li.attach(leaf_a.clone(), Side::Hub);
        li.attach(leaf_b.clone(), Side::Hub);
        for l in [&hub, &leaf_a, &leaf_b] {
            sent(l);
        }
        let a = Bytes::from_static(b"a.x");
        // Leaf A's interest: our hub and leaf B hear it, A does not hear its own.
        li.change(InterestOp::Add, &a, &None, Owner::Link(11, Side::Hub));
        assert_eq!(sent(&hub), "LS+ a.x\r\n");
        assert_eq!(sent(&leaf_b), "LS+ a.x\r\n");
        assert_eq!(sent(&leaf_a), "");
        // Our hub's interest: the leafs hear it, the hub does not.
        let h = Bytes::from_static(b"h.x");
        li.change(InterestOp::Add, &h, &None, Owner::Link(10, Side::Spoke));
        assert_eq!(sent(&hub), "");
        assert_eq!(sent(&leaf_a), "LS+ h.x\r\n");
        assert_eq!(sent(&leaf_b), "LS+ h.x\r\n");
        // A local client on A's subject: A now hears it (it was only its own before); nobody
        // else hears a change (they had it already).
        li.change(InterestOp::Add, &a, &None, Owner::Local);
        assert_eq!(sent(&leaf_a), "LS+ a.x\r\n");
        assert_eq!(sent(&hub), "");
        li.change(InterestOp::Remove, &a, &None, Owner::Link(11, Side::Hub));
        assert_eq!((sent(&hub), sent(&leaf_b)), (String::new(), String::new()));
        li.change(InterestOp::Remove, &a, &None, Owner::Local);
        assert_eq!(sent(&hub), "LS- a.x\r\n");
        assert_eq!(sent(&leaf_a), "LS- a.x\r\n");
        assert_eq!(sent(&leaf_b), "LS- a.x\r\n");
    }
}
