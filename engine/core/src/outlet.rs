//! The sending end of one shard-to-shard ring, with its doorbell.
//!
//! A full ring never blocks the executor and never drops: envelopes that do not fit wait in a
//! local overflow queue, in order, and the publishing connection stops being read until the
//! envelopes it queued moved on (see `Shard::wait_own_overflow_flushed`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::doorbell::Doorbell;
use crate::envelope::Envelope;
use crate::ring::{Producer, Stored};

pub struct Outlet {
    producer: RefCell<Producer<Envelope>>,
    overflow: RefCell<VecDeque<Envelope>>,
    doorbell: Doorbell,
    /// Something was pushed since the doorbell last rang.
    dirty: Cell<bool>,
    /// Envelopes ever queued in the overflow, and ever moved from it into the ring: a feeder
    /// waits for its own envelopes (the count when it stopped) rather than for an empty queue,
    /// which another feeder could keep refilling.
    overflowed: Cell<u64>,
    flushed: Cell<u64>,
}

impl Outlet {
    pub fn new(producer: Producer<Envelope>, doorbell: Doorbell) -> Self {
        Outlet {
            producer: RefCell::new(producer),
            overflow: RefCell::new(VecDeque::new()),
            doorbell,
            dirty: Cell::new(false),
            overflowed: Cell::new(0),
            flushed: Cell::new(0),
        }
    }

    pub fn send(&self, env: Envelope) {
        let mut overflow = self.overflow.borrow_mut();
        if !overflow.is_empty() {
            overflow.push_back(env);
            self.overflowed.set(self.overflowed.get() + 1);
            return;
        }
        match self.producer.borrow_mut().push(env) {
            Ok(()) => self.dirty.set(true),
            Err(env) => {
                overflow.push_back(env);
                self.overflowed.set(self.overflowed.get() + 1);
            }
        }
    }

    /// Copies `parts` into the ring beside `make(bytes)` and sends that, when nothing waits in
    /// the overflow and the ring has room for both; false otherwise, with nothing sent (the
    /// caller sends handles instead).
    pub fn send_with_bytes(&self, parts: &[&[u8]], make: impl FnOnce(Stored) -> Envelope) -> bool {
        if self.has_overflow() {
            return false;
        }
        let pushed = self.producer.borrow_mut().push_with_bytes(parts, make);
        if pushed {
            self.dirty.set(true);
        }
        pushed
    }

    /// Moves what fits from the overflow into the ring; true when the overflow is empty.
    pub fn flush_overflow(&self) -> bool {
        let mut overflow = self.overflow.borrow_mut();
        if overflow.is_empty() {
            return true;
        }
        let mut producer = self.producer.borrow_mut();
        while let Some(env) = overflow.pop_front() {
            if let Err(env) = producer.push(env) {
                overflow.push_front(env);
                break;
            }
            self.dirty.set(true);
            self.flushed.set(self.flushed.get() + 1);
        }
        overflow.is_empty()
    }

    /// How many envelopes were ever queued in the overflow (the mark to wait for).
    pub fn overflow_mark(&self) -> u64 {
        self.overflowed.get()
    }

    /// Whether every envelope queued up to `mark` has moved into the ring.
    pub fn flushed_past(&self, mark: u64) -> bool {
        self.flushed.get() >= mark
    }

    /// From the counters, not the queue: readers ask per message while a ring is backed up.
    #[inline]
    pub fn has_overflow(&self) -> bool {
        self.overflowed.get() != self.flushed.get()
    }

    /// Wakes the receiving shard once for everything pushed since the last call.
    pub fn ring_doorbell(&self) {
        if self.dirty.replace(false) {
            self.doorbell.ring();
        }
    }
}
