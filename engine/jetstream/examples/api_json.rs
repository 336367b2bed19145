//! DESIGN.md names simd-json for API JSON; this measures the decoders on the request bodies
//! the API takes most (a KV bucket's STREAM.CREATE, a MSG.GET, a STREAM.NAMES): the
//! Go-compatible decoder the API uses (`config::parse_create`, whose errors are nats-server's
//! texts byte for byte), serde_json, and simd-json, into the same `StreamConfig`.
//! `cargo run --release -p tachyon-jetstream --example api_json`

use std::hint::black_box;
use std::time::Instant;

use tachyon_jetstream::{api, config};

const KV_CREATE: &[u8] = br#"{"name":"KV_cfg","subjects":["$KV.cfg.>"],"retention":"limits","max_consumers":-1,"max_msgs_per_subject":5,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msg_size":-1,"storage":"file","discard":"new","num_replicas":1,"duplicate_window":120000000000,"sealed":false,"deny_delete":true,"deny_purge":false,"allow_rollup_hdrs":true,"allow_direct":true,"mirror_direct":false}"#;
const MSG_GET: &[u8] = br#"{"last_by_subj":"$KV.cfg.some.key"}"#;

fn time<T>(label: &str, n: u32, mut f: impl FnMut() -> T) {
    for _ in 0..n / 10 {
        black_box(f());
    }
    let t = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{label:<44} {ns:>8.0} ns/op");
}

fn main() {
    let n = 200_000;
    time("stream create: gojson (parse_create)", n, || {
        config::parse_create(KV_CREATE, "KV_cfg", true).map(|c| c.name.len())
    });
    time("stream create: serde_json -> StreamConfig", n, || {
        serde_json::from_slice::<config::StreamConfig>(KV_CREATE).map(|c| c.name.len())
    });
    time("stream create: simd-json -> StreamConfig", n, || {
        let mut b = KV_CREATE.to_vec();
        simd_json::serde::from_slice::<config::StreamConfig>(&mut b).map(|c| c.name.len())
    });
    time("msg get: gojson", n, || {
        api::parse_msg_get_request(MSG_GET, true).map(|r| r.seq)
    });
    time("msg get: serde_json -> Value", n, || {
        serde_json::from_slice::<serde_json::Value>(MSG_GET).map(|v| v.is_object())
    });
    time("msg get: simd-json -> Value", n, || {
        let mut b = MSG_GET.to_vec();
        simd_json::to_owned_value(&mut b).map(|v| matches!(v, simd_json::OwnedValue::Object(_)))
    });
}
