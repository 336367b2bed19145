//! The shard side of monitoring: copies of a shard's figures and connections, taken on the shard's
//! own executor when an HTTP request asks (never per message), and handed to the HTTP thread as
//! plain `Send` data.

use std::time::{Duration, SystemTime};

use crate::client::{ClientCounters, ClientState, CloseReason};
use crate::shard::{Shard, ShardStats};

/// One subscription as `/connz?subs=detail` and `/subsz?subs=1` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubSnapshot {
    pub subject: String,
    pub queue: Option<String>,
    pub sid: String,
    pub msgs: u64,
    pub cid: u64,
}

/// One connection, open or closed.
#[derive(Debug, Clone)]
pub struct ConnSnapshot {
    pub cid: u64,
    pub ip: String,
    pub port: u16,
    pub start: SystemTime,
    pub last_activity: SystemTime,
    /// Set for closed connections.
    pub stop: Option<SystemTime>,
    pub reason: Option<&'static str>,
    pub rtt: Duration,
    pub pending_bytes: usize,
    pub counters: ClientCounters,
    pub num_subs: usize,
    pub name: String,
    pub lang: String,
    pub version: String,
    pub account: crate::accounts::AccountId,
    pub auth_user: Option<String>,
    /// Filled only when the request asked for subscriptions (always for closed connections).
    pub subs: Vec<SubSnapshot>,
}

/// What one shard answers.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    pub stats: ShardStats,
    /// Live connections' counters summed (closed ones are in `stats.closed`).
    pub live: ClientCounters,
    pub connections: usize,
    pub num_subs: usize,
    pub num_cache: usize,
    /// Filled only when asked.
    pub conns: Vec<ConnSnapshot>,
    /// Leafnode links (always: there are few).
    pub leafs: Vec<LeafSnapshot>,
    /// Routes (always: there are few).
    pub routes: Vec<RouteSnapshot>,
    /// The cluster's name and route port, on the shard that runs the routes.
    pub cluster: Option<(String, u16)>,
}

/// One route, as `/routez` reports it.
#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    /// The route's connection (counters, RTT, address) with the peer's interest summed over
    /// every account (and listed when asked).
    pub conn: ConnSnapshot,
    pub remote_id: String,
    pub remote_name: String,
    pub did_solicit: bool,
    pub is_configured: bool,
    /// The peer's route port.
    pub remote_port: u16,
}

/// One leafnode link, as `/leafz` reports it.
#[derive(Debug, Clone)]
pub struct LeafSnapshot {
    pub conn: ConnSnapshot,
    /// The other server's name.
    pub remote_name: String,
    /// We dialed it (the other end is our hub).
    pub spoke: bool,
}

/// What a request wants from every shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    pub conns: bool,
    pub subs: bool,
}

/// Copies this shard's figures (and connections when asked). Runs on the shard's executor.
pub fn take(shard: &Shard, want: Want) -> ShardSnapshot {
    let clients = shard.clients.borrow();
    let mut snap = ShardSnapshot {
        stats: shard.stats.get(),
        connections: clients.len(),
        num_cache: shard.cache_len(),
        ..Default::default()
    };
    for l in shard.leaf_links.borrow().iter() {
        snap.leafs.push(LeafSnapshot {
            conn: conn(&l.client, want.subs),
            remote_name: l.remote_name.clone(),
            spoke: !l.client.leaf_accepted.get(),
        });
    }
    if let Some(cluster) = &shard.cluster {
        snap.cluster = Some((cluster.name.borrow().clone(), cluster.port.get()));
        for p in cluster.peers.borrow().iter() {
            let mut c = conn(&p.conn, false);
            c.start = p.connected_at;
            for s in p.stand_ins.borrow().values() {
                let sc = conn(s, want.subs);
                c.num_subs += sc.num_subs;
                c.subs.extend(sc.subs);
            }
            snap.routes.push(RouteSnapshot {
                conn: c,
                remote_id: p.remote_id.clone(),
                remote_name: p.remote_name.clone(),
                did_solicit: p.solicited.get(),
                is_configured: p.kind.get() == crate::route::RouteKind::Explicit,
                remote_port: p.info.borrow().port,
            });
        }
    }
    for c in clients.values() {
        snap.live += c.counters.get();
        snap.num_subs += c.subs.borrow().len();
        if want.conns {
            snap.conns.push(conn(c, want.subs));
        }
    }
    snap
}

/// Copies one connection.
pub fn conn(c: &ClientState, with_subs: bool) -> ConnSnapshot {
    let subs = c.subs.borrow();
    let mut list = Vec::new();
    if with_subs {
        list.reserve(subs.len());
        for s in subs.values() {
            list.push(SubSnapshot {
                subject: String::from_utf8_lossy(&s.subject).into_owned(),
                queue: s
                    .queue
                    .as_ref()
                    .map(|q| String::from_utf8_lossy(q).into_owned()),
                sid: String::from_utf8_lossy(&s.sid).into_owned(),
                msgs: s.delivered.get(),
                cid: c.id,
            });
        }
        // Subscriptions live in a hash map; report them in a stable order.
        list.sort_by(|a, b| natural_sid(&a.sid, &b.sid));
    }
    ConnSnapshot {
        cid: c.id,
        ip: c.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        port: c.peer.map_or(0, |p| p.port()),
        start: c.start,
        last_activity: c.wall_time(c.last_activity.get()),
        stop: None,
        reason: None,
        rtt: c.rtt.get(),
        pending_bytes: c.pending_bytes(),
        counters: c.counters.get(),
        num_subs: subs.len(),
        name: c.name.borrow().clone(),
        lang: c.lang.borrow().clone(),
        version: c.version.borrow().clone(),
        account: c.account.get(),
        auth_user: c.auth_user.borrow().clone(),
        subs: list,
    }
}

/// Numeric sids in numeric order, others after them in byte order.
fn natural_sid(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Keeps a closed connection for `/connz?state=closed`. Called once per disconnect, before its
/// subscriptions are dropped; does nothing when monitoring is off.
pub fn record_closed(shard: &Shard, client: &ClientState) {
    let closed = &shard.global.closed;
    if !closed.enabled() {
        return;
    }
    let mut snap = conn(client, true);
    snap.stop = Some(SystemTime::now());
    snap.pending_bytes = 0;
    snap.reason = Some(reason_text(
        client.close_reason().unwrap_or(CloseReason::ClientClosed),
    ));
    closed.push(snap);
}

/// nats-server's wording for why a connection closed (`ClosedState.String`).
pub fn reason_text(r: CloseReason) -> &'static str {
    match r {
        CloseReason::ClientClosed => "Client Closed",
        CloseReason::ReadError => "Read Error",
        CloseReason::WriteError => "Write Error",
        CloseReason::ProtocolViolation => "Protocol Violation",
        CloseReason::AuthViolation => "Authentication Failure",
        CloseReason::AuthTimeout => "Authentication Timeout",
        CloseReason::StaleConnection => "Stale Connection",
        CloseReason::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
        CloseReason::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
        CloseReason::MaxConnections => "Maximum Connections Exceeded",
        CloseReason::MaxPayload => "Maximum Message Payload Exceeded",
        CloseReason::ServerShutdown | CloseReason::LameDuck => "Server Shutdown",
        CloseReason::DuplicateRoute => "Duplicate Route",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_sort_numerically_first() {
        let mut v = vec!["10", "2", "b", "1", "a"];
        v.sort_by(|a, b| natural_sid(a, b));
        assert_eq!(v, ["1", "2", "10", "a", "b"]);
    }

    #[test]
    fn connection_copy_reports_counters_and_subs() {
        let c = ClientState::new(7, Some("127.0.0.1:5000".parse().unwrap()), -1, 1024);
        c.count_in(5);
        *c.name.borrow_mut() = "svc".into();
        let s = conn(&c, true);
        assert_eq!((s.cid, s.ip.as_str(), s.port), (7, "127.0.0.1", 5000));
        assert_eq!((s.counters.in_msgs, s.counters.in_bytes), (1, 5));
        assert_eq!(s.name, "svc");
        assert!(s.subs.is_empty());
        assert!(s.last_activity >= s.start);
    }
}
