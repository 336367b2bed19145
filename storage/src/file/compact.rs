//! Compaction of sparse sealed segments, one segment per call so the owner can run it from a
//! timer without stalling appends for long.
//!
//! A segment keeps its name (`<first seq>.seg`) and its index's first sequence; only its live
//! records are copied, byte for byte, into `<name>.tmp`, synced, and an index for the new
//! layout is written as `<idx>.tmp`. Then the segment is renamed over the old one, the index
//! over the old index, and the folder synced. The new segment is always strictly shorter than
//! the old one, so whichever rename a crash leaves undone, the index found on open names a
//! segment length that does not match and the index is rebuilt from the segment actually
//! there: recovery sees the old segment or the new one, never a mix. Temporary files are
//! removed on open. Tombstones of records compaction removed are dropped at the next open,
//! which keeps only those whose record still exists.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::Path;

use super::{idx_name, index, seg_name, FileStore, SegIndex};
use crate::error::{Result, StoreError};
use crate::frame;
use crate::io::{read_all, Io};

/// What one [`FileStore::compact_step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    /// The segment's first sequence (its file name).
    pub segment_first: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_kept: u64,
}

#[derive(Debug, Default)]
pub(super) struct CompactState {
    /// Segments whose live records did not read back as the bookkeeping says; left as they are
    /// (their reads report the damage) rather than tried again on every step.
    skip: BTreeSet<u64>,
}

/// Why a segment is not rewritten; the disk is unchanged.
fn mismatch(path: &Path, what: impl Into<String>) -> StoreError {
    StoreError::corrupt(path, what.into())
}

impl FileStore {
    /// Rewrites the sealed segment (never the open one) with the lowest share of live bytes,
    /// if that share is below `compact_below`, keeping only its live records. Bounded work per
    /// call (one segment); `Ok(None)` when nothing qualifies. An error before the new segment
    /// is in place leaves the store usable; one after it fails the store like any I/O error
    /// that leaves memory and disk apart.
    pub fn compact_step(&mut self) -> Result<Option<CompactStats>> {
        self.check()?;
        let Some(first) = self.compact_candidate() else {
            return Ok(None);
        };
        if self.dirty {
            // The tombstones explaining the records about to vanish are durable first, so a
            // crash cannot bring back a state where a record is gone but its delete is not.
            let r = self.sync_now();
            self.guard(r)?;
        }
        let r = self.compact_segment(first);
        if let Err(e @ StoreError::Corrupt { .. }) = &r {
            tracing::warn!(segment = first, error = %e, "segment left uncompacted");
            self.compact.skip.insert(first);
        }
        r.map(Some)
    }

    /// Runs [`FileStore::compact_step`] until nothing qualifies (tests and tools).
    pub fn compact_all(&mut self) -> Result<Vec<CompactStats>> {
        let mut out = Vec::new();
        while let Some(s) = self.compact_step()? {
            out.push(s);
        }
        Ok(out)
    }

    fn compact_candidate(&self) -> Option<u64> {
        let below = self.cfg.compact_below;
        if below.is_nan() || below <= 0.0 {
            return None;
        }
        self.segs
            .iter()
            .filter(|(f, s)| {
                **f != self.open_seg
                    && !self.seal_pending(**f)
                    && s.len > 0
                    && s.live_bytes < s.len
                    && !self.compact.skip.contains(f)
            })
            .map(|(f, s)| (s.live_bytes as f64 / s.len as f64, *f))
            .filter(|(ratio, _)| *ratio < below)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, f)| f)
    }

    fn compact_segment(&mut self, first: u64) -> Result<CompactStats> {
        let spath = self.dir.join(seg_name(first));
        let ipath = self.dir.join(idx_name(first));
        let Some(seg) = self.segs.get(&first) else {
            return Err(mismatch(&spath, "segment missing"));
        };
        let bytes_before = seg.len;
        if seg.live == 0 {
            self.drop_segment(first)?;
            return Ok(CompactStats {
                segment_first: first,
                bytes_before,
                bytes_after: 0,
                records_kept: 0,
            });
        }
        // A sealed segment holds exactly the sequences from its first up to the next one's.
        let end = self
            .segs
            .range((Bound::Excluded(first), Bound::Unbounded))
            .next()
            .map_or(u64::MAX, |(f, _)| *f);
        let data = read_all(seg.file.as_ref()).map_err(|e| StoreError::io(&spath, e))?;
        let mut out = Vec::with_capacity(usize::try_from(seg.live_bytes).unwrap_or(0));
        let mut moved = Vec::new();
        let mut at = self.core.next(first, "");
        while let Some(seq) = at.filter(|s| *s < end) {
            if let Some(loc) = self
                .core
                .get(seq)
                .map(|e| e.data)
                .filter(|l| l.seg == first)
            {
                let rec = usize::try_from(loc.off)
                    .ok()
                    .and_then(|o| data.get(o..o.checked_add(loc.len as usize)?))
                    .ok_or_else(|| mismatch(&spath, format!("record {seq} past the end")))?;
                match frame::read_msg(rec) {
                    Ok((r, len)) if r.seq == seq && len == rec.len() => {}
                    _ => return Err(mismatch(&spath, format!("record {seq} does not read back"))),
                }
                moved.push((seq, out.len() as u64));
                out.extend_from_slice(rec);
            }
            at = seq.checked_add(1).and_then(|n| self.core.next(n, ""));
        }
        let new_len = out.len() as u64;
        if moved.len() as u64 != seg.live || new_len >= bytes_before {
            // Crash safety rests on the new segment being shorter than the old one.
            return Err(mismatch(
                &spath,
                "live records do not match the bookkeeping",
            ));
        }
        let scan = index::scan(&out);
        let same = scan.valid_len == new_len
            && scan.skipped.is_empty()
            && scan.entries.len() == moved.len()
            && scan
                .entries
                .iter()
                .zip(&moved)
                .all(|(e, (seq, off))| e.seq == *seq && e.off == *off);
        if !same {
            return Err(mismatch(&spath, "rewritten segment does not scan back"));
        }
        let idx = SegIndex {
            first_seq: first,
            seg_len: new_len,
            entries: scan.entries,
        };
        let seg_tmp = self.dir.join(format!("{}.tmp", seg_name(first)));
        let idx_tmp = self.dir.join(format!("{}.tmp", idx_name(first)));
        let io = self.io.clone();
        let staged = write_synced(io.as_ref(), &seg_tmp, &out)
            .and_then(|()| write_synced(io.as_ref(), &idx_tmp, &idx.encode()));
        if let Err(e) = staged {
            for p in [&seg_tmp, &idx_tmp] {
                let _ = io.remove(p);
            }
            return Err(e);
        }
        drop(data);
        // From the first rename on, the disk may hold the new layout while memory describes
        // the old one: any failure fails the store (a reopen recovers either layout).
        let swap = io
            .rename(&seg_tmp, &spath)
            .map_err(|e| StoreError::io(&spath, e))
            .and_then(|()| {
                io.rename(&idx_tmp, &ipath)
                    .map_err(|e| StoreError::io(&ipath, e))
            })
            .and_then(|()| {
                io.sync_dir(&self.dir)
                    .map_err(|e| StoreError::io(&self.dir, e))
            })
            .and_then(|()| {
                io.open(&spath, false)
                    .map_err(|e| StoreError::io(&spath, e))
            });
        let file = self.guard(swap)?;
        let Some(seg) = self.segs.get_mut(&first) else {
            let r = Err(mismatch(&spath, "segment missing"));
            return self.guard(r);
        };
        seg.file = file.into();
        self.ahead.forget(first);
        seg.len = new_len;
        seg.live_bytes = new_len;
        for (seq, off) in &moved {
            if let Some(loc) = self.core.data_mut(*seq) {
                loc.off = *off;
            }
        }
        tracing::debug!(
            segment = first,
            bytes_before,
            bytes_after = new_len,
            "compacted segment"
        );
        Ok(CompactStats {
            segment_first: first,
            bytes_before,
            bytes_after: new_len,
            records_kept: moved.len() as u64,
        })
    }
}

/// Writes a whole file and syncs it, at exactly `data`'s length (direct I/O pads blocks).
fn write_synced(io: &dyn Io, path: &Path, data: &[u8]) -> Result<()> {
    let err = |e| StoreError::io(path, e);
    let f = io.open(path, true).map_err(err)?;
    f.set_len(0).map_err(err)?;
    f.write_all_at(data, 0).map_err(err)?;
    f.set_len(data.len() as u64).map_err(err)?;
    f.sync_data().map_err(err)
}

#[cfg(test)]
mod tests;
