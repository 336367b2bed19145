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

pub use tachyon_core::gotext::{host_port, op_error as go_op_error};

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
    if let Some(first) = socks.first() {
        seal(first, n).map_err(|e| ("setsockopt", e))?;
    }
    Ok((socks, bound))
}

/// Steers each new connection to listener `random % n` of the group (the order sockets joined
/// it), instead of the kernel's hash over every member: a socket that joins after ours has an
/// index of `n` or more and is never picked. A program's answer past the group falls back to
/// that hash, so it must stay below `n`, which the modulo guarantees. Spread stays uniform, as
/// with the hash.
fn seal(sock: &Socket, n: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let n = u32::try_from(n.max(1)).map_err(|_| std::io::Error::other("too many listeners"))?;
    // SKF_AD_OFF + SKF_AD_RANDOM: a load of this offset yields a random 32-bit number.
    const LOAD_RANDOM: u32 = (-0x1000i32) as u32 + 56;
    let mut program = [
        bpf_stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, LOAD_RANDOM),
        bpf_stmt(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, n),
        bpf_stmt(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies the
    // program and reads exactly `len` instructions. The descriptor is the open socket `sock`.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&prog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn bpf_stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
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

    /// A process of the same user may join the group with `SO_REUSEPORT` after it was bound;
    /// it gets none of the connections.
    #[test]
    fn a_socket_that_joins_later_gets_no_connection() {
        let (fds, bound) = match bind_listeners("127.0.0.1", 0, 3) {
            Ok(v) => v,
            Err(e) => panic!("bind: {e}"),
        };
        let intruder = match bound_then_listen(bound) {
            Ok(s) => s,
            Err(e) => panic!("a later SO_REUSEPORT socket could not even join: {e:?}"),
        };
        let clients: Vec<_> = (0..64)
            .map(|_| match std::net::TcpStream::connect(bound) {
                Ok(c) => c,
                Err(e) => panic!("connect {bound}: {e}"),
            })
            .collect();
        let mut ours = 0;
        for &fd in &fds {
            // SAFETY: `fd` is one of our open, nonblocking listeners; accept4 writes nothing
            // through the null address pointers.
            loop {
                let c = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), 0) };
                if c < 0 {
                    break;
                }
                ours += 1;
                // SAFETY: `c` was just accepted and is closed once.
                unsafe {
                    libc::close(c);
                }
            }
        }
        let stolen = std::iter::from_fn(|| intruder.accept().ok()).count();
        assert_eq!((ours, stolen), (clients.len(), 0));
        for fd in fds {
            // SAFETY: each fd came from `into_raw_fd` above and is closed exactly once here.
            unsafe {
                libc::close(fd);
            }
        }
    }

    fn bound_then_listen(addr: SocketAddr) -> Result<Socket, SysError> {
        let s = bound(addr, true)?;
        s.listen(128).map_err(|e| ("listen", e))?;
        s.set_nonblocking(true).map_err(|e| ("setnonblock", e))?;
        Ok(s)
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
