//! The last stretch of a segment read from disk. A consumer replaying a stream reads records
//! in file order; serving them from one read of [`READ_AHEAD`] bytes makes that one `pread`
//! per stretch instead of one per message (the replay flamegraph spent two thirds of its time
//! in per-record `pread`).
//!
//! The bytes are a copy of what the file held when read: every change to a segment's bytes
//! other than an append (scrubbing a deleted record, compaction's rewrite, removing the
//! segment) calls [`ReadAhead::forget`] for it. Appends cannot make a copy stale: they only
//! add bytes past what was read, and a read never goes past the segment's written length.

use std::cell::RefCell;

use crate::io::IoFile;

/// Bytes read at a time for records smaller than this; larger ones are read alone.
pub(super) const READ_AHEAD: usize = 128 * 1024;

#[derive(Default)]
struct Stretch {
    seg: u64,
    off: u64,
    buf: Vec<u8>,
}

#[derive(Default)]
pub(super) struct ReadAhead {
    last: RefCell<Option<Stretch>>,
}

impl ReadAhead {
    /// Calls `f` with the `len` bytes at `off` of segment `seg` (`seg_len` bytes written),
    /// from the stretch held or a new read.
    pub(super) fn with<T>(
        &self,
        seg: u64,
        file: &dyn IoFile,
        seg_len: u64,
        off: u64,
        len: usize,
        f: impl FnOnce(&[u8]) -> T,
    ) -> std::io::Result<T> {
        let end = off + len as u64;
        {
            let last = self.last.borrow();
            if let Some(s) = last.as_ref() {
                if s.seg == seg && off >= s.off && end <= s.off + s.buf.len() as u64 {
                    let at = (off - s.off) as usize;
                    return Ok(f(&s.buf[at..at + len]));
                }
            }
        }
        if len >= READ_AHEAD || end > seg_len {
            let mut one = vec![0; len];
            file.read_exact_at(&mut one, off)?;
            return Ok(f(&one));
        }
        let want = (seg_len - off).min(READ_AHEAD as u64) as usize;
        debug_assert!(want >= len);
        let mut last = self.last.borrow_mut();
        let mut s = last.take().unwrap_or_default();
        s.buf.resize(want, 0);
        file.read_exact_at(&mut s.buf, off)?;
        s.seg = seg;
        s.off = off;
        let r = f(&s.buf[..len]);
        *last = Some(s);
        Ok(r)
    }

    /// Segment `seg`'s bytes changed (or it is gone): what was read of it is dropped.
    pub(super) fn forget(&self, seg: u64) {
        let mut last = self.last.borrow_mut();
        if last.as_ref().is_some_and(|s| s.seg == seg) {
            *last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Io, StdIo};

    fn file_with(bytes: &[u8]) -> (std::path::PathBuf, Box<dyn IoFile>) {
        let dir = std::env::temp_dir().join(format!(
            "tachyon-ra-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("seg");
        let _ = std::fs::remove_file(&p);
        let f = StdIo.open(&p, true).expect("open");
        f.write_all_at(bytes, 0).expect("write");
        (dir, f)
    }

    #[test]
    fn serves_later_records_from_one_read_and_forgets_on_change() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (dir, f) = file_with(&data);
        let ra = ReadAhead::default();
        let len = data.len() as u64;
        let got = ra
            .with(1, f.as_ref(), len, 10, 20, <[u8]>::to_vec)
            .expect("read");
        assert_eq!(got, data[10..30]);
        // Inside the stretch: served from it, even after the file changes underneath...
        f.write_all_at(&[0xff; 16], 1000).expect("write");
        let stale = ra
            .with(1, f.as_ref(), len, 1000, 16, <[u8]>::to_vec)
            .expect("read");
        assert_eq!(stale, data[1000..1016]);
        // ...which is why a change forgets it.
        ra.forget(1);
        let fresh = ra
            .with(1, f.as_ref(), len, 1000, 16, <[u8]>::to_vec)
            .expect("read");
        assert_eq!(fresh, vec![0xff; 16]);
        // Past the stretch, across the end of what was written, and large records.
        let at = 1000 + READ_AHEAD as u64 + 5;
        let got = ra
            .with(1, f.as_ref(), len, at, 100, <[u8]>::to_vec)
            .expect("read");
        assert_eq!(got, data[at as usize..at as usize + 100]);
        let got = ra
            .with(1, f.as_ref(), len, len - 50, 50, <[u8]>::to_vec)
            .expect("read");
        assert_eq!(got, data[data.len() - 50..]);
        let big = ra
            .with(1, f.as_ref(), len, 2000, READ_AHEAD + 1, <[u8]>::to_vec)
            .expect("read");
        assert_eq!(big, data[2000..2000 + READ_AHEAD + 1]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
