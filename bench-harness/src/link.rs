//! What the workloads need from a client connection, over either transport:
//! blocking std sockets (`conn::Conn`, one thread per connection) or io_uring
//! (`uring`, one ring per harness thread driving one or many connections).
//! The wire format comes from tachyon-protocol on both.

use std::time::Duration;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tachyon_protocol::json::ConnectOptions;
use tachyon_protocol::{ServerOp, ServerParser};

use crate::conn::Conn;
use crate::error::{BenchError, Result};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Whichever measured faster for the workload (README): io_uring for
    /// `conns`, std sockets for the rest.
    #[default]
    Auto,
    /// Blocking `read`/`write` on std sockets.
    Std,
    /// io_uring submissions, no executor.
    Uring,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Auto => "auto",
            Transport::Std => "std",
            Transport::Uring => "uring",
        }
    }

    /// `Auto` made concrete. One ring per thread pays where a thread drives many
    /// connections; with one connection per thread the two measured even on
    /// throughput and std sockets kept request/reply latency ~10% lower.
    pub fn for_workload(self, many_conns_per_thread: bool) -> Transport {
        match self {
            Transport::Auto if many_conns_per_thread => Transport::Uring,
            Transport::Auto => Transport::Std,
            t => t,
        }
    }
}

/// One connection whose handshake is done, driven by the thread that owns it.
pub trait Link: Sized + Send {
    /// Takes over a connection `Conn::connect` set up.
    fn adopt(c: Conn) -> Result<Self>;
    /// Outbound bytes; append with `tachyon_protocol::encode`.
    fn wbuf(&mut self) -> &mut Vec<u8>;
    /// Hands what `wbuf` holds to the kernel. With io_uring the send may still be
    /// under way when this returns; later calls keep it going in order.
    fn flush(&mut self) -> Result<()>;
    /// Waits a little for input and hands every complete op to `f`. Server PINGs
    /// are answered and `-ERR` fails here; returns how many ops were seen.
    fn poll<F: FnMut(ServerOp) -> Result<()>>(&mut self, f: F) -> Result<usize>;
    /// PING and wait for its PONG: the server has then processed everything sent
    /// before. Messages that arrive meanwhile are dropped.
    fn ping_pong(&mut self, timeout: Duration) -> Result<()>;
}

/// Many connections driven by one thread (the `conns` workload's publishers).
pub trait Fleet: Sized + Send {
    fn adopt(conns: Vec<Conn>) -> Result<Self>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn wbuf(&mut self, i: usize) -> &mut Vec<u8>;
    /// Sends what connection `i` has buffered: at once (std) or at the next
    /// `submit`, together with every other connection's (io_uring).
    fn send(&mut self, i: usize) -> Result<()>;
    fn submit(&mut self) -> Result<()>;
    /// PING on every connection and wait for every PONG.
    fn ping_all(&mut self, timeout: Duration) -> Result<()>;
}

/// CONNECT without `+OK` echoes, so only data, PINGs and PONGs come back.
pub fn connect_options(name: &str) -> ConnectOptions {
    ConnectOptions {
        verbose: false,
        pedantic: false,
        name: name.into(),
        lang: "rust".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: 1,
        echo: true,
        headers: true,
        no_responders: true,
        ..ConnectOptions::default()
    }
}

/// Payload and reply subject of a delivered message (`MSG` or `HMSG`).
pub fn message(op: &ServerOp) -> Option<(&[u8], Option<&[u8]>)> {
    match op {
        ServerOp::Msg { payload, reply, .. } => Some((payload, reply.as_deref())),
        ServerOp::HMsg {
            message,
            header_len,
            reply,
            ..
        } => Some((message.get(*header_len..)?, reply.as_deref())),
        _ => None,
    }
}

#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct Drained {
    pub ops: usize,
    pub pings: usize,
    pub pongs: u64,
}

/// Parses every complete op in `rbuf`: PINGs are counted for the caller to
/// answer, `-ERR` aborts, everything else (PONG included) goes to `f`.
pub(crate) fn drain<F>(parser: &mut ServerParser, rbuf: &mut BytesMut, f: &mut F) -> Result<Drained>
where
    F: FnMut(ServerOp) -> Result<()>,
{
    let mut d = Drained::default();
    while let Some(op) = parser.parse(rbuf)? {
        d.ops += 1;
        match op {
            ServerOp::Ping => d.pings += 1,
            ServerOp::Err(text) => {
                return Err(BenchError::Server(
                    String::from_utf8_lossy(&text).into_owned(),
                ))
            }
            ServerOp::Pong => {
                d.pongs += 1;
                f(ServerOp::Pong)?;
            }
            op => f(op)?,
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tachyon_protocol::encode;

    #[test]
    fn drain_counts_and_fails_on_err() {
        let mut p = ServerParser::new();
        let mut buf = BytesMut::from(
            &b"PING\r\nMSG a 1 2\r\nhi\r\nHMSG a 1 r 12 14\r\nNATS/1.0\r\n\r\nyo\r\nPONG\r\nMSG a"
                [..],
        );
        let mut seen = Vec::new();
        let d = drain(&mut p, &mut buf, &mut |op| {
            if let Some((pl, reply)) = message(&op) {
                seen.push((pl.to_vec(), reply.map(<[u8]>::to_vec)));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            d,
            Drained {
                ops: 4,
                pings: 1,
                pongs: 1
            }
        );
        assert_eq!(
            seen,
            vec![
                (b"hi".to_vec(), None),
                (b"yo".to_vec(), Some(b"r".to_vec()))
            ]
        );
        assert_eq!(&buf[..], b"MSG a", "a partial op stays buffered");
        let mut buf = BytesMut::from(&b"-ERR 'Authorization Violation'\r\n"[..]);
        let e = drain(&mut p, &mut buf, &mut |_| Ok(())).unwrap_err();
        assert_eq!(e.to_string(), "server said -ERR Authorization Violation");
    }

    #[test]
    fn connect_asks_for_no_echoed_oks() {
        let mut out = Vec::new();
        encode::connect(&mut out, &connect_options("x"));
        let json: serde_json::Value = serde_json::from_slice(&out[8..out.len() - 2]).unwrap();
        assert_eq!(json["verbose"], false);
        assert_eq!(json["headers"], true);
        assert_eq!(json["name"], "x");
    }
}
