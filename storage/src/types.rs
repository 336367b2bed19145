use std::time::Duration;

/// Bytes of framing around subject, headers and payload in a record; what
/// [`ByteAccounting::Record`] adds to a message's lengths.
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

/// A stored message lent by [`crate::Store::read_with`]: its bytes where the store keeps them
/// (memory, the hot tail, the read-ahead), not copied out.
#[derive(Debug, Clone, Copy)]
pub struct MsgRef<'a> {
    pub seq: u64,
    pub timestamp: i64,
    pub subject: &'a str,
    pub headers: &'a [u8],
    pub payload: &'a [u8],
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
    /// The message's size under [`ByteAccounting::Record`]; a store's own accounting (the one its
    /// `state().bytes` and limits use) is [`StoredMsg::size_as`] with
    /// [`crate::Store::byte_accounting`].
    pub fn size(&self) -> u64 {
        self.size_as(ByteAccounting::Record)
    }

    /// The message's size under `accounting`.
    pub fn size_as(&self, accounting: ByteAccounting) -> u64 {
        accounting.msg_size(&self.subject, &self.headers, &self.payload)
    }
}

/// The size of a message under [`ByteAccounting::Record`]: the length of its record on disk.
pub fn msg_size(subject: &str, headers: &[u8], payload: &[u8]) -> u64 {
    ByteAccounting::Record.msg_size(subject, headers, payload)
}

/// How a store counts a message's bytes: in [`StreamState::bytes`], against
/// [`Limits::max_bytes`] and [`Limits::max_msg_size`]. Only the count changes; records on disk
/// are framed the same way whatever the choice, so a store can be reopened under another one
/// (the count is rebuilt from the records' lengths on open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ByteAccounting {
    /// This crate's record length: [`RECORD_OVERHEAD`] + subject + headers + payload.
    #[default]
    Record,
    /// nats-server's file store (`fileStoreMsgSizeRaw`): 22 + subject + payload + 8 without
    /// headers, 22 + subject + 4 + headers + payload + 8 with a non-empty header block.
    NatsFile,
    /// nats-server's memory store (`memStoreMsgSizeRaw`): subject + headers + payload + 16.
    NatsMemory,
}

impl ByteAccounting {
    /// The size of a message with these lengths.
    pub const fn size_of(self, subject_len: u64, headers_len: u64, payload_len: u64) -> u64 {
        let body = subject_len + headers_len + payload_len;
        match self {
            ByteAccounting::Record => RECORD_OVERHEAD + body,
            ByteAccounting::NatsFile if headers_len == 0 => 22 + body + 8,
            ByteAccounting::NatsFile => 22 + 4 + body + 8,
            ByteAccounting::NatsMemory => body + 16,
        }
    }

    pub fn msg_size(self, subject: &str, headers: &[u8], payload: &[u8]) -> u64 {
        self.size_of(
            subject.len() as u64,
            headers.len() as u64,
            payload.len() as u64,
        )
    }

    /// The size of the message whose record is `record_len` bytes long (this crate's framing,
    /// so at least [`RECORD_OVERHEAD`]) and has a non-empty header block or not: what recovery
    /// and indexes know without reading the record.
    pub(crate) const fn of_record(self, record_len: u64, has_headers: bool) -> u64 {
        let body = record_len.saturating_sub(RECORD_OVERHEAD);
        match self {
            ByteAccounting::Record => RECORD_OVERHEAD + body,
            ByteAccounting::NatsFile if has_headers => 22 + 4 + body + 8,
            ByteAccounting::NatsFile => 22 + body + 8,
            ByteAccounting::NatsMemory => body + 16,
        }
    }

    /// Whether a size depends on the header block's length beyond the record's length, so
    /// recovery needs indexes that carry it.
    pub(crate) const fn needs_header_len(self) -> bool {
        matches!(self, ByteAccounting::NatsFile)
    }
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
    /// A subject at its limit loses its oldest message to a new one, whatever `discard` says
    /// (as nats-server does), unless `discard_new_per_subject` refuses the new one. `Some(0)`
    /// counts as 1.
    pub max_msgs_per_subject: Option<u64>,
    /// A message counting for more is refused with [`crate::StoreError::MessageTooLarge`].
    pub max_msg_size: Option<u64>,
    /// What `max_msgs` and `max_bytes` do when a message would go over them: discard `Old`
    /// removes the oldest messages (the new one too when it alone is over `max_bytes`), `New`
    /// refuses it ([`crate::StoreError::MaxMsgs`], [`crate::StoreError::MaxBytes`]).
    pub discard: DiscardPolicy,
    /// nats-server's `discard_new_per_subject`: with discard `New` and `max_msgs_per_subject`
    /// set, a message for a subject already at its limit is refused
    /// ([`crate::StoreError::MaxMsgsPerSubject`]) instead of evicting that subject's oldest;
    /// a message with a non-empty `Nats-Rollup` header is let through, as nats-server does.
    /// Ignored under discard `Old`.
    pub discard_new_per_subject: bool,
}

/// Nanoseconds since the Unix epoch by the wall clock: the `now` of [`crate::Store::set_limits`].
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ByteAccounting; 3] = [
        ByteAccounting::Record,
        ByteAccounting::NatsFile,
        ByteAccounting::NatsMemory,
    ];

    /// The figures of nats-server's `fileStoreMsgSizeRaw` and `memStoreMsgSizeRaw`.
    #[test]
    fn byte_accounting_matches_nats_server_formulas() {
        let a = ByteAccounting::NatsFile;
        assert_eq!(a.msg_size("0123456789", b"", b"hello"), 45);
        assert_eq!(a.msg_size("0123456789", &[b'h'; 12], b"hello"), 61);
        assert_eq!(a.size_of(1, 0, 0), 31);
        let m = ByteAccounting::NatsMemory;
        assert_eq!(m.msg_size("0123456789", b"", b"hello"), 31);
        assert_eq!(m.msg_size("0123456789", &[b'h'; 12], b"hello"), 43);
        let r = ByteAccounting::Record;
        assert_eq!(r.msg_size("0123456789", &[b'h'; 12], b"hello"), 30 + 27);
        assert_eq!(ByteAccounting::default(), ByteAccounting::Record);
        let msg = StoredMsg {
            seq: 1,
            timestamp: 0,
            subject: "0123456789".into(),
            headers: vec![1; 12],
            payload: b"hello".to_vec(),
        };
        assert_eq!(msg.size(), 57);
        assert_eq!(msg.size_as(a), 61);
        assert_eq!(msg.size_as(m), 43);
    }

    /// What recovery computes from a record's length equals the size from the message's parts.
    #[test]
    fn size_from_record_length_equals_size_from_parts() {
        for acct in ALL {
            for s in [1u64, 7, 300] {
                for h in [0u64, 1, 12, 4000] {
                    for p in [0u64, 5, 70_000] {
                        let rec = ByteAccounting::Record.size_of(s, h, p);
                        assert_eq!(acct.of_record(rec, h > 0), acct.size_of(s, h, p));
                    }
                }
            }
        }
    }
}
