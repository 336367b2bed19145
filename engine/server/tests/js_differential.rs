//! JetStream differential test: one list of API requests and publishes is replayed against the
//! reference nats-server and against tachyon (3 shards), both with `-js -sd <own dir>`, and
//! every reply (payload, status, headers) is compared after masking what is volatile. Every
//! mismatch is collected, so one run shows them all.
//!
//! Masks (what is not compared, and why):
//! - `created`, `ts`, `first_ts`, `last_ts`, `time` anywhere in a JSON reply: wall-clock times
//!   (the zero time `0001-01-01T00:00:00Z` is kept: it must match).
//! - `cluster.leader` (and `cluster.leader_since`): the server's name (random per instance) and
//!   the time it became leader.
//! - `config.metadata["_nats.ver"]` and `["_nats.level"]`: the server version and API level the
//!   server advertises (nats-server 2.15 vs the 2.12 tachyon claims).
//! - account info `api.level`: tied to the advertised version as above (5 vs 2).
//! - the `Nats-Time-Stamp` header of direct gets: the message's store time.
//!
//! Publish acks are compared byte for byte. JSON replies are compared as values, and the order
//! their keys were written in too; error descriptions, "invalid JSON" ones included, are
//! compared as they are. Account info's `api.total`/`api.errors` are compared: they say which
//! requests each server counts. Direct gets compare status, description, headers and payload.
//!
//! `TACHYON_TEST_AGAINST=nats-server` replays against two nats-servers (checks the sequence and
//! the masks are deterministic); `JS_DIFF_DUMP=1` prints every step's two outcomes.

mod common;

use std::time::Duration;

use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use common::{require_nats_server, Impl, Server, TempDir};
use serde_json::Value;

const SHARDS: usize = 3;
/// A request nobody answers costs this much; both servers answer everything else at once.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// For the one heavy request (a config of 10,000 subjects: nats-server takes seconds).
const SLOW_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How a step's reply is compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A JSON API reply: parsed, masked, compared as a value.
    Json,
    /// A publish ack: compared byte for byte.
    Exact,
    /// A direct get: status, headers (Nats-Time-Stamp masked) and payload.
    Message,
}

#[derive(Debug, PartialEq)]
enum Body {
    /// The masked value, and its object keys in the order they were written (Go writes struct
    /// fields in declaration order: the order is part of what is compared).
    Json(Value, Vec<String>),
    Text(String),
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Reply {
        status: Option<u16>,
        description: Option<String>,
        headers: Vec<(String, String)>,
        body: Body,
    },
    /// No reply: no responders, or a timeout.
    Failed(String),
}

struct Record {
    elapsed: Duration,
    label: String,
    subject: String,
    outcome: Outcome,
}

struct Runner {
    nc: Client,
    timeout: Duration,
    records: Vec<Record>,
}

impl Runner {
    async fn send(
        &mut self,
        mode: Mode,
        label: &str,
        subject: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) {
        let body = Bytes::from(body.into());
        let started = std::time::Instant::now();
        let request = async {
            if headers.is_empty() {
                self.nc.request(subject.to_string(), body).await
            } else {
                let mut h = HeaderMap::new();
                for (k, v) in headers {
                    h.insert(*k, *v);
                }
                self.nc
                    .request_with_headers(subject.to_string(), h, body)
                    .await
            }
        };
        let r = tokio::time::timeout(self.timeout, request).await;
        let outcome = match r {
            Err(_) => Outcome::Failed("TimedOut".into()),
            Ok(Err(e)) => Outcome::Failed(format!("{:?}", e.kind())),
            Ok(Ok(m)) => {
                let mut hs: Vec<(String, String)> = m
                    .headers
                    .iter()
                    .flat_map(|h| h.iter())
                    .map(|(k, vs)| {
                        let k = k.to_string();
                        let v = if k.eq_ignore_ascii_case("Nats-Time-Stamp") {
                            "<masked>".to_string()
                        } else {
                            vs.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(",")
                        };
                        (k, v)
                    })
                    .collect();
                hs.sort();
                let text = String::from_utf8_lossy(&m.payload).into_owned();
                let body = match serde_json::from_slice::<Value>(&m.payload) {
                    Ok(mut v) if mode == Mode::Json => {
                        mask(&mut v);
                        Body::Json(v, key_order(&m.payload))
                    }
                    _ => Body::Text(text),
                };
                Outcome::Reply {
                    status: m.status.map(|s| s.as_u16()),
                    description: m.description.clone(),
                    headers: hs,
                    body,
                }
            }
        };
        self.records.push(Record {
            elapsed: started.elapsed(),
            label: label.to_string(),
            subject: subject.to_string(),
            outcome,
        });
    }

    /// A JSON API request.
    async fn api(&mut self, label: &str, subject: &str, body: impl Into<Vec<u8>>) {
        self.send(Mode::Json, label, subject, &[], body).await;
    }

    /// A publish that waits for its ack (compared byte for byte).
    async fn publish(&mut self, label: &str, subject: &str, headers: &[(&str, &str)], body: &str) {
        self.send(
            Mode::Exact,
            label,
            subject,
            headers,
            body.as_bytes().to_vec(),
        )
        .await;
    }

    /// A direct get: the reply is a message.
    async fn direct(&mut self, label: &str, subject: &str, body: &str) {
        self.send(Mode::Message, label, subject, &[], body.as_bytes().to_vec())
            .await;
    }
}

/// The object keys of a JSON text in the order they appear: every string followed by `:`.
fn key_order(raw: &[u8]) -> Vec<String> {
    let mut keys = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        i = start;
        while i < raw.len() && raw[i] != b'"' {
            i += if raw[i] == b'\\' { 2 } else { 1 };
        }
        let end = i.min(raw.len());
        i += 1;
        let mut j = i;
        while j < raw.len() && raw[j].is_ascii_whitespace() {
            j += 1;
        }
        if raw.get(j) == Some(&b':') {
            keys.push(String::from_utf8_lossy(&raw[start..end]).into_owned());
        }
    }
    keys
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Replaces the volatile values of a JSON reply (see the list at the top).
fn mask(v: &mut Value) {
    let account_info = v.get("type").and_then(Value::as_str)
        == Some("io.nats.jetstream.api.v1.account_info_response");
    mask_walk(v);
    if account_info {
        if let Some(level) = v.pointer_mut("/api/level") {
            *level = Value::String("<masked>".into());
        }
    }
}

fn mask_walk(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match k.as_str() {
                    "created" | "ts" | "first_ts" | "last_ts" | "time" | "last_active"
                    | "pause_remaining" => {
                        if val.as_str() != Some(ZERO_TIME) {
                            *val = Value::String("<masked>".into());
                        }
                    }
                    "cluster" => {
                        if let Some(c) = val.as_object_mut() {
                            for key in ["leader", "leader_since"] {
                                if let Some(x) = c.get_mut(key) {
                                    *x = Value::String("<masked>".into());
                                }
                            }
                        }
                    }
                    "metadata" => {
                        if let Some(m) = val.as_object_mut() {
                            for key in ["_nats.ver", "_nats.level"] {
                                if let Some(x) = m.get_mut(key) {
                                    *x = Value::String("<masked>".into());
                                }
                            }
                        }
                    }
                    _ => mask_walk(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_walk),
        _ => {}
    }
}

/// The paths where two JSON values differ, `tachyon vs nats-server`.
fn json_diff(path: &str, t: &Value, n: &Value, out: &mut Vec<String>) {
    match (t, n) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => json_diff(&p, x, y, out),
                    (Some(x), None) => out.push(format!("{p}: {} vs (absent)", short(x))),
                    (None, Some(y)) => out.push(format!("{p}: (absent) vs {}", short(y))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if t != n => out.push(format!("{path}: {} vs {}", short(t), short(n))),
        _ => {}
    }
}

/// `s` cut to about `max` bytes (on a character boundary) for a readable report.
fn clip(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let cut = (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…({} bytes)", &s[..cut], s.len())
}

fn short(v: &Value) -> String {
    clip(v.to_string(), 300)
}

fn describe(o: &Outcome) -> String {
    clip(format!("{o:?}"), 600)
}

/// What differs between two outcomes, as lines.
fn outcome_diff(t: &Outcome, n: &Outcome) -> Vec<String> {
    if t == n {
        return Vec::new();
    }
    match (t, n) {
        (
            Outcome::Reply {
                status: ts,
                description: td,
                headers: th,
                body: tb,
            },
            Outcome::Reply {
                status: ns,
                description: nd,
                headers: nh,
                body: nb,
            },
        ) => {
            let mut out = Vec::new();
            if (ts, td) != (ns, nd) {
                out.push(format!("status: {ts:?} {td:?} vs {ns:?} {nd:?}"));
            }
            if th != nh {
                out.push(format!("headers: {th:?} vs {nh:?}"));
            }
            match (tb, nb) {
                (Body::Json(a, ka), Body::Json(b, kb)) => {
                    json_diff("", a, b, &mut out);
                    if out.is_empty() && ka != kb {
                        let at = ka.iter().zip(kb).take_while(|(x, y)| x == y).count();
                        out.push(format!(
                            "key order, from key #{at}: {:?} vs {:?}",
                            &ka[at..(at + 5).min(ka.len())],
                            &kb[at..(at + 5).min(kb.len())]
                        ));
                    }
                }
                _ if tb != nb => out.push(format!("body: {tb:?} vs {nb:?}")),
                _ => {}
            }
            out
        }
        _ => vec![format!("{} vs {}", describe(t), describe(n))],
    }
}

/// The whole sequence, against one server.
async fn replay(url: &str) -> Vec<Record> {
    let mut r = runner(url).await;
    let create = |name: &str| format!("$JS.API.STREAM.CREATE.{name}");
    let info = |name: &str| format!("$JS.API.STREAM.INFO.{name}");
    let update = |name: &str| format!("$JS.API.STREAM.UPDATE.{name}");
    let delete = |name: &str| format!("$JS.API.STREAM.DELETE.{name}");
    let purge = |name: &str| format!("$JS.API.STREAM.PURGE.{name}");
    let msg_get = |name: &str| format!("$JS.API.STREAM.MSG.GET.{name}");
    let msg_delete = |name: &str| format!("$JS.API.STREAM.MSG.DELETE.{name}");
    let direct = |name: &str| format!("$JS.API.DIRECT.GET.{name}");

    // --- Account info and stream creation.
    r.api("account info, fresh", "$JS.API.INFO", "").await;
    r.api(
        "create minimal",
        &create("S"),
        r#"{"name":"S","subjects":["s.>"]}"#,
    )
    .await;
    r.api(
        "create minimal again (idempotent)",
        &create("S"),
        r#"{"name":"S","subjects":["s.>"]}"#,
    )
    .await;
    r.api(
        "create same name, other config",
        &create("S"),
        r#"{"name":"S","subjects":["s.>"],"max_msgs":10}"#,
    )
    .await;
    r.api(
        "create overlapping subjects",
        &create("O"),
        r#"{"name":"O","subjects":["s.a"]}"#,
    )
    .await;
    r.api(
        "create memory",
        &create("M"),
        r#"{"name":"M","subjects":["m.*"],"storage":"memory"}"#,
    )
    .await;
    let every_limit = r#"{"name":"L","subjects":["l.>"],"max_msgs":100,"max_bytes":1048576,
        "max_age":3600000000000,"max_msgs_per_subject":5,"max_msg_size":1024,"discard":"new",
        "duplicate_window":60000000000,"allow_direct":true,"deny_delete":true,
        "allow_rollup_hdrs":true,"description":"every limit","metadata":{"k":"v"},
        "compression":"s2"}"#;
    r.api("create every limit", &create("L"), every_limit).await;
    r.api("create every limit again", &create("L"), every_limit)
        .await;
    // A configured first sequence: the stream starts there (first_seq 100, last_seq 99), the
    // first publish gets it, in a file and in a memory stream.
    r.api(
        "create with first_seq",
        &create("F"),
        r#"{"name":"F","subjects":["f"],"first_seq":100}"#,
    )
    .await;
    r.publish("first publish at first_seq", "f", &[], "f1")
        .await;
    r.publish("second publish after first_seq", "f", &[], "f2")
        .await;
    r.api("info with first_seq", &info("F"), "").await;
    r.api("delete with first_seq", &delete("F"), "").await;
    r.api(
        "create memory with first_seq",
        &create("FM"),
        r#"{"name":"FM","subjects":["fm"],"storage":"memory","first_seq":7}"#,
    )
    .await;
    r.publish("memory publish at first_seq", "fm", &[], "fm1")
        .await;
    r.api("info memory with first_seq", &info("FM"), "").await;
    r.api("delete memory with first_seq", &delete("FM"), "")
        .await;
    r.api(
        "create self-overlapping subjects",
        &create("B"),
        r#"{"name":"B","subjects":["b.x","b.*","b.x"]}"#,
    )
    .await;
    r.api(
        "create duplicate subjects",
        &create("B"),
        r#"{"name":"B","subjects":["b.1","b.2","b.1"]}"#,
    )
    .await;
    r.api(
        "create rollup with deny_purge",
        &create("R"),
        r#"{"name":"R","subjects":["r.>"],"deny_purge":true,"allow_rollup_hdrs":true}"#,
    )
    .await;
    r.api(
        "create max_msgs 2 discard new",
        &create("N"),
        r#"{"name":"N","subjects":["n.*"],"max_msgs":2,"discard":"new"}"#,
    )
    .await;
    r.api(
        "create max_msg_size 10",
        &create("Z"),
        r#"{"name":"Z","subjects":["z"],"max_msg_size":10,"storage":"memory"}"#,
    )
    .await;
    r.api(
        "create deny_purge deny_delete",
        &create("D"),
        r#"{"name":"D","subjects":["d.*"],"deny_purge":true,"deny_delete":true}"#,
    )
    .await;

    // --- Bad creates.
    r.api("create malformed json", &create("B"), r#"{"name":"B","#)
        .await;
    r.api(
        "create subjects wrong type",
        &create("B"),
        r#"{"name":"B","subjects":"b"}"#,
    )
    .await;
    r.api(
        "create max_msgs wrong type",
        &create("B"),
        r#"{"name":"B","subjects":["b"],"max_msgs":"ten"}"#,
    )
    .await;
    r.api(
        "create storage bogus",
        &create("B"),
        r#"{"name":"B","subjects":["b"],"storage":"paper"}"#,
    )
    .await;
    r.api(
        "create unknown field",
        &create("B"),
        r#"{"name":"B","subjects":["b"],"bogus":1}"#,
    )
    .await;
    r.api("create empty body", &create("B"), "").await;
    r.api("create json array", &create("B"), "[]").await;
    r.api(
        "create mismatched name",
        &create("Y"),
        r#"{"name":"X","subjects":["x"]}"#,
    )
    .await;
    r.api("create no name", &create("Y"), r#"{"subjects":["x"]}"#)
        .await;
    let big_description = format!(
        r#"{{"name":"B","subjects":["b"],"description":"{}"}}"#,
        "d".repeat(100 * 1024)
    );
    r.api("create 100 KB description", &create("B"), big_description)
        .await;
    let many: Vec<String> = (0..10_000).map(|i| format!("\"many.{i}\"")).collect();
    let many = format!(r#"{{"name":"MANY","subjects":[{}]}}"#, many.join(","));
    r.timeout = SLOW_REQUEST_TIMEOUT;
    r.api("create 10k subjects", &create("MANY"), many).await;
    r.timeout = REQUEST_TIMEOUT;
    r.api("delete 10k subjects", &delete("MANY"), "").await;
    r.api(
        "create name with dot",
        &create("a"),
        r#"{"name":"a.b","subjects":["ab"]}"#,
    )
    .await;
    r.api(
        "create name with space",
        &create("a"),
        r#"{"name":"a b","subjects":["ab"]}"#,
    )
    .await;
    r.api(
        "create name with star",
        &create("a*b"),
        r#"{"name":"a*b","subjects":["ab"]}"#,
    )
    .await;
    r.api(
        "create name with gt",
        &create("a>b"),
        r#"{"name":"a>b","subjects":["ab"]}"#,
    )
    .await;
    r.api(
        "create name *",
        &create("*"),
        r#"{"name":"*","subjects":["ab"]}"#,
    )
    .await;
    r.api(
        "create name with slash",
        &create("a/b"),
        r#"{"name":"a/b","subjects":["ab"]}"#,
    )
    .await;
    r.api(
        "create subjects $JS.API.>",
        &create("B"),
        r#"{"name":"B","subjects":["$JS.API.>"]}"#,
    )
    .await;
    r.api(
        "create subjects $JS.API.FOO",
        &create("B"),
        r#"{"name":"B","subjects":["$JS.API.FOO"]}"#,
    )
    .await;
    r.api(
        "create subjects >",
        &create("B"),
        r#"{"name":"B","subjects":[">"]}"#,
    )
    .await;
    r.api(
        "create invalid subject",
        &create("B"),
        r#"{"name":"B","subjects":["b..c"]}"#,
    )
    .await;
    r.api(
        "create num_replicas 3",
        &create("B"),
        r#"{"name":"B","subjects":["b"],"num_replicas":3}"#,
    )
    .await;
    r.api(
        "create sealed",
        &create("B"),
        r#"{"name":"B","subjects":["b"],"sealed":true}"#,
    )
    .await;
    r.api(
        "create dup window over max_age",
        &create("B"),
        r#"{"name":"B","subjects":["b"],"max_age":1000000000,"duplicate_window":2000000000}"#,
    )
    .await;
    r.api("account info after creates", "$JS.API.INFO", "")
        .await;

    // --- Publishes and their acks.
    r.publish("plain", "s.a", &[], "one").await;
    r.publish("msg id", "s.a", &[("Nats-Msg-Id", "id1")], "two")
        .await;
    r.publish("msg id again", "s.a", &[("Nats-Msg-Id", "id1")], "two")
        .await;
    r.publish(
        "expected last seq wrong",
        "s.b",
        &[("Nats-Expected-Last-Sequence", "5")],
        "x",
    )
    .await;
    r.publish(
        "expected last seq right",
        "s.b",
        &[("Nats-Expected-Last-Sequence", "2")],
        "three",
    )
    .await;
    r.publish(
        "expected last subject seq wrong",
        "s.a",
        &[("Nats-Expected-Last-Subject-Sequence", "1")],
        "x",
    )
    .await;
    r.publish(
        "expected last subject seq right",
        "s.a",
        &[("Nats-Expected-Last-Subject-Sequence", "2")],
        "four",
    )
    .await;
    r.publish(
        "expected last subject seq none yet",
        "s.c",
        &[("Nats-Expected-Last-Subject-Sequence", "0")],
        "five",
    )
    .await;
    r.publish(
        "expected stream wrong",
        "s.a",
        &[("Nats-Expected-Stream", "OTHER")],
        "x",
    )
    .await;
    r.publish(
        "expected stream right",
        "s.a",
        &[("Nats-Expected-Stream", "S")],
        "six",
    )
    .await;
    r.publish(
        "expected last msg id wrong",
        "s.a",
        &[("Nats-Expected-Last-Msg-Id", "id1")],
        "x",
    )
    .await;
    r.publish("msg id two", "s.b", &[("Nats-Msg-Id", "id2")], "seven")
        .await;
    r.publish(
        "expected last msg id right",
        "s.a",
        &[("Nats-Expected-Last-Msg-Id", "id2")],
        "eight",
    )
    .await;
    r.publish("rollup not allowed", "s.a", &[("Nats-Rollup", "sub")], "x")
        .await;
    r.publish("own headers", "s.h", &[("K", "v")], "nine").await;
    r.publish("max msgs 1", "n.1", &[], "a").await;
    r.publish("max msgs 2", "n.2", &[], "b").await;
    r.publish("max msgs 3 (discard new)", "n.3", &[], "c").await;
    r.publish("max msg size ok", "z", &[], "0123456789").await;
    r.publish("max msg size over", "z", &[], "0123456789a")
        .await;
    r.publish("memory", "m.a", &[], "mem").await;
    for i in 0..3 {
        r.publish("every limit", "l.a", &[], &format!("la{i}"))
            .await;
    }
    r.publish("every limit other subject", "l.b", &[], "lb")
        .await;
    r.publish("every limit too large", "l.a", &[], &"x".repeat(2000))
        .await;
    r.publish("rollup bogus", "l.a", &[("Nats-Rollup", "bogus")], "x")
        .await;
    r.publish("rollup sub", "l.a", &[("Nats-Rollup", "sub")], "lr")
        .await;
    r.publish("deny", "d.a", &[], "d1").await;
    r.publish("deny", "d.b", &[], "d2").await;

    // More limits and headers, on streams of their own.
    r.api(
        "create per-subject discard new",
        &create("P"),
        r#"{"name":"P","subjects":["p.*"],"max_msgs_per_subject":1,"discard":"new",
            "discard_new_per_subject":true,"storage":"memory"}"#,
    )
    .await;
    r.publish("per subject 1", "p.a", &[], "1").await;
    r.publish("per subject 2 (refused)", "p.a", &[], "2").await;
    r.publish("per subject other", "p.b", &[], "3").await;
    r.api(
        "create max_bytes discard new",
        &create("Y"),
        r#"{"name":"Y","subjects":["y"],"max_bytes":100,"discard":"new"}"#,
    )
    .await;
    let forty = "x".repeat(40);
    r.publish("max bytes 1", "y", &[], &forty).await;
    r.publish("max bytes 2 (refused)", "y", &[], &forty).await;
    r.api(
        "create rollup stream",
        &create("E"),
        r#"{"name":"E","subjects":["e.*"],"allow_rollup_hdrs":true}"#,
    )
    .await;
    for (i, subj) in ["e.a", "e.b", "e.a", "e.c"].iter().enumerate() {
        r.publish("rollup stream", subj, &[], &format!("e{i}"))
            .await;
    }
    r.publish(
        "expected last seq of another subject, right",
        "e.a",
        &[
            ("Nats-Expected-Last-Subject-Sequence", "2"),
            ("Nats-Expected-Last-Subject-Sequence-Subject", "e.b"),
        ],
        "e4",
    )
    .await;
    r.publish(
        "expected last seq of another subject, wrong",
        "e.a",
        &[
            ("Nats-Expected-Last-Subject-Sequence", "1"),
            ("Nats-Expected-Last-Subject-Sequence-Subject", "e.b"),
        ],
        "x",
    )
    .await;
    r.publish(
        "expected subject without sequence",
        "e.a",
        &[("Nats-Expected-Last-Subject-Sequence-Subject", "e.b")],
        "x",
    )
    .await;
    r.publish(
        "expected last seq not a number",
        "e.a",
        &[("Nats-Expected-Last-Sequence", "abc")],
        "x",
    )
    .await;
    r.publish("msg id in window", "e.d", &[("Nats-Msg-Id", "E1")], "e5")
        .await;
    r.publish(
        "msg id in window again",
        "e.d",
        &[("Nats-Msg-Id", "E1")],
        "e5",
    )
    .await;
    r.api(
        "info E before rollup",
        &info("E"),
        r#"{"subjects_filter":">"}"#,
    )
    .await;
    r.publish("rollup sub", "e.a", &[("Nats-Rollup", "sub")], "e6")
        .await;
    r.api(
        "info E after rollup sub",
        &info("E"),
        r#"{"subjects_filter":">"}"#,
    )
    .await;
    r.publish("rollup all", "e.b", &[("Nats-Rollup", "all")], "e7")
        .await;
    r.api(
        "info E after rollup all",
        &info("E"),
        r#"{"subjects_filter":">"}"#,
    )
    .await;
    r.publish("msg id after rollup", "e.d", &[("Nats-Msg-Id", "E1")], "e8")
        .await;

    r.api("account info after publishes", "$JS.API.INFO", "")
        .await;

    // --- Info, names, list.
    r.api("info S", &info("S"), "").await;
    r.api("info S subjects", &info("S"), r#"{"subjects_filter":">"}"#)
        .await;
    r.api(
        "info S subjects s.a",
        &info("S"),
        r#"{"subjects_filter":"s.a"}"#,
    )
    .await;
    r.api(
        "info S subjects offset",
        &info("S"),
        r#"{"subjects_filter":">","offset":1}"#,
    )
    .await;
    r.api(
        "info S subjects offset past the end",
        &info("S"),
        r#"{"subjects_filter":">","offset":99}"#,
    )
    .await;
    r.api(
        "info S subjects none match",
        &info("S"),
        r#"{"subjects_filter":"nomatch.>"}"#,
    )
    .await;
    r.api("info S bad body", &info("S"), "nope").await;
    r.api("info S unknown field", &info("S"), r#"{"bogus":true}"#)
        .await;
    r.api("info L", &info("L"), "").await;
    r.api("info N", &info("N"), "").await;
    r.api("info missing", &info("NOPE"), "").await;
    r.api("names", "$JS.API.STREAM.NAMES", "").await;
    r.api(
        "names subject",
        "$JS.API.STREAM.NAMES",
        r#"{"subject":"s.a"}"#,
    )
    .await;
    r.api("names offset", "$JS.API.STREAM.NAMES", r#"{"offset":2}"#)
        .await;
    r.api(
        "names subject none",
        "$JS.API.STREAM.NAMES",
        r#"{"subject":"nomatch"}"#,
    )
    .await;
    r.api("names bad", "$JS.API.STREAM.NAMES", r#"{"offset":"x"}"#)
        .await;
    r.api("list", "$JS.API.STREAM.LIST", "").await;
    r.api(
        "list subject",
        "$JS.API.STREAM.LIST",
        r#"{"subject":"m.x"}"#,
    )
    .await;
    r.api("list offset", "$JS.API.STREAM.LIST", r#"{"offset":4}"#)
        .await;

    r.api("account info after info, names, list", "$JS.API.INFO", "")
        .await;

    // --- Message get.
    r.api("get seq 1", &msg_get("S"), r#"{"seq":1}"#).await;
    r.api("get with headers", &msg_get("S"), r#"{"seq":9}"#)
        .await;
    r.api(
        "get without headers",
        &msg_get("S"),
        r#"{"seq":9,"no_hdr":true}"#,
    )
    .await;
    r.api(
        "get last by subject",
        &msg_get("S"),
        r#"{"last_by_subj":"s.a"}"#,
    )
    .await;
    r.api(
        "get next by subject",
        &msg_get("S"),
        r#"{"seq":2,"next_by_subj":"s.b"}"#,
    )
    .await;
    r.api("get missing seq", &msg_get("S"), r#"{"seq":999}"#)
        .await;
    r.api(
        "get last by missing subject",
        &msg_get("S"),
        r#"{"last_by_subj":"s.zzz"}"#,
    )
    .await;
    r.api("get empty", &msg_get("S"), "").await;
    r.api("get empty object", &msg_get("S"), "{}").await;
    r.api("get bad json", &msg_get("S"), "nope").await;
    r.api("get seq wrong type", &msg_get("S"), r#"{"seq":"x"}"#)
        .await;
    r.api(
        "get seq and last",
        &msg_get("S"),
        r#"{"seq":1,"last_by_subj":"s.a"}"#,
    )
    .await;
    r.api("get unknown field", &msg_get("S"), r#"{"seq":1,"x":1}"#)
        .await;
    r.api("get missing stream", &msg_get("NOPE"), r#"{"seq":1}"#)
        .await;

    r.api("account info after message gets", "$JS.API.INFO", "")
        .await;

    // --- Message delete.
    r.api("delete seq 1", &msg_delete("S"), r#"{"seq":1}"#)
        .await;
    r.api("delete seq 1 again", &msg_delete("S"), r#"{"seq":1}"#)
        .await;
    r.api("delete missing seq", &msg_delete("S"), r#"{"seq":999}"#)
        .await;
    r.api(
        "delete no_erase",
        &msg_delete("S"),
        r#"{"seq":3,"no_erase":true}"#,
    )
    .await;
    r.api("delete empty", &msg_delete("S"), "").await;
    r.api("delete bad", &msg_delete("S"), r#"{"seq":"x"}"#)
        .await;
    r.api("delete deny_delete", &msg_delete("D"), r#"{"seq":1}"#)
        .await;
    r.api(
        "info S deleted details",
        &info("S"),
        r#"{"deleted_details":true}"#,
    )
    .await;
    r.api("get deleted", &msg_get("S"), r#"{"seq":1}"#).await;

    r.api("account info after message deletes", "$JS.API.INFO", "")
        .await;

    // --- Direct get (L allows it, S does not).
    r.direct("direct seq", &direct("L"), r#"{"seq":4}"#).await;
    r.direct(
        "direct seq no_hdr",
        &direct("L"),
        r#"{"seq":4,"no_hdr":true}"#,
    )
    .await;
    r.direct("direct seq purged", &direct("L"), r#"{"seq":1}"#)
        .await;
    r.direct(
        "direct last by subject",
        &direct("L"),
        r#"{"last_by_subj":"l.b"}"#,
    )
    .await;
    r.direct(
        "direct next by subject",
        &direct("L"),
        r#"{"seq":1,"next_by_subj":"l.b"}"#,
    )
    .await;
    r.direct("direct missing", &direct("L"), r#"{"seq":99999}"#)
        .await;
    r.direct("direct empty", &direct("L"), "").await;
    r.direct("direct empty object", &direct("L"), "{}").await;
    r.direct("direct malformed", &direct("L"), "nope").await;
    r.direct(
        "direct seq and last",
        &direct("L"),
        r#"{"seq":100,"last_by_subj":"l.a"}"#,
    )
    .await;
    r.direct("direct subject form", &format!("{}.l.a", direct("L")), "")
        .await;
    r.direct(
        "direct subject form missing",
        &format!("{}.l.zzz", direct("L")),
        "",
    )
    .await;
    r.direct(
        "direct subject form with body",
        &format!("{}.l.a", direct("L")),
        r#"{"seq":1}"#,
    )
    .await;
    r.direct("direct without allow_direct", &direct("S"), r#"{"seq":1}"#)
        .await;

    r.api("account info after direct gets", "$JS.API.INFO", "")
        .await;

    // --- Purge.
    r.api("purge deny_purge", &purge("D"), "").await;
    r.api("purge seq and keep", &purge("S"), r#"{"seq":3,"keep":1}"#)
        .await;
    r.api("purge bad json", &purge("S"), "nope").await;
    r.api("purge filter", &purge("S"), r#"{"filter":"s.b"}"#)
        .await;
    r.api("purge keep", &purge("S"), r#"{"filter":"s.a","keep":1}"#)
        .await;
    r.api("info S after purges", &info("S"), "").await;
    r.api("purge seq", &purge("S"), r#"{"seq":9}"#).await;
    r.api("purge all", &purge("S"), "").await;
    r.api("info S purged", &info("S"), "").await;
    r.publish("after purge", "s.a", &[], "ten").await;
    r.api("purge missing stream", &purge("NOPE"), "").await;
    r.api("purge E keep 1", &purge("E"), r#"{"keep":1}"#).await;
    r.api("info E after keep", &info("E"), "").await;
    // A purge up to a sequence past the end moves the first sequence there: the next publish
    // gets it. Without a filter (or with `>`) a purge up to a sequence is a compaction; within
    // the range it removes what is below.
    r.api("purge E past the end", &purge("E"), r#"{"seq":1000}"#)
        .await;
    r.api("info E after purge past the end", &info("E"), "")
        .await;
    r.publish("publish E after purge past the end", "e.a", &[], "e9")
        .await;
    r.publish("publish E again", "e.b", &[], "e10").await;
    r.publish("publish E a third time", "e.a", &[], "e11").await;
    r.api("purge E in range", &purge("E"), r#"{"seq":1001}"#)
        .await;
    r.api("info E after purge in range", &info("E"), "").await;
    r.api(
        "purge E past the end, filter >",
        &purge("E"),
        r#"{"seq":2000,"filter":">"}"#,
    )
    .await;
    r.api("info E after purge with filter >", &info("E"), "")
        .await;
    r.api(
        "purge E past the end, subject filter",
        &purge("E"),
        r#"{"seq":3000,"filter":"e.a"}"#,
    )
    .await;
    r.api("purge E up to 1", &purge("E"), r#"{"seq":1}"#).await;
    r.api("info E after filtered purge", &info("E"), "").await;
    r.publish("publish E after the purges", "e.c", &[], "e12")
        .await;
    r.api("info E at the end", &info("E"), "").await;
    r.api(
        "create memory for purge past the end",
        &create("PM"),
        r#"{"name":"PM","subjects":["pm.*"],"storage":"memory"}"#,
    )
    .await;
    r.publish("memory publish before purge", "pm.a", &[], "pm1")
        .await;
    r.api("purge memory past the end", &purge("PM"), r#"{"seq":50}"#)
        .await;
    r.publish("memory publish after purge", "pm.a", &[], "pm2")
        .await;
    r.api("info memory after purge", &info("PM"), "").await;
    r.api("delete memory purged", &delete("PM"), "").await;

    r.api("account info after purges", "$JS.API.INFO", "").await;

    // --- Update.
    r.api(
        "update limits",
        &update("S"),
        r#"{"name":"S","subjects":["s.>"],"max_msgs":50}"#,
    )
    .await;
    r.api(
        "update subjects",
        &update("S"),
        r#"{"name":"S","subjects":["s.>","t.>"],"max_msgs":50}"#,
    )
    .await;
    r.publish("new subject", "t.a", &[], "eleven").await;
    r.publish("old subject", "s.b", &[], "twelve").await;
    r.api(
        "update limits down",
        &update("S"),
        r#"{"name":"S","subjects":["s.>","t.>"],"max_msgs":1}"#,
    )
    .await;
    r.api("info S after limits down", &info("S"), "").await;
    r.api(
        "update storage",
        &update("S"),
        r#"{"name":"S","subjects":["s.>","t.>"],"storage":"memory"}"#,
    )
    .await;
    r.api(
        "update overlapping",
        &update("S"),
        r#"{"name":"S","subjects":["s.>","m.*"]}"#,
    )
    .await;
    r.api(
        "update mismatched name",
        &update("S"),
        r#"{"name":"X","subjects":["s.>"]}"#,
    )
    .await;
    r.api("update bad json", &update("S"), "nope").await;
    r.api(
        "update missing stream",
        &update("NOPE"),
        r#"{"name":"NOPE","subjects":["nope"]}"#,
    )
    .await;
    r.api(
        "update seal",
        &update("N"),
        r#"{"name":"N","subjects":["n.*"],"max_msgs":2,"discard":"new","sealed":true}"#,
    )
    .await;
    r.publish("publish sealed", "n.1", &[], "x").await;
    r.api("delete msg sealed", &msg_delete("N"), r#"{"seq":1}"#)
        .await;
    r.api("purge sealed", &purge("N"), "").await;
    r.api(
        "update unseal",
        &update("N"),
        r#"{"name":"N","subjects":["n.*"],"max_msgs":2,"discard":"new"}"#,
    )
    .await;

    r.api("account info after updates", "$JS.API.INFO", "")
        .await;

    // --- Delete.
    r.api("delete M", &delete("M"), "").await;
    r.api("info deleted M", &info("M"), "").await;
    r.api("delete deleted M", &delete("M"), "").await;
    r.api("names after delete", "$JS.API.STREAM.NAMES", "")
        .await;
    r.api("account info at the end", "$JS.API.INFO", "").await;
    r.records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_api_replies_match_nats_server() {
    if require_nats_server("jetstream_api_replies_match_nats_server").is_none() {
        return;
    }
    let (tdir, ndir) = (TempDir::new("jsdiff-t"), TempDir::new("jsdiff-n"));
    let tsd = tdir.0.to_string_lossy().into_owned();
    let nsd = ndir.0.to_string_lossy().into_owned();
    // Tachyon, or a second nats-server with TACHYON_TEST_AGAINST=nats-server (which checks
    // that the sequence and the masks are deterministic).
    let t = Server::under_test(SHARDS, &["-js", "-sd", &tsd]);
    let n = Server::start(Impl::NatsServer, &["-js", "-sd", &nsd]);
    let (tr, nr) = tokio::join!(replay(&t.url), replay(&n.url));
    assert_eq!(tr.len(), nr.len(), "both replays run the same steps");

    let mut mismatches = Vec::new();
    for (i, (a, b)) in tr.iter().zip(&nr).enumerate() {
        let diff = outcome_diff(&a.outcome, &b.outcome);
        if !diff.is_empty() {
            mismatches.push(format!(
                "#{i} {}: {} => (tachyon vs nats-server)\n    {}",
                a.label,
                a.subject,
                diff.join("\n    ")
            ));
        }
    }
    if std::env::var_os("JS_DIFF_DUMP").is_some() {
        for (a, b) in tr.iter().zip(&nr) {
            eprintln!(
                "{} {} ({:?} vs {:?})\n  T {:?}\n  N {:?}",
                a.label, a.subject, a.elapsed, b.elapsed, a.outcome, b.outcome
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} replies differ:\n{}\n\ntachyon log:\n{}",
        mismatches.len(),
        tr.len(),
        mismatches.join("\n"),
        t.log()
    );
}

async fn runner(url: &str) -> Runner {
    runner_with(url, async_nats::ConnectOptions::new()).await
}

/// A runner for a user of a configured account.
async fn runner_as(url: &str, user: &str) -> Runner {
    let opts = async_nats::ConnectOptions::with_user_and_password(user.into(), user.into());
    runner_with(url, opts).await
}

async fn runner_with(url: &str, opts: async_nats::ConnectOptions) -> Runner {
    let nc = opts
        .request_timeout(None)
        .connect(url)
        .await
        .expect("connect");
    Runner {
        nc,
        timeout: REQUEST_TIMEOUT,
        records: Vec::new(),
    }
}

/// File streams whose sequences were moved forward: one created with `first_seq`, one purged
/// up to a sequence past its end (before the restart).
async fn moved_before_restart(r: &mut Runner) {
    r.api(
        "create file with first_seq",
        "$JS.API.STREAM.CREATE.FR",
        r#"{"name":"FR","subjects":["fr"],"first_seq":100}"#,
    )
    .await;
    r.api(
        "create file to purge past the end",
        "$JS.API.STREAM.CREATE.PR",
        r#"{"name":"PR","subjects":["pr.*"]}"#,
    )
    .await;
    for (i, subj) in ["pr.a", "pr.b", "pr.a"].iter().enumerate() {
        r.publish(&format!("publish PR {i}"), subj, &[], "p").await;
    }
    r.api(
        "purge PR past the end",
        "$JS.API.STREAM.PURGE.PR",
        r#"{"seq":500}"#,
    )
    .await;
    r.api("info FR", "$JS.API.STREAM.INFO.FR", "").await;
    r.api("info PR", "$JS.API.STREAM.INFO.PR", "").await;
}

/// After a restart (SIGKILL): the moved sequences are recovered, the next publishes get them,
/// and they survive a second restart.
async fn moved_after_restart(r: &mut Runner, round: usize) {
    r.api(
        &format!("info FR after restart {round}"),
        "$JS.API.STREAM.INFO.FR",
        "",
    )
    .await;
    r.api(
        &format!("info PR after restart {round}"),
        "$JS.API.STREAM.INFO.PR",
        "",
    )
    .await;
    if round == 1 {
        r.publish("publish FR after restart", "fr", &[], "f").await;
        r.publish("publish PR after restart", "pr.c", &[], "p")
            .await;
    }
}

/// The moved sequences of file streams (a configured first sequence, a purge past the end)
/// survive restarts as nats-server's do: both servers are killed and restarted twice, and every
/// reply is compared as in the main sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_sequences_survive_restarts_as_in_nats_server() {
    if require_nats_server("moved_sequences_survive_restarts_as_in_nats_server").is_none() {
        return;
    }
    let (tdir, ndir) = (TempDir::new("jsdiff-rt"), TempDir::new("jsdiff-rn"));
    let tsd = tdir.0.to_string_lossy().into_owned();
    let nsd = ndir.0.to_string_lossy().into_owned();
    let mut t = Server::under_test(SHARDS, &["-js", "-sd", &tsd]);
    let mut n = Server::start(Impl::NatsServer, &["-js", "-sd", &nsd]);
    let (mut tr, mut nr) = tokio::join!(runner(&t.url), runner(&n.url));
    tokio::join!(moved_before_restart(&mut tr), moved_before_restart(&mut nr));
    let (mut trecs, mut nrecs) = (
        std::mem::take(&mut tr.records),
        std::mem::take(&mut nr.records),
    );
    for round in 1..=2 {
        t.restart();
        n.restart();
        let (mut tr, mut nr) = tokio::join!(runner(&t.url), runner(&n.url));
        tokio::join!(
            moved_after_restart(&mut tr, round),
            moved_after_restart(&mut nr, round)
        );
        trecs.append(&mut tr.records);
        nrecs.append(&mut nr.records);
    }
    // MASK: `state.last_ts` after a restart. nats-server keeps the time of the last sequence
    // across a restart (its tombstones carry it) even when no message is left, and gives a
    // stream that never held one the time it recovered it; tachyon's store keeps the sequence
    // only, so an emptied stream's last_ts is the zero time after a restart.
    for rec in trecs.iter_mut().chain(nrecs.iter_mut()) {
        if let Outcome::Reply {
            body: Body::Json(v, _),
            ..
        } = &mut rec.outcome
        {
            if rec.label.contains("after restart") {
                if let Some(x) = v.pointer_mut("/state/last_ts") {
                    *x = Value::String("<masked>".into());
                }
            }
        }
    }
    assert_eq!(trecs.len(), nrecs.len());
    assert_same_replies(&trecs, &nrecs, &t.log());
}

/// A config with JetStream limits: the server's (1 MiB of file store) and three accounts': `L`
/// with its own limits, `R` that requires `max_bytes`, `D` with only the server's.
fn limits_config(dir: &std::path::Path, store_dir: &str) -> String {
    let conf = format!(
        "jetstream {{ store_dir: \"{store_dir}\", max_file_store: 1MB, max_memory_store: 1MB }}
accounts {{
  L: {{
    jetstream: {{ max_streams: 3, max_file: 200K, max_mem: 100K, max_consumers: 5,
                 store_max_stream_bytes: 100K, mem_max_stream_bytes: 80K, max_ack_pending: 9 }}
    users: [ {{ user: l, password: l }} ]
  }}
  R: {{ jetstream: {{ max_bytes_required: true }}, users: [ {{ user: r, password: r }} ] }}
  D: {{ jetstream: enabled, users: [ {{ user: d, password: d }} ] }}
}}
"
    );
    let path = dir.join("limits.conf");
    std::fs::write(&path, conf).expect("write config");
    path.to_string_lossy().into_owned()
}

/// Account `L`: its limits in account info, the stream count, per-stream byte caps, reserved
/// bytes on create and update, and publishes past its file limit.
async fn account_limits(r: &mut Runner) {
    r.api("L info", "$JS.API.INFO", "").await;
    for (label, name, body) in [
        (
            "S1 file 50K",
            "S1",
            r#"{"name":"S1","subjects":["s1"],"max_bytes":51200}"#,
        ),
        (
            "S2 memory 60K",
            "S2",
            r#"{"name":"S2","subjects":["s2"],"storage":"memory","max_bytes":61440}"#,
        ),
        // Without a storage type nats-server's first check skips bytes: the cap says no.
        (
            "S3 over the per-stream cap",
            "S3",
            r#"{"name":"S3","subjects":["s3"],"max_bytes":153600}"#,
        ),
        // With one, the reservation says no first.
        (
            "S3 file over the per-stream cap",
            "S3",
            r#"{"name":"S3","subjects":["s3"],"storage":"file","max_bytes":153600}"#,
        ),
        (
            "S3 at the cap",
            "S3",
            r#"{"name":"S3","subjects":["s3"],"max_bytes":100000}"#,
        ),
        (
            "S4 past max_streams",
            "S4",
            r#"{"name":"S4","subjects":["s4"]}"#,
        ),
        (
            "S4 past max_streams with a bad config",
            "S4",
            r#"{"name":"S4","subjects":["s4 x"]}"#,
        ),
        (
            "S1 again, same config",
            "S1",
            r#"{"name":"S1","subjects":["s1"],"max_bytes":51200}"#,
        ),
    ] {
        r.api(label, &format!("$JS.API.STREAM.CREATE.{name}"), body)
            .await;
    }
    r.api("delete S3", "$JS.API.STREAM.DELETE.S3", "").await;
    for (label, name, body) in [
        (
            "M memory past the account's memory",
            "M",
            r#"{"name":"M","subjects":["m"],"storage":"memory","max_bytes":51200}"#,
        ),
        (
            "M memory over its per-stream cap",
            "M",
            r#"{"name":"M","subjects":["m"],"storage":"memory","max_bytes":90000}"#,
        ),
        (
            "C too many consumers",
            "C",
            r#"{"name":"C","subjects":["c"],"max_consumers":6}"#,
        ),
        (
            "M memory 30K",
            "M",
            r#"{"name":"M","subjects":["m"],"storage":"memory","max_bytes":30000}"#,
        ),
    ] {
        r.api(label, &format!("$JS.API.STREAM.CREATE.{name}"), body)
            .await;
    }
    r.api("delete M", "$JS.API.STREAM.DELETE.M", "").await;
    r.api(
        "S4 unlimited",
        "$JS.API.STREAM.CREATE.S4",
        r#"{"name":"S4","subjects":["s4"]}"#,
    )
    .await;
    r.api(
        "update S1 past the cap",
        "$JS.API.STREAM.UPDATE.S1",
        r#"{"name":"S1","subjects":["s1"],"max_bytes":204800}"#,
    )
    .await;
    r.api(
        "update S1 to the cap",
        "$JS.API.STREAM.UPDATE.S1",
        r#"{"name":"S1","subjects":["s1"],"max_bytes":100000}"#,
    )
    .await;
    let big = "x".repeat(10_000);
    for i in 0..22 {
        r.publish(&format!("L publish {i}"), "s4", &[], &big).await;
    }
    r.api("S4 info", "$JS.API.STREAM.INFO.S4", "").await;
    r.api("L info after", "$JS.API.INFO", "").await;
}

/// Account `R`: `max_bytes` is required.
async fn bytes_required(r: &mut Runner) {
    r.api("R info", "$JS.API.INFO", "").await;
    r.api(
        "R without max_bytes",
        "$JS.API.STREAM.CREATE.R1",
        r#"{"name":"R1","subjects":["r1"]}"#,
    )
    .await;
    r.api(
        "R with max_bytes",
        "$JS.API.STREAM.CREATE.R1",
        r#"{"name":"R1","subjects":["r1"],"max_bytes":1000}"#,
    )
    .await;
    r.api(
        "R update dropping max_bytes",
        "$JS.API.STREAM.UPDATE.R1",
        r#"{"name":"R1","subjects":["r1"]}"#,
    )
    .await;
}

/// Account `D`, bound by the server's limits only: a reservation past them, then publishes
/// until the server's file store is full.
async fn server_limits(r: &mut Runner) {
    r.api(
        "D reserving past the server",
        "$JS.API.STREAM.CREATE.D1",
        r#"{"name":"D1","subjects":["d1"],"max_bytes":2097152}"#,
    )
    .await;
    r.api(
        "D unlimited",
        "$JS.API.STREAM.CREATE.D1",
        r#"{"name":"D1","subjects":["d1"]}"#,
    )
    .await;
    let big = "y".repeat(100_000);
    for i in 0..13 {
        r.publish(&format!("D publish {i}"), "d1", &[], &big).await;
    }
    r.api("D info", "$JS.API.INFO", "").await;
}

/// Account and server JetStream limits: the same config and steps against both servers (one
/// account after another, so the server-wide usage is the same at each step).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_and_server_limits_match_nats_server() {
    if require_nats_server("account_and_server_limits_match_nats_server").is_none() {
        return;
    }
    let (tdir, ndir) = (TempDir::new("jslim-t"), TempDir::new("jslim-n"));
    let tconf = limits_config(&tdir.0, &tdir.0.join("store").to_string_lossy());
    let nconf = limits_config(&ndir.0, &ndir.0.join("store").to_string_lossy());
    let t = Server::under_test(SHARDS, &["-c", &tconf]);
    let n = Server::start(Impl::NatsServer, &["-c", &nconf]);
    let mut trecs = Vec::new();
    let mut nrecs = Vec::new();
    for user in ["l", "r", "d"] {
        let (mut tr, mut nr) = tokio::join!(runner_as(&t.url, user), runner_as(&n.url, user));
        match user {
            "l" => tokio::join!(account_limits(&mut tr), account_limits(&mut nr)),
            "r" => tokio::join!(bytes_required(&mut tr), bytes_required(&mut nr)),
            _ => tokio::join!(server_limits(&mut tr), server_limits(&mut nr)),
        };
        trecs.append(&mut tr.records);
        nrecs.append(&mut nr.records);
    }
    assert_eq!(trecs.len(), nrecs.len());
    // The steps must reach each limit (a sequence that refused nothing would prove nothing).
    let refused = |code: &str| {
        trecs
            .iter()
            .any(|r| matches!(&r.outcome, Outcome::Reply { body, .. } if format!("{body:?}").contains(code)))
    };
    for code in [
        "10002", "10023", "10026", "10027", "10028", "10047", "10113", "10122",
    ] {
        assert!(refused(code), "no step was refused with {code}");
    }
    assert_same_replies(&trecs, &nrecs, &t.log());
}

/// The consumer API: creates (new style, legacy durable, push), their errors, info, names,
/// list, pulls (messages, 404, 408, 409s), delete, and the stream's consumer count.
async fn consumer_steps(r: &mut Runner) {
    r.api(
        "stream C",
        "$JS.API.STREAM.CREATE.C",
        r#"{"name":"C","subjects":["c.>"]}"#,
    )
    .await;
    for (i, subj) in ["c.a", "c.b", "c.a", "c.c", "c.b"].iter().enumerate() {
        r.publish(&format!("publish C {i}"), subj, &[], &format!("m{i}"))
            .await;
    }
    let creates: &[(&str, &str, &str)] = &[
        (
            "pull durable",
            "$JS.API.CONSUMER.CREATE.C.d1",
            r#"{"stream_name":"C","config":{"durable_name":"d1","ack_policy":"explicit"}}"#,
        ),
        (
            "same again",
            "$JS.API.CONSUMER.CREATE.C.d1",
            r#"{"stream_name":"C","config":{"durable_name":"d1","ack_policy":"explicit"}}"#,
        ),
        (
            "action create, other config",
            "$JS.API.CONSUMER.CREATE.C.d1",
            r#"{"stream_name":"C","config":{"durable_name":"d1","ack_policy":"explicit","max_deliver":3},"action":"create"}"#,
        ),
        (
            "update of a missing one",
            "$JS.API.CONSUMER.CREATE.C.nope",
            r#"{"stream_name":"C","config":{"durable_name":"nope","ack_policy":"explicit"},"action":"update"}"#,
        ),
        (
            "filtered, by sequence",
            "$JS.API.CONSUMER.CREATE.C.d2.c.b",
            r#"{"stream_name":"C","config":{"name":"d2","filter_subject":"c.b","deliver_policy":"by_start_sequence","opt_start_seq":3,"ack_policy":"explicit","max_ack_pending":5}}"#,
        ),
        (
            "legacy durable push",
            "$JS.API.CONSUMER.DURABLE.CREATE.C.p1",
            r#"{"stream_name":"C","config":{"durable_name":"p1","deliver_subject":"nobody.listens","ack_policy":"explicit","deliver_policy":"last_per_subject"}}"#,
        ),
        (
            "stream name mismatch",
            "$JS.API.CONSUMER.CREATE.C.x",
            r#"{"stream_name":"D","config":{"durable_name":"x"}}"#,
        ),
        (
            "bad ack policy",
            "$JS.API.CONSUMER.CREATE.C.x",
            r#"{"stream_name":"C","config":{"durable_name":"x","ack_policy":"sometimes"}}"#,
        ),
        (
            "wildcard deliver subject",
            "$JS.API.CONSUMER.CREATE.C.x",
            r#"{"stream_name":"C","config":{"durable_name":"x","deliver_subject":"d.*"}}"#,
        ),
        (
            "no stream",
            "$JS.API.CONSUMER.CREATE.NOPE.x",
            r#"{"stream_name":"NOPE","config":{"durable_name":"x"}}"#,
        ),
        (
            "last policy",
            "$JS.API.CONSUMER.CREATE.C.d3",
            r#"{"stream_name":"C","config":{"durable_name":"d3","deliver_policy":"last","ack_policy":"none"}}"#,
        ),
    ];
    for (label, subject, body) in creates {
        r.api(label, subject, *body).await;
    }
    r.api("info d1", "$JS.API.CONSUMER.INFO.C.d1", "").await;
    r.api("info missing", "$JS.API.CONSUMER.INFO.C.nope", "")
        .await;
    r.api("info no stream", "$JS.API.CONSUMER.INFO.NOPE.d1", "")
        .await;
    r.api("names", "$JS.API.CONSUMER.NAMES.C", "").await;
    r.api(
        "names offset",
        "$JS.API.CONSUMER.NAMES.C",
        r#"{"offset":2}"#,
    )
    .await;
    r.api("list", "$JS.API.CONSUMER.LIST.C", "").await;
    for (label, body) in [
        ("next 1", ""),
        ("next 2", "2"),
        ("next json", r#"{"batch":1}"#),
    ] {
        r.direct(label, "$JS.API.CONSUMER.MSG.NEXT.C.d1", body)
            .await;
    }
    r.direct(
        "next filtered",
        "$JS.API.CONSUMER.MSG.NEXT.C.d2",
        r#"{"batch":1,"no_wait":true}"#,
    )
    .await;
    r.direct(
        "next filtered, nothing left",
        "$JS.API.CONSUMER.MSG.NEXT.C.d2",
        r#"{"batch":1,"no_wait":true}"#,
    )
    .await;
    r.direct(
        "next expiring",
        "$JS.API.CONSUMER.MSG.NEXT.C.d2",
        r#"{"batch":3,"expires":200000000}"#,
    )
    .await;
    r.direct("next on push", "$JS.API.CONSUMER.MSG.NEXT.C.p1", "1")
        .await;
    r.direct(
        "next bad heartbeat",
        "$JS.API.CONSUMER.MSG.NEXT.C.d1",
        r#"{"batch":1,"expires":1000000000,"idle_heartbeat":2000000000}"#,
    )
    .await;
    r.direct(
        "next batch over max_ack_pending limit",
        "$JS.API.CONSUMER.MSG.NEXT.C.d3",
        r#"{"batch":1,"no_wait":true}"#,
    )
    .await;
    r.api("info d1 after pulls", "$JS.API.CONSUMER.INFO.C.d1", "")
        .await;
    r.api("info d2 after pulls", "$JS.API.CONSUMER.INFO.C.d2", "")
        .await;
    r.api("info d3 after pulls", "$JS.API.CONSUMER.INFO.C.d3", "")
        .await;
    r.api("stream info with consumers", "$JS.API.STREAM.INFO.C", "")
        .await;
    r.api(
        "pause d1",
        "$JS.API.CONSUMER.PAUSE.C.d1",
        r#"{"pause_until":"2999-01-01T00:00:00Z"}"#,
    )
    .await;
    r.api("info paused d1", "$JS.API.CONSUMER.INFO.C.d1", "")
        .await;
    r.direct(
        "next on paused",
        "$JS.API.CONSUMER.MSG.NEXT.C.d1",
        r#"{"batch":1,"expires":200000000}"#,
    )
    .await;
    r.api("resume d1", "$JS.API.CONSUMER.PAUSE.C.d1", "").await;
    r.api("info resumed d1", "$JS.API.CONSUMER.INFO.C.d1", "")
        .await;
    r.api("pause missing", "$JS.API.CONSUMER.PAUSE.C.nope", "{}")
        .await;
    r.api("pause no stream", "$JS.API.CONSUMER.PAUSE.NOPE.x", "{}")
        .await;
    r.api(
        "pause bad json",
        "$JS.API.CONSUMER.PAUSE.C.d1",
        r#"{"pause_until":12}"#,
    )
    .await;
    r.api("delete d2", "$JS.API.CONSUMER.DELETE.C.d2", "").await;
    r.api("delete d2 again", "$JS.API.CONSUMER.DELETE.C.d2", "")
        .await;
    r.api("account info", "$JS.API.INFO", "").await;
}

/// Consumer API replies against nats-server's, masked as the stream replies are (plus
/// `last_active`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_api_replies_match_nats_server() {
    if require_nats_server("consumer_api_replies_match_nats_server").is_none() {
        return;
    }
    let (tdir, ndir) = (TempDir::new("jscdiff-t"), TempDir::new("jscdiff-n"));
    let tsd = tdir.0.to_string_lossy().into_owned();
    let nsd = ndir.0.to_string_lossy().into_owned();
    let t = Server::under_test(SHARDS, &["-js", "-sd", &tsd]);
    let n = Server::start(Impl::NatsServer, &["-js", "-sd", &nsd]);
    let (mut tr, mut nr) = tokio::join!(runner(&t.url), runner(&n.url));
    tokio::join!(consumer_steps(&mut tr), consumer_steps(&mut nr));
    let (trecs, nrecs) = (tr.records, nr.records);
    assert_same_replies(&trecs, &nrecs, &t.log());
}

/// Both replays ran the same steps and got the same replies (with `JS_DIFF_DUMP=1`, every
/// step's two outcomes are printed).
fn assert_same_replies(trecs: &[Record], nrecs: &[Record], log: &str) {
    assert_eq!(trecs.len(), nrecs.len(), "both replays run the same steps");
    if std::env::var_os("JS_DIFF_DUMP").is_some() {
        for (a, b) in trecs.iter().zip(nrecs) {
            eprintln!("{}\n  T {:?}\n  N {:?}", a.label, a.outcome, b.outcome);
        }
    }
    let mismatches: Vec<String> = trecs
        .iter()
        .zip(nrecs)
        .filter_map(|(a, b)| {
            let diff = outcome_diff(&a.outcome, &b.outcome);
            (!diff.is_empty()).then(|| format!("{}: {}", a.label, diff.join("\n    ")))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} replies differ:\n{}\n\ntachyon log:\n{}",
        mismatches.len(),
        trecs.len(),
        mismatches.join("\n"),
        log
    );
}

#[test]
fn key_order_lists_object_keys_as_written() {
    let raw = br#"{"b":1, "a" : {"c":"x:\"y\"","d":[1,"e",{"f":null}]}}"#;
    assert_eq!(key_order(raw), ["b", "a", "c", "d", "f"]);
    assert_eq!(clip("ééé".into(), 3), "é…(6 bytes)");
}
