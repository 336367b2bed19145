//! What a config reload does to the connections already open, as nats-server's
//! `reloadAuthorization` does: every shard re-checks its own clients against the new
//! authentication setup, closes those that no longer pass, swaps the permissions of the others
//! and drops the subscriptions those permissions now forbid.
//!
//! The signals thread installs the new config, bumps a generation and rings every shard's
//! doorbell; each shard does the work on its own executor (so no other thread ever touches its
//! clients) and acknowledges, and the reload is reported done once every shard answered.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tachyon_protocol::errors;

use crate::auth::{Authenticate, PermChecker, Recheck};
use crate::client::{ClientState, CloseReason};
use crate::doorbell::{self, BellReceiver, Doorbell};
use crate::shard::Shard;

/// How long the signals thread waits for the shards to apply a reload before it reports it
/// anyway (a shard busy with a huge backlog still applies it, just later).
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The signals thread's end: tells every shard a new config is in place.
pub struct Notifier {
    generation: Arc<AtomicU64>,
    bells: Vec<Doorbell>,
    acks: Receiver<u64>,
}

/// One shard's end; moved to its executor and served there by [`Listener::serve`].
pub struct Listener {
    generation: Arc<AtomicU64>,
    bell: BellReceiver,
    ack: Sender<u64>,
}

/// One notifier and a listener per shard.
pub fn channel(shards: usize) -> std::io::Result<(Notifier, Vec<Listener>)> {
    let generation = Arc::new(AtomicU64::new(0));
    let (ack, acks) = mpsc::channel();
    let mut bells = Vec::with_capacity(shards);
    let mut listeners = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (bell, rx) = doorbell::doorbell()?;
        bells.push(bell);
        listeners.push(Listener {
            generation: generation.clone(),
            bell: rx,
            ack: ack.clone(),
        });
    }
    Ok((
        Notifier {
            generation,
            bells,
            acks,
        },
        listeners,
    ))
}

impl Notifier {
    /// Call after the new config is installed. Returns once every shard re-checked its
    /// clients, or after [`APPLY_TIMEOUT`]; false then.
    pub fn notify(&self) -> bool {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        for bell in &self.bells {
            bell.ring();
        }
        let deadline = Instant::now() + APPLY_TIMEOUT;
        let mut done = 0;
        while done < self.bells.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.acks.recv_timeout(left) {
                // An ack of an earlier reload that timed out does not count for this one.
                Ok(g) if g == generation => done += 1,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

impl Listener {
    /// Applies each reload to this shard's clients for as long as the shard runs.
    pub async fn serve(self, shard: Rc<Shard>) {
        let mut waiter = self.bell.attach();
        let mut seen = 0;
        loop {
            waiter
                .wait_until(|| self.generation.load(Ordering::SeqCst) != seen)
                .await;
            seen = self.generation.load(Ordering::SeqCst);
            let auth = shard.global.config().auth.clone();
            recheck_clients(&shard, auth.as_ref());
            // The signals thread may have stopped waiting; nothing to do then.
            let _ = self.ack.send(seen);
        }
    }
}

/// Re-checks every client of this shard that has sent its CONNECT (the others authenticate
/// against the new config when they do).
pub fn recheck_clients(shard: &Shard, auth: &dyn Authenticate) {
    let clients: Vec<Rc<ClientState>> = shard.clients.borrow().values().cloned().collect();
    for client in &clients {
        // A connection moving to another shard is checked there when it arrives.
        if client.affinity.move_to.get().is_none() {
            recheck_client(shard, auth, client);
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
