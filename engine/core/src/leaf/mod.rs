//! Leafnodes: Tachyon as a leaf of a nats-server hub (`leafnodes { remotes }`). Each remote
//! is one link on shard 0 ([`link`]): a `ClientState` whose subscriptions are the hub's
//! interest (so any shard's publishes reach it over the ordinary rings) and whose messages are
//! written in the leaf protocol, once per message however many of them match; what the hub
//! sends is published as that client, never echoed back. The hub hears the union of every
//! shard's interest in the bound account ([`interest`]).

pub mod accept;
pub mod interest;
pub mod link;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::accounts::AccountId;
use crate::global::Global;
use interest::LeafInterest;

/// What proves a remote's identity to its hub in CONNECT: a signature of the hub's nonce, with
/// the public key it verifies under (`nkey`) or the user JWT that names that key (a
/// credentials file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafProof {
    pub nkey: Option<String>,
    pub jwt: Option<String>,
    /// base64url without padding, as nats-server expects it.
    pub sig: String,
}

/// Signs a hub's nonce for a remote that authenticates with a key (`nkey`) or a credentials
/// file. Built at start by the server (the core links no key library).
pub trait LeafSigner: Send + Sync + std::fmt::Debug {
    fn prove(&self, nonce: &[u8]) -> Result<LeafProof, String>;
}

/// A connected link as monitoring shows it.
pub struct LinkInfo {
    pub client: std::rc::Rc<crate::client::ClientState>,
    /// The hub's server name.
    pub remote_name: String,
}

/// Whose interest a subscription of `client` is, for the links' trackers.
pub fn owner_of(client: &crate::client::ClientState) -> interest::Owner {
    if !client.link.get() {
        return interest::Owner::Local;
    }
    let side = if client.route.get() {
        interest::Side::Route
    } else if client.leaf_accepted.get() {
        interest::Side::Hub
    } else {
        interest::Side::Spoke
    };
    interest::Owner::Link(client.id, side)
}

/// The shard that owns every leafnode link.
pub const LINK_SHARD: u16 = 0;

/// The interest trackers shard `id` keeps: one per account a remote binds, on the link shard
/// only, from the shard's birth (so no subscription is missed).
pub fn trackers(id: u16, global: &Arc<Global>) -> HashMap<AccountId, LeafInterest> {
    let mut out = HashMap::new();
    if id != LINK_SHARD {
        return out;
    }
    let cfg = global.config();
    if cfg.opts.leafnodes.listen.is_some() || cfg.opts.cluster.is_some() {
        // Leafs connecting to us may bind any account; a route carries every account.
        for acc in 0..global.accounts.len().max(1) {
            out.insert(
                acc as AccountId,
                LeafInterest::new(loop_detection_subject()),
            );
        }
    }
    for r in &global.config().opts.leafnodes.remotes {
        if let Some(acc) = account_of(global, r.account.as_deref()) {
            out.entry(acc)
                .or_insert_with(|| LeafInterest::new(loop_detection_subject()));
        }
    }
    out
}

/// Starts a link for every remote (on the link shard, once every shard is ready).
pub fn start(shard: &std::rc::Rc<crate::shard::Shard>) {
    if shard.id != LINK_SHARD {
        return;
    }
    if let Some(listen) = shard.global.config().opts.leafnodes.listen.clone() {
        glommio::spawn_local(accept::listen(shard.clone(), listen)).detach();
    }
    let remotes = shard.global.config().opts.leafnodes.remotes.clone();
    for (index, r) in remotes.into_iter().enumerate() {
        let Some(account) = account_of(&shard.global, r.account.as_deref()) else {
            tracing::error!(
                "Unable to lookup account {} for solicited leafnode connection: account not found",
                r.account.as_deref().unwrap_or_default()
            );
            continue;
        };
        glommio::spawn_local(link::run(shard.clone(), index, r, account)).detach();
    }
}

/// JetStream's client subjects, which nats-server keeps off every leafnode connection of an
/// account (both ways: interest and messages) unless JetStream domains join the two sides
/// (`denyAllClientJs`); Tachyon has no domains, so they never cross.
pub fn js_denied(subject: &[u8]) -> bool {
    subject.starts_with(b"$JS.API.")
        || subject.starts_with(b"$KV.")
        || subject.starts_with(b"$OBJ.")
}

/// The local account a remote binds (`$G` when it names none); `None` if there is no such
/// account.
pub fn account_of(global: &Global, name: Option<&str>) -> Option<AccountId> {
    match name {
        None => Some(0),
        Some(n) => global.accounts.id(n).or((n == "$G").then_some(0)),
    }
}

/// `$LDS.` and a random token: announced to the hub; hearing it back means the hub's
/// interest reaches this server again through another path (a loop).
fn loop_detection_subject() -> Bytes {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let mut s = b"$LDS.".to_vec();
    s.extend((0..22).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    Bytes::from(s)
}
