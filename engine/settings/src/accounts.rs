//! The settings of the `accounts` block: accounts, their users, exports and imports.

use bytes::Bytes;

use crate::auth::{NkeyUser, User};

/// One account as the file declares it. Its users are parsed by the auth module, the same way
/// inside and outside accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDef {
    pub name: String,
    pub users: Vec<User>,
    pub nkeys: Vec<NkeyUser>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
    /// `jetstream: enabled` or a limits block in the account: JetStream serves it, within
    /// these limits.
    pub jetstream: Option<JsAccountLimits>,
}

/// nats-server's `JetStreamAccountLimits` as an account's `jetstream {}` block sets them; -1
/// is "no limit of its own" (the server's limits still apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsAccountLimits {
    pub max_memory: i64,
    pub max_store: i64,
    pub max_streams: i64,
    pub max_consumers: i64,
    pub max_ack_pending: i64,
    pub memory_max_stream_bytes: i64,
    pub store_max_stream_bytes: i64,
    pub max_bytes_required: bool,
}

impl Default for JsAccountLimits {
    fn default() -> Self {
        JsAccountLimits {
            max_memory: -1,
            max_store: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            store_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stream,
    Service,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub kind: Kind,
    pub subject: Bytes,
    /// Accounts allowed to import it; `None` is public.
    pub accounts: Option<Vec<String>>,
    /// Services: how many responses a request may get, and for how long.
    pub response: Responses,
}

/// nats-server's service response types: one response per request (the default), a stream
/// of them, or chunks ended by an empty message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseType {
    #[default]
    Singleton,
    Streamed,
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Responses {
    pub kind: ResponseType,
    /// A request's reply subject stays open this long (since its last response, for streams
    /// and chunks).
    pub threshold: std::time::Duration,
}

/// nats-server's `DEFAULT_SERVICE_EXPORT_RESPONSE_THRESHOLD`.
pub const DEFAULT_RESPONSE_THRESHOLD: std::time::Duration = std::time::Duration::from_secs(120);

impl Default for Responses {
    fn default() -> Self {
        Responses {
            kind: ResponseType::Singleton,
            threshold: DEFAULT_RESPONSE_THRESHOLD,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub kind: Kind,
    /// The exporting account.
    pub account: String,
    /// The subject as exported.
    pub subject: Bytes,
    /// Streams: where imported messages land (`prefix` or `to`); services: the local subject
    /// the importer publishes to (`to`, default the exported subject).
    pub local: Local,
    pub pos: crate::Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    Same,
    Prefix(String),
    To(Bytes),
}

/// nats-server's global account, where users outside any account live.
pub const GLOBAL_ACCOUNT: &str = "$G";
