//! Limits as nats-server applies them: a stream update (`set_limits`) cutting at once, a message
//! over `max_bytes` on its own, and `discard_new_per_subject`; for both stores, and for the file
//! store across reopens and power cuts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::error::StoreError;
use crate::file::{FileStore, FileStoreConfig};
use crate::memory::MemoryStore;
use crate::sim_io::SimIo;
use crate::store::Store;
use crate::types::{ByteAccounting, DiscardPolicy, Limits, NewMsg, StoredMsg};

/// Small segments, so removals span sealed segments and the open one.
fn file_cfg(lim: Limits, acct: ByteAccounting) -> FileStoreConfig {
    FileStoreConfig {
        limits: lim,
        accounting: acct,
        segment_bytes: 300,
        ..Default::default()
    }
}

fn open(io: &SimIo, c: FileStoreConfig) -> FileStore {
    FileStore::open(Arc::new(io.clone()), "/s", c).unwrap()
}

/// 0: a file store under nats-server's file accounting; 1: the memory store under its memory
/// accounting.
fn store(kind: usize, lim: Limits) -> Box<dyn Store> {
    match kind {
        0 => Box::new(open(&SimIo::new(), file_cfg(lim, ByteAccounting::NatsFile))),
        _ => Box::new(MemoryStore::with_accounting(
            lim,
            ByteAccounting::NatsMemory,
        )),
    }
}

fn body(seq: u64) -> Vec<u8> {
    (0..20 + seq % 7)
        .map(|i| seq.wrapping_mul(37).wrapping_add(i) as u8)
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

fn max_msgs(n: u64) -> Limits {
    Limits {
        max_msgs: Some(n),
        ..Default::default()
    }
}

/// Ten messages, then `max_msgs: 3`: the newest three stay, and the next append uses the new
/// limit.
#[test]
fn set_limits_max_msgs_keeps_the_newest() {
    for kind in 0..2 {
        let mut s = store(kind, Limits::default());
        for seq in 1..=10 {
            assert_eq!(s.append("a", b"", &body(seq), 0).unwrap(), seq);
        }
        s.set_limits(max_msgs(3)).unwrap();
        assert_eq!(seqs(s.as_ref()), vec![8, 9, 10], "kind {kind}");
        let st = s.state();
        assert_eq!((st.msgs, st.first_seq, st.last_seq), (3, 8, 10));
        assert_eq!(
            st.bytes,
            all(s.as_ref())
                .iter()
                .map(|m| m.size_as(s.byte_accounting()))
                .sum::<u64>()
        );
        for seq in 8..=10 {
            assert_eq!(s.load(seq).unwrap().unwrap().payload, body(seq));
        }
        assert_eq!(s.append("a", b"", &body(11), 0).unwrap(), 11);
        assert_eq!(seqs(s.as_ref()), vec![9, 10, 11]);
        // Raising it again removes nothing; the next appends fill up to it.
        assert_eq!(s.set_limits_at(max_msgs(5), 0).unwrap(), 0);
        s.append("a", b"", &body(12), 0).unwrap();
        s.append("a", b"", &body(13), 0).unwrap();
        s.append("a", b"", &body(14), 0).unwrap();
        assert_eq!(seqs(s.as_ref()), vec![10, 11, 12, 13, 14]);
    }
}

/// Lowering `max_msgs_per_subject` leaves each subject its newest, whatever the discard policy
/// (nats-server's `UpdateConfig` enforces it under both).
#[test]
fn set_limits_lowers_the_per_subject_limit() {
    for kind in 0..2 {
        for discard in [DiscardPolicy::Old, DiscardPolicy::New] {
            let lim = |per| Limits {
                max_msgs_per_subject: per,
                discard,
                ..Default::default()
            };
            let mut s = store(kind, lim(Some(5)));
            // a: 1, 4, 7, 10, 13; b: 2, 5, 8, 11, 14; c: 3, 6, 9, 12, 15.
            for seq in 1..=15u64 {
                let subj = ["a", "b", "c"][(seq as usize - 1) % 3];
                s.append(subj, b"", &body(seq), 0).unwrap();
            }
            assert_eq!(s.set_limits_at(lim(Some(2)), 0).unwrap(), 9);
            assert_eq!(seqs(s.as_ref()), vec![10, 11, 12, 13, 14, 15]);
            let counts = s.subject_counts("");
            assert!(counts.values().all(|n| *n == 2), "{counts:?}");
            // Later appends evict the subject's oldest under the new limit.
            s.append("b", b"", &body(16), 0).unwrap();
            assert_eq!(seqs(s.as_ref()), vec![10, 12, 13, 14, 15, 16]);
        }
    }
}

/// Lowering `max_bytes` under nats-server's file store accounting: the oldest go until the
/// stream is at most `max_bytes`, counting 30 + subject + payload per message (34 + subject +
/// headers + payload with headers).
#[test]
fn set_limits_lowers_max_bytes_under_nats_file_accounting() {
    const HDRS: &[u8] = b"NATS/1.0\r\n\r\n";
    let io = SimIo::new();
    let c = file_cfg(Limits::default(), ByteAccounting::NatsFile);
    let mut s = open(&io, c.clone());
    // Alternately 45 bytes (no headers) and 61 (headers): "0123456789" and "hello".
    for i in 0..10 {
        let h = if i % 2 == 0 { &b""[..] } else { HDRS };
        s.append("0123456789", h, b"hello", 0).unwrap();
    }
    assert_eq!(s.state().bytes, 5 * 45 + 5 * 61);
    // 45 + 61 + 45 + 61 = 212 fits exactly; one byte less and only three do.
    let lim = Limits {
        max_bytes: Some(212),
        ..Default::default()
    };
    assert_eq!(s.set_limits_at(lim.clone(), 0).unwrap(), 6);
    assert_eq!(seqs(&s), vec![7, 8, 9, 10]);
    assert_eq!(s.state().bytes, 212);
    let lim = Limits {
        max_bytes: Some(211),
        ..Default::default()
    };
    assert_eq!(s.set_limits_at(lim.clone(), 0).unwrap(), 1);
    assert_eq!(seqs(&s), vec![8, 9, 10]);
    assert_eq!(s.state().bytes, 61 + 45 + 61);
    assert_eq!(s.limits(), &lim);
    drop(s);
    let s = open(&io, FileStoreConfig { limits: lim, ..c });
    assert_eq!(seqs(&s), vec![8, 9, 10]);
    assert_eq!(s.state().bytes, 167);
    // The memory store under its own accounting cuts the same way.
    let mut m = MemoryStore::with_accounting(Limits::default(), ByteAccounting::NatsMemory);
    for i in 0..10 {
        let h = if i % 2 == 0 { &b""[..] } else { HDRS };
        m.append("0123456789", h, b"hello", 0).unwrap();
    }
    let lim = Limits {
        max_bytes: Some(31 + 43 + 31 - 1),
        ..Default::default()
    };
    m.set_limits_at(lim, 0).unwrap();
    assert_eq!(seqs(&m), vec![9, 10]);
}

/// A new `max_age` removes what is older at once; `max_age` removed again keeps the rest.
#[test]
fn set_limits_applies_max_age_at_once() {
    for kind in 0..2 {
        let mut s = store(kind, Limits::default());
        for seq in 1..=10u64 {
            s.append("a", b"", &body(seq), seq as i64 * 100).unwrap();
        }
        let lim = Limits {
            max_age: Some(Duration::from_nanos(450)),
            ..Default::default()
        };
        // At 1000 anything stamped before 550 goes: 100..500.
        assert_eq!(s.set_limits_at(lim, 1000).unwrap(), 5);
        assert_eq!(seqs(s.as_ref()), vec![6, 7, 8, 9, 10]);
        assert_eq!(s.set_limits_at(Limits::default(), 1_000_000).unwrap(), 0);
        assert_eq!(s.state().msgs, 5);
        // The wall-clock form: messages stamped at 0 are decades old.
        let lim = Limits {
            max_age: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        s.set_limits(lim).unwrap();
        assert_eq!(s.state().msgs, 0);
        assert_eq!(s.state().first_seq, 11);
    }
}

/// Under discard new, as in nats-server, a lower `max_msgs` or `max_bytes` removes nothing:
/// appends are refused until the stream is back under.
#[test]
fn set_limits_under_discard_new_keeps_messages_and_refuses_appends() {
    for kind in 0..2 {
        let mut s = store(kind, Limits::default());
        for seq in 1..=10 {
            s.append("a", b"", &body(seq), 0).unwrap();
        }
        let lim = Limits {
            max_msgs: Some(3),
            max_bytes: Some(150),
            discard: DiscardPolicy::New,
            ..Default::default()
        };
        assert_eq!(s.set_limits_at(lim, 0).unwrap(), 0);
        assert_eq!(s.state().msgs, 10);
        assert!(matches!(
            s.append("a", b"", b"x", 0),
            Err(StoreError::MaxMsgs { max: 3 })
        ));
        s.purge(&crate::types::PurgeRequest {
            keep: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.append("a", b"", b"x", 0).unwrap(), 11);
    }
}

/// nats-server's order: `max_msgs` cuts first, then the per-subject limit, so more may go than
/// either alone would remove.
#[test]
fn set_limits_cuts_max_msgs_before_the_per_subject_limit() {
    for kind in 0..2 {
        let mut s = store(kind, Limits::default());
        for seq in 1..=10u64 {
            s.append(if seq <= 5 { "a" } else { "b" }, b"", &body(seq), 0)
                .unwrap();
        }
        let lim = Limits {
            max_msgs: Some(5),
            max_msgs_per_subject: Some(2),
            ..Default::default()
        };
        assert_eq!(s.set_limits_at(lim, 0).unwrap(), 8);
        assert_eq!(seqs(s.as_ref()), vec![9, 10]);
    }
}

/// A file store updated and reopened with the new limits holds exactly what it held after the
/// update, whether the removal was a prefix (one floor record) or per subject (tombstones).
#[test]
fn file_set_limits_then_reopen_with_the_new_limits_is_the_same() {
    let updates = [
        max_msgs(7),
        Limits {
            max_msgs_per_subject: Some(1),
            ..Default::default()
        },
        Limits {
            max_msgs: Some(20),
            max_msgs_per_subject: Some(3),
            max_age: Some(Duration::from_nanos(60)),
            ..Default::default()
        },
    ];
    for lim in updates {
        for acct in [ByteAccounting::Record, ByteAccounting::NatsFile] {
            let io = SimIo::new();
            let c = file_cfg(Limits::default(), acct);
            let mut s = open(&io, c.clone());
            for seq in 1..=40u64 {
                s.append(&format!("k.{}", seq % 4), b"", &body(seq), seq as i64)
                    .unwrap();
            }
            s.set_limits_at(lim.clone(), 60).unwrap();
            let (state, counts, msgs) = (s.state(), s.subject_counts(""), all(&s));
            assert!(state.msgs < 40);
            drop(s);
            let c = FileStoreConfig {
                limits: lim.clone(),
                ..c
            };
            let mut s = open(&io, c.clone());
            assert_eq!(s.state(), state, "{lim:?}");
            assert_eq!(s.subject_counts(""), counts);
            assert_eq!(all(&s), msgs);
            // Appending goes on after the last sequence, under the new limits.
            assert_eq!(s.append("k.0", b"", b"x", 61).unwrap(), 41);
            drop(s);
            let s = open(&io, c);
            assert_eq!(s.state().last_seq, 41);
        }
    }
}

/// Subjects of uneven frequency, so keeping each one's newest is not a prefix of the stream.
fn skewed(seq: u64) -> &'static str {
    ["k.a", "k.b", "k.b", "k.c", "k.b", "k.b"][(seq % 6) as usize]
}

/// Power cut at every I/O operation of `set_limits` (and right after it returns), each with
/// random tears: a removal of the oldest (`max_msgs`) leaves exactly the state before or the
/// state after; a per-subject one leaves the state before less some of the messages it removes,
/// never another one. Once the call returned the state after is what reopens. No sequence is
/// handed out twice, and what survives is byte for byte what was written.
#[test]
fn power_failure_during_set_limits_leaves_the_state_before_or_after() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(41);
    let updates = [
        (max_msgs(5), true),
        (
            Limits {
                max_bytes: Some(400),
                ..Default::default()
            },
            true,
        ),
        (
            Limits {
                max_msgs_per_subject: Some(2),
                ..Default::default()
            },
            false,
        ),
    ];
    let (mut before, mut after, mut between) = (0, 0, 0);
    for (lim, prefix) in updates {
        for fail_at in 0..14u64 {
            for _ in 0..6 {
                let io = SimIo::new();
                let c = file_cfg(Limits::default(), ByteAccounting::Record);
                let mut s = open(&io, c.clone());
                let n = rng.gen_range(12..40u64);
                for seq in 1..=n {
                    s.append(skewed(seq), b"", &body(seq), 0).unwrap();
                }
                let pre = all(&s);
                let pre_seqs: BTreeSet<u64> = pre.iter().map(|m| m.seq).collect();
                let post_seqs: BTreeSet<u64> = {
                    let mut m = MemoryStore::new(Limits::default());
                    for seq in 1..=n {
                        m.append(skewed(seq), b"", &body(seq), 0).unwrap();
                    }
                    m.set_limits_at(lim.clone(), 0).unwrap();
                    seqs(&m).into_iter().collect()
                };
                io.fail_after(fail_at);
                let done = s.set_limits_at(lim.clone(), 0).is_ok();
                io.crash(|k| rng.gen_range(0..k));
                drop(s);
                let reopened = FileStoreConfig {
                    limits: lim.clone(),
                    ..c.clone()
                };
                let mut s = open(&io, reopened);
                let got: BTreeSet<u64> = seqs(&s).into_iter().collect();
                for m in all(&s) {
                    assert_eq!(m.payload, body(m.seq), "seq {} changed", m.seq);
                }
                if done {
                    assert_eq!(got, post_seqs, "{lim:?}: returned, then lost");
                }
                if got == pre_seqs {
                    before += 1;
                } else if got == post_seqs {
                    after += 1;
                } else {
                    between += 1;
                    assert!(!prefix, "{lim:?} fail at {fail_at}: {got:?}");
                    assert!(
                        got.is_subset(&pre_seqs) && got.is_superset(&post_seqs),
                        "{lim:?} {fail_at} got {got:?} pre {pre_seqs:?} post {post_seqs:?}"
                    );
                }
                assert!(s.state().last_seq >= n);
                let next = s.append("k.0", b"", b"x", 0).unwrap();
                assert!(next > n, "sequence {next} handed out again");
            }
        }
    }
    assert!(
        before > 10 && after > 10 && between > 0,
        "before {before}, after {after}, between {between}"
    );
}

/// Pipelined appends (not yet durable) and then an update: the update makes them durable before
/// it removes anything, so a power cut right after it returns reopens exactly the state after,
/// and a cut during it never loses a message it did not remove once that message was durable.
#[test]
fn power_failure_after_pipelined_appends_and_set_limits() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(43);
    for round in 0..120 {
        let io = SimIo::new();
        let c = file_cfg(Limits::default(), ByteAccounting::Record);
        let mut s = open(&io, c.clone());
        let mut written = BTreeMap::new();
        for _ in 0..rng.gen_range(1..6) {
            let n = rng.gen_range(1..8);
            let first = s.state().last_seq + 1;
            let bodies: Vec<Vec<u8>> = (first..first + n).map(body).collect();
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
        }
        let durable_before = s.durable_seq();
        let last = s.state().last_seq;
        let keep = rng.gen_range(1..5u64);
        let lim = max_msgs(keep);
        let fail = rng.gen_bool(0.5);
        if fail {
            io.fail_after(rng.gen_range(0..6));
        }
        let done = s.set_limits_at(lim.clone(), 0).is_ok();
        let durable = s.durable_seq();
        io.crash(|k| rng.gen_range(0..k));
        drop(s);
        let s = open(
            &io,
            FileStoreConfig {
                limits: lim,
                ..c.clone()
            },
        );
        let got = seqs(&s);
        for m in all(&s) {
            assert_eq!(Some(&m.payload), written.get(&m.seq), "round {round}");
        }
        let newest: Vec<u64> = (last.saturating_sub(keep) + 1..=last).collect();
        if done {
            assert_eq!(durable, last, "round {round}: returned before durable");
            assert_eq!(got, newest, "round {round}");
        } else {
            // Durable and not among the removed: still there.
            for seq in newest.iter().filter(|s| **s <= durable_before) {
                assert!(got.contains(seq), "round {round}: lost {seq}");
            }
            // A removal on disk means what it kept is on disk too: nothing goes for messages
            // that are then lost.
            let removed = (1..last.saturating_sub(keep) + 1)
                .filter(|s| *s <= durable_before)
                .any(|s| !got.contains(&s));
            if removed {
                assert_eq!(got, newest, "round {round}: removed for lost messages");
            }
        }
        assert!(s.state().last_seq >= durable.max(durable_before));
    }
}

/// A message over `max_bytes` on its own, discard new: refused with `MaxBytes` (nats-server's
/// "maximum bytes exceeded"), nothing changes, its sequence is not taken. `max_msg_size` still
/// answers `MessageTooLarge`.
#[test]
fn a_message_over_max_bytes_alone_is_refused_under_discard_new() {
    for kind in 0..2 {
        let lim = Limits {
            max_bytes: Some(200),
            max_msg_size: Some(1000),
            discard: DiscardPolicy::New,
            ..Default::default()
        };
        let mut s = store(kind, lim);
        s.append("a", b"", b"small", 0).unwrap();
        let before = s.state();
        assert!(matches!(
            s.append("a", b"", &[1; 300], 0),
            Err(StoreError::MaxBytes { max: 200 })
        ));
        assert_eq!(s.state(), before);
        assert!(matches!(
            s.append("a", b"", &[1; 2000], 0),
            Err(StoreError::MessageTooLarge { max: 1000, .. })
        ));
        assert_eq!(s.append("a", b"", b"small", 0).unwrap(), 2);
    }
}

/// The same under discard old: as in nats-server the message is stored and the oldest go while
/// over `max_bytes`, itself last, so the stream ends empty past its sequence; the next append
/// takes the next sequence. `max_msg_size` still refuses with `MessageTooLarge`.
#[test]
fn a_message_over_max_bytes_alone_evicts_everything_under_discard_old() {
    for kind in 0..2 {
        let lim = Limits {
            max_bytes: Some(200),
            max_msg_size: Some(1000),
            ..Default::default()
        };
        let mut s = store(kind, lim);
        for _ in 0..3 {
            s.append("a", b"", b"small", 0).unwrap();
        }
        assert_eq!(s.append("b", b"", &[1; 300], 0).unwrap(), 4);
        let st = s.state();
        assert_eq!(
            (
                st.msgs,
                st.bytes,
                st.first_seq,
                st.last_seq,
                st.num_subjects
            ),
            (0, 0, 5, 4, 0),
            "kind {kind}"
        );
        assert_eq!(s.load(4).unwrap(), None);
        assert_eq!(s.load_last("b").unwrap(), None);
        assert!(matches!(
            s.append("a", b"", &[1; 2000], 0),
            Err(StoreError::MessageTooLarge { max: 1000, .. })
        ));
        assert_eq!(s.append("a", b"", b"small", 0).unwrap(), 5);
        assert_eq!(seqs(s.as_ref()), vec![5]);
    }
}

/// The file store keeps the sequence of a message evicted on arrival across a reopen and a
/// power cut (it reported it durable), synchronous and pipelined, and writes no record for it.
#[test]
fn a_message_evicted_on_arrival_keeps_its_sequence_across_power_cuts() {
    let lim = Limits {
        max_bytes: Some(200),
        ..Default::default()
    };
    for pipelined in [false, true] {
        let io = SimIo::new();
        let c = file_cfg(lim.clone(), ByteAccounting::Record);
        let mut s = open(&io, c.clone());
        s.append("a", b"", b"small", 0).unwrap();
        let big = vec![0xab; 500];
        let msg = [NewMsg {
            subject: "big",
            headers: b"",
            payload: &big,
            timestamp: 0,
        }];
        let seq = if pipelined {
            let seq = s.append_batch_pipelined(&msg).unwrap()[0]
                .as_ref()
                .copied()
                .unwrap();
            s.wait_durable(seq).unwrap();
            seq
        } else {
            s.append_batch(&msg).unwrap()[0].as_ref().copied().unwrap()
        };
        assert_eq!(seq, 2);
        assert!(s.durable_seq() >= 2);
        io.crash(|_| 0);
        drop(s);
        let mut s = open(&io, c.clone());
        let st = s.state();
        assert_eq!(st.last_seq, 2, "pipelined {pipelined}");
        assert_eq!(s.load(2).unwrap(), None);
        // A pipelined batch's evictions are written once it is durable, by the next call that
        // writes: the power went before, so the small one may be back (never a lost one).
        if !pipelined {
            assert_eq!((st.msgs, st.first_seq), (0, 3));
        }
        assert_eq!(s.append("a", b"", b"small", 0).unwrap(), 3);
        for p in io.paths() {
            let data = io.with_file(&p, |d| d.clone()).unwrap();
            assert!(
                !data.windows(big.len()).any(|w| w == big.as_slice()),
                "{p:?}"
            );
        }
    }
}

fn per_subject(n: u64, new_per: bool, discard: DiscardPolicy) -> Limits {
    Limits {
        max_msgs_per_subject: Some(n),
        discard,
        discard_new_per_subject: new_per,
        ..Default::default()
    }
}

/// `discard_new_per_subject` with discard new: a subject at its limit refuses the next message
/// with `MaxMsgsPerSubject`; other subjects go on; a rollup (`Nats-Rollup` header) passes and
/// replaces the subject's oldest, as in nats-server.
#[test]
fn discard_new_per_subject_refuses_a_subject_at_its_limit() {
    for kind in 0..2 {
        let mut s = store(kind, per_subject(2, true, DiscardPolicy::New));
        s.append("a", b"", b"1", 0).unwrap();
        s.append("a", b"", b"2", 0).unwrap();
        assert!(matches!(
            s.append("a", b"", b"3", 0),
            Err(StoreError::MaxMsgsPerSubject { max: 2 })
        ));
        assert_eq!(s.state().last_seq, 2);
        assert_eq!(s.append("b", b"", b"4", 0).unwrap(), 3);
        let rollup = b"NATS/1.0\r\nNats-Rollup: sub\r\n\r\n";
        assert_eq!(s.append("a", rollup, b"5", 0).unwrap(), 4);
        assert_eq!(seqs(s.as_ref()), vec![2, 3, 4]);
        // An empty value or the name inside another header is no rollup.
        for h in [
            &b"NATS/1.0\r\nNats-Rollup:\r\n\r\n"[..],
            b"NATS/1.0\r\nX-Nats-Rollup: sub\r\n\r\n",
        ] {
            assert!(matches!(
                s.append("a", h, b"6", 0),
                Err(StoreError::MaxMsgsPerSubject { .. })
            ));
        }
        // Under discard old the flag means nothing: the oldest goes.
        s.set_limits_at(per_subject(2, true, DiscardPolicy::Old), 0)
            .unwrap();
        assert_eq!(s.append("a", b"", b"7", 0).unwrap(), 5);
        assert_eq!(seqs(s.as_ref()), vec![3, 4, 5]);
    }
}

/// Discard new with `max_msgs_per_subject` but without `discard_new_per_subject`: the subject's
/// oldest is replaced, and such a replacing message passes `max_msgs` even at the limit, and
/// `max_bytes` when the oldest it replaces is at least as large (nats-server's `storeRawMsg`).
#[test]
fn discard_new_without_the_flag_replaces_the_subjects_oldest() {
    for kind in 0..2 {
        let mut s = store(kind, per_subject(2, false, DiscardPolicy::New));
        for p in [b"1", b"2", b"3"] {
            s.append("a", b"", p, 0).unwrap();
        }
        assert_eq!(seqs(s.as_ref()), vec![2, 3]);

        let acct = s.byte_accounting();
        let size = |p: &[u8]| acct.msg_size("a", b"", p);
        let lim = Limits {
            max_msgs: Some(3),
            max_bytes: Some(size(b"22") * 3),
            ..per_subject(2, false, DiscardPolicy::New)
        };
        let mut s = store(kind, lim);
        s.append("a", b"", b"11", 0).unwrap();
        s.append("a", b"", b"22", 0).unwrap();
        s.append("b", b"", b"33", 0).unwrap();
        // Full by count and by bytes: a new subject is refused ...
        assert!(matches!(
            s.append("c", b"", b"44", 0),
            Err(StoreError::MaxMsgs { max: 3 })
        ));
        // ... a subject at its limit replaces its oldest with one as large or smaller ...
        assert_eq!(s.append("a", b"", b"5", 0).unwrap(), 4);
        assert_eq!(seqs(s.as_ref()), vec![2, 3, 4]);
        // ... but not with a larger one when that goes over `max_bytes`.
        assert!(matches!(
            s.append("a", b"", b"66666", 0),
            Err(StoreError::MaxBytes { .. })
        ));
        assert_eq!(seqs(s.as_ref()), vec![2, 3, 4]);
    }
}
