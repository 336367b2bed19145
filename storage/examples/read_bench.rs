//! Disk bandwidth next to the store's, then replay, random reads and restart of a large store.
//! `cargo run --release -p tachyon-storage --example read_bench -- DIR [MESSAGES]`
//!
//! Reads go through the page cache (no root here to drop it): the replay and random-read
//! figures are the store's CPU cost per read, not the disk's.

mod raw_disk;

use raw_disk::raw_odirect;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tachyon_storage::{
    FileStore, FileStoreConfig, Io, IoFile, IoKind, NewMsg, StdIo, Store, SyncPolicy,
};

/// Counts the bytes read through it, to show what a restart touches.
struct CountingIo {
    inner: Arc<dyn Io>,
    read: Arc<AtomicU64>,
}

struct CountingFile {
    inner: Box<dyn IoFile>,
    read: Arc<AtomicU64>,
}

impl IoFile for CountingFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.read_exact_at(buf, off)
    }
    fn write_all_at(&self, data: &[u8], off: u64) -> io::Result<()> {
        self.inner.write_all_at(data, off)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Io for CountingIo {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(CountingFile {
            inner: self.inner.open(path, create)?,
            read: self.read.clone(),
        }))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn read_index(&self, path: &Path) -> io::Result<tachyon_storage::file::IndexBytes> {
        // Mapped, so only the pages the walk touches are read; counted as the file's size.
        let m = self.inner.read_index(path)?;
        self.read.fetch_add(m.len() as u64, Ordering::Relaxed);
        Ok(m)
    }
}

fn store_64k_always(
    dir: &Path,
    io: IoKind,
    budget: Duration,
) -> Result<f64, Box<dyn std::error::Error>> {
    let cfg = FileStoreConfig {
        io,
        ..Default::default()
    };
    let mut s = FileStore::open_fs(dir, cfg)?;
    let payload = vec![7u8; 64 << 10];
    let msgs: Vec<NewMsg> = (0..16)
        .map(|_| NewMsg {
            subject: "bench.subject",
            headers: b"",
            payload: &payload,
            timestamp: 0,
        })
        .collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for r in s.append_batch(&msgs)? {
            r?;
        }
        n += msgs.len() as u64;
    }
    Ok(n as f64 * payload.len() as f64 / start.elapsed().as_secs_f64() / 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("tachyon-read-bench-{}", std::process::id()));
    let total: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    std::fs::create_dir_all(&base)?;
    let budget = Duration::from_secs(3);

    match raw_odirect(&base.join("raw"), 1 << 20, false, budget) {
        Ok(mbs) => println!("raw O_DIRECT 1 MiB sequential writes: {mbs:.0} MB/s"),
        Err(e) => println!("raw O_DIRECT not measured: {e}"),
    }
    for io in [IoKind::Buffered, IoKind::Direct] {
        let mbs = store_64k_always(&base.join("s64k"), io, budget)?;
        println!("store 64 KiB appends, always, batch 16, {io:?}: {mbs:.0} MB/s");
        std::fs::remove_dir_all(base.join("s64k"))?;
    }

    let dir = base.join("big");
    let cfg = FileStoreConfig {
        sync: SyncPolicy::Interval(Duration::from_secs(1)),
        ..Default::default()
    };
    let payload = vec![3u8; 128];
    let subjects: Vec<String> = (0..64).map(|i| format!("bench.s{i}")).collect();
    let start = Instant::now();
    {
        let mut s = FileStore::open(StdIo::shared(), &dir, cfg.clone())?;
        let mut seq = 0u64;
        while seq < total {
            let n = (total - seq).min(1024);
            let msgs: Vec<NewMsg> = (seq..seq + n)
                .map(|i| NewMsg {
                    subject: &subjects[(i % 64) as usize],
                    headers: b"",
                    payload: &payload,
                    timestamp: i as i64,
                })
                .collect();
            for r in s.append_batch(&msgs)? {
                r?;
            }
            seq += n;
        }
        s.sync()?;
    }
    let disk: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "filled {total} x 128 B messages in {:.1} s ({:.0} MB on disk)",
        start.elapsed().as_secs_f64(),
        disk as f64 / 1e6
    );

    let read = Arc::new(AtomicU64::new(0));
    let io: Arc<dyn Io> = Arc::new(CountingIo {
        inner: StdIo::shared(),
        read: read.clone(),
    });
    let start = Instant::now();
    let s = FileStore::open(io, &dir, cfg)?;
    let open_secs = start.elapsed().as_secs_f64();
    let open_seg = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.file_name())
        .max()
        .map(|n| std::fs::metadata(dir.join(n)).map(|m| m.len()))
        .transpose()?
        .unwrap_or(0);
    let idx: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".idx"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "restart: {open_secs:.2} s; read {:.1} MB = open segment {:.1} MB + indexes {:.1} MB (store {:.0} MB)",
        read.load(Ordering::Relaxed) as f64 / 1e6,
        open_seg as f64 / 1e6,
        idx as f64 / 1e6,
        disk as f64 / 1e6
    );
    assert_eq!(s.state().msgs, total);

    let start = Instant::now();
    let (mut seq, mut n) = (1u64, 0u64);
    while let Some(m) = s.load_next(seq, "")? {
        seq = m.seq + 1;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "replay: {n} msgs in {secs:.2} s = {:.0} msgs/s",
        n as f64 / secs
    );
    assert_eq!(n, total);

    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let reads = 200_000u64.min(total);
    let start = Instant::now();
    for _ in 0..reads {
        let q = rng.gen_range(1..=total);
        if s.load(q)?.map(|m| m.seq) != Some(q) {
            return Err(format!("sequence {q} missing").into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "random read by sequence: {reads} in {secs:.2} s = {:.0} reads/s",
        reads as f64 / secs
    );
    drop(s);
    std::fs::remove_dir_all(&base)?;
    Ok(())
}
