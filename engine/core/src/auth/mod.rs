//! Authentication and authorization as the shard core sees them: the [`Authenticate`] service
//! a server plugs in (users, tokens, nkeys, certificates: `tachyon-auth`), what a CONNECT
//! proved ([`Authenticated`], [`Credentials`]) and what a connection may publish and subscribe
//! to (`perms`: compiled once per user, checked per message by each connection's own
//! [`perms::PermChecker`], so its caches need no lock).
//!
//! The core never hashes a password or parses a certificate: a TLS client's certificate
//! reaches the authenticator as DER bytes.

pub mod perms;

use std::sync::Arc;

use bytes::Bytes;
use tachyon_protocol::json::ConnectOptions;

use crate::accounts::AccountId;
pub use perms::{CompiledPerms, PermChecker, Permissions, ResponsePermission, SubjectPermission};

/// Who may connect, decided once per CONNECT (and again for open connections on a reload).
pub trait Authenticate: Send + Sync + std::fmt::Debug {
    /// Whether a CONNECT must authenticate (and the auth timer runs).
    fn required(&self) -> bool;
    /// INFO's `auth_required` (with a `no_auth_user`, nats-server tells clients they need none).
    fn advertised_required(&self) -> bool;
    /// A fresh nonce for one connection's INFO, when some user signs with an nkey.
    fn nonce(&self) -> Option<String>;
    fn authenticate(&self, proof: &Credentials) -> Result<Authenticated, AuthError>;
    /// A client that authenticated under the previous configuration, against this one.
    fn recheck(&self, proof: &Credentials, account: AccountId) -> Recheck;
}

/// A server without authentication: every client is welcome in `$G`.
#[derive(Debug, Default)]
pub struct Open;

impl Authenticate for Open {
    fn required(&self) -> bool {
        false
    }
    fn advertised_required(&self) -> bool {
        false
    }
    fn nonce(&self) -> Option<String> {
        None
    }
    fn authenticate(&self, _: &Credentials) -> Result<Authenticated, AuthError> {
        Ok(Authenticated::default())
    }
    fn recheck(&self, _: &Credentials, _: AccountId) -> Recheck {
        Recheck::Allowed(Authenticated::default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("bad token")]
    BadToken,
    #[error("bad user or password")]
    BadPassword,
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("unknown nkey {0:?}")]
    UnknownNkey(String),
    #[error("nkey signature missing")]
    SignatureMissing,
    #[error("nkey signature not valid base64")]
    SignatureEncoding,
    #[error("nkey signature not verified")]
    SignatureInvalid,
    #[error("user required in certificate, no certificate presented")]
    NoCertificate,
    #[error("no user matches the client certificate")]
    CertNotMapped,
}

/// A successful CONNECT: who, what they may do (`None`: anything), and the account whose
/// subject space they live in.
#[derive(Debug, Clone, Default)]
pub struct Authenticated {
    pub user: Option<String>,
    pub perms: Option<Arc<CompiledPerms>>,
    pub account: AccountId,
}

/// What a client proved itself with at CONNECT, kept for the life of the connection so a
/// config reload can check it again. nats-server re-runs the whole authentication on reload,
/// so the password and token stay in memory here too: a new config may hash the same password
/// differently, and only the client's own secret can be checked against that.
#[derive(Clone, Default)]
pub struct Credentials {
    /// Only the credential fields are filled in.
    pub connect: ConnectOptions,
    /// The nonce this connection's INFO carried.
    pub nonce: Option<String>,
    /// The verified client certificate (DER), on a TLS connection that presented one.
    pub cert: Option<Bytes>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        f.debug_struct("Credentials")
            .field("user", &self.connect.user)
            .field("nkey", &self.connect.nkey)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(c: &ConnectOptions, nonce: Option<&str>, cert: Option<&Bytes>) -> Self {
        Credentials {
            connect: ConnectOptions {
                auth_token: c.auth_token.clone(),
                user: c.user.clone(),
                pass: c.pass.clone(),
                nkey: c.nkey.clone(),
                sig: c.sig.clone(),
                ..ConnectOptions::default()
            },
            nonce: nonce.map(str::to_string),
            cert: cert.cloned(),
        }
    }
}

/// What a reloaded configuration makes of a client that authenticated before it.
#[derive(Debug)]
pub enum Recheck {
    /// Its user or nkey is gone or now belongs to another account: nats-server closes such a
    /// client without an error (it reconnects into the right place, or fails to).
    Moved,
    /// Its credentials no longer pass: `Authorization Violation`.
    Denied(AuthError),
    /// Still welcome, with these (possibly new) permissions.
    Allowed(Authenticated),
}
