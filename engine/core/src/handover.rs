//! A connection between two shards (`shard/migration.rs`), described by data only: what the old
//! home sends (`Migrant`: the client's state, its subscriptions, its session, its socket; then
//! `Handoff`: what it had not written) and what the new home hands back to its inbound loop to
//! resume (`Arrived`). A leaf: the shard carries these types without knowing the connection
//! layer that makes and resumes them (`conn.rs`).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use tachyon_protocol::{json, Parser};

use crate::accounts::AccountId;
use crate::auth::Credentials;
use crate::client::{ClientCounters, ClientFlags, ClientState, CloseReason};
use crate::global::Config;

/// A connection on its way to its new home: everything but what it had not written yet.
pub struct Migrant {
    pub client: ClientSnapshot,
    /// (sid, subject, queue) of every subscription.
    pub subs: Vec<(Bytes, Bytes, Option<Bytes>)>,
    pub session: SessionParts,
    /// The socket, duplicated for the new home.
    pub fd: i32,
}

impl std::fmt::Debug for Migrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrant")
            .field("cid", &self.client.id)
            .field("subs", &self.subs.len())
            .field("fd", &self.fd)
            .finish()
    }
}

/// The old home's last word: the bytes it had not written, its counters, and whether the
/// connection was closed meanwhile.
#[derive(Debug)]
pub struct Handoff {
    pub cid: u64,
    pub out: Vec<u8>,
    pub counters: ClientCounters,
    pub closed: Option<CloseReason>,
}

/// A connection's state in a form that crosses threads, for its move to another shard: what
/// `ClientState` holds apart from its queued bytes, counters and subscriptions, which travel
/// separately (`shard/migration.rs`).
pub struct ClientSnapshot {
    pub id: u64,
    pub peer: Option<SocketAddr>,
    pub flags: ClientFlags,
    pub account: AccountId,
    pub auth_user: Option<String>,
    pub name: String,
    pub lang: String,
    pub version: String,
    pub start: SystemTime,
    pub start_mono: Instant,
    pub last_activity: Instant,
    pub rtt: Duration,
    pub max_pending: usize,
    pub credentials: Option<Credentials>,
    pub moves: u8,
    pub interest_dirty: bool,
    pub first_pong_sent: bool,
}

/// A session's state as it moves to another shard with its connection (`shard/migration.rs`):
/// only plaintext connections past CONNECT move, so there is no TLS state and no auth timer.
pub struct SessionParts {
    pub cfg: Arc<Config>,
    pub connect_opts: json::ConnectOptions,
    pub nonce: Option<String>,
    pub parser: Parser,
    pub rbuf: BytesMut,
    pub window: usize,
    pub last_in: Instant,
    pub pings_out: u32,
    pub ping_sent: Option<Instant>,
    pub rtt_known: bool,
}

/// A connection adopted by this shard and handed off by its old home: the inbound loop that
/// popped the `Handoff` resumes it (`conn::resume`).
pub struct Arrived {
    pub client: Rc<ClientState>,
    pub session: SessionParts,
}
