//! What a leaf tells its hub about interest (`LS+`/`LS-`): the union of every shard's
//! subscriptions in the bound account, kept on the link's shard from the same deltas the
//! remote-interest index is built from. Plain interest is announced on 0↔1 only; a queue
//! group's weight on every change (nats-server's `updateSmap`). The link's own subscriptions
//! (the hub's interest) are never counted: they would echo back.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use tachyon_protocol::leaf;

use crate::client::ClientState;
use crate::envelope::InterestOp;

pub struct LeafInterest {
    counts: HashMap<(Bytes, Option<Bytes>), u32>,
    /// The connected links (one per remote of the account): announcements go to their
    /// outbound buffers.
    links: Vec<Rc<ClientState>>,
    /// `$LDS.<random>`: announced with the rest; hearing it back means a loop.
    lds: Bytes,
}

impl LeafInterest {
    pub fn new(lds: Bytes) -> LeafInterest {
        LeafInterest {
            counts: HashMap::new(),
            links: Vec::new(),
            lds,
        }
    }

    pub fn lds(&self) -> &Bytes {
        &self.lds
    }

    /// One subscription came or went somewhere in the account.
    pub fn change(&mut self, op: InterestOp, subject: &Bytes, queue: &Option<Bytes>) {
        if super::js_denied(subject) {
            return;
        }
        let key = (subject.clone(), queue.clone());
        let (before, after) = match op {
            InterestOp::Add => {
                let n = self.counts.entry(key).or_insert(0);
                *n += 1;
                (*n - 1, *n)
            }
            InterestOp::Remove => {
                let Some(n) = self.counts.get_mut(&key) else {
                    return;
                };
                *n -= 1;
                let after = *n;
                if after == 0 {
                    self.counts.remove(&key);
                }
                (after + 1, after)
            }
        };
        if self.links.is_empty() {
            return;
        }
        let mut out = Vec::new();
        match queue {
            Some(q) if after > 0 => leaf::sub(&mut out, subject, Some((q, after))),
            Some(q) => leaf::unsub(&mut out, subject, Some(q)),
            None if before == 0 && after > 0 => leaf::sub(&mut out, subject, None),
            None if before > 0 && after == 0 => leaf::unsub(&mut out, subject, None),
            None => return,
        }
        for link in &self.links {
            link.send_raw(&out);
        }
    }

    /// A link is up: it hears all of the interest, then every change.
    pub fn attach(&mut self, link: Rc<ClientState>) {
        let mut out = Vec::new();
        for ((subject, queue), n) in &self.counts {
            match queue {
                Some(q) => leaf::sub(&mut out, subject, Some((q, *n))),
                None => leaf::sub(&mut out, subject, None),
            }
        }
        leaf::sub(&mut out, &self.lds, None);
        link.send_raw(&out);
        self.links.push(link);
    }

    /// `link` is gone (another remote's link of the account stays).
    pub fn detach(&mut self, link: &Rc<ClientState>) {
        self.links.retain(|l| !Rc::ptr_eq(l, link));
    }

    /// How many (subject, queue) keys have interest.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Rc<ClientState> {
        Rc::new(ClientState::new(1, None, -1, usize::MAX))
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
        li.change(InterestOp::Add, &foo, &None);
        li.change(InterestOp::Add, &foo, &None);
        li.change(InterestOp::Add, &foo, &q);
        let l = link();
        li.attach(l.clone());
        let dump = sent(&l);
        assert!(dump.contains("LS+ foo\r\n"), "{dump}");
        assert!(dump.contains("LS+ foo q 1\r\n"), "{dump}");
        assert!(dump.ends_with("LS+ $LDS.x\r\n"), "{dump}");
        li.change(InterestOp::Add, &foo, &q);
        li.change(InterestOp::Remove, &foo, &None);
        assert_eq!(sent(&l), "LS+ foo q 2\r\n", "plain 2 -> 1 says nothing");
        li.change(InterestOp::Remove, &foo, &None);
        li.change(InterestOp::Remove, &foo, &q);
        li.change(InterestOp::Remove, &foo, &q);
        assert_eq!(sent(&l), "LS- foo\r\nLS+ foo q 1\r\nLS- foo q\r\n");
        assert!(li.is_empty());
        let other = link();
        li.attach(other.clone());
        assert!(sent(&other).ends_with("LS+ $LDS.x\r\n"));
        li.detach(&l);
        li.change(InterestOp::Add, &foo, &None);
        assert_eq!(sent(&l), "");
        assert_eq!(sent(&other), "LS+ foo\r\n", "the other link still hears");
        assert_eq!(li.len(), 1);
    }
}
