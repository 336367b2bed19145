//! Which connections move to another shard, decided every tick from what each connection
//! exchanged since the last one.
//!
//! The kernel spreads connections over the shards without knowing who talks to whom. A pair that
//! only talks to each other (a requester and its responder, a publisher and its one subscriber)
//! then pays a ring, a doorbell and the wake of another thread on every hop: measured on 2 shards,
//! a request/reply round trip cost 98-128 µs of server CPU spread over two shards against 46-56 µs
//! on one (nats-server 2.9: 70-84). A connection whose messages over a tick all went to and came
//! from one other shard, at a rate a single shard handles easily, moves there
//! (`shard/migration.rs`). Busy connections stay where they are while their shards are busy:
//! spread, they use both cores. A busy pair moves too when the two shards together use less
//! than [`PAIR_FITS`] of one core: the client, not the server, sets the pace then, and on one
//! shard the pair costs half the CPU (measured with nats.go on 2 cores: 0.29-0.35 CPU s per
//! million 16 B messages spread, 0.16-0.18 on one shard, at the same rate), CPU that a client
//! sharing the host's cores gets back.
//!
//! Many publishers into one subscriber (telemetry: 500 nats.go publishers, one subscriber on
//! `telemetry.>`) match neither rule: each publisher is quiet, but the subscriber's shard
//! delivers far past [`SHARD_CAP`] and the two shards together use more than a core. Half the
//! messages then cross shards and are matched on both: 0.66-0.69 CPU s per million against
//! 0.35-0.41 with every publisher on the subscriber's shard (2 cores, 2 M messages of 128 B,
//! `perf`: the second match, the ring, and each shard sleeping and waking on its own). So a
//! *publish-only* connection (no subscription) whose messages all went to one other shard
//! moves there while that shard has room for it: its CPU use plus a quarter of the share of
//! this shard's that such connections stand for stays under [`SEND_ROOM`] (`send_batch`).
//! They move in batches, all from one shard to one destination, or 500 of them would take
//! 25 s at one move per settled tick; a batch may follow a batch on the next tick. Most of
//! them are paused behind the subscriber at any moment: a paused one counts where it last
//! published (`Affinity::last_peers`), a move ends its pause (`conn.rs`), and the head of the
//! line of paused publishers ticks for a shard that reads nothing.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
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
/// A connection too busy for [`MAX_TRAFFIC`] still moves while its shard and the destination
/// together were busy less than this (permille of one core over the last tick): what they did
/// spread fits on one core, and costs less there (no ring hops; figures in the module comment).
/// Shards that together fill a core or more keep their connections: the server, not the
/// client, sets the pace then, and two cores beat one.
const PAIR_FITS: u32 = 1_000;
const _: () = assert!(PAIR_FITS <= 1_000, "a pair must fit one core");
/// Publish-only connections leave a shard, and join the shard they publish to, only while
/// each of the two used less than this over the last tick (permille of a core): a shard at its
/// limit is the bottleneck (a publisher at full speed keeps its core; two cores beat one), and
/// one near it has no room for more.
const SEND_ROOM: u32 = 900;
const _: () = assert!(SEND_ROOM < PAIR_FITS, "a batch leaves the destination room");
/// What a publish-only connection adds to its new shard, as a fraction (1/SEND_SAVES) of what
/// it cost its old one. The new shard already popped, matched and wrote its messages; now it
/// reads and parses them instead of popping them, and the old shard's whole share (read, parse,
/// match, push) is saved. Measured on a 500-publisher fan-in (2 cores, 128 B): the 250
/// publishers of one shard used 0.51-0.55 of its core, and moved to the subscriber's shard
/// they raised its CPU per message by 4 % (0.73 to 0.76 CPU s for 2 M): a quarter errs high.
const SEND_SAVES: u64 = 4;
/// Connections in one batch at most: a batch claims every move of the process until its last
/// connection has handed over, and each one costs the destination an adoption.
const MAX_BATCH: usize = 256;

/// The CPU time the calling thread has used, in ns (None where the clock cannot be read).
fn thread_cpu_ns() -> Option<u64> {
    use nix::time::{clock_gettime, ClockId};
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    u64::try_from(t.tv_sec())
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(t.tv_nsec()).ok()?)
}

/// The move policy and every shard's traffic and CPU use over its last tick (written once per
/// tick by its own shard, read by the others when they pick a destination).
pub struct Placement {
    pub mode: MigrateMode,
    loads: Arc<[AtomicU32]>,
    /// Each shard's CPU use over its last tick, permille of one core (u32::MAX: not known).
    busy: Arc<[AtomicU32]>,
    /// This shard's thread CPU time at its last tick.
    last_cpu: Cell<Option<u64>>,
    /// Moves under way in the process: one move at a time, or one batch. Two unrelated
    /// concurrent moves can reorder messages: a publisher moving from a shard that already
    /// routes to a moving subscriber's new home to one that still routes to its old home would
    /// put its later messages in front of its earlier ones (the old home's bytes are written
    /// first). A batch moves only connections without subscriptions, so no shard's routing
    /// changes while it runs, and each mover's own messages keep their order through its own
    /// `Move`/`SwitchedOld` markers (`migration.rs`).
    moving: Arc<AtomicU32>,
    /// Moves ended in the process so far, and the count this shard saw at its last tick; the
    /// same for moves that were not part of a batch.
    moves_ended: Arc<AtomicU32>,
    seen_ended: Cell<u32>,
    singles_ended: Arc<AtomicU32>,
    seen_singles: Cell<u32>,
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
        let busy: Arc<[AtomicU32]> = (0..nshards).map(|_| AtomicU32::new(u32::MAX)).collect();
        let moving = Arc::new(AtomicU32::new(0));
        let moves_ended = Arc::new(AtomicU32::new(0));
        let singles_ended = Arc::new(AtomicU32::new(0));
        (0..nshards)
            .map(|_| Placement {
                mode,
                loads: loads.clone(),
                busy: busy.clone(),
                last_cpu: Cell::new(None),
                moving: moving.clone(),
                moves_ended: moves_ended.clone(),
                seen_ended: Cell::new(0),
                singles_ended: singles_ended.clone(),
                seen_singles: Cell::new(0),
            })
            .collect()
    }

    /// A shard that never moves connections (a shard alone, or a test's).
    pub fn off() -> Placement {
        Placement {
            mode: MigrateMode::Off,
            loads: Arc::new([]),
            busy: Arc::new([]),
            last_cpu: Cell::new(None),
            moving: Arc::new(AtomicU32::new(0)),
            moves_ended: Arc::new(AtomicU32::new(0)),
            seen_ended: Cell::new(0),
            singles_ended: Arc::new(AtomicU32::new(0)),
            seen_singles: Cell::new(0),
        }
    }

    /// Claims the process's moves for `n` connections of this shard (one, or a batch); false
    /// while other moves are under way.
    fn claim_moves(&self, n: usize) -> bool {
        let n = u32::try_from(n).expect("a batch is at most MAX_BATCH");
        assert!(n > 0, "a claim moves something");
        self.moving
            .compare_exchange(0, n, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// One claimed move ended (handed off, or given up before it started), of a batch or not;
    /// the last one of a batch frees the claim.
    pub fn release_move(&self, batched: bool) {
        self.moves_ended.fetch_add(1, Ordering::AcqRel);
        if !batched {
            self.singles_ended.fetch_add(1, Ordering::AcqRel);
        }
        let before = self
            .moving
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| m.checked_sub(1));
        assert!(before.is_ok(), "a move ended that was never claimed");
    }

    /// Whether no move ended since this shard's last tick, so that the counts of the tick now
    /// ending describe where connections are, not where one was. Without it, the other end of
    /// a pair whose first end just moved could follow it to the shard it left. Second: whether
    /// no single move ended, which is enough for a batch: a batch moves only publishers, which
    /// change no one's destination, so a publisher's counts still say where its subscribers
    /// are after a batch (a subscriber's do not: they name the shard its publishers left).
    fn settled(&self) -> (bool, bool) {
        let ended = self.moves_ended.load(Ordering::Acquire);
        let singles = self.singles_ended.load(Ordering::Acquire);
        (
            ended == self.seen_ended.replace(ended),
            singles == self.seen_singles.replace(singles),
        )
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

    /// A shard's CPU use over its last tick in permille of a core (u32::MAX: not known).
    fn busy(&self, shard: u16) -> u32 {
        self.busy
            .get(shard as usize)
            .map_or(u32::MAX, |b| b.load(Ordering::Relaxed))
    }

    /// Records this shard's CPU use since its last tick, `elapsed` ago (None: the tick is stale
    /// or the clock unreadable, and the use is not known).
    fn note_busy(&self, shard: u16, elapsed: Option<Duration>) {
        let now = thread_cpu_ns();
        let before = self.last_cpu.replace(now);
        let permille = match (before, now, elapsed) {
            (Some(b), Some(n), Some(e)) if !e.is_zero() => {
                (u128::from(n.saturating_sub(b)) * 1_000 / e.as_nanos()).min(u32::MAX as u128 - 1)
                    as u32
            }
            _ => u32::MAX,
        };
        if let Some(b) = self.busy.get(shard as usize) {
            b.store(permille, Ordering::Relaxed);
        }
    }
}

/// What the policy knows of the shards: messages per tick and CPU permille per tick.
struct Loads<L: Fn(u16) -> u32, B: Fn(u16) -> u32> {
    traffic: L,
    busy: B,
}

/// Where the default policy moves a connection of shard `own` that exchanged `traffic` messages
/// per tick, all with `peers`.
fn destination<L: Fn(u16) -> u32, B: Fn(u16) -> u32>(
    own: u16,
    peers: Peers,
    traffic: u32,
    loads: &Loads<L, B>,
) -> Option<u16> {
    match peers {
        // Either way: of two connections that talk to each other, only one moves, because a
        // move is decided only on counts taken wholly after the last move ended (`settled`).
        Peers::Only(n) if n != own && traffic >= MIN_TRAFFIC => {
            let quiet =
                traffic <= MAX_TRAFFIC && (loads.traffic)(n).saturating_add(traffic) <= SHARD_CAP;
            let fits = (loads.busy)(own).saturating_add((loads.busy)(n)) < PAIR_FITS;
            (quiet || fits).then_some(n)
        }
        _ => None,
    }
}

/// Which of a shard's publish-only connections move this tick, all to the destination of the
/// first: `senders` holds each one's only destination and its traffic per tick, `total` the
/// shard's own traffic per tick. A connection stands for its share of the shard's CPU use; the
/// batch takes connections while the destination's use plus theirs stays under
/// [`SEND_ROOM`]. Nothing moves while either shard's use is not known.
fn send_batch<L: Fn(u16) -> u32, B: Fn(u16) -> u32>(
    own: u16,
    senders: &[(u16, u32)],
    total: u32,
    loads: &Loads<L, B>,
) -> Vec<usize> {
    let Some(&(to, _)) = senders.first() else {
        return Vec::new();
    };
    let (own_busy, to_busy) = ((loads.busy)(own), (loads.busy)(to));
    if own_busy >= SEND_ROOM || to_busy >= SEND_ROOM {
        // u32::MAX (not known) included.
        return Vec::new();
    }
    let room = u64::from(SEND_ROOM.saturating_sub(to_busy));
    let total = u64::from(total.max(1));
    let mut used = 0u64;
    let mut picked = Vec::new();
    for (i, &(n, traffic)) in senders.iter().enumerate() {
        debug_assert!(n != own, "a sender publishes to another shard");
        if n != to {
            continue;
        }
        let cost = (u64::from(own_busy) * u64::from(traffic) / total / SEND_SAVES).max(1);
        if used + cost > room {
            continue;
        }
        used += cost;
        picked.push(i);
        if picked.len() == MAX_BATCH {
            break;
        }
    }
    picked
}

/// Tells a connection's reader to stop at its next wait and hand the connection to `to`.
fn start_move(c: &ClientState, to: u16, in_batch: bool) {
    let a = &c.affinity;
    a.in_batch.set(in_batch);
    a.move_to.set(Some(to));
    a.moves.set(a.moves.get().saturating_add(1));
    a.move_wake.raise();
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
        self.expire_holds(now);
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
        let chaos = mode == MigrateMode::Chaos;
        // Chaos moves at random and needs no settled counts.
        let (settled, batch_settled) = if chaos {
            (true, true)
        } else {
            self.placement.settled()
        };
        // Counts over `elapsed`, as per TICK.
        let per_tick = |n: u32| -> u32 {
            (u128::from(n) * TICK.as_nanos() / elapsed.as_nanos().max(1)).min(u32::MAX as u128)
                as u32
        };
        self.placement.note_busy(self.id, fresh.then_some(elapsed));
        let loads = Loads {
            traffic: |n| self.placement.load(n),
            busy: |n| self.placement.busy(n),
        };
        // Chaos sends this tick's movers to one random shard.
        let chaos_to = chaos.then(|| {
            let k = self.rand_below(self.nshards - 1) as u16;
            if k >= self.id {
                k + 1
            } else {
                k
            }
        });
        let mut total: u32 = 0;
        let mut mover: Option<(Rc<ClientState>, u16)> = None;
        // Publish-only connections that could join the shard they publish to (in chaos mode:
        // every publish-only connection with traffic, wherever it publishes).
        let mut senders: Vec<(Rc<ClientState>, u16, u32)> = Vec::new();
        for c in self.clients.borrow().values() {
            let (peers, traffic) = c.affinity.take();
            total = total.saturating_add(traffic);
            if !fresh || !batch_settled || !movable(c, chaos) {
                continue;
            }
            let publish_only = c.subs.borrow().is_empty();
            let quiet = traffic == 0;
            let traffic = per_tick(traffic);
            if let Some(to) = chaos_to {
                if !quiet {
                    if publish_only {
                        senders.push((c.clone(), to, traffic));
                    } else if mover.is_none() {
                        mover = Some((c.clone(), to));
                    }
                }
                continue;
            }
            // This tick's peers, or, for a connection quiet over it, those of its last tick
            // with traffic: of 250 publishers paused on one slow subscriber, most sent nothing
            // over a given tick, and they still publish where they did.
            match c.affinity.last_peers() {
                Peers::Only(n) if publish_only && n != self.id => {
                    senders.push((c.clone(), n, traffic));
                }
                _ => {}
            }
            if settled && mover.is_none() {
                mover = destination(self.id, peers, traffic, &loads).map(|to| (c.clone(), to));
            }
        }
        if fresh {
            self.placement.set_load(self.id, per_tick(total));
        }
        let batch: Vec<usize> = if chaos {
            (0..senders.len().min(MAX_BATCH)).collect()
        } else {
            let wants: Vec<(u16, u32)> = senders.iter().map(|&(_, n, t)| (n, t)).collect();
            send_batch(self.id, &wants, per_tick(total), &loads)
        };
        // A batch first: it takes the publish-only connections the single rules would move
        // one per settled tick (while 500 publishers connect and start, the quiet rule alone
        // kept the process moving one at a time for half a second).
        if !batch.is_empty() && self.placement.claim_moves(batch.len()) {
            let to = senders[batch[0]].1;
            tracing::debug!(
                "shard {}: {} of {} publish-only connections move to shard {to} (CPU {}/{} permille)",
                self.id,
                batch.len(),
                senders.len(),
                self.placement.busy(self.id),
                self.placement.busy(to),
            );
            for i in batch {
                let (c, to, _) = &senders[i];
                start_move(c, *to, true);
            }
        } else if let Some((c, to)) = mover {
            if self.placement.claim_moves(1) {
                start_move(&c, to, false);
            }
        }
    }

    /// A move picked by [`Shard::rebalance`] will not happen (the connection closed first, its
    /// socket could not be duplicated, or it subscribed while picked for a batch).
    pub fn move_abandoned(&self, client: &ClientState) {
        let batched = client.affinity.in_batch.replace(false);
        if client.affinity.move_to.take().is_some() {
            self.placement.release_move(batched);
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
    fn only_a_quiet_exclusive_connection_moves() {
        // Both shards fully busy: only the traffic rule can move a connection.
        let idle = Loads {
            traffic: |_| 0,
            busy: |_| 1_000,
        };
        // A requester on shard 1 whose every message went to or came from shard 0, and one on
        // shard 0 whose went to shard 1 (of a pair, `settled` lets only one go).
        assert_eq!(destination(1, Peers::Only(0), 400, &idle), Some(0));
        assert_eq!(destination(0, Peers::Only(1), 400, &idle), Some(1));
        // Traffic with its own shard, with several shards, or none.
        assert_eq!(destination(1, Peers::Only(1), 400, &idle), None);
        assert_eq!(destination(2, Peers::Several, 400, &idle), None);
        assert_eq!(destination(2, Peers::Nobody, 400, &idle), None);
        // Too quiet to matter, or busy enough to keep a core of its own.
        assert_eq!(destination(1, Peers::Only(0), MIN_TRAFFIC - 1, &idle), None);
        assert_eq!(destination(1, Peers::Only(0), MAX_TRAFFIC + 1, &idle), None);
        // A destination that is busy already.
        let at = |t: u32| Loads {
            traffic: move |_| t,
            busy: |_| 1_000,
        };
        assert_eq!(
            destination(1, Peers::Only(0), 400, &at(SHARD_CAP - 399)),
            None
        );
        assert_eq!(
            destination(1, Peers::Only(0), 400, &at(SHARD_CAP - 400)),
            Some(0)
        );
    }

    #[test]
    fn a_tick_that_saw_a_move_end_decides_nothing() {
        let p = Placement::for_shards(MigrateMode::On, 3);
        let all = |p: &Placement| p.settled() == (true, true);
        assert!(all(&p[0]) && all(&p[2]));
        assert!(p[1].claim_moves(1));
        assert!(all(&p[0]), "a move under way changes nothing yet");
        p[1].release_move(false);
        // Every shard skips the one tick whose counts straddle the move's end.
        assert_eq!(p[0].settled(), (false, false));
        assert!(all(&p[0]));
        assert_eq!(p[2].settled(), (false, false));
        assert_eq!(p[1].settled(), (false, false));
        assert!(all(&p[1]));
        // The end of a batch's move leaves batches free to go on, not single moves.
        assert!(p[1].claim_moves(2));
        p[1].release_move(true);
        assert_eq!(p[0].settled(), (false, true));
        p[1].release_move(true);
        assert_eq!(p[0].settled(), (false, true));
        assert!(all(&p[0]));
    }

    #[test]
    fn a_busy_pair_moves_only_while_both_shards_fit_on_one_core() {
        let cpu = |own: u32, dest: u32| Loads {
            traffic: |_| SHARD_CAP,
            busy: move |n| if n == 0 { dest } else { own },
        };
        let busy = MAX_TRAFFIC * 50;
        assert_eq!(
            destination(1, Peers::Only(0), busy, &cpu(300, 300)),
            Some(0)
        );
        assert_eq!(
            destination(1, Peers::Only(0), busy, &cpu(PAIR_FITS / 2, PAIR_FITS / 2)),
            None
        );
        assert_eq!(destination(1, Peers::Only(0), busy, &cpu(100, 900)), None);
        // Not known (a stale tick): stays.
        assert_eq!(
            destination(1, Peers::Only(0), busy, &cpu(0, u32::MAX)),
            None
        );
        // Still not the quiet or the unrelated.
        assert_eq!(destination(2, Peers::Several, busy, &cpu(0, 0)), None);
        assert_eq!(
            destination(1, Peers::Only(0), MIN_TRAFFIC - 1, &cpu(0, 0)),
            None
        );
    }

    #[test]
    fn a_shard_measures_its_own_cpu_use() {
        let p = Placement::for_shards(MigrateMode::On, 2);
        assert_eq!(p[1].busy(1), u32::MAX);
        p[1].note_busy(1, None);
        assert_eq!(p[1].busy(1), u32::MAX, "no earlier reading");
        let t0 = Instant::now();
        let mut spin = 0u64;
        while t0.elapsed() < Duration::from_millis(30) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        p[1].note_busy(1, Some(t0.elapsed()));
        let b = p[0].busy(1);
        // A thread that spun the whole time used about one core (the host may steal some).
        assert!((200..=1_100).contains(&b), "{b} permille");
        std::thread::sleep(Duration::from_millis(30));
        p[1].note_busy(1, Some(Duration::from_millis(30)));
        assert!(p[0].busy(1) < 200, "{} permille asleep", p[0].busy(1));
        p[1].note_busy(1, None);
        assert_eq!(p[0].busy(1), u32::MAX, "a stale tick is not known");
    }

    #[test]
    fn one_move_at_a_time_in_the_process() {
        let p = Placement::for_shards(MigrateMode::On, 4);
        assert!(p[1].claim_moves(1));
        assert!(!p[2].claim_moves(1));
        assert!(!p[1].claim_moves(1));
        p[1].release_move(false);
        assert!(p[3].claim_moves(1));
    }

    #[test]
    fn a_batch_holds_the_claim_until_its_last_move_ends() {
        let p = Placement::for_shards(MigrateMode::On, 3);
        assert!(p[0].claim_moves(3));
        assert!(!p[1].claim_moves(1));
        p[0].release_move(true);
        p[0].release_move(true);
        assert!(!p[2].claim_moves(2), "one of the batch is still moving");
        p[0].release_move(true);
        assert!(p[2].claim_moves(2));
    }

    #[test]
    #[should_panic(expected = "never claimed")]
    fn a_move_that_was_never_claimed_cannot_end() {
        let p = Placement::for_shards(MigrateMode::On, 2);
        p[0].release_move(true);
    }

    #[test]
    fn publish_only_connections_join_their_destination_while_it_has_room() {
        // Shard 1 at 800 permille over 100 messages a tick; shard 0, the destination, at 700.
        let at = |own: u32, dest: u32| Loads {
            traffic: |_| 0,
            busy: move |n| if n == 0 { dest } else { own },
        };
        // A sender of 10 messages stands for 80 permille there, 20 (a quarter) on shard 0:
        // its room of 200 (SEND_ROOM 900 - 700) takes 10 of them, with one to another shard
        // (skipped) in between.
        const { assert!(SEND_ROOM == 900 && SEND_SAVES == 4) };
        let senders: Vec<(u16, u32)> = (0..12).map(|i| (if i == 3 { 2 } else { 0 }, 10)).collect();
        let picked = send_batch(1, &senders, 100, &at(800, 700));
        assert_eq!(picked, vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 10]);
        // A busier destination takes fewer; one at the limit none, nor does a source there.
        assert_eq!(send_batch(1, &senders, 100, &at(800, 860)).len(), 2);
        assert!(send_batch(1, &senders, 100, &at(800, SEND_ROOM)).is_empty());
        assert!(send_batch(1, &senders, 100, &at(SEND_ROOM, 0)).is_empty());
        assert!(send_batch(1, &senders, 100, &at(990, 0)).is_empty());
        // A light sender fits where a heavy one does not.
        let mixed = [(0, 80), (0, 5)];
        assert_eq!(send_batch(1, &mixed, 100, &at(800, 860)), vec![1]);
        // Not known: nothing moves.
        assert!(send_batch(1, &senders, 100, &at(u32::MAX, 0)).is_empty());
        assert!(send_batch(1, &senders, 100, &at(500, u32::MAX)).is_empty());
        assert!(send_batch(1, &[], 100, &at(0, 0)).is_empty());
        // An idle shard's senders cost at least a permille each: a batch stays bounded.
        let many: Vec<(u16, u32)> = (0..1_000).map(|_| (0, 16)).collect();
        assert_eq!(send_batch(1, &many, 16_000, &at(0, 0)).len(), MAX_BATCH);
        assert_eq!(send_batch(1, &many, 16_000, &at(0, 890)).len(), 10);
    }

    #[test]
    fn loads_are_shared_between_shards() {
        let p = Placement::for_shards(MigrateMode::On, 3);
        p[2].set_load(2, 77);
        assert_eq!(p[0].load(2), 77);
        assert_eq!(p[1].load(5), u32::MAX);
    }
}
