//! The sending end of one shard-to-shard ring, with its doorbell.
//!
//! A full ring never blocks the executor and never drops: envelopes that do not fit wait in a
//! local overflow queue, in order, and the publishing connection stops being read until the
//! overflow drained (see `Shard::wait_outlets_drained`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::doorbell::Doorbell;
use crate::envelope::Envelope;
use crate::ring::Producer;

pub struct Outlet {
    producer: RefCell<Producer<Envelope>>,
    overflow: RefCell<VecDeque<Envelope>>,
    doorbell: Doorbell,
    /// Something was pushed since the doorbell last rang.
    dirty: Cell<bool>,
}

impl Outlet {
    pub fn new(producer: Producer<Envelope>, doorbell: Doorbell) -> Self {
        Outlet {
            producer: RefCell::new(producer),
            overflow: RefCell::new(VecDeque::new()),
            doorbell,
            dirty: Cell::new(false),
        }
    }

    pub fn send(&self, env: Envelope) {
        let mut overflow = self.overflow.borrow_mut();
        if !overflow.is_empty() {
            overflow.push_back(env);
            return;
        }
        match self.producer.borrow_mut().push(env) {
            Ok(()) => self.dirty.set(true),
            Err(env) => overflow.push_back(env),
        }
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
        }
        overflow.is_empty()
    }

    pub fn has_overflow(&self) -> bool {
        !self.overflow.borrow().is_empty()
    }

    /// Wakes the receiving shard once for everything pushed since the last call.
    pub fn ring_doorbell(&self) {
        if self.dirty.replace(false) {
            self.doorbell.ring();
        }
    }
}
