//! The monitoring endpoints: request parameters in, nats-server's JSON out. Pure functions of the
//! shard snapshots so they can be tested without a server.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::gofmt::{rfc3339_nano, rtt, uptime};
use super::query::Query;
use tachyon_core::accounts::{AccountId, Accounts};
use tachyon_core::client::ClientCounters;
use tachyon_core::global::Global;
use tachyon_core::monitor::snapshot::{ConnSnapshot, ShardSnapshot, SubSnapshot};
use tachyon_jetstream::api::{ClusterInfo, StreamState};
use tachyon_jetstream::config::StreamConfig;
use tachyon_jetstream::registry::Figures;
use tachyon_storage::SyncPolicy;

/// nats-server's `DefaultConnListSize` and `DefaultSubListSize`.
pub const DEFAULT_LIST_SIZE: i64 = 1024;

/// A finished answer, before HTTP framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json<T: Serialize>(value: &T) -> Reply {
        let body = serde_json::to_vec_pretty(value).unwrap_or_default();
        Reply {
            status: 200,
            content_type: "application/json",
            body,
        }
    }

    pub fn bad_request(text: String) -> Reply {
        Reply {
            status: 400,
            content_type: "text/plain; charset=utf-8",
            body: text.into_bytes(),
        }
    }

    pub fn not_found() -> Reply {
        Reply {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: b"404 page not found\n".to_vec(),
        }
    }
}

fn totals(snaps: &[ShardSnapshot]) -> (ClientCounters, usize, usize, usize) {
    let mut t = ClientCounters::default();
    let (mut conns, mut subs, mut cache) = (0, 0, 0);
    for s in snaps {
        t += s.live;
        t += s.stats.closed;
        conns += s.connections;
        subs += s.num_subs;
        cache += s.num_cache;
    }
    (t, conns, subs, cache)
}

// ---- /varz ---------------------------------------------------------------------------------------

#[derive(Serialize, Default)]
pub struct Empty {}

#[derive(Serialize, Default)]
pub struct KindCounts {
    clients: u64,
    routes: u64,
    gateways: u64,
    leafs: u64,
}

#[derive(Serialize, Default)]
pub struct DiskIoWait {
    waiters: u64,
    waits: u64,
    wait_time: u64,
    max_wait_time: u64,
}

#[derive(Serialize)]
pub struct Varz {
    server_id: String,
    server_name: String,
    version: String,
    proto: u32,
    go: String,
    host: String,
    port: u16,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    auth_required: bool,
    max_connections: usize,
    #[serde(skip_serializing_if = "is_zero")]
    max_subscriptions: usize,
    ping_interval: u128,
    ping_max: u32,
    http_host: String,
    http_port: i64,
    http_base_path: String,
    https_port: i64,
    #[serde(serialize_with = "go_float")]
    auth_timeout: f64,
    max_control_line: usize,
    max_payload: usize,
    max_pending: usize,
    cluster: ClusterVarz,
    gateway: Empty,
    leaf: Empty,
    mqtt: Empty,
    websocket: WebsocketVarz,
    jetstream: JetStreamVarz,
    #[serde(serialize_with = "go_float")]
    tls_timeout: f64,
    write_deadline: u128,
    start: String,
    now: String,
    uptime: String,
    mem: u64,
    cores: usize,
    gomaxprocs: usize,
    #[serde(serialize_with = "go_float")]
    cpu: f64,
    connections: usize,
    total_connections: u64,
    routes: u64,
    remotes: u64,
    leafnodes: u64,
    in_msgs: u64,
    in_bytes: u64,
    in_client_msgs: u64,
    in_client_bytes: u64,
    out_msgs: u64,
    out_bytes: u64,
    out_client_msgs: u64,
    out_client_bytes: u64,
    slow_consumers: u64,
    stale_connections: u64,
    stalled_clients: u64,
    subscriptions: usize,
    http_req_stats: BTreeMap<String, u64>,
    config_load_time: String,
    config_digest: String,
    slow_consumer_stats: KindCounts,
    stale_connection_stats: KindCounts,
    disk_io_wait_stats: DiskIoWait,
}

/// Go's encoding/json writes a whole float without a fraction (`2`, not `2.0`).
fn go_float<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What `/varz` needs besides the snapshots.
pub struct VarzInputs<'a> {
    pub global: &'a Global,
    pub http_host: &'a str,
    /// As configured: -1 for a random port.
    pub http_port: i64,
    pub now: SystemTime,
    pub mem: u64,
    pub cpu: f64,
    pub cores: usize,
    pub http_req_stats: BTreeMap<String, u64>,
    /// JetStream, when it is on.
    pub js: Option<&'a JsSnapshot>,
}

pub fn varz(i: VarzInputs<'_>, snaps: &[ShardSnapshot]) -> Varz {
    let g = i.global;
    let config = g.config();
    let o = &config.opts;
    let (t, connections, subscriptions, _) = totals(snaps);
    let (mut slow, mut stale, mut total_conns) = (0, 0, 0);
    for s in snaps {
        slow += s.stats.slow_consumers;
        stale += s.stats.stale_connections;
        total_conns += s.stats.total_connections;
    }
    let start = rfc3339_nano(g.start);
    Varz {
        server_id: g.config().server_id.clone(),
        server_name: g.config().server_name.clone(),
        version: tachyon_config::NATS_VERSION.to_string(),
        proto: 1,
        go: g.info_template().go,
        host: o.host.clone(),
        port: g.port,
        auth_required: g.config().auth_required(),
        max_connections: o.max_connections,
        max_subscriptions: o.max_subscriptions,
        ping_interval: o.ping_interval.as_nanos(),
        ping_max: o.ping_max,
        http_host: i.http_host.to_string(),
        http_port: i.http_port,
        http_base_path: String::new(),
        https_port: 0,
        auth_timeout: o.auth_timeout.as_secs_f64(),
        max_control_line: o.max_control_line,
        max_payload: o.max_payload,
        max_pending: o.max_pending,
        cluster: cluster_varz(g, snaps),
        gateway: Empty {},
        leaf: Empty {},
        mqtt: Empty {},
        websocket: websocket_varz(o, g),
        jetstream: jetstream_varz(i.js),
        tls_timeout: 2.0,
        write_deadline: o.write_deadline.as_nanos(),
        start: start.clone(),
        now: rfc3339_nano(i.now),
        uptime: uptime(i.now.duration_since(g.start).unwrap_or_default()),
        mem: i.mem,
        cores: i.cores,
        gomaxprocs: i.cores,
        cpu: i.cpu,
        connections,
        total_connections: total_conns,
        routes: snaps.iter().map(|s| s.routes.len() as u64).sum(),
        remotes: snaps.iter().map(|s| s.routes.len() as u64).sum(),
        leafnodes: snaps.iter().map(|s| s.leafs.len() as u64).sum(),
        in_msgs: t.in_msgs,
        in_bytes: t.in_bytes,
        in_client_msgs: t.in_msgs,
        in_client_bytes: t.in_bytes,
        out_msgs: t.out_msgs,
        out_bytes: t.out_bytes,
        out_client_msgs: t.out_msgs,
        out_client_bytes: t.out_bytes,
        slow_consumers: slow,
        stale_connections: stale,
        stalled_clients: 0,
        subscriptions,
        http_req_stats: i.http_req_stats,
        config_load_time: start,
        config_digest: String::new(),
        slow_consumer_stats: KindCounts {
            clients: slow,
            ..Default::default()
        },
        stale_connection_stats: KindCounts {
            clients: stale,
            ..Default::default()
        },
        disk_io_wait_stats: DiskIoWait::default(),
    }
}

// ---- /connz --------------------------------------------------------------------------------------

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SubDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_tag: Option<String>,
    subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    qgroup: Option<String>,
    sid: String,
    msgs: u64,
    cid: u64,
}

impl SubDetail {
    /// `account`: the owning connection's account, which `/subsz` shows and `/connz` does not
    /// (there the connection carries it). Accounts have no name tags, so the tag is the name.
    fn new(s: &SubSnapshot, account: Option<&str>) -> SubDetail {
        SubDetail {
            account: account.map(str::to_string),
            account_tag: account.map(str::to_string),
            subject: s.subject.clone(),
            qgroup: s.queue.clone(),
            sid: s.sid.clone(),
            msgs: s.msgs,
            cid: s.cid,
        }
    }
}

#[derive(Serialize)]
pub struct ConnInfo {
    cid: u64,
    kind: &'static str,
    #[serde(rename = "type")]
    kind_type: &'static str,
    ip: String,
    port: u16,
    start: String,
    last_activity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    rtt: String,
    uptime: String,
    idle: String,
    pending_bytes: usize,
    #[serde(flatten)]
    traffic: Traffic,
    subscriptions: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list_detail: Vec<SubDetail>,
    /// With `auth=true`: the user, and the account unless it is `$G` (as nats-server).
    #[serde(skip_serializing_if = "Option::is_none")]
    authorized_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

#[derive(Serialize)]
pub struct Connz {
    server_id: String,
    now: String,
    num_connections: usize,
    total: usize,
    offset: i64,
    limit: i64,
    connections: Vec<ConnInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Open,
    Closed,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Cid,
    Subs,
    Pending,
    MsgsTo,
    MsgsFrom,
    BytesTo,
    BytesFrom,
    Last,
    Idle,
    Uptime,
    Stop,
    Reason,
    Rtt,
}

impl SortBy {
    fn parse(s: &str) -> Option<SortBy> {
        Some(match s {
            "" | "cid" | "start" => SortBy::Cid,
            "subs" => SortBy::Subs,
            "pending" => SortBy::Pending,
            "msgs_to" => SortBy::MsgsTo,
            "msgs_from" => SortBy::MsgsFrom,
            "bytes_to" => SortBy::BytesTo,
            "bytes_from" => SortBy::BytesFrom,
            "last" => SortBy::Last,
            "idle" => SortBy::Idle,
            "uptime" => SortBy::Uptime,
            "stop" => SortBy::Stop,
            "reason" => SortBy::Reason,
            "rtt" => SortBy::Rtt,
            _ => return None,
        })
    }
}

/// `/connz` parameters, checked in nats-server's order with its error texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnzOpts {
    pub sort: SortBy,
    pub subs: bool,
    pub subs_detail: bool,
    pub offset: i64,
    pub limit: i64,
    pub cid: u64,
    pub state: ConnState,
    /// `auth=true`: show each connection's user and account.
    pub auth: bool,
    /// `acc=NAME`: only that account's connections.
    pub acc: Option<String>,
}

impl ConnzOpts {
    pub fn from_query(q: &Query) -> Result<ConnzOpts, String> {
        let sort_raw = q.get("sort");
        let auth = q.bool("auth")?;
        let subs_detail = q.get("subs").eq_ignore_ascii_case("detail");
        let subs = if subs_detail { false } else { q.bool("subs")? };
        let offset = q.int("offset")?;
        let limit = q.int("limit")?;
        let cid = q.uint("cid")?;
        let state = match q.get("state").to_ascii_lowercase().as_str() {
            "" | "open" => ConnState::Open,
            "closed" => ConnState::Closed,
            "any" | "all" => ConnState::Any,
            other => return Err(format!("Error decoding state for {other}")),
        };
        let sort =
            SortBy::parse(sort_raw).ok_or_else(|| format!("invalid sorting option: {sort_raw}"))?;
        if sort == SortBy::Stop && state != ConnState::Closed {
            return Err("sort by stop only valid on closed connections".into());
        }
        if sort == SortBy::Reason && state != ConnState::Closed {
            return Err("sort by reason only valid on closed connections".into());
        }
        let mut limit = if limit <= 0 { DEFAULT_LIST_SIZE } else { limit };
        if cid > 0 {
            limit = 1;
        }
        Ok(ConnzOpts {
            sort,
            subs,
            subs_detail,
            offset: offset.max(0),
            limit,
            cid,
            state,
            auth,
            acc: non_empty(q.get("acc")),
        })
    }

    pub fn wants_subs(&self) -> bool {
        self.subs || self.subs_detail
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// What an `acc=` filter keeps: `Ok(None)` all accounts, `Err(())` an account the server does not
/// know (nats-server then answers an empty list).
fn account_filter(acc: Option<&str>, accounts: &Accounts) -> Result<Option<AccountId>, ()> {
    match acc {
        None => Ok(None),
        Some(name) => accounts.id(name).map(Some).ok_or(()),
    }
}

fn conn_info(c: ConnSnapshot, now: SystemTime, o: &ConnzOpts, accounts: &Accounts) -> ConnInfo {
    // A closed connection's clock stopped when it closed.
    let at = c.stop.unwrap_or(now);
    let since = |t: SystemTime| at.duration_since(t).unwrap_or_default();
    let (list, detail) = if o.subs_detail {
        (
            Vec::new(),
            c.subs.iter().map(|s| SubDetail::new(s, None)).collect(),
        )
    } else if o.subs {
        (
            c.subs.iter().map(|s| s.subject.clone()).collect(),
            Vec::new(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    ConnInfo {
        cid: c.cid,
        kind: "Client",
        kind_type: "nats",
        ip: c.ip,
        port: c.port,
        start: rfc3339_nano(c.start),
        last_activity: rfc3339_nano(c.last_activity),
        stop: c.stop.map(rfc3339_nano),
        reason: c.reason,
        rtt: rtt(c.rtt),
        uptime: uptime(since(c.start)),
        idle: uptime(since(c.last_activity)),
        pending_bytes: c.pending_bytes,
        traffic: c.counters.into(),
        subscriptions: c.num_subs,
        name: c.name,
        lang: c.lang,
        version: c.version,
        subscriptions_list: list,
        subscriptions_list_detail: detail,
        authorized_user: if o.auth { c.auth_user } else { None },
        account: (o.auth && c.account != tachyon_core::accounts::GLOBAL)
            .then(|| accounts.name(c.account).to_string()),
    }
}

fn sort_conns(v: &mut [ConnSnapshot], by: SortBy, now: SystemTime) {
    use std::cmp::Reverse;
    let age = |t: SystemTime| now.duration_since(t).unwrap_or(Duration::ZERO);
    // Ties keep cid order, as the stable sort of an id-ordered list gives.
    v.sort_by_key(|c| c.cid);
    match by {
        SortBy::Cid => {}
        SortBy::Subs => v.sort_by_key(|c| Reverse(c.num_subs)),
        SortBy::Pending => v.sort_by_key(|c| Reverse(c.pending_bytes)),
        SortBy::MsgsTo => v.sort_by_key(|c| Reverse(c.counters.out_msgs)),
        SortBy::MsgsFrom => v.sort_by_key(|c| Reverse(c.counters.in_msgs)),
        SortBy::BytesTo => v.sort_by_key(|c| Reverse(c.counters.out_bytes)),
        SortBy::BytesFrom => v.sort_by_key(|c| Reverse(c.counters.in_bytes)),
        SortBy::Last => v.sort_by_key(|c| Reverse(c.last_activity)),
        SortBy::Idle => v.sort_by_key(|c| Reverse(age(c.last_activity))),
        SortBy::Uptime => v.sort_by_key(|c| age(c.start)),
        SortBy::Stop => v.sort_by_key(|c| Reverse(c.stop)),
        SortBy::Reason => v.sort_by_key(|c| c.reason),
        SortBy::Rtt => v.sort_by_key(|c| Reverse(c.rtt)),
    }
}

/// `/connz` from the open connections the shards reported and the closed ones kept.
pub fn connz(
    server_id: &str,
    now: SystemTime,
    o: &ConnzOpts,
    snaps: Vec<ShardSnapshot>,
    closed: Vec<ConnSnapshot>,
    accounts: &Accounts,
) -> Connz {
    let mut all: Vec<ConnSnapshot> = Vec::new();
    if o.state != ConnState::Closed {
        all.extend(snaps.into_iter().flat_map(|s| s.conns));
    }
    if o.state != ConnState::Open {
        all.extend(closed);
    }
    match account_filter(o.acc.as_deref(), accounts) {
        Ok(None) => {}
        Ok(Some(id)) => all.retain(|c| c.account == id),
        // nats-server returns its answer before it fills in its id.
        Err(()) => {
            return Connz {
                server_id: String::new(),
                now: rfc3339_nano(now),
                num_connections: 0,
                total: 0,
                offset: o.offset,
                limit: o.limit,
                connections: Vec::new(),
            }
        }
    }
    let mut total = all.len();
    if o.cid > 0 {
        // An open connection wins over a closed one with the same id.
        all.retain(|c| c.cid == o.cid);
        all.sort_by_key(|c| c.stop.is_some());
        all.truncate(1);
        total = all.len();
    }
    sort_conns(&mut all, o.sort, now);
    let start = usize::try_from(o.offset).unwrap_or(0).min(all.len());
    let take = usize::try_from(o.limit).unwrap_or(0);
    let conns: Vec<ConnInfo> = all
        .into_iter()
        .skip(start)
        .take(take)
        .map(|c| conn_info(c, now, o, accounts))
        .collect();
    Connz {
        server_id: server_id.to_string(),
        now: rfc3339_nano(now),
        num_connections: conns.len(),
        total,
        offset: o.offset,
        limit: o.limit,
        connections: conns,
    }
}

// ---- /subsz --------------------------------------------------------------------------------------

#[derive(Serialize)]
pub struct Subsz {
    server_id: String,
    now: String,
    num_subscriptions: usize,
    num_cache: usize,
    num_inserts: u64,
    num_removes: u64,
    num_matches: u64,
    #[serde(serialize_with = "go_float")]
    cache_hit_rate: f64,
    max_fanout: u64,
    #[serde(serialize_with = "go_float")]
    avg_fanout: f64,
    total: usize,
    offset: i64,
    limit: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscriptions_list: Vec<SubDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubszOpts {
    pub subs: bool,
    pub offset: i64,
    pub limit: i64,
    pub test: Option<String>,
    /// `acc=NAME`: only that account's subscriptions.
    pub acc: Option<String>,
}

impl SubszOpts {
    pub fn from_query(q: &Query) -> Result<SubszOpts, String> {
        let subs = q.bool("subs")?;
        let offset = q.int("offset")?;
        let limit = q.int("limit")?;
        let test = q.get("test");
        let test = if test.is_empty() {
            None
        } else {
            let t = test.as_bytes();
            if !tachyon_protocol::subject::valid_publish(t, true)
                || !tachyon_protocol::subject::is_literal(t)
            {
                return Err(format!(
                    "invalid test subject, must be valid publish subject: {test}"
                ));
            }
            Some(test.to_string())
        };
        Ok(SubszOpts {
            subs,
            offset: offset.max(0),
            limit: if limit <= 0 { DEFAULT_LIST_SIZE } else { limit },
            test,
            acc: non_empty(q.get("acc")),
        })
    }
}

impl SubszOpts {
    /// Whether the answer needs the connections (for their subscriptions or their accounts).
    pub fn wants_conns(&self) -> bool {
        self.subs || self.acc.is_some()
    }
}

pub fn subsz(
    server_id: &str,
    now: SystemTime,
    o: &SubszOpts,
    snaps: Vec<ShardSnapshot>,
    accounts: &Accounts,
) -> Subsz {
    let (_, _, mut num_subs, num_cache) = totals(&snaps);
    let filter = account_filter(o.acc.as_deref(), accounts);
    let keep = |a: AccountId| match filter {
        Ok(None) => true,
        Ok(Some(id)) => a == id,
        Err(()) => false,
    };
    if o.acc.is_some() {
        num_subs = snaps
            .iter()
            .flat_map(|s| &s.conns)
            .filter(|c| keep(c.account))
            .map(|c| c.num_subs)
            .sum();
    }
    let (mut inserts, mut removes) = (0, 0);
    for s in &snaps {
        inserts += s.stats.sub_inserts;
        removes += s.stats.sub_removes;
    }
    let mut list = Vec::new();
    let mut total = 0;
    if o.subs {
        let mut subs: Vec<(SubSnapshot, AccountId)> = snaps
            .into_iter()
            .flat_map(|s| s.conns)
            .filter(|c| keep(c.account))
            .flat_map(|c| {
                let account = c.account;
                c.subs.into_iter().map(move |s| (s, account))
            })
            .filter(|(s, _)| {
                o.test.as_ref().is_none_or(|t| {
                    tachyon_protocol::subject::matches(s.subject.as_bytes(), t.as_bytes())
                })
            })
            .collect();
        subs.sort_by_key(|(s, _)| s.cid);
        total = subs.len();
        let start = usize::try_from(o.offset).unwrap_or(0).min(total);
        let take = usize::try_from(o.limit).unwrap_or(0);
        list = subs
            .iter()
            .skip(start)
            .take(take)
            .map(|(s, a)| SubDetail::new(s, Some(accounts.name(*a))))
            .collect();
    }
    Subsz {
        server_id: server_id.to_string(),
        now: rfc3339_nano(now),
        num_subscriptions: num_subs,
        num_cache,
        num_inserts: inserts,
        num_removes: removes,
        num_matches: 0,
        cache_hit_rate: 0.0,
        max_fanout: 0,
        avg_fanout: 0.0,
        total,
        offset: o.offset,
        limit: o.limit,
        subscriptions_list: list,
    }
}

// ---- endpoints for features Tachyon does not have yet -------------------------------------------

#[derive(Serialize)]
pub struct Routez {
    server_id: String,
    server_name: String,
    now: String,
    num_routes: u64,
    routes: Vec<RouteInfo>,
}

/// One route, in nats-server's `/routez` shape.
#[derive(Serialize)]
pub struct RouteInfo {
    rid: u64,
    remote_id: String,
    remote_name: String,
    did_solicit: bool,
    is_configured: bool,
    ip: String,
    port: u16,
    start: String,
    last_activity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    rtt: String,
    uptime: String,
    idle: String,
    pending_size: usize,
    #[serde(flatten)]
    traffic: Traffic,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<String>>,
    compression: &'static str,
}

/// `cluster` in `/varz`, for a clustered server.
#[derive(Serialize, Default)]
pub struct ClusterVarz {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(rename = "addr", skip_serializing_if = "String::is_empty")]
    host: String,
    #[serde(rename = "cluster_port", skip_serializing_if = "is_zero_u16")]
    port: u16,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    urls: Vec<String>,
}

#[derive(Serialize)]
pub struct Gatewayz {
    server_id: String,
    now: String,
    outbound_gateways: Empty,
    inbound_gateways: Empty,
}

#[derive(Serialize)]
pub struct Leafz {
    server_id: String,
    now: String,
    leafnodes: u64,
    leafs: Vec<LeafInfo>,
}

/// nats-server's `LeafInfo`.
#[derive(Serialize)]
pub struct LeafInfo {
    id: u64,
    name: String,
    is_spoke: bool,
    account: String,
    ip: String,
    port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    rtt: String,
    #[serde(flatten)]
    traffic: Traffic,
    subscriptions: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions_list: Option<Vec<String>>,
    compression: &'static str,
}

/// A connection's message and byte counts, as `/connz`, `/routez` and `/leafz` show them.
#[derive(Serialize)]
pub struct Traffic {
    in_msgs: u64,
    out_msgs: u64,
    in_bytes: u64,
    out_bytes: u64,
}

impl From<ClientCounters> for Traffic {
    fn from(c: ClientCounters) -> Traffic {
        Traffic {
            in_msgs: c.in_msgs,
            out_msgs: c.out_msgs,
            in_bytes: c.in_bytes,
            out_bytes: c.out_bytes,
        }
    }
}

#[derive(Serialize)]
pub struct Accountz {
    server_id: String,
    now: String,
    accounts: Vec<String>,
}

#[derive(Serialize)]
pub struct Accstatz {
    server_id: String,
    now: String,
    account_statz: Vec<Empty>,
}

/// The routes, with the peer's interest (every account's) listed when `subs` is set.
pub fn routez(
    g: &Global,
    now: SystemTime,
    snaps: &[tachyon_core::monitor::snapshot::ShardSnapshot],
    subs: bool,
) -> Routez {
    let routes: Vec<RouteInfo> = snaps
        .iter()
        .flat_map(|s| s.routes.iter())
        .map(|r| {
            let c = &r.conn;
            RouteInfo {
                rid: c.cid,
                remote_id: r.remote_id.clone(),
                remote_name: r.remote_name.clone(),
                did_solicit: r.did_solicit,
                is_configured: r.is_configured,
                ip: c.ip.clone(),
                port: if r.did_solicit { c.port } else { r.remote_port },
                start: rfc3339_nano(c.start),
                last_activity: rfc3339_nano(c.last_activity),
                rtt: rtt(c.rtt),
                uptime: uptime(now.duration_since(c.start).unwrap_or_default()),
                idle: uptime(now.duration_since(c.last_activity).unwrap_or_default()),
                pending_size: c.pending_bytes,
                traffic: c.counters.into(),
                subscriptions: c.num_subs,
                subscriptions_list: subs
                    .then(|| c.subs.iter().map(|s| s.subject.clone()).collect()),
                compression: "not supported",
            }
        })
        .collect();
    Routez {
        server_id: g.config().server_id.clone(),
        server_name: g.config().server_name.clone(),
        now: rfc3339_nano(now),
        num_routes: routes.len() as u64,
        routes,
    }
}

fn cluster_varz(
    g: &Global,
    snaps: &[tachyon_core::monitor::snapshot::ShardSnapshot],
) -> ClusterVarz {
    let cfg = g.config();
    let Some(c) = &cfg.opts.cluster else {
        return ClusterVarz::default();
    };
    let (name, port) = snaps
        .iter()
        .find_map(|s| s.cluster.clone())
        .unwrap_or_default();
    ClusterVarz {
        name,
        host: c.host.clone(),
        port,
        urls: c.routes.iter().map(|r| r.host_port()).collect(),
    }
}

pub fn gatewayz(g: &Global, now: SystemTime) -> Gatewayz {
    Gatewayz {
        server_id: g.config().server_id.clone(),
        now: rfc3339_nano(now),
        outbound_gateways: Empty {},
        inbound_gateways: Empty {},
    }
}

/// The leafnode links (those this server dialed, `is_spoke`, and leafs connected to it), with
/// their subscriptions (the hub's interest) when `subs` is set, of account `acc` when named.
pub fn leafz(
    g: &Global,
    now: SystemTime,
    snaps: &[tachyon_core::monitor::snapshot::ShardSnapshot],
    subs: bool,
    acc: &str,
) -> Leafz {
    let leafs: Vec<LeafInfo> = snaps
        .iter()
        .flat_map(|s| s.leafs.iter())
        .filter(|l| acc.is_empty() || g.accounts.name(l.conn.account) == acc)
        .map(|l| {
            let c = &l.conn;
            LeafInfo {
                id: c.cid,
                name: l.remote_name.clone(),
                is_spoke: l.spoke,
                account: g.accounts.name(c.account).to_string(),
                ip: c.ip.clone(),
                port: c.port,
                rtt: rtt(c.rtt),
                traffic: c.counters.into(),
                subscriptions: c.num_subs,
                subscriptions_list: subs
                    .then(|| c.subs.iter().map(|s| s.subject.clone()).collect()),
                compression: "off",
            }
        })
        .collect();
    Leafz {
        server_id: g.config().server_id.clone(),
        now: rfc3339_nano(now),
        leafnodes: leafs.len() as u64,
        leafs,
    }
}

/// `$G` and the configured accounts; there is no system account.
pub fn accountz(g: &Global, now: SystemTime) -> Accountz {
    Accountz {
        server_id: g.config().server_id.clone(),
        now: rfc3339_nano(now),
        accounts: (0..g.accounts.len())
            .map(|id| {
                g.accounts
                    .name(id as tachyon_core::accounts::AccountId)
                    .to_string()
            })
            .collect(),
    }
}

pub fn accstatz(g: &Global, now: SystemTime) -> Accstatz {
    Accstatz {
        server_id: g.config().server_id.clone(),
        now: rfc3339_nano(now),
        account_statz: Vec::new(),
    }
}

// ---- /jsz and /varz's `jetstream` ---------------------------------------------------------------

/// nats-server's `defaultSyncInterval`: what its `sync_interval` reads when none is set
/// (also with `sync_interval: always`, which only adds `sync_always`).
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(120);

/// JetStream as the monitor read it from the registry (the shards are not asked).
#[derive(Debug, Clone, Default)]
pub struct JsSnapshot {
    /// As JetStream runs with them (`store_dir` is `<dir>/jetstream`, as nats-server reports).
    pub settings: tachyon_jetstream::JsSettings,
    /// nats-server's `CompressOK`: both limits were configured (its dynamic config lacks it).
    pub compress_ok: bool,
    pub api_level: u32,
    /// The accounts JetStream serves, with their streams.
    pub accounts: Vec<JsAccountSnapshot>,
}

#[derive(Debug, Clone, Default)]
pub struct JsAccountSnapshot {
    pub name: String,
    pub api_total: u64,
    pub api_errors: u64,
    /// By name.
    pub streams: Vec<JsStreamSnapshot>,
}

#[derive(Debug, Clone, Default)]
pub struct JsStreamSnapshot {
    pub name: String,
    /// Unix nanoseconds.
    pub created: i64,
    pub memory: bool,
    pub max_bytes: i64,
    pub figures: Figures,
    pub consumers: usize,
    /// Only when asked for (`/jsz?config=true`).
    pub config: Option<StreamConfig>,
}

impl JsSnapshot {
    fn streams(&self) -> impl Iterator<Item = &JsStreamSnapshot> {
        self.accounts.iter().flat_map(|a| a.streams.iter())
    }

    fn config(&self) -> JsConfig {
        let (sync_interval, sync_always) = match self.settings.sync {
            SyncPolicy::Always => (DEFAULT_SYNC_INTERVAL, true),
            SyncPolicy::Interval(d) => (d, false),
        };
        JsConfig {
            max_memory: self.settings.max_memory,
            max_storage: self.settings.max_store,
            store_dir: self.settings.store_dir.to_string_lossy().into_owned(),
            sync_interval: i64::try_from(sync_interval.as_nanos()).unwrap_or(i64::MAX),
            sync_always,
            domain: self.settings.domain.clone().unwrap_or_default(),
            compress_ok: self.compress_ok,
            unique_tag: String::new(),
            strict: self.settings.strict,
        }
    }

    /// nats-server's `usageStats`: the server's totals.
    fn stats(&self) -> JsStats {
        let mut st = usage(self.streams());
        for s in self.streams().filter(|s| s.max_bytes > 0) {
            let r = s.max_bytes.unsigned_abs();
            if s.memory {
                st.reserved_memory += r;
            } else {
                st.reserved_storage += r;
            }
        }
        st.accounts = self.accounts.len();
        st.api = JsApi {
            level: self.api_level,
            total: self.accounts.iter().map(|a| a.api_total).sum(),
            errors: self.accounts.iter().map(|a| a.api_errors).sum(),
        };
        st
    }
}

/// Memory and file bytes of some streams.
fn usage<'a>(streams: impl Iterator<Item = &'a JsStreamSnapshot>) -> JsStats {
    let mut st = JsStats::default();
    for s in streams {
        if s.memory {
            st.memory += s.figures.bytes;
        } else {
            st.storage += s.figures.bytes;
        }
    }
    st
}

/// `JetStreamAPIStats` (`inflight` is omitted when 0, and nothing is in flight between
/// requests here).
#[derive(Serialize, Default)]
pub struct JsApi {
    level: u32,
    total: u64,
    errors: u64,
}

/// `JetStreamStats`.
#[derive(Serialize, Default)]
pub struct JsStats {
    memory: u64,
    storage: u64,
    reserved_memory: u64,
    reserved_storage: u64,
    accounts: usize,
    ha_assets: usize,
    api: JsApi,
}

/// `JetStreamConfig`; with JetStream off only the two limits, at 0.
#[derive(Serialize, Default)]
pub struct JsConfig {
    max_memory: i64,
    max_storage: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    store_dir: String,
    #[serde(skip_serializing_if = "is_zero_i64")]
    sync_interval: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sync_always: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    domain: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    compress_ok: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    unique_tag: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    strict: bool,
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// `JSLimitOpts`: every field is omitted unless configured, and Tachyon has none of them.
pub type JsLimits = Empty;

/// `/varz`'s `jetstream` (`JetStreamVarz`): `{}` with JetStream off. No `meta` outside a
/// cluster.
#[derive(Serialize, Default)]
pub struct JetStreamVarz {
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<JsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<JsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<JsLimits>,
}

pub fn jetstream_varz(js: Option<&JsSnapshot>) -> JetStreamVarz {
    js.map_or_else(JetStreamVarz::default, |js| JetStreamVarz {
        config: Some(js.config()),
        stats: Some(js.stats()),
        limits: Some(Empty {}),
    })
}

/// `StreamDetail`.
#[derive(Serialize)]
pub struct StreamDetail {
    name: String,
    created: String,
    cluster: ClusterInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<StreamConfig>,
    state: StreamState,
}

/// `AccountDetail`.
#[derive(Serialize)]
pub struct AccountDetail {
    name: String,
    id: String,
    #[serde(flatten)]
    stats: JsStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stream_detail: Vec<StreamDetail>,
}

/// `JSInfo`: JetStream's answer to `/jsz`, on or off.
#[derive(Serialize)]
pub struct Jsz {
    #[serde(flatten)]
    stats: JsStats,
    server_id: String,
    now: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    config: JsConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<JsLimits>,
    streams: usize,
    #[serde(skip_serializing_if = "is_zero")]
    streams_leader: usize,
    consumers: usize,
    #[serde(skip_serializing_if = "is_zero")]
    consumers_leader: usize,
    messages: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    account_details: Vec<AccountDetail>,
    total: usize,
}

/// `/jsz`'s parameters (`JSzOptions`), decoded in nats-server's order so the first bad one
/// gets its 400.
#[derive(Debug, Default, Clone)]
pub struct JszOpts {
    /// `acc`: one account's details, whatever `accounts` says.
    pub account: String,
    pub accounts: bool,
    pub streams: bool,
    pub consumers: bool,
    pub config: bool,
    pub leader_only: bool,
    pub offset: i64,
    pub limit: i64,
    pub raft: bool,
}

impl JszOpts {
    pub fn from_query(q: &Query) -> Result<JszOpts, String> {
        let accounts = q.bool("accounts")?;
        let streams = q.bool("streams")?;
        let consumers = q.bool("consumers")?;
        // Consumers (direct ones included) do not exist yet: nothing to list.
        q.bool("direct-consumers")?;
        let config = q.bool("config")?;
        let offset = q.int("offset")?;
        let limit = q.int("limit")?;
        let leader_only = q.bool("leader-only")?;
        let raft = q.bool("raft")?;
        // Outside a cluster this server leads every stream: nothing is left out.
        q.bool("stream-leader-only")?;
        Ok(JszOpts {
            account: q.get("acc").to_string(),
            accounts,
            streams,
            consumers,
            config,
            leader_only,
            offset,
            limit,
            raft,
        })
    }
}

/// `/jsz` as nats-server's `Jsz` answers it: server totals, and per account details when
/// asked (`accounts`, `streams`, `acc`), sorted by account name and paged by `offset`/`limit`.
/// Err is the 400 text.
pub fn jsz(
    g: &Global,
    now: SystemTime,
    opts: &JszOpts,
    js: Option<&JsSnapshot>,
) -> Result<Jsz, String> {
    let mut o = opts.clone();
    o.offset = o.offset.max(0);
    if o.limit == 0 {
        o.limit = DEFAULT_LIST_SIZE;
    }
    if o.consumers {
        o.streams = true;
    }
    if o.streams && o.account.is_empty() {
        o.accounts = true;
    }
    let mut out = Jsz {
        stats: JsStats::default(),
        server_id: g.config().server_id.clone(),
        now: rfc3339_nano(now),
        disabled: false,
        config: JsConfig::default(),
        limits: None,
        streams: 0,
        streams_leader: 0,
        consumers: 0,
        consumers_leader: 0,
        messages: 0,
        bytes: 0,
        account_details: Vec::new(),
        total: 0,
    };
    let Some(js) = js else {
        if o.leader_only {
            return Err("filtered response: not leader".into());
        }
        out.disabled = true;
        return Ok(out);
    };
    out.stats = js.stats();
    out.config = js.config();
    out.limits = Some(Empty {});
    out.total = js.accounts.len();
    for s in js.streams() {
        out.streams += 1;
        out.consumers += s.consumers;
        out.messages += s.figures.msgs;
        out.bytes += s.figures.bytes;
    }
    if o.raft {
        // Every stream and consumer is its own leader here.
        out.streams_leader = out.streams;
        out.consumers_leader = out.consumers;
    }
    let mut chosen: Vec<&JsAccountSnapshot> = js.accounts.iter().collect();
    if let Some(a) = js.accounts.iter().find(|a| a.name == o.account) {
        chosen = vec![a];
    } else if o.accounts {
        if o.limit > 0 {
            chosen.sort_by(|a, b| a.name.cmp(&b.name));
            let offset = usize::try_from(o.offset).unwrap_or(usize::MAX);
            let limit = usize::try_from(o.limit).unwrap_or(usize::MAX);
            chosen = chosen.into_iter().skip(offset).take(limit).collect();
        }
    } else {
        chosen.clear();
    }
    out.account_details = chosen
        .into_iter()
        .map(|a| account_detail(js, a, &o))
        .collect();
    Ok(out)
}

fn account_detail(js: &JsSnapshot, a: &JsAccountSnapshot, o: &JszOpts) -> AccountDetail {
    let mut stats = usage(a.streams.iter());
    // The account's own limits: -1 (none) for an account JetStream serves with the server's,
    // which Go writes as a uint64.
    stats.reserved_memory = u64::MAX;
    stats.reserved_storage = u64::MAX;
    stats.api = JsApi {
        level: 0,
        total: a.api_total,
        errors: a.api_errors,
    };
    let stream_detail = if o.streams {
        a.streams
            .iter()
            .map(|s| StreamDetail {
                name: s.name.clone(),
                created: tachyon_jetstream::api::rfc3339_nano(s.created),
                cluster: ClusterInfo::single(&js.settings.server_name),
                config: if o.config { s.config.clone() } else { None },
                state: tachyon_jetstream::api::StreamState::from_store(&s.figures, s.consumers),
            })
            .collect()
    } else {
        Vec::new()
    };
    AccountDetail {
        name: a.name.clone(),
        id: a.name.clone(),
        stats,
        stream_detail,
    }
}

/// `/varz` `websocket`, as nats-server fills it (every field omitted when empty or zero, so a
/// server without WebSocket shows `{}`).
#[derive(Serialize, Default)]
struct WebsocketVarz {
    #[serde(skip_serializing_if = "String::is_empty")]
    host: String,
    #[serde(skip_serializing_if = "is_zero_u16")]
    port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    advertise: String,
    #[serde(skip_serializing_if = "is_zero_u128")]
    handshake_timeout: u128,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    no_tls: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    same_origin: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_origins: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    compression: bool,
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

fn is_zero_u128(v: &u128) -> bool {
    *v == 0
}

fn websocket_varz(o: &tachyon_config::Options, g: &Global) -> WebsocketVarz {
    let Some(ws) = o.websocket.as_ref() else {
        return WebsocketVarz::default();
    };
    WebsocketVarz {
        host: ws.host.clone(),
        port: g.ws_port.load(std::sync::atomic::Ordering::Acquire),
        advertise: ws.advertise.clone().unwrap_or_default(),
        handshake_timeout: ws.handshake_timeout.as_nanos(),
        no_tls: ws.no_tls,
        same_origin: ws.same_origin,
        allowed_origins: ws.allowed_origins.clone(),
        compression: ws.compression,
    }
}
