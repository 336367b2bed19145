use std::time::Duration;

/// Bytes of framing around subject, headers and payload in a record; also counted by limits so
/// both stores agree on a message's size.
pub const RECORD_OVERHEAD: u64 = 4 + 4 + 8 + 8 + 2 + 4;

/// A message handed to the store.
#[derive(Debug, Clone, Copy)]
pub struct NewMsg<'a> {
    pub subject: &'a str,
    pub headers: &'a [u8],
    pub payload: &'a [u8],
    /// Nanoseconds since the Unix epoch; also the "now" that max age is measured against.
    pub timestamp: i64,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMsg {
    pub seq: u64,
    pub timestamp: i64,
    pub subject: String,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

impl StoredMsg {
    pub fn size(&self) -> u64 {
        msg_size(&self.subject, &self.headers, &self.payload)
    }
}

pub fn msg_size(subject: &str, headers: &[u8], payload: &[u8]) -> u64 {
    RECORD_OVERHEAD + subject.len() as u64 + headers.len() as u64 + payload.len() as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiscardPolicy {
    /// Remove the oldest messages to make room (nats-server's default).
    #[default]
    Old,
    /// Refuse the new message.
    New,
}

/// Retention limits; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_msgs: Option<u64>,
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    /// Always discards the subject's oldest message, as nats-server does by default.
    pub max_msgs_per_subject: Option<u64>,
    pub max_msg_size: Option<u64>,
    pub discard: DiscardPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// An append returns only after an fdatasync covers it.
    #[default]
    Always,
    /// Appends return at once; data is synced when this much time has passed since the last sync
    /// (checked on each append and by [`crate::FileStore::sync`]).
    Interval(Duration),
}

/// What a purge removes. All set conditions must hold for a message to be removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeRequest {
    /// Only subjects matching this filter (wildcards allowed).
    pub filter: Option<String>,
    /// Only messages with a sequence below this one.
    pub up_to_seq: Option<u64>,
    /// Keep this many of the newest matching messages.
    pub keep: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamState {
    pub msgs: u64,
    pub bytes: u64,
    /// 0 for a stream that never held a message; `last_seq + 1` when emptied.
    pub first_seq: u64,
    pub first_ts: i64,
    pub last_seq: u64,
    pub last_ts: i64,
    /// Sequences between first and last that are gone.
    pub num_deleted: u64,
    pub num_subjects: u64,
}
