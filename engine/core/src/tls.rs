//! Client TLS as the shard core drives it. The order of things on the wire is nats-server's
//! and lives here ([`accept`]: INFO first or handshake first, the fallback delay, telling a
//! plaintext client from a TLS one under `allow_non_tls`), as do the read and write loops of an
//! established session ([`TlsReader`], [`TlsWriter`]). The cryptography is a [`TlsAcceptor`]
//! the server plugs in (rustls, in `tachyon-auth`); the core never links a TLS library.
//!
//! A plaintext connection never touches this module after accept: the reader and writer pick
//! their path once per connection, so the per-message path of a plain client is unchanged.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::signal::LocalSignal;

const CIPHER_CHUNK: usize = 32 * 1024;
/// The first byte of a TLS handshake record.
pub const HANDSHAKE_RECORD: u8 = 0x16;

/// How clients meet TLS on this server (`tls {}` and `allow_non_tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Handshake deadline; the connection is closed when it passes.
    pub timeout: Duration,
    /// Handshake before INFO (clients' `tls_first`).
    pub handshake_first: bool,
    /// With `handshake_first`: a client silent this long gets INFO first after all (zero: never).
    pub fallback: Duration,
    /// Plaintext clients are served too.
    pub allow_non_tls: bool,
    /// Client certificates are required (INFO's `tls_verify`).
    pub verify: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("i/o timeout")]
    Timeout,
    #[error("connection closed during handshake")]
    Eof,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Tls(String),
}

/// A boxed future borrowing the connection: one per handshake, never per message.
pub type Handshake<'a> = Pin<Box<dyn Future<Output = Result<Established, HandshakeError>> + 'a>>;

/// The server side of TLS: settings, and the handshake itself.
pub trait TlsAcceptor: Send + Sync + std::fmt::Debug {
    fn settings(&self) -> &TlsSettings;
    /// Runs the server handshake to completion over `stream`; `pre` is what the client already
    /// sent. Writes nothing once it failed on a client that did not speak TLS.
    fn handshake<'a>(&'a self, stream: &'a mut TcpStream, pre: &'a [u8]) -> Handshake<'a>;
}

/// The client side of TLS (a leafnode link to a hub that wants TLS): the handshake over a
/// connected stream, as a client of `server_name`.
pub trait TlsConnector: Send + Sync + std::fmt::Debug {
    /// The handshake's deadline.
    fn timeout(&self) -> Duration;
    fn connect<'a>(&'a self, stream: &'a mut TcpStream, server_name: &'a str) -> Handshake<'a>;
}

/// An established session: ciphertext in, plaintext out and the reverse. Shared by a
/// connection's reader and writer (`Rc<RefCell<..>>`, never borrowed across an await).
pub trait TlsSession {
    /// Appends the plaintext the session holds to `plain`.
    fn take(&mut self, plain: &mut BytesMut) -> io::Result<Taken>;
    /// Processes ciphertext the client sent, appending the plaintext it yields.
    fn feed(&mut self, cipher: &[u8], plain: &mut BytesMut) -> io::Result<Taken>;
    /// Records to send that no plaintext asked for (alerts, key updates, tickets).
    fn wants_write(&self) -> bool;
    /// Encrypts `plain` (possibly empty) into `out` (cleared first), with any queued records.
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()>;
    /// Queues a close_notify alert, sent before the socket is shut down.
    fn close_notify(&mut self);
    /// Why the server closes the connection, told before [`TlsSession::close_notify`] (a
    /// WebSocket close frame says it; TLS has nothing to say).
    fn closing(&mut self, _reason: Option<crate::client::CloseReason>) {}
    /// For a session that only frames `plain` (WebSocket without TLS or compression): puts
    /// what goes on the wire before `plain` into `out` (cleared first) and says true, so
    /// `plain` is written as it is, after it, instead of being copied by [`TlsSession::seal`].
    fn prefix(&mut self, _plain: &[u8], _out: &mut Vec<u8>) -> bool {
        false
    }
}

pub enum Taken {
    Bytes(usize),
    /// The client sent close_notify and every byte before it was taken.
    Closed,
}

/// What a finished handshake hands back.
pub struct Established {
    pub session: Box<dyn TlsSession>,
    /// The client's verified certificate (DER), if it presented one.
    pub cert: Option<Bytes>,
}

/// A reader and writer sharing `session` (an established TLS session, or a WebSocket one).
pub fn split(session: Box<dyn TlsSession>) -> (TlsReader, TlsWriter) {
    let shared: Rc<RefCell<Box<dyn TlsSession>>> = Rc::new(RefCell::new(session));
    (
        TlsReader {
            session: shared.clone(),
            cipher: vec![0; CIPHER_CHUNK],
        },
        TlsWriter {
            session: shared,
            out: Vec::new(),
        },
    )
}

/// How a client on a TLS-enabled port turned out to talk.
pub enum Start {
    Tls {
        reader: TlsReader,
        writer: TlsWriter,
        cert: Option<Bytes>,
    },
    /// A plaintext client, served because `allow_non_tls` is on: INFO was sent, and these
    /// bytes it sent already go to the parser first.
    Plain(Vec<u8>),
}

/// Sends INFO and performs the server handshake in nats-server's order:
/// - INFO in plaintext, then the handshake;
/// - with `handshake_first`, the handshake then `info_first` (which says `tls_required`)
///   encrypted; with a fallback delay, a client that sends nothing for that long gets INFO
///   first after all;
/// - with `allow_non_tls` (INFO-first only), the client's first byte picks: a TLS handshake
///   record starts the handshake, anything else (or nothing within the TLS timeout) is a
///   plaintext client.
///
/// On error nothing more is written: nats-server closes a client that failed its handshake
/// without a word.
pub async fn accept(
    stream: &mut TcpStream,
    tls: &dyn TlsAcceptor,
    info: &[u8],
    info_first: &[u8],
) -> Result<Start, HandshakeError> {
    let s = tls.settings();
    let mut first = s.handshake_first;
    let mut pre = Vec::new();
    if first && !s.fallback.is_zero() {
        match read_within(stream, s.fallback).await? {
            Some(bytes) => pre = bytes,
            None => first = false,
        }
    }
    if !first {
        stream.write_all(info).await?;
        if s.allow_non_tls {
            match read_within(stream, s.timeout).await? {
                Some(bytes) if bytes[0] == HANDSHAKE_RECORD => pre = bytes,
                Some(bytes) => return Ok(Start::Plain(bytes)),
                None => return Ok(Start::Plain(Vec::new())),
            }
        }
    }
    let deadline = async {
        glommio::timer::sleep(s.timeout).await;
        Err(HandshakeError::Timeout)
    };
    let Established { mut session, cert } =
        futures_lite::future::or(tls.handshake(stream, &pre), deadline).await?;
    let mut out = Vec::new();
    if first {
        session.seal(info_first, &mut out)?;
        stream.write_all(&out).await?;
    }
    let shared: Rc<RefCell<Box<dyn TlsSession>>> = Rc::new(RefCell::new(session));
    Ok(Start::Tls {
        reader: TlsReader {
            session: shared.clone(),
            cipher: vec![0; CIPHER_CHUNK],
        },
        writer: TlsWriter {
            session: shared,
            out,
        },
        cert,
    })
}

/// What the client sends within `limit`: `None` if it sent nothing. The read times out in
/// the kernel's ring (no cancelled read that could swallow bytes).
async fn read_within(
    stream: &mut TcpStream,
    limit: Duration,
) -> Result<Option<Vec<u8>>, HandshakeError> {
    stream
        .set_read_timeout(Some(limit))
        .map_err(io::Error::from)?;
    let mut buf = vec![0; CIPHER_CHUNK];
    let got = stream.read(&mut buf).await;
    stream.set_read_timeout(None).map_err(io::Error::from)?;
    match got {
        Ok(0) => Err(HandshakeError::Eof),
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The reader task's half.
pub struct TlsReader {
    session: Rc<RefCell<Box<dyn TlsSession>>>,
    cipher: Vec<u8>,
}

impl TlsReader {
    /// Reads from the socket until some plaintext is available and appends it to `plain`.
    /// `Ok(0)` means the client closed (close_notify or end of stream). TLS bytes the session
    /// wants sent in answer (alerts, key updates) wake the writer through `wake`.
    pub async fn read_into(
        &mut self,
        socket: &crate::socket::Socket,
        plain: &mut BytesMut,
        wake: &LocalSignal,
    ) -> io::Result<usize> {
        loop {
            match self.session.borrow_mut().take(plain)? {
                Taken::Closed => return Ok(0),
                Taken::Bytes(n) if n > 0 => return Ok(n),
                Taken::Bytes(_) => {}
            }
            let n = socket.read(&mut self.cipher).await?;
            if n == 0 {
                return Ok(0);
            }
            let fed = self.session.borrow_mut().feed(&self.cipher[..n], plain);
            if self.session.borrow().wants_write() {
                wake.raise();
            }
            match fed? {
                Taken::Bytes(total) if total > 0 => return Ok(total),
                // What came before the close_notify is parsed; the next call ends it.
                Taken::Bytes(_) | Taken::Closed => {}
            }
        }
    }
}

/// The writer task's half.
pub struct TlsWriter {
    session: Rc<RefCell<Box<dyn TlsSession>>>,
    out: Vec<u8>,
}

impl TlsWriter {
    /// Encrypts `plain` and returns the ciphertext to write, along with any other records
    /// the session had queued.
    pub fn seal(&mut self, plain: &[u8]) -> io::Result<&[u8]> {
        self.session.borrow_mut().seal(plain, &mut self.out)?;
        Ok(&self.out)
    }

    /// What to write before `plain` when the session sends `plain` itself unchanged
    /// ([`TlsSession::prefix`]); `None` when [`TlsWriter::seal`] must transform it.
    pub fn prefix(&mut self, plain: &[u8]) -> Option<&[u8]> {
        let framed = self.session.borrow_mut().prefix(plain, &mut self.out);
        framed.then_some(&self.out[..])
    }

    pub fn wants_write(&self) -> bool {
        self.session.borrow().wants_write()
    }

    /// The records `wants_write` announced.
    pub fn pending(&mut self) -> io::Result<&[u8]> {
        self.seal(&[])
    }

    /// A close_notify alert, sent before the socket is shut down like Go's `tls.Conn.Close`.
    pub fn close_notify(&mut self) -> io::Result<&[u8]> {
        self.session.borrow_mut().close_notify();
        self.seal(&[])
    }

    /// As [`TlsWriter::close_notify`], saying why first.
    pub fn close_for(&mut self, reason: Option<crate::client::CloseReason>) -> io::Result<&[u8]> {
        self.session.borrow_mut().closing(reason);
        self.session.borrow_mut().close_notify();
        self.seal(&[])
    }
}
