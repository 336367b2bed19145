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

    /// Shuts the socket down both ways (the reader's pending read returns); the descriptor
    /// stays open until the last handle goes, so its number cannot be reused meanwhile.
    pub fn shutdown(&self) {
        // SAFETY: shutdown on a descriptor this handle keeps open has no memory effects.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }
}
