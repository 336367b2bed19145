//! Publish acks waiting for durability: an ack leaves only once the sequence it is due at is
//! durable, and acks leave in the order they were queued (an ack that needs no sync, or an
//! error reply, still waits behind earlier ones).

use std::collections::VecDeque;

use bytes::Bytes;

/// What a waiting reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckBody {
    /// The usual ack, `{"stream":..,"seq":N}`: rendered when it leaves, into a buffer the
    /// stream reuses, so a stored message costs no allocation here.
    Stored(u64),
    /// Anything else (a duplicate, an error), rendered already.
    Raw(Vec<u8>),
}

impl From<Vec<u8>> for AckBody {
    fn from(v: Vec<u8>) -> AckBody {
        AckBody::Raw(v)
    }
}

/// One reply waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAck {
    /// The sequence that must be durable before it leaves (0: none).
    pub due: u64,
    pub reply: Bytes,
    pub body: AckBody,
}

#[derive(Debug, Default)]
pub struct AckQueue {
    queue: VecDeque<PendingAck>,
}

impl AckQueue {
    /// Queues an ack behind those before it.
    pub fn push(&mut self, reply: Bytes, body: impl Into<AckBody>, due: u64) {
        let due = due.max(self.queue.back().map_or(0, |a| a.due));
        self.queue.push_back(PendingAck {
            due,
            reply,
            body: body.into(),
        });
    }

    /// Whether the first waiting ack may leave with `durable` synced.
    pub fn has_due(&self, durable: u64) -> bool {
        self.queue.front().is_some_and(|a| a.due <= durable)
    }

    /// The next ack that may leave with `durable` synced.
    pub fn pop_due(&mut self, durable: u64) -> Option<PendingAck> {
        if self.has_due(durable) {
            self.queue.pop_front()
        } else {
            None
        }
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use tachyon_storage::{
        ByteAccounting, FileStore, FileStoreConfig, NewMsg, SimIo, Store, SyncPolicy,
    };

    #[test]
    fn acks_leave_in_order_and_only_once_durable() {
        let mut q = AckQueue::default();
        q.push(Bytes::from_static(b"a"), b"1".to_vec(), 5);
        q.push(Bytes::from_static(b"b"), b"err".to_vec(), 0);
        q.push(Bytes::from_static(b"c"), b"6".to_vec(), 6);
        assert!(q.pop_due(4).is_none());
        assert_eq!(
            q.pop_due(5).map(|a| a.reply),
            Some(Bytes::from_static(b"a"))
        );
        // The error reply queued after seq 5 left with it, not before.
        assert_eq!(
            q.pop_due(5).map(|a| a.reply),
            Some(Bytes::from_static(b"b"))
        );
        assert!(q.pop_due(5).is_none());
        assert_eq!(
            q.pop_due(u64::MAX).map(|a| a.body),
            Some(AckBody::Raw(b"6".to_vec()))
        );
    }

    /// JetStream's promise under power failure: the store on SimIo (which forgets unsynced
    /// writes and tears the last one), pipelined appends as a stream makes them, acks released
    /// by this queue at the store's durable sequence; after each cut, every released ack's
    /// message is there under its sequence.
    #[test]
    fn power_failure_keeps_every_acknowledged_message() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let io = Arc::new(SimIo::new());
        let dir = std::path::PathBuf::from("/js/S/msgs");
        let cfg = FileStoreConfig {
            sync: SyncPolicy::Always,
            accounting: ByteAccounting::NatsFile,
            segment_bytes: 4096,
            ..FileStoreConfig::default()
        };
        let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut released = 0;
        for _cut in 0..60 {
            let mut s = FileStore::open(io.clone(), &dir, cfg.clone()).expect("reopen");
            for (seq, body) in &acked {
                let m = s.load(*seq).expect("load").map(|m| m.payload);
                assert_eq!(m.as_ref(), Some(body), "acknowledged seq {seq} lost");
            }
            let mut q = AckQueue::default();
            let mut bodies = BTreeMap::new();
            for _ in 0..rng.gen_range(1..6) {
                let batch: Vec<Vec<u8>> = (0..rng.gen_range(1..20))
                    .map(|_| (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect())
                    .collect();
                let msgs: Vec<NewMsg<'_>> = batch
                    .iter()
                    .map(|b| NewMsg {
                        subject: "s.x",
                        headers: b"",
                        payload: b,
                        timestamp: 1,
                    })
                    .collect();
                let seqs = s.append_batch_pipelined(&msgs).expect("append");
                for (r, b) in seqs.into_iter().zip(&batch) {
                    let seq = r.expect("stored");
                    bodies.insert(seq, b.clone());
                    q.push(Bytes::new(), AckBody::Stored(seq), seq);
                }
                while let Some(a) = q.pop_due(s.durable_seq()) {
                    let AckBody::Stored(seq) = a.body else {
                        panic!("only stored acks were queued")
                    };
                    acked.insert(seq, bodies[&seq].clone());
                    released += 1;
                }
            }
            io.crash(|n| rng.gen_range(0..n.max(1)));
        }
        assert!(
            released > 100,
            "too few acks released to mean anything: {released}"
        );
    }
}
