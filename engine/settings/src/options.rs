//! The server's options: what `nats-server`'s flags and config file set, with its defaults
//! (server/const.go), and Tachyon's own (`--shards`, `--migrate`, ...). The flag parser
//! (`flags.rs`) and the config file (`file.rs`) both fill this one struct.

use std::path::PathBuf;
use std::time::Duration;

/// nats-server version whose client protocol Tachyon implements; clients gate features on it.
pub const NATS_VERSION: &str = "2.12.0";
/// Tachyon's own version.
pub const TACHYON_VERSION: &str = env!("CARGO_PKG_VERSION");

/// nats-server's `MAX_PENDING_SIZE`: outbound bytes a client may have queued.
/// The largest `max_payload` accepted (nats-server's bound: an int32). The engine relies on it:
/// a header length travels between shards in 32 bits.
pub const MAX_PAYLOAD_LIMIT: usize = i32::MAX as usize;
pub const DEFAULT_MAX_PENDING: usize = 64 * 1024 * 1024;

pub const DEFAULT_HOST: &str = "0.0.0.0";
pub const DEFAULT_PORT: u16 = 4222;

/// How shards place connections after accepting them (`--migrate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateMode {
    /// Connections stay on the shard that accepted them.
    Off,
    /// A connection whose messages all go to and come from one other shard, at a low rate,
    /// moves there.
    On,
    /// Every connection with traffic moves to a random other shard every tick: exercises the
    /// move protocol under load in tests.
    Chaos,
}

/// Everything the server runs by: nats-server's options (from its flags and config file, the
/// flags winning) and Tachyon's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Address to bind for clients (`-a`); nats-server's default is all IPv4 interfaces.
    pub host: String,
    /// Client port; 0 when `-p -1` asked for a random port.
    pub port: u16,
    pub server_name: Option<String>,
    /// URL advertised to other servers; only observable once clustering exists.
    pub client_advertise: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
    pub debug: bool,
    pub trace: bool,
    /// `-VV`/`-DVV`: nats-server also traces its system account.
    pub trace_verbose: bool,
    pub logtime: bool,
    pub logtime_utc: bool,
    pub log_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub ports_file_dir: Option<PathBuf>,
    /// `-c FILE`: the nats-server config file the other options were read from.
    pub config_file: Option<PathBuf>,
    /// The config file's `authorization` block (users, nkeys, permissions); flags cannot set it.
    pub authorization: Option<crate::auth::AuthConfig>,
    /// The config file's `accounts` block (checked: imports match exports); file only.
    pub accounts: Vec<crate::accounts::AccountDef>,
    /// `no_auth_user`: the user a client that sends no credentials becomes; file only.
    pub no_auth_user: Option<String>,
    /// `-t`: check the config file and exit.
    pub check_config: bool,
    /// Monitoring listener (`http: host:port` in the config file); `None` host means the
    /// client host. Port `Some(0)` is a random port (`-m -1`), `None` is off (`-m 0`).
    pub http_host: Option<String>,
    pub http_port: Option<u16>,
    /// `jetstream` from the config file; the server refuses to start while it is enabled.
    pub jetstream: Option<JetStreamOpts>,
    /// Options given explicitly on the command line, by field name: they win over the config
    /// file, at start and on reload, as in nats-server.
    pub explicit: Vec<&'static str>,
    /// Tachyon's own `--shards N`; `None` means one shard per available core.
    pub shards: Option<usize>,
    /// Tachyon's own `--spin_before_park D`: how long an idle shard busy-polls before it sleeps.
    /// Zero (the default) parks at once; a few hundred microseconds trade CPU for latency, since
    /// an idle (virtual) CPU takes tens of microseconds to wake.
    pub spin_before_park: Duration,
    /// Tachyon's own `--migrate MODE`: whether a shard moves a connection that only talks to
    /// another shard over to it (`shard/rebalance.rs`).
    pub migrate: MigrateMode,
    // Limits: config-file settings in nats-server; hidden flags here so tests can shrink them.
    /// At most [`MAX_PAYLOAD_LIMIT`].
    pub max_payload: usize,
    pub max_control_line: usize,
    pub max_connections: usize,
    /// 0 means unlimited.
    pub max_subscriptions: usize,
    pub max_pending: usize,
    pub write_deadline: Duration,
    pub ping_interval: Duration,
    pub ping_max: u32,
    /// nats-server's `DisableShortFirstPing` (an embedding option, not a config key): the first
    /// PING after CONNECT waits the whole interval instead of about 2 s.
    pub disable_short_first_ping: bool,
    pub auth_timeout: Duration,
    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,
    /// Client TLS (`tls {}` or the `--tls*` flags); `None` serves plaintext.
    pub tls: Option<crate::tls::TlsConfig>,
    /// `allow_non_tls`: with TLS configured, plaintext clients are served too (INFO says
    /// `tls_available`, and the first byte a client sends picks).
    pub allow_non_tls: bool,
    /// `-sd`/`--store_dir`: JetStream's storage directory; without JetStream it is accepted and
    /// unused, as nats-server does (client test harnesses pass it on every start).
    pub store_dir: Option<PathBuf>,
    /// `websocket {}` with a port: WebSocket clients are served there.
    pub websocket: Option<crate::websocket::WebsocketOpts>,
    /// `leafnodes { remotes }`: hubs this server joins as a leaf.
    pub leafnodes: crate::leafnode::LeafnodeOpts,
    /// `cluster {}` with a port (or `--cluster`): this server is a route peer.
    pub cluster: Option<crate::cluster::ClusterOpts>,
    /// The cluster flags, laid over `cluster` once the file is read.
    pub cluster_flags: crate::cluster::ClusterFlags,
}

impl Default for Options {
    /// nats-server's defaults (server/const.go).
    fn default() -> Self {
        Options {
            host: DEFAULT_HOST.to_string(),
            port: DEFAULT_PORT,
            server_name: None,
            client_advertise: None,
            user: None,
            pass: None,
            auth_token: None,
            debug: false,
            trace: false,
            trace_verbose: false,
            logtime: true,
            logtime_utc: false,
            log_file: None,
            pid_file: None,
            ports_file_dir: None,
            config_file: None,
            authorization: None,
            accounts: Vec::new(),
            no_auth_user: None,
            check_config: false,
            http_host: None,
            http_port: None,
            jetstream: None,
            explicit: Vec::new(),
            shards: None,
            spin_before_park: Duration::ZERO,
            migrate: MigrateMode::On,
            max_payload: 1024 * 1024,
            max_control_line: 4096,
            max_connections: 64 * 1024,
            max_subscriptions: 0,
            max_pending: DEFAULT_MAX_PENDING,
            write_deadline: Duration::from_secs(10),
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            disable_short_first_ping: false,
            auth_timeout: Duration::from_secs(2),
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            tls: None,
            allow_non_tls: false,
            store_dir: None,
            websocket: None,
            leafnodes: crate::leafnode::LeafnodeOpts::default(),
            cluster: None,
            cluster_flags: crate::cluster::ClusterFlags::default(),
        }
    }
}

/// The `jetstream` config block (or `jetstream: enabled`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JetStreamOpts {
    pub enabled: bool,
    pub store_dir: Option<PathBuf>,
    pub max_memory_store: Option<i64>,
    pub max_file_store: Option<i64>,
    /// nats-server's `strict` (default true): API requests with unknown fields are refused.
    pub strict: Option<bool>,
    pub domain: Option<String>,
    /// `sync_interval`: unset is Tachyon's default (fdatasync before every ack).
    pub sync: Option<JsSync>,
}

/// `jetstream { sync_interval }`: `always`, or nats-server's lazy interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsSync {
    Always,
    Interval(Duration),
}

impl Options {
    /// The config file's options with the explicitly given command-line flags laid over them.
    pub fn overlay_flags(&self, flags: &Options) -> Options {
        let mut o = self.clone();
        for name in &flags.explicit {
            match *name {
                "host" => o.host = flags.host.clone(),
                "port" => o.port = flags.port,
                "server_name" => o.server_name = flags.server_name.clone(),
                "client_advertise" => o.client_advertise = flags.client_advertise.clone(),
                "user" => o.user = flags.user.clone(),
                "pass" => o.pass = flags.pass.clone(),
                "auth_token" => o.auth_token = flags.auth_token.clone(),
                "debug" => o.debug = flags.debug,
                "trace" => o.trace = flags.trace,
                "trace_verbose" => o.trace_verbose = flags.trace_verbose,
                "logtime" => o.logtime = flags.logtime,
                "logtime_utc" => o.logtime_utc = flags.logtime_utc,
                "log_file" => o.log_file = flags.log_file.clone(),
                "store_dir" => o.store_dir = flags.store_dir.clone(),
                // `-js` turns JetStream on (or off) and keeps the file's other settings.
                "jetstream" => {
                    let on = flags.jetstream.as_ref().is_some_and(|j| j.enabled);
                    o.jetstream
                        .get_or_insert_with(JetStreamOpts::default)
                        .enabled = on;
                }
                "cluster" => o.cluster_flags = flags.cluster_flags.clone(),
                "pid_file" => o.pid_file = flags.pid_file.clone(),
                "ports_file_dir" => o.ports_file_dir = flags.ports_file_dir.clone(),
                "http_port" => o.http_port = flags.http_port,
                "max_payload" => o.max_payload = flags.max_payload,
                "max_control_line" => o.max_control_line = flags.max_control_line,
                "max_connections" => o.max_connections = flags.max_connections,
                "max_subscriptions" => o.max_subscriptions = flags.max_subscriptions,
                "max_pending" => o.max_pending = flags.max_pending,
                "write_deadline" => o.write_deadline = flags.write_deadline,
                "ping_interval" => o.ping_interval = flags.ping_interval,
                "ping_max" => o.ping_max = flags.ping_max,
                "auth_timeout" => o.auth_timeout = flags.auth_timeout,
                "lame_duck_duration" => o.lame_duck_duration = flags.lame_duck_duration,
                "lame_duck_grace_period" => o.lame_duck_grace_period = flags.lame_duck_grace_period,
                // As in nats-server, the flags replace the certificates and verification but
                // keep the file's timeout, mapping and handshake order.
                "tls" => {
                    o.tls = match (&flags.tls, &self.tls) {
                        (Some(f), Some(file)) => Some(crate::tls::TlsConfig {
                            timeout: file.timeout,
                            map: file.map,
                            handshake_first: file.handshake_first,
                            fallback: file.fallback,
                            ..f.clone()
                        }),
                        (f, _) => f.clone(),
                    }
                }
                _ => {}
            }
        }
        // Not config-file settings: always the command line's.
        o.shards = flags.shards;
        o.spin_before_park = flags.spin_before_park;
        o.migrate = flags.migrate;
        o.config_file = flags.config_file.clone();
        o.check_config = flags.check_config;
        o.explicit = flags.explicit.clone();
        o
    }
}
