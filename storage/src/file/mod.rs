//! The file store: a folder per stream holding `<first seq:020>.seg` segments, `.idx` indexes
//! of sealed segments and `deletes.log`. Writes go through [`Io`] (std pwrite + fdatasync).

mod compact;
mod hot_tail;
mod index;
mod open_index;
mod read_ahead;
mod syncer;
mod tombstones;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::core::{validate, Core};
use crate::error::{Result, StoreError};
use crate::frame;
use crate::io::{read_all, Io, IoFile};
use crate::store::Store;
use crate::types::{
    msg_size, ByteAccounting, Limits, MsgRef, NewMsg, PurgeRequest, StoredMsg, StreamState,
    SyncPolicy,
};

pub use compact::CompactStats;
pub use index::{scan, IdxEntry, IndexBytes, IndexView, Scan, SegIndex};
pub use syncer::DurableNotify;

#[derive(Debug, Clone, PartialEq)]
pub struct FileStoreConfig {
    pub limits: Limits,
    pub sync: SyncPolicy,
    /// A segment is sealed once it reaches this size.
    pub segment_bytes: u64,
    /// Which [`Io`] [`FileStore::open_fs`] uses.
    pub io: IoKind,
    /// Memory for the most recent appends of the open segment, read without a file read.
    pub hot_cache_bytes: usize,
    /// [`FileStore::compact_step`] rewrites a sealed segment whose live bytes are below this
    /// fraction of its length; 0 disables compaction.
    pub compact_below: f64,
    /// How message bytes are counted (`state().bytes`, `max_bytes`, `max_msg_size`); the records
    /// on disk are the same whatever it is. nats-server's file store is
    /// [`ByteAccounting::NatsFile`].
    pub accounting: ByteAccounting,
}

/// How [`FileStore::open_fs`] reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoKind {
    /// pwrite/pread through the page cache ([`crate::io::StdIo`]); works on every file system.
    #[default]
    Buffered,
    /// `O_DIRECT` in aligned blocks ([`crate::direct_io::DirectIo`]); tmpfs refuses it (EINVAL).
    Direct,
}

impl IoKind {
    pub fn io(self) -> Arc<dyn Io> {
        match self {
            IoKind::Buffered => crate::io::StdIo::shared(),
            IoKind::Direct => crate::direct_io::DirectIo::shared(),
        }
    }
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        FileStoreConfig {
            limits: Limits::default(),
            sync: SyncPolicy::Always,
            segment_bytes: 64 << 20,
            io: IoKind::Buffered,
            hot_cache_bytes: 4 << 20,
            compact_below: 0.5,
            accounting: ByteAccounting::Record,
        }
    }
}

impl FileStoreConfig {
    /// The same configuration counting bytes as `accounting`.
    pub fn with_accounting(mut self, accounting: ByteAccounting) -> Self {
        self.accounting = accounting;
        self
    }
}

/// What one [`FileStore::maintain`] call did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Messages removed by `max_age`.
    pub expired: u64,
    /// The segment compacted, if one was sparse enough.
    pub compacted: Option<CompactStats>,
}

/// What opening the store had to repair; empty after a clean shutdown.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes cut from the end of the open segment (torn or corrupt tail).
    pub truncated_bytes: u64,
    /// Corrupt records stepped over, per segment file.
    pub skipped_records: Vec<(PathBuf, u64)>,
    /// Index files that failed their checksum or did not match their segment, rebuilt; also
    /// version 2 indexes (no header lengths) opened under [`ByteAccounting::NatsFile`].
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Corrupt tombstone records (their deletes are lost).
    pub corrupt_tombstones: usize,
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    seg: u64,
    off: u64,
    len: u32,
}

struct Segment {
    /// Shared with the syncer thread while a background fdatasync runs.
    file: Arc<dyn IoFile>,
    len: u64,
    live: u64,
    /// Record bytes of the live messages, for the compaction ratio.
    live_bytes: u64,
}

pub struct FileStore {
    io: Arc<dyn Io>,
    dir: PathBuf,
    cfg: FileStoreConfig,
    core: Core<Loc>,
    segs: BTreeMap<u64, Segment>,
    open_seg: u64,
    tomb: Arc<dyn IoFile>,
    tomb_len: u64,
    last_sync: Instant,
    dirty: bool,
    /// Set after an I/O error left memory and disk possibly apart; every later call fails.
    failed: bool,
    report: RecoveryReport,
    /// The encode buffer of the last batch, kept so a batch does not allocate (and fault in)
    /// a fresh one.
    scratch: Vec<u8>,
    hot: hot_tail::HotTail,
    /// What the last read from disk brought in beyond its record.
    ahead: read_ahead::ReadAhead,
    /// The open segment's index, kept as it grows.
    open_idx: open_index::OpenIndex,
    /// Every sequence up to this one is covered by an fdatasync the owner ran itself.
    synced_seq: u64,
    /// Background fdatasyncs for [`FileStore::append_batch_pipelined`], started on first use.
    syncer: Option<syncer::Syncer>,
    /// Set while a pipelined append runs: its sync is the syncer's job, not the call's.
    deferring: bool,
    /// Sealed segments left with no live message, and the sequence whose durability makes
    /// their removal safe (`u64::MAX` until the batch that emptied them is written). Removing
    /// a segment before the tombstones (and the appends) that emptied it are on disk could,
    /// after a power cut, lose acknowledged messages and hand their sequences out again.
    retired: Vec<(u64, u64)>,
    /// Tombstones written since the file was last synced or handed to the syncer.
    tomb_unsynced: bool,
    /// Tombstones of pipelined batches, each with the sequence that must be durable first.
    deferred_tombs: Vec<(u64, Vec<u8>)>,
    /// Segments a pipelined batch sealed, handed to the syncer with the batch's request.
    rolled: Vec<syncer::Seal>,
    /// Seals handed (or about to be handed) to the syncer so far; the syncer finishes them in
    /// this order.
    seals_requested: u64,
    /// Segments whose seal (sync, index) may not be finished yet, with their seal's number:
    /// their files are neither removed nor compacted until it is.
    pending_seals: Vec<(u64, u64)>,
    compact: compact::CompactState,
}

/// A larger encode buffer is given back after its batch rather than kept.
const SCRATCH_KEEP: usize = 4 << 20;

const TOMBS: &str = "deletes.log";

fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}

fn idx_name(first: u64) -> String {
    format!("{first:020}.idx")
}

impl FileStore {
    /// Opens on the real file system through the [`Io`] that `cfg.io` names.
    pub fn open_fs(dir: impl AsRef<Path>, cfg: FileStoreConfig) -> Result<Self> {
        FileStore::open(cfg.io.io(), dir, cfg)
    }

    pub fn open(io: Arc<dyn Io>, dir: impl AsRef<Path>, cfg: FileStoreConfig) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let ioe = |p: &Path| {
            let p = p.to_path_buf();
            move |e| StoreError::io(p, e)
        };
        io.create_dir_all(&dir).map_err(ioe(&dir))?;
        let names = io.list(&dir).map_err(ioe(&dir))?;
        let mut seg_firsts = BTreeSet::new();
        for n in &names {
            if let Some(num) = n.strip_suffix(".seg") {
                if let Ok(first) = num.parse::<u64>() {
                    seg_firsts.insert(first);
                }
            } else if n.ends_with(".tmp") {
                let p = dir.join(n);
                io.remove(&p).map_err(ioe(&p))?;
            }
        }
        let mut report = RecoveryReport::default();

        let tpath = dir.join(TOMBS);
        let tfile: Arc<dyn IoFile> = io.open(&tpath, true).map_err(ioe(&tpath))?.into();
        let tdata = read_all(tfile.as_ref()).map_err(ioe(&tpath))?;
        let tombs = tombstones::parse(&tdata);
        report.corrupt_tombstones = tombs.corrupt;

        let mut core: Core<Loc> = Core::default();
        let mut segs = BTreeMap::new();
        // Deleted sequences whose record still exists: their tombstones must be kept.
        let mut seen = BTreeSet::new();
        let open_first = seg_firsts.iter().next_back().copied();
        let mut open_idx = open_index::OpenIndex::default();
        let accounting = cfg.accounting;
        for &first in &seg_firsts {
            // A segment is named after the sequence that was next when it was created: even
            // if everything in it was lost, no sequence below that is handed out again.
            core.bump_last_seq(first.saturating_sub(1));
            let spath = dir.join(seg_name(first));
            let file: Arc<dyn IoFile> = io.open(&spath, false).map_err(ioe(&spath))?.into();
            let mut len = file.len().map_err(ioe(&spath))?;
            let (mut live, mut live_bytes) = (0, 0);
            // `hdr_len` is `None` only from a version 2 index, accepted only where the
            // accounting does not need it.
            let mut add =
                |seq: u64, off: u64, rlen: u32, hdr_len: Option<u32>, ts: i64, subject: &str| {
                    core.bump_last_seq(seq);
                    if seq < tombs.floor {
                        return;
                    }
                    if tombs.deleted.contains(&seq) {
                        seen.insert(seq);
                        return;
                    }
                    live += 1;
                    live_bytes += u64::from(rlen);
                    let loc = Loc {
                        seg: first,
                        off,
                        len: rlen,
                    };
                    let size = accounting.of_record(u64::from(rlen), hdr_len.unwrap_or(0) > 0);
                    core.insert(seq, subject, ts, size, loc);
                };
            if Some(first) == open_first {
                let data = read_all(file.as_ref()).map_err(ioe(&spath))?;
                let s = index::scan(&data);
                if s.valid_len < len {
                    tracing::warn!(path = %spath.display(), at = s.valid_len, "cutting torn or corrupt tail");
                    report.truncated_bytes = len - s.valid_len;
                    file.set_len(s.valid_len).map_err(ioe(&spath))?;
                    file.sync_data().map_err(ioe(&spath))?;
                    len = s.valid_len;
                }
                if !s.skipped.is_empty() {
                    report
                        .skipped_records
                        .push((spath.clone(), s.skipped.len() as u64));
                }
                for e in &s.entries {
                    add(e.seq, e.off, e.len, Some(e.hdr_len), e.ts, &e.subject);
                    open_idx.push_str(e.seq, e.off, e.len, e.hdr_len, e.ts, &e.subject);
                }
            } else {
                let ipath = dir.join(idx_name(first));
                let bytes = io.read_index(&ipath).ok();
                let view = bytes
                    .as_deref()
                    .and_then(IndexView::check)
                    .filter(|v| v.first_seq() == first && v.seg_len() == len)
                    // A version 2 index lacks header lengths; rebuilt (once) if they count.
                    .filter(|v| v.has_header_lens() || !accounting.needs_header_len());
                match view {
                    Some(v) => v.for_each(&mut add),
                    None => {
                        let entries = Self::rebuild_index(
                            io.as_ref(),
                            &dir,
                            first,
                            file.as_ref(),
                            len,
                            &mut report,
                        )?;
                        for e in &entries {
                            add(e.seq, e.off, e.len, Some(e.hdr_len), e.ts, &e.subject);
                        }
                    }
                }
            }
            segs.insert(
                first,
                Segment {
                    file,
                    len,
                    live,
                    live_bytes,
                },
            );
        }
        core.bump_last_seq(tombs.floor.saturating_sub(1));
        core.bump_last_seq(tombs.last_seq);
        if let Some(max) = tombs.deleted.iter().next_back() {
            core.bump_last_seq(*max);
        }

        let mut store = FileStore {
            io,
            dir,
            cfg,
            core,
            segs,
            open_seg: 0,
            tomb: tfile,
            tomb_len: 0,
            last_sync: Instant::now(),
            dirty: false,
            failed: false,
            report,
            scratch: Vec::new(),
            hot: hot_tail::HotTail::default(),
            ahead: read_ahead::ReadAhead::default(),
            open_idx,
            synced_seq: 0,
            syncer: None,
            deferring: false,
            retired: Vec::new(),
            tomb_unsynced: false,
            deferred_tombs: Vec::new(),
            rolled: Vec::new(),
            seals_requested: 0,
            pending_seals: Vec::new(),
            compact: compact::CompactState::default(),
        };
        // Recovery read the tombstones and the open segment, possibly from the page cache of a
        // process that crashed: make them durable before trusting them (removing segments,
        // reporting `durable_seq`).
        store
            .tomb
            .sync_data()
            .map_err(|e| StoreError::io(store.dir.join(TOMBS), e))?;
        if let Some(f) = open_first {
            if let Some(s) = store.segs.get(&f) {
                s.file
                    .sync_data()
                    .map_err(|e| StoreError::io(store.dir.join(seg_name(f)), e))?;
            }
        }
        // Sealed segments with nothing left go; the open one stays so writing can go on there.
        let empty: Vec<u64> = store
            .segs
            .iter()
            .filter(|(f, s)| Some(**f) != open_first && s.live == 0)
            .map(|(f, _)| *f)
            .collect();
        for f in empty {
            store.drop_segment(f)?;
        }
        match open_first {
            Some(f) => store.open_seg = f,
            None => store.new_segment()?,
        }
        store.hot = hot_tail::HotTail::new(store.cfg.hot_cache_bytes, store.open_len());
        let floor = store.core.first_seq().unwrap_or(store.core.last_seq() + 1);
        store.rewrite_tombstones(&tombs.deleted, &seen, floor)?;
        // What recovery found on disk is what survives a crash from here on.
        store.synced_seq = store.core.last_seq();
        Ok(store)
    }

    /// Rebuilds a missing or damaged index from its segment.
    fn rebuild_index(
        io: &dyn Io,
        dir: &Path,
        first: u64,
        seg: &dyn IoFile,
        seg_len: u64,
        report: &mut RecoveryReport,
    ) -> Result<Vec<IdxEntry>> {
        let ipath = dir.join(idx_name(first));
        tracing::warn!(path = %ipath.display(), "index missing, corrupt or of a version without header lengths; rebuilding from its segment");
        report.rebuilt_indexes.push(ipath);
        let spath = dir.join(seg_name(first));
        let data = read_all(seg).map_err(|e| StoreError::io(&spath, e))?;
        let s = index::scan(&data);
        if !s.skipped.is_empty() || s.valid_len < seg_len {
            tracing::warn!(path = %spath.display(), skipped = s.skipped.len(), valid = s.valid_len, "corrupt records in sealed segment");
            report.skipped_records.push((
                spath,
                s.skipped.len() as u64 + u64::from(s.valid_len < seg_len),
            ));
        }
        let idx = SegIndex {
            first_seq: first,
            seg_len,
            entries: s.entries,
        };
        write_atomic(io, dir, &idx_name(first), &idx.encode())?;
        Ok(idx.entries)
    }

    /// Compacts `deletes.log` to what still matters.
    fn rewrite_tombstones(
        &mut self,
        deleted: &BTreeSet<u64>,
        seen: &BTreeSet<u64>,
        floor: u64,
    ) -> Result<()> {
        let mut buf = Vec::new();
        tombstones::encode(&mut buf, tombstones::FLOOR, floor);
        tombstones::encode(&mut buf, tombstones::LAST_SEQ, self.core.last_seq());
        for s in deleted.range(floor..) {
            if seen.contains(s) {
                tombstones::encode(&mut buf, tombstones::DELETE, *s);
            }
        }
        write_atomic(self.io.as_ref(), &self.dir, TOMBS, &buf)?;
        let p = self.dir.join(TOMBS);
        self.tomb = self
            .io
            .open(&p, false)
            .map_err(|e| StoreError::io(&p, e))?
            .into();
        self.tomb_len = buf.len() as u64;
        Ok(())
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes everything written so far durable (the `interval` policy's timer calls this).
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        if self.dirty {
            let r = self.sync_now();
            self.guard(r)?;
        }
        Ok(())
    }

    fn sync_now(&mut self) -> Result<()> {
        // Segments sealed by pipelined batches are synced, and their new segments' folder
        // entries too, by the syncer: wait for it before claiming everything is durable.
        self.settle_seals()?;
        // Appends before tombstones: a tombstone a limit wrote for an append is durable only
        // if that append is, so a power cut never leaves a message evicted by one that is gone.
        if let Some(s) = self.segs.get(&self.open_seg) {
            s.file
                .sync_data()
                .map_err(|e| StoreError::io(self.dir.join(seg_name(self.open_seg)), e))?;
        }
        // Every append is durable now, so every deferred eviction may be written.
        self.write_evictions_upto(u64::MAX)?;
        self.tomb
            .sync_data()
            .map_err(|e| StoreError::io(self.dir.join(TOMBS), e))?;
        self.dirty = false;
        self.tomb_unsynced = false;
        self.last_sync = Instant::now();
        self.synced_seq = self.core.last_seq();
        if let Some(s) = &self.syncer {
            s.advance(self.synced_seq);
        }
        self.reap_retired()
    }

    /// Takes a sealed segment with no live message out of service; its files go once what
    /// emptied it is durable ([`FileStore::reap_retired`]).
    fn retire_segment(&mut self, first: u64) {
        self.ahead.forget(first);
        if self.segs.remove(&first).is_some() {
            self.retired.push((first, u64::MAX));
        }
    }

    /// Everything that emptied the newly retired segments is written now: the next sync
    /// covering the last sequence makes their removal safe.
    fn arm_retired(&mut self) {
        let upto = self.core.last_seq();
        for (_, need) in self.retired.iter_mut().filter(|(_, n)| *n == u64::MAX) {
            *need = upto;
        }
    }

    /// Hands the segments sealed by a pipelined batch to the syncer (if any are left over, e.g.
    /// by a failed batch) and waits until every seal is finished.
    fn settle_seals(&mut self) -> Result<()> {
        let Some(s) = &self.syncer else {
            return Ok(());
        };
        if !self.rolled.is_empty() {
            let seals = std::mem::take(&mut self.rolled);
            s.request(self.core.last_seq(), seals, Vec::new(), true);
        }
        if self.pending_seals.is_empty() {
            return Ok(());
        }
        s.wait_seals(self.seals_requested)
            .map_err(|reason| StoreError::SyncFailed {
                path: self.dir.clone(),
                reason,
            })?;
        self.pending_seals.clear();
        Ok(())
    }

    /// Whether segment `first`'s seal may still be running on the syncer.
    fn seal_pending(&self, first: u64) -> bool {
        let done = self.syncer.as_ref().map_or(u64::MAX, |s| s.seals_done());
        self.pending_seals
            .iter()
            .any(|(f, n)| *f == first && *n > done)
    }

    /// Removes the files of retired segments whose removal is now safe.
    fn reap_retired(&mut self) -> Result<()> {
        let durable = self.durable_seq();
        if let Some(s) = &self.syncer {
            let done = s.seals_done();
            self.pending_seals.retain(|(_, n)| *n > done);
        }
        while let Some(i) = self
            .retired
            .iter()
            .position(|(f, need)| *need <= durable && !self.seal_pending(*f))
        {
            let (first, _) = self.retired.swap_remove(i);
            self.remove_segment_files(first)?;
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        if let Some(reason) = self.syncer.as_ref().and_then(|s| s.failed()) {
            return Err(StoreError::SyncFailed {
                path: self.dir.clone(),
                reason,
            });
        }
        if self.failed {
            return Err(StoreError::Failed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Appends like [`Store::append_batch`] but, under [`SyncPolicy::Always`], returns once the
    /// batch is written and hands its fdatasync to a background thread, so the next batch is
    /// encoded and written while the disk syncs this one. The sequences returned must not be
    /// acknowledged before [`FileStore::durable_seq`] reaches them (see
    /// [`FileStore::wait_durable`] and [`FileStore::set_durable_notify`]). Under
    /// `Interval` it is the same as `append_batch`.
    pub fn append_batch_pipelined(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<Result<u64>>> {
        self.check()?;
        if self.cfg.sync != SyncPolicy::Always {
            return self.append_batch(msgs);
        }
        self.start_syncer()?;
        let r = self
            .write_due_evictions()
            .and_then(|()| self.reap_retired());
        self.guard(r)?;
        self.deferring = true;
        let r = self.append_inner(msgs);
        self.deferring = false;
        let out = self.guard(r)?;
        // Segment before tombstones, as in `sync_now`; the tombstone file only when something
        // was written to it since it was last synced (a clean fdatasync can still cost a device
        // cache flush).
        let mut files = Vec::with_capacity(2);
        files.extend(self.segs.get(&self.open_seg).map(|s| s.file.clone()));
        if std::mem::take(&mut self.tomb_unsynced) {
            files.push(self.tomb.clone());
        }
        // Segments sealed by this batch: the syncer syncs them before the new one and, as a
        // new segment was created for each, the folder before publishing.
        let seals = std::mem::take(&mut self.rolled);
        let sync_dir = !seals.is_empty();
        if let Some(s) = &self.syncer {
            s.request(self.core.last_seq(), seals, files, sync_dir);
        }
        Ok(out)
    }

    fn start_syncer(&mut self) -> Result<()> {
        if self.syncer.is_none() {
            let s = syncer::Syncer::start(self.synced_seq, self.io.clone(), self.dir.clone())
                .map_err(|e| StoreError::io(&self.dir, e))?;
            self.syncer = Some(s);
        }
        Ok(())
    }

    /// Writes the tombstones of pipelined batches whose appends are durable now. A batch's
    /// evictions wait for its own appends: the syncer may fdatasync the tombstone file while
    /// the next batch is being written, and an eviction on disk before the append that caused
    /// it would, after a power cut, lose a message for one that never arrived.
    fn write_due_evictions(&mut self) -> Result<()> {
        self.write_evictions_upto(self.durable_seq())
    }

    /// Writes the deferred tombstones whose appends up to `durable` are on disk.
    fn write_evictions_upto(&mut self, durable: u64) -> Result<()> {
        let mut due = Vec::new();
        self.deferred_tombs.retain(|(need, bytes)| {
            if *need <= durable {
                due.extend_from_slice(bytes);
                false
            } else {
                true
            }
        });
        self.write_tombs(&due)
    }

    fn write_tombs(&mut self, tombs: &[u8]) -> Result<()> {
        if tombs.is_empty() {
            return Ok(());
        }
        let p = self.dir.join(TOMBS);
        self.tomb
            .write_all_at(tombs, self.tomb_len)
            .map_err(|e| StoreError::io(&p, e))?;
        self.tomb_len += tombs.len() as u64;
        self.dirty = true;
        self.tomb_unsynced = true;
        Ok(())
    }

    /// The periodic work of a store, for its owner's timer (e.g. once a second): removes
    /// messages past `max_age` as of `now`, writes the evictions of pipelined batches that
    /// became durable and removes the segments they emptied, then compacts at most one sparse
    /// segment. Bounded: one segment's copy at most.
    pub fn maintain(&mut self, now: i64) -> Result<Maintenance> {
        self.check()?;
        let expired = Store::expire(self, now)?;
        let r = self
            .write_due_evictions()
            .and_then(|()| self.reap_retired());
        self.guard(r)?;
        let compacted = self.compact_step()?;
        Ok(Maintenance { expired, compacted })
    }

    /// Every sequence up to this one is on disk (covered by a completed fdatasync).
    pub fn durable_seq(&self) -> u64 {
        let bg = self.syncer.as_ref().map_or(0, |s| s.durable());
        self.synced_seq.max(bg)
    }

    /// Blocks until `seq` is durable.
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        if self.durable_seq() >= seq {
            return Ok(());
        }
        match &self.syncer {
            Some(s) => s.wait(seq).map_err(|reason| StoreError::SyncFailed {
                path: self.dir.clone(),
                reason,
            }),
            None => Err(StoreError::Misuse {
                what: format!(
                    "waiting for sequence {seq} to be durable, but no background sync runs \
                     (interval policy: call sync)"
                ),
            }),
        }
    }

    /// Called from the syncer thread with the durable sequence after each background sync,
    /// so an event loop can acknowledge without polling.
    pub fn set_durable_notify(&mut self, f: DurableNotify) -> Result<()> {
        self.start_syncer()?;
        if let Some(s) = &self.syncer {
            s.set_notify(f);
        }
        Ok(())
    }

    fn guard<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Creates the next segment and makes its folder entry durable (pipelined batches leave
    /// that to the syncer: see [`FileStore::roll`]).
    fn new_segment(&mut self) -> Result<()> {
        let first = self.core.last_seq() + 1;
        let p = self.dir.join(seg_name(first));
        let file: Arc<dyn IoFile> = self
            .io
            .open(&p, true)
            .map_err(|e| StoreError::io(&p, e))?
            .into();
        if !self.deferring {
            self.io
                .sync_dir(&self.dir)
                .map_err(|e| StoreError::io(&self.dir, e))?;
        }
        self.segs.insert(
            first,
            Segment {
                file,
                len: 0,
                live: 0,
                live_bytes: 0,
            },
        );
        self.open_seg = first;
        self.hot.reset(0);
        Ok(())
    }

    /// Seals the open segment: sync it, write its index, start the next one. In a pipelined
    /// batch the owner only starts the next segment; the syncer cuts and syncs the sealed one
    /// and syncs the folder before the batch's sequences are published durable, then writes
    /// the index (recovery rebuilds a missing one from the segment). Until that seal is
    /// finished the segment's files are neither removed nor compacted.
    fn roll(&mut self) -> Result<()> {
        let first = self.open_seg;
        let spath = self.dir.join(seg_name(first));
        let Some(seg) = self.segs.get(&first) else {
            return Err(StoreError::internal(format!(
                "open segment {} missing",
                spath.display()
            )));
        };
        if self.deferring && self.syncer.is_some() {
            let seal = syncer::Seal {
                first,
                file: seg.file.clone(),
                len: seg.len,
                index: std::mem::take(&mut self.open_idx),
            };
            self.seals_requested += 1;
            self.pending_seals.push((first, self.seals_requested));
            self.rolled.push(seal);
            self.new_segment()?;
            if self.segs.get(&first).is_some_and(|s| s.live == 0) {
                self.retire_segment(first);
            }
            return Ok(());
        }
        // Direct I/O pads the last block; a sealed segment's length must be its records'.
        seg.file
            .set_len(seg.len)
            .and_then(|()| seg.file.sync_data())
            .map_err(|e| StoreError::io(&spath, e))?;
        let idx = self.open_idx.seal(first, seg.len);
        write_atomic(self.io.as_ref(), &self.dir, &idx_name(first), &idx)?;
        self.new_segment()?;
        if self.segs.get(&first).is_some_and(|s| s.live == 0) {
            self.retire_segment(first);
        }
        Ok(())
    }

    /// Removes a segment whose emptiness is already durable (recovery, compaction).
    fn drop_segment(&mut self, first: u64) -> Result<()> {
        self.ahead.forget(first);
        self.segs.remove(&first);
        self.remove_segment_files(first)
    }

    fn remove_segment_files(&mut self, first: u64) -> Result<()> {
        for name in [seg_name(first), idx_name(first)] {
            let p = self.dir.join(name);
            match self.io.remove(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(p, e)),
            }
        }
        Ok(())
    }

    /// Forgets a message in memory and queues its tombstone; returns the segment if it emptied.
    fn forget(&mut self, seq: u64, tombs: &mut Vec<u8>) -> Option<(Loc, Option<u64>)> {
        let e = self.core.remove(seq)?;
        tombstones::encode(tombs, tombstones::DELETE, seq);
        let seg = self.segs.get_mut(&e.data.seg)?;
        seg.live = seg.live.saturating_sub(1);
        seg.live_bytes = seg.live_bytes.saturating_sub(u64::from(e.data.len));
        let emptied = (seg.live == 0 && e.data.seg != self.open_seg).then_some(e.data.seg);
        Some((e.data, emptied))
    }

    /// Writes queued tombstones, retires emptied sealed segments, syncs per policy (which
    /// removes the retired segments' files once that sync covers what emptied them).
    fn commit_removals(&mut self, tombs: &[u8], emptied: &[u64]) -> Result<()> {
        if self.deferring {
            if !tombs.is_empty() {
                self.deferred_tombs
                    .push((self.core.last_seq(), tombs.to_vec()));
            }
        } else {
            self.write_tombs(tombs)?;
        }
        for f in emptied {
            self.retire_segment(*f);
        }
        self.arm_retired();
        self.maybe_sync()?;
        self.reap_retired()
    }

    fn maybe_sync(&mut self) -> Result<()> {
        if !self.dirty || self.deferring {
            return Ok(());
        }
        match self.cfg.sync {
            SyncPolicy::Always => self.sync_now(),
            SyncPolicy::Interval(d) if self.last_sync.elapsed() >= d => self.sync_now(),
            SyncPolicy::Interval(_) => Ok(()),
        }
    }

    fn write_open(&mut self, buf: &[u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let p = self.dir.join(seg_name(self.open_seg));
        let Some(seg) = self.segs.get_mut(&self.open_seg) else {
            return Err(StoreError::internal(format!(
                "open segment {} missing",
                p.display()
            )));
        };
        seg.file
            .write_all_at(buf, seg.len)
            .map_err(|e| StoreError::io(&p, e))?;
        seg.len += buf.len() as u64;
        self.hot.append(buf);
        self.dirty = true;
        Ok(())
    }

    fn open_len(&self) -> u64 {
        self.segs.get(&self.open_seg).map_or(0, |s| s.len)
    }

    fn append_inner(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<Result<u64>>> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let r = self.append_into(msgs, &mut buf);
        if buf.capacity() <= SCRATCH_KEEP {
            self.scratch = buf;
        }
        r
    }

    fn append_into(&mut self, msgs: &[NewMsg<'_>], buf: &mut Vec<u8>) -> Result<Vec<Result<u64>>> {
        let mut out = Vec::with_capacity(msgs.len());
        let mut tombs = Vec::new();
        let mut emptied = Vec::new();
        // Sequences taken by messages evicted as they arrived (over `max_bytes` on their own):
        // no record, only a last-sequence mark, written at once (even when pipelined) so it is
        // in the tombstone file before the sync that reports the sequence durable.
        let mut marks = Vec::new();
        for m in msgs {
            // `rec_len` is what the record takes on disk, `size` what it counts for.
            let rec_len = msg_size(m.subject, m.headers, m.payload);
            let size = self
                .cfg
                .accounting
                .msg_size(m.subject, m.headers, m.payload);
            let plan = match validate(&self.cfg.limits, m.subject, m.headers, size).and_then(|()| {
                self.core
                    .plan_append(&self.cfg.limits, m.subject, m.headers, size, m.timestamp)
            }) {
                Ok(p) => p,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            for v in plan.victims {
                if let Some((_, Some(seg))) = self.forget(v, &mut tombs) {
                    emptied.push(seg);
                }
            }
            if plan.evict_self {
                let seq = self.core.last_seq() + 1;
                self.core.bump_last_seq(seq);
                tombstones::encode(&mut marks, tombstones::LAST_SEQ, seq);
                out.push(Ok(seq));
                continue;
            }
            let base = self.open_len();
            if base > 0 && base + buf.len() as u64 + rec_len > self.cfg.segment_bytes {
                self.write_open(buf)?;
                buf.clear();
                self.roll()?;
            }
            let seq = self.core.last_seq() + 1;
            let loc = Loc {
                seg: self.open_seg,
                off: self.open_len() + buf.len() as u64,
                len: rec_len as u32,
            };
            frame::encode_msg(
                buf,
                seq,
                m.timestamp,
                m.subject.as_bytes(),
                m.headers,
                m.payload,
            );
            let name = self.core.insert(seq, m.subject, m.timestamp, size, loc);
            let hdr_len = m.headers.len() as u32;
            self.open_idx
                .push(seq, loc.off, loc.len, hdr_len, m.timestamp, name);
            if let Some(s) = self.segs.get_mut(&loc.seg) {
                s.live += 1;
                s.live_bytes += rec_len;
            }
            out.push(Ok(seq));
        }
        self.write_open(buf)?;
        // The marks go first: a torn write keeps an eviction the mark's message made only
        // with the mark.
        self.write_tombs(&marks)?;
        self.commit_removals(&tombs, &emptied)?;
        Ok(out)
    }

    fn read_msg(&self, seq: u64) -> Result<Option<StoredMsg>> {
        let mut out = None;
        self.read_ref(seq, &mut |m| {
            out = Some(StoredMsg {
                seq: m.seq,
                timestamp: m.timestamp,
                subject: m.subject.to_string(),
                headers: m.headers.to_vec(),
                payload: m.payload.to_vec(),
            })
        })?;
        Ok(out)
    }

    /// Lends record `seq` to `f` from the hot tail or the read-ahead; false when not stored.
    fn read_ref(&self, seq: u64, f: &mut dyn FnMut(MsgRef<'_>)) -> Result<bool> {
        let Some(e) = self.core.get(seq) else {
            return Ok(false);
        };
        let loc = e.data;
        let path = || self.dir.join(seg_name(loc.seg));
        let seg = self.segs.get(&loc.seg).ok_or_else(|| {
            StoreError::internal(format!("indexed segment {} missing", path().display()))
        })?;
        let mut lend = |buf: &[u8]| -> Result<()> {
            let (rec, len) = frame::read_msg(buf)
                .map_err(|e| StoreError::corrupt(path(), format!("record {seq}: {e:?}")))?;
            if rec.seq != seq || len != buf.len() {
                return Err(StoreError::corrupt(
                    path(),
                    format!("record at {} is not sequence {seq}", loc.off),
                ));
            }
            let subject = std::str::from_utf8(rec.subject).map_err(|_| {
                StoreError::corrupt(path(), format!("record {seq}: subject not UTF-8"))
            })?;
            f(MsgRef {
                seq,
                timestamp: rec.ts,
                subject,
                headers: rec.headers,
                payload: rec.payload,
            });
            Ok(())
        };
        if loc.seg == self.open_seg {
            if let Some(b) = self.hot.get(loc.off, loc.len as usize) {
                lend(b)?;
                return Ok(true);
            }
        }
        self.ahead
            .with(
                loc.seg,
                seg.file.as_ref(),
                seg.len,
                loc.off,
                loc.len as usize,
                &mut lend,
            )
            .map_err(|e| StoreError::io(path(), e))??;
        Ok(true)
    }

    /// Rewrites a deleted record in place with zeroed subject, headers and payload and a fresh
    /// CRC, so its bytes are gone but the segment still parses.
    fn scrub(&mut self, seq: u64, loc: Loc) -> Result<()> {
        let path = self.dir.join(seg_name(loc.seg));
        let Some(seg) = self.segs.get(&loc.seg) else {
            return Ok(());
        };
        let mut buf = vec![0; loc.len as usize];
        seg.file
            .read_exact_at(&mut buf, loc.off)
            .map_err(|e| StoreError::io(&path, e))?;
        let Ok((rec, _)) = frame::read_msg(&buf) else {
            return Ok(());
        };
        let (s, h, p) = (rec.subject.len(), rec.headers.len(), rec.payload.len());
        let mut out = Vec::with_capacity(buf.len());
        frame::encode_msg(&mut out, seq, rec.ts, &vec![0; s], &vec![0; h], &vec![0; p]);
        self.ahead.forget(loc.seg);
        if loc.seg == self.open_seg {
            // The cache must not go on serving the bytes just scrubbed, nor the index the name.
            self.hot.reset(seg.len);
            self.open_idx.scrub(seq);
        }
        seg.file
            .write_all_at(&out, loc.off)
            .map_err(|e| StoreError::io(&path, e))?;
        if self.cfg.sync == SyncPolicy::Always {
            seg.file.sync_data().map_err(|e| StoreError::io(&path, e))?;
        }
        Ok(())
    }

    /// [`Store::set_limits_at`]. What is written so far is made durable first (appends, and
    /// evictions pipelined batches deferred), so the removals are never on disk ahead of
    /// anything they were computed from. A removal of the stream's oldest messages (`max_msgs`,
    /// `max_bytes`, `max_age` in time order) is one floor record, whole or absent after a power
    /// cut; others (per subject) are a tombstone each.
    fn apply_limits(&mut self, limits: Limits, now: i64) -> Result<u64> {
        if self.dirty || !self.deferred_tombs.is_empty() {
            self.sync_now()?;
        }
        let victims = self.core.plan_limits(&limits, now);
        self.cfg.limits = limits;
        if victims.is_empty() {
            return Ok(0);
        }
        let floor = self
            .core
            .is_prefix(&victims)
            .then(|| victims.last().map(|l| l + 1))
            .flatten();
        self.remove_many(&victims, floor)
    }

    /// [`Store::compact`] for `seq` >= 1. What is written so far is made durable first
    /// (appends, evictions pipelined batches deferred), so the removal is never on disk ahead
    /// of them. Then one floor record `seq` stands for all of it: read back, it removes every
    /// record below `seq` and raises the last sequence to at least `seq - 1` on its own, so a
    /// power cut leaves it whole (the state after) or absent (the state before). It is synced
    /// before the call returns, under any sync policy, and only then are the sealed segments it
    /// emptied removed.
    fn compact_below(&mut self, seq: u64) -> Result<u64> {
        let victims = self.core.below(seq);
        let last = self.core.last_seq();
        if victims.is_empty() && seq - 1 <= last {
            return Ok(0);
        }
        if self.dirty || !self.deferred_tombs.is_empty() {
            self.sync_now()?;
        }
        let mut tombs = Vec::new();
        tombstones::encode(&mut tombs, tombstones::FLOOR, seq);
        // After the floor, so a torn write never keeps the raised last sequence without it.
        tombstones::encode(&mut tombs, tombstones::LAST_SEQ, last.max(seq - 1));
        let (mut scratch, mut emptied) = (Vec::new(), Vec::new());
        let mut n = 0;
        for s in &victims {
            if let Some((_, e)) = self.forget(*s, &mut scratch) {
                n += 1;
                emptied.extend(e);
            }
        }
        self.core.bump_last_seq(seq - 1);
        self.write_tombs(&tombs)?;
        for f in emptied {
            self.retire_segment(f);
        }
        self.arm_retired();
        // Syncs the floor (and reports `seq - 1` durable), then removes the retired segments.
        self.sync_now()?;
        Ok(n)
    }

    fn remove_many(&mut self, seqs: &[u64], floor: Option<u64>) -> Result<u64> {
        let mut tombs = Vec::new();
        let mut emptied = Vec::new();
        let mut n = 0;
        if let Some(f) = floor {
            // One record stands for the whole prefix; per-message ones are not needed.
            tombstones::encode(&mut tombs, tombstones::FLOOR, f);
            tombstones::encode(&mut tombs, tombstones::LAST_SEQ, self.core.last_seq());
        }
        let mut scratch = Vec::new();
        for s in seqs {
            if let Some((_, e)) = self.forget(*s, &mut scratch) {
                n += 1;
                emptied.extend(e);
            }
        }
        if floor.is_none() {
            tombs = scratch;
        }
        self.commit_removals(&tombs, &emptied)?;
        Ok(n)
    }
}

/// Writes `name` via a temporary file, fdatasync and rename, so it is whole or absent.
pub(crate) fn write_atomic(io: &dyn Io, dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let f = io.open(&tmp, true).map_err(|e| StoreError::io(&tmp, e))?;
    f.set_len(0).map_err(|e| StoreError::io(&tmp, e))?;
    f.write_all_at(data, 0)
        .map_err(|e| StoreError::io(&tmp, e))?;
    // Direct I/O leaves a synced file padded to a whole block; a checksummed file must not be.
    f.set_len(data.len() as u64)
        .map_err(|e| StoreError::io(&tmp, e))?;
    f.sync_data().map_err(|e| StoreError::io(&tmp, e))?;
    io.rename(&tmp, &dst).map_err(|e| StoreError::io(&dst, e))?;
    io.sync_dir(dir).map_err(|e| StoreError::io(dir, e))
}

impl Store for FileStore {
    fn append_batch(&mut self, msgs: &[NewMsg<'_>]) -> Result<Vec<Result<u64>>> {
        self.check()?;
        let r = self.append_inner(msgs);
        self.guard(r)
    }

    fn load(&self, seq: u64) -> Result<Option<StoredMsg>> {
        self.read_msg(seq)
    }

    fn load_last(&self, filter: &str) -> Result<Option<StoredMsg>> {
        match self.core.last(filter) {
            Some(s) => self.read_msg(s),
            None => Ok(None),
        }
    }

    fn load_next(&self, from_seq: u64, filter: &str) -> Result<Option<StoredMsg>> {
        match self.core.next(from_seq, filter) {
            Some(s) => self.read_msg(s),
            None => Ok(None),
        }
    }

    fn read_with(&self, seq: u64, f: &mut dyn FnMut(MsgRef<'_>)) -> Result<bool> {
        self.read_ref(seq, f)
    }

    fn next_seq(&self, from_seq: u64, filter: &str) -> Option<u64> {
        self.core.next(from_seq, filter)
    }

    fn contains(&self, seq: u64) -> bool {
        self.core.get(seq).is_some()
    }

    fn seq_at_time(&self, ts: i64) -> Option<u64> {
        self.core.seq_at_time(ts)
    }

    fn delete(&mut self, seq: u64, overwrite: bool) -> Result<bool> {
        self.check()?;
        let mut tombs = Vec::new();
        let Some((loc, emptied)) = self.forget(seq, &mut tombs) else {
            return Ok(false);
        };
        // The tombstone is durable before the bytes are scrubbed: a torn scrub then only
        // damages a record that is already deleted.
        let r = self.commit_removals(&tombs, &[]).and_then(|()| {
            if overwrite {
                self.scrub(seq, loc)?;
            }
            if let Some(f) = emptied {
                self.retire_segment(f);
                self.arm_retired();
                self.reap_retired()?;
            }
            Ok(())
        });
        self.guard(r)?;
        Ok(true)
    }

    fn purge(&mut self, req: &PurgeRequest) -> Result<u64> {
        self.check()?;
        let victims = self.core.plan_purge(req);
        let floor = if req
            .filter
            .as_deref()
            .is_none_or(|f| f.is_empty() || f == ">")
        {
            // Without a subject filter a purge removes a prefix of the stream.
            victims.last().map(|l| l + 1)
        } else {
            None
        };
        let r = self.remove_many(&victims, floor);
        self.guard(r)
    }

    fn compact(&mut self, seq: u64) -> Result<u64> {
        if seq == 0 {
            return Store::purge(self, &PurgeRequest::default());
        }
        self.check()?;
        let r = self.compact_below(seq);
        self.guard(r)
    }

    fn expire(&mut self, now: i64) -> Result<u64> {
        self.check()?;
        let victims = self.core.expired(&self.cfg.limits, now);
        let r = self.remove_many(&victims, None);
        self.guard(r)
    }

    fn set_limits_at(&mut self, limits: Limits, now: i64) -> Result<u64> {
        self.check()?;
        let r = self.apply_limits(limits, now);
        self.guard(r)
    }

    fn limits(&self) -> &Limits {
        &self.cfg.limits
    }

    fn state(&self) -> StreamState {
        self.core.state()
    }

    fn subject_counts(&self, filter: &str) -> BTreeMap<String, u64> {
        self.core.subject_counts(filter)
    }

    fn count_from(&self, from: u64, filter: &str) -> u64 {
        self.core.count_from(from, filter)
    }

    fn last_per_subject(&self, filter: &str) -> Vec<u64> {
        self.core.last_per_subject(filter)
    }

    fn durable_seq(&self) -> u64 {
        FileStore::durable_seq(self)
    }

    fn byte_accounting(&self) -> ByteAccounting {
        self.cfg.accounting
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        if self.dirty && !self.failed {
            if let Err(e) = self.sync_now() {
                tracing::warn!(error = %e, "sync on close failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
