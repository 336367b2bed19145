//! SUB, UNSUB and auto-unsubscribe on the owning shard: the local sublist entry, and the interest
//! delta every other shard applies from its ring.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;

use super::{Shard, SubscribeError};
use crate::client::{ClientState, SubRef, Subscription};
use crate::envelope::{Envelope, InterestOp};

impl Shard {
    /// An internal client (`service.rs`) goes: its subscriptions leave every shard's interest.
    /// It was never counted among the connections.
    pub fn remove_internal(&self, client: &Rc<ClientState>) {
        let subs: Vec<SubRef> = client.subs.borrow_mut().drain().map(|(_, s)| s).collect();
        for sub in &subs {
            self.drop_sub(sub);
        }
        self.after_sends();
    }

    pub fn subscribe(
        &self,
        client: &Rc<ClientState>,
        subject: Bytes,
        queue: Option<Bytes>,
        sid: Bytes,
    ) -> Result<(), SubscribeError> {
        if client.subs.borrow().contains_key(&sid) {
            // nats-server keeps the first subscription for a reused sid.
            return Ok(());
        }
        let max = self.global.config().opts.max_subscriptions;
        if max > 0 && client.subs.borrow().len() >= max {
            return Err(SubscribeError::MaxSubscriptions);
        }
        let deny_filter = client
            .perms
            .borrow()
            .as_ref()
            .is_some_and(|p| p.perms().needs_delivery_filter(&subject, queue.as_deref()));
        let sub = SubRef(Rc::new(Subscription {
            deny_filter: Cell::new(deny_filter),
            client: client.clone(),
            subject: subject.clone(),
            queue: queue.clone(),
            sid: sid.clone(),
            max: Cell::new(0),
            delivered: Cell::new(0),
            removed: Cell::new(false),
        }));
        let account = client.account.get();
        self.local_space(account)
            .insert(&subject, queue.as_ref(), sub.clone());
        client.subs.borrow_mut().insert(sid, sub);
        client.interest_dirty.set(true);
        self.bump_stats(|s| s.sub_inserts += 1);
        self.leaf_note(
            account,
            InterestOp::Add,
            &subject,
            &queue,
            crate::leaf::owner_of(client),
        );
        let leaf = client.leaf.get();
        if leaf {
            self.leaf_present.set(true);
        }
        self.broadcast(|| Envelope::Interest {
            op: InterestOp::Add,
            account,
            subject: subject.clone(),
            queue: queue.clone(),
            leaf,
        });
        Ok(())
    }

    pub fn unsubscribe(&self, client: &Rc<ClientState>, sid: &[u8], max: Option<u64>) {
        let Some(sub) = client.subs.borrow().get(sid).cloned() else {
            return;
        };
        if let Some(max) = max.filter(|m| *m > 0) {
            if sub.delivered.get() < max {
                sub.max.set(max);
                return;
            }
        }
        client.subs.borrow_mut().remove(sid);
        client.interest_dirty.set(true);
        self.drop_sub(&sub);
        self.after_sends();
    }

    /// Takes a subscription out of the local sublist and tells the other shards.
    pub(super) fn drop_sub(&self, sub: &SubRef) {
        if sub.removed.replace(true) {
            return;
        }
        let account = sub.client.account.get();
        self.local_space(account)
            .remove(&sub.subject, sub.queue.as_deref(), sub);
        self.bump_stats(|s| s.sub_removes += 1);
        self.leaf_note(
            account,
            InterestOp::Remove,
            &sub.subject,
            &sub.queue,
            crate::leaf::owner_of(&sub.client),
        );
        let leaf = sub.client.leaf.get();
        self.send_to_all(|| Envelope::Interest {
            op: InterestOp::Remove,
            account,
            subject: sub.subject.clone(),
            queue: sub.queue.clone(),
            leaf,
        });
    }

    #[inline]
    pub(super) fn finish_auto_unsubs(&self) {
        if self.auto_unsub.borrow().is_empty() {
            return;
        }
        self.finish_auto_unsubs_slow();
    }

    #[cold]
    pub(super) fn finish_auto_unsubs_slow(&self) {
        let done: Vec<SubRef> = self.auto_unsub.borrow_mut().drain(..).collect();
        for sub in &done {
            let removed = {
                let mut subs = sub.client.subs.borrow_mut();
                match subs.get(&sub.sid) {
                    Some(s) if s == sub => subs.remove(&sub.sid).is_some(),
                    _ => false,
                }
            };
            if removed {
                sub.client.interest_dirty.set(true);
            }
            self.drop_sub(sub);
        }
        self.after_sends();
    }
}
