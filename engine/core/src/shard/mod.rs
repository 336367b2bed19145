//! One shard: the state a single executor owns (its connections' subscriptions, the remote interest
//! of the other shards, the rings to them) and the publish routing that uses it.

pub mod mailbox;
pub mod mesh;
pub mod migration;
pub mod rebalance;
pub mod tasks;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tachyon_protocol::headers;

use crate::accounts::AccountId;
use crate::client::{ClientCounters, ClientState, CloseReason, SendStatus, SubRef, Subscription};
use crate::envelope::{Envelope, InterestOp, QueuePicks, RoutedMsg};
use crate::global::Global;
use crate::interest::RemoteInterest;
use crate::outlet::Outlet;
use crate::signal::LocalSignal;
use crate::sublist::{MatchResult, Sublist};

/// Per-shard counters; monitoring sums them over shards.
#[derive(Default, Debug, Clone, Copy)]
pub struct ShardStats {
    pub slow_consumers: u64,
    pub stale_connections: u64,
    pub routed_out: u64,
    pub routed_in: u64,
    /// Connections this shard ever accepted (past the connection limit).
    pub total_connections: u64,
    /// What closed connections counted; live ones are read from their own counters.
    pub closed: ClientCounters,
    pub sub_inserts: u64,
    pub sub_removes: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscribeError {
    #[error("maximum subscriptions exceeded")]
    MaxSubscriptions,
}

/// One message as delivery sees it: borrowed from the publisher's read buffer.
#[derive(Clone, Copy)]
struct MsgView<'a> {
    subject: &'a [u8],
    reply: Option<&'a [u8]>,
    /// Set for HMSG: `payload` starts with this many bytes of header block.
    header_len: Option<usize>,
    payload: &'a [u8],
    /// The shard it was published on.
    src: u16,
}

/// One published message as routing passes it on: `Bytes` handles, so a remote shard gets a
/// clone, not a copy. Imports route the same message again under another subject or reply.
#[derive(Clone, Copy)]
struct Published<'a> {
    subject: &'a Bytes,
    reply: Option<&'a Bytes>,
    header_len: Option<usize>,
    payload: &'a Bytes,
}

/// Where one publish goes on one remote shard; reused between publishes.
#[derive(Default)]
struct Target {
    plain: bool,
    picks: QueuePicks,
    touched: bool,
}

struct PendingBarrier {
    remaining: usize,
    done: Rc<LocalSignal>,
}

pub struct Shard {
    pub id: u16,
    pub nshards: usize,
    pub global: Arc<Global>,
    /// One sublist and one remote-interest index per account, indexed by account id: subject
    /// spaces never mix.
    local: RefCell<Vec<Sublist<SubRef>>>,
    remote: RefCell<Vec<RemoteInterest>>,
    /// Indexed by shard id; `None` at our own index.
    outlets: Vec<Option<Outlet>>,
    pub clients: RefCell<HashMap<u64, Rc<ClientState>>>,
    barriers: RefCell<HashMap<u64, PendingBarrier>>,
    next_token: Cell<u64>,
    rng: Cell<u64>,
    targets: RefCell<Vec<Target>>,
    touched: RefCell<Vec<u16>>,
    auto_unsub: RefCell<Vec<SubRef>>,
    /// Clients that crossed their stall mark since the feeders last paused for them.
    stalled: RefCell<Vec<Rc<ClientState>>>,
    /// Feeders paused for stalled clients, oldest first: (ticket, the clients' ids).
    stall_queue: RefCell<VecDeque<StallEntry>>,
    next_stall_ticket: Cell<u64>,
    pub stats: Cell<ShardStats>,
    /// Set by `send_targets` when a publish went to another shard; read by `publish`.
    routed: Cell<bool>,
    /// Raised when some outlet has overflow to push once the ring has room.
    pub overflow_pending: LocalSignal,
    pub accepting: Cell<bool>,
    /// Connections moving to or from this shard (`migration.rs`).
    moves: RefCell<migration::Moves>,
    placement: rebalance::Placement,
    /// When the rebalancer last looked at the connections, and when it looks next.
    last_tick: Cell<std::time::Instant>,
    next_tick: Cell<std::time::Instant>,
}

impl Shard {
    pub fn new(
        id: u16,
        nshards: usize,
        global: Arc<Global>,
        outlets: Vec<Option<Outlet>>,
        placement: rebalance::Placement,
    ) -> Self {
        let mut targets = Vec::with_capacity(nshards);
        targets.resize_with(nshards, Target::default);
        let naccounts = global.accounts.len().max(1);
        Shard {
            id,
            nshards,
            global,
            local: RefCell::new((0..naccounts).map(|_| Sublist::new()).collect()),
            remote: RefCell::new((0..naccounts).map(|_| RemoteInterest::new()).collect()),
            outlets,
            clients: RefCell::new(HashMap::new()),
            barriers: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) << 17)),
            targets: RefCell::new(targets),
            touched: RefCell::new(Vec::with_capacity(nshards)),
            auto_unsub: RefCell::new(Vec::new()),
            stalled: RefCell::new(Vec::new()),
            stall_queue: RefCell::new(VecDeque::new()),
            next_stall_ticket: Cell::new(0),
            stats: Cell::new(ShardStats::default()),
            routed: Cell::new(false),
            overflow_pending: LocalSignal::default(),
            accepting: Cell::new(true),
            moves: RefCell::new(migration::Moves::default()),
            placement,
            last_tick: Cell::new(std::time::Instant::now()),
            next_tick: Cell::new(std::time::Instant::now()),
        }
    }

    fn rand_below(&self, n: usize) -> usize {
        // xorshift64*: queue picks need spread, not cryptographic quality.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }

    fn bump_stats(&self, f: impl FnOnce(&mut ShardStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    fn outlets(&self) -> impl Iterator<Item = (u16, &Outlet)> {
        self.outlets
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|o| (i as u16, o)))
    }

    /// Queues one envelope per other shard; the caller rings the doorbells (`after_sends`).
    fn send_to_all(&self, mut make: impl FnMut() -> Envelope) {
        for (_, o) in self.outlets() {
            o.send(make());
        }
    }

    fn broadcast(&self, make: impl FnMut() -> Envelope) {
        self.send_to_all(make);
        self.after_sends();
    }

    /// Rings the doorbells of every outlet pushed to, and starts the overflow flusher if needed.
    /// Returns whether some envelope is waiting for ring space.
    pub fn after_sends(&self) -> bool {
        let mut overflow = false;
        for (_, o) in self.outlets() {
            o.ring_doorbell();
            overflow |= o.has_overflow();
        }
        if overflow {
            self.overflow_pending.raise();
        }
        overflow
    }

    /// Pushes overflow into rings that have room; true when nothing is left waiting.
    pub fn flush_overflow(&self) -> bool {
        let mut all = true;
        for (_, o) in self.outlets() {
            all &= o.flush_overflow();
            o.ring_doorbell();
        }
        all
    }

    /// Back-pressure for the overflow task: returns once every ring took what waited for it.
    pub async fn wait_outlets_drained(&self) {
        while !self.flush_overflow() {
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
    }

    /// Back-pressure for a publishing connection: returns once every envelope queued so far
    /// (its own included) moved into the rings. Waiting for empty queues instead let the reader
    /// released first refill them, so another reader on the shard could wait indefinitely.
    pub async fn wait_own_overflow_flushed(&self) {
        let marks: Vec<(u16, u64)> = self
            .outlets()
            .filter(|(_, o)| o.has_overflow())
            .map(|(i, o)| (i, o.overflow_mark()))
            .collect();
        loop {
            self.flush_overflow();
            let done = marks.iter().all(|(i, m)| {
                self.outlets
                    .get(*i as usize)
                    .and_then(Option::as_ref)
                    .is_none_or(|o| o.flushed_past(*m))
            });
            if done {
                return;
            }
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
    }

    /// Whether some client this shard feeds is behind its stall mark.
    pub fn has_stalled(&self) -> bool {
        !self.stalled.borrow().is_empty()
    }

    /// Pauses the caller (a publishing connection or a ring consumer) while the clients it
    /// pushed past their stall mark catch up, for at most a few milliseconds in all: a slow
    /// reader slows its feeders down a little before it is cut off, as in nats-server.
    ///
    /// Feeders of the same client resume in the order they paused: when it catches up, the
    /// longest-waiting feeder goes first and the others wait for their turn. Without the order,
    /// whichever paused feeder happened to poll first ran on while the rest got one message per
    /// 5 ms timeout: a 1 KiB fan-in of 8 publishers (2 M messages) had a p99 of 0.55 s against
    /// nats-server's 0.14 s; with it, 0.14-0.15 s. Ring consumers are the exception: see
    /// [`Feeder::Ring`] for where they queue.
    pub async fn wait_stalled(&self, feeder: Feeder) {
        const STALL_MAX: Duration = Duration::from_millis(5);
        if !self.has_stalled() {
            return;
        }
        let clients: Vec<Rc<ClientState>> = self.stalled.borrow_mut().drain(..).collect();
        let ids: Vec<u64> = clients.iter().map(|c| c.id).collect();
        let ticket = self.next_stall_ticket.get();
        self.next_stall_ticket.set(ticket + 1);
        {
            let mut q = self.stall_queue.borrow_mut();
            let at = feeder.place(q.iter().map(|e| e.1));
            q.insert(at, (ticket, feeder, ids));
        }
        // Leaves the queue however this future ends (a dropped task must not hold up the
        // feeders behind it).
        let _place = StallPlace {
            queue: &self.stall_queue,
            ticket,
        };
        let deadline = std::time::Instant::now() + STALL_MAX;
        loop {
            let behind = clients.iter().any(|c| c.is_behind());
            if (!behind && !self.older_feeder_waits(ticket))
                || std::time::Instant::now() >= deadline
            {
                break;
            }
            glommio::timer::sleep(Duration::from_micros(100)).await;
        }
    }

    /// Whether a feeder that paused before `ticket` still waits for one of its clients.
    fn older_feeder_waits(&self, ticket: u64) -> bool {
        let q = self.stall_queue.borrow();
        let Some((_, _, mine)) = q.iter().find(|(t, _, _)| *t == ticket) else {
            return false;
        };
        q.iter()
            .take_while(|(t, _, _)| *t != ticket)
            .any(|(_, _, theirs)| theirs.iter().any(|id| mine.contains(id)))
    }

    /// Entries in the local sublists' match caches (monitoring's `num_cache`).
    pub fn cache_len(&self) -> usize {
        self.local.borrow().iter().map(|l| l.cache_len()).sum()
    }

    // ---- clients and subscriptions -------------------------------------------------------------

    pub fn add_client(&self, client: &Rc<ClientState>) {
        self.clients.borrow_mut().insert(client.id, client.clone());
        self.bump_stats(|s| s.total_connections += 1);
    }

    pub fn remove_client(&self, client: &Rc<ClientState>) {
        crate::monitor::snapshot::record_closed(self, client);
        let c = client.counters.get();
        let reason = client.close_reason();
        self.bump_stats(|s| {
            s.closed += c;
            match reason {
                Some(CloseReason::SlowConsumerPendingBytes)
                | Some(CloseReason::SlowConsumerWriteDeadline) => s.slow_consumers += 1,
                Some(CloseReason::StaleConnection) => s.stale_connections += 1,
                _ => {}
            }
        });
        let subs: Vec<SubRef> = client.subs.borrow_mut().drain().map(|(_, s)| s).collect();
        for sub in &subs {
            self.drop_sub(sub);
        }
        if !subs.is_empty() {
            self.after_sends();
        }
        self.clients.borrow_mut().remove(&client.id);
    }

    /// The subject space of `account` on this shard. Every shard sized its spaces from the one
    /// account table, and ids come only from it: an id out of range is a bug, never input.
    pub(super) fn local_space(&self, account: AccountId) -> std::cell::RefMut<'_, Sublist<SubRef>> {
        std::cell::RefMut::map(self.local.borrow_mut(), |v| {
            let n = v.len();
            match v.get_mut(account as usize) {
                Some(space) => space,
                None => panic!("account id {account} out of range ({n} accounts)"),
            }
        })
    }

    /// The other shards' interest in `account` (see [`Self::local_space`]).
    pub(super) fn remote_space(&self, account: AccountId) -> std::cell::RefMut<'_, RemoteInterest> {
        std::cell::RefMut::map(self.remote.borrow_mut(), |v| {
            let n = v.len();
            match v.get_mut(account as usize) {
                Some(space) => space,
                None => panic!("account id {account} out of range ({n} accounts)"),
            }
        })
    }

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
        self.broadcast(|| Envelope::Interest {
            op: InterestOp::Add,
            account,
            subject: subject.clone(),
            queue: queue.clone(),
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
    fn drop_sub(&self, sub: &SubRef) {
        if sub.removed.replace(true) {
            return;
        }
        let account = sub.client.account.get();
        self.local_space(account)
            .remove(&sub.subject, sub.queue.as_deref(), sub);
        self.bump_stats(|s| s.sub_removes += 1);
        self.send_to_all(|| Envelope::Interest {
            op: InterestOp::Remove,
            account,
            subject: sub.subject.clone(),
            queue: sub.queue.clone(),
        });
    }

    #[inline]
    fn finish_auto_unsubs(&self) {
        if self.auto_unsub.borrow().is_empty() {
            return;
        }
        self.finish_auto_unsubs_slow();
    }

    #[cold]
    fn finish_auto_unsubs_slow(&self) {
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

    // ---- barriers -------------------------------------------------------------------------------

    /// Returns once every other shard applied everything this shard sent it before the call.
    pub async fn barrier(&self) {
        if self.nshards < 2 {
            return;
        }
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let done = Rc::new(LocalSignal::default());
        self.barriers.borrow_mut().insert(
            token,
            PendingBarrier {
                remaining: self.nshards - 1,
                done: done.clone(),
            },
        );
        self.broadcast(|| Envelope::Barrier { token });
        tracing::trace!("shard {} barrier {token} sent", self.id);
        done.wait().await;
        tracing::trace!("shard {} barrier {token} done", self.id);
    }

    // ---- inbound envelopes ----------------------------------------------------------------------

    /// Handles one envelope from shard `from`, in its ring slot (the ring drops it afterwards).
    pub fn on_envelope(self: &Rc<Self>, from: u16, env: &mut Envelope) {
        match env {
            Envelope::Msg(msg) => self.deliver_routed(from, msg),
            Envelope::Interest {
                op,
                account,
                subject,
                queue,
            } => {
                let mut remote = self.remote_space(*account);
                let (subject, queue) = (std::mem::take(subject), queue.take());
                match op {
                    InterestOp::Add => remote.add(from, subject, queue),
                    InterestOp::Remove => remote.remove(from, subject, queue),
                }
            }
            &mut Envelope::Barrier { token } => {
                tracing::trace!("shard {} acks barrier {token} of shard {from}", self.id);
                if let Some(Some(o)) = self.outlets.get(from as usize) {
                    o.send(Envelope::BarrierAck { token });
                }
            }
            Envelope::Adopt(_) | Envelope::Handoff(_) => {
                // Both are consumed whole: take them out of the slot.
                match std::mem::replace(env, Envelope::Taken) {
                    Envelope::Adopt(m) => self.on_adopt(from, m),
                    Envelope::Handoff(h) => self.on_handoff(from, *h),
                    _ => {}
                }
            }
            Envelope::Taken => {}
            Envelope::Move {
                cid,
                to,
                account,
                subs,
            } => self.on_move(from, *cid, *to, *account, subs),
            &mut Envelope::SwitchedOld { cid } => self.on_switched_old(from, cid),
            &mut Envelope::SwitchedNew { cid } => self.on_switched_new(from, cid),
            &mut Envelope::BarrierAck { token } => {
                tracing::trace!("shard {} got ack {token} from shard {from}", self.id);
                let mut barriers = self.barriers.borrow_mut();
                // Tokens are this shard's own, and each other shard acks each exactly once.
                let Some(b) = barriers.get_mut(&token) else {
                    panic!(
                        "shard {}: ack of unknown barrier {token} from shard {from}",
                        self.id
                    );
                };
                assert!(b.remaining > 0, "barrier {token} acked more than once");
                b.remaining -= 1;
                if b.remaining == 0 {
                    if let Some(b) = barriers.remove(&token) {
                        b.done.raise();
                    }
                }
            }
        }
    }

    // ---- publish path ---------------------------------------------------------------------------

    fn deliver(&self, sub: &SubRef, m: MsgView<'_>) -> bool {
        let MsgView {
            subject,
            reply,
            header_len,
            payload,
            src,
        } = m;
        let client = &sub.client;
        if sub.removed.get() || client.is_closed() || client.affinity.skips(src) {
            return false;
        }
        client.affinity.note(src);
        if sub.deny_filter.get() && denied_delivery(client, subject, sub.queue.as_deref()) {
            return false;
        }
        let max = sub.max.get();
        let n = sub.delivered.get() + 1;
        if max != 0 && n > max {
            return false;
        }
        sub.delivered.set(n);
        let status = match header_len {
            // A client that did not ask for headers gets the body only, as nats-server does.
            Some(h) if !client.flags.get().headers => client.send_msg(
                subject,
                &sub.sid,
                reply,
                None,
                payload.get(h..).unwrap_or(&[]),
            ),
            h => client.send_msg(subject, &sub.sid, reply, h, payload),
        };
        match status {
            SendStatus::Queued => {}
            SendStatus::Stalled => {
                // Every feeder of a client that is behind pauses (each checks after its own
                // op), so the list only needs the client once per run of deliveries.
                let mut stalled = self.stalled.borrow_mut();
                if !stalled.last().is_some_and(|c| Rc::ptr_eq(c, client)) {
                    stalled.push(client.clone());
                }
            }
            // Slow consumers are counted once, when the connection is removed.
            SendStatus::Dropped => {}
        }
        let ok = status != SendStatus::Dropped;
        if let Some(reply) = reply.filter(|_| ok) {
            note_reply(client, reply);
        }
        if max != 0 && n == max {
            self.auto_unsub.borrow_mut().push(sub.clone());
        }
        ok
    }

    /// Delivers to one member of a local queue group, starting at `start` and moving on past
    /// members that can no longer take messages.
    fn deliver_queue_member(
        &self,
        members: &[SubRef],
        start: usize,
        from: Option<&Rc<ClientState>>,
        msg: MsgView<'_>,
    ) -> bool {
        let n = members.len();
        for i in 0..n {
            let sub = &members[(start + i) % n];
            if let Some(from) = from {
                if !from.flags.get().echo && Rc::ptr_eq(&sub.client, from) {
                    continue;
                }
            }
            if self.deliver(sub, msg) {
                return true;
            }
        }
        false
    }

    /// A PUB/HPUB from a client of this shard.
    pub fn publish(
        &self,
        from: &Rc<ClientState>,
        subject: &Bytes,
        reply: Option<&Bytes>,
        header_len: Option<usize>,
        payload: &Bytes,
    ) {
        let account = from.account.get();
        let m = Published {
            subject,
            reply,
            header_len,
            payload,
        };
        let delivered = if self.global.accounts.any_imports {
            self.publish_across_accounts(account, from, m)
        } else {
            self.route(account, from, m)
        };
        if self.routed.replace(false) {
            from.interest_dirty.set(true);
        }
        if !delivered {
            if let Some(reply) = reply {
                if from.flags.get().no_responders {
                    self.send_no_responders(from, subject, reply);
                }
            }
        }
        self.finish_auto_unsubs();
    }

    /// Routes in the publisher's account, then along the account's import routes: stream
    /// exports others import, service imports of its own (their replies signed into `_R_`
    /// subjects), and responses coming back on such a subject.
    fn publish_across_accounts(
        &self,
        account: AccountId,
        from: &Rc<ClientState>,
        m: Published<'_>,
    ) -> bool {
        let accounts = &self.global.accounts;
        if let Some((to, original)) = accounts.response_target(m.subject, account) {
            return self.route(
                to,
                from,
                Published {
                    subject: &original,
                    ..m
                },
            );
        }
        let mut delivered = self.route(account, from, m);
        let Some(routes) = accounts.routes(account) else {
            return delivered;
        };
        for r in &routes.streams {
            if r.map.matches(m.subject) {
                let mapped = r.map.apply(m.subject);
                delivered |= self.route(
                    r.to,
                    from,
                    Published {
                        subject: &mapped,
                        ..m
                    },
                );
            }
        }
        for r in &routes.services {
            if r.map.matches(m.subject) {
                let mapped = r.map.apply(m.subject);
                let back = m
                    .reply
                    .map(|rp| accounts.response_subject(account, r.to, rp));
                let reply = back.as_ref();
                delivered |= self.route(
                    r.to,
                    from,
                    Published {
                        subject: &mapped,
                        reply,
                        ..m
                    },
                );
            }
        }
        delivered
    }

    /// Delivers one message in one account's subject space: local subscribers, other shards,
    /// one member per queue group. Returns whether anyone will get it.
    fn route(&self, account: AccountId, from: &Rc<ClientState>, m: Published<'_>) -> bool {
        let Published {
            subject,
            reply,
            header_len,
            payload,
        } = m;
        let msg = MsgView {
            subject,
            reply: reply.map(|r| &r[..]),
            header_len,
            payload,
            src: self.id,
        };
        let echo = from.flags.get().echo;
        let a = account as usize;
        let local = {
            let mut spaces = self.local.borrow_mut();
            let Some(space) = spaces.get_mut(a) else {
                return false;
            };
            if space.is_empty() && self.remote.borrow().get(a).is_none_or(|r| r.is_empty()) {
                // Nobody subscribes to anything in this account: skip matching (the
                // publisher's reply subscription cannot exist either, so no 503 goes out).
                return false;
            }
            space.match_subject(subject)
        };
        let mut delivered = false;
        for sub in &local.plain {
            if !echo && Rc::ptr_eq(&sub.client, from) {
                continue;
            }
            delivered |= self.deliver(sub, msg);
        }
        if delivered {
            from.affinity.note(self.id);
        }

        let remote = if self.nshards > 1 {
            let mut spaces = self.remote.borrow_mut();
            match spaces.get_mut(a) {
                Some(r) if !r.is_empty() => Some(r.match_subject(subject)),
                _ => None,
            }
        } else {
            None
        };
        let remote = remote.filter(|r| !r.plain.is_empty() || !r.queues.is_empty());
        // Queue groups: exactly one member over all shards, weighted by member counts.
        for group in &local.queues {
            let rgroup = remote
                .as_ref()
                .and_then(|r| r.queues.iter().find(|g| g.name == group.name));
            let remote_weight: usize = rgroup
                .map(|g| g.members.iter().map(|e| e.weight.get() as usize).sum())
                .unwrap_or(0);
            let pick = self.rand_below(group.members.len() + remote_weight);
            if pick < group.members.len() {
                if self.deliver_queue_member(&group.members, pick, Some(from), msg) {
                    from.affinity.note(self.id);
                    delivered = true;
                    continue;
                }
                if remote_weight == 0 {
                    continue;
                }
            }
            if let Some(g) = rgroup {
                let offset = self.rand_below(remote_weight);
                self.pick_remote(&g.members, offset, &group.name);
                delivered = true;
            }
        }
        if let Some(r) = &remote {
            for g in &r.queues {
                if local.queues.iter().any(|l| l.name == g.name) {
                    continue;
                }
                let w: usize = g.members.iter().map(|e| e.weight.get() as usize).sum();
                let offset = self.rand_below(w);
                self.pick_remote(&g.members, offset, &g.name);
                delivered = true;
            }
            {
                let mut targets = self.targets.borrow_mut();
                let mut touched = self.touched.borrow_mut();
                for e in &r.plain {
                    let t = &mut targets[e.shard as usize];
                    t.plain = true;
                    if !t.touched {
                        t.touched = true;
                        touched.push(e.shard);
                    }
                }
            }
            delivered |= self.send_targets(account, from, m);
        }

        delivered
    }

    fn pick_remote(
        &self,
        members: &[crate::interest::RemoteEntry],
        mut offset: usize,
        name: &Bytes,
    ) {
        for e in members {
            let w = e.weight.get() as usize;
            if offset < w {
                let mut targets = self.targets.borrow_mut();
                let t = &mut targets[e.shard as usize];
                t.picks.push(name.clone());
                if !t.touched {
                    t.touched = true;
                    self.touched.borrow_mut().push(e.shard);
                }
                return;
            }
            offset -= w;
        }
    }

    fn send_targets(&self, account: AccountId, from: &ClientState, m: Published<'_>) -> bool {
        let Published {
            subject,
            reply,
            header_len,
            payload,
        } = m;
        let mut touched = self.touched.borrow_mut();
        if touched.is_empty() {
            return false;
        }
        let mut targets = self.targets.borrow_mut();
        let mut sent = 0;
        for &shard in touched.iter() {
            let t = &mut targets[shard as usize];
            let msg = RoutedMsg {
                account,
                subject: subject.clone(),
                reply: reply.cloned(),
                header_len,
                payload: payload.clone(),
                plain: std::mem::take(&mut t.plain),
                picks: std::mem::take(&mut t.picks),
            };
            t.touched = false;
            if let Some(Some(o)) = self.outlets.get(shard as usize) {
                o.send(Envelope::Msg(msg));
                from.affinity.note(shard);
                sent += 1;
            }
        }
        touched.clear();
        self.bump_stats(|s| s.routed_out += sent);
        if sent > 0 {
            self.routed.set(true);
        }
        sent > 0
    }

    /// nats-server's no-responders answer: a 503 status message on the requester's own
    /// subscription that matches the reply subject.
    fn send_no_responders(&self, from: &Rc<ClientState>, subject: &[u8], reply: &[u8]) {
        let matched = self.local_space(from.account.get()).match_subject(reply);
        let Some(sub) = matched.plain.iter().find(|s| Rc::ptr_eq(&s.client, from)) else {
            return;
        };
        let mut block = Vec::with_capacity(48 + subject.len());
        headers::no_responders_block(&mut block, subject);
        let _ = from.send_msg(reply, &sub.sid, None, Some(block.len()), &block);
    }

    fn deliver_routed(&self, from: u16, msg: &RoutedMsg) {
        self.bump_stats(|s| s.routed_in += 1);
        let local: Rc<MatchResult<SubRef>> =
            self.local_space(msg.account).match_subject(&msg.subject);
        let m = MsgView {
            subject: &msg.subject,
            reply: msg.reply.as_deref(),
            header_len: msg.header_len,
            payload: &msg.payload,
            src: from,
        };
        if msg.plain {
            for sub in &local.plain {
                self.deliver(sub, m);
            }
        }
        msg.picks.for_each(|name| {
            if let Some(g) = local.queues.iter().find(|g| g.name == name) {
                let start = self.rand_below(g.members.len());
                self.deliver_queue_member(&g.members, start, None, m);
            }
        });
        self.finish_auto_unsubs();
    }
}

#[cold]
fn denied_delivery(client: &ClientState, subject: &[u8], queue: Option<&[u8]>) -> bool {
    client
        .perms
        .borrow_mut()
        .as_mut()
        .is_some_and(|p| p.delivery_denied(subject, queue))
}

/// `allow_responses`: a client that receives a request may publish its answer.
#[inline]
fn note_reply(client: &ClientState, reply: &[u8]) {
    if let Some(p) = client.perms.borrow_mut().as_mut() {
        if p.tracks_replies() {
            p.note_reply(reply, std::time::Instant::now());
        }
    }
}

/// Who pauses in [`Shard::wait_stalled`], which decides where it queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feeder {
    /// A publishing connection's reader: one publisher, queues at the back.
    Reader,
    /// A ring consumer carries every publisher of another shard that feeds the stalled client.
    /// At the back it would get one turn per round like a single publisher: in a 1 KiB fan-in
    /// of 8 publishers over 2 shards (3 local, 5 behind the ring) the 5 remote ones got a fifth
    /// of the local ones' share each and a mean latency twice theirs. It queues right behind
    /// the oldest waiting reader instead (and behind the ring consumers already there), so it
    /// gets a turn after every reader turn, and no reader is ever overtaken twice in a row.
    Ring,
}

/// A paused feeder: its ticket, its kind, the clients it waits for.
type StallEntry = (u64, Feeder, Vec<u64>);

impl Feeder {
    /// Where a feeder of this kind joins a queue whose entries, oldest first, are `waiting`: a
    /// reader at the back, a ring consumer behind the oldest reader and the ring consumers
    /// right behind it (at the back when no reader waits).
    fn place(self, waiting: impl Iterator<Item = Feeder>) -> usize {
        let mut len = 0;
        let mut at = None;
        for kind in waiting {
            match (self, kind, at) {
                (Feeder::Ring, Feeder::Reader, None) => at = Some(len + 1),
                (Feeder::Ring, Feeder::Ring, Some(a)) if a == len => at = Some(len + 1),
                _ => {}
            }
            len += 1;
        }
        at.unwrap_or(len)
    }
}

/// A feeder's place in the stall queue, given up when dropped.
struct StallPlace<'a> {
    queue: &'a RefCell<VecDeque<StallEntry>>,
    ticket: u64,
}

impl Drop for StallPlace<'_> {
    fn drop(&mut self) {
        let ticket = self.ticket;
        self.queue.borrow_mut().retain(|(t, _, _)| *t != ticket);
    }
}

#[cfg(test)]
mod feeder_tests {
    use super::*;

    /// Feeders take turns from the front and queue again after their turn (as `wait_stalled`
    /// does each time it pauses); returns who got the first `n` turns.
    fn turns(mut q: VecDeque<(&'static str, Feeder)>, n: usize) -> Vec<&'static str> {
        let mut out = Vec::new();
        for _ in 0..n {
            let Some((name, kind)) = q.pop_front() else {
                panic!("queue emptied");
            };
            out.push(name);
            join(&mut q, name, kind);
        }
        out
    }

    fn join(q: &mut VecDeque<(&'static str, Feeder)>, name: &'static str, kind: Feeder) {
        let at = kind.place(q.iter().map(|e| e.1));
        q.insert(at, (name, kind));
    }

    fn queued(feeders: &[(&'static str, Feeder)]) -> VecDeque<(&'static str, Feeder)> {
        let mut q = VecDeque::new();
        for &(name, kind) in feeders {
            join(&mut q, name, kind);
        }
        q
    }

    /// Two shards: the one ring consumer gets every other turn, each reader one per round.
    #[test]
    fn a_ring_consumer_gets_every_other_turn() {
        let q = queued(&[
            ("r1", Feeder::Reader),
            ("r2", Feeder::Reader),
            ("r3", Feeder::Reader),
            ("ring", Feeder::Ring),
        ]);
        assert_eq!(
            turns(q, 12),
            ["r1", "ring", "r2", "ring", "r3", "ring", "r1", "ring", "r2", "ring", "r3", "ring"]
        );
    }

    /// More shards: ring consumers never overtake each other in front of a reader, so readers
    /// keep their turns (each ring one turn per reader turn).
    #[test]
    fn several_ring_consumers_do_not_starve_readers() {
        let q = queued(&[
            ("ringA", Feeder::Ring),
            ("r1", Feeder::Reader),
            ("ringB", Feeder::Ring),
            ("r2", Feeder::Reader),
        ]);
        let t = turns(q, 24);
        for reader in ["r1", "r2"] {
            let gaps: Vec<usize> = t
                .iter()
                .enumerate()
                .filter(|(_, n)| **n == reader)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
                .windows(2)
                .map(|w| w[1] - w[0])
                .collect();
            assert!(gaps.len() >= 3, "{reader} got too few turns: {t:?}");
            assert!(gaps.iter().all(|&g| g <= 6), "{reader} waited long: {t:?}");
        }
        let rings = t.iter().filter(|n| n.starts_with("ring")).count();
        assert!(rings >= 12, "rings got {rings} of 24 turns: {t:?}");
    }

    #[test]
    fn ring_consumers_alone_queue_in_order() {
        let q = queued(&[("ringA", Feeder::Ring), ("ringB", Feeder::Ring)]);
        assert_eq!(turns(q, 4), ["ringA", "ringB", "ringA", "ringB"]);
    }
}
