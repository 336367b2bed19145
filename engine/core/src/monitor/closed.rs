//! Recently closed connections, kept for `/connz?state=closed|any` like nats-server's ring of
//! closed clients. Written once per disconnect (a rare event, so a lock is fine), read per
//! HTTP request; never touched per message.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::snapshot::ConnSnapshot;

/// nats-server's default `max_closed_clients`.
pub const MAX_CLOSED: usize = 10_000;

pub struct ClosedConns {
    enabled: bool,
    ring: Mutex<VecDeque<ConnSnapshot>>,
}

impl ClosedConns {
    /// A disabled list (monitoring off) records nothing.
    pub fn new(enabled: bool) -> Self {
        ClosedConns {
            enabled,
            ring: Mutex::new(VecDeque::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn push(&self, conn: ConnSnapshot) {
        if !self.enabled {
            return;
        }
        // A poisoned lock only means another thread panicked while pushing: the list is still
        // a list of whole entries.
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == MAX_CLOSED {
            ring.pop_front();
        }
        ring.push_back(conn);
    }

    /// Oldest first.
    pub fn list(&self) -> Vec<ConnSnapshot> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientState;
    use crate::monitor::snapshot;

    #[test]
    fn keeps_the_newest_and_only_when_enabled() {
        let c = ClientState::new(1, None, -1, 1024);
        let off = ClosedConns::new(false);
        off.push(snapshot::conn(&c, false));
        assert!(off.list().is_empty());

        let on = ClosedConns::new(true);
        for cid in 0..(MAX_CLOSED as u64 + 3) {
            let mut s = snapshot::conn(&c, false);
            s.cid = cid;
            on.push(s);
        }
        let l = on.list();
        assert_eq!(l.len(), MAX_CLOSED);
        assert_eq!(l[0].cid, 3);
    }
}
