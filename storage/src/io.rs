//! The file operations the file store needs, behind a trait so tests can substitute a layer that
//! loses unsynced writes ([`crate::sim_io::SimIo`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::file::IndexBytes;

#[allow(clippy::len_without_is_empty)] // a file length, not a collection
pub trait IoFile: Send + Sync {
    fn len(&self) -> io::Result<u64>;
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    fn write_all_at(&self, data: &[u8], off: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
}

pub trait Io: Send + Sync {
    /// Opens read-write, creating the file when `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn IoFile>>;
    /// File names (not paths) in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The whole of a file that is never written again (a sealed segment's index): mapped
    /// where the layer reaches a real file system, read otherwise.
    fn read_index(&self, path: &Path) -> io::Result<IndexBytes> {
        let f = self.open(path, false)?;
        Ok(IndexBytes::copy_of(&read_all(f.as_ref())?))
    }
}

/// Maps a file read-only.
pub(crate) fn map_file(path: &Path) -> io::Result<IndexBytes> {
    let f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        // An empty mapping is an error; an empty file is just an invalid index.
        return Ok(IndexBytes::copy_of(&[]));
    }
    // SAFETY: the mapping is only sound while nobody changes the file. Index files are
    // written once through a temporary file and a rename, never modified in place, and the
    // store drops the mapping before it could replace or remove the file (see
    // `FileStore::open`); another process writing into a store's folder is outside the
    // contract. `map_file_reads_what_was_written` covers it.
    let m = unsafe { memmap2::Mmap::map(&f)? };
    Ok(IndexBytes::Mapped(m))
}

pub fn read_all(f: &dyn IoFile) -> io::Result<Vec<u8>> {
    let len = usize::try_from(f.len()?).map_err(|_| io::Error::other("file too large"))?;
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// The real file system through std (pwrite/pread/fdatasync).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdIo;

impl StdIo {
    pub fn shared() -> Arc<dyn Io> {
        Arc::new(StdIo)
    }
}

struct StdFile(File);

impl IoFile for StdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.0, buf, off)
    }
    fn write_all_at(&self, data: &[u8], off: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.0, data, off)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Io for StdIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn IoFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(StdFile(f)))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            if let Some(name) = e?.file_name().to_str() {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn read_index(&self, path: &Path) -> io::Result<IndexBytes> {
        map_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_file_reads_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.idx");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let m = StdIo.read_index(&p).unwrap();
        assert!(matches!(m, IndexBytes::Mapped(_)));
        assert_eq!(&m[..], &data[..]);
        std::fs::write(&p, b"").unwrap();
        assert!(StdIo.read_index(&p).unwrap().is_empty());
        assert!(StdIo.read_index(&dir.path().join("missing")).is_err());
    }
}
