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
    // Only `max_msg_size`: a message over `max_bytes` on its own is the limits' business
    // (discard new refuses it, discard old stores it and evicts it at once).
    if let Some(max) = limits.max_msg_size {
        if size > max {
            return Err(StoreError::MessageTooLarge { size, max });
        }
    }
    Ok(())
}

/// What an append does besides storing the message.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AppendPlan {
    /// Messages to remove first, oldest first.
    pub victims: Vec<u64>,
    /// Discard old, and the message alone is over `max_bytes` (or `max_msgs` is 0): as in
    /// nats-server it takes its sequence and is evicted at once, so the stream ends empty.
    pub evict_self: bool,
}

/// nats-server's rollup header: such a message passes `discard_new_per_subject`.
const ROLLUP_HEADER: &[u8] = b"Nats-Rollup";

/// Whether the header block has `key` with a non-empty value, matched as nats-server's
/// `sliceHeader` does (the key right after a CRLF, then `:`).
pub(crate) fn has_header(hdr: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = hdr[from..]
        .windows(key.len())
        .position(|w| w == key)
        .map(|i| i + from)
    {
        from = i + 1;
        if i < 2 || &hdr[i - 2..i] != b"\r\n" || hdr.get(i + key.len()) != Some(&b':') {
            continue;
        }
        let value = &hdr[i + key.len() + 1..];
        let value = &value[value.iter().take_while(|b| **b == b' ').count()..];
        let end = value.windows(2).position(|w| w == b"\r\n");
        return end.unwrap_or(value.len()) > 0;
    }
    false
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

    /// What storing a message of `size` on `subject` with `headers` at time `now` removes, or
    /// the error a limit refuses it with. Nothing is changed. Messages past `max_age` count as
    /// gone. As nats-server's `storeRawMsg`: under discard new a subject at
    /// `max_msgs_per_subject` is refused when `discard_new_per_subject` is set (rollups
    /// excepted) and otherwise passes `max_msgs`, and `max_bytes` too when the subject's
    /// oldest message is at least as large, since it will be replaced; under discard old the
    /// message is stored, the subject's oldest go while it is over its limit, then the
    /// stream's oldest (the new one last) while over `max_msgs` or `max_bytes`.
    pub fn plan_append(
        &self,
        limits: &Limits,
        subject: &str,
        headers: &[u8],
        size: u64,
        now: i64,
    ) -> Result<AppendPlan> {
        let mut victims: BTreeSet<u64> = self.expired(limits, now).into_iter().collect();
        // The subject's messages that go to make room, and its oldest one left.
        let mut per_subject = Vec::new();
        let mut subject_first = None;
        if let Some(max) = limits.max_msgs_per_subject {
            if let Some((_, set)) = self.subjects.get(subject) {
                // Aged messages are all at or below the last one: no need to walk the rest.
                let aged = victims.last().map_or(0, |&last| {
                    set.iter()
                        .take_while(|s| *s <= last)
                        .filter(|s| victims.contains(s))
                        .count()
                });
                let n = (set.len() - aged) as u64;
                let excess = (n + 1).saturating_sub(max.max(1));
                let mut live = set.iter().filter(|s| !victims.contains(s));
                subject_first = live.next();
                if excess > 0 {
                    per_subject.extend(subject_first);
                    per_subject
                        .extend(live.take(usize::try_from(excess - 1).unwrap_or(usize::MAX)));
                }
            }
        }
        // At the subject's limit: storing replaces its oldest.
        let at_subject_limit = !per_subject.is_empty();
        let size_of = |seq: &u64| self.msgs.get(*seq).map_or(0, |e| e.size);
        let mut msgs = self.msgs.len() as u64 - victims.len() as u64;
        let mut bytes = self.bytes - victims.iter().map(size_of).sum::<u64>();
        if limits.discard == DiscardPolicy::New {
            if at_subject_limit
                && limits.discard_new_per_subject
                && !has_header(headers, ROLLUP_HEADER)
            {
                return Err(StoreError::MaxMsgsPerSubject {
                    max: limits.max_msgs_per_subject.unwrap_or(0).max(1),
                });
            }
            if let Some(max) = limits.max_msgs {
                if msgs >= max && !at_subject_limit {
                    return Err(StoreError::MaxMsgs { max });
                }
            }
            if let Some(max) = limits.max_bytes {
                if bytes + size > max
                    && (!at_subject_limit || subject_first.as_ref().map_or(0, size_of) < size)
                {
                    return Err(StoreError::MaxBytes { max });
                }
            }
            victims.extend(per_subject);
            return Ok(AppendPlan {
                victims: victims.into_iter().collect(),
                evict_self: false,
            });
        }
        for seq in per_subject {
            if victims.insert(seq) {
                msgs -= 1;
                bytes -= size_of(&seq);
            }
        }
        // Counting the new message.
        let (mut msgs, mut bytes) = (msgs + 1, bytes + size);
        let over = |msgs: u64, bytes: u64| {
            limits.max_msgs.is_some_and(|m| msgs > m) || limits.max_bytes.is_some_and(|m| bytes > m)
        };
        for (seq, e) in self.msgs.iter() {
            if !over(msgs, bytes) {
                break;
            }
            if victims.insert(seq) {
                msgs -= 1;
                bytes -= e.size;
            }
        }
        Ok(AppendPlan {
            victims: victims.into_iter().collect(),
            evict_self: over(msgs, bytes),
        })
    }

    /// What new limits remove at once (a stream update), oldest first, as nats-server's
    /// `UpdateConfig`: under discard old the oldest while over `max_msgs` or `max_bytes`
    /// (discard new leaves them: appends are refused until the stream is under), then each
    /// subject's oldest while over `max_msgs_per_subject` (whatever the discard policy), then
    /// what is past `max_age` as of `now`.
    pub fn plan_limits(&self, limits: &Limits, now: i64) -> Vec<u64> {
        let mut victims = BTreeSet::new();
        let (mut msgs, mut bytes) = (self.msgs.len() as u64, self.bytes);
        if limits.discard == DiscardPolicy::Old {
            for (seq, e) in self.msgs.iter() {
                let over = limits.max_msgs.is_some_and(|m| msgs > m)
                    || limits.max_bytes.is_some_and(|m| bytes > m);
                if !over {
                    break;
                }
                victims.insert(seq);
                msgs -= 1;
                bytes -= e.size;
            }
        }
        if let Some(max) = limits.max_msgs_per_subject {
            let max = usize::try_from(max.max(1)).unwrap_or(usize::MAX);
            let mut per_subject = Vec::new();
            for (_, set) in self.subjects.values().filter(|(_, set)| set.len() > max) {
                let live: Vec<u64> = set.iter().filter(|s| !victims.contains(s)).collect();
                per_subject.extend_from_slice(&live[..live.len().saturating_sub(max)]);
            }
            victims.extend(per_subject);
        }
        victims.extend(self.expired(limits, now));
        victims.into_iter().collect()
    }

    /// Whether `seqs` (ascending) are the oldest messages held, so removing them cuts a prefix
    /// of the stream.
    pub fn is_prefix(&self, seqs: &[u64]) -> bool {
        self.msgs
            .iter()
            .take(seqs.len())
            .map(|(s, _)| s)
            .eq(seqs.iter().copied())
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

    /// The sequences of the messages below `seq`, oldest first: what a
    /// [`crate::Store::compact`] to `seq` removes.
    pub fn below(&self, seq: u64) -> Vec<u64> {
        self.msgs
            .iter()
            .map(|(s, _)| s)
            .take_while(|s| *s < seq)
            .collect()
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

    /// Messages at or after `from` whose subject matches `filter` ("" = all).
    pub fn count_from(&self, from: u64, filter: &str) -> u64 {
        if filter.is_empty() || filter == ">" {
            return self.msgs.range_from(from).count() as u64;
        }
        if !subject::is_wildcard(filter) {
            return self
                .subjects
                .get(filter)
                .map_or(0, |(_, set)| set.range_from(from).count() as u64);
        }
        self.subjects
            .iter()
            .filter(|(s, _)| subject::matches(filter, s))
            .map(|(_, (_, set))| set.range_from(from).count() as u64)
            .sum()
    }

    /// The last sequence of every subject matching `filter` ("" = all), ascending.
    pub fn last_per_subject(&self, filter: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .subjects
            .iter()
            .filter(|(s, _)| filter.is_empty() || subject::matches(filter, s))
            .filter_map(|(_, (_, set))| set.last_seq())
            .collect();
        v.sort_unstable();
        v
    }

    pub fn subject_counts(&self, filter: &str) -> BTreeMap<String, u64> {
        self.subjects
            .iter()
            .filter(|(s, _)| subject::matches(filter, s))
            .map(|(s, (_, set))| (s.to_string(), set.len() as u64))
            .collect()
    }
}
