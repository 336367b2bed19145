//! A client's backlog: messages held past its stall mark, already encoded as they will be
//! written, in chunks the writer takes whole.
//!
//! Why encoded and not as handles on the publishers' buffers: a held handle keeps a whole
//! read buffer (or ring message) alive, so every publisher read while a subscriber was behind
//! had to allocate a fresh one, and each held message also cost a 144-byte entry in a deque
//! that grew by doubling. With 500 publishers into one subscriber (128 B messages, 50 MB held
//! at the peak) the server grew to 250 MB and spent a third of its CPU in the kernel zeroing
//! the fresh pages; the frames themselves are about the size of what they hold.

use std::collections::VecDeque;

/// The size of a backlog chunk, and of the writes that drain it: big enough that a write per
/// chunk costs nothing next to the bytes, small enough that a chunk is reused rather than
/// grown.
pub const CHUNK: usize = 64 * 1024;

/// What a MSG or HMSG frame adds to its subject, sid, reply and message: the verb, spaces,
/// two sizes and two CRLFs (`HMSG` + 4 spaces + 2 x 20 digits + 4 < 64).
pub const FRAME_OVERHEAD: usize = 64;

/// Encoded frames in arrival order, in chunks of about [`CHUNK`] bytes (a frame larger than
/// that has a chunk of its own). No frame is ever split across chunks.
#[derive(Default)]
pub struct Backlog {
    chunks: VecDeque<Vec<u8>>,
}

impl Backlog {
    /// Appends one frame that `write` encodes in at most `bound` bytes; returns its length. The
    /// chunk it lands in has room for it, so nothing already held is moved.
    pub fn push(&mut self, bound: usize, write: impl FnOnce(&mut Vec<u8>)) -> usize {
        let fits = self
            .chunks
            .back()
            .is_some_and(|c| c.len() + bound <= c.capacity());
        if !fits {
            self.chunks.push_back(Vec::with_capacity(bound.max(CHUNK)));
        }
        let chunk = self
            .chunks
            .back_mut()
            .expect("a chunk with room was just ensured");
        let before = chunk.len();
        write(chunk);
        let n = chunk.len() - before;
        debug_assert!(n <= bound, "frame of {n} bytes past its bound {bound}");
        n
    }

    /// The oldest chunk, whole.
    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        self.chunks.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(out: &mut Vec<u8>, n: usize, byte: u8) {
        out.resize(out.len() + n, byte);
    }

    #[test]
    fn frames_come_back_in_order_and_never_split() {
        let mut b = Backlog::default();
        let mut pushed = Vec::new();
        for i in 0..3000usize {
            let n = 1 + (i * 37) % 500;
            let byte = (i % 251) as u8;
            assert_eq!(b.push(n, |out| frame(out, n, byte)), n);
            pushed.push((n, byte));
        }
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(c) = b.pop_front() {
            chunks += 1;
            assert!(c.len() <= CHUNK, "a chunk grew past its size: {}", c.len());
            // Each chunk starts at a frame boundary: walk the frames it must hold.
            let mut at = 0;
            while at < c.len() {
                let (n, byte) = pushed[got.len()];
                assert!(c[at..at + n].iter().all(|&x| x == byte));
                got.push((n, byte));
                at += n;
            }
            assert_eq!(at, c.len());
        }
        assert_eq!(got, pushed);
        assert!(chunks > 1 && b.is_empty());
    }

    #[test]
    fn a_frame_larger_than_a_chunk_has_one_of_its_own() {
        let mut b = Backlog::default();
        b.push(10, |out| frame(out, 10, 1));
        b.push(CHUNK * 3, |out| frame(out, CHUNK * 3, 2));
        b.push(10, |out| frame(out, 10, 3));
        assert_eq!(b.pop_front().map(|c| c.len()), Some(10));
        assert_eq!(b.pop_front().map(|c| c.len()), Some(CHUNK * 3));
        assert_eq!(b.pop_front().map(|c| c.len()), Some(10));
        assert!(b.pop_front().is_none());
    }

    #[test]
    fn a_frame_only_lands_where_its_bound_fits() {
        let mut b = Backlog::default();
        // Fill the first chunk to within 100 bytes of its end with frames written short of
        // their bound: the next frame's bound does not fit, so it starts a new chunk even
        // though its bytes would have.
        b.push(CHUNK - 100, |out| frame(out, CHUNK - 100, 1));
        b.push(200, |out| frame(out, 50, 2));
        let first = b.pop_front().expect("first chunk");
        assert_eq!(first.len(), CHUNK - 100);
        assert!(first.capacity() >= CHUNK && first.capacity() < CHUNK + 100);
        assert_eq!(b.pop_front().map(|c| c.len()), Some(50));
    }
}
