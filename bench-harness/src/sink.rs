//! A TCP sink that speaks just enough NATS for a publisher (INFO, PONG) and
//! throws everything else away: `run pub` against it measures the harness's
//! own ceiling.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memchr::memchr;
use tracing::debug;

use crate::error::Result;

#[derive(Default)]
pub struct SinkCounters {
    pub msgs: AtomicU64,
    pub bytes: AtomicU64,
}

pub struct Sink {
    pub addr: SocketAddr,
    pub counters: Arc<SinkCounters>,
}

/// Binds `addr` (port 0 for a free one) and serves every connection on its own thread.
pub fn start(addr: &str) -> Result<Sink> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let counters = Arc::new(SinkCounters::default());
    let c2 = counters.clone();
    std::thread::Builder::new()
        .name("sink-accept".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let c = c2.clone();
                let _ = std::thread::Builder::new()
                    .name("sink-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(stream, local, &c) {
                            debug!("sink connection ended: {e}");
                        }
                    });
            }
        })?;
    Ok(Sink {
        addr: local,
        counters,
    })
}

/// Where one client operation ends, or `None` if it is not all here yet.
/// Returns (bytes used, is PING, is a message).
pub fn client_op(buf: &[u8]) -> Option<(usize, bool, bool)> {
    let nl = memchr(b'\n', buf)?;
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let op_end = line.iter().position(|c| *c == b' ').unwrap_or(line.len());
    let op = &line[..op_end];
    if op.eq_ignore_ascii_case(b"PUB") || op.eq_ignore_ascii_case(b"HPUB") {
        // The payload length is the last field for both (HPUB: total length).
        let len: usize = line
            .rsplit(|c| *c == b' ')
            .next()
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|s| s.parse().ok())?;
        let end = nl + 1 + len + 2;
        return (buf.len() >= end).then_some((end, false, true));
    }
    Some((nl + 1, op.eq_ignore_ascii_case(b"PING"), false))
}

fn serve(mut s: TcpStream, local: SocketAddr, c: &SinkCounters) -> Result<()> {
    s.set_nodelay(true)?;
    let info = format!(
        "INFO {{\"server_id\":\"tachyon-bench-sink\",\"server_name\":\"sink\",\"version\":\"2.12.0\",\"proto\":1,\"host\":\"{}\",\"port\":{},\"headers\":true,\"max_payload\":1048576}}\r\n",
        local.ip(),
        local.port()
    );
    s.write_all(info.as_bytes())?;
    let mut buf = vec![0u8; 4 * 1024 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        if end == buf.len() {
            if start == 0 {
                let n = buf.len() * 2;
                buf.resize(n, 0);
            } else {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
        }
        let n = match s.read(&mut buf[end..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        end += n;
        c.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let mut pongs = 0;
        let mut msgs = 0;
        while let Some((used, ping, msg)) = client_op(&buf[start..end]) {
            start += used;
            pongs += usize::from(ping);
            msgs += u64::from(msg);
        }
        if start == end {
            start = 0;
            end = 0;
        }
        c.msgs.fetch_add(msgs, Ordering::Relaxed);
        for _ in 0..pongs {
            s.write_all(b"PONG\r\n")?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ops_are_framed() {
        let buf =
            b"CONNECT {}\r\nPUB a 5\r\nPING!\r\nHPUB b 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n";
        let mut off = 0;
        let mut got = Vec::new();
        while let Some((used, ping, msg)) = client_op(&buf[off..]) {
            got.push((ping, msg));
            off += used;
        }
        assert_eq!(off, buf.len());
        // The payload "PING!" must not count as a PING.
        assert_eq!(
            got,
            vec![(false, false), (false, true), (false, true), (true, false)]
        );
        assert_eq!(client_op(b"PUB a 5\r\nhel"), None);
    }
}
