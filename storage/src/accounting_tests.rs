//! Byte accounting: `max_bytes` cuts where nats-server cuts, and a file store's count survives
//! reopening under any accounting and from indexes written before header lengths were kept.

use std::path::Path;
use std::sync::Arc;

use crate::error::StoreError;
use crate::file::{FileStore, FileStoreConfig, SegIndex};
use crate::memory::MemoryStore;
use crate::sim_io::SimIo;
use crate::store::Store;
use crate::types::{ByteAccounting, DiscardPolicy, Limits};

/// A 10-byte subject and a 5-byte payload: 45 bytes in nats-server's file store, 31 in its
/// memory store; with a 12-byte header block 61 and 43.
const SUBJECT: &str = "0123456789";
const PAYLOAD: &[u8] = b"hello";
const HEADERS: &[u8] = b"NATS/1.0\r\n\r\n";

fn limits(max_bytes: u64, discard: DiscardPolicy) -> Limits {
    Limits {
        max_bytes: Some(max_bytes),
        discard,
        ..Default::default()
    }
}

fn file_store(io: &SimIo, lim: Limits, acct: ByteAccounting) -> FileStore {
    let c = FileStoreConfig {
        limits: lim,
        accounting: acct,
        ..Default::default()
    };
    FileStore::open(Arc::new(io.clone()), "/s", c).unwrap()
}

/// The file store under nats-server's file store accounting (0) and the memory store under
/// its memory store accounting (1).
fn store(kind: usize, lim: Limits) -> Box<dyn Store> {
    match kind {
        0 => Box::new(file_store(&SimIo::new(), lim, ByteAccounting::NatsFile)),
        _ => Box::new(MemoryStore::with_accounting(
            lim,
            ByteAccounting::NatsMemory,
        )),
    }
}

/// The test message's size without and with headers in `store(kind, ..)`.
fn sizes(kind: usize) -> (u64, u64) {
    if kind == 0 {
        (45, 61)
    } else {
        (31, 43)
    }
}

#[test]
fn nats_sizes_of_the_test_message() {
    assert_eq!(HEADERS.len(), 12);
    let f = ByteAccounting::NatsFile;
    assert_eq!(f.msg_size(SUBJECT, b"", PAYLOAD), 45);
    assert_eq!(f.msg_size(SUBJECT, HEADERS, PAYLOAD), 61);
    let m = ByteAccounting::NatsMemory;
    assert_eq!(m.msg_size(SUBJECT, b"", PAYLOAD), 31);
    assert_eq!(m.msg_size(SUBJECT, HEADERS, PAYLOAD), 43);
}

/// nats-server, discard new: a message is refused when `bytes + size > max_bytes`, so the
/// stream may fill up to `max_bytes` exactly and not one byte past it.
#[test]
fn max_bytes_discard_new_rejects_at_the_nats_boundary() {
    for kind in 0..2 {
        for hdrs in [&b""[..], HEADERS] {
            let size = if hdrs.is_empty() {
                sizes(kind).0
            } else {
                sizes(kind).1
            };
            // Exactly three fit.
            let mut s = store(kind, limits(3 * size, DiscardPolicy::New));
            for seq in 1..=3 {
                assert_eq!(s.append(SUBJECT, hdrs, PAYLOAD, 0).unwrap(), seq);
            }
            assert_eq!(s.state().bytes, 3 * size);
            assert!(matches!(
                s.append(SUBJECT, hdrs, PAYLOAD, 0),
                Err(StoreError::MaxBytes { .. })
            ));
            let st = s.state();
            assert_eq!((st.msgs, st.bytes, st.last_seq), (3, 3 * size, 3));
            // One byte less and the third is refused.
            let mut s = store(kind, limits(3 * size - 1, DiscardPolicy::New));
            for seq in 1..=2 {
                assert_eq!(s.append(SUBJECT, hdrs, PAYLOAD, 0).unwrap(), seq);
            }
            assert!(matches!(
                s.append(SUBJECT, hdrs, PAYLOAD, 0),
                Err(StoreError::MaxBytes { .. })
            ));
            assert_eq!(s.state().bytes, 2 * size);
        }
    }
}

/// nats-server, discard old: after storing, the oldest messages go while `bytes > max_bytes`,
/// so a stream of exactly `max_bytes` keeps everything.
#[test]
fn max_bytes_discard_old_evicts_at_the_nats_boundary() {
    for kind in 0..2 {
        let (plain, with_hdrs) = sizes(kind);
        // One without headers and one with: exactly at the limit, both stay.
        let max = plain + with_hdrs;
        let mut s = store(kind, limits(max, DiscardPolicy::Old));
        s.append(SUBJECT, b"", PAYLOAD, 0).unwrap();
        s.append(SUBJECT, HEADERS, PAYLOAD, 0).unwrap();
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.bytes), (2, 1, max));
        // The next one (without headers) pushes the first out: 2 messages, `max` bytes again.
        s.append(SUBJECT, b"", PAYLOAD, 0).unwrap();
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.bytes), (2, 2, max));
        // One with headers: the oldest (with headers) goes, the pair is `max` again.
        s.append(SUBJECT, HEADERS, PAYLOAD, 0).unwrap();
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.bytes), (2, 3, max));

        // One byte less: the pair no longer fits, the older one goes.
        let mut s = store(kind, limits(max - 1, DiscardPolicy::Old));
        s.append(SUBJECT, b"", PAYLOAD, 0).unwrap();
        s.append(SUBJECT, HEADERS, PAYLOAD, 0).unwrap();
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.bytes), (1, 2, with_hdrs));

        // Only messages with headers: two fit in exactly twice their size, a third evicts one.
        let mut s = store(kind, limits(2 * with_hdrs, DiscardPolicy::Old));
        for _ in 0..3 {
            s.append(SUBJECT, HEADERS, PAYLOAD, 0).unwrap();
        }
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.bytes), (2, 2, 2 * with_hdrs));
    }
}

/// The header block is what tells the nats file accounting from this crate's record length:
/// a limit of two nats-sized messages with headers holds three by record length.
#[test]
fn record_accounting_cuts_elsewhere_with_headers() {
    assert_eq!(
        ByteAccounting::Record.msg_size(SUBJECT, HEADERS, PAYLOAD),
        57
    );
    let io = SimIo::new();
    let mut s = file_store(
        &io,
        limits(2 * 61 + 49, DiscardPolicy::New),
        ByteAccounting::Record,
    );
    for _ in 0..3 {
        s.append(SUBJECT, HEADERS, PAYLOAD, 0).unwrap();
    }
    assert_eq!(s.state().bytes, 3 * 57);
    let io = SimIo::new();
    let mut s = file_store(
        &io,
        limits(2 * 61 + 49, DiscardPolicy::New),
        ByteAccounting::NatsFile,
    );
    for _ in 0..2 {
        s.append(SUBJECT, HEADERS, PAYLOAD, 0).unwrap();
    }
    assert!(matches!(
        s.append(SUBJECT, HEADERS, PAYLOAD, 0),
        Err(StoreError::MaxBytes { .. })
    ));
}

/// Messages with and without headers on several sealed segments and the open one, a few deleted.
fn fill(s: &mut FileStore) -> u64 {
    for i in 0..200u64 {
        let hdrs = vec![b'h'; (i % 3) as usize * 7];
        let payload = vec![b'p'; (i % 50) as usize];
        s.append(&format!("sub.{}", i % 4), &hdrs, &payload, i as i64)
            .unwrap();
    }
    for seq in [3, 50, 51, 120, 199] {
        assert!(s.delete(seq, seq % 2 == 0).unwrap());
    }
    s.state().last_seq
}

fn live_sum(s: &dyn Store, acct: ByteAccounting) -> u64 {
    let mut sum = 0;
    let mut at = s.load_next(0, "").unwrap();
    while let Some(m) = at {
        sum += m.size_as(acct);
        at = s.load_next(m.seq + 1, "").unwrap();
    }
    sum
}

fn open_as(io: &SimIo, acct: ByteAccounting) -> FileStore {
    let c = FileStoreConfig {
        segment_bytes: 1000,
        accounting: acct,
        ..Default::default()
    };
    FileStore::open(Arc::new(io.clone()), "/s", c).unwrap()
}

const ALL: [ByteAccounting; 3] = [
    ByteAccounting::Record,
    ByteAccounting::NatsFile,
    ByteAccounting::NatsMemory,
];

/// A store written under one accounting and reopened under another counts by the new one,
/// from sealed indexes and the rescanned open segment alike.
#[test]
fn reopen_under_another_accounting_recounts_bytes() {
    for written in ALL {
        let io = SimIo::new();
        {
            let mut s = open_as(&io, written);
            fill(&mut s);
            assert_eq!(s.state().bytes, live_sum(&s, written));
        }
        for acct in ALL {
            let s = open_as(&io, acct);
            assert!(s.recovery_report().rebuilt_indexes.is_empty());
            assert_eq!(s.state().msgs, 195);
            assert_eq!(s.byte_accounting(), acct);
            assert_eq!(
                s.state().bytes,
                live_sum(&s, acct),
                "{written:?} → {acct:?}"
            );
        }
    }
}

/// Indexes written before header lengths were kept (`TXIDX002`) still open: as they are where
/// the accounting does not need header lengths, rebuilt once from their segment where it does
/// (nats file accounting). Either way the count is right.
#[test]
fn version_2_indexes_open_under_every_accounting() {
    let io = SimIo::new();
    {
        let mut s = open_as(&io, ByteAccounting::NatsFile);
        fill(&mut s);
    }
    let idxs: Vec<_> = io
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    assert!(idxs.len() > 3, "sealed segments expected: {idxs:?}");
    let downgrade = |p: &Path| {
        io.with_file(p, |d| {
            let idx = SegIndex::decode(d).unwrap();
            *d = idx.encode_v2();
        })
        .unwrap();
    };
    idxs.iter().for_each(|p| downgrade(p));
    for acct in [ByteAccounting::Record, ByteAccounting::NatsMemory] {
        let s = open_as(&io, acct);
        assert!(s.recovery_report().rebuilt_indexes.is_empty(), "{acct:?}");
        assert_eq!(s.state().msgs, 195);
        assert_eq!(s.state().bytes, live_sum(&s, acct), "{acct:?}");
    }
    let s = open_as(&io, ByteAccounting::NatsFile);
    assert_eq!(s.recovery_report().rebuilt_indexes.len(), idxs.len());
    assert_eq!(s.state().msgs, 195);
    assert_eq!(s.state().bytes, live_sum(&s, ByteAccounting::NatsFile));
    drop(s);
    // Rebuilt in the current version: the next open reads them as they are.
    let s = open_as(&io, ByteAccounting::NatsFile);
    assert!(s.recovery_report().rebuilt_indexes.is_empty());
    assert_eq!(s.state().bytes, live_sum(&s, ByteAccounting::NatsFile));
}

/// The `Store` trait's durability and accounting answers for both stores.
#[test]
fn store_trait_durable_seq_and_accounting() {
    let mut m = MemoryStore::new(Limits::default());
    assert_eq!(m.byte_accounting(), ByteAccounting::Record);
    m.append("a", b"", b"x", 0).unwrap();
    m.append("a", b"", b"x", 0).unwrap();
    assert_eq!(Store::durable_seq(&m), 2);
    let io = SimIo::new();
    let mut f = file_store(&io, Limits::default(), ByteAccounting::NatsFile);
    assert_eq!(f.byte_accounting(), ByteAccounting::NatsFile);
    f.append("a", b"", b"x", 0).unwrap();
    let s: &dyn Store = &f;
    assert_eq!(s.durable_seq(), 1);
    assert_eq!(s.durable_seq(), f.durable_seq());
    let c = FileStoreConfig::default().with_accounting(ByteAccounting::NatsFile);
    assert_eq!(c.accounting, ByteAccounting::NatsFile);
}
