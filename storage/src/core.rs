//! Message bookkeeping shared by both stores: which sequences exist, their subjects, sizes and
//! times, and the decisions limits and purges make. The stores add where the bytes live (`L`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::seq_index::{SeqMap, SeqSet};
use crate::subject;
use crate::types::{DiscardPolicy, Limits, PurgeRequest, StreamState};

#[derive(Debug, Clone)]
pub(crate) struct Entry<L> {
    pub subject: Arc<str>,
    pub ts: i64,
    pub size: u64,
    pub data: L,
}

#[derive(Debug)]
pub(crate) struct Core<L> {
    msgs: SeqMap<Entry<L>>,
    /// The key's `Arc` is kept in the value as well, so an append to a known subject takes
    /// one lookup and no new allocation.
    subjects: HashMap<Arc<str>, (Arc<str>, SeqSet)>,
    bytes: u64,
    last_seq: u64,
    /// Whether timestamps never went down in sequence order, so age limits can stop at the
    /// first young message instead of looking at all of them.
    ts_ordered: bool,
}

impl<L> Default for Core<L> {
    fn default() -> Self {
        Core {
            msgs: SeqMap::default(),
            subjects: HashMap::new(),
            bytes: 0,
            last_seq: 0,
            ts_ordered: true,
        }
    }
}

pub(crate) const MAX_SUBJECT: usize = u16::MAX as usize;

/// Checks that do not depend on the stored messages.
pub(crate) fn validate(limits: &Limits, subject: &str, headers: &[u8], size: u64) -> Result<()> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT {
        return Err(StoreError::BadSubject { max: MAX_SUBJECT });
    }
    if headers.len() > u32::MAX as usize / 2 {
        return Err(StoreError::HeadersTooLarge {
            size: headers.len(),
        });
    }
    if let Some(max) = limits.max_msg_size {
        if size > max {
            return Err(StoreError::MessageTooLarge { size, max });
        }
    }
    if let Some(max) = limits.max_bytes {
        if size > max {
            return Err(StoreError::MessageTooLarge { size, max });
        }
    }
    Ok(())
}

impl<L> Core<L> {
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Raises the last sequence without a message (purged tails, tombstones read on recovery).
    pub fn bump_last_seq(&mut self, seq: u64) {
        self.last_seq = self.last_seq.max(seq);
    }

    /// Records a message; returns its subject's shared name.
    pub fn insert(&mut self, seq: u64, subject: &str, ts: i64, size: u64, data: L) -> &Arc<str> {
        if self
            .msgs
            .last()
            .is_some_and(|(last, e)| last > seq || e.ts > ts)
        {
            self.ts_ordered = false;
        }
        let subject: Arc<str> = match self.subjects.get_mut(subject) {
            Some((name, set)) => {
                set.insert(seq);
                name.clone()
            }
            None => {
                let name: Arc<str> = Arc::from(subject);
                self.subjects
                    .insert(name.clone(), (name.clone(), SeqSet::from_seq(seq)));
                name
            }
        };
        self.bytes += size;
        self.last_seq = self.last_seq.max(seq);
        let name = Arc::as_ptr(&subject);
        if let Some(old) = self.msgs.insert(
            seq,
            Entry {
                subject,
                ts,
                size,
                data,
            },
        ) {
            // Only recovery can hand the same sequence twice; keep the accounting right.
            self.bytes -= old.size;
            if !std::ptr::eq(Arc::as_ptr(&old.subject), name) {
                self.unlink_subject(&old.subject, seq);
            }
        }
        match self.msgs.get(seq) {
            Some(e) => &e.subject,
            None => unreachable!("inserted just above"),
        }
    }

    fn unlink_subject(&mut self, subject: &Arc<str>, seq: u64) {
        if let Some((_, set)) = self.subjects.get_mut(subject) {
            set.remove(seq);
            if set.is_empty() {
                self.subjects.remove(subject);
            }
        }
    }

    pub fn remove(&mut self, seq: u64) -> Option<Entry<L>> {
        let e = self.msgs.remove(seq)?;
        self.bytes -= e.size;
        self.unlink_subject(&e.subject, seq);
        if self.msgs.is_empty() {
            self.ts_ordered = true;
        }
        Some(e)
    }

    pub fn get(&self, seq: u64) -> Option<&Entry<L>> {
        self.msgs.get(seq)
    }

    /// Where a message's bytes live, to move them (segment compaction).
    pub fn data_mut(&mut self, seq: u64) -> Option<&mut L> {
        self.msgs.get_mut(seq).map(|e| &mut e.data)
    }

    pub fn first_seq(&self) -> Option<u64> {
        self.msgs.first_seq()
    }

    /// Sequences of messages older than `cutoff`, oldest first.
    fn older_than(&self, cutoff: i64) -> impl Iterator<Item = u64> + '_ {
        let ordered = self.ts_ordered;
        self.msgs
            .iter()
            .take_while(move |(_, e)| !ordered || e.ts < cutoff)
            .filter(move |(_, e)| e.ts < cutoff)
            .map(|(s, _)| s)
    }

    /// First sequence at or after `from` whose subject matches `filter`.
    pub fn next(&self, from: u64, filter: &str) -> Option<u64> {
        if !subject::is_wildcard(filter) {
            return self.subjects.get(filter)?.1.range_from(from).next();
        }
        self.msgs
            .range_from(from)
            .find(|(_, e)| subject::matches(filter, &e.subject))
            .map(|(s, _)| s)
    }

    pub fn last(&self, filter: &str) -> Option<u64> {
        if !subject::is_wildcard(filter) {
            return self.subjects.get(filter)?.1.last_seq();
        }
        self.subjects
            .iter()
            .filter(|(s, _)| subject::matches(filter, s))
            .filter_map(|(_, (_, set))| set.last_seq())
            .max()
    }

    pub fn seq_at_time(&self, ts: i64) -> Option<u64> {
        self.msgs.iter().find(|(_, e)| e.ts >= ts).map(|(s, _)| s)
    }

    /// Sequences to remove so a message of `size` on `subject` at time `now` fits, or the error
    /// discard `new` gives. Nothing is changed.
    pub fn plan_append(
        &self,
        limits: &Limits,
        subject: &str,
        size: u64,
        now: i64,
    ) -> Result<Vec<u64>> {
        let mut victims = BTreeSet::new();
        if let Some(age) = limits.max_age {
            let cutoff = now.saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX));
            victims.extend(self.older_than(cutoff));
        }
        if let Some(max) = limits.max_msgs_per_subject {
            if let Some((_, set)) = self.subjects.get(subject) {
                let aged = set.iter().filter(|s| victims.contains(s)).count();
                let live = (set.len() - aged) as u64;
                let excess = (live + 1).saturating_sub(max.max(1));
                let keep: Vec<u64> = set
                    .iter()
                    .filter(|s| !victims.contains(s))
                    .take(excess as usize)
                    .collect();
                victims.extend(keep);
            }
        }
        let mut msgs = self.msgs.len() as u64 - victims.len() as u64;
        let mut bytes = self.bytes
            - victims
                .iter()
                .filter_map(|s| self.msgs.get(*s))
                .map(|e| e.size)
                .sum::<u64>();
        let over = |msgs: u64, bytes: u64| -> Option<StoreError> {
            if let Some(max) = limits.max_msgs {
                if msgs + 1 > max {
                    return Some(StoreError::MaxMsgs { max });
                }
            }
            if let Some(max) = limits.max_bytes {
                if bytes + size > max {
                    return Some(StoreError::MaxBytes { max });
                }
            }
            None
        };
        if let Some(err) = over(msgs, bytes) {
            if limits.discard == DiscardPolicy::New {
                return Err(err);
            }
            for (seq, e) in self.msgs.iter() {
                if over(msgs, bytes).is_none() {
                    break;
                }
                if victims.insert(seq) {
                    msgs -= 1;
                    bytes -= e.size;
                }
            }
        }
        Ok(victims.into_iter().collect())
    }

    pub fn expired(&self, limits: &Limits, now: i64) -> Vec<u64> {
        let Some(age) = limits.max_age else {
            return Vec::new();
        };
        let cutoff = now.saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX));
        self.older_than(cutoff).collect()
    }

    pub fn plan_purge(&self, req: &PurgeRequest) -> Vec<u64> {
        let filter = req.filter.as_deref().unwrap_or("");
        let mut cands: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, e)| subject::matches(filter, &e.subject))
            .map(|(s, _)| s)
            .collect();
        if let Some(keep) = req.keep {
            let n = cands
                .len()
                .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
            cands.truncate(n);
        }
        if let Some(up_to) = req.up_to_seq {
            cands.retain(|s| *s < up_to);
        }
        cands
    }

    pub fn state(&self) -> StreamState {
        let first = self.msgs.first();
        let last = self.msgs.last();
        let msgs = self.msgs.len() as u64;
        let first_seq = match first {
            Some((s, _)) => s,
            None if self.last_seq == 0 => 0,
            None => self.last_seq + 1,
        };
        StreamState {
            msgs,
            bytes: self.bytes,
            first_seq,
            first_ts: first.map_or(0, |(_, e)| e.ts),
            last_seq: self.last_seq,
            last_ts: last.map_or(0, |(_, e)| e.ts),
            num_deleted: if msgs == 0 {
                0
            } else {
                self.last_seq - first_seq + 1 - msgs
            },
            num_subjects: self.subjects.len() as u64,
        }
    }

    pub fn subject_counts(&self, filter: &str) -> BTreeMap<String, u64> {
        self.subjects
            .iter()
            .filter(|(s, _)| subject::matches(filter, s))
            .map(|(s, (_, set))| (s.to_string(), set.len() as u64))
            .collect()
    }
}
