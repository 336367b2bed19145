//! Reading messages out for delivery allocates nothing per message: `read_with` lends the
//! record from the read-ahead (file) or the stored buffers (memory), and `next_seq` finds the
//! next one from the index alone.

#[path = "../../engine/core/tests/alloc_counter/mod.rs"]
mod alloc_counter;

use alloc_counter::{allocations, CountingAllocator};
use tachyon_storage::{FileStore, FileStoreConfig, MemoryStore, MsgRef, NewMsg, Store};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const MSGS: u64 = 20_000;

fn load(store: &mut dyn Store) {
    let payload = [7u8; 64];
    let batch: Vec<NewMsg<'_>> = (0..1000)
        .map(|_| NewMsg {
            subject: "orders.eu",
            headers: b"",
            payload: &payload,
            timestamp: 1,
        })
        .collect();
    for _ in 0..MSGS / 1000 {
        store.append_batch(&batch).expect("append");
    }
}

/// Walks the stream as a consumer does; returns (messages, payload bytes, allocations).
fn walk(store: &dyn Store, filter: &str) -> (u64, usize, usize) {
    let (mut n, mut bytes) = (0u64, 0usize);
    let before = allocations();
    let mut seq = 1;
    let mut read = |m: MsgRef<'_>| bytes += m.payload.len() + m.subject.len();
    while let Some(s) = store.next_seq(seq, filter) {
        assert!(store.read_with(s, &mut read).expect("read"));
        n += 1;
        seq = s + 1;
    }
    (n, bytes, allocations() - before)
}

#[test]
fn file_and_memory_reads_lend_records_without_allocating() {
    let dir = std::env::temp_dir().join(format!("tachyon-read-alloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = FileStoreConfig {
        // No hot tail: every read goes through the read-ahead.
        hot_cache_bytes: 0,
        ..Default::default()
    };
    let mut file = FileStore::open_fs(&dir, cfg).expect("open");
    load(&mut file);
    let mut memory = MemoryStore::new(Default::default());
    load(&mut memory);
    for (name, store) in [
        ("file", &file as &dyn Store),
        ("memory", &memory as &dyn Store),
    ] {
        // Warm: the read-ahead's buffer reaches its size.
        walk(store, "");
        for filter in ["", "orders.eu", "orders.*"] {
            let (n, bytes, allocated) = walk(store, filter);
            assert_eq!(n, MSGS, "{name} {filter}");
            assert_eq!(bytes, MSGS as usize * (64 + 9));
            assert_eq!(
                allocated, 0,
                "{name} {filter}: {allocated} allocations for {n} reads"
            );
        }
    }
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);
}
