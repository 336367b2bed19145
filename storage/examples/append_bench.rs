//! Append throughput next to the disk's raw fdatasync rate.
//! `cargo run --release -p tachyon-storage --example append_bench -- [DIR]`

use std::io::Write;
use std::time::{Duration, Instant};

use tachyon_storage::{FileStore, FileStoreConfig, NewMsg, StdIo, Store, SyncPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("tachyon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let budget = Duration::from_secs(2);

    let mut f = std::fs::File::create(base.join("raw"))?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        f.write_all(&[0u8; 128])?;
        f.sync_data()?;
        n += 1;
    }
    println!(
        "raw write(128 B)+fdatasync: {:.0} /s",
        n as f64 / start.elapsed().as_secs_f64()
    );

    for size in [16usize, 128, 1024, 64 << 10] {
        for (name, sync, batch) in [
            ("always, batch 1", SyncPolicy::Always, 1usize),
            ("always, batch 256", SyncPolicy::Always, 256),
            (
                "interval 1s",
                SyncPolicy::Interval(Duration::from_secs(1)),
                64,
            ),
        ] {
            let dir = base.join(format!("{size}-{batch}-{}", name.len()));
            let mut s = FileStore::open(
                StdIo::shared(),
                &dir,
                FileStoreConfig {
                    sync,
                    ..Default::default()
                },
            )?;
            let payload = vec![7u8; size];
            let msgs: Vec<NewMsg> = (0..batch)
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
                n += batch as u64;
            }
            s.sync()?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{size:>6} B  {name:<18} {:>10.0} msgs/s {:>8.1} MB/s",
                n as f64 / secs,
                n as f64 * size as f64 / secs / 1e6
            );
            drop(s);
            std::fs::remove_dir_all(&dir)?;
        }
    }
    std::fs::remove_dir_all(&base)?;
    Ok(())
}
