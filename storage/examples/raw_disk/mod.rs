//! The disk's own figures, measured in the same run as the store's so the README can report
//! ratios: shared by the storage examples.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

const ALIGN: usize = 4096;

/// Sequential O_DIRECT writes of `chunk` bytes for `budget`; with `sync_each` an fdatasync
/// follows every write (the best an `always` store can do with `chunk` bytes per commit).
pub fn raw_odirect(
    path: &Path,
    chunk: usize,
    sync_each: bool,
    budget: Duration,
) -> io::Result<f64> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let mut raw = vec![0x5au8; chunk + ALIGN];
    let skip = (ALIGN - raw.as_ptr() as usize % ALIGN) % ALIGN;
    let buf = &mut raw[skip..skip + chunk];
    let start = Instant::now();
    let mut off = 0u64;
    while start.elapsed() < budget {
        f.write_all_at(buf, off)?;
        if sync_each {
            f.sync_data()?;
        }
        off += chunk as u64;
    }
    f.sync_data()?;
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(path)?;
    Ok(off as f64 / secs / 1e6)
}
