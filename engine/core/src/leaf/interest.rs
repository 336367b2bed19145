//! What each link is told about interest (`LS+`/`LS-` to a leafnode link, `RS+`/`RS-` to a
//! route): the subscriptions of every shard in the link's account, kept on the link shard from
//! the same deltas the remote-interest index is built from, including those of other links, as
//! nats-server counts them: a link to our hub hears our clients' interest and that of leafs
//! connected to us, not that of our other hubs nor of our routes; a leaf connected to us hears
//! everything but its own; a route hears our clients' and our leafs' interest, never another
//! route's (one hop) nor our hubs'. Plain interest is announced on 0↔1 only; a queue group's
//! weight on every change (nats-server's `updateSmap`). JetStream's subjects never reach a
//! leafnode link (`super::js_denied`); they do reach routes.

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
    /// A route: the other end is a peer in our cluster.
    Route,
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
    /// Where the announcements are written.
    link: Rc<ClientState>,
    /// The link whose own interest is hidden from it (a route's stand-in for the account).
    id: u64,
    side: Side,
    /// A route's announcements name the account.
    account: Option<Bytes>,
}

pub struct LeafInterest {
    /// Every subscription of the account, links' included.
    counts: HashMap<Key, u32>,
    /// Of those, the links to our hubs'.
    spoke: HashMap<Key, u32>,
    /// Of those, the routes'.
    routed: HashMap<Key, u32>,
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
            routed: HashMap::new(),
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
        let count = |m: &HashMap<Key, u32>| m.get(key).copied().unwrap_or(0);
        let total = count(&self.counts);
        let hidden = match a.side {
            Side::Spoke | Side::Route => count(&self.spoke) + count(&self.routed),
            Side::Hub => self.owned.get(&(a.id, key.clone())).copied().unwrap_or(0),
        };
        total.saturating_sub(hidden)
    }

    /// One subscription came or went somewhere in the account.
    pub fn change(&mut self, op: InterestOp, subject: &Bytes, queue: &Option<Bytes>, owner: Owner) {
        let js = super::js_denied(subject);
        let key = (subject.clone(), queue.clone());
        if op == InterestOp::Remove && !self.counts.contains_key(&key) {
            return;
        }
        let before: Vec<u32> = self.links.iter().map(|a| self.seen_by(a, &key)).collect();
        step(&mut self.counts, key.clone(), op);
        if let Owner::Link(id, side) = owner {
            step(&mut self.owned, (id, key.clone()), op);
            match side {
                Side::Spoke => step(&mut self.spoke, key.clone(), op),
                Side::Route => step(&mut self.routed, key.clone(), op),
                Side::Hub => {}
            }
        }
        for (a, before) in self.links.iter().zip(before) {
            if js && a.side != Side::Route {
                continue;
            }
            let after = self.seen_by(a, &key);
            let mut out = Vec::new();
            match queue {
                Some(q) if after > 0 && after != before => {
                    announce(&mut out, a, subject, Some((q, after)))
                }
                Some(q) if after == 0 && before > 0 => withdraw(&mut out, a, subject, Some(q)),
                None if before == 0 && after > 0 => announce(&mut out, a, subject, None),
                None if before > 0 && after == 0 => withdraw(&mut out, a, subject, None),
                _ => continue,
            }
            a.link.send_raw(&out);
        }
    }

    /// A leafnode link is up: it hears all of the interest it may see, then every change.
    pub fn attach(&mut self, link: Rc<ClientState>, side: Side) {
        debug_assert!(side != Side::Route);
        let id = link.id;
        self.attach_as(link, id, side, None);
    }

    /// A route is up: `writer` (its connection) hears the account's interest as `RS+` naming
    /// `account`; `stand_in` is the route's subscriber in this account, whose interest it
    /// never hears back.
    pub fn attach_route(&mut self, writer: Rc<ClientState>, stand_in: u64, account: Bytes) {
        self.attach_as(writer, stand_in, Side::Route, Some(account));
    }

    fn attach_as(&mut self, link: Rc<ClientState>, id: u64, side: Side, account: Option<Bytes>) {
        let a = Attached {
            link,
            id,
            side,
            account,
        };
        let mut out = Vec::new();
        for (subject, queue) in self.counts.keys() {
            if side != Side::Route && super::js_denied(subject) {
                continue;
            }
            let n = self.seen_by(&a, &(subject.clone(), queue.clone()));
            if n == 0 {
                continue;
            }
            announce(&mut out, &a, subject, queue.as_ref().map(|q| (&q[..], n)));
        }
        if side != Side::Route {
            leaf::sub(&mut out, &self.lds, None);
        }
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

/// `LS+`, or `RS+` naming the account for a route.
fn announce(out: &mut Vec<u8>, a: &Attached, subject: &[u8], queue: Option<(&[u8], u32)>) {
    match &a.account {
        Some(acc) => leaf::route_sub(out, acc, subject, queue),
        None => leaf::sub(out, subject, queue),
    }
}

fn withdraw(out: &mut Vec<u8>, a: &Attached, subject: &[u8], queue: Option<&[u8]>) {
    match &a.account {
        Some(acc) => leaf::route_unsub(out, acc, subject, queue),
        None => leaf::unsub(out, subject, queue),
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
