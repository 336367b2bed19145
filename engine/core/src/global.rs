//! Process-wide, read-mostly state shared by all shards. Nothing here is touched per message.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use rand::Rng;
use tachyon_protocol::json::ServerInfo;

use crate::accounts::Accounts;
use crate::auth::{Authenticate, Open};
use crate::tls::TlsAcceptor;
use tachyon_settings::{Options, NATS_VERSION, TACHYON_VERSION};

/// The effective server configuration: the options plus the services the server built from
/// them at start (authentication, TLS), which the core uses through their traits.
#[derive(Debug, Clone)]
pub struct Config {
    pub opts: Options,
    pub server_id: String,
    pub server_name: String,
    /// Users, tokens and permissions; built once, shared by every connection.
    pub auth: Arc<dyn Authenticate>,
    /// Client TLS, loaded from `opts.tls` at start; `None` serves plaintext.
    pub tls: Option<Arc<dyn TlsAcceptor>>,
    /// `websocket { tls {} }`, loaded at start; `None` serves `ws://` (or no WebSocket).
    pub ws_tls: Option<Arc<dyn TlsAcceptor>>,
    /// The websocket block's own authentication (its `authorization`, `no_auth_user`), for
    /// WebSocket clients; `None`: they authenticate as every client does.
    pub ws_auth: Option<Arc<dyn Authenticate>>,
    /// Each leafnode remote's TLS client (by its index in `leafnodes.remotes`), loaded at
    /// start; `None` for a remote without a `tls {}` block.
    pub leaf_tls: Vec<Option<Arc<dyn crate::tls::TlsConnector>>>,
    /// The leafnode port's TLS (`leafnodes { tls {} }`), loaded at start.
    pub leaf_accept_tls: Option<Arc<dyn TlsAcceptor>>,
    /// Each remote's key signer (`nkey`), by its index; `None` without one.
    pub leaf_signers: Vec<Option<Arc<dyn crate::leaf::LeafSigner>>>,
}

impl Config {
    /// A server with no authentication and no TLS.
    pub fn from_options(opts: &Options) -> Config {
        Config::new(opts, Arc::new(Open), None)
    }

    pub fn new(
        opts: &Options,
        auth: Arc<dyn Authenticate>,
        tls: Option<Arc<dyn TlsAcceptor>>,
    ) -> Config {
        let server_id = new_server_id();
        Config {
            server_name: opts
                .server_name
                .clone()
                .unwrap_or_else(|| server_id.clone()),
            server_id,
            opts: opts.clone(),
            auth,
            tls,
            ws_tls: None,
            leaf_tls: Vec::new(),
            leaf_accept_tls: None,
            leaf_signers: Vec::new(),
            ws_auth: None,
        }
    }

    /// Who authenticates a client: the websocket block's rules for WebSocket clients when it
    /// has its own, else the server's.
    pub fn auth_for(&self, websocket: bool) -> &Arc<dyn Authenticate> {
        match (&self.ws_auth, websocket) {
            (Some(a), true) => a,
            _ => &self.auth,
        }
    }

    pub fn auth_required(&self) -> bool {
        self.auth.required()
    }
}

/// A server id in nats-server's shape: an nkey-like 56-character base32 string starting with N.
fn new_server_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(56);
    id.push('N');
    for _ in 0..55 {
        id.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    id
}

pub struct Global {
    /// Swapped whole by a config reload; a connection takes a snapshot when it is accepted,
    /// so nothing on the message path reads it.
    config: ArcSwap<Config>,
    /// The port actually bound (differs from config when it asked for a random one).
    pub port: u16,
    /// The WebSocket port bound (0: none yet); set once at start, before any shard accepts.
    pub ws_port: std::sync::atomic::AtomicU16,
    pub conn_count: AtomicUsize,
    next_cid: AtomicU64,
    /// Account ids and the routes between accounts; fixed for the life of the process.
    pub accounts: Accounts,
    pub start: SystemTime,
    /// Recently closed connections for `/connz?state=closed`; written on disconnect only.
    pub closed: crate::monitor::closed::ClosedConns,
    /// What clients are told of the cluster (its name, the servers they may connect to);
    /// written by the link shard when routes come and go.
    pub cluster_view: ClusterView,
}

/// The cluster as clients see it in INFO. Changed when a route comes or goes (rarely), read
/// when a client connects and by each shard's pusher of asynchronous INFO.
#[derive(Default)]
pub struct ClusterView {
    state: std::sync::Mutex<ClusterState>,
    /// Bumped on every change: shards compare it to what they last told their clients.
    generation: AtomicU64,
}

#[derive(Default, Clone)]
struct ClusterState {
    name: Option<String>,
    /// This server's client URLs, then every peer's; empty while no peer is connected, as
    /// nats-server sends none then.
    connect_urls: Vec<String>,
}

impl ClusterView {
    fn state(&self) -> std::sync::MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_name(&self, name: &str) {
        self.state().name = Some(name.to_string());
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The URLs clients may connect to; clients taking asynchronous INFO hear of a change.
    pub fn set_connect_urls(&self, urls: Vec<String>) {
        let mut st = self.state();
        if st.connect_urls != urls {
            st.connect_urls = urls;
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn fill(&self, info: &mut ServerInfo) {
        let st = self.state();
        info.cluster = st.name.clone();
        info.connect_urls = st.connect_urls.clone();
    }
}

impl Global {
    pub fn new(config: Config, port: u16) -> Self {
        Global::with_accounts(config, port, Accounts::default())
    }

    /// `accounts` must be the table `config.auth` was built against.
    pub fn with_accounts(config: Config, port: u16, accounts: Accounts) -> Self {
        Global {
            closed: crate::monitor::closed::ClosedConns::new(config.opts.http_port.is_some()),
            config: ArcSwap::from_pointee(config),
            port,
            ws_port: std::sync::atomic::AtomicU16::new(0),
            conn_count: AtomicUsize::new(0),
            next_cid: AtomicU64::new(1),
            accounts,
            start: SystemTime::now(),
            cluster_view: ClusterView::default(),
        }
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Installs a reloaded configuration with the services built from it. The server's
    /// identity does not change on reload; open connections are re-checked by the shards
    /// afterwards (`reload.rs`).
    pub fn set_config(
        &self,
        opts: &Options,
        auth: Arc<dyn Authenticate>,
        tls: Option<Arc<dyn TlsAcceptor>>,
        ws_tls: Option<Arc<dyn TlsAcceptor>>,
        ws_auth: Option<Arc<dyn Authenticate>>,
    ) {
        let old = self.config();
        let server_name = opts
            .server_name
            .clone()
            .unwrap_or_else(|| old.server_name.clone());
        self.config.store(Arc::new(Config {
            opts: opts.clone(),
            server_id: old.server_id.clone(),
            server_name,
            auth,
            tls,
            ws_tls,
            ws_auth,
            // Remotes are not reloaded: their TLS clients stay.
            leaf_tls: old.leaf_tls.clone(),
            leaf_accept_tls: old.leaf_accept_tls.clone(),
            leaf_signers: old.leaf_signers.clone(),
        }));
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::Relaxed)
    }

    /// INFO as sent to a new client, before the per-client fields are filled in.
    pub fn info_template(&self) -> ServerInfo {
        let c = self.config();
        let mut info = ServerInfo {
            server_id: c.server_id.clone(),
            server_name: c.server_name.clone(),
            version: NATS_VERSION.to_string(),
            proto: 1,
            go: "go1.24.4".to_string(),
            host: c.opts.host.clone(),
            port: self.port,
            headers: true,
            max_payload: i32::try_from(c.opts.max_payload).unwrap_or(i32::MAX),
            auth_required: c.auth.advertised_required(),
            // `allow_non_tls` offers TLS without requiring it, as nats-server says.
            tls_required: c.tls.as_ref().is_some_and(|t| !t.settings().allow_non_tls),
            tls_available: c.tls.as_ref().is_some_and(|t| t.settings().allow_non_tls),
            tls_verify: c.tls.as_ref().is_some_and(|t| t.settings().verify),
            tachyon: TACHYON_VERSION.to_string(),
            jetstream: c.opts.jetstream.as_ref().is_some_and(|j| j.enabled),
            ..Default::default()
        };
        if c.opts.cluster.is_some() {
            self.cluster_view.fill(&mut info);
        }
        info
    }
}
