//! Process-wide, read-mostly state shared by all shards. Nothing here is touched per message.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use tachyon_protocol::json::ServerInfo;

use crate::cli::{Options, NATS_VERSION, TACHYON_VERSION};

/// The effective server configuration (flags today, the config file later).
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub server_id: String,
    pub server_name: String,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
    pub max_payload: usize,
    pub max_control_line: usize,
    pub max_connections: usize,
    pub max_subscriptions: usize,
    pub max_pending: usize,
    pub write_deadline: Duration,
    pub ping_interval: Duration,
    pub ping_max: u32,
    pub auth_timeout: Duration,
    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,
}

impl Config {
    pub fn from_options(opts: &Options) -> Config {
        let server_id = new_server_id();
        Config {
            host: opts.host.clone(),
            port: opts.port,
            server_name: opts
                .server_name
                .clone()
                .unwrap_or_else(|| server_id.clone()),
            server_id,
            user: opts.user.clone(),
            pass: opts.pass.clone(),
            auth_token: opts.auth_token.clone(),
            max_payload: opts.max_payload,
            max_control_line: opts.max_control_line,
            max_connections: opts.max_connections,
            max_subscriptions: opts.max_subscriptions,
            max_pending: opts.max_pending,
            write_deadline: opts.write_deadline,
            ping_interval: opts.ping_interval,
            ping_max: opts.ping_max,
            auth_timeout: opts.auth_timeout,
            lame_duck_duration: opts.lame_duck_duration,
            lame_duck_grace_period: opts.lame_duck_grace_period,
        }
    }

    pub fn auth_required(&self) -> bool {
        self.user.is_some() || self.auth_token.is_some()
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
    pub config: Config,
    /// The port actually bound (differs from config when it asked for a random one).
    pub port: u16,
    pub conn_count: AtomicUsize,
    next_cid: AtomicU64,
}

impl Global {
    pub fn new(config: Config, port: u16) -> Self {
        Global {
            config,
            port,
            conn_count: AtomicUsize::new(0),
            next_cid: AtomicU64::new(1),
        }
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::Relaxed)
    }

    /// INFO as sent to a new client, before the per-client fields are filled in.
    pub fn info_template(&self) -> ServerInfo {
        let c = &self.config;
        ServerInfo {
            server_id: c.server_id.clone(),
            server_name: c.server_name.clone(),
            version: NATS_VERSION.to_string(),
            proto: 1,
            go: "go1.24.4".to_string(),
            host: c.host.clone(),
            port: self.port,
            headers: true,
            max_payload: i32::try_from(c.max_payload).unwrap_or(i32::MAX),
            auth_required: c.auth_required(),
            tachyon: TACHYON_VERSION.to_string(),
            ..Default::default()
        }
    }
}
