//! An in-memory [`Io`] that models a power failure: [`SimIo::crash`] forgets every write not
//! covered by a completed `sync_data` and may keep a torn, garbled part of the unsynced tail.
//! Directory operations count as durable at once (a journaling file system after `sync_dir`),
//! except, with [`SimIo::lossy_dirs`], the creation of a file: it is lost by a crash until its
//! folder is synced.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::io::{Io, IoFile};

#[derive(Debug, Default, Clone)]
struct SimFile {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Fs {
    files: BTreeMap<PathBuf, SimFile>,
    /// Handles opened before a crash stop working, like a dead process's descriptors.
    generation: u64,
    /// Operations left before the simulated process dies mid-call (see [`SimIo::fail_after`]).
    ops_left: Option<u64>,
    /// See [`SimIo::lossy_dirs`].
    lossy_dirs: bool,
    /// Files created since their folder was last synced (only with `lossy_dirs`).
    unsynced_entries: BTreeSet<PathBuf>,
}

impl Fs {
    fn tick(&mut self) -> io::Result<()> {
        match &mut self.ops_left {
            Some(0) => Err(io::Error::other("simulated power failure")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct SimIo {
    fs: Arc<Mutex<Fs>>,
}

fn lock(fs: &Mutex<Fs>) -> MutexGuard<'_, Fs> {
    fs.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimIo {
    pub fn new() -> Self {
        Self::default()
    }

    /// A layer where a file created since its folder's last `sync_dir` is gone after a crash
    /// (its data too); a rename carries that state to the new name.
    pub fn lossy_dirs() -> Self {
        let io = Self::default();
        lock(&io.fs).lossy_dirs = true;
        io
    }

    /// Power failure. `rand` drives the tear: for each file with unsynced appended bytes a
    /// prefix of them survives, the last surviving byte possibly garbled.
    pub fn crash(&self, mut rand: impl FnMut(u64) -> u64) {
        let mut fs = lock(&self.fs);
        fs.generation += 1;
        fs.ops_left = None;
        for p in std::mem::take(&mut fs.unsynced_entries) {
            fs.files.remove(&p);
        }
        for f in fs.files.values_mut() {
            let appended_only = f.data.len() > f.durable.len() && f.data.starts_with(&f.durable);
            let mut next = f.durable.clone();
            if appended_only {
                let extra = &f.data[f.durable.len()..];
                let keep = rand(extra.len() as u64 + 1) as usize;
                next.extend_from_slice(&extra[..keep.min(extra.len())]);
                if keep > 0 && rand(2) == 0 {
                    if let Some(b) = next.last_mut() {
                        *b ^= 0x5a;
                    }
                }
            }
            f.data = next.clone();
            f.durable = next;
        }
    }

    /// After `n` more mutating operations every operation fails, as if the power went in the
    /// middle of a call; [`SimIo::crash`] then decides what reached the disk.
    pub fn fail_after(&self, n: u64) {
        lock(&self.fs).ops_left = Some(n);
    }

    /// Direct access for corruption tests.
    pub fn with_file<R>(&self, path: &Path, f: impl FnOnce(&mut Vec<u8>) -> R) -> Option<R> {
        let mut fs = lock(&self.fs);
        let file = fs.files.get_mut(path)?;
        let r = f(&mut file.data);
        file.durable = file.data.clone();
        Some(r)
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        lock(&self.fs).files.keys().cloned().collect()
    }
}

struct SimHandle {
    fs: Arc<Mutex<Fs>>,
    path: PathBuf,
    generation: u64,
}

impl SimHandle {
    fn with<R>(
        &self,
        mutating: bool,
        f: impl FnOnce(&mut SimFile) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut fs = lock(&self.fs);
        if fs.generation != self.generation {
            return Err(io::Error::other("handle from before a crash"));
        }
        if mutating {
            fs.tick()?;
        }
        let file = fs
            .files
            .get_mut(&self.path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        f(file)
    }
}

impl IoFile for SimHandle {
    fn len(&self) -> io::Result<u64> {
        self.with(false, |f| Ok(f.data.len() as u64))
    }
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.with(false, |f| {
            let start = usize::try_from(off).map_err(io::Error::other)?;
            let src = f
                .data
                .get(start..start + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }
    fn write_all_at(&self, data: &[u8], off: u64) -> io::Result<()> {
        self.with(true, |f| {
            let start = usize::try_from(off).map_err(io::Error::other)?;
            if f.data.len() < start + data.len() {
                f.data.resize(start + data.len(), 0);
            }
            f.data[start..start + data.len()].copy_from_slice(data);
            Ok(())
        })
    }
    fn sync_data(&self) -> io::Result<()> {
        self.with(true, |f| {
            f.durable = f.data.clone();
            Ok(())
        })
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(true, |f| {
            f.data
                .resize(usize::try_from(len).map_err(io::Error::other)?, 0);
            Ok(())
        })
    }
}

impl Io for SimIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn IoFile>> {
        let mut fs = lock(&self.fs);
        fs.tick()?;
        if !fs.files.contains_key(path) {
            if !create {
                return Err(io::ErrorKind::NotFound.into());
            }
            fs.files.insert(path.to_path_buf(), SimFile::default());
            if fs.lossy_dirs {
                fs.unsynced_entries.insert(path.to_path_buf());
            }
        }
        Ok(Box::new(SimHandle {
            fs: self.fs.clone(),
            path: path.to_path_buf(),
            generation: fs.generation,
        }))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(lock(&self.fs)
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.tick()?;
        fs.unsynced_entries.remove(path);
        fs.files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut fs = lock(&self.fs);
        fs.tick()?;
        let f = fs
            .files
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        fs.files.insert(to.to_path_buf(), f);
        if fs.unsynced_entries.remove(from) {
            fs.unsynced_entries.insert(to.to_path_buf());
        } else {
            fs.unsynced_entries.remove(to);
        }
        Ok(())
    }
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        lock(&self.fs)
            .unsynced_entries
            .retain(|p| p.parent() != Some(dir));
        Ok(())
    }
}
