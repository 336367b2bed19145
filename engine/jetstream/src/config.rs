//! Stream configuration as nats-server 2.15 reads, defaults, checks and writes it
//! (`StreamConfig`, `checkStreamCfg`, `configUpdateCheck` in server/stream.go).
//!
//! The JSON form is the wire form: every field nats-server has, in its order, with Go's
//! `omitempty` choices, durations as nanoseconds, enums as nats-server's strings. Requests are
//! decoded with Go's rules ([`crate::api::gojson`]) so a malformed one gets the same
//! "invalid JSON: ..." text. The checks run in nats-server's order, so a config with several
//! problems is refused for the same one.
//!
//! The account's per-stream byte rules run inside the checks ([`parse_create_for`],
//! [`parse_update_for`]); its stream count and reservations run where nats-server runs them,
//! through `parse_create_for`'s precheck (see [`crate::limits`]). What needs other streams is
//! left to the caller, in this order after [`parse_create`]: an existing stream of that name
//! ([`StreamConfig::same_as_existing`], else `STREAM_NAME_EXIST`), subject overlap with other
//! streams ([`subjects_overlap`], `STREAM_SUBJECT_OVERLAP`). Also left out: source/mirror
//! cycles, a mirror inheriting `mirror_direct` from its origin's `allow_direct`, origin
//! `max_msg_size` checks, and the server's `limits.duplicate_window` cap.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::gojson::{self, Dec, Kind, Node};
use crate::api::{AccountLimits, GoTime};
use crate::errors::{self, ApiError};

pub const MAX_NAME_LEN: usize = 255;
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Sum of metadata key and value lengths.
pub const MAX_METADATA_LEN: usize = 128 * 1024;
pub const MAX_REPLICAS: i64 = 5;
/// Two minutes, in nanoseconds.
pub const DEFAULT_DUPLICATE_WINDOW: i64 = 120_000_000_000;
const HUNDRED_MS: i64 = 100_000_000;

/// API level a stream needs to be understood; stored with the config.
pub const META_REQUIRED_LEVEL: &str = "_nats.req.level";
/// Version of the server answering; added to replies only.
pub const META_SERVER_VERSION: &str = "_nats.ver";
/// API level of the server answering; added to replies only.
pub const META_SERVER_LEVEL: &str = "_nats.level";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RetentionPolicy {
    #[default]
    #[serde(rename = "limits")]
    Limits,
    #[serde(rename = "interest")]
    Interest,
    #[serde(rename = "workqueue")]
    WorkQueue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DiscardPolicy {
    #[default]
    #[serde(rename = "old")]
    Old,
    #[serde(rename = "new")]
    New,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StorageType {
    #[default]
    #[serde(rename = "file")]
    File,
    #[serde(rename = "memory")]
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Compression {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "s2")]
    S2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PersistMode {
    /// Written as nothing (Go omits the zero value).
    #[default]
    #[serde(rename = "default")]
    Default,
    #[serde(rename = "async")]
    Async,
}

impl PersistMode {
    fn is_default(&self) -> bool {
        *self == PersistMode::Default
    }
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// `Some(vec![])` is what a client's `"tags":[]` gives: written as nothing, but it keeps
    /// an otherwise empty placement (Go tells a nil slice from an empty one).
    #[serde(skip_serializing_if = "no_tags")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub preferred: String,
}

fn no_tags(t: &Option<Vec<String>>) -> bool {
    match t {
        Some(tags) => tags.is_empty(),
        None => true,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectTransformConfig {
    pub src: String,
    pub dest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalStream {
    pub api: String,
    pub deliver: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerSource {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
}

/// A mirror or source (`StreamSource`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSource {
    pub name: String,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    /// Kept with the offset the client wrote, which nats-server echoes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<GoTime>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransformConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<StreamConsumerSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RePublish {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub src: String,
    pub dest: String,
    #[serde(skip_serializing_if = "is_false")]
    pub headers_only: bool,
}

/// Defaults for consumers of the stream; always written, `{}` when unset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerLimits {
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub inactive_threshold: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
}

/// nats-server's `StreamConfig`. Durations are nanoseconds; -1 is "unlimited" once
/// normalized. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    pub retention: RetentionPolicy,
    pub max_consumers: i64,
    pub max_msgs: i64,
    pub max_bytes: i64,
    pub max_age: i64,
    pub max_msgs_per_subject: i64,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub max_msg_size: i32,
    pub discard: DiscardPolicy,
    pub storage: StorageType,
    pub num_replicas: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub no_ack: bool,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub duplicate_window: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSource>,
    pub compression: Compression,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub first_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransformConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    pub allow_direct: bool,
    pub mirror_direct: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub discard_new_per_subject: bool,
    pub sealed: bool,
    pub deny_delete: bool,
    pub deny_purge: bool,
    pub allow_rollup_hdrs: bool,
    pub consumer_limits: StreamConsumerLimits,
    pub allow_msg_ttl: bool,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub subject_delete_marker_ttl: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_counter: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_atomic: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_msg_schedules: bool,
    #[serde(skip_serializing_if = "PersistMode::is_default")]
    pub persist_mode: PersistMode,
    #[serde(skip_serializing_if = "is_false")]
    pub allow_batched: bool,
    /// Go writes map keys sorted, as a `BTreeMap` iterates.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl StreamConfig {
    /// A feature of this config that Tachyon does not implement yet: such a config is refused
    /// with an error naming it, rather than accepted and silently not acted on.
    pub fn unsupported(&self) -> Option<&'static str> {
        if self.mirror.is_some() {
            Some("mirror")
        } else if !self.sources.is_empty() {
            Some("sources")
        } else if self.subject_transform.is_some() {
            Some("subject_transform")
        } else if self.republish.is_some() {
            Some("republish")
        } else {
            None
        }
    }

    pub fn is_memory(&self) -> bool {
        self.storage == StorageType::Memory
    }

    /// The store's limits; -1 (and any other non-positive value) is unlimited. A stream that
    /// allows per-message TTLs ages its messages itself (a `Nats-TTL: never` message outlives
    /// `max_age`, and a subject's last message may give way to a marker), so its store gets
    /// no `max_age`.
    pub fn limits(&self) -> tachyon_storage::Limits {
        let pos = |v: i64| u64::try_from(v).ok().filter(|v| *v > 0);
        tachyon_storage::Limits {
            max_msgs: pos(self.max_msgs),
            max_bytes: pos(self.max_bytes),
            max_age: pos(self.max_age)
                .filter(|_| !self.allow_msg_ttl)
                .map(Duration::from_nanos),
            max_msgs_per_subject: pos(self.max_msgs_per_subject),
            // Checked by the stream on headers + payload, as nats-server does; the store would
            // count the subject and its own overhead too (nats-server's stores check nothing).
            max_msg_size: None,
            discard: match self.discard {
                DiscardPolicy::Old => tachyon_storage::DiscardPolicy::Old,
                DiscardPolicy::New => tachyon_storage::DiscardPolicy::New,
            },
            discard_new_per_subject: self.discard_new_per_subject,
        }
    }

    /// The API level the config needs (`_nats.req.level`), by the feature levels of
    /// nats-server 2.15 (TTLs 1; counters, atomic batches, schedules, async persist 2; fast
    /// batches 4).
    pub fn required_api_level(&self) -> u32 {
        let mut level = 0;
        if self.allow_msg_ttl || self.subject_delete_marker_ttl > 0 {
            level = 1;
        }
        if self.allow_msg_counter
            || self.allow_atomic
            || self.allow_msg_schedules
            || self.persist_mode == PersistMode::Async
        {
            level = 2;
        }
        if self.allow_batched {
            level = 4;
        }
        level
    }

    /// nats-server's `setStaticStreamMetadata`: the server's own keys never come from a
    /// client, and the required level is always recomputed.
    pub fn set_static_metadata(&mut self) {
        self.metadata.remove(META_SERVER_VERSION);
        self.metadata.remove(META_SERVER_LEVEL);
        self.metadata.insert(
            META_REQUIRED_LEVEL.to_string(),
            self.required_api_level().to_string(),
        );
    }

    /// The config as create, update and info replies show it: stored metadata plus the
    /// answering server's version and API level (Tachyon passes "2.12.0" and 2).
    pub fn with_dynamic_metadata(&self, version: &str, api_level: u32) -> StreamConfig {
        let mut c = self.clone();
        c.metadata
            .insert(META_SERVER_VERSION.to_string(), version.to_string());
        c.metadata
            .insert(META_SERVER_LEVEL.to_string(), api_level.to_string());
        c
    }

    /// Whether a create of this (parsed) config for a name already in use is the idempotent
    /// case that answers with the existing stream: equal after taking the existing
    /// `_nats.req.level` (nats-server's `copyStreamMetadata` + `DeepEqual`).
    pub fn same_as_existing(&self, existing: &StreamConfig) -> bool {
        let mut c = self.clone();
        c.metadata.remove(META_SERVER_VERSION);
        c.metadata.remove(META_SERVER_LEVEL);
        match existing.metadata.get(META_REQUIRED_LEVEL) {
            Some(l) => {
                c.metadata
                    .insert(META_REQUIRED_LEVEL.to_string(), l.clone());
            }
            None => {
                c.metadata.remove(META_REQUIRED_LEVEL);
            }
        }
        c == *existing
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding with Go's rules
// ---------------------------------------------------------------------------------------------

/// `StreamConfigRequest`: the config plus the request-scoped `pedantic`.
#[derive(Debug, Default)]
struct ConfigRequest {
    cfg: StreamConfig,
    pedantic: bool,
    /// Whether the request named a storage type (Go's zero value, otherwise, is neither).
    storage_sent: bool,
}

const CONFIG_FIELDS: &[&str] = &[
    "name",
    "description",
    "subjects",
    "retention",
    "max_consumers",
    "max_msgs",
    "max_bytes",
    "max_age",
    "max_msgs_per_subject",
    "max_msg_size",
    "discard",
    "storage",
    "num_replicas",
    "no_ack",
    "duplicate_window",
    "placement",
    "mirror",
    "sources",
    "compression",
    "first_seq",
    "subject_transform",
    "republish",
    "allow_direct",
    "mirror_direct",
    "discard_new_per_subject",
    "sealed",
    "deny_delete",
    "deny_purge",
    "allow_rollup_hdrs",
    "consumer_limits",
    "allow_msg_ttl",
    "subject_delete_marker_ttl",
    "allow_msg_counter",
    "allow_atomic",
    "allow_msg_schedules",
    "persist_mode",
    "allow_batched",
    "metadata",
    "pedantic",
];

/// `can not unmarshal "..."`: what nats-server's own enum unmarshalers say.
fn cannot_unmarshal(d: &mut Dec, raw: &[u8]) {
    d.fail(format!("can not unmarshal {}", gojson::quote(raw)));
}

fn decode_retention(d: &mut Dec, n: &Node, out: &mut RetentionPolicy) {
    let raw = d.raw(n);
    *out = match raw {
        b"\"limits\"" => RetentionPolicy::Limits,
        b"\"interest\"" => RetentionPolicy::Interest,
        b"\"workqueue\"" => RetentionPolicy::WorkQueue,
        _ => return cannot_unmarshal(d, raw),
    };
}

/// The only enum nats-server reads case-insensitively.
fn decode_discard(d: &mut Dec, n: &Node, out: &mut DiscardPolicy) {
    let raw = d.raw(n);
    *out = match String::from_utf8_lossy(raw).to_lowercase().as_str() {
        "\"old\"" => DiscardPolicy::Old,
        "\"new\"" => DiscardPolicy::New,
        _ => return cannot_unmarshal(d, raw),
    };
}

fn decode_storage(d: &mut Dec, n: &Node, out: &mut StorageType) {
    let raw = d.raw(n);
    *out = match raw {
        b"\"file\"" => StorageType::File,
        b"\"memory\"" => StorageType::Memory,
        _ => return cannot_unmarshal(d, raw),
    };
}

fn decode_persist_mode(d: &mut Dec, n: &Node, out: &mut PersistMode) {
    let raw = d.raw(n);
    *out = match raw {
        b"\"default\"" | b"\"\"" => PersistMode::Default,
        b"\"async\"" => PersistMode::Async,
        _ => return cannot_unmarshal(d, raw),
    };
}

/// Compression decodes its value as a JSON string first (escapes allowed, null is "").
fn decode_compression(d: &mut Dec, n: &Node, out: &mut Compression) {
    let s = match &n.kind {
        Kind::Null => "",
        Kind::Str(s) => s.as_str(),
        Kind::Bool(_) => return d.fail(not_a_string("bool")),
        Kind::Number => return d.fail(not_a_string("number")),
        Kind::Array(_) => return d.fail(not_a_string("array")),
        Kind::Object(_) => return d.fail(not_a_string("object")),
    };
    *out = match s {
        "s2" => Compression::S2,
        "none" => Compression::None,
        _ => return d.fail("unknown compression algorithm".to_string()),
    };
}

fn not_a_string(kind: &str) -> String {
    format!("json: cannot unmarshal {kind} into Go value of type string")
}

/// A Go pointer to a struct: null clears it, an object fills (and merges into) it.
fn decode_ptr<T: Default>(
    d: &mut Dec,
    n: &Node,
    out: &mut Option<T>,
    f: fn(&mut Dec, &Node, &mut T),
) {
    if matches!(n.kind, Kind::Null) {
        *out = None;
        return;
    }
    f(d, n, out.get_or_insert_with(T::default));
}

fn decode_placement(d: &mut Dec, n: &Node, p: &mut Placement) {
    d.object(
        n,
        "server.Placement",
        &["cluster", "tags", "preferred"],
        |d, f, v| match f {
            "cluster" => d.string(v, &mut p.cluster),
            "tags" => {
                if matches!(v.kind, Kind::Null) {
                    p.tags = None;
                } else {
                    d.strings(v, p.tags.get_or_insert_with(Vec::new));
                }
            }
            _ => d.string(v, &mut p.preferred),
        },
    );
}

fn decode_transform(d: &mut Dec, n: &Node, t: &mut SubjectTransformConfig) {
    d.object(
        n,
        "server.SubjectTransformConfig",
        &["src", "dest"],
        |d, f, v| match f {
            "src" => d.string(v, &mut t.src),
            _ => d.string(v, &mut t.dest),
        },
    );
}

fn decode_external(d: &mut Dec, n: &Node, e: &mut ExternalStream) {
    d.object(
        n,
        "server.ExternalStream",
        &["api", "deliver"],
        |d, f, v| match f {
            "api" => d.string(v, &mut e.api),
            _ => d.string(v, &mut e.deliver),
        },
    );
}

fn decode_consumer_source(d: &mut Dec, n: &Node, c: &mut StreamConsumerSource) {
    d.object(
        n,
        "server.StreamConsumerSource",
        &["name", "deliver_subject"],
        |d, f, v| match f {
            "name" => d.string(v, &mut c.name),
            _ => d.string(v, &mut c.deliver_subject),
        },
    );
}

/// A source; a null element of `sources` stays an empty source, which the checks refuse
/// as nats-server refuses its nil pointer (invalid source name).
fn decode_source(d: &mut Dec, n: &Node, s: &mut StreamSource) {
    d.object(
        n,
        "server.StreamSource",
        &[
            "name",
            "opt_start_seq",
            "opt_start_time",
            "filter_subject",
            "subject_transforms",
            "external",
            "consumer",
        ],
        |d, f, v| match f {
            "name" => d.string(v, &mut s.name),
            "opt_start_seq" => d.uint(v, &mut s.opt_start_seq),
            "opt_start_time" => d.time(v, &mut s.opt_start_time),
            "filter_subject" => d.string(v, &mut s.filter_subject),
            "subject_transforms" => d.list(
                v,
                "[]server.SubjectTransformConfig",
                &mut s.subject_transforms,
                decode_transform,
            ),
            "external" => decode_ptr(d, v, &mut s.external, decode_external),
            _ => decode_ptr(d, v, &mut s.consumer, decode_consumer_source),
        },
    );
}

fn decode_republish(d: &mut Dec, n: &Node, r: &mut RePublish) {
    d.object(
        n,
        "server.RePublish",
        &["src", "dest", "headers_only"],
        |d, f, v| match f {
            "src" => d.string(v, &mut r.src),
            "dest" => d.string(v, &mut r.dest),
            _ => d.boolean(v, &mut r.headers_only),
        },
    );
}

fn decode_consumer_limits(d: &mut Dec, n: &Node, l: &mut StreamConsumerLimits) {
    d.object(
        n,
        "server.StreamConsumerLimits",
        &["inactive_threshold", "max_ack_pending"],
        |d, f, v| match f {
            "inactive_threshold" => d.int(v, &mut l.inactive_threshold, "time.Duration"),
            _ => d.int(v, &mut l.max_ack_pending, "int"),
        },
    );
}

fn decode_config(d: &mut Dec, n: &Node, out: &mut ConfigRequest) {
    let c = &mut out.cfg;
    let pedantic = &mut out.pedantic;
    let mut out_storage_sent = false;
    d.object(n, "server.StreamConfigRequest", CONFIG_FIELDS, |d, f, v| {
        match f {
            "name" => d.string(v, &mut c.name),
            "description" => d.string(v, &mut c.description),
            "subjects" => d.strings(v, &mut c.subjects),
            "retention" => decode_retention(d, v, &mut c.retention),
            "max_consumers" => d.int(v, &mut c.max_consumers, "int"),
            "max_msgs" => d.int(v, &mut c.max_msgs, "int64"),
            "max_bytes" => d.int(v, &mut c.max_bytes, "int64"),
            "max_age" => d.int(v, &mut c.max_age, "time.Duration"),
            "max_msgs_per_subject" => d.int(v, &mut c.max_msgs_per_subject, "int64"),
            "max_msg_size" => d.int32(v, &mut c.max_msg_size),
            "discard" => decode_discard(d, v, &mut c.discard),
            "storage" => {
                out_storage_sent = true;
                decode_storage(d, v, &mut c.storage)
            }
            "num_replicas" => d.int(v, &mut c.num_replicas, "int"),
            "no_ack" => d.boolean(v, &mut c.no_ack),
            "duplicate_window" => d.int(v, &mut c.duplicate_window, "time.Duration"),
            "placement" => decode_ptr(d, v, &mut c.placement, decode_placement),
            "mirror" => decode_ptr(d, v, &mut c.mirror, decode_source),
            "sources" => d.list(v, "[]*server.StreamSource", &mut c.sources, decode_source),
            "compression" => decode_compression(d, v, &mut c.compression),
            "first_seq" => d.uint(v, &mut c.first_seq),
            "subject_transform" => decode_ptr(d, v, &mut c.subject_transform, decode_transform),
            "republish" => decode_ptr(d, v, &mut c.republish, decode_republish),
            "allow_direct" => d.boolean(v, &mut c.allow_direct),
            "mirror_direct" => d.boolean(v, &mut c.mirror_direct),
            "discard_new_per_subject" => d.boolean(v, &mut c.discard_new_per_subject),
            "sealed" => d.boolean(v, &mut c.sealed),
            "deny_delete" => d.boolean(v, &mut c.deny_delete),
            "deny_purge" => d.boolean(v, &mut c.deny_purge),
            "allow_rollup_hdrs" => d.boolean(v, &mut c.allow_rollup_hdrs),
            "consumer_limits" => {
                // A struct value, not a pointer: null leaves it as it is.
                decode_consumer_limits(d, v, &mut c.consumer_limits);
            }
            "allow_msg_ttl" => d.boolean(v, &mut c.allow_msg_ttl),
            "subject_delete_marker_ttl" => {
                d.int(v, &mut c.subject_delete_marker_ttl, "time.Duration");
            }
            "allow_msg_counter" => d.boolean(v, &mut c.allow_msg_counter),
            "allow_atomic" => d.boolean(v, &mut c.allow_atomic),
            "allow_msg_schedules" => d.boolean(v, &mut c.allow_msg_schedules),
            "persist_mode" => decode_persist_mode(d, v, &mut c.persist_mode),
            "allow_batched" => d.boolean(v, &mut c.allow_batched),
            "metadata" => d.string_map(v, &mut c.metadata),
            _ => d.boolean(v, pedantic),
        }
    });
    out.storage_sent = out_storage_sent;
}

fn decode_request(body: &[u8], strict: bool) -> Result<ConfigRequest, ApiError> {
    gojson::decode_request(body, strict, "StreamConfigRequest", decode_config)
        .map_err(|e| errors::INVALID_JSON.with("err", e))
}

// ---------------------------------------------------------------------------------------------
// Create and update
// ---------------------------------------------------------------------------------------------

/// A `STREAM.CREATE.<subject_name>` body, checked and with defaults applied, as nats-server
/// does before touching the account: invalid JSON, name mismatch, path separators, sealed,
/// mirror_direct without mirror, the config checks, then replicas > 1 (no clustering).
/// `strict` is nats-server's `jetstream { strict }` (its default is true): unknown fields
/// are refused instead of ignored. The result carries `_nats.req.level` in its metadata.
pub fn parse_create(
    body: &[u8],
    subject_name: &str,
    strict: bool,
) -> Result<StreamConfig, ApiError> {
    parse_create_for(
        body,
        subject_name,
        strict,
        &AccountLimits::default(),
        |_, _| Ok(()),
    )
}

/// [`parse_create`] for an account with `limits`: `precheck` sees the config as sent (and
/// whether it named a storage type), where nats-server checks the account's stream count and
/// reservations, before the config checks.
pub fn parse_create_for(
    body: &[u8],
    subject_name: &str,
    strict: bool,
    limits: &AccountLimits,
    precheck: impl FnOnce(&StreamConfig, bool) -> Result<(), ApiError>,
) -> Result<StreamConfig, ApiError> {
    let req = decode_request(body, strict)?;
    let mut cfg = req.cfg;
    cfg.set_static_metadata();
    if cfg.name != subject_name {
        return Err(errors::STREAM_MISMATCH.err());
    }
    if subject_name.contains(['\\', '/']) {
        return Err(errors::STREAM_NAME_CONTAINS_PATH_SEPARATORS.err());
    }
    if cfg.sealed {
        return Err(invalid("stream configuration for create can not be sealed"));
    }
    if cfg.mirror_direct && cfg.mirror.is_none() {
        return Err(invalid("stream has no mirror but does have mirror direct"));
    }
    precheck(&cfg, req.storage_sent)?;
    let cfg = check_stream_cfg(cfg, req.pedantic, limits)?;
    if cfg.num_replicas > 1 {
        return Err(errors::STREAM_REPLICAS_NOT_SUPPORTED.err());
    }
    Ok(cfg)
}

/// A `STREAM.UPDATE.<subject_name>` body, in nats-server's order for updates (config checks
/// before the name match; sealing is allowed). Then [`apply_update`] against the current
/// config (after "stream not found").
pub fn parse_update(
    body: &[u8],
    subject_name: &str,
    strict: bool,
) -> Result<StreamConfig, ApiError> {
    parse_update_for(body, subject_name, strict, &AccountLimits::default())
}

/// [`parse_update`] for an account with `limits`.
pub fn parse_update_for(
    body: &[u8],
    subject_name: &str,
    strict: bool,
    limits: &AccountLimits,
) -> Result<StreamConfig, ApiError> {
    let req = decode_request(body, strict)?;
    let mut cfg = check_stream_cfg(req.cfg, req.pedantic, limits)?;
    if cfg.name != subject_name {
        return Err(errors::STREAM_MISMATCH.err());
    }
    cfg.set_static_metadata();
    Ok(cfg)
}

/// nats-server's update rules between the current config and a new one from
/// [`parse_update`] (same name, storage, no unsealing, no cancelling deny flags, ...).
pub fn check_update(old: &StreamConfig, new: &StreamConfig) -> Result<(), ApiError> {
    if new.name != old.name {
        return Err(invalid("stream configuration name must match original"));
    }
    if new.num_replicas > 1 {
        return Err(errors::STREAM_REPLICAS_NOT_SUPPORTED.err());
    }
    if new.storage != old.storage {
        return Err(invalid(
            "stream configuration update can not change storage type",
        ));
    }
    if new.retention != old.retention
        && (old.retention == RetentionPolicy::WorkQueue
            || new.retention == RetentionPolicy::WorkQueue)
    {
        return Err(invalid(
            "stream configuration update can not change retention policy to/from workqueue",
        ));
    }
    if !new.sealed && old.sealed {
        return Err(invalid(
            "stream configuration update can not unseal a sealed stream",
        ));
    }
    if !new.deny_delete && old.deny_delete {
        return Err(invalid(
            "stream configuration update can not cancel deny message deletes",
        ));
    }
    if !new.deny_purge && old.deny_purge {
        return Err(invalid(
            "stream configuration update can not cancel deny purge",
        ));
    }
    if new.mirror.is_some() && new.mirror != old.mirror {
        return Err(errors::STREAM_MIRROR_NOT_UPDATABLE.err());
    }
    check_discard_new_per_subject(new)?;
    if old.allow_msg_ttl && !new.allow_msg_ttl {
        return Err(invalid("message TTL status can not be disabled"));
    }
    if new.allow_msg_counter != old.allow_msg_counter {
        return Err(invalid(
            "stream configuration update can not change message counter setting",
        ));
    }
    if old.allow_msg_schedules && !new.allow_msg_schedules {
        return Err(invalid("message schedules can not be disabled"));
    }
    if old.persist_mode != new.persist_mode {
        return Err(invalid(
            "stream configuration update can not change persist mode",
        ));
    }
    Ok(())
}

/// [`check_update`], then what sealing implies (no age limit, discard new, no deletes,
/// purges or roll-ups): the config to store and answer with. Left to the caller: subject
/// overlap with other streams, consumers over new consumer limits, account limits.
pub fn apply_update(old: &StreamConfig, new: &StreamConfig) -> Result<StreamConfig, ApiError> {
    check_update(old, new)?;
    let mut cfg = new.clone();
    if cfg.sealed {
        cfg.max_age = 0;
        cfg.discard = DiscardPolicy::New;
        cfg.deny_delete = true;
        cfg.deny_purge = true;
        cfg.allow_rollup_hdrs = false;
    }
    Ok(cfg)
}

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    errors::STREAM_INVALID_CONFIG.with("err", msg)
}

fn pedantic_err(msg: &str) -> ApiError {
    errors::PEDANTIC.with("err", msg)
}

/// 0 and anything below -1 become -1 (pedantic mode refuses below -1).
fn normalize_limit(v: &mut i64, pedantic: bool, name: &str) -> Result<(), ApiError> {
    if *v == 0 || *v < -1 {
        if pedantic && *v < -1 {
            return Err(pedantic_err(&format!("{name} must be set to -1")));
        }
        *v = -1;
    }
    Ok(())
}

fn check_discard_new_per_subject(cfg: &StreamConfig) -> Result<(), ApiError> {
    if cfg.discard_new_per_subject {
        if cfg.discard != DiscardPolicy::New {
            return Err(invalid(
                "discard new per subject requires discard new policy to be set",
            ));
        }
        if cfg.max_msgs_per_subject <= 0 {
            return Err(invalid(
                "discard new per subject requires max msgs per subject > 0",
            ));
        }
    }
    Ok(())
}

/// nats-server's `checkStreamCfg` for one server, minus what needs other streams or the
/// account (see the module docs).
fn check_stream_cfg(
    mut cfg: StreamConfig,
    pedantic: bool,
    limits: &AccountLimits,
) -> Result<StreamConfig, ApiError> {
    if !is_valid_asset_name(&cfg.name) {
        return Err(invalid(
            "stream name is required and can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if cfg.name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "stream name is too long, maximum allowed is {MAX_NAME_LEN}"
        )));
    }
    if cfg.description.len() > MAX_DESCRIPTION_LEN {
        return Err(invalid(format!(
            "stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}"
        )));
    }
    let meta_len: usize = cfg.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if meta_len > MAX_METADATA_LEN {
        return Err(invalid(format!(
            "stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes"
        )));
    }

    if cfg.num_replicas == 0 {
        cfg.num_replicas = 1;
    }
    if cfg.num_replicas > MAX_REPLICAS {
        return Err(invalid(format!("maximum replicas is {MAX_REPLICAS}")));
    }
    if cfg.num_replicas < 0 {
        return Err(errors::REPLICAS_COUNT_CANNOT_BE_NEGATIVE.err());
    }
    normalize_limit(&mut cfg.max_msgs, pedantic, "max_msgs")?;
    normalize_limit(
        &mut cfg.max_msgs_per_subject,
        pedantic,
        "max_msgs_per_subject",
    )?;
    normalize_limit(&mut cfg.max_bytes, pedantic, "max_bytes")?;
    let mut size = i64::from(cfg.max_msg_size);
    normalize_limit(&mut size, pedantic, "max_msg_size")?;
    cfg.max_msg_size = i32::try_from(size).unwrap_or(-1);
    normalize_limit(&mut cfg.max_consumers, pedantic, "max_consumers")?;
    if cfg.max_age < 0 {
        return Err(invalid("max age can not be negative"));
    }
    if cfg.max_age != 0 && cfg.max_age < HUNDRED_MS {
        return Err(invalid("max age needs to be >= 100ms"));
    }

    if cfg.duplicate_window == 0 && cfg.mirror.is_none() && cfg.sources.is_empty() {
        let window = DEFAULT_DUPLICATE_WINDOW;
        if cfg.max_age != 0 && cfg.max_age < window {
            if pedantic {
                return Err(pedantic_err(
                    "duplicate window cannot be bigger than max age",
                ));
            }
            cfg.duplicate_window = cfg.max_age;
        } else {
            cfg.duplicate_window = window;
        }
    }
    if cfg.duplicate_window < 0 {
        return Err(invalid("duplicates window can not be negative"));
    }
    if cfg.max_age != 0 && cfg.duplicate_window > cfg.max_age {
        return Err(invalid("duplicates window can not be larger then max age"));
    }
    if cfg.duplicate_window > 0 && cfg.duplicate_window < HUNDRED_MS {
        return Err(invalid("duplicates window needs to be >= 100ms"));
    }

    if cfg.deny_purge && cfg.allow_rollup_hdrs {
        return Err(invalid("roll-ups require the purge permission"));
    }

    if cfg.allow_msg_counter {
        if cfg.discard == DiscardPolicy::New {
            return Err(invalid("counter stream cannot use discard new"));
        }
        if cfg.allow_msg_ttl {
            return Err(invalid("counter stream cannot use message TTLs"));
        }
        if cfg.allow_msg_schedules {
            return Err(invalid("counter stream cannot use message schedules"));
        }
        if cfg.retention != RetentionPolicy::Limits {
            return Err(invalid("counter stream can only use limits retention"));
        }
    }

    check_discard_new_per_subject(&cfg)?;

    if cfg.subject_delete_marker_ttl > 0 {
        if cfg.subject_delete_marker_ttl < 1_000_000_000 {
            return Err(invalid(
                "subject delete marker TTL must be at least 1 second",
            ));
        }
        if !cfg.allow_msg_ttl {
            if pedantic {
                return Err(invalid(
                    "subject delete marker cannot be set if message TTLs are disabled",
                ));
            }
            cfg.allow_msg_ttl = true;
        }
        if !cfg.allow_rollup_hdrs {
            if pedantic {
                return Err(invalid(
                    "subject delete marker cannot be set if roll-ups are disabled",
                ));
            }
            cfg.allow_rollup_hdrs = true;
            cfg.deny_purge = false;
        }
    } else if cfg.subject_delete_marker_ttl < 0 {
        return Err(invalid("subject delete marker TTL must not be negative"));
    }

    if cfg.allow_msg_schedules {
        if cfg.discard == DiscardPolicy::New {
            return Err(invalid("message scheduling cannot use discard new"));
        }
        if !cfg.allow_rollup_hdrs {
            if pedantic {
                return Err(invalid(
                    "message scheduling cannot be set if roll-ups are disabled",
                ));
            }
            cfg.allow_rollup_hdrs = true;
            cfg.deny_purge = false;
        }
    }

    if cfg.persist_mode == PersistMode::Async {
        if cfg.storage != StorageType::File {
            return Err(invalid(
                "async persist mode is only supported on file storage",
            ));
        }
        if cfg.num_replicas > 1 {
            return Err(invalid(
                "async persist mode is not supported on replicated streams",
            ));
        }
        if cfg.allow_atomic {
            return Err(invalid(
                "async persist mode is not supported with atomic batch publish",
            ));
        }
    }

    let mut delivery_prefixes: Vec<String> = Vec::new();
    let mut api_prefixes: Vec<String> = Vec::new();

    if let Some(m) = &cfg.mirror {
        check_mirror(&cfg, m)?;
        if let Some(ext) = &m.external {
            if !ext.deliver.is_empty() {
                delivery_prefixes.push(ext.deliver.clone());
            }
            if !ext.api.is_empty() {
                api_prefixes.push(ext.api.clone());
            }
        }
    }

    if !cfg.sources.is_empty() && cfg.allow_msg_schedules {
        return Err(errors::SOURCE_WITH_MSG_SCHEDULES.err());
    }
    let mut inames = HashSet::new();
    let mut cnames = HashSet::new();
    for src in &cfg.sources {
        check_source(src, &mut inames, &mut cnames)?;
        if let Some(ext) = &src.external {
            if !ext.deliver.is_empty() {
                delivery_prefixes.push(ext.deliver.clone());
            }
            if !ext.api.is_empty() {
                api_prefixes.push(ext.api.clone());
            }
        }
    }

    for pfx in &delivery_prefixes {
        if !is_valid_publish_subject(pfx) {
            return Err(errors::STREAM_INVALID_EXTERNAL_DELIVERY_SUBJ.with("prefix", pfx));
        }
    }
    for pfx in &api_prefixes {
        if !is_valid_publish_subject(pfx) {
            return Err(invalid(format!(
                "stream external api prefix {} must be a valid subject without wildcards",
                gojson::quote(pfx.as_bytes())
            )));
        }
        if subjects_overlap(pfx, "$JS.API") {
            return Err(errors::STREAM_EXTERNAL_API_OVERLAP
                .with("prefix", pfx)
                .with("subject", "$JS.API"));
        }
    }

    if cfg.subjects.is_empty() {
        if cfg.mirror.is_none() && cfg.sources.is_empty() {
            cfg.subjects.push(cfg.name.clone());
        }
    } else {
        if cfg.mirror.is_some() {
            return Err(errors::MIRROR_WITH_SUBJECTS.err());
        }
        check_subjects(&cfg)?;
    }
    if cfg.subjects.is_empty() && cfg.sources.is_empty() && cfg.mirror.is_none() {
        return Err(invalid(
            "stream needs at least one configured subject or be a source/mirror",
        ));
    }
    crate::limits::check_max_bytes(limits, &cfg)?;

    if let Some(st) = &cfg.subject_transform {
        if !st.src.is_empty() && !is_valid_subject(&st.src) {
            return Err(errors::STREAM_TRANSFORM_INVALID_SOURCE
                .with("err", format!("invalid subject {}", st.src)));
        }
        validate_mapping(&st.src, &st.dest)
            .map_err(|e| errors::STREAM_TRANSFORM_INVALID_DESTINATION.with("err", e))?;
    }

    if let Some(mut rp) = cfg.republish.take() {
        if rp.src.is_empty() {
            if pedantic {
                return Err(pedantic_err("republish source can not be empty"));
            }
            rp.src = ">".to_string();
        }
        if let Some(st) = &cfg.subject_transform {
            if rp.dest == ">"
                && rp.src == ">"
                && cfg.subjects.len() == 1
                && st.src == cfg.subjects[0]
            {
                if pedantic {
                    return Err(pedantic_err(
                        "implicit republish based on subject transform",
                    ));
                }
                rp.src.clone_from(&st.dest);
                rp.dest.clone_from(&st.dest);
            }
        }
        if cfg.subjects.iter().any(|s| subjects_overlap(&rp.dest, s)) {
            return Err(invalid(
                "stream configuration for republish destination forms a cycle",
            ));
        }
        if new_subject_transform(&rp.src, &rp.dest).is_err() {
            return Err(invalid(format!(
                "stream configuration for republish with transform from '{}' to '{}' not valid",
                rp.src, rp.dest
            )));
        }
        cfg.republish = Some(rp);
    }

    if cfg.placement.as_ref() == Some(&Placement::default()) {
        cfg.placement = None;
    }
    if cfg
        .placement
        .as_ref()
        .is_some_and(|p| !p.preferred.is_empty())
    {
        return Err(invalid("preferred server not permitted in placement"));
    }
    Ok(cfg)
}

fn check_mirror(cfg: &StreamConfig, m: &StreamSource) -> Result<(), ApiError> {
    if cfg.first_seq > 0 {
        return Err(errors::MIRROR_WITH_FIRST_SEQ.err());
    }
    if !cfg.subjects.is_empty() {
        return Err(errors::MIRROR_WITH_SUBJECTS.err());
    }
    if !cfg.sources.is_empty() {
        return Err(errors::MIRROR_WITH_SOURCES.err());
    }
    if cfg.allow_msg_counter {
        return Err(errors::MIRROR_WITH_COUNTERS.err());
    }
    if cfg.allow_atomic {
        return Err(errors::MIRROR_WITH_ATOMIC_PUBLISH.err());
    }
    if cfg.allow_batched {
        return Err(errors::MIRROR_WITH_BATCH_PUBLISH.err());
    }
    if cfg.allow_msg_schedules {
        return Err(errors::MIRROR_WITH_MSG_SCHEDULES.err());
    }
    if let Some(c) = &m.consumer {
        if !is_valid_asset_name(&c.name)
            || !subject_is_literal(&c.deliver_subject)
            || !is_valid_subject(&c.deliver_subject)
            || m.opt_start_seq != 0
            || m.opt_start_time.is_some()
            || !m.filter_subject.is_empty()
        {
            return Err(errors::MIRROR_DURABLE_CONSUMER_CFG_INVALID.err());
        }
    }
    if !m.filter_subject.is_empty() && !m.subject_transforms.is_empty() {
        return Err(errors::MIRROR_MULTIPLE_FILTERS_NOT_ALLOWED.err());
    }
    if cfg.subject_delete_marker_ttl > 0 {
        return Err(invalid("subject delete markers forbidden on mirrors"));
    }
    for (outer, tr) in m.subject_transforms.iter().enumerate() {
        if !tr.src.is_empty() && !is_valid_subject(&tr.src) {
            return Err(errors::MIRROR_INVALID_SUBJECT_FILTER
                .with("err", format!("invalid subject {}", tr.src)));
        }
        validate_mapping(&tr.src, &tr.dest)
            .map_err(|e| errors::MIRROR_INVALID_TRANSFORM_DESTINATION.with("err", e))?;
        for (inner, other) in m.subject_transforms.iter().enumerate() {
            if inner != outer && subjects_overlap(&tr.src, &other.src) {
                return Err(errors::MIRROR_OVERLAPPING_SUBJECT_FILTERS.err());
            }
        }
    }
    if m.external.is_none() && !is_valid_asset_name(&m.name) {
        return Err(errors::MIRROR_INVALID_STREAM_NAME.err());
    }
    Ok(())
}

/// The identity nats-server uses to spot a source listed twice (`composeIName`, with the
/// plain strings where it hashes).
fn source_identity(src: &StreamSource) -> String {
    let mut id = src.name.clone();
    if let Some(ext) = &src.external {
        id.push(':');
        id.push_str(&ext.api);
    }
    if let Some(c) = &src.consumer {
        id.push_str(":C=");
        id.push_str(&c.name);
    }
    let or_all = |s: &str| {
        if s.is_empty() {
            ">".to_string()
        } else {
            s.to_string()
        }
    };
    let (from, to) = if src.subject_transforms.is_empty() {
        (or_all(&src.filter_subject), ">".to_string())
    } else {
        let from: Vec<String> = src
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.src))
            .collect();
        let to: Vec<String> = src
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.dest))
            .collect();
        (from.join("\x0c"), to.join("\x0c"))
    };
    format!("{id} {from} {to}")
}

fn check_source(
    src: &StreamSource,
    inames: &mut HashSet<String>,
    cnames: &mut HashSet<String>,
) -> Result<(), ApiError> {
    if !is_valid_asset_name(&src.name) {
        return Err(errors::SOURCE_INVALID_STREAM_NAME.err());
    }
    if !inames.insert(source_identity(src)) {
        return Err(errors::SOURCE_DUPLICATE_DETECTED.err());
    }
    if !src.filter_subject.is_empty() && !src.subject_transforms.is_empty() {
        return Err(errors::SOURCE_MULTIPLE_FILTERS_NOT_ALLOWED.err());
    }
    for tr in &src.subject_transforms {
        if !tr.src.is_empty() && !is_valid_subject(&tr.src) {
            return Err(errors::SOURCE_INVALID_SUBJECT_FILTER
                .with("err", format!("invalid subject {}", tr.src)));
        }
        validate_mapping(&tr.src, &tr.dest)
            .map_err(|e| errors::SOURCE_INVALID_TRANSFORM_DESTINATION.with("err", e))?;
    }
    for (outer, tr) in src.subject_transforms.iter().enumerate() {
        for (inner, other) in src.subject_transforms.iter().enumerate() {
            if inner != outer && subject_is_subset_match(&tr.src, &other.src) {
                return Err(errors::SOURCE_OVERLAPPING_SUBJECT_FILTERS.err());
            }
        }
    }
    if let Some(c) = &src.consumer {
        if !is_valid_asset_name(&c.name)
            || !subject_is_literal(&c.deliver_subject)
            || !is_valid_subject(&c.deliver_subject)
            || src.opt_start_seq != 0
            || src.opt_start_time.is_some()
            || !src.filter_subject.is_empty()
        {
            return Err(errors::SOURCE_DURABLE_CONSUMER_CFG_INVALID.err());
        }
        let mut cname = src.name.clone();
        if let Some(ext) = &src.external {
            cname.push(':');
            cname.push_str(&ext.api);
        }
        if !cnames.insert(format!("{cname} {}", c.name)) {
            return Err(errors::SOURCE_DURABLE_CONSUMER_DUPLICATE_DETECTED.err());
        }
    }
    Ok(())
}

/// The stream's own subjects: valid, no duplicates or self-overlap, nothing that captures
/// JetStream's or the system's API traffic unless acks are off.
fn check_subjects(cfg: &StreamConfig) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    // The pairwise overlap check, as nats-server's, reports the first subject that overlaps a
    // later one, with the first such later one. Two literal subjects overlap only when equal,
    // so a literal subject is compared with the later wildcard subjects and looked up among
    // the later literal ones: a config of many literal subjects is not quadratic.
    let literal: Vec<bool> = cfg.subjects.iter().map(|s| is_literal(s)).collect();
    let wildcards: Vec<usize> = (0..cfg.subjects.len()).filter(|i| !literal[*i]).collect();
    let mut literal_at: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, subj) in cfg.subjects.iter().enumerate() {
        if literal[i] {
            literal_at.entry(subj.as_str()).or_default().push(i);
        }
    }
    let first_overlap = |i: usize, subj: &str| -> Option<usize> {
        if !literal[i] {
            return (i + 1..cfg.subjects.len()).find(|j| subjects_overlap(&cfg.subjects[*j], subj));
        }
        let same = literal_at
            .get(subj)
            .and_then(|at| at.iter().copied().find(|j| *j > i));
        let wild = wildcards
            .iter()
            .copied()
            .filter(|j| *j > i)
            .find(|j| subjects_overlap(&cfg.subjects[*j], subj));
        match (same, wild) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    for (i, subj) in cfg.subjects.iter().enumerate() {
        if !is_valid_subject(subj) {
            return Err(invalid("invalid subject"));
        }
        if seen.contains(subj.as_str()) {
            return Err(invalid("duplicate subjects detected"));
        }
        if subj == ">" {
            if !cfg.no_ack {
                return Err(invalid("capturing all subjects requires no-ack to be true"));
            }
            if cfg.num_replicas != 1 {
                return Err(invalid("capturing all subjects requires replicas of 1"));
            }
        }
        if !cfg.no_ack {
            for ns in ["$JS.>", "$JSC.>", "$NRG.>"] {
                if subjects_overlap(subj, ns) && !subject_is_subset_match(subj, "$JS.EVENT.>") {
                    return Err(invalid(
                        "subjects that overlap with jetstream api require no-ack to be true",
                    ));
                }
            }
            if subjects_overlap(subj, "$SYS.>") && !subject_is_subset_match(subj, "$SYS.ACCOUNT.>")
            {
                return Err(invalid(
                    "subjects that overlap with system api require no-ack to be true",
                ));
            }
        }
        if let Some(j) = first_overlap(i, subj) {
            return Err(invalid(format!(
                "subject {} overlaps with {}",
                gojson::quote(subj.as_bytes()),
                gojson::quote(cfg.subjects[j].as_bytes())
            )));
        }
        seen.insert(subj.as_str());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Subjects and names
// ---------------------------------------------------------------------------------------------

/// A stream (or consumer) name: not empty, no whitespace, `.`, `*`, `>` or path separators.
pub fn is_valid_asset_name(name: &str) -> bool {
    !name.is_empty() && !name.contains([' ', '\t', '\r', '\n', '\x0c', '.', '*', '>', '\\', '/'])
}

/// nats-server's `IsValidSubject`: non-empty tokens, `>` only last, no whitespace.
pub fn is_valid_subject(subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut saw_fwc = false;
    for t in subject.split('.') {
        if t.is_empty() || saw_fwc {
            return false;
        }
        if t.len() > 1 {
            if t.contains(['\t', '\n', '\x0c', '\r', ' ']) {
                return false;
            }
            continue;
        }
        match t.as_bytes()[0] {
            b'>' => saw_fwc = true,
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => return false,
            _ => {}
        }
    }
    true
}

/// No token that [`subjects_overlap`] takes for a wildcard: `*` or `>`, or (as nats-server
/// does when both sides have wildcards) one starting with either; cheap, no allocation.
fn is_literal(subject: &str) -> bool {
    !subject
        .split('.')
        .any(|t| t.starts_with('*') || t.starts_with('>'))
}

/// No `*` or `>` token.
pub fn subject_is_literal(subject: &str) -> bool {
    !subject.split('.').any(|t| t == "*" || t == ">")
}

pub fn is_valid_publish_subject(subject: &str) -> bool {
    is_valid_subject(subject) && subject_is_literal(subject)
}

fn has_wildcards(tokens: &[&str]) -> (bool, bool) {
    let pwc = tokens.contains(&"*");
    let fwc = tokens.contains(&">");
    (pwc, fwc)
}

/// Whether some subject could match both `a` and `b` (`*` one token, `>` one or more at the
/// end): two streams may not capture overlapping subjects. Follows nats-server's
/// `SubjectsCollide`, including its habit of treating any token starting with `*` or `>` as
/// a wildcard when both sides have wildcards.
pub fn subjects_overlap(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let ta: Vec<&str> = a.split('.').collect();
    let tb: Vec<&str> = b.split('.').collect();
    let (pa, fa) = has_wildcards(&ta);
    let (pb, fb) = has_wildcards(&tb);
    let (lit_a, lit_b) = (!(pa || fa), !(pb || fb));
    if lit_a && lit_b {
        return false;
    }
    if lit_a {
        return subset_match(&ta, &tb);
    }
    if lit_b {
        return subset_match(&tb, &ta);
    }
    if !fa && !fb && ta.len() != tb.len() {
        return false;
    }
    if ta.len() < tb.len() && !fa || tb.len() < ta.len() && !fb {
        return false;
    }
    ta.iter().zip(tb.iter()).all(|(x, y)| {
        let (Some(cx), Some(cy)) = (x.bytes().next(), y.bytes().next()) else {
            return false;
        };
        matches!(cx, b'*' | b'>') || matches!(cy, b'*' | b'>') || x == y
    })
}

/// Whether every subject `subject` matches is also matched by `test` (nats-server's
/// `subjectIsSubsetMatch`).
pub fn subject_is_subset_match(subject: &str, test: &str) -> bool {
    let ts: Vec<&str> = subject.split('.').collect();
    let tt: Vec<&str> = test.split('.').collect();
    subset_match(&ts, &tt)
}

fn subset_match(tokens: &[&str], test: &[&str]) -> bool {
    for (i, t2) in test.iter().enumerate() {
        let Some(t1) = tokens.get(i) else {
            return false;
        };
        if t2.is_empty() {
            return false;
        }
        if *t2 == ">" {
            return true;
        }
        if t1.is_empty() || *t1 == ">" {
            return false;
        }
        if *t1 == "*" {
            if *t2 != "*" {
                return false;
            }
            continue;
        }
        if !t2.starts_with('*') && t1 != t2 {
            return false;
        }
    }
    tokens.len() == test.len()
}

// ---------------------------------------------------------------------------------------------
// Subject transforms (validation only)
// ---------------------------------------------------------------------------------------------

const BAD_DEST: &str = "invalid mapping destination";

fn dest_err(token: &str, what: &str) -> String {
    if token.is_empty() {
        format!("{BAD_DEST}: {what}")
    } else {
        format!("{BAD_DEST}: {what} in {token}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Wildcard,
    Partition,
    SplitFromLeft,
    SplitFromRight,
    SliceFromLeft,
    SliceFromRight,
    Split,
    Left,
    Right,
    Random,
}

/// The mustache functions in nats-server's order; in each name the capitals may be written
/// in either case, the rest only as shown (its regular expressions).
const FUNCS: &[(&str, Func)] = &[
    ("Wildcard", Func::Wildcard),
    ("Partition", Func::Partition),
    ("SplitFromLeft", Func::SplitFromLeft),
    ("SplitFromRight", Func::SplitFromRight),
    ("SliceFromLeft", Func::SliceFromLeft),
    ("SliceFromRight", Func::SliceFromRight),
    ("Split", Func::Split),
    ("Left", Func::Left),
    ("Right", Func::Right),
    ("Random", Func::Random),
];

fn name_matches(pattern: &str, got: &str) -> bool {
    pattern.len() == got.len()
        && pattern.bytes().zip(got.bytes()).all(|(p, g)| {
            if p.is_ascii_uppercase() {
                g.eq_ignore_ascii_case(&p)
            } else {
                g == p
            }
        })
}

fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// `{{ name(args) }}` split into the function and its comma-separated arguments.
fn parse_mustache(token: &str) -> Option<(Option<Func>, Vec<String>)> {
    let inner = token.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.trim_matches(is_go_space);
    let open = inner.find('(')?;
    let close = inner.rfind(')')?;
    if close < open || close + 1 != inner.len() {
        return None;
    }
    let name = inner[..open].trim_end_matches(is_go_space);
    let func = FUNCS
        .iter()
        .find(|(p, _)| name_matches(p, name))
        .map(|(_, f)| *f);
    let mut args = Vec::new();
    for (i, a) in inner[open + 1..close].split(',').enumerate() {
        args.push(if i == 0 {
            a.to_string()
        } else {
            a.trim_start_matches(is_go_space).to_string()
        });
    }
    Some((func, args))
}

fn atoi(s: &str) -> Option<i64> {
    s.trim_matches(' ').parse::<i64>().ok()
}

/// What a destination token does: `None` for a literal, else the function and the
/// wildcard positions it reads.
fn index_placeholders(token: &str) -> Result<Option<(Func, Vec<i64>)>, String> {
    if token.len() > 1 && token.starts_with('$') {
        return Ok(atoi(&token[1..]).map(|i| (Func::Wildcard, vec![i])));
    }
    if !(token.len() > 4 && token.starts_with("{{") && token.ends_with("}}")) {
        return Ok(None);
    }
    let not_enough = || dest_err(token, "not enough arguments passed to the function");
    let too_many = || dest_err(token, "too many arguments passed to the function");
    let bad_arg = || dest_err(token, "function argument is invalid or in the wrong format");
    let Some((Some(func), args)) = parse_mustache(token) else {
        return Err(dest_err(token, "unknown function"));
    };
    let index_and_int = |args: &[String]| -> Result<Vec<i64>, String> {
        match args.len() {
            0 | 1 => Err(not_enough()),
            2 => {
                let i = atoi(&args[0]).ok_or_else(bad_arg)?;
                let n = atoi(&args[1]).ok_or_else(bad_arg)?;
                i32::try_from(n).map_err(|_| bad_arg())?;
                Ok(vec![i])
            }
            _ => Err(too_many()),
        }
    };
    let idx = match func {
        Func::Wildcard => {
            if args.len() == 1 && args[0].is_empty() {
                return Err(not_enough());
            }
            if args.len() > 1 {
                return Err(too_many());
            }
            vec![atoi(&args[0]).ok_or_else(bad_arg)?]
        }
        Func::Partition => {
            let n = atoi(&args[0]).ok_or_else(bad_arg)?;
            if n > i64::from(i32::MAX) {
                return Err(bad_arg());
            }
            let mut v = Vec::new();
            for a in &args[1..] {
                v.push(atoi(a).ok_or_else(bad_arg)?);
            }
            v
        }
        Func::SplitFromLeft
        | Func::SplitFromRight
        | Func::SliceFromLeft
        | Func::SliceFromRight
        | Func::Left
        | Func::Right => index_and_int(&args)?,
        Func::Split => {
            match args.len() {
                0 | 1 => return Err(not_enough()),
                2 => {}
                _ => return Err(too_many()),
            }
            let i = atoi(&args[0]).ok_or_else(bad_arg)?;
            if args[1].contains([' ', '.']) {
                return Err(bad_arg());
            }
            vec![i]
        }
        Func::Random => {
            if args.len() != 1 {
                return Err(not_enough());
            }
            let n = atoi(&args[0]).ok_or_else(bad_arg)?;
            if n > i64::from(i32::MAX) {
                return Err(bad_arg());
            }
            Vec::new()
        }
    };
    Ok(Some((func, idx)))
}

/// Validity, wildcard count and trailing `>` of a transform side (`subjectInfo`).
fn subject_info(s: &str) -> Option<(Vec<&str>, usize, bool)> {
    if s.is_empty() {
        return None;
    }
    let tokens: Vec<&str> = s.split('.').collect();
    let mut pwcs = 0;
    let mut fwc = false;
    for t in &tokens {
        if t.is_empty() || fwc {
            return None;
        }
        match *t {
            ">" => fwc = true,
            "*" => pwcs += 1,
            _ => {}
        }
    }
    Some((tokens, pwcs, fwc))
}

/// Whether nats-server could build a transform from `src` to `dest` (`NewSubjectTransform`).
fn new_subject_transform(src: &str, dest: &str) -> Result<(), String> {
    if dest.is_empty() {
        return Ok(());
    }
    let src = if src.is_empty() { ">" } else { src };
    let (Some((_, npwcs, fwc)), Some((dtokens, dpwcs, dfwc))) =
        (subject_info(src), subject_info(dest))
    else {
        return Err("invalid subject".to_string());
    };
    if dpwcs > 0 || fwc != dfwc {
        return Err("invalid subject".to_string());
    }
    for token in dtokens {
        let placeholder = index_placeholders(token)?;
        if npwcs > 0 || fwc {
            if let Some((func, idx)) = placeholder {
                if func == Func::Random {
                    continue;
                }
                for i in idx {
                    if i > npwcs as i64 {
                        return Err(dest_err(
                            &format!("{token}: [{i}]"),
                            "wildcard index out of range",
                        ));
                    }
                }
            }
        } else if let Some((func, _)) = placeholder {
            if !matches!(func, Func::Random | Func::Partition) {
                return Err(dest_err(token, "wildcard index out of range"));
            }
        }
    }
    Ok(())
}

/// nats-server's `ValidateMapping`, used for stream, mirror and source transforms.
fn validate_mapping(src: &str, dest: &str) -> Result<(), String> {
    if dest.is_empty() {
        return Ok(());
    }
    let mut saw_fwc = false;
    for t in dest.split('.') {
        if t.is_empty() || saw_fwc {
            return Err(dest_err(t, "invalid transform"));
        }
        if t.len() > 4 && t.starts_with("{{") && t.ends_with("}}") {
            // Left and Right are missing from nats-server's list here.
            let known = matches!(parse_mustache(t), Some((Some(f), _)) if !matches!(f, Func::Left | Func::Right));
            if !known {
                return Err(dest_err(t, "unknown function"));
            }
            continue;
        }
        if t == ">" {
            saw_fwc = true;
        } else if t.contains(['\t', '\n', '\x0c', '\r', ' ']) {
            return Err(format!("{BAD_DEST}: invalid transform"));
        }
    }
    new_subject_transform(src, dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: &str) -> Result<StreamConfig, ApiError> {
        parse_create(body.as_bytes(), "X", true)
    }

    fn err_of(r: Result<StreamConfig, ApiError>) -> (u16, u16, String) {
        match r {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => (e.code, e.err_code, e.description),
        }
    }

    /// The reply body nats-server 2.15.1 sent for `{"name":"S"}`, config part.
    const MINIMAL: &str = r#"{"name":"S","subjects":["S"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.1"}}"#;

    #[test]
    fn minimal_create_matches_reference_bytes() {
        let cfg = parse_create(br#"{"name":"S"}"#, "S", true).expect("valid");
        let out = gojson::to_vec(&cfg.with_dynamic_metadata("2.15.1", 5));
        assert_eq!(String::from_utf8_lossy(&out), MINIMAL);
        // The stored form has only the static key.
        assert_eq!(cfg.metadata.len(), 1);
        assert_eq!(
            cfg.metadata.get(META_REQUIRED_LEVEL).map(String::as_str),
            Some("0")
        );
    }

    #[test]
    fn full_create_matches_reference_bytes() {
        let body = r#"{"name":"F1","description":"d <&>","subjects":["f1.>","g1"],"retention":"interest","max_consumers":10,"max_msgs":100,"max_bytes":100000,"max_age":3600000000000,"max_msgs_per_subject":5,"max_msg_size":1024,"discard":"new","storage":"file","num_replicas":1,"no_ack":true,"duplicate_window":1000000000,"placement":{"tags":["a"]},"compression":"s2","first_seq":10,"subject_transform":{"src":"f1.>","dest":"h1.>"},"republish":{"src":">","dest":"rp.>","headers_only":true},"allow_direct":true,"discard_new_per_subject":true,"deny_delete":true,"allow_rollup_hdrs":true,"consumer_limits":{"inactive_threshold":5000000000,"max_ack_pending":10},"allow_msg_ttl":true,"subject_delete_marker_ttl":2000000000,"persist_mode":"async","allow_batched":true,"metadata":{"z":"1","a":"2"}}"#;
        let want = r#"{"name":"F1","description":"d \u003c\u0026\u003e","subjects":["f1.\u003e","g1"],"retention":"interest","max_consumers":10,"max_msgs":100,"max_bytes":100000,"max_age":3600000000000,"max_msgs_per_subject":5,"max_msg_size":1024,"discard":"new","storage":"file","num_replicas":1,"no_ack":true,"duplicate_window":1000000000,"placement":{"tags":["a"]},"compression":"s2","first_seq":10,"subject_transform":{"src":"f1.\u003e","dest":"h1.\u003e"},"republish":{"src":"\u003e","dest":"rp.\u003e","headers_only":true},"allow_direct":true,"mirror_direct":false,"discard_new_per_subject":true,"sealed":false,"deny_delete":true,"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{"inactive_threshold":5000000000,"max_ack_pending":10},"allow_msg_ttl":true,"subject_delete_marker_ttl":2000000000,"persist_mode":"async","allow_batched":true,"metadata":{"_nats.level":"5","_nats.req.level":"4","_nats.ver":"2.15.1","a":"2","z":"1"}}"#;
        let cfg = parse_create(body.as_bytes(), "F1", true).expect("valid");
        let out = gojson::to_vec(&cfg.with_dynamic_metadata("2.15.1", 5));
        assert_eq!(String::from_utf8_lossy(&out), want);
        // List replies show only the stored metadata.
        let listed = gojson::to_vec(&cfg);
        assert!(String::from_utf8_lossy(&listed)
            .ends_with(r#""metadata":{"_nats.req.level":"4","a":"2","z":"1"}}"#));
    }

    #[test]
    fn sources_create_matches_reference_bytes() {
        let body = r#"{"name":"F2","sources":[{"name":"F1","opt_start_seq":3,"filter_subject":"f1.x","external":{"api":"$JS.ext.API","deliver":"dlv"}},{"name":"S","opt_start_time":"2024-01-02T03:04:05.5+01:00","subject_transforms":[{"src":"S","dest":"T"}]},{"name":"S2","consumer":{"name":"c1","deliver_subject":"ds"}}],"allow_msg_counter":true,"storage":"memory","allow_atomic":true}"#;
        let want = r#"{"name":"F2","retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"memory","num_replicas":1,"sources":[{"name":"F1","opt_start_seq":3,"filter_subject":"f1.x","external":{"api":"$JS.ext.API","deliver":"dlv"}},{"name":"S","opt_start_time":"2024-01-02T03:04:05.5+01:00","subject_transforms":[{"src":"S","dest":"T"}]},{"name":"S2","consumer":{"name":"c1","deliver_subject":"ds"}}],"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"allow_msg_counter":true,"allow_atomic":true,"metadata":{"_nats.level":"5","_nats.req.level":"2","_nats.ver":"2.15.1"}}"#;
        let cfg = parse_create(body.as_bytes(), "F2", true).expect("valid");
        let out = gojson::to_vec(&cfg.with_dynamic_metadata("2.15.1", 5));
        assert_eq!(String::from_utf8_lossy(&out), want);
        assert!(cfg.is_memory());
    }

    #[test]
    fn stored_config_round_trips_through_serde() {
        let body = r#"{"name":"F2","sources":[{"name":"S","opt_start_time":"2024-01-02T03:04:05.5+01:00"}],"metadata":{"k":"v"},"placement":{"cluster":"c"}}"#;
        let cfg = parse_create(body.as_bytes(), "F2", true).expect("valid");
        let json = serde_json::to_vec(&cfg).expect("serializes");
        let back: StreamConfig = serde_json::from_slice(&json).expect("parses");
        assert_eq!(back, cfg);
    }

    #[test]
    fn defaults_and_duplicate_window() {
        let c = create(r#"{"name":"X","max_age":60000000000}"#).expect("valid");
        assert_eq!(c.duplicate_window, 60_000_000_000);
        assert_eq!(c.subjects, vec!["X".to_string()]);
        assert_eq!((c.max_msgs, c.max_bytes, c.max_consumers), (-1, -1, -1));
        assert_eq!((c.max_msg_size, c.max_msgs_per_subject), (-1, -1));
        assert_eq!(c.num_replicas, 1);
        let c = create(r#"{"name":"X","max_age":3600000000000}"#).expect("valid");
        assert_eq!(c.duplicate_window, DEFAULT_DUPLICATE_WINDOW);
        // Mirrors and sources get no default window.
        let c = parse_create(br#"{"name":"M","mirror":{"name":"S"}}"#, "M", true).expect("ok");
        assert_eq!(c.duplicate_window, 0);
        assert!(c.subjects.is_empty());
    }

    #[test]
    fn merges_repeated_keys_and_values_like_go() {
        let c = create(r#"{"name":"X","metadata":{"a":"b"},"metadata":{"c":"d"},"subjects":["m1a","m1b"],"subjects":["m1c"],"consumer_limits":{"max_ack_pending":5},"consumer_limits":{"inactive_threshold":1000000000},"placement":{"cluster":""},"placement":{"tags":["t"]}}"#).expect("valid");
        assert_eq!(c.subjects, vec!["m1c".to_string()]);
        assert_eq!(c.metadata.get("a").map(String::as_str), Some("b"));
        assert_eq!(c.metadata.get("c").map(String::as_str), Some("d"));
        assert_eq!(c.consumer_limits.max_ack_pending, 5);
        assert_eq!(c.consumer_limits.inactive_threshold, 1_000_000_000);
        assert_eq!(
            c.placement.and_then(|p| p.tags),
            Some(vec!["t".to_string()])
        );
        // Several values in one body fill one config.
        let c = create(r#"{"name":"X"} {"subjects":["y2"]}"#).expect("valid");
        assert_eq!(c.subjects, vec!["y2".to_string()]);
        // Keys match case-insensitively.
        let c = create(r#"{"NAME":"X","Subjects":["zz"]}"#).expect("valid");
        assert_eq!(c.subjects, vec!["zz".to_string()]);
    }

    #[test]
    fn server_metadata_from_clients_is_replaced() {
        let c = create(r#"{"name":"X","metadata":{"_nats.ver":"1","_nats.level":"9","_nats.req.level":"7","x":""}}"#).expect("valid");
        let m: Vec<(&str, &str)> = c
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(m, vec![("_nats.req.level", "0"), ("x", "")]);
    }

    /// Error replies captured from nats-server 2.15.1 (strict mode, its default).
    #[test]
    fn create_errors_match_reference() {
        let cases: &[(&str, u16, u16, &str)] = &[
            (r#"{"name":"X","#, 400, 10025, "invalid JSON: unexpected EOF"),
            (r#"{"name":"X"}x"#, 400, 10025, "invalid JSON: invalid character 'x' looking for beginning of value at offset 13"),
            (r#"{"name":x}"#, 400, 10025, "invalid JSON: invalid character 'x' looking for beginning of value at offset 9"),
            (r#"{"name":"X","foo":1}"#, 400, 10025, "invalid JSON: json: unknown field \"foo\""),
            (r#"{"name":"X","max_msgs":"a"}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64"),
            (r#"{"name":"X","retention":"bad"}"#, 400, 10025, "invalid JSON: can not unmarshal \"\\\"bad\\\"\""),
            (r#"{"name":"X","compression":""}"#, 400, 10025, "invalid JSON: unknown compression algorithm"),
            (r#"{"name":"X","consumer_limits":{"max_ack_pending":"a"}}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.consumer_limits.max_ack_pending of type int"),
            (r#"{"name":"Y"}"#, 400, 10056, "stream name in subject does not match request"),
            ("", 400, 10056, "stream name in subject does not match request"),
            ("null", 400, 10056, "stream name in subject does not match request"),
            (r#"{"name":"X","num_replicas":3}"#, 500, 10074, "replicas > 1 not supported in non-clustered mode"),
            (r#"{"name":"X","subjects":["$JS.API.>"]}"#, 500, 10052, "subjects that overlap with jetstream api require no-ack to be true"),
            (r#"{"name":"X","subjects":["a","a"]}"#, 500, 10052, "subject \"a\" overlaps with \"a\""),
            (r#"{"name":"X","subjects":["a.*","a.b"]}"#, 500, 10052, "subject \"a.*\" overlaps with \"a.b\""),
            (r#"{"name":"X","subjects":["a..b"]}"#, 500, 10052, "invalid subject"),
            (r#"{"name":"X","sealed":true}"#, 500, 10052, "stream configuration for create can not be sealed"),
            (r#"{"name":"X","discard_new_per_subject":true}"#, 500, 10052, "discard new per subject requires discard new policy to be set"),
            (r#"{"name":"X","max_age":10}"#, 500, 10052, "max age needs to be >= 100ms"),
            (r#"{"name":"X","num_replicas":-1}"#, 400, 10133, "replicas count cannot be negative"),
            (r#"{"name":"X","num_replicas":7}"#, 500, 10052, "maximum replicas is 5"),
            (r#"{"name":"X","pedantic":true,"max_msgs":-5}"#, 400, 10157, "pedantic mode: max_msgs must be set to -1"),
            ("[1]", 400, 10025, "invalid JSON: json: cannot unmarshal array into Go value of type server.StreamConfigRequest"),
            (r#"{"name":"X","max_msgs":1.5}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number 1.5 into Go struct field StreamConfigRequest.max_msgs of type int64"),
            (r#"{"name":"X","max_msg_size":3000000000}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number 3000000000 into Go struct field StreamConfigRequest.max_msg_size of type int32"),
            (r#"{"name":"X","storage":null}"#, 400, 10025, "invalid JSON: can not unmarshal \"null\""),
            (r#"{"name":"X","subjects":"a"}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.subjects of type []string"),
            (r#"{"name":"X","sources":[{"name":5}]}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go struct field StreamConfigRequest.sources.0.name of type string"),
            (r#"{"name":"X","sources":[5]}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into StreamConfigRequest.sources.0 of type server.StreamSource"),
            (r#"{"name":"X","metadata":{"a":1}}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go struct field StreamConfigRequest.metadata.a of type string"),
            (r#"{"name":"X","subjects":[1]}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into StreamConfigRequest.subjects.0 of type string"),
            (r#"{"name":"X","placement":"a"}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.placement of type server.Placement"),
            (r#"{"name":"X","placement":{"tags":[1]}}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into StreamConfigRequest.placement.tags.0 of type string"),
            (r#"{"name":"X","max_age":"1s"}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.max_age of type time.Duration"),
            (r#"{"name":"X","no_ack":1}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go struct field StreamConfigRequest.no_ack of type bool"),
            (r#"{"name":"X","first_seq":-1}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number -1 into Go struct field StreamConfigRequest.first_seq of type uint64"),
            (r#"{"name":"X","compression":5}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go value of type string"),
            (r#"{"name":"X","foo":1,"retention":"bad"}"#, 400, 10025, "invalid JSON: json: unknown field \"foo\""),
            (r#"{"name":"X","max_msgs":"a","foo":1}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64"),
            (r#"{"name":"X","retention":"bad","max_msgs":"a"}"#, 400, 10025, "invalid JSON: can not unmarshal \"\\\"bad\\\"\""),
            ("5x", 400, 10025, "invalid JSON: json: cannot unmarshal number into Go value of type server.StreamConfigRequest"),
            (r#""a" x"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go value of type server.StreamConfigRequest"),
            (r#"{"name":"X","mirror":{"name":"Y","opt_start_time":"x"}}"#, 400, 10025, "invalid JSON: parsing time \"x\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"x\" as \"2006\""),
            (r#"{"name":"X","mirror":{"name":"Y","opt_start_time":5}}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go struct field StreamConfigRequest.mirror.opt_start_time of type time.Time"),
            (r#"{"name":"X","retention":"lim\u0069ts"}"#, 400, 10025, "invalid JSON: can not unmarshal \"\\\"lim\\\\u0069ts\\\"\""),
            (r#"{"name":"X","name":5}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go struct field StreamConfigRequest.name of type string"),
            (r#"{"name":"X","Max_Msgs":"a"}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.Max_Msgs of type int64"),
            (r#"{"name":"X","maxmsgs":"a"}"#, 400, 10025, "invalid JSON: json: unknown field \"maxmsgs\""),
            (r#"{"name":"X","sources":[null]}"#, 400, 10141, "sourced stream name is invalid"),
            (r#"{"name":"X","sources":{}}"#, 400, 10025, "invalid JSON: json: cannot unmarshal object into Go struct field StreamConfigRequest.sources of type []*server.StreamSource"),
            (r#"{"name":"X","metadata":[]}"#, 400, 10025, "invalid JSON: json: cannot unmarshal array into Go struct field StreamConfigRequest.metadata of type map[string]string"),
            (r#"{"name":"X","consumer_limits":5}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go struct field StreamConfigRequest.consumer_limits of type server.StreamConsumerLimits"),
            (r#"{"name":"X","discard":null}"#, 400, 10025, "invalid JSON: can not unmarshal \"null\""),
            (r#"{"name":"X","compression":null}"#, 400, 10025, "invalid JSON: unknown compression algorithm"),
            (r#"{"name":"X","mirror":{"name":"S","bogus":1}}"#, 400, 10025, "invalid JSON: json: unknown field \"bogus\""),
            (r#"{"name":"X","mirror":{"name":"S","external":{"api":5}}}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go struct field StreamConfigRequest.mirror.external.api of type string"),
            (r#"{"name":"X","mirror":{"name":"S","subject_transforms":[{"src":5}]}}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into Go struct field StreamConfigRequest.mirror.subject_transforms.0.src of type string"),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-01-01T00:00:00"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-01-01T00:00:00\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"\" as \"Z07:00\""),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-13-01T00:00:00Z"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-13-01T00:00:00Z\": month out of range"),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-02-30T00:00:00Z"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-02-30T00:00:00Z\": day out of range"),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-01-01T25:00:00Z"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-01-01T25:00:00Z\": hour out of range"),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-01-01T00:00:00+25:00"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-01-01T00:00:00+25:00\": time zone offset hour out of range"),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-01-01T00:00:00Zjunk"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-01-01T00:00:00Zjunk\": extra text: \"junk\""),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-01-01t00:00:00z"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-01-01t00:00:00z\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"t00:00:00z\" as \"T\""),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-1-01T00:00:00Z"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-1-01T00:00:00Z\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"1-01T00:00:00Z\" as \"01\""),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":"2024-01-01T00:00:60Z"}}"#, 400, 10025, "invalid JSON: parsing time \"2024-01-01T00:00:60Z\": second out of range"),
            (r#"{"name":"X","mirror":{"name":"S","opt_start_time":""}}"#, 400, 10025, "invalid JSON: parsing time \"\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"\" as \"2006\""),
            (r#"{"name":"X","pedantic":"yes"}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.pedantic of type bool"),
            (r#"{"name":"X","num_replicas":1.5}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number 1.5 into Go struct field StreamConfigRequest.num_replicas of type int"),
            (r#"{"name":"X","max_msg_size":-2147483649}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number -2147483649 into Go struct field StreamConfigRequest.max_msg_size of type int32"),
            (r#"{"name":"X","sources":[{"name":"A"},5,{"name":5}]}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into StreamConfigRequest.sources.1 of type server.StreamSource"),
            (r#"{"name":"X","compression":"S2"}"#, 400, 10025, "invalid JSON: unknown compression algorithm"),
            (r#"{"name":"X","discard":" old"}"#, 400, 10025, "invalid JSON: can not unmarshal \"\\\" old\\\"\""),
            (r#"{"name":"X","storage":"Memory"}"#, 400, 10025, "invalid JSON: can not unmarshal \"\\\"Memory\\\"\""),
            (r#"{"name":"X","persist_mode":"Default"}"#, 400, 10025, "invalid JSON: can not unmarshal \"\\\"Default\\\"\""),
            (r#"{"name":"X","subjects":["q1"]} {"subjects":["q2"],"max_msgs":"a"}"#, 400, 10025, "invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64"),
            (r#"{"name":"X","subjects":["a","b",5,"c",true]}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number into StreamConfigRequest.subjects.2 of type string"),
            (r#"{"name":"X","max_msgs":1e3}"#, 400, 10025, "invalid JSON: json: cannot unmarshal number 1e3 into Go struct field StreamConfigRequest.max_msgs of type int64"),
            (r#"{"name":"X","subjects":[">"]}"#, 500, 10052, "capturing all subjects requires no-ack to be true"),
            (r#"{"name":"X","subjects":["$SYS.>"]}"#, 500, 10052, "subjects that overlap with system api require no-ack to be true"),
            (r#"{"name":"X","subjects":["*.>"]}"#, 500, 10052, "subjects that overlap with jetstream api require no-ack to be true"),
            (r#"{"name":"X","placement":{"preferred":"x"}}"#, 500, 10052, "preferred server not permitted in placement"),
            (r#"{"name":"X","max_age":60000000000,"duplicate_window":120000000000}"#, 500, 10052, "duplicates window can not be larger then max age"),
            (r#"{"name":"X","republish":{"dest":"X"}}"#, 500, 10052, "stream configuration for republish destination forms a cycle"),
            (r#"{"name":"X","subjects":["m16.*"],"republish":{"src":"m16.*","dest":"r16.{{wildcard(2)}}"}}"#, 500, 10052, "stream configuration for republish with transform from 'm16.*' to 'r16.{{wildcard(2)}}' not valid"),
            (r#"{"name":"X","subject_transform":{"src":"m17..","dest":"x"}}"#, 400, 10155, "stream transform source: invalid subject m17.."),
            (r#"{"name":"X","subjects":["m18.*"],"subject_transform":{"src":"m18.*","dest":"x.{{foo(1)}}"}}"#, 400, 10156, "stream transform: invalid mapping destination: unknown function in {{foo(1)}}"),
            (r#"{"name":"X","subjects":["m19.*"],"subject_transform":{"src":"m19.*","dest":"x.*"}}"#, 400, 10156, "stream transform: invalid subject"),
            (r#"{"name":"X","mirror_direct":true}"#, 500, 10052, "stream has no mirror but does have mirror direct"),
            (r#"{"name":"X","mirror":{"name":"S"},"allow_msg_schedules":true,"deny_purge":true}"#, 400, 10186, "stream mirrors can not also schedule messages"),
            (r#"{"name":"X","persist_mode":"async","allow_atomic":true}"#, 500, 10052, "async persist mode is not supported with atomic batch publish"),
            (r#"{"name":"X","sources":[{"name":"S","opt_start_time":"2024-01-02T03:04:05.5Z","consumer":{"name":"c1","deliver_subject":"ds"}}]}"#, 400, 10215, "stream source consumer config is invalid"),
        ];
        for (body, code, err_code, desc) in cases {
            let got = err_of(create(body));
            assert_eq!(got, (*code, *err_code, desc.to_string()), "body {body}");
        }
    }

    #[test]
    fn syntax_errors_match_reference() {
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"name":"X",}"#,
                "invalid character '}' looking for beginning of object key string at offset 13",
            ),
            (
                b"[1,}",
                "invalid character '}' looking for beginning of value at offset 4",
            ),
            (
                br#"{"name" "X"}"#,
                "invalid character '\"' after object key at offset 9",
            ),
            (
                br#"{"name":tru}"#,
                "invalid character '}' in literal true (expecting 'e') at offset 12",
            ),
            (
                br#"{"name":nul}"#,
                "invalid character '}' in literal null (expecting 'l') at offset 12",
            ),
            (
                br#"{"name":fals}"#,
                "invalid character '}' in literal false (expecting 'e') at offset 13",
            ),
            (
                br#"{"name":-}"#,
                "invalid character '}' in numeric literal at offset 10",
            ),
            (
                br#"{"name":01}"#,
                "invalid character '1' after object key:value pair at offset 10",
            ),
            (
                br#"{"name":1.}"#,
                "invalid character '}' in numeric literal at offset 11",
            ),
            (
                br#"{"name":1e}"#,
                "invalid character '}' in numeric literal at offset 11",
            ),
            (
                br#"{"name":1e+}"#,
                "invalid character '}' in numeric literal at offset 12",
            ),
            (
                br#"{"name":"\q"}"#,
                "invalid escape sequence `\\q` in string at offset 11",
            ),
            (
                br#"{"name":"\u12"}"#,
                "invalid escape sequence `\\u12\"}` in string at offset 15",
            ),
            (
                br#"{"name":"\u12g4"}"#,
                "invalid escape sequence `\\u12g4` in string at offset 15",
            ),
            (
                b"{\"a\":\"\\\xc3\xa9\"}",
                "invalid escape sequence \"\\\\\\xc3\" in string at offset 8",
            ),
            (
                b"[1 \xc3\xa9]",
                "invalid character '\u{e9}' after array element at offset 5",
            ),
            (
                b"{\"a\":1 \xc2\xa0}",
                "invalid character '\\u00a0' after object key:value pair at offset 9",
            ),
            (
                b"{\"a\":tr\xc3\xa9}",
                "invalid character '\u{e9}' in literal true (expecting 'u') at offset 9",
            ),
            (
                b"{\"name\":\"a\tb\"}",
                "invalid character '\\t' in string at offset 11",
            ),
            (
                b"{\"name\":\"a\x01b\"}",
                "invalid character '\\x01' in string at offset 11",
            ),
            (
                b"{\"name\":\xff}",
                "invalid character '\\xff' looking for beginning of value at offset 9",
            ),
            (
                b"{\"name\":\xc3\xa9}",
                "invalid character '\u{e9}' looking for beginning of value at offset 10",
            ),
            (
                b"{\"name\":\x7f}",
                "invalid character '\\x7f' looking for beginning of value at offset 9",
            ),
            (
                b"{\"name\":\xa0}",
                "invalid character '\\xa0' looking for beginning of value at offset 9",
            ),
            (
                b"{\"name\":\x00}",
                "invalid character '\\x00' looking for beginning of value at offset 9",
            ),
            (
                b"{\"name\":\\}",
                "invalid character '\\\\' looking for beginning of value at offset 9",
            ),
            (
                b"{\"name\":'}",
                "invalid character '\\'' looking for beginning of value at offset 9",
            ),
            (
                br#"{"name":"X"} ]"#,
                "invalid character ']' looking for beginning of value at offset 14",
            ),
            (br#"{"name":"X"} {"#, "unexpected EOF"),
            (br#"{"x":[1,2"#, "unexpected EOF"),
            (
                b"{:1}",
                "invalid character ':' looking for beginning of object key string at offset 2",
            ),
            (
                br#"{"a"}"#,
                "invalid character '}' after object key at offset 5",
            ),
            (
                br#"{"name":"X" 1}"#,
                "invalid character '1' after object key:value pair at offset 13",
            ),
            (
                b"[1 2]",
                "invalid character '2' after array element at offset 4",
            ),
            (
                br#"{"name":"X","subjects":["a",]}"#,
                "invalid character ']' looking for beginning of value at offset 29",
            ),
            (
                b"null x",
                "invalid character 'x' looking for beginning of value at offset 6",
            ),
            (
                b"null}",
                "invalid character '}' looking for beginning of value at offset 5",
            ),
            (
                b"{} x",
                "invalid character 'x' looking for beginning of value at offset 4",
            ),
            (
                b"nullx",
                "invalid character 'x' looking for beginning of value at offset 5",
            ),
            (
                br#"{"name":"X","max_msgs":"a", x}"#,
                "invalid character 'x' looking for beginning of object key string at offset 29",
            ),
        ];
        for (body, want) in cases {
            let got = err_of(parse_create(body, "X", true));
            assert_eq!(
                got,
                (400, 10025, format!("invalid JSON: {want}")),
                "body {}",
                String::from_utf8_lossy(body)
            );
        }
        // Offsets count from the start of the body, however long.
        let mut long = br#"{"name":"X","description":""#.to_vec();
        long.extend(vec![b'a'; 600]);
        long.extend_from_slice(br#"",x}"#);
        let got = err_of(parse_create(&long, "X", true)).2;
        assert_eq!(got, "invalid JSON: invalid character 'x' looking for beginning of object key string at offset 630");
    }

    /// nats-server with `jetstream { strict: false }`.
    #[test]
    fn non_strict_mode_matches_reference() {
        let c =
            parse_create(br#"{"name":"X","foo":1}"#, "X", false).expect("unknown fields ignored");
        assert_eq!(c.name, "X");
        let c = parse_create(br#"{"name":"X"} {"subjects":["y2"]}"#, "X", false).expect("merged");
        assert_eq!(c.subjects, vec!["y2".to_string()]);
        let cases: &[(&[u8], &str)] = &[
            (br#"{"name":"X","foo":1,"max_msgs":"a"}"#, "json: cannot unmarshal string into Go struct field StreamConfigRequest.max_msgs of type int64"),
            (br#"{"name":"X"}x"#, "invalid character 'x' after top-level value"),
            (br#"{"name":"X","#, "unexpected end of JSON input"),
            (br#"{"name":"X"} {"subjects":["z2"],"foo":1}"#, "invalid character '{' after top-level value"),
            (br#"  {"name":"X"}  5"#, "invalid character '5' after top-level value"),
        ];
        for (body, want) in cases {
            let got = err_of(parse_create(body, "X", false));
            assert_eq!(
                got,
                (400, 10025, format!("invalid JSON: {want}")),
                "body {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn path_separators_and_names() {
        let e = err_of(parse_create(br#"{"name":"a/b"}"#, "a/b", true));
        assert_eq!(
            e,
            (
                400,
                10128,
                "Stream name can not contain path separators".into()
            )
        );
        let long = "n".repeat(256);
        let e = err_of(parse_create(
            format!(r#"{{"name":"{long}"}}"#).as_bytes(),
            &long,
            true,
        ));
        assert_eq!(e.2, "stream name is too long, maximum allowed is 255");
        let desc = "a".repeat(4097);
        let e = err_of(create(&format!(r#"{{"name":"X","description":"{desc}"}}"#)));
        assert_eq!(
            e.2,
            "stream description is too long, maximum allowed is 4096"
        );
    }

    #[test]
    fn delete_markers_and_schedules_turn_on_what_they_need() {
        let c = create(r#"{"name":"X","subject_delete_marker_ttl":1000000000,"deny_purge":true}"#)
            .expect("valid");
        assert!(c.allow_msg_ttl && c.allow_rollup_hdrs && !c.deny_purge);
        assert_eq!(
            c.metadata.get(META_REQUIRED_LEVEL).map(String::as_str),
            Some("1")
        );
        let e = err_of(create(
            r#"{"name":"X","subject_delete_marker_ttl":1000000000,"pedantic":true}"#,
        ));
        assert_eq!(
            e.2,
            "subject delete marker cannot be set if message TTLs are disabled"
        );
        let c = create(r#"{"name":"X","allow_msg_schedules":true}"#).expect("valid");
        assert!(c.allow_rollup_hdrs);
        assert_eq!(
            c.metadata.get(META_REQUIRED_LEVEL).map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn placement_empty_is_dropped() {
        let c = create(r#"{"name":"X","placement":{}}"#).expect("valid");
        assert!(c.placement.is_none());
        // An empty tag list keeps it (written as `{}`), as in nats-server.
        let c = create(r#"{"name":"X","placement":{"cluster":"","tags":[]}}"#).expect("valid");
        assert!(String::from_utf8_lossy(&gojson::to_vec(&c)).contains(r#""placement":{},"#));
        let c = create(r#"{"name":"X","placement":{"cluster":"C1"}}"#).expect("valid");
        assert_eq!(c.placement.map(|p| p.cluster), Some("C1".to_string()));
    }

    #[test]
    fn update_rules() {
        let old = create(r#"{"name":"X","subjects":["p.>"],"storage":"memory"}"#).expect("valid");
        let upd = |body: &str| parse_update(body.as_bytes(), "X", true);
        let new = upd(r#"{"name":"X","subjects":["p.>"],"storage":"file"}"#).expect("parses");
        assert_eq!(
            err_of(apply_update(&old, &new)),
            (
                500,
                10052,
                "stream configuration update can not change storage type".into()
            )
        );
        // Update checks the config before the name (nats-server's order).
        assert_eq!(err_of(upd(r#"{"name":"Q"}"#)).1, 10056);
        assert_eq!(err_of(upd(r#"{"name":"a b"}"#)).1, 10052);
        let sealed = upd(r#"{"name":"X","subjects":["p.>"],"storage":"memory","sealed":true,"max_age":3600000000000}"#)
            .expect("sealing is an update");
        let applied = apply_update(&old, &sealed).expect("allowed");
        assert!(applied.sealed && applied.deny_delete && applied.deny_purge);
        assert_eq!((applied.max_age, applied.discard), (0, DiscardPolicy::New));
        assert!(!applied.allow_rollup_hdrs);
        let unseal = upd(r#"{"name":"X","subjects":["p.>"],"storage":"memory"}"#).expect("parses");
        assert_eq!(
            err_of(apply_update(&applied, &unseal)).2,
            "stream configuration update can not unseal a sealed stream"
        );
        let wq =
            upd(r#"{"name":"X","subjects":["p.>"],"storage":"memory","retention":"workqueue"}"#)
                .expect("parses");
        assert_eq!(
            err_of(apply_update(&old, &wq)).2,
            "stream configuration update can not change retention policy to/from workqueue"
        );
        let interest =
            upd(r#"{"name":"X","subjects":["p.>"],"storage":"memory","retention":"interest"}"#)
                .expect("parses");
        assert!(check_update(&old, &interest).is_ok());
        let r3 = StreamConfig {
            num_replicas: 3,
            ..old.clone()
        };
        assert_eq!(err_of(apply_update(&old, &r3)).1, 10074);
        let ttl_on = StreamConfig {
            allow_msg_ttl: true,
            ..old.clone()
        };
        assert_eq!(
            err_of(apply_update(&ttl_on, &old)).2,
            "message TTL status can not be disabled"
        );
        let deny = StreamConfig {
            deny_delete: true,
            ..old.clone()
        };
        assert_eq!(
            err_of(apply_update(&deny, &old)).2,
            "stream configuration update can not cancel deny message deletes"
        );
    }

    #[test]
    fn same_as_existing_ignores_dynamic_metadata() {
        let a = create(r#"{"name":"X"}"#).expect("valid");
        let b = create(r#"{"name":"X","metadata":{"_nats.ver":"9"}}"#).expect("valid");
        assert!(b.same_as_existing(&a));
        let c = create(r#"{"name":"X","max_msgs":5}"#).expect("valid");
        assert!(!c.same_as_existing(&a));
    }

    #[test]
    fn limits_map_to_store() {
        let c = create(r#"{"name":"X","max_msgs":10,"max_bytes":1000,"max_age":2000000000,"max_msgs_per_subject":3,"max_msg_size":512,"discard":"new"}"#).expect("valid");
        let l = c.limits();
        assert_eq!(l.max_msgs, Some(10));
        assert_eq!(l.max_bytes, Some(1000));
        assert_eq!(l.max_age, Some(Duration::from_secs(2)));
        assert_eq!(l.max_msgs_per_subject, Some(3));
        assert_eq!(l.max_msg_size, None, "the stream checks it, not the store");
        assert_eq!(l.discard, tachyon_storage::DiscardPolicy::New);
        let d = create(r#"{"name":"X"}"#).expect("valid").limits();
        assert_eq!(d, tachyon_storage::Limits::default());
    }

    #[test]
    fn overlap_semantics() {
        let yes = [
            ("a.b", "a.b"),
            ("a.*", "a.b"),
            ("a.>", "a.b.c"),
            ("*.b", "a.*"),
            (">", "a"),
            ("a.>", "*.b"),
            ("*.*", "a.b"),
            ("a.*.c", "a.>"),
            ("$JS.API.>", "$JS.>"),
        ];
        let no = [
            ("a.b", "a.c"),
            ("a.*", "a.b.c"),
            ("a.>", "a"),
            ("*.b", "a.c"),
            ("a.*", "b.*"),
            ("a.*.c", "a.*"),
            ("foo", "bar"),
            ("a.b.>", "a.c.>"),
        ];
        for (a, b) in yes {
            assert!(subjects_overlap(a, b), "{a} {b}");
            assert!(subjects_overlap(b, a), "{b} {a}");
        }
        for (a, b) in no {
            assert!(!subjects_overlap(a, b), "{a} {b}");
            assert!(!subjects_overlap(b, a), "{b} {a}");
        }
        assert!(subject_is_subset_match("$JS.EVENT.foo", "$JS.EVENT.>"));
        assert!(!subject_is_subset_match("$JS.>", "$JS.EVENT.>"));
        assert!(subject_is_subset_match("a.*", "a.*"));
        assert!(!subject_is_subset_match("a.*", "a.b"));
    }

    #[test]
    fn subject_validity() {
        for s in ["a", "a.b", "a.*", "a.>", ">", "*", "$JS.API.>", "a\u{2028}"] {
            assert!(is_valid_subject(s), "{s}");
        }
        for s in ["", "a..b", ".a", "a.", "a.>.b", "a b", "a.\t", "a.b c"] {
            assert!(!is_valid_subject(s), "{s}");
        }
        assert!(subject_is_literal("a.b*"));
        assert!(!subject_is_literal("a.*"));
        assert!(is_valid_asset_name("ORDERS-1_x"));
        for n in ["", "a.b", "a*", "a>", "a b", "a/b", "a\\b", "a\tb"] {
            assert!(!is_valid_asset_name(n), "{n}");
        }
    }

    #[test]
    fn transform_validation() {
        assert!(validate_mapping("a.*", "b.{{wildcard(1)}}").is_ok());
        assert!(validate_mapping("a.*", "b.$1").is_ok());
        assert!(validate_mapping("a.*.*", "b.{{Partition(3,1,2)}}").is_ok());
        assert!(validate_mapping("a", "b.{{random(5)}}").is_ok());
        assert_eq!(
            validate_mapping("a.*", "b.{{wildcard(2)}}"),
            Err(
                "invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]"
                    .into()
            )
        );
        assert_eq!(
            validate_mapping("a.*", "b.{{left(1,2)}}"),
            Err("invalid mapping destination: unknown function in {{left(1,2)}}".into())
        );
        assert!(new_subject_transform("a.*", "b.{{left(1,2)}}").is_ok());
        assert_eq!(
            validate_mapping("a.*", "b.{{wildcard()}}"),
            Err("invalid mapping destination: not enough arguments passed to the function in {{wildcard()}}".into())
        );
        assert_eq!(
            validate_mapping("a", "b.$1"),
            Err("invalid mapping destination: wildcard index out of range in $1".into())
        );
        assert_eq!(validate_mapping("a.>", "b"), Err("invalid subject".into()));
    }
}
