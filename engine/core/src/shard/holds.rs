//! Subject-wide holds: a client past its stall mark tells each shard that feeds it which
//! subject it subscribed to, and every publisher there whose messages match pauses, not only
//! the one its notice names.
//!
//! Why: a stall notice (`Envelope::Stall`) names the publisher whose message the ring consumer
//! just delivered, and it is sent only when that message comes out of the ring, behind
//! everything queued before it. Three hundred publishers spread over four shards, each writing
//! its 400 KiB at once, each got its first notice after most of its messages were queued: the
//! held backlog passed 64 MiB in 170 ms with one notice per publisher (release build,
//! `tests/isolation.rs::a_slow_reader_fed_by_three_hundred_publishers_gets_everything`). With a
//! hold, the first notice from a shard pauses all of that shard's feeders of the client at
//! their next message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tachyon_protocol::subject;

use super::Shard;
use crate::accounts::AccountId;
use crate::client::{ClientState, StallGate, SubRef};
use crate::envelope::Envelope;

/// A client of shard `dest` that is behind, and the subject of the subscription it was fed
/// through: publishers here whose messages match it pause on its gate.
struct Hold {
    dest: u16,
    account: AccountId,
    subject: Bytes,
    gate: Arc<StallGate>,
    /// When its shard last said so.
    at: Instant,
}

/// The holds a shard was told about, in the order they came.
#[derive(Default)]
pub(super) struct HoldTable {
    holds: Vec<Hold>,
}

impl HoldTable {
    pub(super) fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// Shard `dest` says its client behind `gate` is fed through `subject`, as of `now`.
    pub(super) fn renew(
        &mut self,
        dest: u16,
        account: AccountId,
        subject: &Bytes,
        gate: &Arc<StallGate>,
        now: Instant,
    ) {
        let known = self.holds.iter_mut().find(|h| {
            h.dest == dest
                && h.account == account
                && Arc::ptr_eq(&h.gate, gate)
                && h.subject == *subject
        });
        match known {
            Some(h) => h.at = now,
            None => self.holds.push(Hold {
                dest,
                account,
                subject: subject.clone(),
                gate: gate.clone(),
                at: now,
            }),
        }
    }

    /// The gates that a message on `subject` in `account`, sent to shard `dest`, must wait
    /// for: clients still behind whose subscription matches.
    pub(super) fn matching<'a>(
        &'a self,
        dest: u16,
        account: AccountId,
        subject: &'a [u8],
    ) -> impl Iterator<Item = &'a Arc<StallGate>> + 'a {
        self.holds
            .iter()
            .filter(move |h| {
                h.dest == dest
                    && h.account == account
                    && h.gate.holds_up_remote()
                    && subject::matches(&h.subject, subject)
            })
            .map(|h| &h.gate)
    }

    /// Drops the holds of clients no longer behind, or not renewed for [`HOLD_KEPT`].
    pub(super) fn expire(&mut self, now: Instant) {
        self.holds
            .retain(|h| h.gate.holds_up_remote() && now.duration_since(h.at) < HOLD_KEPT);
    }
}

/// A shard hears about a held subscription at most once per this interval per source shard.
const HOLD_EVERY: Duration = Duration::from_millis(1);
/// A hold not renewed for this long is dropped: many times `HOLD_EVERY`, so it stays while
/// the client is fed and behind (as a notice's `STICKY`).
const HOLD_KEPT: Duration = Duration::from_millis(50);
const _: () = assert!(HOLD_EVERY.as_nanos() * 10 <= HOLD_KEPT.as_nanos());
/// Past this many remembered hold notices the old ones are forgotten.
const HOLDS_SENT_KEPT: usize = 1024;

impl Shard {
    /// A ring consumer delivered a message from shard `src` to `sub`, whose client is past its
    /// stall mark: tells `src` (at most once per [`HOLD_EVERY`]) to pause its feeders of that
    /// subscription. Queue subscriptions are left to per-publisher notices: a publisher there
    /// may be feeding the group's other members.
    pub(super) fn note_remote_hold(&self, src: u16, sub: &SubRef) {
        if sub.queue.is_some() {
            return;
        }
        let Some(Some(outlet)) = self.outlets.get(src as usize) else {
            return;
        };
        let client = &sub.client;
        let now = self.recent.get();
        let key = (src, client.id, std::rc::Rc::as_ptr(&sub.0) as usize);
        let mut sent = self.holds_sent.borrow_mut();
        if !super::backpressure::due(&mut sent, key, now, HOLD_EVERY, HOLDS_SENT_KEPT) {
            return;
        }
        outlet.send(Envelope::Hold {
            account: client.account.get(),
            subject: sub.subject.clone(),
            gate: client.gate.clone(),
        });
    }

    /// Shard `from` holds `subject`: its client is behind.
    pub(super) fn on_hold(
        &self,
        from: u16,
        account: AccountId,
        subject: &Bytes,
        gate: &Arc<StallGate>,
    ) {
        if !gate.holds_up_remote() {
            return;
        }
        self.holds
            .borrow_mut()
            .renew(from, account, subject, gate, Instant::now());
    }

    /// `from` just sent a message on `subject` to shard `dest`: it pauses at its next message
    /// for each client there that holds a matching subscription.
    #[inline]
    pub(super) fn apply_holds(
        &self,
        account: AccountId,
        from: &ClientState,
        dest: u16,
        subject: &[u8],
    ) {
        let holds = self.holds.borrow();
        if holds.is_empty() {
            return;
        }
        let now = self.recent.get();
        let mut known = None;
        for gate in holds.matching(dest, account, subject) {
            // Only a connection's reader pauses: an internal publisher never reads.
            if !*known.get_or_insert_with(|| self.clients.borrow().contains_key(&from.id)) {
                return;
            }
            wait_on(from, gate, now);
        }
    }

    /// Drops the holds of clients no longer behind, or not renewed for [`HOLD_KEPT`].
    #[inline]
    pub(super) fn expire_holds(&self, now: Instant) {
        let mut holds = self.holds.borrow_mut();
        if !holds.is_empty() {
            holds.expire(now);
        }
    }
}

/// Makes `publisher`'s reader pause on `gate` (a client of another shard) at its next message,
/// as a stall notice does.
pub(super) fn wait_on(publisher: &ClientState, gate: &Arc<StallGate>, now: Instant) {
    let mut waits = publisher.remote_stalls.borrow_mut();
    match waits.iter_mut().find(|(g, _)| Arc::ptr_eq(g, gate)) {
        Some((_, at)) => *at = now,
        None => waits.push((gate.clone(), now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behind(cid: u64) -> Arc<StallGate> {
        let g = Arc::new(StallGate::new(cid));
        g.set(true);
        g
    }

    fn gates<'a>(t: &'a HoldTable, dest: u16, account: AccountId, subject: &'a [u8]) -> Vec<u64> {
        t.matching(dest, account, subject).map(|g| g.cid).collect()
    }

    #[test]
    fn a_hold_pauses_what_its_subscription_matches_on_its_shard_and_account_only() {
        let now = Instant::now();
        let mut t = HoldTable::default();
        let slow = behind(7);
        t.renew(2, 0, &Bytes::from_static(b"fan.*"), &slow, now);
        assert_eq!(gates(&t, 2, 0, b"fan.1"), [7]);
        assert_eq!(gates(&t, 2, 0, b"fan.299"), [7]);
        // Another subject, another shard's clients, another account: not its feeders.
        assert!(gates(&t, 2, 0, b"other.1").is_empty());
        assert!(gates(&t, 2, 0, b"fan.1.x").is_empty());
        assert!(gates(&t, 1, 0, b"fan.1").is_empty());
        assert!(gates(&t, 2, 1, b"fan.1").is_empty());
        // Renewing the same hold does not add one.
        t.renew(2, 0, &Bytes::from_static(b"fan.*"), &slow, now);
        assert_eq!(gates(&t, 2, 0, b"fan.1"), [7]);
        // A second client there fed through `>`.
        t.renew(2, 0, &Bytes::from_static(b">"), &behind(9), now);
        assert_eq!(gates(&t, 2, 0, b"fan.1"), [7, 9]);
        assert_eq!(gates(&t, 2, 0, b"other.1"), [9]);
    }

    #[test]
    fn a_hold_ends_when_its_client_catches_up_or_is_not_renewed() {
        let now = Instant::now();
        let mut t = HoldTable::default();
        let a = behind(1);
        let b = behind(2);
        t.renew(0, 0, &Bytes::from_static(b"a"), &a, now);
        t.renew(0, 0, &Bytes::from_static(b"b"), &b, now);
        // Caught up: nobody waits for it, even before the table is cleaned.
        a.set(false);
        assert!(gates(&t, 0, 0, b"a").is_empty());
        t.expire(now);
        assert_eq!(t.holds.len(), 1);
        // Renewed just in time, then not.
        t.renew(0, 0, &Bytes::from_static(b"b"), &b, now + HOLD_KEPT / 2);
        t.expire(now + HOLD_KEPT);
        assert_eq!(gates(&t, 0, 0, b"b"), [2]);
        t.expire(now + HOLD_KEPT / 2 + HOLD_KEPT);
        assert!(t.is_empty());
    }

    #[test]
    fn a_notice_is_due_once_per_interval_per_key() {
        use crate::shard::backpressure::due;
        let now = Instant::now();
        let every = HOLD_EVERY;
        let mut sent = rustc_hash::FxHashMap::default();
        assert!(due(&mut sent, 1, now, every, 4));
        assert!(!due(&mut sent, 1, now + every / 2, every, 4));
        assert!(due(&mut sent, 2, now, every, 4));
        assert!(due(&mut sent, 1, now + every, every, 4));
        assert!(due(&mut sent, 3, now, every, 4));
        assert!(due(&mut sent, 4, now, every, 4));
        assert_eq!(sent.len(), 4);
        // Past `kept` keys, the stale ones are forgotten.
        assert!(due(&mut sent, 5, now + every * 2, every, 4));
        assert_eq!(sent.len(), 1);
    }

    #[test]
    fn a_publisher_waits_once_per_gate_and_keeps_the_latest_time() {
        let now = Instant::now();
        let c = ClientState::new(5, None, -1, 1 << 20);
        let g = behind(3);
        wait_on(&c, &g, now);
        wait_on(&c, &g, now + HOLD_EVERY);
        wait_on(&c, &behind(4), now);
        let waits = c.remote_stalls.borrow();
        assert_eq!(waits.len(), 2);
        assert!(Arc::ptr_eq(&waits[0].0, &g));
        assert_eq!(waits[0].1, now + HOLD_EVERY);
    }
}
