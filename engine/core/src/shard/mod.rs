//! One shard: the state a single executor owns (its connections, their subscriptions, the remote
//! interest of the other shards, the rings to them) and the dispatch of what arrives on the
//! rings. The rest is by concern: `subscriptions` (SUB, UNSUB, auto-unsubscribe), `routing`
//! (the publish path: local delivery, remote fan-out, queue picks, imports), `backpressure`
//! (ring overflow and the stall gate), `barrier` (PONG-after-interest), `migration` and
//! `rebalance` (connection moves), `mailbox` (work from other threads), `tasks` (what the
//! executor runs), `mesh` (built at start).

mod backpressure;
mod barrier;
mod holds;
pub mod mailbox;
pub mod mesh;
pub mod migration;
pub mod rebalance;
pub mod responses;
mod routing;
mod stall_queue;
mod subscriptions;
pub mod tasks;

pub use backpressure::{DEEP_WAIT, STALL_BUDGET, STALL_WAIT};
use barrier::PendingBarrier;
use routing::Target;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::accounts::AccountId;
use crate::client::{ClientCounters, ClientState, CloseReason, StallGate, SubRef};
use crate::envelope::{Envelope, InterestOp};
use crate::global::Global;
use crate::handover::Arrived;
use crate::interest::RemoteInterest;
use crate::outlet::Outlet;
use crate::signal::LocalSignal;
use crate::sublist::Sublist;

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
    /// Clients of this shard the op being handled fed past their stall mark (its reader
    /// pauses for them next).
    stalled: RefCell<Vec<Arc<StallGate>>>,
    /// When each (publisher's shard, publisher, stalled client) was last told about.
    stall_notices: RefCell<rustc_hash::FxHashMap<(u16, u64, u64), std::time::Instant>>,
    /// Clients of other shards that are behind, by the subject they are fed through
    /// (`shard/holds.rs`).
    holds: RefCell<holds::HoldTable>,
    /// When each (publisher shard, client, subscription) was last sent a hold; the
    /// subscription by its address, so the per-message check copies no subject.
    holds_sent: RefCell<rustc_hash::FxHashMap<(u16, u64, usize), std::time::Instant>>,
    /// Reply subjects this shard opened for service-import requests (`responses.rs`).
    pub(super) responses: RefCell<responses::ResponseTable>,
    /// Stands for the publisher of a response forwarded from another shard.
    relay: Rc<ClientState>,
    /// Feeders paused for stalled clients, oldest first.
    stall_queue: stall_queue::StallQueue,
    pub stats: Cell<ShardStats>,
    /// Set by `send_targets` when a publish went to another shard; read by `publish`.
    routed: Cell<bool>,
    /// Raised when some outlet has overflow to push once the ring has room.
    pub overflow_pending: LocalSignal,
    /// Publishing connections waiting for their envelopes to leave the overflow: what each
    /// waits for (outlet, mark) and its task, woken by the overflow task.
    flush_waiters: RefCell<Vec<backpressure::FlushWaiter>>,
    pub accepting: Cell<bool>,
    /// Connections moving to or from this shard (`migration.rs`).
    moves: RefCell<migration::Moves>,
    placement: rebalance::Placement,
    /// When the rebalancer last looked at the connections, and when it looks next.
    last_tick: Cell<std::time::Instant>,
    next_tick: Cell<std::time::Instant>,
    /// The time at the latest read or ring batch (`tick`): a clock for per-message
    /// bookkeeping that tolerates a batch's staleness.
    recent: Cell<std::time::Instant>,
    /// Leafnode links the message being delivered matched, with the queue group picked for
    /// each (none: a plain subscription): written as one `LMSG` per link once delivery ends.
    leaf_hits: RefCell<Vec<(Rc<ClientState>, Option<bytes::Bytes>)>>,
    leaf_names: RefCell<Vec<bytes::Bytes>>,
    /// The queue groups an `LMSG` a link publishes names (`None`: plain subscribers only).
    leaf_only: RefCell<Option<bytes::Bytes>>,
    /// Some leafnode link subscribed somewhere: queue picks prefer other members from now on.
    leaf_present: Cell<bool>,
    /// On the shard that owns the leafnode links: each bound account's interest, as the hub
    /// hears it (`leaf/interest.rs`). Empty elsewhere.
    pub(crate) leaf_interest: RefCell<HashMap<AccountId, crate::leaf::interest::LeafInterest>>,
    /// The leafnode links this shard runs, for monitoring.
    pub leaf_links: RefCell<Vec<crate::leaf::LinkInfo>>,
    /// Which kind of link the message being published came from: decides which other links
    /// it may go on to (one hop over routes; a hub's messages never onto routes).
    link_source: Cell<LinkSource>,
    /// On the link shard of a server in a cluster: its routes (`route/`). `None` elsewhere.
    pub cluster: Option<Rc<crate::route::Cluster>>,
}

/// Where a message being published came from, as the delivery rules between links see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkSource {
    /// A client, a service, or another shard.
    Client,
    /// A route: never onto another route, onto a leafnode link only when we are its hub.
    Route,
    /// Our hub (a link we dialed): never onto a route.
    Hub,
    /// Our leaf (a link that dialed us).
    Leaf,
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
        let leaf_interest = crate::leaf::trackers(id, &global);
        let cluster = crate::route::Cluster::for_shard(id, &global);
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
            stall_notices: RefCell::new(rustc_hash::FxHashMap::default()),
            holds: RefCell::new(holds::HoldTable::default()),
            holds_sent: RefCell::new(rustc_hash::FxHashMap::default()),
            responses: RefCell::new(responses::ResponseTable::new(id)),
            relay: Rc::new(ClientState::new(0, None, -1, usize::MAX)),
            stall_queue: stall_queue::StallQueue::default(),
            stats: Cell::new(ShardStats::default()),
            routed: Cell::new(false),
            overflow_pending: LocalSignal::default(),
            flush_waiters: RefCell::new(Vec::new()),
            accepting: Cell::new(true),
            moves: RefCell::new(migration::Moves::default()),
            placement,
            last_tick: Cell::new(std::time::Instant::now()),
            next_tick: Cell::new(std::time::Instant::now()),
            recent: Cell::new(std::time::Instant::now()),
            leaf_hits: RefCell::new(Vec::new()),
            leaf_names: RefCell::new(Vec::new()),
            leaf_only: RefCell::new(None),
            leaf_present: Cell::new(false),
            leaf_interest: RefCell::new(leaf_interest),
            leaf_links: RefCell::new(Vec::new()),
            link_source: Cell::new(LinkSource::Client),
            cluster,
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

    /// An interest change in `account` (on this shard or another): the hub of a leafnode link
    /// bound to it hears of it.
    #[inline]
    pub(crate) fn leaf_note(
        &self,
        account: AccountId,
        op: InterestOp,
        subject: &bytes::Bytes,
        queue: &Option<bytes::Bytes>,
        owner: crate::leaf::interest::Owner,
    ) {
        if self.leaf_interest.borrow().is_empty() {
            return;
        }
        if let Some(li) = self.leaf_interest.borrow_mut().get_mut(&account) {
            li.change(op, subject, queue, owner);
        }
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

    /// Whether any client of any shard subscribes to `subject` in `account` (what a push
    /// consumer checks before it delivers).
    pub fn has_interest(&self, account: AccountId, subject: &[u8]) -> bool {
        if (account as usize) >= self.local.borrow().len() {
            return false;
        }
        let local = self.local_space(account).match_subject(subject);
        if !local.plain.is_empty() || !local.queues.is_empty() {
            return true;
        }
        let remote = self.remote.borrow();
        match remote.get(account as usize) {
            Some(r) if !r.is_empty() => {
                drop(remote);
                let m = self.remote_space(account).match_subject(subject);
                !m.plain.is_empty() || !m.queues.is_empty()
            }
            _ => false,
        }
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

    // ---- inbound envelopes ----------------------------------------------------------------------

    /// Handles one envelope from shard `from`, in its ring slot (the ring drops it afterwards).
    /// A connection whose move completed here comes back for the caller (the inbound loop) to
    /// resume.
    pub fn on_envelope(
        &self,
        from: u16,
        env: &mut Envelope,
        slot: &crate::ring::InSlot<'_>,
    ) -> Option<Arrived> {
        match env {
            Envelope::Msg(msg) => self.deliver_routed(from, msg, slot),
            Envelope::Interest {
                op,
                account,
                subject,
                queue,
                leaf,
            } => {
                let leaf = *leaf;
                // Links live on the link shard, which hears its own links' interest locally.
                if leaf {
                    self.leaf_present.set(true);
                } else {
                    let local = crate::leaf::interest::Owner::Local;
                    self.leaf_note(*account, *op, subject, queue, local);
                }
                let mut remote = self.remote_space(*account);
                let (subject, queue) = (std::mem::take(subject), queue.take());
                match op {
                    InterestOp::Add => remote.add_of(from, subject, queue, leaf),
                    InterestOp::Remove => remote.remove_of(from, subject, queue, leaf),
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
                    Envelope::Handoff(h) => return self.on_handoff(from, *h),
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
            &mut Envelope::BarrierAck { token } => self.on_barrier_ack(from, token),
            Envelope::Stall { cid, gate } => self.on_stall_notice(*cid, gate.clone()),
            Envelope::Hold {
                account,
                subject,
                gate,
            } => self.on_hold(from, *account, subject, gate),
            Envelope::Response(r) => self.on_forwarded_response(r),
        }
        None
    }
}
