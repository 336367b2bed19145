//! `storage: memory` streams.

use std::collections::BTreeMap;

use crate::core::{validate, Core};
use crate::error::Result;
use crate::store::Store;
use crate::types::{ByteAccounting, Limits, MsgRef, NewMsg, PurgeRequest, StoredMsg, StreamState};

#[derive(Debug)]
pub struct MemoryStore {
    core: Core<(Vec<u8>, Vec<u8>)>,
    limits: Limits,
    accounting: ByteAccounting,
}

impl MemoryStore {
    /// A store counting bytes as [`ByteAccounting::Record`].
    pub fn new(limits: Limits) -> Self {
        MemoryStore::with_accounting(limits, ByteAccounting::default())
    }

    /// A store counting bytes as `accounting`; nats-server's memory store is
    /// [`ByteAccounting::NatsMemory`].
    pub fn with_accounting(limits: Limits, accounting: ByteAccounting) -> Self {
        MemoryStore {
            core: Core::default(),
            limits,
            accounting,
        }
    }

    fn msg(&self, seq: u64) -> Option<StoredMsg> {
        let e = self.core.get(seq)?;
        Some(StoredMsg {
            seq,
            timestamp: e.ts,
            subject: e.subject.to_string(),
            headers: e.data.0.clone(),
            payload: e.data.1.clone(),
        })
    }

    fn append_one(&mut self, m: &NewMsg<'_>) -> Result<u64> {
        let size = self.accounting.msg_size(m.subject, m.headers, m.payload);
        validate(&self.limits, m.subject, m.headers, size)?;
        let plan = self
            .core
            .plan_append(&self.limits, m.subject, m.headers, size, m.timestamp)?;
        for v in plan.victims {
            self.core.remove(v);
        }
        let seq = self.core.last_seq() + 1;
        if plan.evict_self {
            self.core.bump_last_seq(seq);
            return Ok(seq);
        }
        self.core.insert(
            seq,
            m.subject,
            m.timestamp,
            size,
            (m.headers.to_vec(), m.payload.to_vec()),
        );
        Ok(seq)
    }
}

impl Store for MemoryStore {
    fn append_batch(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<Result<u64>>> {
        Ok(msgs.iter().map(|m| self.append_one(m)).collect())
    }

    fn load(&self, seq: u64) -> Result<Option<StoredMsg>> {
        Ok(self.msg(seq))
    }

    fn read_with(&self, seq: u64, f: &mut dyn FnMut(MsgRef<'_>)) -> Result<bool> {
        let Some(e) = self.core.get(seq) else {
            return Ok(false);
        };
        f(MsgRef {
            seq,
            timestamp: e.ts,
            subject: &e.subject,
            headers: &e.data.0,
            payload: &e.data.1,
        });
        Ok(true)
    }

    fn next_seq(&self, from_seq: u64, filter: &str) -> Option<u64> {
        self.core.next(from_seq, filter)
    }

    fn contains(&self, seq: u64) -> bool {
        self.core.get(seq).is_some()
    }

    fn load_last(&self, filter: &str) -> Result<Option<StoredMsg>> {
        Ok(self.core.last(filter).and_then(|s| self.msg(s)))
    }

    fn load_next(&self, from_seq: u64, filter: &str) -> Result<Option<StoredMsg>> {
        Ok(self.core.next(from_seq, filter).and_then(|s| self.msg(s)))
    }

    fn seq_at_time(&self, ts: i64) -> Option<u64> {
        self.core.seq_at_time(ts)
    }

    fn delete(&mut self, seq: u64, _overwrite: bool) -> Result<bool> {
        // Dropping the buffers is all the scrubbing memory needs.
        Ok(self.core.remove(seq).is_some())
    }

    fn purge(&mut self, req: &PurgeRequest) -> Result<u64> {
        let victims = self.core.plan_purge(req);
        for v in &victims {
            self.core.remove(*v);
        }
        Ok(victims.len() as u64)
    }

    fn compact(&mut self, seq: u64) -> Result<u64> {
        if seq == 0 {
            return self.purge(&PurgeRequest::default());
        }
        let victims = self.core.below(seq);
        for v in &victims {
            self.core.remove(*v);
        }
        self.core.bump_last_seq(seq - 1);
        Ok(victims.len() as u64)
    }

    fn expire(&mut self, now: i64) -> Result<u64> {
        let victims = self.core.expired(&self.limits, now);
        for v in &victims {
            self.core.remove(*v);
        }
        Ok(victims.len() as u64)
    }

    fn set_limits_at(&mut self, limits: Limits, now: i64) -> Result<u64> {
        let victims = self.core.plan_limits(&limits, now);
        for v in &victims {
            self.core.remove(*v);
        }
        self.limits = limits;
        Ok(victims.len() as u64)
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn state(&self) -> StreamState {
        self.core.state()
    }

    fn subject_counts(&self, filter: &str) -> BTreeMap<String, u64> {
        self.core.subject_counts(filter)
    }

    fn count_from(&self, from: u64, filter: &str) -> u64 {
        self.core.count_from(from, filter)
    }

    fn last_per_subject(&self, filter: &str) -> Vec<u64> {
        self.core.last_per_subject(filter)
    }

    fn durable_seq(&self) -> u64 {
        self.core.last_seq()
    }

    fn byte_accounting(&self) -> ByteAccounting {
        self.accounting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StoreError;
    use crate::types::DiscardPolicy;
    use std::time::Duration;

    fn store(limits: Limits) -> MemoryStore {
        MemoryStore::new(limits)
    }

    #[test]
    fn append_load_and_state() {
        let mut s = store(Limits::default());
        assert_eq!(s.state().first_seq, 0);
        assert_eq!(s.append("a.b", b"h", b"one", 10).unwrap(), 1);
        assert_eq!(s.append("a.c", b"", b"two", 20).unwrap(), 2);
        assert_eq!(s.append("a.b", b"", b"three", 30).unwrap(), 3);
        let m = s.load(2).unwrap().unwrap();
        assert_eq!((m.subject.as_str(), &m.payload[..]), ("a.c", &b"two"[..]));
        assert_eq!(s.load_last("a.b").unwrap().unwrap().seq, 3);
        assert_eq!(s.load_last("a.*").unwrap().unwrap().seq, 3);
        assert_eq!(s.load_last("x").unwrap(), None);
        assert_eq!(s.load_next(2, "a.b").unwrap().unwrap().seq, 3);
        assert_eq!(s.load_next(1, "*.c").unwrap().unwrap().seq, 2);
        assert_eq!(s.seq_at_time(15), Some(2));
        let st = s.state();
        assert_eq!(
            (st.msgs, st.first_seq, st.last_seq, st.num_subjects),
            (3, 1, 3, 2)
        );
        assert_eq!((st.first_ts, st.last_ts), (10, 30));
        assert_eq!(st.bytes, 3 * RECORD + 9 + 1 + 11);
        assert_eq!(s.subject_counts("").get("a.b"), Some(&2));
        assert_eq!(
            (
                s.count_from(1, ""),
                s.count_from(2, ">"),
                s.count_from(4, "")
            ),
            (3, 2, 0)
        );
        assert_eq!((s.count_from(1, "a.b"), s.count_from(2, "a.b")), (2, 1));
        assert_eq!((s.count_from(1, "a.*"), s.count_from(3, "*.c")), (3, 0));
        assert_eq!(s.last_per_subject(""), vec![2, 3]);
        assert_eq!(s.last_per_subject("a.c"), vec![2]);
        s.delete(3, false).unwrap();
        assert_eq!(
            (s.count_from(1, "a.b"), s.last_per_subject("a.*")),
            (1, vec![1, 2])
        );
    }
    const RECORD: u64 = crate::types::RECORD_OVERHEAD;

    #[test]
    fn delete_and_purge() {
        let mut s = store(Limits::default());
        for i in 0..10 {
            s.append(if i % 2 == 0 { "even" } else { "odd" }, b"", b"x", i)
                .unwrap();
        }
        assert!(s.delete(5, false).unwrap());
        assert!(!s.delete(5, false).unwrap());
        assert_eq!(s.state().num_deleted, 1);
        let n = s
            .purge(&PurgeRequest {
                filter: Some("odd".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(s.subject_counts("").len(), 1);
        let n = s
            .purge(&PurgeRequest {
                keep: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(s.state().first_seq, 7);
        s.purge(&PurgeRequest {
            up_to_seq: Some(9),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.state().first_seq, 9);
        s.purge(&PurgeRequest::default()).unwrap();
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 11, 10));
        assert_eq!(s.append("x", b"", b"", 0).unwrap(), 11);
    }

    #[test]
    fn limits_discard_old() {
        let mut s = store(Limits {
            max_msgs: Some(3),
            max_msgs_per_subject: Some(1),
            ..Default::default()
        });
        for i in 0..5 {
            s.append(&format!("s.{i}"), b"", b"x", 0).unwrap();
        }
        assert_eq!(s.state().first_seq, 3);
        s.append("s.4", b"", b"y", 0).unwrap();
        assert_eq!(s.load(5).unwrap(), None);
        assert_eq!(s.state().msgs, 3);
    }

    #[test]
    fn limits_discard_new_and_size() {
        let mut s = store(Limits {
            max_bytes: Some(3 * (RECORD + 2)),
            max_msg_size: Some(RECORD + 10),
            discard: DiscardPolicy::New,
            ..Default::default()
        });
        for _ in 0..3 {
            s.append("a", b"", b"x", 0).unwrap();
        }
        assert!(matches!(
            s.append("a", b"", b"x", 0),
            Err(StoreError::MaxBytes { .. })
        ));
        assert!(matches!(
            s.append("a", b"", &[0; 20], 0),
            Err(StoreError::MessageTooLarge { .. })
        ));
        assert!(matches!(
            s.append("", b"", b"", 0),
            Err(StoreError::BadSubject { .. })
        ));
        assert_eq!(s.state().msgs, 3);
    }

    #[test]
    fn max_age() {
        let mut s = store(Limits {
            max_age: Some(Duration::from_nanos(100)),
            ..Default::default()
        });
        s.append("a", b"", b"", 0).unwrap();
        s.append("a", b"", b"", 50).unwrap();
        s.append("a", b"", b"", 120).unwrap();
        assert_eq!(s.state().first_seq, 2);
        assert_eq!(s.expire(200).unwrap(), 1);
        assert_eq!(s.state().msgs, 1);
    }
}
