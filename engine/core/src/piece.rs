//! Message bytes borrowed from a shared buffer.
//!
//! A publish read from a client is routed straight from the connection's read buffer: local
//! deliveries copy it into the subscribers' write buffers and need nothing more. Only a
//! message that must outlive the publish (one pushed to another shard, a forwarded
//! response) takes a `Bytes` handle of its own, and with it an atomic increment and
//! decrement on the buffer; when every message took two handles, they were a quarter of the
//! shard's time on small messages.

use std::ops::{Deref, Range};

use bytes::Bytes;

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
    #[should_panic]
    fn a_range_past_the_buffer_is_refused() {
        let buf = Bytes::from_static(b"abc");
        let _ = Piece::of(&buf, 2..5);
    }
}
