//! What a config reload does to the connections already open, as nats-server's
//! `reloadAuthorization` does: every shard re-checks its own clients against the new
//! authentication setup, closes those that no longer pass, swaps the permissions of the others
//! and drops the subscriptions those permissions now forbid.
//!
//! The signals thread installs the new config and posts a reload job to every shard's mailbox;
//! each shard does the work on its own executor (so no other thread ever touches its clients)
//! and acknowledges, and the reload is reported done once every shard answered.

use std::rc::Rc;
use std::time::Duration;

use tachyon_protocol::errors;

use crate::auth::{Authenticate, PermChecker, Recheck};
use crate::client::{ClientState, CloseReason};
use crate::shard::mailbox::{ask_all, Job, Mailbox};
use crate::shard::Shard;

/// How long the signals thread waits for the shards to apply a reload before it reports it
/// anyway (a shard busy with a huge backlog still applies it, just later).
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Call after the new config is installed, with a number no earlier reload used: posts the
/// reload to every shard and returns once each re-checked its clients, or after
/// [`APPLY_TIMEOUT`]; false then (an ack of an earlier reload that timed out does not count).
pub fn apply(boxes: &[Mailbox], generation: u64) -> bool {
    let acks = ask_all(
        boxes,
        APPLY_TIMEOUT,
        |ack| Job::Reload { generation, ack },
        |g| *g == generation,
    );
    acks.len() == boxes.len()
}

/// Re-checks every client of this shard that has sent its CONNECT (the others authenticate
/// against the new config when they do).
pub fn recheck_clients(shard: &Shard, cfg: &crate::global::Config) {
    let clients: Vec<Rc<ClientState>> = shard.clients.borrow().values().cloned().collect();
    for client in &clients {
        // A connection moving to another shard is checked there when it arrives.
        if client.affinity.move_to.get().is_none() {
            recheck_client(shard, cfg.auth_for(client.websocket.get()).as_ref(), client);
        }
    }
}

/// Applies the current authorization to one connection of this shard.
pub fn recheck_client(shard: &Shard, auth: &dyn Authenticate, client: &Rc<ClientState>) {
    if client.is_closed() {
        return;
    }
    let verdict = match client.credentials.borrow().as_ref() {
        Some(creds) => auth.recheck(creds, client.account.get()),
        None => return,
    };
    match verdict {
        Recheck::Moved => {
            tracing::debug!(
                "{} - cid:{} - closed by reload: user removed or moved to another account",
                client.peer_string(),
                client.id
            );
            client.close(CloseReason::ClientClosed);
        }
        Recheck::Denied(e) => {
            tracing::error!(
                "{} - cid:{} - authentication error after reload: {e}",
                client.peer_string(),
                client.id
            );
            client.send_err(errors::AUTHORIZATION_VIOLATION);
            client.close(CloseReason::AuthViolation);
        }
        Recheck::Allowed(who) => {
            *client.perms.borrow_mut() = who.perms.map(PermChecker::new);
            *client.auth_user.borrow_mut() = who.user;
            revoke_forbidden_subs(shard, client);
        }
    }
    shard.after_sends();
}

/// nats-server's `processSubsOnConfigReload`: a subscription the new permissions forbid is
/// removed (the other shards learn it through the usual interest delta) and the client is told
/// which; the ones that stay get their delivery filter recomputed for the new deny list.
fn revoke_forbidden_subs(shard: &Shard, client: &Rc<ClientState>) {
    let subs: Vec<_> = client.subs.borrow().values().cloned().collect();
    for sub in subs {
        let (allowed, filter) = match client.perms.borrow().as_ref() {
            None => (true, false),
            Some(p) => (
                p.can_subscribe(&sub.subject, sub.queue.as_deref()),
                p.perms()
                    .needs_delivery_filter(&sub.subject, sub.queue.as_deref()),
            ),
        };
        if allowed {
            sub.deny_filter.set(filter);
            continue;
        }
        shard.unsubscribe(client, &sub.sid, None);
        client.send_err(&errors::subscribe_revoked(
            &sub.subject,
            sub.queue.as_deref(),
            &sub.sid,
        ));
        tracing::info!(
            "Removed sub {}{} (sid {}) for {} - not authorized",
            errors::go_quote(&sub.subject),
            sub.queue
                .as_deref()
                .map(|q| format!(" using queue {}", errors::go_quote(q)))
                .unwrap_or_default(),
            errors::go_quote(&sub.sid),
            client.auth_user.borrow().as_deref().unwrap_or("")
        );
    }
}
