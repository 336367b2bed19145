//! The `leafnodes {}` block as far as Tachyon serves it: remotes this server dials (it is the
//! leaf; the other end is the hub).

use std::time::Duration;

/// nats-server's default delay between attempts to reach a remote.
pub const DEFAULT_RECONNECT: Duration = Duration::from_secs(1);
/// nats-server's leafnode port, when a remote URL names none.
pub const DEFAULT_LEAF_PORT: u16 = 7422;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafnodeOpts {
    pub remotes: Vec<RemoteLeaf>,
    /// Pause between attempts to reach a remote (and after a connection to it ends).
    pub reconnect: Duration,
    /// Where leafs connect to this server (it is their hub); `None`: no leafnode port.
    pub listen: Option<LeafListen>,
}

impl Default for LeafnodeOpts {
    fn default() -> Self {
        LeafnodeOpts {
            remotes: Vec::new(),
            reconnect: DEFAULT_RECONNECT,
            listen: None,
        }
    }
}

/// The leafnode port and how leafs authenticate on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafListen {
    pub host: String,
    /// 0: a random port (`port: -1`).
    pub port: u16,
    /// `host:port` leafs are told to reconnect to (`advertise`); the bound address if `None`.
    pub advertise: Option<String>,
    /// Tell leafs no URL at all.
    pub no_advertise: bool,
    /// `authorization {}`: a single user, or users each bound to an account. None: leafs bind
    /// to `$G` without credentials.
    pub auth: Option<LeafAuth>,
    /// `tls {}`: leafs must speak TLS (after the INFO, as nats-server's leafnode port).
    pub tls: Option<crate::tls::TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeafAuth {
    pub user: Option<String>,
    pub password: Option<String>,
    /// The account the single user binds (`$G` when none).
    pub account: Option<String>,
    pub users: Vec<LeafUser>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafUser {
    pub user: String,
    pub password: String,
    pub account: Option<String>,
}

/// One `remotes` entry: a hub to dial, and the local account its traffic lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLeaf {
    /// Tried in turn.
    pub urls: Vec<LeafUrl>,
    /// The local account bound to the hub (`$G` when none is named).
    pub account: Option<String>,
    /// The remote's `tls {}`: TLS to the hub (also when a URL says `tls://` or the hub's INFO
    /// requires it).
    pub tls: Option<LeafTls>,
    /// `nkey`: the seed whose key signs the hub's nonce (CONNECT carries the public key).
    pub nkey_seed: Option<String>,
    /// `credentials`: a user credentials file (user JWT and seed), read at each connect as
    /// nats-server does: CONNECT carries the JWT and the seed signs the nonce.
    pub credentials: Option<std::path::PathBuf>,
}

/// TLS as a client of a hub: whom to trust, and the certificate to present if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeafTls {
    /// The hub's certificate must chain to this CA bundle.
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate for hubs that verify leafs.
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    /// Accept any hub certificate (nats-server's `insecure`).
    pub insecure: bool,
    /// Handshake deadline.
    pub timeout: Duration,
}

/// A hub address with the credentials its URL carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafUrl {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// As written (credentials masked out), for log lines.
    pub shown: String,
    /// `tls://`: TLS to this URL.
    pub tls: bool,
}
