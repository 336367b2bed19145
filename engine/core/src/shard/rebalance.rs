//! Which connections move to another shard, decided every tick from what each connection
//! exchanged since the last one.
//!
//! The kernel spreads connections over the shards without knowing who talks to whom. A pair that
//! only talks to each other (a requester and its responder, a publisher and its one subscriber)
//! then pays a ring, a doorbell and the wake of another thread on every hop: measured on 2 shards,
//! a request/reply round trip cost 98-128 µs of server CPU spread over two shards against 46-56 µs
//! on one (nats-server 2.9: 70-84). A connection whose messages over a tick all went to and came
//! from one other shard, at a rate a single shard handles easily, moves there
//! (`shard/migration.rs`). Busy connections stay where they are: spread, they use both cores.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{ClientState, Peers};
use tachyon_settings::MigrateMode;

use super::Shard;

/// How often a shard looks at its connections. There is no timer for it: the shard looks when
/// it is busy anyway, after a read or a batch of ring envelopes (`Shard::tick`), and an idle
/// shard has nothing to move. (A first version with a 20 ms glommio timer is how the executor's
/// lost wake-up of vendor/README.md item 6 was found; that bug is fixed.)
pub const TICK: Duration = Duration::from_millis(20);
/// A longer gap than this since the last look (the shard was idle) only restarts the counts.
const STALE: Duration = Duration::from_millis(100);
/// Fewer messages than this per tick: too quiet to be worth a move (800 msgs/s).
const MIN_TRAFFIC: u32 = 16;
/// More than this per tick (50 k msgs/s) is a connection that keeps a core busy: it stays.
const MAX_TRAFFIC: u32 = 1_000;
/// A shard takes movers only while its own traffic stays under this per tick (200 k msgs/s), so
/// low-rate pairs do not pile up on one shard until it is the bottleneck.
const SHARD_CAP: u32 = 4_000;
/// A connection moves at most this many times in its life (chaos mode aside).
const MAX_MOVES: u8 = 3;

/// The move policy and every shard's traffic over its last tick (written once per tick by its
/// own shard, read by the others when they pick a destination).
pub struct Placement {
    pub mode: MigrateMode,
    loads: Arc<[AtomicU32]>,
    /// One move at a time in the whole process. Two concurrent moves can reorder messages: a
    /// publisher moving from a shard that already routes to a moving subscriber's new home to
    /// one that still routes to its old home would put its later messages in front of its
    /// earlier ones (the old home's bytes are written first).
    moving: Arc<AtomicBool>,
}

impl Placement {
    /// One per shard, all sharing the load table. Moves need a bit per shard in a 64-bit mask
    /// (`client::Affinity`), so more than 64 shards never move connections.
    pub fn for_shards(mode: MigrateMode, nshards: usize) -> Vec<Placement> {
        let mode = if !(2..=64).contains(&nshards) {
            MigrateMode::Off
        } else {
            mode
        };
        let loads: Arc<[AtomicU32]> = (0..nshards).map(|_| AtomicU32::new(0)).collect();
        let moving = Arc::new(AtomicBool::new(false));
        (0..nshards)
            .map(|_| Placement {
                mode,
                loads: loads.clone(),
                moving: moving.clone(),
            })
            .collect()
    }

    /// A shard that never moves connections (a shard alone, or a test's).
    pub fn off() -> Placement {
        Placement {
            mode: MigrateMode::Off,
            loads: Arc::new([]),
            moving: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Claims the process's one move; false while another is under way.
    fn claim_move(&self) -> bool {
        self.moving
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The move under way ended (handed off, or given up before it started).
    pub fn release_move(&self) {
        self.moving.store(false, Ordering::Release);
    }

    fn load(&self, shard: u16) -> u32 {
        self.loads
            .get(shard as usize)
            .map_or(u32::MAX, |l| l.load(Ordering::Relaxed))
    }

    fn set_load(&self, shard: u16, traffic: u32) {
        if let Some(l) = self.loads.get(shard as usize) {
            l.store(traffic, Ordering::Relaxed);
        }
    }
}

/// Where the default policy moves a connection of shard `own` that exchanged `traffic` messages
/// per tick, all with `peers`; `load_of` gives a shard's own traffic per tick.
fn destination(own: u16, peers: Peers, traffic: u32, load_of: impl Fn(u16) -> u32) -> Option<u16> {
    match peers {
        // Toward the lower id only: of two connections that talk to each other, exactly one
        // moves.
        Peers::Only(n)
            if n < own
                && (MIN_TRAFFIC..=MAX_TRAFFIC).contains(&traffic)
                && load_of(n).saturating_add(traffic) <= SHARD_CAP =>
        {
            Some(n)
        }
        _ => None,
    }
}

/// Whether a connection can be carried to another shard at all right now.
fn movable(c: &ClientState, chaos: bool) -> bool {
    let a = &c.affinity;
    a.movable.get()
        && !c.is_closed()
        && c.writer_keeps_up()
        && a.move_to.get().is_none()
        && (chaos || a.moves.get() < MAX_MOVES)
        // Permissions carry caches and reply tracking that stay behind; auto-unsubscribe counts
        // would have to be settled between the two homes.
        && c.perms.borrow().is_none()
        && c.subs.borrow().values().all(|s| s.max.get() == 0)
}

impl Shard {
    /// Called when the shard is busy anyway (after a read, after a batch of envelopes):
    /// looks at the connections once per [`TICK`].
    #[inline]
    pub fn tick(&self, now: Instant) {
        self.recent.set(now);
        if self.placement.mode == MigrateMode::Off || now < self.next_tick.get() {
            return;
        }
        self.rebalance(now);
    }

    /// One tick: reads and resets every connection's traffic, publishes this shard's load and
    /// starts the move the policy picks, if no other is under way (the connection's reader
    /// stops at its next wait and hands over).
    #[cold]
    fn rebalance(&self, now: Instant) {
        let mode = self.placement.mode;
        let elapsed = now.saturating_duration_since(self.last_tick.replace(now));
        self.next_tick.set(now + TICK);
        let fresh = elapsed <= STALE && !elapsed.is_zero();
        // Counts over `elapsed`, as per TICK.
        let per_tick = |n: u32| -> u32 {
            (u128::from(n) * TICK.as_nanos() / elapsed.as_nanos().max(1)).min(u32::MAX as u128)
                as u32
        };
        let mut total: u32 = 0;
        let mut mover: Option<(Rc<ClientState>, u16)> = None;
        for c in self.clients.borrow().values() {
            let (peers, traffic) = c.affinity.take();
            total = total.saturating_add(traffic);
            if mover.is_some() || traffic == 0 || !fresh {
                continue;
            }
            let traffic = per_tick(traffic);
            let to = match mode {
                MigrateMode::Chaos => {
                    let k = self.rand_below(self.nshards - 1) as u16;
                    Some(if k >= self.id { k + 1 } else { k })
                }
                _ => destination(self.id, peers, traffic, |n| self.placement.load(n)),
            };
            let Some(to) = to else { continue };
            if movable(c, mode == MigrateMode::Chaos) {
                mover = Some((c.clone(), to));
            }
        }
        if fresh {
            self.placement.set_load(self.id, per_tick(total));
        }
        if let Some((c, to)) = mover {
            if self.placement.claim_move() {
                let a = &c.affinity;
                a.move_to.set(Some(to));
                a.moves.set(a.moves.get().saturating_add(1));
                a.move_wake.raise();
            }
        }
    }

    /// A move picked by [`Shard::rebalance`] will not happen (the connection closed first, or
    /// its socket could not be duplicated).
    pub fn move_abandoned(&self, client: &ClientState) {
        if client.affinity.move_to.take().is_some() {
            self.placement.release_move();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_64_shards_or_one_never_move() {
        assert!(Placement::for_shards(MigrateMode::On, 65)
            .iter()
            .all(|p| p.mode == MigrateMode::Off));
        assert!(Placement::for_shards(MigrateMode::Chaos, 1)
            .iter()
            .all(|p| p.mode == MigrateMode::Off));
        assert!(Placement::for_shards(MigrateMode::On, 64)
            .iter()
            .all(|p| p.mode == MigrateMode::On));
    }

    #[test]
    fn only_a_quiet_exclusive_pair_moves_and_only_downwards() {
        let idle = |_| 0;
        // A requester on shard 1 whose every message went to or came from shard 0.
        assert_eq!(destination(1, Peers::Only(0), 400, idle), Some(0));
        // Its responder on shard 0 stays: the pair must not swap.
        assert_eq!(destination(0, Peers::Only(1), 400, idle), None);
        // Traffic with its own shard, with several shards, or none.
        assert_eq!(destination(1, Peers::Only(1), 400, idle), None);
        assert_eq!(destination(2, Peers::Several, 400, idle), None);
        assert_eq!(destination(2, Peers::Nobody, 400, idle), None);
        // Too quiet to matter, or busy enough to keep a core of its own.
        assert_eq!(destination(1, Peers::Only(0), MIN_TRAFFIC - 1, idle), None);
        assert_eq!(destination(1, Peers::Only(0), MAX_TRAFFIC + 1, idle), None);
        // A destination that is busy already.
        assert_eq!(
            destination(1, Peers::Only(0), 400, |_| SHARD_CAP - 399),
            None
        );
        assert_eq!(
            destination(1, Peers::Only(0), 400, |_| SHARD_CAP - 400),
            Some(0)
        );
    }

    #[test]
    fn one_move_at_a_time_in_the_process() {
        let p = Placement::for_shards(MigrateMode::On, 4);
        assert!(p[1].claim_move());
        assert!(!p[2].claim_move());
        assert!(!p[1].claim_move());
        p[1].release_move();
        assert!(p[3].claim_move());
    }

    #[test]
    fn loads_are_shared_between_shards() {
        let p = Placement::for_shards(MigrateMode::On, 3);
        p[2].set_load(2, 77);
        assert_eq!(p[0].load(2), 77);
        assert_eq!(p[1].load(5), u32::MAX);
    }
}
