//! `Store::compact(seq)`, nats-server's `Compact`: everything below `seq` goes, and past the
//! last sequence the stream moves its sequences forward (a configured first sequence, a purge
//! up to a sequence past the end). For both stores, and for the file store across reopens and
//! power cuts at every I/O operation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::file::{FileStore, FileStoreConfig};
use crate::io::Io;
use crate::memory::MemoryStore;
use crate::sim_io::SimIo;
use crate::store::Store;
use crate::types::{ByteAccounting, Limits, NewMsg, StoredMsg, StreamState, SyncPolicy};

/// Small segments, so a compaction spans sealed segments and the open one.
fn file_cfg() -> FileStoreConfig {
    FileStoreConfig {
        accounting: ByteAccounting::NatsFile,
        segment_bytes: 300,
        ..Default::default()
    }
}

fn open(io: &SimIo, c: FileStoreConfig) -> FileStore {
    FileStore::open(Arc::new(io.clone()), "/s", c).unwrap()
}

fn body(seq: u64) -> Vec<u8> {
    (0..20 + seq % 7)
        .map(|i| seq.wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

/// Every message held, oldest first.
fn all(s: &dyn Store) -> Vec<StoredMsg> {
    let mut out = Vec::new();
    let mut at = s.load_next(0, "").unwrap();
    while let Some(m) = at {
        at = s.load_next(m.seq + 1, "").unwrap();
        out.push(m);
    }
    out
}

fn seqs(s: &dyn Store) -> Vec<u64> {
    all(s).iter().map(|m| m.seq).collect()
}

fn firsts(st: &StreamState) -> (u64, u64, u64) {
    (st.msgs, st.first_seq, st.last_seq)
}

/// The whole contract on both stores; the file store is reopened after every step and must
/// come back with the same state.
#[test]
fn compact_removes_below_and_moves_the_sequences_forward() {
    for kind in 0..2 {
        let io = SimIo::new();
        let mut s: Box<dyn Store> = match kind {
            0 => Box::new(open(&io, file_cfg())),
            _ => Box::new(MemoryStore::with_accounting(
                Limits::default(),
                ByteAccounting::NatsMemory,
            )),
        };
        let reopen = |s: Box<dyn Store>| -> Box<dyn Store> {
            if kind != 0 {
                return s;
            }
            let (st, msgs) = (s.state(), all(s.as_ref()));
            drop(s);
            let s = open(&io, file_cfg());
            assert_eq!(s.state(), st, "state after reopen");
            assert_eq!(all(&s), msgs);
            Box::new(s)
        };
        // A store that never held a message: 1 moves nothing, past it the first sequence.
        assert_eq!(s.compact(1).unwrap(), 0);
        assert_eq!(firsts(&s.state()), (0, 0, 0));
        assert_eq!(s.compact(100).unwrap(), 0, "kind {kind}");
        assert_eq!(firsts(&s.state()), (0, 100, 99));
        let mut s = reopen(s);
        assert_eq!(firsts(&s.state()), (0, 100, 99));
        for seq in 100..=110 {
            assert_eq!(s.append("a.b", b"", &body(seq), 0).unwrap(), seq);
        }
        assert!(s.delete(103, false).unwrap());
        // At or below the first sequence: nothing.
        assert_eq!(s.compact(100).unwrap(), 0);
        assert_eq!(s.compact(7).unwrap(), 0);
        assert_eq!(firsts(&s.state()), (10, 100, 110));
        // In range: the first sequence is the first message left.
        assert_eq!(s.compact(103).unwrap(), 3);
        let st = s.state();
        assert_eq!((firsts(&st), st.num_deleted), ((7, 104, 110), 0));
        assert_eq!(seqs(s.as_ref()), (104..=110).collect::<Vec<_>>());
        let mut s = reopen(s);
        // One past the last: everything, the sequences stay.
        assert_eq!(s.compact(111).unwrap(), 7);
        assert_eq!(firsts(&s.state()), (0, 111, 110));
        assert_eq!(s.subject_counts(""), BTreeMap::new());
        assert_eq!(s.append("a.c", b"", &body(111), 0).unwrap(), 111);
        // 0 is a purge of everything.
        assert_eq!(s.compact(0).unwrap(), 1);
        assert_eq!(firsts(&s.state()), (0, 112, 111));
        let mut s = reopen(s);
        // Far past the end.
        for seq in 112..=115 {
            assert_eq!(s.append("a.d", b"", &body(seq), 0).unwrap(), seq);
        }
        assert_eq!(s.compact(500).unwrap(), 4);
        let st = s.state();
        assert_eq!(
            (firsts(&st), st.bytes, st.num_subjects, st.num_deleted),
            ((0, 500, 499), 0, 0, 0)
        );
        assert_eq!(s.load_last("").unwrap(), None);
        assert_eq!(s.load(115).unwrap(), None);
        let mut s = reopen(s);
        assert_eq!(s.append("a.e", b"", &body(500), 0).unwrap(), 500);
        assert_eq!(firsts(&s.state()), (1, 500, 500));
        let s = reopen(s);
        assert_eq!(s.load(500).unwrap().unwrap().payload, body(500));
        assert_eq!(s.durable_seq(), 500);
    }
}

/// Messages across sealed segments, then a compaction past the end: every sealed segment's
/// files go, the open one stays to write on, and a reopen hands out the new sequence.
#[test]
fn compact_past_the_end_drops_sealed_segments() {
    let io = SimIo::new();
    let mut s = open(&io, file_cfg());
    for seq in 1..=40 {
        s.append("x", b"", &body(seq), 0).unwrap();
    }
    let segs = |io: &SimIo| {
        io.list(std::path::Path::new("/s"))
            .unwrap()
            .into_iter()
            .filter(|n| n.ends_with(".seg"))
            .count()
    };
    assert!(segs(&io) > 3);
    assert_eq!(s.compact(1_000).unwrap(), 40);
    assert_eq!(segs(&io), 1);
    assert_eq!(s.durable_seq(), 999);
    drop(s);
    let mut s = open(&io, file_cfg());
    assert_eq!(firsts(&s.state()), (0, 1_000, 999));
    assert_eq!(s.append("x", b"", &body(1_000), 0).unwrap(), 1_000);
    // Writing on rolls new segments as usual, named after their next sequence.
    for seq in 1_001..=1_040 {
        assert_eq!(s.append("x", b"", &body(seq), 0).unwrap(), seq);
    }
    drop(s);
    let s = open(&io, file_cfg());
    assert_eq!(seqs(&s), (1_000..=1_040).collect::<Vec<_>>());
    for m in all(&s) {
        assert_eq!(m.payload, body(m.seq));
    }
}

/// A power cut at every I/O operation of `compact` (and right after it returns), each with
/// random tears, in range and past the end: the reopened store is exactly the state before
/// (its messages and its last sequence) or the state after, never a mix (e.g. the old messages
/// with the raised last sequence). Once the call returned it is the state after. No sequence is
/// handed out twice, and what survives is byte for byte what was written.
#[test]
fn power_failure_during_compact_leaves_the_state_before_or_after() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(47);
    let (mut before, mut after) = (0, 0);
    // How far past (or before) the last sequence the compaction goes.
    for past in [-8i64, 1, 60] {
        for fail_at in 0..12u64 {
            for _ in 0..6 {
                let io = SimIo::new();
                let mut s = open(&io, file_cfg());
                let n = rng.gen_range(12..40u64);
                for seq in 1..=n {
                    s.append(["a", "b", "c"][(seq % 3) as usize], b"", &body(seq), 0)
                        .unwrap();
                }
                let target = (n as i64 + past) as u64;
                let pre: Vec<u64> = (1..=n).collect();
                let (post, post_last) = if target > n {
                    (Vec::new(), target - 1)
                } else {
                    ((target..=n).collect(), n)
                };
                io.fail_after(fail_at);
                let r = s.compact(target);
                if let Ok(k) = r {
                    assert_eq!(k, (pre.len() - post.len()) as u64);
                }
                io.crash(|k| rng.gen_range(0..k));
                drop(s);
                let mut s = open(&io, file_cfg());
                let got = (seqs(&s), s.state().last_seq);
                for m in all(&s) {
                    assert_eq!(m.payload, body(m.seq), "seq {} changed", m.seq);
                }
                if r.is_ok() {
                    assert_eq!(got, (post.clone(), post_last), "returned, then lost");
                }
                if got == (pre.clone(), n) {
                    before += 1;
                } else if got == (post.clone(), post_last) {
                    after += 1;
                    let st = s.state();
                    let first = if post.is_empty() { target } else { post[0] };
                    assert_eq!(st.first_seq, first);
                } else {
                    panic!("past {past} fail at {fail_at}: neither before nor after: {got:?}");
                }
                let next = s.append("z", b"", b"x", 0).unwrap();
                assert_eq!(next, got.1 + 1, "sequence {next} handed out again");
            }
        }
    }
    assert!(before > 20 && after > 20, "before {before}, after {after}");
}

/// Pipelined appends (written, not yet durable), then a compaction: it makes them durable
/// before it removes anything, so a cut right after it returns reopens exactly the state after
/// (the appends it kept included), and a cut during it never shows a removal without the
/// appends written before it.
#[test]
fn power_failure_after_pipelined_appends_and_compact() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(53);
    for round in 0..150 {
        let io = SimIo::new();
        let mut s = open(&io, file_cfg());
        let mut written = BTreeMap::new();
        // The first batch is waited for: sequence 1 is durable, so its absence after a cut is
        // the compaction's floor on disk, not a lost append.
        for batch in 0..rng.gen_range(2..7) {
            let k = rng.gen_range(1..8);
            let first = s.state().last_seq + 1;
            let bodies: Vec<Vec<u8>> = (first..first + k).map(body).collect();
            let msgs: Vec<NewMsg> = bodies
                .iter()
                .map(|b| NewMsg {
                    subject: "p",
                    headers: b"",
                    payload: b,
                    timestamp: 0,
                })
                .collect();
            for r in s.append_batch_pipelined(&msgs).unwrap() {
                let seq = r.unwrap();
                written.insert(seq, body(seq));
            }
            if batch == 0 {
                s.wait_durable(s.state().last_seq).unwrap();
            }
        }
        let durable_before = s.durable_seq();
        let last = s.state().last_seq;
        let target = rng.gen_range(2..last + 20);
        let post: Vec<u64> = (target..=last).collect();
        let post_last = last.max(target - 1);
        if rng.gen_bool(0.5) {
            io.fail_after(rng.gen_range(0..8));
        }
        let done = s.compact(target).is_ok();
        let durable = s.durable_seq();
        io.crash(|k| rng.gen_range(0..k));
        drop(s);
        let s = open(&io, file_cfg());
        let got = seqs(&s);
        for m in all(&s) {
            assert_eq!(Some(&m.payload), written.get(&m.seq), "round {round}");
        }
        if done {
            assert_eq!(durable, post_last, "round {round}: returned before durable");
            assert_eq!(got, post, "round {round}");
            assert_eq!(s.state().last_seq, post_last, "round {round}");
        } else {
            // Durable and not removed: still there.
            for seq in post.iter().filter(|s| **s <= durable_before) {
                assert!(got.contains(seq), "round {round}: lost {seq}");
            }
            // A removal on disk means everything written before it is on disk too.
            if !got.contains(&1) {
                assert_eq!(got, post, "round {round}: removed, yet appends lost");
                assert_eq!(s.state().last_seq, post_last, "round {round}");
            }
        }
        assert!(s.state().last_seq >= durable.max(durable_before));
    }
}

/// Under the interval policy too the call is durable when it returns: the appends before it
/// and the new first sequence survive a power cut right after it.
#[test]
fn compact_is_durable_under_the_interval_policy() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(59);
    for round in 0..40 {
        let io = SimIo::new();
        let c = FileStoreConfig {
            sync: SyncPolicy::Interval(Duration::from_secs(3600)),
            ..file_cfg()
        };
        let mut s = open(&io, c.clone());
        let n = rng.gen_range(1..30u64);
        for seq in 1..=n {
            s.append("i", b"", &body(seq), 0).unwrap();
        }
        let target = rng.gen_range(2..n + 30);
        s.compact(target).unwrap();
        let want = (s.state(), all(&s));
        io.crash(|k| rng.gen_range(0..k));
        drop(s);
        let s = open(&io, c);
        assert_eq!((s.state(), all(&s)), want, "round {round}");
    }
}
