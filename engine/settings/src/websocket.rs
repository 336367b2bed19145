//! The `websocket {}` block as nats-server's `WebsocketOpts` keeps it.

use std::time::Duration;

/// Where and how WebSocket clients are served; `None` in [`crate::Options`] when the block is
/// absent or its port is 0 (nats-server serves no WebSocket then).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebsocketOpts {
    /// Listen address; nats-server's default host when the block names none.
    pub host: String,
    /// 0: a random port (`port: -1`).
    pub port: u16,
    pub advertise: Option<String>,
    /// Plain `ws://` (nats-server requires TLS unless this says otherwise).
    pub no_tls: bool,
    /// `wss://`.
    pub tls: Option<crate::tls::TlsConfig>,
    /// permessage-deflate for clients that ask for it.
    pub compression: bool,
    pub same_origin: bool,
    /// As written (`http[s]://host[:port]`), checked when parsed.
    pub allowed_origins: Vec<String>,
    /// Deadline for the upgrade request; zero: none.
    pub handshake_timeout: Duration,
    /// Extra headers of the upgrade response, in the order written.
    pub headers: Vec<(String, String)>,
    /// `authorization {}` of the block: a single user or a token for WebSocket clients only,
    /// and its `timeout`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub auth_timeout: Option<Duration>,
    /// The user a WebSocket client that sends no credentials becomes.
    pub no_auth_user: Option<String>,
    /// Cookies of the upgrade request that stand in for CONNECT's user, password and token.
    pub user_cookie: Option<String>,
    pub pass_cookie: Option<String>,
    pub token_cookie: Option<String>,
    /// A cookie carrying a user JWT. nats-server refuses it without trusted operators, which
    /// Tachyon does not take, so a block that names one is refused with its error.
    pub jwt_cookie: Option<String>,
    /// WebSocket clients' PING interval, in place of the server's (`None` or zero: the
    /// server's).
    pub ping_interval: Option<Duration>,
}

impl WebsocketOpts {
    /// nats-server's `authOverride`: WebSocket clients authenticate by the block's own rules.
    pub fn auth_override(&self) -> bool {
        self.username.is_some() || self.token.is_some() || self.no_auth_user.is_some()
    }
}
