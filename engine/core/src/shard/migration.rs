//! Moving a live connection from the shard that owns it (the old home, O) to another shard (the
//! new home, N) without losing, duplicating or reordering a message.
//!
//! 1. O stops the connection's reader at a read boundary (nothing it published is half routed)
//!    and sends N an `Adopt`: the connection's state, its subscriptions and a duplicate of its
//!    socket. O keeps delivering to it and its writer keeps writing.
//! 2. N installs the subscriptions in its sublist, holds what it delivers to them, stops routing
//!    them to O, and answers `SwitchedOld`. N delivers nothing from a shard that has not switched
//!    yet (that shard's earlier messages reach the connection through O).
//! 3. O then sends every other shard T a `Move`: T routes the subscriptions to N from now on and
//!    tells both homes (`SwitchedOld` to O, `SwitchedNew` to N). Each marker travels on the ring
//!    that carried T's earlier messages, so it splits T's messages exactly: before it, O delivers;
//!    after it, N does. O delivers nothing from a shard that switched.
//! 4. Once every shard switched, O stops the writer, takes what it had not written and sends it
//!    in the `Handoff`; it routes its own publishes to N from then on (behind the `Handoff` on the
//!    same ring). N puts those bytes in front of what it held, and the connection runs on N.
//!
//! Everything the connection published from O was applied by every shard before its first
//! publish from N: each shard's `SwitchedOld` follows O's earlier envelopes to it.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::accounts::AccountId;
use crate::client::{ClientState, SubRef, Subscription};
use crate::envelope::Envelope;
use crate::handover::{Arrived, Handoff, Migrant};
use crate::signal::LocalSignal;

use super::Shard;

/// A connection leaving this shard, waiting for every other shard to switch.
pub(super) struct Departure {
    client: Rc<ClientState>,
    to: u16,
    remaining: usize,
    ready: Rc<LocalSignal>,
    account: AccountId,
    subs: Arc<[(Bytes, Option<Bytes>)]>,
}

/// Both ends' bookkeeping of the moves in progress, by connection id.
#[derive(Default)]
pub(super) struct Moves {
    departures: HashMap<u64, Departure>,
    /// Connections adopted here, held until their `Handoff`, then given to the inbound loop.
    arrivals: HashMap<u64, Arrived>,
}

impl Shard {
    fn send_to(&self, shard: u16, env: Envelope) {
        if let Some(Some(o)) = self.outlets.get(shard as usize) {
            o.send(env);
        }
    }

    /// Old home: moves `client` (whose reader stopped) to shard `to`; returns once the new home
    /// has it. `writer` is the connection's writer task, stopped at the end.
    pub async fn depart(
        &self,
        client: &Rc<ClientState>,
        to: u16,
        migrant: Box<Migrant>,
        writer: glommio::task::JoinHandle<()>,
    ) {
        let cid = client.id;
        let subs: Arc<[(Bytes, Option<Bytes>)]> = migrant
            .subs
            .iter()
            .map(|(_, s, q)| (s.clone(), q.clone()))
            .collect();
        let ready = Rc::new(LocalSignal::default());
        self.moves.borrow_mut().departures.insert(
            cid,
            Departure {
                client: client.clone(),
                to,
                remaining: self.nshards - 1,
                ready: ready.clone(),
                account: client.account.get(),
                subs,
            },
        );
        tracing::debug!(
            "{} - cid:{cid} - moving from shard {} to shard {to}",
            client.peer_string(),
            self.id
        );
        self.send_to(to, Envelope::Adopt(migrant));
        self.after_sends();
        ready.wait().await;
        client.affinity.detaching.set(true);
        client.writer_wake.raise();
        let _ = writer.await;
        self.hand_off(cid);
    }

    /// Old home, every shard switched: the subscriptions leave, N gets the unwritten bytes.
    fn hand_off(&self, cid: u64) {
        let Some(d) = self.moves.borrow_mut().departures.remove(&cid) else {
            return;
        };
        let client = d.client;
        let subs: Vec<SubRef> = client.subs.borrow_mut().drain().map(|(_, s)| s).collect();
        {
            let mut local = self.local_space(d.account);
            for sub in &subs {
                sub.removed.set(true);
                local.remove(&sub.subject, sub.queue.as_deref(), sub);
            }
        }
        {
            let mut remote = self.remote_space(d.account);
            for (subject, queue) in d.subs.iter() {
                remote.add(d.to, subject.clone(), queue.clone());
            }
        }
        self.clients.borrow_mut().remove(&cid);
        let handoff = Handoff {
            cid,
            out: client.take_all_out(),
            counters: client.counters.get(),
            closed: client.close_reason(),
        };
        self.send_to(d.to, Envelope::Handoff(Box::new(handoff)));
        self.after_sends();
        // Every shard routes to the new home now and the Handoff is on its way, ahead of
        // anything this shard sends there later: the next move may start.
        self.placement.release_move(client.affinity.in_batch.get());
    }

    /// New home, step 2.
    pub(super) fn on_adopt(&self, from: u16, m: Box<Migrant>) {
        let Migrant {
            client,
            subs,
            session,
            fd,
        } = *m;
        let account = client.account;
        let c = Rc::new(ClientState::from_snapshot(client, fd));
        c.affinity.skip_from_all_but(self.id, self.nshards);
        {
            let mut local = self.local_space(account);
            let mut remote = self.remote_space(account);
            let mut own = c.subs.borrow_mut();
            for (sid, subject, queue) in subs {
                let sub = SubRef(Rc::new(Subscription {
                    client: c.clone(),
                    subject: subject.clone(),
                    queue: queue.clone(),
                    sid: sid.clone(),
                    max: Default::default(),
                    delivered: Default::default(),
                    removed: Default::default(),
                    deny_filter: Default::default(),
                }));
                local.insert(&subject, queue.as_ref(), sub.clone());
                remote.remove(from, subject, queue);
                own.insert(sid, sub);
            }
        }
        let cid = c.id;
        self.moves
            .borrow_mut()
            .arrivals
            .insert(cid, Arrived { client: c, session });
        self.send_to(from, Envelope::SwitchedOld { cid });
    }

    /// Every other shard, step 3.
    pub(super) fn on_move(
        &self,
        from: u16,
        cid: u64,
        to: u16,
        account: AccountId,
        subs: &[(Bytes, Option<Bytes>)],
    ) {
        {
            let mut remote = self.remote_space(account);
            for (subject, queue) in subs {
                remote.remove(from, subject.clone(), queue.clone());
                remote.add(to, subject.clone(), queue.clone());
            }
        }
        self.send_to(from, Envelope::SwitchedOld { cid });
        self.send_to(to, Envelope::SwitchedNew { cid });
    }

    /// Old home: shard `from` switched. The first to switch is the new home itself; the others
    /// are asked to switch only then, so N holds the subscriptions before anyone routes to it.
    pub(super) fn on_switched_old(&self, from: u16, cid: u64) {
        let mut moves = self.moves.borrow_mut();
        let Some(d) = moves.departures.get_mut(&cid) else {
            return;
        };
        d.client.affinity.skip(from);
        if from == d.to {
            for (shard, o) in self.outlets() {
                if shard != d.to {
                    o.send(Envelope::Move {
                        cid,
                        to: d.to,
                        account: d.account,
                        subs: d.subs.clone(),
                    });
                }
            }
        }
        // Each other shard switches exactly once per move.
        assert!(d.remaining > 0, "cid {cid}: more switches than shards");
        d.remaining -= 1;
        if d.remaining == 0 {
            d.ready.raise();
        }
    }

    /// New home: messages from `from` are for this copy from now on.
    pub(super) fn on_switched_new(&self, from: u16, cid: u64) {
        let moves = self.moves.borrow();
        if let Some(a) = moves.arrivals.get(&cid) {
            a.client.affinity.unskip(from);
        } else if let Some(c) = self.clients.borrow().get(&cid) {
            c.affinity.unskip(from);
        }
    }

    /// New home, step 4: the connection runs here from now on; the inbound loop that popped
    /// the handoff resumes it (the shard never calls into the connection layer).
    pub(super) fn on_handoff(&self, from: u16, h: Handoff) -> Option<Arrived> {
        let Some(a) = self.moves.borrow_mut().arrivals.remove(&h.cid) else {
            panic!(
                "shard {}: handoff of cid {} that never arrived",
                self.id, h.cid
            );
        };
        let c = &a.client;
        c.prepend_out(h.out);
        let mut n = c.counters.get();
        n += h.counters;
        c.counters.set(n);
        c.affinity.unskip(from);
        if let Some(r) = h.closed {
            c.close(r);
        }
        self.clients.borrow_mut().insert(c.id, c.clone());
        tracing::debug!(
            "{} - cid:{} - moved from shard {from} to shard {}",
            c.peer_string(),
            c.id,
            self.id
        );
        Some(a)
    }
}
