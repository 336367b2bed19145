//! Append throughput next to the disk's own figures, measured in the same run.
//! `cargo run --release -p tachyon-storage --example append_bench -- [DIR] [ROWS]`
//!
//! ROWS filters the store rows by substring (e.g. `64K` or `128B always`), so a profile can
//! run one row; every run starts with the raw disk rows.

use std::io::Write;
use std::time::{Duration, Instant};

use tachyon_storage::{FileStore, FileStoreConfig, IoKind, NewMsg, Store, SyncPolicy};

mod raw_disk;

use raw_disk::raw_odirect;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("tachyon-bench-{}", std::process::id()));
    let rows = args.next().unwrap_or_default();
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
    drop(f);
    std::fs::remove_file(base.join("raw"))?;
    println!(
        "raw write(128 B)+fdatasync: {:.0} /s",
        n as f64 / start.elapsed().as_secs_f64()
    );
    match raw_odirect(&base.join("raw"), 1 << 20, false, budget) {
        Ok(mbs) => println!("raw O_DIRECT 1 MiB sequential writes: {mbs:.0} MB/s"),
        Err(e) => println!("raw O_DIRECT not measured: {e}"),
    }
    for chunk in [1usize << 20, 16 << 20] {
        if let Ok(mbs) = raw_odirect(&base.join("raw"), chunk, true, budget) {
            println!(
                "raw O_DIRECT {} MiB writes + fdatasync each: {mbs:.0} MB/s",
                chunk >> 20
            );
        }
    }

    for (size, label) in [
        (16usize, "16B"),
        (128, "128B"),
        (1024, "1K"),
        (64 << 10, "64K"),
    ] {
        // `piped`: appends go on while the previous ones sync (`append_batch_pipelined`), with
        // at most 4 batches written but not yet durable, as acknowledging publishers keep it.
        for (name, sync, batch, piped) in [
            ("always, batch 1", SyncPolicy::Always, 1usize, false),
            ("always, batch 16", SyncPolicy::Always, 16, false),
            ("always, batch 256", SyncPolicy::Always, 256, false),
            ("always, batch 4096", SyncPolicy::Always, 4096, false),
            ("always piped, b 16", SyncPolicy::Always, 16, true),
            ("always piped, b 256", SyncPolicy::Always, 256, true),
            ("always piped, b 4096", SyncPolicy::Always, 4096, true),
            (
                "interval 1s",
                SyncPolicy::Interval(Duration::from_secs(1)),
                64,
                false,
            ),
        ] {
            for io in [IoKind::Buffered, IoKind::Direct] {
                let row = format!("{label:>4} {name:<18} {io:?}");
                if !row.contains(rows.as_str()) {
                    continue;
                }
                // 4096 x 64 KiB would be a 256 MiB batch; the 64 KiB rows stop at 256.
                if size == 64 << 10 && batch == 4096 {
                    continue;
                }
                let dir = base.join("store");
                let mut s = FileStore::open_fs(
                    &dir,
                    FileStoreConfig {
                        sync,
                        io,
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
                let window = 4 * batch as u64;
                while start.elapsed() < budget {
                    let out = if piped {
                        s.append_batch_pipelined(&msgs)?
                    } else {
                        s.append_batch(&msgs)?
                    };
                    for r in out {
                        r?;
                    }
                    n += batch as u64;
                    let last = s.state().last_seq;
                    if piped && last - s.durable_seq() > window {
                        s.wait_durable(last - window)?;
                    }
                }
                if piped {
                    s.wait_durable(s.state().last_seq)?;
                }
                s.sync()?;
                let secs = start.elapsed().as_secs_f64();
                println!(
                    "{row:<36} {:>10.0} msgs/s {:>8.1} MB/s",
                    n as f64 / secs,
                    n as f64 * size as f64 / secs / 1e6
                );
                drop(s);
                std::fs::remove_dir_all(&dir)?;
            }
        }
    }
    std::fs::remove_dir_all(&base)?;
    Ok(())
}
