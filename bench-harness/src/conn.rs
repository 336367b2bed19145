//! A blocking NATS client connection: the handshake for both transports, and
//! the std-socket transport itself (one thread per connection, writes batched
//! by the caller, reads parsed by tachyon-protocol's server parser).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tachyon_protocol::{encode, ServerOp, ServerParser};

use crate::error::{BenchError, Result};
use crate::link::{self, Fleet, Link};
use crate::ws::{self, WsCodec, WsMode};

/// Bytes one `read` may return; the parse buffer grows past it when an op is bigger.
const READ_CHUNK: usize = 1024 * 1024;
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Resolves `nats://host:port` (or plain `host:port`) to a socket address.
pub fn resolve(url: &str) -> Result<SocketAddr> {
    let hostport = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tcp://"))
        .or_else(|| url.strip_prefix("ws://"))
        .unwrap_or(url);
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let hostport = hostport.trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .map_err(|e| BenchError::Config(format!("cannot resolve {url:?}: {e}")))?
        .next()
        .ok_or_else(|| BenchError::Config(format!("{url:?} resolves to nothing")))
}

pub struct Conn {
    stream: TcpStream,
    /// Unparsed input; the parser hands out slices of it.
    rbuf: BytesMut,
    parser: ServerParser,
    /// What `read` fills: `Read` wants initialised memory, so input is copied
    /// from here into `rbuf` (the io_uring transport receives into `rbuf` directly).
    scratch: Vec<u8>,
    /// Outbound bytes the caller appends with `tachyon_protocol::encode`.
    pub wbuf: Vec<u8>,
    /// A WebSocket connection's framing, and its frames on their way out.
    ws: Option<Box<WsCodec>>,
    framed: Vec<u8>,
}

/// A connection's parts, for a transport that takes it over.
pub struct Parts {
    pub stream: TcpStream,
    pub rbuf: BytesMut,
    pub parser: ServerParser,
    pub wbuf: Vec<u8>,
}

impl Conn {
    /// Connects, reads INFO, sends CONNECT and waits for the PONG of a PING,
    /// so the connection is fully registered when this returns.
    pub fn connect(addr: SocketAddr, name: &str) -> Result<Conn> {
        Conn::dial(addr, name, None)
    }

    /// As [`Conn::connect`], over WebSocket (`ws` workloads) when `ws` is set.
    pub fn dial(addr: SocketAddr, name: &str, ws: Option<WsMode>) -> Result<Conn> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL_TIMEOUT))?;
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let codec = match ws {
            None => None,
            Some(mode) => {
                let (mut codec, early) = ws::upgrade(&mut stream, mode, Duration::from_secs(5))?;
                codec.decode(&early, &mut rbuf)?;
                Some(Box::new(codec))
            }
        };
        let mut c = Conn {
            stream,
            rbuf,
            parser: ServerParser::new(),
            scratch: Vec::new(),
            wbuf: Vec::with_capacity(64 * 1024),
            ws: codec,
            framed: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got_info = false;
        while !got_info {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout("waiting for INFO".into()));
            }
            c.poll_once(|op| {
                got_info |= matches!(op, ServerOp::Info(_));
                Ok(())
            })?;
        }
        encode::connect(&mut c.wbuf, &link::connect_options(name));
        c.ping_pong(Duration::from_secs(5))?;
        Ok(c)
    }

    /// The parts an io_uring transport takes over; it speaks no WebSocket.
    pub fn into_parts(self) -> Result<Parts> {
        if self.ws.is_some() {
            return Err(BenchError::Config(
                "WebSocket connections run on the std transport only".into(),
            ));
        }
        Ok(Parts {
            stream: self.stream,
            rbuf: self.rbuf,
            parser: self.parser,
            wbuf: self.wbuf,
        })
    }

    /// Writes out everything in `wbuf` (as one WebSocket message on a WebSocket connection).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(ws) = self.ws.as_mut() {
            if self.wbuf.is_empty() && !ws.has_replies() {
                return Ok(());
            }
            self.framed.clear();
            ws.encode(&self.wbuf, &mut self.framed);
            self.wbuf.clear();
            self.stream.write_all(&self.framed)?;
            return Ok(());
        }
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        Ok(())
    }

    pub fn ping_pong(&mut self, timeout: Duration) -> Result<()> {
        self.wbuf.extend_from_slice(encode::PING);
        self.flush()?;
        let deadline = Instant::now() + timeout;
        let mut pong = false;
        while !pong {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout("waiting for PONG".into()));
            }
            self.poll_once(|op| {
                pong |= op == ServerOp::Pong;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// One read (bounded by the read timeout), then every complete op to `f`.
    pub fn poll_once<F>(&mut self, mut f: F) -> Result<usize>
    where
        F: FnMut(ServerOp) -> Result<()>,
    {
        if self.scratch.is_empty() {
            // Allocated on first use: a `conns` publisher never reads much.
            self.scratch = vec![0; READ_CHUNK];
        }
        match self.stream.read(&mut self.scratch) {
            Ok(0) => return Err(BenchError::Closed),
            Ok(n) => {
                let got = self.scratch.get(..n).unwrap_or_default();
                match self.ws.as_mut() {
                    Some(ws) => ws.decode(got, &mut self.rbuf)?,
                    None => self.rbuf.extend_from_slice(got),
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                // Bytes that came with a WebSocket upgrade's answer wait here unparsed.
                if self.rbuf.is_empty() {
                    return Ok(0);
                }
            }
            Err(e) => return Err(e.into()),
        }
        let d = link::drain(&mut self.parser, &mut self.rbuf, &mut f)?;
        let ws_replies = self.ws.as_ref().is_some_and(|w| w.has_replies());
        if d.pings > 0 || ws_replies {
            for _ in 0..d.pings {
                self.wbuf.extend_from_slice(encode::PONG);
            }
            self.flush()?;
        }
        Ok(d.ops)
    }
}

impl Link for Conn {
    fn adopt(c: Conn) -> Result<Self> {
        Ok(c)
    }

    fn wbuf(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    fn flush(&mut self) -> Result<()> {
        Conn::flush(self)
    }

    fn poll<F: FnMut(ServerOp) -> Result<()>>(&mut self, f: F) -> Result<usize> {
        self.poll_once(f)
    }

    fn ping_pong(&mut self, timeout: Duration) -> Result<()> {
        Conn::ping_pong(self, timeout)
    }
}

/// The std transport's fleet: one `write` per connection per flush.
impl Fleet for Vec<Conn> {
    fn adopt(conns: Vec<Conn>) -> Result<Self> {
        Ok(conns)
    }

    fn len(&self) -> usize {
        <[Conn]>::len(self)
    }

    fn wbuf(&mut self, i: usize) -> &mut Vec<u8> {
        &mut self[i].wbuf
    }

    fn send(&mut self, i: usize) -> Result<()> {
        self[i].flush()
    }

    fn submit(&mut self) -> Result<()> {
        Ok(())
    }

    fn ping_all(&mut self, timeout: Duration) -> Result<()> {
        self.iter_mut().try_for_each(|c| c.ping_pong(timeout))
    }
}
