//! A client's TLS session over rustls: the server handshake, then a [`RustlsSession`] the
//! core drives (ciphertext in, plaintext out and the reverse; `tachyon_core::tls` owns the
//! sockets, the order of things on the wire and the read/write loops).

use std::io::{self, Read, Write};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::{ClientConnection, Connection, ServerConnection};
use tachyon_core::tls::{Established, HandshakeError, Taken, TlsSession, HANDSHAKE_RECORD};

/// rustls never yields more than one record's plaintext (16 KiB) per read call.
const PLAIN_CHUNK: usize = 16 * 1024;
const CIPHER_CHUNK: usize = 32 * 1024;

/// Runs the server handshake for a new `ServerConnection` over `stream`.
pub async fn establish(
    conn: ServerConnection,
    stream: &mut TcpStream,
    pre: &[u8],
) -> Result<Established, HandshakeError> {
    let mut conn = Connection::Server(conn);
    handshake(stream, &mut conn, pre).await?;
    let cert = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| Bytes::copy_from_slice(c.as_ref()));
    Ok(Established {
        session: Box::new(RustlsSession(conn)),
        cert,
    })
}

/// Runs the client handshake for a new `ClientConnection` over `stream` (a leafnode link to a
/// hub).
pub async fn establish_client(
    conn: ClientConnection,
    stream: &mut TcpStream,
) -> Result<Established, HandshakeError> {
    let mut conn = Connection::Client(conn);
    handshake(stream, &mut conn, &[]).await?;
    Ok(Established {
        session: Box::new(RustlsSession(conn)),
        cert: None,
    })
}

/// Runs the handshake; `pre` is what the client already sent (read while deciding).
async fn handshake(
    stream: &mut TcpStream,
    conn: &mut Connection,
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
fn feed(conn: &mut Connection, mut data: &[u8]) -> Result<(), HandshakeError> {
    while !data.is_empty() {
        conn.read_tls(&mut data)?;
        conn.process_new_packets()
            .map_err(|e| HandshakeError::Tls(e.to_string()))?;
    }
    Ok(())
}

/// Moves every pending TLS record into `out` (cleared first).
fn drain(conn: &mut Connection, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

/// An established session.
pub struct RustlsSession(Connection);

impl TlsSession for RustlsSession {
    fn take(&mut self, plain: &mut BytesMut) -> io::Result<Taken> {
        take(&mut self.0, plain)
    }

    fn feed(&mut self, mut data: &[u8], plain: &mut BytesMut) -> io::Result<Taken> {
        let conn = &mut self.0;
        let mut total = 0;
        while !data.is_empty() {
            conn.read_tls(&mut data)?;
            conn.process_new_packets().map_err(io::Error::other)?;
            // rustls caps the plaintext it holds: take it out before feeding more.
            match take(conn, plain)? {
                Taken::Bytes(n) => total += n,
                Taken::Closed if total == 0 => return Ok(Taken::Closed),
                Taken::Closed => break,
            }
        }
        Ok(Taken::Bytes(total))
    }

    fn wants_write(&self) -> bool {
        self.0.wants_write()
    }

    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let conn = &mut self.0;
        out.clear();
        let mut rest = plain;
        while !rest.is_empty() {
            let n = conn.writer().write(rest)?;
            rest = &rest[n..];
            while conn.wants_write() {
                conn.write_tls(out)?;
            }
        }
        while conn.wants_write() {
            conn.write_tls(out)?;
        }
        Ok(())
    }

    fn close_notify(&mut self) {
        self.0.send_close_notify();
    }
}

/// Appends every plaintext byte rustls holds to `plain`.
fn take(conn: &mut Connection, plain: &mut BytesMut) -> io::Result<Taken> {
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
