//! [`Io`] with `O_DIRECT`: writes bypass the page cache in 4 KiB-aligned blocks.
//!
//! A file's bytes past the last whole block that went out live in memory (`tail`) and every
//! flush rewrites that partially filled block, padded with zeros, at its aligned offset; the
//! file is then cut back to its logical length so a reader never sees the padding. Reads of
//! the tail are served from memory, because the disk may not hold it yet (the same rule as for
//! glommio's `DmaStreamWriter`, see DESIGN.md's pitfalls); reads below it use aligned
//! `O_DIRECT` reads through a bounce buffer.
//!
//! Everything here is safe Rust: alignment comes from over-allocating a `Vec` and starting at
//! the first aligned address inside it, and `O_DIRECT` is just an open flag for std's `File`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::io::{Io, IoFile, StdIo};

/// Block size and buffer alignment: enough for every common logical block size.
pub const ALIGN: usize = 4096;

/// A zeroed buffer of `len` bytes starting at an `ALIGN`-aligned address.
struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn zeroed(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        // Casting the address to an integer is only used to compute an offset, never turned
        // back into a pointer.
        let start = (ALIGN - raw.as_ptr() as usize % ALIGN) % ALIGN;
        AlignedBuf { raw, start, len }
    }
    fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

fn align_down(x: u64) -> u64 {
    x - x % ALIGN as u64
}

fn align_up(x: u64) -> u64 {
    align_down(x + ALIGN as u64 - 1)
}

fn to_usize(x: u64) -> io::Result<usize> {
    usize::try_from(x).map_err(|_| io::Error::other("offset too large"))
}

/// Opens every file with `O_DIRECT`; directory operations as [`StdIo`].
#[derive(Debug, Clone, Copy)]
pub struct DirectIo {
    /// Most bytes a file's aligned write buffer grows to: whole blocks are written out once
    /// the in-memory tail fills it, so the `interval` policy does not hold unbounded data in
    /// memory; a batch up to this size goes out in one write.
    pub flush_bytes: usize,
}

impl Default for DirectIo {
    fn default() -> Self {
        DirectIo {
            flush_bytes: 16 << 20,
        }
    }
}

impl DirectIo {
    pub fn shared() -> Arc<dyn Io> {
        Arc::new(DirectIo::default())
    }
}

struct State {
    /// Logical length: what readers see.
    len: u64,
    /// Aligned offset where the tail begins; everything below it has been written to the file.
    tail_start: u64,
    /// Bytes `[tail_start, len)` at the front of an aligned buffer that lives as long as the
    /// file, so a flush writes straight from it: one copy per appended byte, no allocation.
    tail: AlignedBuf,
    /// Whether the tail holds bytes the file does not.
    dirty: bool,
    /// The file's size on disk; differs from `len` while padding or unwritten tail exist.
    disk_len: u64,
}

impl State {
    fn tail_len(&self) -> usize {
        // `len - tail_start` is below the buffer's size, which is a usize.
        (self.len - self.tail_start) as usize
    }
}

struct DirectFile {
    file: File,
    /// The most the tail buffer grows to.
    max_buf: usize,
    st: Mutex<State>,
}

impl DirectFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `[off, off + out.len())` from the file with aligned direct reads.
    fn read_disk(&self, out: &mut [u8], off: u64) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let a = align_down(off);
        let b = align_up(off + out.len() as u64);
        let mut bounce = AlignedBuf::zeroed(to_usize(b - a)?);
        let buf = bounce.as_mut_slice();
        let mut got = 0usize;
        let need = to_usize(off - a)? + out.len();
        while got < need {
            // Offsets and lengths stay block multiples until the file's end, where the kernel
            // returns a short count.
            let n = self.file.read_at(&mut buf[got..], a + got as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += n;
        }
        let skip = to_usize(off - a)?;
        out.copy_from_slice(&buf[skip..skip + out.len()]);
        Ok(())
    }

    /// Writes the tail out (the partial last block padded with zeros unless
    /// `whole_blocks_only`) and keeps only that partial block in memory.
    fn write_tail(&self, st: &mut State, whole_blocks_only: bool) -> io::Result<()> {
        let tail_len = st.tail_len();
        let full = tail_len - tail_len % ALIGN;
        let n = if whole_blocks_only || !st.dirty {
            full
        } else {
            to_usize(align_up(tail_len as u64))?
        };
        if n == 0 {
            return Ok(());
        }
        let buf = st.tail.as_mut_slice();
        // Padding must read as zeros: recovery stops at a zero length field.
        buf[tail_len..n].fill(0);
        self.file.write_all_at(&buf[..n], st.tail_start)?;
        st.disk_len = st.disk_len.max(st.tail_start + n as u64);
        buf.copy_within(full..tail_len, 0);
        st.tail_start += full as u64;
        st.dirty = st.dirty && whole_blocks_only && full < tail_len;
        Ok(())
    }

    /// Rewrites bytes below the tail: read the covering blocks, patch, write them back.
    fn patch_disk(&self, data: &[u8], off: u64) -> io::Result<()> {
        let a = align_down(off);
        let b = align_up(off + data.len() as u64);
        let mut buf = AlignedBuf::zeroed(to_usize(b - a)?);
        self.read_disk(buf.as_mut_slice(), a)?;
        let skip = to_usize(off - a)?;
        buf.as_mut_slice()[skip..skip + data.len()].copy_from_slice(data);
        self.file.write_all_at(buf.as_slice(), a)
    }

    /// Loads the partial last block so appends can go on rewriting it.
    fn load_tail(&self, st: &mut State) -> io::Result<()> {
        st.tail_start = align_down(st.len);
        let n = to_usize(st.len - st.tail_start)?;
        let mut block = [0u8; ALIGN];
        self.read_disk(&mut block[..n], st.tail_start)?;
        st.tail.as_mut_slice()[..n].copy_from_slice(&block[..n]);
        st.dirty = false;
        Ok(())
    }
}

impl IoFile for DirectFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.lock().len)
    }

    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let st = self.lock();
        let end = off
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= st.len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let split = to_usize(st.tail_start.clamp(off, end) - off)?;
        let (disk, mem) = buf.split_at_mut(split);
        self.read_disk(disk, off)?;
        if !mem.is_empty() {
            let from = to_usize(off + split as u64 - st.tail_start)?;
            mem.copy_from_slice(&st.tail.as_slice()[from..from + mem.len()]);
        }
        Ok(())
    }

    fn write_all_at(&self, data: &[u8], off: u64) -> io::Result<()> {
        let mut st = self.lock();
        let end = off
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        let split = to_usize(st.tail_start.clamp(off, end) - off)?;
        let (disk, mut mem) = data.split_at(split);
        if !disk.is_empty() {
            self.patch_disk(disk, off)?;
        }
        let mut at = off + split as u64;
        while !mem.is_empty() {
            let want = to_usize(at - st.tail_start)? + mem.len();
            if want > st.tail.len && st.tail.len < self.max_buf {
                // Grow so a large batch goes out in one write (the device works on all of
                // it at once) instead of one buffer-sized write after another.
                let cap = to_usize(align_up(want.next_power_of_two().min(self.max_buf) as u64))?;
                let mut bigger = AlignedBuf::zeroed(cap);
                let n = st.tail_len();
                bigger.as_mut_slice()[..n].copy_from_slice(&st.tail.as_slice()[..n]);
                st.tail = bigger;
            }
            let cap = st.tail.len;
            if to_usize(at - st.tail_start)? >= cap {
                // Full: whole blocks go out, the partial one moves to the front.
                self.write_tail(&mut st, true)?;
                continue;
            }
            let from = to_usize(at - st.tail_start)?;
            let n = mem.len().min(cap - from);
            let tail_len = st.tail_len();
            let buf = st.tail.as_mut_slice();
            if from > tail_len {
                buf[tail_len..from].fill(0);
            }
            buf[from..from + n].copy_from_slice(&mem[..n]);
            mem = &mem[n..];
            at += n as u64;
            st.len = st.len.max(at);
            st.dirty = true;
        }
        Ok(())
    }

    /// Writes the tail padded to a whole block and fdatasyncs, without cutting the padding
    /// off: an `ftruncate` per commit is a second metadata change in every journal commit.
    /// Recovery reads the padding as a torn tail (a zero length field) and cuts it; `set_len`
    /// and closing the file cut it too.
    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.lock();
        self.write_tail(&mut st, false)?;
        // The fdatasync covers every write completed before it starts, so appends may go on
        // meanwhile (a pipelined store's syncer thread runs this while the owner writes).
        drop(st);
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        self.write_tail(&mut st, false)?;
        if st.disk_len != len {
            self.file.set_len(len)?;
        }
        st.len = len;
        st.disk_len = len;
        self.load_tail(&mut st)
    }
}

impl Drop for DirectFile {
    /// Like a buffered file's page cache, written data outlives the handle (not a crash).
    fn drop(&mut self) {
        let mut st = self.lock();
        let len = st.len;
        let r = self.write_tail(&mut st, false).and_then(|()| {
            if st.disk_len != len {
                self.file.set_len(len)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!(error = %e, "writing the direct-I/O tail on close failed");
        }
    }
}

impl Io for DirectIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn IoFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        let len = file.metadata()?.len();
        let max_buf = to_usize(align_up(self.flush_bytes.max(2 * ALIGN) as u64))?;
        let f = DirectFile {
            file,
            max_buf,
            st: Mutex::new(State {
                len,
                tail_start: 0,
                tail: AlignedBuf::zeroed(2 * ALIGN),
                dirty: false,
                disk_len: len,
            }),
        };
        {
            let mut st = f.lock();
            f.load_tail(&mut st)?;
        }
        Ok(Box::new(f))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdIo.list(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        StdIo.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdIo.rename(from, to)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdIo.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdIo.sync_dir(dir)
    }
    fn read_index(&self, path: &Path) -> io::Result<crate::file::IndexBytes> {
        // Index files are written whole and trimmed before their rename; a read-only mapping
        // of one does not mix with direct writes.
        crate::io::map_file(path)
    }
}

/// For tests that need a real disk.
#[cfg(test)]
/// False (with a printed note) where the file system refuses `O_DIRECT`.
pub(crate) fn direct_supported(dir: &Path) -> bool {
    match DirectIo::default().open(&dir.join("probe"), true) {
        Ok(_) => {
            let _ = std::fs::remove_file(dir.join("probe"));
            true
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            println!("skipped: {} rejects O_DIRECT (EINVAL)", dir.display());
            false
        }
        Err(e) => panic!("probe open failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_matches_a_plain_model_through_appends_patches_truncates_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        if !direct_supported(dir.path()) {
            return;
        }
        let io = DirectIo { flush_bytes: 8192 };
        let p = dir.path().join("f");
        let mut model: Vec<u8> = Vec::new();
        let f = io.open(&p, true).unwrap();
        let mut x = 1u8;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x = x.wrapping_mul(13).wrapping_add(7);
                    x
                })
                .collect()
        };
        for (i, n) in [1usize, 100, 4095, 1, 5000, 9000, 3, 20000, 7]
            .iter()
            .enumerate()
        {
            let d = bytes(*n);
            f.write_all_at(&d, model.len() as u64).unwrap();
            model.extend_from_slice(&d);
            if i % 3 == 2 {
                f.sync_data().unwrap();
                let disk = std::fs::read(&p).unwrap();
                assert_eq!(disk[..model.len()], model[..], "disk after sync {i}");
                assert_eq!(disk.len() % ALIGN, 0, "padded to a block");
                assert!(disk[model.len()..].iter().all(|b| *b == 0), "zero padding");
            }
            assert_eq!(f.len().unwrap(), model.len() as u64);
            let mut all = vec![0; model.len()];
            f.read_exact_at(&mut all, 0).unwrap();
            assert_eq!(all, model, "read after append {i}");
        }
        // In-place rewrite across the on-disk part and the tail.
        let off = model.len() - 6000;
        let d = bytes(5990);
        f.write_all_at(&d, off as u64).unwrap();
        model[off..off + d.len()].copy_from_slice(&d);
        let mut mid = vec![0; 300];
        f.read_exact_at(&mut mid, 4000).unwrap();
        assert_eq!(mid, model[4000..4300]);
        f.set_len(10_001).unwrap();
        model.truncate(10_001);
        let d = bytes(50);
        f.write_all_at(&d, 10_001).unwrap();
        model.extend_from_slice(&d);
        f.sync_data().unwrap();
        assert_eq!(std::fs::read(&p).unwrap()[..model.len()], model[..]);
        let mut past = vec![0; 2];
        assert!(f.read_exact_at(&mut past, model.len() as u64 - 1).is_err());
        let d = bytes(10);
        f.write_all_at(&d, model.len() as u64).unwrap();
        model.extend_from_slice(&d);
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), model, "close writes the tail");
        let g = io.open(&p, false).unwrap();
        let mut all = vec![0; model.len()];
        g.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(all, model);
    }
}
