//! Back-pressure: envelopes wait in an outlet's overflow queue when a ring is full (the
//! publishing connection is not read again until they moved), and the stall gate pauses the
//! feeders of a client whose writer fell behind.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use super::Shard;
use crate::client::ClientState;
use crate::envelope::Envelope;

impl Shard {
    /// Queues one envelope per other shard; the caller rings the doorbells (`after_sends`).
    pub(super) fn send_to_all(&self, mut make: impl FnMut() -> Envelope) {
        for (_, o) in self.outlets() {
            o.send(make());
        }
    }

    pub(super) fn broadcast(&self, make: impl FnMut() -> Envelope) {
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
    pub(super) fn older_feeder_waits(&self, ticket: u64) -> bool {
        let q = self.stall_queue.borrow();
        let Some((_, _, mine)) = q.iter().find(|(t, _, _)| *t == ticket) else {
            return false;
        };
        q.iter()
            .take_while(|(t, _, _)| *t != ticket)
            .any(|(_, _, theirs)| theirs.iter().any(|id| mine.contains(id)))
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
pub(super) type StallEntry = (u64, Feeder, Vec<u64>);

impl Feeder {
    /// Where a feeder of this kind joins a queue whose entries, oldest first, are `waiting`: a
    /// reader at the back, a ring consumer behind the oldest reader and the ring consumers
    /// right behind it (at the back when no reader waits).
    pub(super) fn place(self, waiting: impl Iterator<Item = Feeder>) -> usize {
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
    pub(super) fn turns(mut q: VecDeque<(&'static str, Feeder)>, n: usize) -> Vec<&'static str> {
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

    pub(super) fn join(q: &mut VecDeque<(&'static str, Feeder)>, name: &'static str, kind: Feeder) {
        let at = kind.place(q.iter().map(|e| e.1));
        q.insert(at, (name, kind));
    }

    pub(super) fn queued(feeders: &[(&'static str, Feeder)]) -> VecDeque<(&'static str, Feeder)> {
        let mut q = VecDeque::new();
        for &(name, kind) in feeders {
            join(&mut q, name, kind);
        }
        q
    }

    /// Two shards: the one ring consumer gets every other turn, each reader one per round.
    #[test]
    pub(super) fn a_ring_consumer_gets_every_other_turn() {
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
    pub(super) fn several_ring_consumers_do_not_starve_readers() {
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
    pub(super) fn ring_consumers_alone_queue_in_order() {
        let q = queued(&[("ringA", Feeder::Ring), ("ringB", Feeder::Ring)]);
        assert_eq!(turns(q, 4), ["ringA", "ringB", "ringA", "ringB"]);
    }
}
