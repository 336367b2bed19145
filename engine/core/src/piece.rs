//! Message bytes borrowed from a shared buffer.
//!
//! A publish read from a client is routed straight from the connection's read buffer: local
//! deliveries copy it into the subscribers' write buffers and need nothing more. Only a
//! message that must outlive the publish (one pushed to another shard, a forwarded
//! response) takes a `Bytes` handle of its own, and with it an atomic increment and
//! decrement on the buffer; when every message took two handles, they were a quarter of the
//! shard's time on small messages.

use std::ops::{Deref, Range};

use bytes::{Bytes, BytesMut};

thread_local! {
    /// Where an unparsed tail waits while its read is let go ([`put_back`]); one per shard
    /// thread, not one per connection.
    static TAIL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Puts what a frozen read left unparsed (`rest`) at the front of `buf`, the buffer the read
/// was split from (empty since). `rest` is let go before `buf` asks for room, so their
/// allocation is no longer shared and `buf` reuses it in place: copied straight in, the tail
/// kept the allocation shared, and every read that filled its buffer allocated a new one.
pub fn put_back(buf: &mut BytesMut, rest: Bytes) {
    debug_assert!(buf.is_empty(), "the read was split off whole");
    if rest.is_empty() {
        return;
    }
    TAIL.with(|tail| {
        let mut tail = tail.borrow_mut();
        tail.clear();
        tail.extend_from_slice(&rest);
        drop(rest);
        buf.extend_from_slice(&tail);
    });
}

/// Part of `owner`, read as a slice; [`Piece::to_bytes`] makes it a handle of its own.
#[derive(Clone, Copy, Debug)]
pub struct Piece<'a> {
    bytes: &'a [u8],
    owner: &'a Bytes,
}

impl<'a> Piece<'a> {
    /// `owner[range]`. Panics when `range` is outside `owner`, like slicing.
    #[inline]
    pub fn of(owner: &'a Bytes, range: Range<usize>) -> Self {
        Piece {
            bytes: &owner[range],
            owner,
        }
    }

    /// The bytes, for as long as the buffer is borrowed.
    #[inline]
    pub fn as_slice(self) -> &'a [u8] {
        self.bytes
    }

    /// A handle on the same bytes that may outlive the borrow (no copy).
    pub fn to_bytes(self) -> Bytes {
        if self.bytes.len() == self.owner.len() {
            self.owner.clone()
        } else {
            self.owner.slice_ref(self.bytes)
        }
    }
}

impl<'a> From<&'a Bytes> for Piece<'a> {
    #[inline]
    fn from(owner: &'a Bytes) -> Self {
        Piece {
            bytes: owner,
            owner,
        }
    }
}

impl Deref for Piece<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    #[test]
    fn a_piece_reads_its_range_and_shares_the_buffer_when_kept() {
        let buf = Bytes::from_static(b"PUB a.b 5\r\nhello\r\n");
        let subject = Piece::of(&buf, 4..7);
        let payload = Piece::of(&buf, 11..16);
        assert_eq!(&*subject, b"a.b");
        assert_eq!(payload.as_slice(), b"hello");
        let kept = payload.to_bytes();
        assert_eq!(&kept[..], b"hello");
        assert_eq!(kept.as_ptr(), buf[11..].as_ptr(), "no copy");
        let whole = Piece::from(&buf).to_bytes();
        assert_eq!(whole.as_ptr(), buf.as_ptr());
        assert_eq!(whole.len(), buf.len());
        let empty = Piece::of(&buf, 3..3);
        assert!(empty.to_bytes().is_empty());
    }

    #[test]
    fn the_unparsed_tail_goes_back_into_the_same_allocation() {
        let mut buf = BytesMut::with_capacity(30);
        buf.extend_from_slice(b"PUB a 1\r\nx\r\nPUB b 2\r\nyy\r\nPUB c");
        assert_eq!(buf.len(), buf.capacity(), "the read filled its buffer");
        let start = buf.as_ptr();
        let mut rest = buf.split().freeze();
        rest.advance(25);
        put_back(&mut buf, rest);
        assert_eq!(&buf[..], b"PUB c");
        assert_eq!(
            buf.as_ptr(),
            start,
            "moved to the front of the same allocation"
        );
        // A handle still out (a message on its way to another shard): a fresh buffer.
        let mut rest = buf.split().freeze();
        let kept = rest.slice(0..3);
        rest.advance(3);
        put_back(&mut buf, rest);
        assert_eq!(&buf[..], b" c");
        assert_eq!(&kept[..], b"PUB");
        assert_ne!(buf.as_ptr(), start);
    }

    #[test]
    #[should_panic]
    fn a_range_past_the_buffer_is_refused() {
        let buf = Bytes::from_static(b"abc");
        let _ = Piece::of(&buf, 2..5);
    }
}
