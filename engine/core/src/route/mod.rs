//! Routes: this server as a peer of a nats-server cluster (`cluster {}`). Every route lives
//! on the link shard ([`LINK_SHARD`]). A route is one TCP connection to one peer carrying
//! every account (Tachyon announces no `route_pool_size`, so nats-server treats it as a
//! server without pooling); for each account it carries, a *stand-in* `ClientState` holds the
//! peer's interest (`RS+`/`RS-`) as subscriptions, so any shard's publishes reach it over the
//! ordinary rings and are written once per message as `RMSG` on the route's connection. What
//! the peer sends is published as that stand-in, one hop only: never on to another route.
//!
//! The peer hears our interest in every account, fed by the same trackers as the leafnode
//! links (`leaf/interest.rs`, side `Route`). Peers learn of each other by gossip: a new
//! route's INFO is forwarded to the other peers, and an INFO about a server we have no route
//! to makes us dial it ([`conn`]). Clients are told every peer's client URLs
//! (`connect_urls`), on connect and as routes come and go.

pub mod conn;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tachyon_protocol::route::RouteInfo;
use tachyon_settings::cluster::{ClusterOpts, RouteUrl};

use crate::accounts::AccountId;
use crate::client::{ClientFlags, ClientState};
use crate::global::Global;
use crate::leaf::LINK_SHARD;
use crate::shard::Shard;

/// How a route came to be dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A configured route (`routes`, `--routes`): dialed for as long as the server runs.
    Explicit,
    /// A peer learned by gossip, with the gossip mode of the INFO that named it.
    Implicit(u8),
}

/// This server's cluster, on the link shard.
pub struct Cluster {
    pub opts: ClusterOpts,
    /// The cluster's name: configured, or generated and then possibly taken from a peer.
    pub name: RefCell<String>,
    /// The name was generated (nats-server's dynamic name): a peer's configured one wins.
    pub dynamic: Cell<bool>,
    /// The route port bound.
    pub port: Cell<u16>,
    pub peers: RefCell<Vec<Rc<Peer>>>,
    /// The server id each configured route URL reached last (`host:port` → id).
    url_ids: RefCell<HashMap<String, String>>,
    /// Servers learned by gossip that a task is dialing now.
    dialing: RefCell<HashSet<String>>,
}

/// One connected peer.
pub struct Peer {
    pub remote_id: String,
    pub remote_name: String,
    /// The route's connection: writes for every account.
    pub conn: Rc<ClientState>,
    /// The peer's INFO (forwarded to the other peers as gossip, shown by `/routez`).
    pub info: RefCell<RouteInfo>,
    /// We dialed it (or a duplicate we dialed was folded into it).
    pub solicited: Cell<bool>,
    pub kind: Cell<RouteKind>,
    pub url: RefCell<Option<RouteUrl>>,
    /// The peer's interest, per account, as subscriptions of a stand-in.
    pub stand_ins: RefCell<HashMap<AccountId, Rc<ClientState>>>,
    /// Dial it again when this connection ends (a duplicate we dialed was dropped for it).
    pub redial: Cell<bool>,
    pub connected_at: std::time::SystemTime,
}

impl Cluster {
    /// The cluster state shard `id` keeps: on the link shard of a clustered server only.
    pub fn for_shard(id: u16, global: &Arc<Global>) -> Option<Rc<Cluster>> {
        if id != LINK_SHARD {
            return None;
        }
        let opts = global.config().opts.cluster.clone()?;
        let (name, dynamic) = match &opts.name {
            Some(n) => (n.clone(), false),
            None => (generated_name(), true),
        };
        global.cluster_view.set_name(&name);
        Some(Rc::new(Cluster {
            opts,
            name: RefCell::new(name),
            dynamic: Cell::new(dynamic),
            port: Cell::new(0),
            peers: RefCell::new(Vec::new()),
            url_ids: RefCell::new(HashMap::new()),
            dialing: RefCell::new(HashSet::new()),
        }))
    }

    pub fn peer(&self, id: &str) -> Option<Rc<Peer>> {
        self.peers
            .borrow()
            .iter()
            .find(|p| p.remote_id == id)
            .cloned()
    }

    /// Whether `host:port` (or the host of `ip`, with `port`) is a configured route.
    fn is_configured(&self, host: &str, port: u16, ip: &str) -> bool {
        let ip_host = RouteUrl::parse(ip).ok().map(|u| u.host);
        self.opts.routes.iter().any(|r| {
            r.port == port
                && (r.host.eq_ignore_ascii_case(host)
                    || ip_host
                        .as_deref()
                        .is_some_and(|h| r.host.eq_ignore_ascii_case(h)))
        })
    }

    /// A peer with a configured name wins over a generated one, and of two generated names
    /// the greater (nats-server's rule). Returns whether `theirs` is acceptable.
    fn reconcile_name(&self, global: &Global, theirs: &str, their_dynamic: bool) -> bool {
        let ours = self.name.borrow().clone();
        if theirs == ours {
            return true;
        }
        if self.dynamic.get() && (!their_dynamic || ours.as_str() < theirs) {
            tracing::info!("Cluster name updated to {theirs}");
            *self.name.borrow_mut() = theirs.to_string();
            self.dynamic.set(their_dynamic);
            global.cluster_view.set_name(theirs);
            return true;
        }
        false
    }
}

impl Peer {
    /// The stand-in for `account`, made on first use.
    pub fn stand_in(&self, shard: &Shard, account: AccountId) -> Rc<ClientState> {
        if let Some(s) = self.stand_ins.borrow().get(&account) {
            return s.clone();
        }
        let s = Rc::new(ClientState::new(
            shard.global.next_client_id(),
            self.conn.peer,
            -1,
            crate::leaf::link::LINK_MAX_PENDING,
        ));
        s.account.set(account);
        s.link.set(true);
        s.route.set(true);
        s.flags.set(ClientFlags::link(true));
        let name = Bytes::from(shard.global.accounts.name(account).to_string());
        *s.route_via.borrow_mut() = Some((self.conn.clone(), name));
        self.stand_ins.borrow_mut().insert(account, s.clone());
        s
    }
}

/// Starts the route port and the configured routes (on the link shard, once every shard is
/// ready).
pub fn start(shard: &Rc<Shard>) {
    let Some(cluster) = shard.cluster.clone() else {
        return;
    };
    glommio::spawn_local(conn::listen(shard.clone(), cluster.clone())).detach();
}

/// The account a route names, if this server has it.
pub fn account_named(global: &Global, name: &[u8]) -> Option<AccountId> {
    let name = std::str::from_utf8(name).ok()?;
    global.accounts.id(name).or((name == "$G").then_some(0))
}

/// A generated cluster name, as nats-server makes one (a NUID-like 22 characters).
fn generated_name() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Where clients may reach this server: the client advertise address, else the bound
/// host (every non-loopback interface address when it is "any", as nats-server lists them).
pub fn client_urls(global: &Global) -> Vec<String> {
    let cfg = global.config();
    if let Some(a) = &cfg.opts.client_advertise {
        return vec![if a.contains(':') {
            a.clone()
        } else {
            format!("{a}:{}", global.port)
        }];
    }
    let host = cfg.opts.host.as_str();
    if host != "0.0.0.0" && host != "::" && !host.is_empty() {
        return vec![crate::gotext::host_port(host, global.port)];
    }
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            let ip: std::net::IpAddr = if let Some(v4) = addr.as_sockaddr_in() {
                std::net::Ipv4Addr::from(v4.ip()).into()
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                v6.ip().into()
            } else {
                continue;
            };
            let global_v6 = match ip {
                std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
                std::net::IpAddr::V4(_) => true,
            };
            if ip.is_loopback() || ip.is_unspecified() || !global_v6 {
                continue;
            }
            if host == "0.0.0.0" && ip.is_ipv6() {
                continue;
            }
            let s = crate::gotext::host_port(&ip.to_string(), global.port);
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// Tells clients the URLs of every server now in the cluster (ours first), unless
/// `no_advertise`; none while no peer is connected.
pub(crate) fn publish_urls(shard: &Shard, cluster: &Cluster) {
    let peers = cluster.peers.borrow();
    if cluster.opts.no_advertise || peers.is_empty() {
        shard.global.cluster_view.set_connect_urls(Vec::new());
        return;
    }
    let mut urls = client_urls(&shard.global);
    for p in peers.iter() {
        for u in &p.info.borrow().connect_urls {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
    }
    shard.global.cluster_view.set_connect_urls(urls);
}

/// On every shard of a clustered server: clients that take asynchronous INFO (protocol 1,
/// past their first PONG, not WebSocket) hear of each change of the cluster's URLs, as
/// nats-server's `sendAsyncInfoToClients`.
pub async fn push_info(shard: Rc<Shard>) {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(100);
    let mut told = shard.global.cluster_view.generation();
    while shard.accepting.get() {
        glommio::timer::sleep(EVERY).await;
        let now = shard.global.cluster_view.generation();
        if now == told {
            continue;
        }
        told = now;
        let info = shard.global.info_template();
        let clients: Vec<_> = shard.clients.borrow().values().cloned().collect();
        for c in clients.iter().filter(|c| {
            c.flags.get().protocol >= 1 && c.first_pong_sent.get() && !c.websocket.get()
        }) {
            let mut i = info.clone();
            i.client_id = c.id;
            let mut buf = Vec::new();
            tachyon_protocol::encode::info(&mut buf, &i);
            c.send_raw(&buf);
        }
    }
}
