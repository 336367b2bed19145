//! SIGKILL crash test: a child process (this test binary re-executed) appends as fast as it can
//! and prints each acknowledged sequence; the parent kills it at random moments and checks the
//! store after each kill.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tachyon_storage::{FileStore, FileStoreConfig, NewMsg, StdIo, Store};

const ENV: &str = "TACHYON_CRASH_CHILD_DIR";

fn body(seq: u64) -> Vec<u8> {
    let len = (seq % 300) as usize;
    (0..len)
        .map(|i| (seq.wrapping_mul(131).wrapping_add(i as u64)) as u8)
        .collect()
}

fn cfg() -> FileStoreConfig {
    FileStoreConfig {
        segment_bytes: 64 << 10,
        ..Default::default()
    }
}

/// The child's body; a no-op unless started by the parent.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV) else {
        return;
    };
    let mut s = FileStore::open(StdIo::shared(), &dir, cfg()).unwrap();
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    // Acknowledged = reported durable: a synchronous `always` append on return, a pipelined one
    // once the syncer thread's fdatasync covers it (half the batches are pipelined).
    let mut acked = s.state().last_seq;
    loop {
        n += 1;
        let next = s.state().last_seq + 1;
        let k = 1 + (n % 5);
        let bodies: Vec<Vec<u8>> = (next..next + k).map(body).collect();
        let msgs: Vec<NewMsg> = bodies
            .iter()
            .map(|b| NewMsg {
                subject: "crash.test",
                headers: b"",
                payload: b,
                timestamp: 0,
            })
            .collect();
        let res = if n.is_multiple_of(2) {
            s.append_batch_pipelined(&msgs).unwrap()
        } else {
            s.append_batch(&msgs).unwrap()
        };
        for r in res {
            r.unwrap();
        }
        let durable = s.durable_seq();
        for seq in acked + 1..=durable {
            writeln!(out, "{seq}").unwrap();
        }
        acked = acked.max(durable);
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_append() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut acked = 0u64;
    for cycle in 0..100 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                // Only whole lines count; the harness's own lines are not numbers.
                if let Some(seq) = line.ok().and_then(|l| l.trim().parse::<u64>().ok()) {
                    if tx.send(seq).is_err() {
                        break;
                    }
                }
            }
        });
        // Wait for the first ack so every cycle kills a process that is writing.
        let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..25)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let max = rx.try_iter().fold(first, u64::max);
        assert!(max >= acked, "cycle {cycle}: sequence went backwards");
        acked = max;

        let mut s = FileStore::open(StdIo::shared(), dir.path(), cfg()).unwrap();
        let st = s.state();
        assert!(
            st.last_seq >= acked,
            "cycle {cycle}: acked {acked}, store ends at {}",
            st.last_seq
        );
        assert_eq!(s.recovery_report().skipped_records, vec![]);
        for seq in 1..=st.last_seq {
            let m = s
                .load(seq)
                .unwrap()
                .unwrap_or_else(|| panic!("cycle {cycle}: {seq} missing"));
            assert_eq!(m.payload, body(seq), "cycle {cycle}: seq {seq} differs");
        }
        // Appending after recovery continues right after the last intact record.
        let next = st.last_seq + 1;
        assert_eq!(s.append("crash.test", b"", &body(next), 0).unwrap(), next);
    }
    assert!(acked > 200, "only {acked} appends acknowledged");
}
