//! Clients inside the server. An [`InternalClient`] is a `ClientState` like a socket client's,
//! in an account of its choosing, whose "socket" is a task of the server's own: its
//! subscriptions are ordinary sublist entries (so publishes on any shard reach it over the
//! ordinary rings, with accounts, imports, queue groups, auto-unsubscribe and permissions as for
//! anyone), delivery queues `MSG`/`HMSG` bytes into its outbound buffer as for a socket client
//! (so the stall gate and `max_pending` apply unchanged and the per-message path has no branch
//! for services), and [`InternalClient::next`] parses them back out on the service's task.
//! It publishes through [`Shard::publish`] like a connection's reader: `_R_` replies of
//! service imports, no-responders statuses and cross-shard routing behave as for a socket.
//!
//! Services only enqueue from inside delivery (routing holds half-built queue picks and
//! borrows): everything a service does, it does on its own task, after [`InternalClient::next`]
//! returned. JetStream's API and streams, `$SYS` and leafnode interest build on this.

use std::cell::Cell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use tachyon_protocol::{ServerOp, ServerParser};

use crate::accounts::AccountId;
use crate::client::{ClientFlags, ClientState, CloseReason};
use crate::piece::Piece;
use crate::shard::{Shard, SubscribeError};

/// One message delivered to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub subject: Bytes,
    /// The subscription it matched (as returned by [`InternalClient::subscribe`]).
    pub sid: Bytes,
    pub reply: Option<Bytes>,
    /// The `NATS/1.0` header block, when the message has one.
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

pub struct InternalClient {
    shard: Rc<Shard>,
    client: Rc<ClientState>,
    next_sid: Rc<Cell<u64>>,
    parser: ServerParser,
    /// Taken from the client's outbound buffer, not parsed yet.
    inbox: BytesMut,
    spare: Vec<u8>,
}

impl InternalClient {
    /// A client of `account` on `shard`. It is not listed among the shard's connections
    /// (monitoring shows none, lame duck and shutdown do not close it) and never moves.
    pub fn new(shard: &Rc<Shard>, account: AccountId) -> InternalClient {
        let max_pending = shard.global.config().opts.max_pending;
        InternalClient::with_max_pending(shard, account, max_pending)
    }

    /// A client whose deliveries may wait up to `max_pending` bytes before it is cut off (a
    /// service that must not lose its subscriptions under a burst takes more than the
    /// configured per-client limit; its feeders still pause at the stall mark).
    pub fn with_max_pending(
        shard: &Rc<Shard>,
        account: AccountId,
        max_pending: usize,
    ) -> InternalClient {
        assert!(
            (account as usize) < shard.global.accounts.len().max(1),
            "account id {account} out of range"
        );
        let client = Rc::new(ClientState::new(
            shard.global.next_client_id(),
            None,
            -1,
            max_pending,
        ));
        client.account.set(account);
        client.flags.set(ClientFlags {
            verbose: false,
            pedantic: false,
            echo: true,
            headers: true,
            no_responders: true,
            protocol: 1,
        });
        InternalClient {
            shard: shard.clone(),
            client,
            next_sid: Rc::new(Cell::new(1)),
            parser: ServerParser::new(),
            inbox: BytesMut::new(),
            spare: Vec::new(),
        }
    }

    pub fn account(&self) -> AccountId {
        self.client.account.get()
    }

    /// Subscribes on this shard; every shard learns of it through the rings (call
    /// [`barrier`](Self::barrier) before relying on a publish elsewhere reaching it).
    pub fn subscribe(&self, subject: &str, queue: Option<&str>) -> Result<Bytes, SubscribeError> {
        self.handle().subscribe(subject, queue)
    }

    /// `UNSUB sid [max]`: with `max`, after that many deliveries in all.
    pub fn unsubscribe(&self, sid: &[u8], max: Option<u64>) {
        self.shard.unsubscribe(&self.client, sid, max);
    }

    /// Publishes as this client. `headers` is a `NATS/1.0` header block or `None`.
    pub fn publish(
        &self,
        subject: &Bytes,
        reply: Option<&Bytes>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) {
        let (header_len, message) = message_of(headers, payload);
        self.shard.publish(
            &self.client,
            subject.into(),
            reply.map(Piece::from),
            header_len,
            Piece::from(&message),
        );
        // A service never pauses for a slow subscriber (it is cut off at max_pending instead);
        // the next reader must not pause for one it did not feed.
        self.shard.forget_stalled();
        self.shard.after_sends();
    }

    /// Publishes on `subject` a message whose MSG line shows `shown` ([`Shard::publish_as`]):
    /// a JetStream delivery. Whether anyone received it.
    pub fn publish_as(
        &self,
        subject: &Bytes,
        shown: &Bytes,
        reply: Option<&Bytes>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) -> bool {
        let (header_len, message) = message_of(headers, payload);
        self.publish_built(subject, shown, reply, header_len, &message)
    }

    /// As [`InternalClient::publish_as`], with the message (headers, then payload) already in
    /// `message`: nothing is copied (a consumer builds its deliveries in an arena of its own).
    pub fn publish_built(
        &self,
        subject: &Bytes,
        shown: &Bytes,
        reply: Option<&Bytes>,
        header_len: Option<usize>,
        message: &Bytes,
    ) -> bool {
        let delivered = self.shard.publish_as(
            &self.client,
            subject.into(),
            shown.into(),
            reply.map(Piece::from),
            header_len,
            message.into(),
        );
        self.shard.forget_stalled();
        self.shard.after_sends();
        delivered
    }

    /// Returns once every other shard applied this client's subscriptions (and delivered its
    /// publishes) made before the call.
    pub async fn barrier(&self) {
        self.client.interest_dirty.set(false);
        self.shard.barrier().await;
    }

    /// The next message for this service; `None` once the client was closed (the server shuts
    /// down, or the service fell more than `max_pending` behind).
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(d) = self.try_next() {
                return Some(d);
            }
            if self.client.is_closed() {
                return None;
            }
            self.client.writer_wake.wait().await;
        }
    }

    /// A message already delivered, without waiting: a service drains what arrived into one
    /// batch (a stream appends it with one write and one sync).
    pub fn try_next(&mut self) -> Option<Delivery> {
        loop {
            match self.parser.parse(&mut self.inbox) {
                Ok(Some(op)) => match op {
                    ServerOp::Msg {
                        subject,
                        sid,
                        reply,
                        payload,
                    } => {
                        return Some(Delivery {
                            subject,
                            sid,
                            reply,
                            headers: None,
                            payload,
                        })
                    }
                    ServerOp::HMsg {
                        subject,
                        sid,
                        reply,
                        header_len,
                        message,
                    } => {
                        let headers = message.slice(..header_len.min(message.len()));
                        let payload = message.slice(header_len.min(message.len())..);
                        return Some(Delivery {
                            subject,
                            sid,
                            reply,
                            headers: Some(headers),
                            payload,
                        });
                    }
                    // Only deliveries are queued to an internal client; a slow-consumer -ERR
                    // comes right before its close.
                    _ => continue,
                },
                Ok(None) => {}
                Err(e) => {
                    // The engine's own encoder wrote these bytes: a parse failure is a bug.
                    debug_assert!(false, "internal client's deliveries do not parse: {e}");
                    tracing::error!("internal client {}: {e}", self.client.id);
                    self.client.close(CloseReason::ProtocolViolation);
                    return None;
                }
            }
            self.client.pull_backlog();
            if !self.client.has_out() {
                return None;
            }
            self.client.take_out(&mut self.spare);
            self.inbox.extend_from_slice(&self.spare);
            self.client.wrote();
        }
    }

    /// Whether the client was closed (shutdown, or cut off as a slow consumer).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// A handle that manages this client's subscriptions (and closes it) while another task
    /// owns the client and waits in [`next`](Self::next).
    pub fn handle(&self) -> InternalHandle {
        InternalHandle {
            shard: self.shard.clone(),
            client: self.client.clone(),
            next_sid: self.next_sid.clone(),
        }
    }

    /// Closes the client and drops its subscriptions.
    pub fn close(&self) {
        self.handle().close();
    }
}

impl Drop for InternalClient {
    fn drop(&mut self) {
        if !self.client.is_closed() {
            self.close();
        }
    }
}

/// Subscriptions and closing of an [`InternalClient`] whose deliveries another task reads.
/// Closing it ends that task's [`InternalClient::next`] with `None`.
#[derive(Clone)]
pub struct InternalHandle {
    shard: Rc<Shard>,
    client: Rc<ClientState>,
    next_sid: Rc<Cell<u64>>,
}

impl InternalHandle {
    /// As [`InternalClient::subscribe`].
    pub fn subscribe(&self, subject: &str, queue: Option<&str>) -> Result<Bytes, SubscribeError> {
        let sid = Bytes::from(self.next_sid.get().to_string());
        self.next_sid.set(self.next_sid.get() + 1);
        self.shard.subscribe(
            &self.client,
            Bytes::copy_from_slice(subject.as_bytes()),
            queue.map(|q| Bytes::copy_from_slice(q.as_bytes())),
            sid.clone(),
        )?;
        Ok(sid)
    }

    pub fn unsubscribe(&self, sid: &[u8], max: Option<u64>) {
        self.shard.unsubscribe(&self.client, sid, max);
    }

    /// As [`InternalClient::barrier`].
    pub async fn barrier(&self) {
        self.client.interest_dirty.set(false);
        self.shard.barrier().await;
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Closes the client and drops its subscriptions (also those of a client already cut
    /// off as a slow consumer).
    pub fn close(&self) {
        self.client.close(CloseReason::ServerShutdown);
        self.shard.remove_internal(&self.client);
    }
}

/// A message as routing takes it: the header block (if any) and the body in one buffer.
fn message_of(headers: Option<&[u8]>, payload: &[u8]) -> (Option<usize>, Bytes) {
    match headers {
        Some(h) => {
            let mut m = BytesMut::with_capacity(h.len() + payload.len());
            m.extend_from_slice(h);
            m.extend_from_slice(payload);
            (Some(h.len()), m.freeze())
        }
        None => (None, Bytes::copy_from_slice(payload)),
    }
}
