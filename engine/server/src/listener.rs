//! The client port: one `SO_REUSEPORT` listener per shard, so the kernel spreads connections.
//!
//! `SO_REUSEPORT` alone would let a second Tachyon started on the same port join the group and
//! take part of the connections (each process then sees only some clients: messages between
//! them vanish). nats-server refuses a busy port, so before the group is bound a probe socket
//! without `SO_REUSEPORT` claims the port: it fails on a port anyone listens on, ours included.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{IntoRawFd, RawFd};

use socket2::{Domain, Socket, Type};

/// Why the client port could not be opened; the texts are nats-server's.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("unable to resolve listen address {0}: {1}")]
    Resolve(String, std::io::Error),
    /// `Error listening on port: HOST:PORT, "listen tcp HOST:PORT: bind: address already in use"`
    #[error("Error listening on port: {display}, \"{}\"", go_op_error("listen", &format!("tcp {display}"), op, error))]
    Listen {
        display: String,
        op: &'static str,
        error: std::io::Error,
    },
}

/// Go's `net.OpError` text for a failed system call: `listen tcp ADDR: bind: <errno text>`.
pub fn go_op_error(what: &str, target: &str, syscall: &str, e: &std::io::Error) -> String {
    format!("{what} {target}: {syscall}: {}", go_errno_text(e))
}

/// An OS error as Go prints a `syscall.Errno`: the C library's text, lower-case first letter,
/// without Rust's " (os error N)".
pub fn go_errno_text(e: &std::io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let full = std::io::Error::from_raw_os_error(code).to_string();
    let text = full
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&full);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `HOST:PORT` as Go's `net.JoinHostPort` writes it (IPv6 hosts in brackets).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Binds `n` listeners on `host:port` (port 0: one the kernel picks, shared by all) and returns
/// their descriptors and the bound address.
pub fn bind_listeners(
    host: &str,
    port: u16,
    n: usize,
) -> Result<(Vec<RawFd>, SocketAddr), ListenError> {
    let display = host_port(host, port);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| ListenError::Resolve(display.clone(), e))?
        .next()
        .ok_or_else(|| {
            ListenError::Resolve(display.clone(), std::io::Error::other("no address"))
        })?;
    let fail = |op, error| ListenError::Listen {
        display: display.clone(),
        op,
        error,
    };
    // A process killed a moment ago still holds its listeners until the kernel has torn down
    // its io_uring instance (measured: 7-13 ms after `kill -9`, more under load): a supervisor
    // restarting at once must not fail on that, as nats-server does not. A port a live
    // process listens on fails after this short wait.
    let deadline = std::time::Instant::now() + LINGER;
    loop {
        match bind_all(addr, n) {
            Err((_, e))
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err((op, e)) => return Err(fail(op, e)),
            Ok((socks, bound)) => {
                return Ok((
                    socks.into_iter().map(IntoRawFd::into_raw_fd).collect(),
                    bound,
                ))
            }
        }
    }
}

/// How long a busy port is retried at start.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// The probe, then the group; everything bound so far is closed on failure.
fn bind_all(addr: SocketAddr, n: usize) -> Result<(Vec<Socket>, SocketAddr), SysError> {
    if addr.port() != 0 {
        probe_exclusive(addr)?;
    }
    let mut socks = Vec::with_capacity(n);
    let mut bound = addr;
    for _ in 0..n {
        let sock = open(bound)?;
        if bound.port() == 0 {
            // Every shard's listener must share the port the first one was given.
            if let Some(a) = sock.local_addr().ok().and_then(|a| a.as_socket()) {
                bound.set_port(a.port());
            }
        }
        socks.push(sock);
    }
    Ok((socks, bound))
}

/// The system call that failed and how.
type SysError = (&'static str, std::io::Error);

/// Fails with `EADDRINUSE` when something listens on `addr` already, even with `SO_REUSEPORT`.
fn probe_exclusive(addr: SocketAddr) -> Result<(), SysError> {
    bound(addr, false).map(drop)
}

/// One shard's listener, in the group sharing `addr`.
fn open(addr: SocketAddr) -> Result<Socket, SysError> {
    let sock = bound(addr, true)?;
    sock.listen(4096).map_err(|e| ("listen", e))?;
    sock.set_nonblocking(true).map_err(|e| ("setnonblock", e))?;
    Ok(sock)
}

/// A TCP socket bound to `addr`, with `SO_REUSEADDR` as Go sets it (connections of a previous
/// run in TIME_WAIT do not count) and, for IPv6, dual-stack.
fn bound(addr: SocketAddr, reuse_port: bool) -> Result<Socket, SysError> {
    let sock =
        Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(|e| ("socket", e))?;
    sock.set_reuse_address(true)
        .map_err(|e| ("setsockopt", e))?;
    if reuse_port {
        sock.set_reuse_port(true).map_err(|e| ("setsockopt", e))?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(false).map_err(|e| ("setsockopt", e))?;
    }
    sock.bind(&addr.into()).map_err(|e| ("bind", e))?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_go_style() {
        let e = std::io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(go_errno_text(&e), "address already in use");
        assert_eq!(
            go_op_error("listen", "tcp 0.0.0.0:4222", "bind", &e),
            "listen tcp 0.0.0.0:4222: bind: address already in use"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(host_port("::", 4222), "[::]:4222");
        assert_eq!(host_port("127.0.0.1", 4222), "127.0.0.1:4222");
    }

    #[test]
    fn a_second_group_on_a_busy_port_is_refused() {
        let (fds, bound) = match bind_listeners("127.0.0.1", 0, 2) {
            Ok(v) => v,
            Err(e) => panic!("bind: {e}"),
        };
        assert_eq!(fds.len(), 2);
        let err = match bind_listeners("127.0.0.1", bound.port(), 2) {
            Ok(_) => panic!("a second SO_REUSEPORT group joined port {}", bound.port()),
            Err(e) => e.to_string(),
        };
        let p = bound.port();
        assert_eq!(
            err,
            format!(
                "Error listening on port: 127.0.0.1:{p}, \
                 \"listen tcp 127.0.0.1:{p}: bind: address already in use\""
            )
        );
        for fd in fds {
            // SAFETY: each fd came from `into_raw_fd` above and is closed exactly once here.
            unsafe {
                libc::close(fd);
            }
        }
        // Once the first group is gone the port is free again.
        match bind_listeners("127.0.0.1", p, 1) {
            Ok((fds, _)) => fds.into_iter().for_each(|fd| {
                // SAFETY: as above.
                unsafe {
                    libc::close(fd);
                }
            }),
            Err(e) => panic!("port {p} still refused after close: {e}"),
        }
    }
}
