//! The io_uring transport: one ring per harness thread drives every connection
//! that thread owns, with no executor in between. Each connection keeps one
//! receive armed straight into its parse buffer and at most one send in flight
//! (the kernel does not order two sends on one socket); whatever the caller
//! encodes while a send is under way queues behind it and goes out as one
//! larger send when it completes. Submissions are batched: one `io_uring_enter`
//! per poll or flush, whatever the number of connections.

use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use io_uring::{opcode, types, IoUring};
use tachyon_protocol::{encode, ServerOp, ServerParser};

use crate::conn::{Conn, Parts};
use crate::error::{BenchError, Result};
use crate::link::{self, Fleet, Link};

const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Receive size for connections that get messages.
pub const BIG_RECV: usize = 1024 * 1024;
/// Receive size for connections that only expect PONGs (the `conns` publishers).
pub const SMALL_RECV: usize = 4 * 1024;
/// The caller waits once this much is queued behind a send in flight.
const HIGH_WATER: usize = 4 * 1024 * 1024;

const KIND_RECV: u64 = 0;
const KIND_SEND: u64 = 1;

fn tag(slot: usize, kind: u64) -> u64 {
    ((slot as u64) << 1) | kind
}

struct Slot {
    stream: std::net::TcpStream,
    rbuf: BytesMut,
    parser: ServerParser,
    recv_size: usize,
    /// The kernel owns `rbuf`'s spare capacity while this is set.
    recv_busy: bool,
    /// Received bytes wait to be parsed by `poll` (not by `flush`, which has
    /// nowhere to deliver messages).
    ready: bool,
    wbuf: Vec<u8>,
    /// The kernel reads `sending[sent..]` while `send_busy` is set.
    sending: Vec<u8>,
    sent: usize,
    send_busy: bool,
    pongs: u64,
}

pub struct Ring {
    ring: IoUring,
    slots: Vec<Slot>,
    /// Operations the kernel has not completed; their buffers must stay put.
    inflight: usize,
    /// Reused so reaping completions allocates nothing.
    cqes: Vec<(u64, i32)>,
    ready: Vec<usize>,
    /// A failed ring is no longer polled; its buffers are left to `Drop`.
    failed: bool,
}

impl Ring {
    /// Takes over `conns` (handshakes done) and arms a receive on each.
    pub fn new(conns: Vec<Conn>, recv_size: usize) -> Result<Ring> {
        let entries = (2 * conns.len() + 8)
            .next_power_of_two()
            .clamp(8, 32 * 1024) as u32;
        let ring = IoUring::new(entries)?;
        let mut slots = Vec::with_capacity(conns.len());
        for c in conns {
            let Parts {
                stream,
                rbuf,
                parser,
                wbuf,
            } = c.into_parts()?;
            // The ring waits with its own timeout; a socket timeout would only
            // turn an idle receive into an error.
            stream.set_read_timeout(None)?;
            slots.push(Slot {
                stream,
                rbuf,
                parser,
                recv_size,
                recv_busy: false,
                ready: false,
                wbuf,
                sending: Vec::with_capacity(64 * 1024),
                sent: 0,
                send_busy: false,
                pongs: 0,
            });
        }
        let mut r = Ring {
            ring,
            ready: Vec::with_capacity(slots.len()),
            slots,
            inflight: 0,
            cqes: Vec::with_capacity(entries as usize * 2),
            failed: false,
        };
        for i in 0..r.slots.len() {
            if r.slots[i].rbuf.is_empty() {
                r.arm_recv(i)?;
            } else {
                // Bytes read during the handshake may hold a whole op already.
                r.slots[i].ready = true;
                r.ready.push(i);
            }
            r.start_send(i)?;
        }
        r.ring.submit()?;
        Ok(r)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn wbuf(&mut self, i: usize) -> &mut Vec<u8> {
        &mut self.slots[i].wbuf
    }

    pub fn pongs(&self, i: usize) -> u64 {
        self.slots[i].pongs
    }

    fn push(&mut self, e: io_uring::squeue::Entry) -> Result<()> {
        loop {
            // SAFETY: every entry built here points into a buffer owned by a
            // slot, which is neither touched nor freed until the completion
            // arrives (`recv_busy`/`send_busy`, and `Drop` waits for `inflight`).
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                self.inflight += 1;
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_recv(&mut self, i: usize) -> Result<()> {
        let s = &mut self.slots[i];
        if s.recv_busy || s.ready {
            return Ok(());
        }
        s.rbuf.reserve(s.recv_size);
        let spare = s.rbuf.spare_capacity_mut();
        let len = u32::try_from(spare.len()).unwrap_or(u32::MAX);
        let e = opcode::Recv::new(
            types::Fd(s.stream.as_raw_fd()),
            spare.as_mut_ptr().cast::<u8>(),
            len,
        )
        .build()
        .user_data(tag(i, KIND_RECV));
        s.recv_busy = true;
        self.push(e)
    }

    /// Starts sending `wbuf` unless a send is already under way.
    fn start_send(&mut self, i: usize) -> Result<()> {
        let s = &mut self.slots[i];
        if s.send_busy || s.wbuf.is_empty() {
            return Ok(());
        }
        std::mem::swap(&mut s.wbuf, &mut s.sending);
        s.sent = 0;
        s.send_busy = true;
        self.push_send(i)
    }

    fn push_send(&mut self, i: usize) -> Result<()> {
        let s = &self.slots[i];
        let rest = s.sending.get(s.sent..).unwrap_or_default();
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let e = opcode::Send::new(types::Fd(s.stream.as_raw_fd()), rest.as_ptr(), len)
            // A peer that went away is an error, not a SIGPIPE.
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(tag(i, KIND_SEND));
        self.push(e)
    }

    /// Submits what is queued and takes in completions, waiting up to `wait`
    /// for at least one when nothing is ready yet.
    fn reap(&mut self, wait: Option<Duration>) -> Result<()> {
        if self.failed {
            return Err(BenchError::Closed);
        }
        let r = self.reap_inner(wait);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn reap_inner(&mut self, wait: Option<Duration>) -> Result<()> {
        match wait {
            Some(d) if self.ready.is_empty() && self.inflight > 0 => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                match self.ring.submitter().submit_with_args(1, &args) {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // Completions land in the shared queue without a syscall; enter the
            // kernel only with something to submit (a publisher calls this per
            // message while its previous send is under way).
            _ if self.ring.submission().is_empty() => {}
            _ => {
                self.ring.submit()?;
            }
        }
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
        let mut first_err = None;
        for &(data, res) in &cqes {
            self.inflight -= 1;
            if let Err(e) = self.complete(data, res) {
                first_err.get_or_insert(e);
            }
        }
        self.cqes = cqes;
        first_err.map_or(Ok(()), Err)
    }

    fn complete(&mut self, data: u64, res: i32) -> Result<()> {
        let i = (data >> 1) as usize;
        let Some(s) = self.slots.get_mut(i) else {
            return Ok(());
        };
        let retry = |res: i32| matches!(-res, libc::EINTR | libc::EAGAIN);
        if data & 1 == KIND_RECV {
            s.recv_busy = false;
            if res > 0 {
                let n = res as usize;
                if n > s.rbuf.capacity() - s.rbuf.len() {
                    return Err(BenchError::Io(std::io::Error::other(
                        "io_uring reported more bytes than the receive buffer holds",
                    )));
                }
                // SAFETY: the kernel wrote `n` bytes into the spare capacity
                // this receive was given (checked to fit just above), and
                // `rbuf` was not touched while the receive was in flight.
                unsafe { s.rbuf.set_len(s.rbuf.len() + n) };
                s.ready = true;
                self.ready.push(i);
                Ok(())
            } else if res == 0 {
                Err(BenchError::Closed)
            } else if retry(res) {
                self.arm_recv(i)
            } else {
                Err(std::io::Error::from_raw_os_error(-res).into())
            }
        } else if res >= 0 {
            s.sent += res as usize;
            if s.sent < s.sending.len() {
                return self.push_send(i);
            }
            s.sending.clear();
            s.send_busy = false;
            self.start_send(i)
        } else if retry(res) {
            self.push_send(i)
        } else {
            Err(std::io::Error::from_raw_os_error(-res).into())
        }
    }

    /// Parses what every ready connection received, hands its ops to `f` with
    /// the connection's index, answers PINGs and re-arms the receives.
    fn deliver<F>(&mut self, f: &mut F) -> Result<usize>
    where
        F: FnMut(usize, ServerOp) -> Result<()>,
    {
        let mut ops = 0;
        let mut ready = std::mem::take(&mut self.ready);
        let mut r = Ok(());
        for &i in &ready {
            let s = &mut self.slots[i];
            s.ready = false;
            match link::drain(&mut s.parser, &mut s.rbuf, &mut |op| f(i, op)) {
                Ok(d) => {
                    ops += d.ops;
                    s.pongs += d.pongs;
                    for _ in 0..d.pings {
                        s.wbuf.extend_from_slice(encode::PONG);
                    }
                    if let Err(e) = self.start_send(i).and_then(|()| self.arm_recv(i)) {
                        r = Err(e);
                        break;
                    }
                }
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        ready.clear();
        self.ready = ready;
        if r.is_err() {
            self.failed = true;
        }
        r.map(|()| ops)
    }

    /// Waits up to 100 ms for input and hands every complete op to `f`.
    pub fn poll<F>(&mut self, mut f: F) -> Result<usize>
    where
        F: FnMut(usize, ServerOp) -> Result<()>,
    {
        self.reap(Some(POLL_TIMEOUT))?;
        self.deliver(&mut f)
    }

    /// Starts sending what connection `i` has buffered and takes in whatever
    /// completed, without waiting unless `HIGH_WATER` bytes queue behind a send.
    pub fn flush(&mut self, i: usize) -> Result<()> {
        self.start_send(i)?;
        self.reap(None)?;
        while self.slots[i].send_busy && self.slots[i].wbuf.len() >= HIGH_WATER {
            self.reap(Some(POLL_TIMEOUT))?;
        }
        Ok(())
    }

    /// PINGs the connections in `which` and waits for all their PONGs;
    /// messages that arrive meanwhile are dropped.
    pub fn ping(&mut self, which: std::ops::Range<usize>, timeout: Duration) -> Result<()> {
        let mut want = Vec::with_capacity(which.len());
        for i in which {
            want.push((i, self.slots[i].pongs + 1));
            self.slots[i].wbuf.extend_from_slice(encode::PING);
            self.start_send(i)?;
        }
        let deadline = Instant::now() + timeout;
        while want.iter().any(|&(i, n)| self.slots[i].pongs < n) {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout("waiting for PONG".into()));
            }
            self.poll(|_, _| Ok(()))?;
        }
        Ok(())
    }
}

impl Drop for Ring {
    /// The kernel may still write into receive buffers: shut the sockets down so
    /// every operation completes, and leak the buffers if some never do.
    fn drop(&mut self) {
        for s in &self.slots {
            let _ = s.stream.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.inflight > 0 && Instant::now() < deadline {
            let ts = types::Timespec::from(Duration::from_millis(50));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let n = self.ring.completion().count();
            self.inflight -= n.min(self.inflight);
        }
        if self.inflight > 0 {
            for s in &mut self.slots {
                std::mem::forget(std::mem::take(&mut s.rbuf));
                std::mem::forget(std::mem::take(&mut s.sending));
            }
        }
    }
}

/// One connection on its own thread's ring.
pub struct UringConn {
    ring: Ring,
}

impl Link for UringConn {
    fn adopt(c: Conn) -> Result<Self> {
        Ok(UringConn {
            ring: Ring::new(vec![c], BIG_RECV)?,
        })
    }

    fn wbuf(&mut self) -> &mut Vec<u8> {
        self.ring.wbuf(0)
    }

    fn flush(&mut self) -> Result<()> {
        self.ring.flush(0)
    }

    fn poll<F: FnMut(ServerOp) -> Result<()>>(&mut self, mut f: F) -> Result<usize> {
        self.ring.poll(|_, op| f(op))
    }

    fn ping_pong(&mut self, timeout: Duration) -> Result<()> {
        self.ring.ping(0..1, timeout)
    }
}

impl Fleet for Ring {
    fn adopt(conns: Vec<Conn>) -> Result<Self> {
        Ring::new(conns, SMALL_RECV)
    }

    fn len(&self) -> usize {
        Ring::len(self)
    }

    fn wbuf(&mut self, i: usize) -> &mut Vec<u8> {
        Ring::wbuf(self, i)
    }

    fn send(&mut self, i: usize) -> Result<()> {
        self.start_send(i)
    }

    fn submit(&mut self) -> Result<()> {
        self.reap(None)?;
        // PINGs and INFO updates still need reading; nothing else comes here.
        self.deliver(&mut |_, _| Ok(()))?;
        Ok(())
    }

    fn ping_all(&mut self, timeout: Duration) -> Result<()> {
        self.ping(0..self.slots.len(), timeout)
    }
}
