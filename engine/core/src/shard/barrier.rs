//! Barriers: a client's PING after it changed interest (or published to other shards) gets its
//! PONG only once every other shard popped a barrier behind those envelopes and acknowledged.

use std::rc::Rc;

use super::Shard;
use crate::envelope::Envelope;
use crate::signal::LocalSignal;

pub(super) struct PendingBarrier {
    remaining: usize,
    done: Rc<LocalSignal>,
}

impl Shard {
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

    /// Shard `from` popped barrier `token`.
    pub(super) fn on_barrier_ack(&self, from: u16, token: u64) {
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
