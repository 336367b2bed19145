use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};

use crate::file::{FileStore, FileStoreConfig, IoKind, RecoveryReport};
use crate::io::Io;
use crate::sim_io::SimIo;
use crate::store::Store;
use crate::types::{StoredMsg, StreamState};

/// A body no other message's body contains, so its bytes can be looked for on disk.
fn body(seq: u64) -> Vec<u8> {
    format!("body-{seq:08}-").repeat(6).into_bytes()
}

fn subject(seq: u64) -> String {
    format!("c.{}", seq % 3)
}

fn cfg() -> FileStoreConfig {
    FileStoreConfig {
        segment_bytes: 4096,
        ..Default::default()
    }
}

/// Appends `n` messages (about 34 per 4 KiB segment) and deletes four in five, a third of
/// those with overwrite.
fn fill(s: &mut FileStore, n: u64) {
    for seq in 1..=n {
        assert_eq!(
            s.append(&subject(seq), b"hdr", &body(seq), seq as i64)
                .unwrap(),
            seq
        );
    }
    for seq in (1..=n).filter(|s| s % 5 != 0) {
        assert!(s.delete(seq, seq % 3 == 0).unwrap());
    }
}

struct Expect {
    state: StreamState,
    live: BTreeMap<u64, StoredMsg>,
}

fn expect(s: &FileStore) -> Expect {
    let state = s.state();
    let live = (0..=state.last_seq + 1)
        .filter_map(|q| s.load(q).unwrap().map(|m| (q, m)))
        .collect();
    Expect { state, live }
}

/// Everything a reader can see matches: state, every sequence (deleted ones absent), the
/// `load_next` walk with and without a subject, and `load_last` per subject and wildcard.
fn check(s: &FileStore, e: &Expect, ctx: &str) {
    assert_eq!(s.state(), e.state, "{ctx}");
    for seq in 0..=e.state.last_seq + 2 {
        assert_eq!(
            s.load(seq).unwrap().as_ref(),
            e.live.get(&seq),
            "{ctx}: seq {seq}"
        );
    }
    for filter in ["", "c.0", "c.1", "c.*"] {
        let mut walk = Vec::new();
        let mut from = 0;
        while let Some(m) = s.load_next(from, filter).unwrap() {
            from = m.seq + 1;
            walk.push(m);
        }
        let want: Vec<&StoredMsg> = e
            .live
            .values()
            .filter(|m| crate::subject::matches(filter, &m.subject))
            .collect();
        assert_eq!(
            walk.iter().collect::<Vec<_>>(),
            want,
            "{ctx}: walk {filter}"
        );
        assert_eq!(
            s.load_last(filter).unwrap().as_ref(),
            want.last().copied(),
            "{ctx}: last {filter}"
        );
    }
}

fn seg_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Whether a deleted message's body is still anywhere in a segment file.
fn on_disk(dir: &Path, seq: u64) -> bool {
    let needle = format!("body-{seq:08}-");
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        p.extension().is_some_and(|x| x == "seg")
            && std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
    })
}

#[test]
fn compaction_keeps_live_messages_and_drops_deleted_ones() {
    compaction_round_trip(IoKind::Buffered);
}

#[test]
fn compaction_with_direct_io() {
    let dir = tempfile::tempdir().unwrap();
    if !crate::direct_io::direct_supported(dir.path()) {
        return;
    }
    compaction_round_trip(IoKind::Direct);
}

fn compaction_round_trip(kind: IoKind) {
    let dir = tempfile::tempdir().unwrap();
    let io: Arc<dyn Io> = kind.io();
    let c = FileStoreConfig { io: kind, ..cfg() };
    let mut s = FileStore::open(io.clone(), dir.path(), c.clone()).unwrap();
    fill(&mut s, 300);
    let mut e = expect(&s);
    assert_eq!(e.live.len(), 60);
    let open_first = s.open_seg;
    let sealed = s.segs.len() - 1;
    assert!(sealed >= 6, "only {sealed} sealed segments");
    let before = seg_bytes(dir.path());
    // Records deleted without overwrite are still on disk before compaction.
    assert!(on_disk(dir.path(), 1));

    let stats = s.compact_all().unwrap();
    assert_eq!(stats.len(), sealed, "{stats:?}");
    for st in &stats {
        assert!(st.bytes_after < st.bytes_before / 2, "{st:?}");
        assert!(st.records_kept > 0 && st.segment_first < open_first);
    }
    let kept: u64 = stats.iter().map(|st| st.records_kept).sum();
    assert_eq!(kept, e.live.range(..open_first).count() as u64);
    let after = seg_bytes(dir.path());
    assert!(after < before / 2, "{before} -> {after}");
    assert_eq!(
        s.compact_all().unwrap(),
        vec![],
        "dense segments are left alone"
    );
    check(&s, &e, "after compaction");
    for seq in (1..open_first).filter(|q| !e.live.contains_key(q)) {
        assert!(!on_disk(dir.path(), seq), "deleted {seq} still on disk");
    }

    // Moved records are where the bookkeeping says: an overwriting delete of one scrubs it
    // and nothing around it, and appends go on.
    let victim = *e.live.keys().nth(1).unwrap();
    assert!(s.delete(victim, true).unwrap());
    e.live.remove(&victim);
    for seq in 301..=310 {
        s.append(&subject(seq), b"hdr", &body(seq), seq as i64)
            .unwrap();
    }
    let e2 = expect(&s);
    assert_eq!(e2.live.len(), e.live.len() + 10);
    assert_eq!(
        e2.live.range(..=300).collect::<Vec<_>>(),
        e.live.iter().collect::<Vec<_>>()
    );
    assert!(!on_disk(dir.path(), victim));
    let sealed = s.segs.len() - 1;
    drop(s);

    let s = FileStore::open(io.clone(), dir.path(), c.clone()).unwrap();
    assert_eq!(s.recovery_report(), &RecoveryReport::default());
    check(&s, &e2, "reopened");
    drop(s);

    // The rewritten segments alone (indexes rebuilt from them) give the same store.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "idx") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let s = FileStore::open(io, dir.path(), c).unwrap();
    assert_eq!(s.recovery_report().rebuilt_indexes.len(), sealed);
    assert_eq!(s.recovery_report().skipped_records, vec![]);
    check(&s, &e2, "indexes rebuilt");
}

#[test]
fn threshold_decides_and_zero_disables() {
    let io = SimIo::new();
    let open = |c: FileStoreConfig| FileStore::open(Arc::new(io.clone()), "/t", c).unwrap();
    let mut s = open(cfg());
    for seq in 1..=200 {
        s.append(&subject(seq), b"", &body(seq), 0).unwrap();
    }
    // One in four gone: 75 % live is above the default threshold.
    for seq in (1..=200).filter(|s| s % 4 == 0) {
        s.delete(seq, false).unwrap();
    }
    assert_eq!(s.compact_step().unwrap(), None);
    drop(s);
    let mut s = open(FileStoreConfig {
        compact_below: 0.8,
        ..cfg()
    });
    let first = *s.segs.keys().next().unwrap();
    let st = s.compact_step().unwrap().unwrap();
    assert!(st.bytes_after < st.bytes_before);
    // The sparsest segment goes first: make the last sealed one sparser than the others.
    let last_sealed = *s.segs.range(..s.open_seg).next_back().unwrap().0;
    assert!(last_sealed > first);
    let end = s.open_seg;
    for seq in (last_sealed..end).filter(|s| s % 4 != 0 && s % 7 != 0) {
        s.delete(seq, false).unwrap();
    }
    assert_eq!(
        s.compact_step().unwrap().unwrap().segment_first,
        last_sealed
    );
    drop(s);
    let mut s = open(FileStoreConfig {
        compact_below: 0.0,
        ..cfg()
    });
    for seq in (1..=200).filter(|s| s % 4 != 0) {
        s.delete(seq, false).unwrap();
    }
    assert_eq!(s.compact_step().unwrap(), None);
}

/// A power failure at every I/O operation of a compaction, then a reopen: every live message
/// is intact, no deleted one is back, and the reopened store can finish the job.
#[test]
fn power_failure_at_every_step_of_a_compaction() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut rebuilt = 0;
    let mut k = 0;
    loop {
        let io = SimIo::new();
        let open = || FileStore::open(Arc::new(io.clone()), "/c", cfg()).unwrap();
        let mut s = open();
        fill(&mut s, 150);
        let e = expect(&s);
        io.fail_after(k);
        let r = s.compact_step();
        let done = matches!(r, Ok(Some(_)));
        assert!(done || r.is_err(), "step {k}: {r:?}");
        drop(s);
        io.crash(|n| rng.gen_range(0..n));
        let mut s = open();
        rebuilt += usize::from(!s.recovery_report().rebuilt_indexes.is_empty());
        check(&s, &e, &format!("crash at step {k}"));
        assert!(s.compact_all().unwrap().len() >= usize::from(!done));
        check(&s, &e, &format!("compacted after crash at step {k}"));
        drop(s);
        let s = open();
        assert_eq!(s.recovery_report(), &RecoveryReport::default());
        check(&s, &e, &format!("reopened after crash at step {k}"));
        if done {
            break;
        }
        k += 1;
        assert!(k < 100, "compaction never completed");
    }
    assert!(k >= 10, "only {k} failure points");
    assert!(
        rebuilt > 0,
        "the segment-renamed, index-not window was never hit"
    );
}

/// Under the `interval` policy deletes may still be in memory only; compaction makes them
/// durable before their records vanish, so a power failure right after it brings none back.
#[test]
fn pending_deletes_are_durable_before_records_vanish() {
    let io = SimIo::new();
    let c = FileStoreConfig {
        sync: crate::types::SyncPolicy::Interval(std::time::Duration::from_secs(3600)),
        ..cfg()
    };
    let open = || FileStore::open(Arc::new(io.clone()), "/p", c.clone()).unwrap();
    let mut s = open();
    for seq in 1..=150 {
        s.append(&subject(seq), b"hdr", &body(seq), seq as i64)
            .unwrap();
    }
    s.sync().unwrap();
    for seq in (1..=150).filter(|s| s % 5 != 0) {
        assert!(s.delete(seq, false).unwrap());
    }
    let e = expect(&s);
    assert!(!s.compact_all().unwrap().is_empty());
    // A crash, not a close: nothing more is synced.
    std::mem::forget(s);
    io.crash(|n| n / 2);
    let s = open();
    check(&s, &e, "crash after compaction");
}
