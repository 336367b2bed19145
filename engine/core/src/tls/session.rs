//! One client's TLS session, split between the connection's two tasks.
//!
//! The handshake runs to completion in [`accept`] before the reader and writer start, as in
//! nats-server. After it, one rustls `ServerConnection` sits in an `Rc<RefCell<..>>` shared by a
//! [`TlsReader`] (feeds ciphertext in, takes plaintext out into the parser's buffer) and a
//! [`TlsWriter`] (encrypts the outbound batch, hands back ciphertext to write). Every borrow ends
//! before the caller's next `.await`: both halves return plain slices or counts.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::ServerConnection;

use super::{CertIdentity, ServerTls};
use crate::signal::LocalSignal;

/// rustls never yields more than one record's plaintext (16 KiB) per read call.
const PLAIN_CHUNK: usize = 16 * 1024;
const CIPHER_CHUNK: usize = 32 * 1024;
/// The first byte of a TLS handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("i/o timeout")]
    Timeout,
    #[error("connection closed during handshake")]
    Eof,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
}

/// A finished handshake: the two halves and, when the client presented one, its certificate's
/// identity.
pub struct Accepted {
    pub reader: TlsReader,
    pub writer: TlsWriter,
    pub identity: Option<CertIdentity>,
}

/// How a client on a TLS-enabled port turned out to talk.
pub enum Start {
    Tls(Accepted),
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
    tls: &ServerTls,
    info: &[u8],
    info_first: &[u8],
) -> Result<Start, HandshakeError> {
    let mut conn = ServerConnection::new(tls.config.clone())?;
    let mut first = tls.handshake_first;
    let mut pre = Vec::new();
    if first && !tls.fallback.is_zero() {
        match read_within(stream, tls.fallback).await? {
            Some(bytes) => pre = bytes,
            None => first = false,
        }
    }
    if !first {
        stream.write_all(info).await?;
        if tls.allow_non_tls {
            match read_within(stream, tls.timeout).await? {
                Some(bytes) if bytes[0] == HANDSHAKE_RECORD => pre = bytes,
                Some(bytes) => return Ok(Start::Plain(bytes)),
                None => return Ok(Start::Plain(Vec::new())),
            }
        }
    }
    let deadline = async {
        glommio::timer::sleep(tls.timeout).await;
        Err(HandshakeError::Timeout)
    };
    futures_lite::future::or(handshake(stream, &mut conn, &pre), deadline).await?;
    let mut writer_out = Vec::new();
    if first {
        conn.writer().write_all(info_first)?;
        drain(&mut conn, &mut writer_out)?;
        stream.write_all(&writer_out).await?;
    }
    let identity = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|cert| CertIdentity::from_der(cert));
    let shared = Rc::new(RefCell::new(conn));
    Ok(Start::Tls(Accepted {
        reader: TlsReader {
            conn: shared.clone(),
            cipher: vec![0; CIPHER_CHUNK],
        },
        writer: TlsWriter {
            conn: shared,
            out: writer_out,
        },
        identity,
    }))
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

/// Runs the handshake; `pre` is what the client already sent (read while deciding).
async fn handshake(
    stream: &mut TcpStream,
    conn: &mut ServerConnection,
    pre: &[u8],
) -> Result<(), HandshakeError> {
    let mut buf = vec![0; CIPHER_CHUNK];
    let mut out = Vec::new();
    let mut spoke_tls = pre.first() == Some(&HANDSHAKE_RECORD);
    let mut pending = pre;
    while conn.is_handshaking() {
        if conn.wants_write() {
            drain(conn, &mut out)?;
            stream.write_all(&out).await?;
            continue;
        }
        let data = if pending.is_empty() {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(HandshakeError::Eof);
            }
            &buf[..n]
        } else {
            std::mem::take(&mut pending)
        };
        if !spoke_tls {
            spoke_tls = data[0] == HANDSHAKE_RECORD;
        }
        if let Err(e) = feed(conn, data) {
            // A TLS client is told why (bad certificate, ...); a plaintext one gets nothing,
            // as from nats-server, rather than binary alert bytes.
            if spoke_tls && conn.wants_write() && drain(conn, &mut out).is_ok() {
                let _ = stream.write_all(&out).await;
            }
            return Err(e);
        }
    }
    if conn.wants_write() {
        drain(conn, &mut out)?;
        stream.write_all(&out).await?;
    }
    Ok(())
}

/// Hands ciphertext to rustls and processes it. rustls takes at most its buffer's worth per
/// call, so this loops until the whole slice is in.
fn feed(conn: &mut ServerConnection, mut data: &[u8]) -> Result<(), HandshakeError> {
    while !data.is_empty() {
        conn.read_tls(&mut data)?;
        conn.process_new_packets()?;
    }
    Ok(())
}

/// Moves every pending TLS record into `out` (cleared first).
fn drain(conn: &mut ServerConnection, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// The reader task's half.
pub struct TlsReader {
    conn: Rc<RefCell<ServerConnection>>,
    cipher: Vec<u8>,
}

impl TlsReader {
    /// Reads from the socket until some plaintext is available and appends it to `plain`.
    /// `Ok(0)` means the client closed (close_notify or end of stream). TLS bytes rustls wants
    /// sent in answer (alerts, key updates) wake the writer through `wake`.
    pub async fn read_into(
        &mut self,
        stream: &mut TcpStream,
        plain: &mut BytesMut,
        wake: &LocalSignal,
    ) -> io::Result<usize> {
        loop {
            match take(&mut self.conn.borrow_mut(), plain)? {
                Taken::Closed => return Ok(0),
                Taken::Bytes(n) if n > 0 => return Ok(n),
                Taken::Bytes(_) => {}
            }
            let n = stream.read(&mut self.cipher).await?;
            if n == 0 {
                return Ok(0);
            }
            let mut data = &self.cipher[..n];
            let mut total = 0;
            let mut conn = self.conn.borrow_mut();
            while !data.is_empty() {
                let fed = conn.read_tls(&mut data).and_then(|_| {
                    conn.process_new_packets()
                        .map(|_| ())
                        .map_err(io::Error::other)
                });
                if let Err(e) = fed {
                    if conn.wants_write() {
                        wake.raise();
                    }
                    return Err(e);
                }
                // rustls caps the plaintext it holds: take it out before feeding more.
                match take(&mut conn, plain)? {
                    Taken::Bytes(n) => total += n,
                    // What came before the close_notify is parsed; the next call ends it.
                    Taken::Closed => break,
                }
            }
            if conn.wants_write() {
                wake.raise();
            }
            if total > 0 {
                return Ok(total);
            }
        }
    }
}

enum Taken {
    Bytes(usize),
    /// The client sent close_notify and every byte before it was taken.
    Closed,
}

/// Appends every plaintext byte rustls holds to `plain`.
fn take(conn: &mut ServerConnection, plain: &mut BytesMut) -> io::Result<Taken> {
    let mut total = 0;
    loop {
        let at = plain.len();
        plain.resize(at + PLAIN_CHUNK, 0);
        let r = conn.reader().read(&mut plain[at..]);
        match r {
            Ok(0) => {
                plain.truncate(at);
                return Ok(if total > 0 {
                    Taken::Bytes(total)
                } else {
                    Taken::Closed
                });
            }
            Ok(n) => {
                plain.truncate(at + n);
                total += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                plain.truncate(at);
                return Ok(Taken::Bytes(total));
            }
            Err(e) => {
                plain.truncate(at);
                return Err(e);
            }
        }
    }
}

/// The writer task's half.
pub struct TlsWriter {
    conn: Rc<RefCell<ServerConnection>>,
    out: Vec<u8>,
}

impl TlsWriter {
    /// Encrypts `plain` and returns the ciphertext to write, along with any other records
    /// rustls had queued.
    pub fn seal(&mut self, plain: &[u8]) -> io::Result<&[u8]> {
        let mut conn = self.conn.borrow_mut();
        self.out.clear();
        let mut rest = plain;
        while !rest.is_empty() {
            let n = conn.writer().write(rest)?;
            rest = &rest[n..];
            while conn.wants_write() {
                conn.write_tls(&mut self.out)?;
            }
        }
        while conn.wants_write() {
            conn.write_tls(&mut self.out)?;
        }
        Ok(&self.out)
    }

    /// Whether rustls has records to send that no plaintext asked for (alerts, tickets).
    pub fn wants_write(&self) -> bool {
        self.conn.borrow().wants_write()
    }

    /// The records `wants_write` announced.
    pub fn pending(&mut self) -> io::Result<&[u8]> {
        self.seal(&[])
    }

    /// A close_notify alert, sent before the socket is shut down like Go's `tls.Conn.Close`.
    pub fn close_notify(&mut self) -> io::Result<&[u8]> {
        self.conn.borrow_mut().send_close_notify();
        self.seal(&[])
    }
}
