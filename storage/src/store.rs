use std::collections::BTreeMap;

use crate::error::Result;
use crate::types::{NewMsg, PurgeRequest, StoredMsg, StreamState};

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

    /// Removes messages older than max age as of `now`; returns how many.
    fn expire(&mut self, now: i64) -> Result<u64>;

    fn state(&self) -> StreamState;

    /// Message count per subject matching `filter` ("" = all).
    fn subject_counts(&self, filter: &str) -> BTreeMap<String, u64>;
}
