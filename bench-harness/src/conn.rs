//! A blocking NATS client connection, one per harness thread: big socket
//! buffers, writes batched by the caller, reads parsed in place.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::wire::{self, Event};

const READ_BUF: usize = 4 * 1024 * 1024;

/// Resolves `nats://host:port` (or plain `host:port`) to a socket address.
pub fn resolve(url: &str) -> Result<SocketAddr> {
    let hostport = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tcp://"))
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
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Outbound bytes the caller appends with the `wire::encode_*` functions.
    pub wbuf: Vec<u8>,
}

impl Conn {
    /// Connects, reads INFO, sends CONNECT and waits for the PONG of a PING,
    /// so the connection is fully registered when this returns.
    pub fn connect(addr: SocketAddr, name: &str) -> Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            rbuf: vec![0; READ_BUF],
            rstart: 0,
            rend: 0,
            wbuf: Vec::with_capacity(256 * 1024),
        };
        c.set_read_timeout(Some(Duration::from_millis(100)))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got_info = false;
        while !got_info {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout("waiting for INFO".into()));
            }
            c.poll(|ev| {
                if matches!(ev, Event::Info(_)) {
                    got_info = true;
                }
                Ok(())
            })?;
        }
        wire::encode_connect(&mut c.wbuf, name);
        c.ping_pong(Duration::from_secs(5))?;
        Ok(c)
    }

    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.stream.set_read_timeout(t)?;
        Ok(())
    }

    /// Writes out everything in `wbuf`.
    pub fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Sends PING and reads until its PONG. The server answers a PING only after
    /// it has processed everything sent before it, so this is the flush barrier.
    /// Messages that arrive meanwhile are dropped: use only where none are expected.
    pub fn ping_pong(&mut self, timeout: Duration) -> Result<()> {
        wire::encode_ping(&mut self.wbuf);
        self.flush()?;
        let deadline = Instant::now() + timeout;
        let mut pong = false;
        while !pong {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout("waiting for PONG".into()));
            }
            self.poll(|ev| {
                if matches!(ev, Event::Pong) {
                    pong = true;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// One read (bounded by the read timeout), then hands every complete event
    /// to `f`. Server PINGs are answered here. `-ERR` aborts. Returns the number
    /// of events seen; 0 on timeout.
    pub fn poll<F>(&mut self, mut f: F) -> Result<usize>
    where
        F: FnMut(Event<'_>) -> Result<()>,
    {
        if self.rend == self.rbuf.len() {
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            } else {
                // One operation bigger than the buffer: grow rather than stall.
                let n = self.rbuf.len() * 2;
                self.rbuf.resize(n, 0);
            }
        }
        match self.stream.read(&mut self.rbuf[self.rend..]) {
            Ok(0) => return Err(BenchError::Closed),
            Ok(n) => self.rend += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(0)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e.into()),
        }
        let mut events = 0;
        let mut reply_pong = false;
        while let Some((ev, used)) = wire::parse(&self.rbuf[self.rstart..self.rend])? {
            events += 1;
            match ev {
                Event::Ping => reply_pong = true,
                Event::Err(msg) => {
                    return Err(BenchError::Server(
                        String::from_utf8_lossy(msg).into_owned(),
                    ))
                }
                ev => f(ev)?,
            }
            self.rstart += used;
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        if reply_pong {
            wire::encode_pong(&mut self.wbuf);
            self.flush()?;
        }
        Ok(events)
    }
}
