//! One client socket shared by its reader and writer tasks, on one descriptor.
//!
//! The two tasks used to hold a descriptor each (the writer's a `dup`), so a connection cost two
//! of the process's file descriptors and half as many clients fit under a given limit. glommio's
//! stream keeps separate readiness sources and timers for its two directions, so both tasks can
//! poll it; each poll borrows it only for the poll itself, never across an `.await`.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

/// A handle on the connection's socket; clones share it. The descriptor closes when the last
/// handle goes.
#[derive(Clone)]
pub struct Socket {
    stream: Rc<RefCell<TcpStream>>,
    fd: RawFd,
}

impl Socket {
    pub fn new(stream: TcpStream) -> Socket {
        let fd = stream.as_raw_fd();
        Socket {
            stream: Rc::new(RefCell::new(stream)),
            fd,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Reads into uninitialised spare capacity (see `ReadWindow`); the count written.
    pub async fn read_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        poll_fn(|cx| self.stream.borrow_mut().poll_read_uninit(cx, buf)).await
    }

    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf)).await
    }

    /// One write: what the socket took (possibly less than `buf`).
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)).await
    }

    /// One write of `head` followed by `body`, as if they were one buffer (a WebSocket frame
    /// header and the bytes it frames, never copied together): what the socket took of both.
    /// When the socket has no room, waits through an ordinary write of `head`.
    pub async fn write_two(&self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        if head.is_empty() {
            return self.write(body).await;
        }
        match send_two_now(self.fd, head, body) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.write(head).await,
            r => r,
        }
    }

    /// Shuts the socket down both ways (the reader's pending read returns); the descriptor
    /// stays open until the last handle goes, so its number cannot be reused meanwhile.
    pub fn shutdown(&self) {
        // SAFETY: shutdown on a descriptor this handle keeps open has no memory effects.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }
}

/// A non-blocking `sendmsg` of two buffers, as glommio's own writes start with a non-blocking
/// `send` before waiting on the ring.
fn send_two_now(fd: RawFd, head: &[u8], body: &[u8]) -> io::Result<usize> {
    let mut iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is valid (no name, no control data); it points at `iov`,
    // which outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `fd` is this socket's open descriptor (the handle keeps it open); the iovecs
    // point at `head` and `body`, borrowed for the call, and the kernel only reads them.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// A listener for the server-to-server ports (routes, leafnodes), with `SO_REUSEADDR` as
/// nats-server's (Go's) listeners have it: a port whose earlier connections sit in TIME_WAIT
/// (a peer restarted a moment ago) binds at once. glommio's own `bind` does not set it.
pub fn listen_reusable(host: &str, port: u16) -> io::Result<glommio::net::TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // std sets SO_REUSEADDR on Unix listeners.
    let l = std::net::TcpListener::bind((host, port))?;
    l.set_nonblocking(true)?;
    let fd = l.into_raw_fd();
    // SAFETY: `fd` is the listening socket just created above, released by `into_raw_fd`, so
    // the glommio listener is its only owner and closes it.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(fd) })
}

/// Dials `host:port` (its first address) for a server-to-server link, within `timeout`, with
/// Nagle off.
pub async fn dial(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> io::Result<(TcpStream, std::net::SocketAddr)> {
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("no address"))?;
    let connect = async { TcpStream::connect(addr).await.map_err(io::Error::from) };
    let expire = async {
        glommio::timer::sleep(timeout).await;
        Err(io::ErrorKind::TimedOut.into())
    };
    let stream = futures_lite::future::or(connect, expire).await?;
    let _ = stream.set_nodelay(true);
    Ok((stream, addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn two_buffers_go_out_as_one() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut b, _) = l.accept().unwrap();
        let n = send_two_now(a.as_raw_fd(), b"\x82\x05", b"hello").unwrap();
        assert_eq!(n, 7);
        let mut got = [0u8; 7];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"\x82\x05hello");
    }
}
