//! Sealed-segment index: a checksummed little-endian binary file (not rkyv), and the segment
//! scan that rebuilds it.
//!
//! Layout: `b"TXIDX001"`, segment first seq u64, segment length u64, entry count u32, entries
//! `[seq u64][offset u64][len u32][ts i64][subject number u32]`, subject count u32, subjects
//! `[len u16][bytes][last seq u64]`, then a CRC32C u32 over everything before it.

use crate::frame::{self, FrameError, FRAME_HEADER};
use crate::types::RECORD_OVERHEAD;

const MAGIC: &[u8; 8] = b"TXIDX001";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxEntry {
    pub seq: u64,
    pub off: u64,
    pub len: u32,
    pub ts: i64,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegIndex {
    pub first_seq: u64,
    pub seg_len: u64,
    pub entries: Vec<IdxEntry>,
}

impl SegIndex {
    pub fn encode(&self) -> Vec<u8> {
        let mut subjects: Vec<(&str, u64)> = Vec::new();
        let mut numbers = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(32 + self.entries.len() * 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.seg_len.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            let n = *numbers.entry(e.subject.as_str()).or_insert_with(|| {
                subjects.push((e.subject.as_str(), 0));
                subjects.len() - 1
            });
            subjects[n].1 = e.seq;
            out.extend_from_slice(&e.seq.to_le_bytes());
            out.extend_from_slice(&e.off.to_le_bytes());
            out.extend_from_slice(&e.len.to_le_bytes());
            out.extend_from_slice(&e.ts.to_le_bytes());
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        out.extend_from_slice(&(subjects.len() as u32).to_le_bytes());
        for (s, last) in &subjects {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(&last.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// `None` for anything that fails the checksum or does not parse.
    pub fn decode(buf: &[u8]) -> Option<SegIndex> {
        let body_len = buf.len().checked_sub(4)?;
        let (body, crc) = buf.split_at(body_len);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC {
            return None;
        }
        let first_seq = r.u64()?;
        let seg_len = r.u64()?;
        let n = r.u32()? as usize;
        let mut raw = Vec::with_capacity(n.min(body.len() / 32));
        for _ in 0..n {
            raw.push((
                r.u64()?,
                r.u64()?,
                r.u32()?,
                r.u64()? as i64,
                r.u32()? as usize,
            ));
        }
        let ns = r.u32()? as usize;
        let mut subjects = Vec::with_capacity(ns.min(body.len()));
        for _ in 0..ns {
            let len = r.u16()? as usize;
            let s = std::str::from_utf8(r.take(len)?).ok()?.to_string();
            let _last = r.u64()?;
            subjects.push(s);
        }
        if !r.0.is_empty() {
            return None;
        }
        let entries = raw
            .into_iter()
            .map(|(seq, off, len, ts, sn)| {
                Some(IdxEntry {
                    seq,
                    off,
                    len,
                    ts,
                    subject: subjects.get(sn)?.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SegIndex {
            first_seq,
            seg_len,
            entries,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
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
                    ts: 1,
                    subject: "a".into(),
                },
                IdxEntry {
                    seq: 6,
                    off: 40,
                    len: 60,
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
