use super::*;
use crate::sim_io::SimIo;
use crate::types::DiscardPolicy;
use rand::{Rng, SeedableRng};

fn cfg(segment_bytes: u64) -> FileStoreConfig {
    FileStoreConfig {
        segment_bytes,
        ..Default::default()
    }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64)) as u8)
        .collect()
}

/// Messages with these payloads on `subject`, no headers, timestamp 0.
fn on_subject<'a>(subject: &'a str, bodies: &'a [Vec<u8>]) -> Vec<NewMsg<'a>> {
    bodies
        .iter()
        .map(|b| NewMsg {
            subject,
            headers: b"",
            payload: b,
            timestamp: 0,
        })
        .collect()
}

fn sim_open(io: &SimIo, c: FileStoreConfig) -> FileStore {
    FileStore::open(Arc::new(io.clone()), "/s", c).unwrap()
}

#[test]
fn round_trip_restart_roll_and_index() {
    round_trip_with(IoKind::Buffered);
}

/// The same cycle with `O_DIRECT` on this machine's disk.
#[test]
fn round_trip_with_direct_io() {
    let dir = tempfile::tempdir().unwrap();
    if !crate::direct_io::direct_supported(dir.path()) {
        return;
    }
    round_trip_with(IoKind::Direct);
    // Interval policy: appends sit in the in-memory tail and are still readable; a clean close
    // writes them, and the reopened store has them without any repair.
    let c = FileStoreConfig {
        sync: SyncPolicy::Interval(std::time::Duration::from_secs(3600)),
        io: IoKind::Direct,
        ..cfg(1 << 20)
    };
    {
        let mut s = FileStore::open_fs(dir.path(), c.clone()).unwrap();
        for i in 1..=500u64 {
            s.append("i", b"", &payload(i, 333), 0).unwrap();
            assert_eq!(s.load(i).unwrap().unwrap().payload, payload(i, 333));
        }
    }
    let mut s = FileStore::open_fs(dir.path(), c).unwrap();
    assert_eq!(s.recovery_report(), &RecoveryReport::default());
    assert_eq!(s.state().msgs, 500);
    assert_eq!(s.load(250).unwrap().unwrap().payload, payload(250, 333));
    assert_eq!(s.append("i", b"", b"x", 0).unwrap(), 501);
}

fn round_trip_with(kind: IoKind) {
    let dir = tempfile::tempdir().unwrap();
    let io = kind.io();
    {
        let mut s = FileStore::open(io.clone(), dir.path(), cfg(1000)).unwrap();
        for i in 1..=100u64 {
            let subj = format!("sub.{}", i % 3);
            assert_eq!(s.append(&subj, b"h", &payload(i, 50), i as i64).unwrap(), i);
        }
        assert!(s.delete(10, false).unwrap());
        assert!(s.delete(11, true).unwrap());
    }
    let names = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(
        names > 10,
        "segments and indexes expected, got {names} files"
    );
    let s = FileStore::open(io.clone(), dir.path(), cfg(1000)).unwrap();
    assert_eq!(s.recovery_report(), &RecoveryReport::default());
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.num_deleted),
        (98, 1, 100, 2)
    );
    for i in (1..=100u64).filter(|i| *i != 10 && *i != 11) {
        let m = s.load(i).unwrap().unwrap();
        assert_eq!(m.payload, payload(i, 50));
        assert_eq!(m.subject, format!("sub.{}", i % 3));
    }
    assert_eq!(s.load(10).unwrap(), None);
    assert_eq!(s.load_last("sub.*").unwrap().unwrap().seq, 100);
    assert_eq!(s.load_last("sub.1").unwrap().unwrap().seq, 100);
    assert_eq!(s.load_next(10, "").unwrap().unwrap().seq, 12);
    // The scrubbed record's payload bytes are gone from the file.
    let needle = payload(11, 50);
    let found = std::fs::read_dir(dir.path()).unwrap().any(|e| {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        data.windows(needle.len()).any(|w| w == needle.as_slice())
    });
    assert!(!found, "overwritten payload still on disk");
}

#[test]
fn purge_and_limits_survive_restart_and_drop_segments() {
    let io = SimIo::new();
    let c = FileStoreConfig {
        segment_bytes: 500,
        limits: Limits {
            max_msgs: Some(50),
            ..Default::default()
        },
        ..Default::default()
    };
    {
        let mut s = sim_open(&io, c.clone());
        for i in 1..=200u64 {
            s.append(if i % 2 == 0 { "a" } else { "b" }, b"", &payload(i, 20), 0)
                .unwrap();
        }
        assert_eq!(s.state().first_seq, 151);
        s.purge(&PurgeRequest {
            filter: Some("a".into()),
            keep: Some(5),
            ..Default::default()
        })
        .unwrap();
    }
    let segs = io
        .paths()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .count();
    assert!(segs < 15, "old segments should be dropped, {segs} left");
    let mut s = sim_open(&io, c.clone());
    assert_eq!(s.subject_counts("a").get("a"), Some(&5));
    assert_eq!(s.state().msgs, 30);
    s.purge(&PurgeRequest::default()).unwrap();
    drop(s);
    let mut s = sim_open(&io, c);
    let st = s.state();
    assert_eq!((st.msgs, st.first_seq, st.last_seq), (0, 201, 200));
    assert_eq!(s.append("x", b"", b"", 0).unwrap(), 201);
}

#[test]
fn discard_new_error_leaves_store_unchanged() {
    let io = SimIo::new();
    let c = FileStoreConfig {
        limits: Limits {
            max_msgs: Some(2),
            discard: DiscardPolicy::New,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut s = sim_open(&io, c);
    let msgs: Vec<NewMsg> = (0..3)
        .map(|_| NewMsg {
            subject: "a",
            headers: b"",
            payload: b"p",
            timestamp: 0,
        })
        .collect();
    let r = s.append_batch(&msgs).unwrap();
    assert!(matches!(r[2], Err(StoreError::MaxMsgs { max: 2 })));
    assert_eq!(s.state().msgs, 2);
}

/// Power failure at random points: every append acknowledged under `always` survives.
#[test]
fn power_failure_loses_no_acknowledged_append() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let io = SimIo::new();
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut deleted = BTreeSet::new();
    let mut torn = 0;
    for _round in 0..300 {
        let mut s = sim_open(&io, cfg(2000));
        let rep = s.recovery_report().clone();
        torn += u32::from(rep.truncated_bytes > 0);
        assert_eq!(
            rep.skipped_records,
            vec![],
            "no mid-file damage from a power cut"
        );
        for (seq, data) in &acked {
            let got = s.load(*seq).unwrap();
            if deleted.contains(seq) {
                assert_eq!(got, None);
            } else {
                assert_eq!(got.map(|m| m.payload).as_ref(), Some(data), "seq {seq}");
            }
        }
        let expect_next = s.state().last_seq + 1;
        assert!(acked.keys().next_back().is_none_or(|l| *l < expect_next));
        for _ in 0..rng.gen_range(0..6) {
            let n = rng.gen_range(1..8);
            let bodies: Vec<Vec<u8>> = (0..n)
                .map(|_| payload(rng.gen(), rng.gen_range(0..300)))
                .collect();
            let msgs = on_subject("p", &bodies);
            let seqs = s.append_batch(&msgs).unwrap();
            for (r, b) in seqs.into_iter().zip(bodies) {
                acked.insert(r.unwrap(), b);
            }
            if rng.gen_bool(0.2) {
                if let Some(&seq) = acked.keys().nth(rng.gen_range(0..acked.len())) {
                    if s.delete(seq, rng.gen()).unwrap() {
                        deleted.insert(seq);
                    }
                }
            }
        }
        // The power goes in the middle of some later call: what it was doing is not acknowledged.
        io.fail_after(rng.gen_range(0..6));
        for _ in 0..4 {
            let body = payload(rng.gen(), rng.gen_range(1..300));
            match s.append("p", b"", &body, 0) {
                Ok(seq) => {
                    acked.insert(seq, body);
                }
                Err(_) => break,
            }
        }
        std::mem::forget(s);
        io.crash(|n| rng.gen_range(0..n));
    }
    assert!(acked.len() > 500);
    assert!(torn > 10, "torn tails exercised only {torn} times");
}

/// Pipelined appends under power failures: whatever `durable_seq` reported before the cut
/// survives it byte for byte, while the syncer thread may be in the middle of a sync.
#[test]
fn power_failure_loses_nothing_reported_durable_by_pipelined_appends() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let io = SimIo::new();
    let mut written: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut durable_max = 0;
    let mut checked = 0;
    for _round in 0..150 {
        let mut s = sim_open(&io, cfg(3000));
        assert!(s.state().last_seq >= durable_max);
        for (seq, data) in written.range(..=durable_max) {
            let got = s.load(*seq).unwrap();
            assert_eq!(got.map(|m| m.payload).as_ref(), Some(data), "seq {seq}");
            checked += 1;
        }
        // What was written but not reported durable may or may not be there (one by one: a
        // segment sealed by a pipelined batch is synced by the syncer, so a later segment's
        // bytes may outlive its tail); what is there is what was written. Forget the rest.
        let last = s.state().last_seq;
        written.retain(|seq, _| *seq <= last);
        for seq in durable_max + 1..=last {
            if let Some(want) = written.get(&seq) {
                match s.load(seq).unwrap() {
                    Some(m) => assert_eq!(&m.payload, want, "seq {seq} survived changed"),
                    None => {
                        written.remove(&seq);
                    }
                }
            }
        }
        durable_max = durable_max.max(s.durable_seq());
        for _ in 0..rng.gen_range(1..8) {
            let bodies: Vec<Vec<u8>> = (0..rng.gen_range(1..10))
                .map(|_| payload(rng.gen(), rng.gen_range(0..200)))
                .collect();
            let msgs = on_subject("p", &bodies);
            let seqs = s.append_batch_pipelined(&msgs).unwrap();
            for (r, b) in seqs.into_iter().zip(bodies) {
                written.insert(r.unwrap(), b);
            }
            if rng.gen_bool(0.3) {
                let last = s.state().last_seq;
                s.wait_durable(last).unwrap();
                assert!(s.durable_seq() >= last);
            }
            durable_max = durable_max.max(s.durable_seq());
        }
        durable_max = durable_max.max(s.durable_seq());
        io.crash(|n| rng.gen_range(0..n));
        drop(s);
    }
    assert!(checked > 1000, "only {checked} durable messages checked");
}

/// Pipelined appends under `max_msgs` with small segments, so batches evict messages and empty
/// whole sealed segments: after a power cut no sequence is handed out twice and the newest
/// messages up to what survived are all there (a segment emptied by appends that were then lost
/// must not be gone).
#[test]
fn power_failure_with_limits_keeps_the_newest_and_never_reuses_a_sequence() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let io = SimIo::new();
    const KEEP: u64 = 3;
    let c = FileStoreConfig {
        limits: Limits {
            max_msgs: Some(KEEP),
            ..Default::default()
        },
        ..cfg(700)
    };
    let mut bodies: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut durable_max = 0;
    for round in 0..300 {
        let mut s = sim_open(&io, c.clone());
        let last = s.state().last_seq;
        assert!(
            last >= durable_max,
            "round {round}: store ends at {last}, {durable_max} was reported durable"
        );
        for seq in last.saturating_sub(KEEP - 1).max(1)..=last {
            if let Some(want) = bodies.get(&seq) {
                let got = s.load(seq).unwrap().map(|m| m.payload);
                // A sequence never reported durable may be lost on its own (a sealed
                // segment's tail is synced by the syncer, a later segment may outlive it).
                if got.is_some() || seq <= durable_max {
                    assert_eq!(got.as_ref(), Some(want), "round {round}: seq {seq}");
                }
            }
        }
        // Lost and never durable: they are not handed out again, forget them.
        for seq in durable_max + 1..=last {
            if s.load(seq).unwrap().is_none() {
                bodies.remove(&seq);
            }
        }
        // Sequences past what survived were never acknowledged; they will be written anew.
        bodies.retain(|seq, _| *seq <= last);
        for _ in 0..rng.gen_range(1..6) {
            let batch: Vec<Vec<u8>> = (0..rng.gen_range(1..4))
                .map(|_| payload(rng.gen(), rng.gen_range(50..250)))
                .collect();
            let msgs = on_subject("p", &batch);
            let seqs = s.append_batch_pipelined(&msgs).unwrap();
            for (r, b) in seqs.into_iter().zip(batch) {
                bodies.insert(r.unwrap(), b);
            }
            if rng.gen_bool(0.2) {
                s.wait_durable(s.state().last_seq).unwrap();
            }
            durable_max = durable_max.max(s.durable_seq());
        }
        io.crash(|n| rng.gen_range(0..n));
        drop(s);
    }
    assert!(durable_max > 300);
}

/// Overwriting a deleted message in the open segment also takes its subject out of the index
/// written when the segment is sealed.
#[test]
fn a_scrubbed_subject_does_not_reach_the_sealed_index() {
    let io = SimIo::new();
    let mut s = sim_open(&io, cfg(4000));
    s.append("secret.subject", b"", b"hidden", 1).unwrap();
    s.append("plain", b"", b"x", 2).unwrap();
    assert!(s.delete(1, true).unwrap());
    while s.state().last_seq < 200 {
        s.append("plain", b"", &[7; 40], 3).unwrap();
    }
    let idx = Path::new("/s").join(idx_name(1));
    let data = io
        .with_file(&idx, |d| d.clone())
        .expect("the first segment was sealed");
    let needle = b"secret.subject";
    assert!(!data.windows(needle.len()).any(|w| w == needle));
    let seg = Path::new("/s").join(seg_name(1));
    let data = io.with_file(&seg, |d| d.clone()).unwrap();
    assert!(!data.windows(needle.len()).any(|w| w == needle));
}

/// The owner's periodic call: ages messages out, and compacts a segment left sparse by
/// deletes, one per call.
#[test]
fn maintain_expires_and_compacts() {
    let io = SimIo::new();
    let c = FileStoreConfig {
        limits: Limits {
            max_age: Some(std::time::Duration::from_nanos(1000)),
            ..Default::default()
        },
        ..cfg(2000)
    };
    let mut s = sim_open(&io, c);
    for i in 0..60u64 {
        s.append("m", b"", &payload(i, 60), 10_000 + i as i64)
            .unwrap();
    }
    // Sparse sealed segments: all but every fifth message deleted.
    for seq in 1..=40u64 {
        if seq % 5 != 0 {
            assert!(s.delete(seq, false).unwrap());
        }
    }
    let m = s.maintain(10_500).unwrap();
    assert_eq!(m.expired, 0, "nothing is older than 1000 ns yet");
    let first = m.compacted.expect("a sparse segment was compacted");
    assert!(first.bytes_after < first.bytes_before / 2, "{first:?}");
    for seq in (5..=40u64).step_by(5).chain(41..=60) {
        assert_eq!(s.load(seq).unwrap().unwrap().payload, payload(seq - 1, 60));
    }
    let mut compacted = 1;
    while s.maintain(10_500).unwrap().compacted.is_some() {
        compacted += 1;
    }
    assert!(compacted >= 2, "only {compacted} segments compacted");
    // Messages stamped before 10_030 (sequences up to 30; 5, 10 .. 30 are left) age out.
    let m = s.maintain(11_030).unwrap();
    assert_eq!(m.expired, 6);
    assert_eq!(s.state().first_seq, 35);
    assert_eq!(s.state().msgs, 2 + 20);
}

fn corpus(io: &SimIo) -> BTreeMap<u64, StoredMsg> {
    let mut s = sim_open(io, cfg(600));
    for i in 1..=60u64 {
        s.append(&format!("c.{}", i % 4), b"hh", &payload(i, 40), i as i64)
            .unwrap();
    }
    (1..=60).map(|i| (i, s.load(i).unwrap().unwrap())).collect()
}

/// Single bit flips and truncations anywhere in segments and indexes: always detected (an
/// error, a cut or a repair in the report), never wrong data; intact records stay readable.
#[test]
fn corruption_is_detected_never_returned() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for case in 0..300 {
        let io = SimIo::new();
        let orig = corpus(&io);
        let files: Vec<PathBuf> = io
            .paths()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg" || e == "idx"))
            .collect();
        let target = files[rng.gen_range(0..files.len())].clone();
        let is_idx = target.extension().is_some_and(|e| e == "idx");
        let truncate = rng.gen_bool(0.3);
        io.with_file(&target, |d| {
            if d.is_empty() {
                return;
            }
            let at = rng.gen_range(0..d.len());
            if truncate {
                d.truncate(at);
            } else {
                d[at] ^= 1 << rng.gen_range(0..8);
            }
        });
        let s = sim_open(&io, cfg(600));
        let rep = s.recovery_report().clone();
        let mut bad = 0;
        for (seq, m) in &orig {
            match s.load(*seq) {
                Ok(Some(got)) => assert_eq!(&got, m, "case {case}: wrong data for {seq}"),
                Ok(None) | Err(StoreError::Corrupt { .. }) => bad += 1,
                Err(e) => panic!("case {case}: unexpected {e}"),
            }
        }
        let reported = rep != RecoveryReport::default();
        if is_idx {
            assert!(
                !rep.rebuilt_indexes.is_empty(),
                "case {case}: index damage unnoticed"
            );
            assert_eq!(bad, 0, "case {case}: index rebuilt from an intact segment");
        } else {
            assert!(bad > 0 || reported, "case {case}: segment damage unnoticed");
        }
        // Everything before the damaged file is untouched.
        let first_of_target: u64 = target
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        for seq in 1..first_of_target {
            assert_eq!(s.load(seq).unwrap().as_ref(), orig.get(&seq));
        }
    }
}

mod model {
    use super::*;
    use crate::memory::MemoryStore;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Subject, payload length, header length (0: no header block).
        Append(u8, usize, usize),
        Batch(u8, usize),
        Delete(usize, bool),
        Purge(Option<u8>, Option<u64>, Option<u64>),
        Expire(i64),
        Restart,
        Compact,
        /// `Store::compact` to this far past the last sequence less 10 (0: to sequence 0).
        CompactTo(u64),
        /// A stream update: new limits, applied at once.
        SetLimits(Limits),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..4, 0usize..120, prop_oneof![Just(0usize), 1usize..20])
                .prop_map(|(s, l, h)| Op::Append(s, l, h)),
            2 => (0u8..4, 1usize..6).prop_map(|(s, n)| Op::Batch(s, n)),
            2 => (0usize..64, any::<bool>()).prop_map(|(i, o)| Op::Delete(i, o)),
            1 => (proptest::option::of(0u8..4), proptest::option::of(0u64..5), proptest::option::of(0u64..80))
                .prop_map(|(f, k, u)| Op::Purge(f, k, u)),
            1 => (0i64..200).prop_map(Op::Expire),
            2 => Just(Op::Restart),
            2 => Just(Op::Compact),
            1 => (0u64..30).prop_map(Op::CompactTo),
            1 => limits().prop_map(Op::SetLimits),
        ]
    }

    fn limits() -> impl Strategy<Value = Limits> {
        (
            proptest::option::of(3u64..30),
            // Sometimes below `max_msg_size`: a message over it on its own.
            proptest::option::of(prop_oneof![1 => 60u64..200, 3 => 1500u64..4000]),
            proptest::option::of(1u64..5),
            proptest::option::of(50u64..150),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(m, b, ps, age, new, new_per)| Limits {
                max_msgs: m,
                max_bytes: b,
                max_msgs_per_subject: ps,
                max_age: age.map(std::time::Duration::from_nanos),
                max_msg_size: Some(140),
                discard: if new {
                    DiscardPolicy::New
                } else {
                    DiscardPolicy::Old
                },
                discard_new_per_subject: new_per,
            })
    }

    /// The sum of the accounting's sizes over the messages a store holds.
    fn live_sum(s: &dyn Store, acct: ByteAccounting) -> u64 {
        let mut sum = 0;
        let mut at = s.load_next(0, "").unwrap();
        while let Some(m) = at {
            sum += m.size_as(acct);
            at = s.load_next(m.seq + 1, "").unwrap();
        }
        sum
    }

    fn same(f: &FileStore, m: &MemoryStore) {
        let acct = f.byte_accounting();
        assert_eq!(m.byte_accounting(), acct);
        assert_eq!(
            f.state().bytes,
            live_sum(f, acct),
            "file store under {acct:?}"
        );
        assert_eq!(
            m.state().bytes,
            live_sum(m, acct),
            "memory store under {acct:?}"
        );
        assert_eq!(f.state(), m.state());
        assert_eq!(f.subject_counts(""), m.subject_counts(""));
        let last = m.state().last_seq;
        for seq in 0..=last + 1 {
            assert_eq!(f.load(seq).unwrap(), m.load(seq).unwrap(), "seq {seq}");
        }
        for filt in ["s.0", "s.*", ""] {
            assert_eq!(f.load_last(filt).unwrap(), m.load_last(filt).unwrap());
        }
    }

    /// Runs `ops` on a file store (small segments, restarts, compaction) and on the memory
    /// store, both counting bytes as `acct`: after every operation they agree, and each one's
    /// `state().bytes` is the sum of `acct`'s sizes over the messages it holds.
    fn run_model(acct: ByteAccounting, lim: Limits, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let io = SimIo::new();
        let mut c = FileStoreConfig {
            limits: lim.clone(),
            segment_bytes: 400,
            accounting: acct,
            ..Default::default()
        };
        let mut f = sim_open(&io, c.clone());
        let mut m = MemoryStore::with_accounting(lim, acct);
        let mut now = 0i64;
        for op in ops {
            now += 3;
            match op {
                Op::Append(s, l, h) => {
                    let subj = format!("s.{s}");
                    let p = payload(now as u64, l);
                    let hdr = payload(now as u64 + 1, h);
                    let a = f.append(&subj, &hdr, &p, now);
                    let b = m.append(&subj, &hdr, &p, now);
                    prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
                }
                Op::Batch(s, n) => {
                    let subj = format!("s.{s}");
                    let bodies: Vec<Vec<u8>> = (0..n).map(|i| payload(i as u64, 10 * i)).collect();
                    let msgs: Vec<NewMsg> = bodies
                        .iter()
                        .enumerate()
                        .map(|(i, b)| NewMsg {
                            subject: &subj,
                            headers: if i % 2 == 0 { b"x" } else { b"" },
                            payload: b,
                            timestamp: now,
                        })
                        .collect();
                    let a = f.append_batch(&msgs).unwrap();
                    let b = m.append_batch(&msgs).unwrap();
                    prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
                }
                Op::Delete(i, o) => {
                    let seq = m.state().first_seq + i as u64;
                    prop_assert_eq!(f.delete(seq, o).unwrap(), m.delete(seq, o).unwrap());
                }
                Op::Purge(filt, keep, up) => {
                    let req = PurgeRequest {
                        filter: filt.map(|s| format!("s.{s}")),
                        keep,
                        up_to_seq: up,
                    };
                    prop_assert_eq!(f.purge(&req).unwrap(), m.purge(&req).unwrap());
                }
                Op::Expire(t) => {
                    prop_assert_eq!(f.expire(now - t).unwrap(), m.expire(now - t).unwrap());
                }
                Op::Compact => {
                    f.compact_all().unwrap();
                }
                Op::CompactTo(d) => {
                    let seq = if d == 0 {
                        0
                    } else {
                        m.state().last_seq.saturating_sub(10) + d
                    };
                    prop_assert_eq!(f.compact(seq).unwrap(), m.compact(seq).unwrap());
                }
                Op::Restart => {
                    drop(f);
                    f = sim_open(&io, c.clone());
                }
                Op::SetLimits(lim) => {
                    let a = f.set_limits_at(lim.clone(), now).unwrap();
                    let b = m.set_limits_at(lim.clone(), now).unwrap();
                    prop_assert_eq!(a, b);
                    prop_assert_eq!(&f.cfg.limits, &lim);
                    // A restart after an update opens with the new limits.
                    c.limits = lim;
                }
            }
            same(&f, &m);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn file_store_matches_memory_model(lim in limits(), ops in proptest::collection::vec(op(), 1..60)) {
            run_model(ByteAccounting::Record, lim, ops)?;
        }

        /// nats-server's file store accounting: bytes stay the sum of the model's sizes through
        /// appends with and without headers, deletes, purges, limit evictions, expiry,
        /// compaction and reopens (sealed indexes and the rescanned open segment).
        #[test]
        fn file_store_matches_memory_model_nats_file(lim in limits(), ops in proptest::collection::vec(op(), 1..60)) {
            run_model(ByteAccounting::NatsFile, lim, ops)?;
        }

        /// The same under nats-server's memory store accounting.
        #[test]
        fn file_store_matches_memory_model_nats_memory(lim in limits(), ops in proptest::collection::vec(op(), 1..60)) {
            run_model(ByteAccounting::NatsMemory, lim, ops)?;
        }
    }
}

/// Recent appends are read from memory: with the segment's bytes on "disk" spoiled behind the
/// store's back, the recent messages still load intact while older ones (out of the cache) are
/// read from the file and reported corrupt; a reopen (cold cache) detects all of them.
#[test]
fn recent_appends_are_served_from_the_hot_tail() {
    let io = SimIo::new();
    let c = FileStoreConfig {
        hot_cache_bytes: 4096,
        ..cfg(1 << 20)
    };
    let mut s = sim_open(&io, c.clone());
    for i in 1..=100u64 {
        let p = payload(i, 100);
        s.append("a", b"", &p, 0).unwrap();
    }
    let seg = Path::new("/s").join(seg_name(1));
    io.with_file(&seg, |d| d.iter_mut().for_each(|b| *b ^= 0xff))
        .unwrap();
    assert_eq!(s.load(100).unwrap().unwrap().payload, payload(100, 100));
    assert!(s.load(1).is_err(), "an old message comes from the file");
    drop(s);
    io.with_file(&seg, |d| d.iter_mut().for_each(|b| *b ^= 0xff))
        .unwrap();
    let s = sim_open(&io, c);
    assert_eq!(s.load(1).unwrap().unwrap().payload, payload(1, 100));
    assert_eq!(s.load(100).unwrap().unwrap().payload, payload(100, 100));
}

/// A caller that waits for durability under the interval policy broke the contract: that is
/// `Misuse`, never reported as corruption of the disk.
#[test]
fn waiting_for_durability_without_a_syncer_is_misuse_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileStoreConfig {
        sync: SyncPolicy::Interval(std::time::Duration::from_secs(3600)),
        ..cfg(1 << 20)
    };
    let mut s = FileStore::open_fs(dir.path(), c).unwrap();
    let seq = s.append("i", b"", b"x", 0).unwrap();
    match s.wait_durable(seq) {
        Err(StoreError::Misuse { what }) => assert!(what.contains("interval"), "{what}"),
        other => panic!("expected Misuse, got {other:?}"),
    }
}

/// An [`Io`] over [`SimIo`] that records the thread of every fdatasync and folder sync.
#[derive(Clone, Default)]
struct SyncCountingIo {
    inner: SimIo,
    syncs: Arc<std::sync::Mutex<Vec<(std::thread::ThreadId, &'static str)>>>,
}

impl SyncCountingIo {
    fn record(&self, what: &'static str) {
        self.syncs
            .lock()
            .unwrap()
            .push((std::thread::current().id(), what));
    }
    fn on(&self, thread: std::thread::ThreadId, what: &str) -> usize {
        let syncs = self.syncs.lock().unwrap();
        syncs
            .iter()
            .filter(|(t, w)| *t == thread && *w == what)
            .count()
    }
    fn off(&self, thread: std::thread::ThreadId, what: &str) -> usize {
        let syncs = self.syncs.lock().unwrap();
        syncs
            .iter()
            .filter(|(t, w)| *t != thread && *w == what)
            .count()
    }
}

struct SyncCountingFile {
    inner: Box<dyn IoFile>,
    io: SyncCountingIo,
}

impl IoFile for SyncCountingFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, off)
    }
    fn write_all_at(&self, data: &[u8], off: u64) -> std::io::Result<()> {
        self.inner.write_all_at(data, off)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.io.record("fdatasync");
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Io for SyncCountingIo {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Box<dyn IoFile>> {
        Ok(Box::new(SyncCountingFile {
            inner: self.inner.open(path, create)?,
            io: self.clone(),
        }))
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.record("sync_dir");
        self.inner.sync_dir(dir)
    }
}

/// Pipelined appends across many segment roll-overs (and segments emptied by `max_msgs` and
/// removed) run no fdatasync and no folder sync on the calling thread: sealing, the new
/// segment's folder entry and the sealed index are the syncer's. The indexes it wrote after the
/// next segment had taken appends are the ones recovery uses, and they are right.
#[test]
fn pipelined_appends_never_sync_on_the_owner_thread_across_roll_overs() {
    let io = SyncCountingIo::default();
    let c = FileStoreConfig {
        limits: Limits {
            max_msgs: Some(400),
            ..Default::default()
        },
        ..cfg(4000)
    };
    let mut s = FileStore::open(Arc::new(io.clone()), "/s", c.clone()).unwrap();
    let owner = std::thread::current().id();
    io.syncs.lock().unwrap().clear();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut bodies: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut rolls = 0;
    while rolls < 40 {
        let batch: Vec<Vec<u8>> = (0..rng.gen_range(1..40))
            .map(|_| payload(rng.gen(), rng.gen_range(0..300)))
            .collect();
        let open_before = s.open_seg;
        let seqs = s.append_batch_pipelined(&on_subject("r", &batch)).unwrap();
        for (r, b) in seqs.into_iter().zip(batch) {
            bodies.insert(r.unwrap(), b);
        }
        rolls += usize::from(s.open_seg != open_before);
        assert_eq!(
            io.on(owner, "fdatasync"),
            0,
            "fdatasync on the owner thread"
        );
        assert_eq!(
            io.on(owner, "sync_dir"),
            0,
            "folder sync on the owner thread"
        );
    }
    let last = s.state().last_seq;
    s.wait_durable(last).unwrap();
    // Requests that wait for a pool thread merge (one folder sync covers every entry made
    // before it), so there may be fewer folder syncs than roll-overs, but never none.
    assert!(io.off(owner, "fdatasync") > 0 && io.off(owner, "sync_dir") > 0);
    let first = s.state().first_seq;
    assert_eq!(last - first + 1, 400);
    drop(s);
    let idx: Vec<_> = io
        .inner
        .paths()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    assert!(idx.len() >= 3, "sealed indexes: {idx:?}");
    let s = FileStore::open(Arc::new(io.inner.clone()), "/s", c).unwrap();
    assert!(
        s.recovery_report().rebuilt_indexes.is_empty(),
        "{:?}",
        s.recovery_report()
    );
    assert_eq!(s.state().first_seq, first);
    assert_eq!(s.state().last_seq, last);
    for seq in first..=last {
        let got = s.load(seq).unwrap().map(|m| m.payload);
        assert_eq!(got.as_ref(), bodies.get(&seq), "seq {seq}");
    }
}

/// Pipelined appends with tiny segments (batches span several), power cuts at random points
/// (every operation fails from a random one on, owner's and syncer's alike, then the crash),
/// and a file system that loses new folder entries until the folder is synced: whatever
/// `durable_seq` reported survives byte for byte, what survived beyond it is what was written,
/// and no sequence is handed out twice. Fails if the syncer publishes before syncing the folder
/// or a sealed segment.
#[test]
fn power_cuts_across_pipelined_segment_roll_overs() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let io = SimIo::lossy_dirs();
    let mut written: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut durable_max = 0;
    let mut checked = 0;
    let mut segments_seen = BTreeSet::new();
    for round in 0..250 {
        let mut s = sim_open(&io, cfg(rng.gen_range(400..1500)));
        let last = s.state().last_seq;
        assert!(last >= durable_max, "round {round}: {last} < {durable_max}");
        for (seq, want) in written.range(..=durable_max) {
            let got = s.load(*seq).unwrap().map(|m| m.payload);
            assert_eq!(got.as_ref(), Some(want), "round {round}: durable seq {seq}");
            checked += 1;
        }
        written.retain(|seq, _| *seq <= last);
        for seq in durable_max + 1..=last {
            if let Some(want) = written.get(&seq) {
                match s.load(seq).unwrap() {
                    Some(m) => assert_eq!(&m.payload, want, "round {round}: seq {seq} changed"),
                    None => {
                        written.remove(&seq);
                    }
                }
            }
        }
        if rng.gen_bool(0.6) {
            io.fail_after(rng.gen_range(0..80));
        }
        'batches: for _ in 0..rng.gen_range(1..10) {
            let batch: Vec<Vec<u8>> = (0..rng.gen_range(1..25))
                .map(|_| payload(rng.gen(), rng.gen_range(0..250)))
                .collect();
            let Ok(seqs) = s.append_batch_pipelined(&on_subject("c", &batch)) else {
                break 'batches;
            };
            for (r, b) in seqs.into_iter().zip(batch) {
                let seq = r.unwrap();
                assert!(seq > durable_max, "round {round}: {seq} handed out again");
                written.insert(seq, b);
            }
            segments_seen.insert(s.open_seg);
            if rng.gen_bool(0.2) {
                let _ = s.wait_durable(s.state().last_seq);
            }
            durable_max = durable_max.max(s.durable_seq());
        }
        durable_max = durable_max.max(s.durable_seq());
        io.crash(|n| rng.gen_range(0..n));
        drop(s);
    }
    assert!(checked > 2000, "only {checked} durable messages checked");
    assert!(
        segments_seen.len() > 300,
        "{} segments",
        segments_seen.len()
    );
}
