use std::collections::BTreeMap;

use crate::error::Result;
use crate::types::{ByteAccounting, Limits, MsgRef, NewMsg, PurgeRequest, StoredMsg, StreamState};

/// The stream store API both the file and the memory store implement.
pub trait Store {
    /// Appends messages in order. The outer error is a store-wide failure (I/O); an inner error
    /// rejects one message (limits) and leaves the others unaffected. With a file store and
    /// `SyncPolicy::Always` the whole batch shares one write and one fdatasync (group commit) and
    /// the call returns only after that sync.
    fn append_batch(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<Result<u64>>>;

    fn append(&mut self, subject: &str, headers: &[u8], payload: &[u8], ts: i64) -> Result<u64> {
        let msg = NewMsg {
            subject,
            headers,
            payload,
            timestamp: ts,
        };
        let mut out = self.append_batch(std::slice::from_ref(&msg))?;
        match out.pop() {
            Some(r) => r,
            None => Err(crate::error::StoreError::internal(
                "a one-message batch returned no result",
            )),
        }
    }

    fn load(&self, seq: u64) -> Result<Option<StoredMsg>>;

    /// Lends message `seq` to `f` without copying it out (a consumer delivering it writes it
    /// straight into its outgoing buffer); false when it is not stored.
    fn read_with(&self, seq: u64, f: &mut dyn FnMut(MsgRef<'_>)) -> Result<bool> {
        Ok(match self.load(seq)? {
            Some(m) => {
                f(MsgRef {
                    seq: m.seq,
                    timestamp: m.timestamp,
                    subject: &m.subject,
                    headers: &m.headers,
                    payload: &m.payload,
                });
                true
            }
            None => false,
        })
    }

    /// The first sequence at or after `from_seq` whose subject matches `filter` ("" = all),
    /// without reading the message.
    fn next_seq(&self, from_seq: u64, filter: &str) -> Option<u64> {
        self.load_next(from_seq, filter)
            .ok()
            .flatten()
            .map(|m| m.seq)
    }

    /// Whether sequence `seq` is stored.
    fn contains(&self, seq: u64) -> bool {
        self.load(seq).ok().flatten().is_some()
    }

    /// The newest message whose subject matches `filter` (wildcards allowed).
    fn load_last(&self, filter: &str) -> Result<Option<StoredMsg>>;

    /// The first message at or after `from_seq` whose subject matches `filter` ("" = all).
    fn load_next(&self, from_seq: u64, filter: &str) -> Result<Option<StoredMsg>>;

    /// The first sequence whose timestamp is at or after `ts`; iterate from there with
    /// [`Store::load_next`].
    fn seq_at_time(&self, ts: i64) -> Option<u64>;

    /// Removes one message; `overwrite` also scrubs its bytes where they are stored.
    /// Returns false when the sequence does not exist.
    fn delete(&mut self, seq: u64, overwrite: bool) -> Result<bool>;

    /// Returns how many messages were removed.
    fn purge(&mut self, req: &PurgeRequest) -> Result<u64>;

    /// Removes every message below `seq` and returns how many, as nats-server's `Compact`
    /// (what an unfiltered purge up to a sequence and a stream's configured first sequence
    /// use). When `seq` is past the last sequence the store ends empty with
    /// `first_seq == seq` and `last_seq == seq - 1`, and the next append gets `seq`; at or
    /// below the first sequence it removes nothing. `0` removes everything and keeps the
    /// sequences, as [`Store::purge`] with no conditions. (A store that never held a message
    /// still reports `first_seq` 0 after `compact(1)`: nothing moves.)
    ///
    /// A file store makes it durable before it returns, whatever its sync policy: what was
    /// written before is synced first, then one floor record (after a power cut: the state
    /// before or the state after, never a part) is written and synced, so no sequence below
    /// `seq` is handed out after the call returned. Not to be confused with
    /// [`crate::FileStore::compact_step`], which rewrites sparse segments and changes no state.
    fn compact(&mut self, seq: u64) -> Result<u64>;

    /// Removes messages older than max age as of `now`; returns how many.
    fn expire(&mut self, now: i64) -> Result<u64>;

    /// Replaces the limits, as a stream update does, and applies them at once with the wall
    /// clock as `now` ([`Store::set_limits_at`]).
    fn set_limits(&mut self, limits: Limits) -> Result<()> {
        self.set_limits_at(limits, crate::types::now_nanos())
            .map(|_| ())
    }

    /// Replaces the limits and applies them at once, as nats-server's `UpdateConfig`: under
    /// discard old the oldest messages go while over `max_msgs` or `max_bytes` (discard new
    /// removes nothing for them: appends are refused until the stream is back under), each
    /// subject's oldest go while over `max_msgs_per_subject` (whatever the discard policy), and
    /// messages older than `max_age` as of `now` go. Later appends use the new limits. Returns
    /// how many messages were removed. A file store makes the removals durable as it does
    /// evictions on append (see the README's durability rules).
    fn set_limits_at(&mut self, limits: Limits, now: i64) -> Result<u64>;

    /// The limits in force: those the store was opened or created with, or the last
    /// [`Store::set_limits`].
    fn limits(&self) -> &Limits;

    fn state(&self) -> StreamState;

    /// Message count per subject matching `filter` ("" = all).
    fn subject_counts(&self, filter: &str) -> BTreeMap<String, u64>;

    /// Messages at or after `from` whose subject matches `filter` ("" = all): a consumer's
    /// pending count.
    fn count_from(&self, from: u64, filter: &str) -> u64;

    /// The last sequence of each subject matching `filter` ("" = all), ascending: where a
    /// `last_per_subject` consumer starts.
    fn last_per_subject(&self, filter: &str) -> Vec<u64>;

    /// Every sequence up to this one may be acknowledged: for a file store the highest sequence
    /// covered by a completed fdatasync ([`crate::FileStore::durable_seq`]), for a memory store
    /// the last sequence (it keeps nothing across a restart, so there is nothing to wait for).
    fn durable_seq(&self) -> u64;

    /// How this store counts message bytes (`state().bytes`, `max_bytes`, `max_msg_size`); a
    /// loaded message's size in the same terms is
    /// `msg.size_as(store.byte_accounting())`.
    fn byte_accounting(&self) -> ByteAccounting;
}
