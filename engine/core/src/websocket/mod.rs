//! WebSocket clients (`websocket {}`): the HTTP upgrade ([`upgrade`]), then the NATS protocol
//! inside WebSocket frames ([`frame`]). An upgraded connection is driven by the same reader and
//! writer as a TLS one: [`WsSession`] is a byte transform with the TLS session's shape (frames
//! in, NATS bytes out; NATS bytes in, frames out), stacked on a TLS session for `wss`. Like TLS
//! connections, WebSocket connections stay on the shard that accepted them.

pub mod accept;
pub mod frame;
pub mod upgrade;

use std::io;

use bytes::BytesMut;

use crate::client::CloseReason;
use crate::tls::{Taken, TlsSession};
use frame::{Closing, Decoder};

/// What the connection loop needs to know about the `websocket {}` port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsSettings {
    pub rules: upgrade::UpgradeRules,
    /// Deadline for the upgrade request (zero: none, as nats-server's default).
    pub handshake_timeout: std::time::Duration,
    /// Shown in client INFO (`host`, `port`): the websocket listener's.
    pub host: String,
    pub port: u16,
}

/// A WebSocket connection's framing, over plain TCP or over a TLS session.
pub struct WsSession {
    tls: Option<Box<dyn TlsSession>>,
    decoder: Decoder,
    /// Frames from TLS plaintext not yet decoded (only with TLS underneath).
    inner_plain: BytesMut,
    /// Frames to write: control answers and framed NATS bytes.
    framed: Vec<u8>,
    browser: bool,
    /// permessage-deflate: outgoing messages over 64 bytes are compressed.
    compressor: Option<frame::Compressor>,
    closed: bool,
    close_reason: Option<CloseReason>,
}

impl WsSession {
    pub fn new(
        tls: Option<Box<dyn TlsSession>>,
        masked: bool,
        browser: bool,
        compress: bool,
        max_payload: usize,
    ) -> WsSession {
        WsSession {
            tls,
            decoder: Decoder::with_compression(masked, compress, max_payload),
            compressor: compress.then(frame::Compressor::default),
            inner_plain: BytesMut::new(),
            framed: Vec::new(),
            browser,
            closed: false,
            close_reason: None,
        }
    }

    /// Decodes what `frames` hold, appending the NATS bytes to `plain`.
    pub fn decode(&mut self, frames: &[u8], plain: &mut BytesMut) -> Taken {
        let n = self.decoder.feed(frames, plain);
        if n == 0 && self.decoder.closing().is_some() {
            if let Some(Closing::ProtocolError(e)) = self.decoder.closing() {
                tracing::debug!("websocket protocol error: {e}");
            }
            return Taken::Closed;
        }
        Taken::Bytes(n)
    }
}

impl TlsSession for WsSession {
    fn take(&mut self, plain: &mut BytesMut) -> io::Result<Taken> {
        if let Some(t) = self.tls.as_mut() {
            let mut buf = std::mem::take(&mut self.inner_plain);
            let taken = t.take(&mut buf)?;
            let r = match taken {
                Taken::Closed if buf.is_empty() => Taken::Closed,
                _ => {
                    let frames = buf.split();
                    self.decode(&frames, plain)
                }
            };
            self.inner_plain = buf;
            return Ok(r);
        }
        Ok(if self.decoder.closing().is_some() {
            Taken::Closed
        } else {
            Taken::Bytes(0)
        })
    }

    fn feed(&mut self, cipher: &[u8], plain: &mut BytesMut) -> io::Result<Taken> {
        match self.tls.as_mut() {
            None => Ok(self.decode(cipher, plain)),
            Some(t) => {
                let mut buf = std::mem::take(&mut self.inner_plain);
                let taken = t.feed(cipher, &mut buf)?;
                let frames = buf.split();
                let r = self.decode(&frames, plain);
                self.inner_plain = buf;
                Ok(match (taken, r) {
                    (Taken::Closed, Taken::Bytes(0)) => Taken::Closed,
                    (_, r) => r,
                })
            }
        }
    }

    fn wants_write(&self) -> bool {
        self.decoder.has_replies() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        // Without TLS the frames are written straight into `out`; with TLS they are the
        // plaintext it seals.
        let framed = if self.tls.is_some() {
            &mut self.framed
        } else {
            &mut *out
        };
        framed.clear();
        self.decoder.take_replies(framed);
        if !plain.is_empty() && !self.closed {
            match self.compressor.as_mut() {
                Some(c) => c.encode(framed, plain, self.browser),
                None => frame::encode_data(framed, plain, self.browser),
            }
        }
        match self.tls.as_mut() {
            None => Ok(()),
            Some(t) => t.seal(&self.framed, out),
        }
    }

    fn prefix(&mut self, plain: &[u8], out: &mut Vec<u8>) -> bool {
        // Compressed or fragmented messages, and anything inside TLS, are built by `seal`.
        let whole = !self.browser || plain.len() <= frame::BROWSER_FRAME;
        if self.tls.is_some() || self.compressor.is_some() || !whole || self.closed {
            return false;
        }
        out.clear();
        self.decoder.take_replies(out);
        frame::data_header(out, plain.len());
        true
    }

    fn close_notify(&mut self) {
        if let (false, None, Some((status, text))) = (
            self.closed,
            self.decoder.closing(),
            close_status(self.close_reason),
        ) {
            let mut f = Vec::new();
            frame::close_frame(&mut f, status, text);
            // Queued like a control answer: the next seal sends it.
            self.decoder.queue_reply(&f);
        }
        self.closed = true;
        if let Some(t) = self.tls.as_mut() {
            t.close_notify();
        }
    }

    fn closing(&mut self, reason: Option<CloseReason>) {
        self.close_reason = reason;
    }
}

/// The close frame nats-server sends when it closes a WebSocket client
/// (`wsEnqueueCloseMessage`): a status for the reason, and the reason's text.
/// None where nats-server writes nothing (a protocol or read error ends the connection
/// before its close frame goes out; a client that left hears nothing).
fn close_status(reason: Option<CloseReason>) -> Option<(u16, &'static str)> {
    use CloseReason::*;
    let r = reason?;
    if matches!(
        r,
        ProtocolViolation | ReadError | WriteError | ClientClosed | MaxPayload
    ) {
        return None;
    }
    let status = match r {
        ClientClosed => frame::CLOSE_NORMAL,
        AuthTimeout
        | AuthViolation
        | SlowConsumerPendingBytes
        | SlowConsumerWriteDeadline
        | MaxConnections => frame::CLOSE_POLICY_VIOLATION,
        ProtocolViolation => frame::CLOSE_PROTOCOL_ERROR,
        MaxPayload => frame::CLOSE_TOO_BIG,
        WriteError | ReadError | StaleConnection | ServerShutdown | DuplicateRoute => {
            frame::CLOSE_GOING_AWAY
        }
        LameDuck => frame::CLOSE_INTERNAL,
    };
    Some((status, crate::monitor::snapshot::reason_text(r)))
}
