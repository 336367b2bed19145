//! Sealed-segment index stored with rkyv, and the segment scan that rebuilds it.
//!
//! File: the rkyv archive of [`IndexFile`] (entries `[seq][offset][len][header len][ts]
//! [subject no.]`, a subject table with each subject's last sequence), then `b"TXIDX003"` and a
//! CRC32C over all bytes before it. Files of the previous version (`TXIDX002`, entries without
//! the header length) are still read; they are rebuilt from their segment only where the
//! store's [`crate::ByteAccounting`] needs header lengths. A restart maps the file and walks the archive in place: no decoding into
//! owned entries, no string per entry. The checksum is checked before the archive is trusted,
//! and the archive is validated (bytecheck) too, so a damaged file is never read as a guess.

use std::ops::Deref;

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::frame::{self, FrameError, FRAME_HEADER};
use crate::types::RECORD_OVERHEAD;

const MAGIC: &[u8; 8] = b"TXIDX003";
/// The version before header lengths were kept.
const MAGIC_V2: &[u8; 8] = b"TXIDX002";
const TRAILER: usize = MAGIC.len() + 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxEntry {
    pub seq: u64,
    pub off: u64,
    pub len: u32,
    /// Length of the record's header block.
    pub hdr_len: u32,
    pub ts: i64,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegIndex {
    pub first_seq: u64,
    pub seg_len: u64,
    pub entries: Vec<IdxEntry>,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
pub(super) struct RawEntry {
    pub seq: u64,
    pub off: u64,
    pub len: u32,
    /// Fills what was padding after `len` in version 2, so an entry is no larger.
    pub hdr_len: u32,
    pub ts: i64,
    /// Position in the subject table.
    pub subject: u32,
}

/// An entry of a version 2 index (no header length). Only read in place (archived); built
/// by tests that write old files.
#[derive(rkyv::Archive, rkyv::Serialize)]
#[cfg_attr(not(test), allow(dead_code))]
struct RawEntryV2 {
    seq: u64,
    off: u64,
    len: u32,
    ts: i64,
    subject: u32,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
pub(super) struct SubjectLast {
    pub name: String,
    pub last_seq: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct IndexFile {
    first_seq: u64,
    seg_len: u64,
    entries: Vec<RawEntry>,
    subjects: Vec<SubjectLast>,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
#[cfg_attr(not(test), allow(dead_code))]
struct IndexFileV2 {
    first_seq: u64,
    seg_len: u64,
    entries: Vec<RawEntryV2>,
    subjects: Vec<SubjectLast>,
}

/// The bytes of an index file: mapped, or read into an aligned buffer where mapping is not
/// available (test I/O layers).
pub enum IndexBytes {
    Mapped(memmap2::Mmap),
    Owned(AlignedVec),
}

impl Deref for IndexBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            IndexBytes::Mapped(m) => m,
            IndexBytes::Owned(v) => v,
        }
    }
}

impl IndexBytes {
    pub fn copy_of(bytes: &[u8]) -> Self {
        let mut v = AlignedVec::with_capacity(bytes.len());
        v.extend_from_slice(bytes);
        IndexBytes::Owned(v)
    }
}

/// A checked index, read in place from its bytes.
pub struct IndexView<'a> {
    file: Archived<'a>,
}

enum Archived<'a> {
    V3(&'a ArchivedIndexFile),
    V2(&'a ArchivedIndexFileV2),
}

impl<'a> IndexView<'a> {
    /// `None` for anything that fails the checksum or the archive's validation.
    pub fn check(bytes: &'a [u8]) -> Option<Self> {
        let body_len = bytes.len().checked_sub(TRAILER)?;
        let (body, trailer) = bytes.split_at(body_len);
        let (magic, crc) = trailer.split_at(MAGIC.len());
        if magic != MAGIC && magic != MAGIC_V2 {
            return None;
        }
        let mut c = crc32c::crc32c(body);
        c = crc32c::crc32c_append(c, magic);
        if c != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        // Subject numbers are checked once here so the walk below cannot fail.
        let file = if magic == MAGIC {
            let f = rkyv::access::<ArchivedIndexFile, rancor::Error>(body).ok()?;
            let n = f.subjects.len();
            if f.entries
                .iter()
                .any(|e| e.subject.to_native() as usize >= n)
            {
                return None;
            }
            Archived::V3(f)
        } else {
            let f = rkyv::access::<ArchivedIndexFileV2, rancor::Error>(body).ok()?;
            let n = f.subjects.len();
            if f.entries
                .iter()
                .any(|e| e.subject.to_native() as usize >= n)
            {
                return None;
            }
            Archived::V2(f)
        };
        Some(IndexView { file })
    }

    pub fn first_seq(&self) -> u64 {
        match self.file {
            Archived::V3(f) => f.first_seq.to_native(),
            Archived::V2(f) => f.first_seq.to_native(),
        }
    }

    pub fn seg_len(&self) -> u64 {
        match self.file {
            Archived::V3(f) => f.seg_len.to_native(),
            Archived::V2(f) => f.seg_len.to_native(),
        }
    }

    /// Whether entries carry their header block's length (false for version 2 files).
    pub fn has_header_lens(&self) -> bool {
        matches!(self.file, Archived::V3(_))
    }

    /// Calls `f(seq, offset, len, header len, ts, subject)` for every entry in order; the
    /// header length is `None` in a version 2 file.
    pub fn for_each(&self, mut f: impl FnMut(u64, u64, u32, Option<u32>, i64, &str)) {
        match self.file {
            Archived::V3(file) => {
                let subjects = &file.subjects;
                for e in file.entries.iter() {
                    if let Some(s) = subjects.get(e.subject.to_native() as usize) {
                        f(
                            e.seq.to_native(),
                            e.off.to_native(),
                            e.len.to_native(),
                            Some(e.hdr_len.to_native()),
                            e.ts.to_native(),
                            s.name.as_str(),
                        );
                    }
                }
            }
            Archived::V2(file) => {
                let subjects = &file.subjects;
                for e in file.entries.iter() {
                    if let Some(s) = subjects.get(e.subject.to_native() as usize) {
                        f(
                            e.seq.to_native(),
                            e.off.to_native(),
                            e.len.to_native(),
                            None,
                            e.ts.to_native(),
                            s.name.as_str(),
                        );
                    }
                }
            }
        }
    }
}

impl SegIndex {
    /// The subject table (each with its last sequence here) and every entry with its
    /// subject's number in that table.
    fn numbered(
        &self,
    ) -> (
        Vec<SubjectLast>,
        impl Iterator<Item = (&IdxEntry, u32)> + '_,
    ) {
        let mut subjects: Vec<SubjectLast> = Vec::new();
        let mut numbers = std::collections::HashMap::new();
        let mut per_entry = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let n = *numbers.entry(e.subject.as_str()).or_insert_with(|| {
                subjects.push(SubjectLast {
                    name: e.subject.clone(),
                    last_seq: 0,
                });
                subjects.len() - 1
            });
            if let Some(s) = subjects.get_mut(n) {
                s.last_seq = e.seq;
            }
            per_entry.push(n as u32);
        }
        (subjects, self.entries.iter().zip(per_entry))
    }

    pub fn encode(&self) -> Vec<u8> {
        let (subjects, numbered) = self.numbered();
        let mut entries: Vec<RawEntry> = numbered
            .map(|(e, n)| RawEntry {
                seq: e.seq,
                off: e.off,
                len: e.len,
                hdr_len: e.hdr_len,
                ts: e.ts,
                subject: n,
            })
            .collect();
        encode_raw(self.first_seq, self.seg_len, &mut entries, subjects)
    }

    /// The index in the version 2 format (no header lengths), as stores written before
    /// version 3 left it: for compatibility tests.
    #[cfg(test)]
    pub(crate) fn encode_v2(&self) -> Vec<u8> {
        let (subjects, numbered) = self.numbered();
        let entries: Vec<RawEntryV2> = numbered
            .map(|(e, n)| RawEntryV2 {
                seq: e.seq,
                off: e.off,
                len: e.len,
                ts: e.ts,
                subject: n,
            })
            .collect();
        let file = IndexFileV2 {
            first_seq: self.first_seq,
            seg_len: self.seg_len,
            entries,
            subjects,
        };
        let mut out = rkyv::to_bytes::<rancor::Error>(&file)
            .map(|v| v.to_vec())
            .unwrap_or_default();
        out.extend_from_slice(MAGIC_V2);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Owned entries; `None` for anything that fails the checks. A version 2 file's header
    /// lengths read as 0.
    pub fn decode(buf: &[u8]) -> Option<SegIndex> {
        let bytes = IndexBytes::copy_of(buf);
        let view = IndexView::check(&bytes)?;
        let mut entries = Vec::new();
        view.for_each(|seq, off, len, hdr_len, ts, subject| {
            entries.push(IdxEntry {
                seq,
                off,
                len,
                hdr_len: hdr_len.unwrap_or(0),
                ts,
                subject: subject.to_string(),
            })
        });
        Some(SegIndex {
            first_seq: view.first_seq(),
            seg_len: view.seg_len(),
            entries,
        })
    }
}

/// The index file's bytes for `entries` (given back empty, capacity kept, so the open
/// segment's next index reuses the allocation).
pub(super) fn encode_raw(
    first_seq: u64,
    seg_len: u64,
    entries: &mut Vec<RawEntry>,
    subjects: Vec<SubjectLast>,
) -> Vec<u8> {
    let file = IndexFile {
        first_seq,
        seg_len,
        entries: std::mem::take(entries),
        subjects,
    };
    // Serialising plain integers, strings and vectors into memory has no failure mode
    // but allocation; an empty index (then rebuilt on open) is the fallback.
    let mut out = rkyv::to_bytes::<rancor::Error>(&file)
        .map(|v| v.to_vec())
        .unwrap_or_default();
    *entries = file.entries;
    entries.clear();
    out.extend_from_slice(MAGIC);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What a scan of a segment's bytes found.
#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<IdxEntry>,
    /// Where the valid records end: a torn or corrupt tail starts here.
    pub valid_len: u64,
    /// Offsets of corrupt records skipped because a valid record follows them.
    pub skipped: Vec<u64>,
}

/// Walks the records of a segment. A bad record is skipped only when its declared length leads
/// to a valid record with a higher sequence (a flipped bit mid-file); otherwise the scan ends
/// there, which is where a torn write ends the open segment.
pub fn scan(data: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut off = 0usize;
    let mut last_seq = 0u64;
    while off < data.len() {
        let rest = &data[off..];
        match frame::read_msg(rest) {
            Ok((rec, len)) if rec.seq > last_seq => {
                if let Ok(subject) = std::str::from_utf8(rec.subject) {
                    out.entries.push(IdxEntry {
                        seq: rec.seq,
                        off: off as u64,
                        len: len as u32,
                        hdr_len: rec.headers.len() as u32,
                        ts: rec.ts,
                        subject: subject.to_string(),
                    });
                } else {
                    out.skipped.push(off as u64);
                }
                last_seq = rec.seq;
                off += len;
            }
            Ok(_) | Err(FrameError::BadCrc | FrameError::BadLength | FrameError::Short) => {
                let next = frame::declared_len(rest)
                    .filter(|l| *l >= RECORD_OVERHEAD as usize && *l >= FRAME_HEADER)
                    .and_then(|l| rest.get(l..).map(|r| (l, r)));
                match next.map(|(l, r)| (l, frame::read_msg(r))) {
                    Some((l, Ok((rec, _)))) if rec.seq > last_seq => {
                        out.skipped.push(off as u64);
                        off += l;
                    }
                    _ => break,
                }
            }
        }
    }
    out.valid_len = off as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trip_and_bit_flips() {
        let idx = SegIndex {
            first_seq: 5,
            seg_len: 100,
            entries: vec![
                IdxEntry {
                    seq: 5,
                    off: 0,
                    len: 40,
                    hdr_len: 0,
                    ts: 1,
                    subject: "a".into(),
                },
                IdxEntry {
                    seq: 6,
                    off: 40,
                    len: 60,
                    hdr_len: 7,
                    ts: 2,
                    subject: "b.c".into(),
                },
            ],
        };
        let buf = idx.encode();
        assert_eq!(SegIndex::decode(&buf), Some(idx));
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(SegIndex::decode(&b), None, "bit {bit}");
        }
        for cut in 0..buf.len() {
            assert_eq!(SegIndex::decode(&buf[..cut]), None);
        }
    }

    /// A version 2 file (no header lengths) still reads, its header lengths as unknown, and an
    /// entry of version 3 is no larger than one of version 2 (the new field fills padding).
    #[test]
    fn version_2_index_still_reads() {
        let idx = SegIndex {
            first_seq: 5,
            seg_len: 100,
            entries: vec![IdxEntry {
                seq: 5,
                off: 0,
                len: 40,
                hdr_len: 3,
                ts: 1,
                subject: "a".into(),
            }],
        };
        let v2 = idx.encode_v2();
        let bytes = IndexBytes::copy_of(&v2);
        let view = IndexView::check(&bytes).unwrap();
        assert!(!view.has_header_lens());
        let mut seen = Vec::new();
        view.for_each(|seq, off, len, hdr, ts, s| {
            seen.push((seq, off, len, hdr, ts, s.to_string()))
        });
        assert_eq!(seen, vec![(5, 0, 40, None, 1, "a".to_string())]);
        let v3 = IndexBytes::copy_of(&idx.encode());
        assert!(IndexView::check(&v3).unwrap().has_header_lens());
        assert_eq!(
            std::mem::size_of::<ArchivedRawEntry>(),
            std::mem::size_of::<ArchivedRawEntryV2>()
        );
        let mut bad = v2.clone();
        let n = bad.len();
        bad[n - 10] ^= 1;
        assert!(IndexView::check(&IndexBytes::copy_of(&bad)).is_none());
    }

    #[test]
    fn scan_skips_mid_corruption_and_stops_at_torn_tail() {
        let mut data = Vec::new();
        for seq in 1..=3 {
            frame::encode_msg(&mut data, seq, 0, b"s", b"", b"xyz");
        }
        let rec = data.len() / 3;
        let mut bad = data.clone();
        bad[rec + 20] ^= 1;
        let s = scan(&bad);
        assert_eq!(
            s.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(s.skipped, vec![rec as u64]);
        let s = scan(&data[..data.len() - 2]);
        assert_eq!(s.entries.len(), 2);
        assert_eq!(s.valid_len, 2 * rec as u64);
    }
}
