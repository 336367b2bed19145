//! The most recent bytes appended to the open segment, kept in memory so reads of recent
//! messages (a consumer close behind the producer) need no file read.
//!
//! Two generations of at most half the budget each: when the current one fills, it becomes
//! the previous one and the old previous buffer is reused, so appends never move bytes and,
//! once both buffers have grown, never allocate.

#[derive(Debug, Default)]
pub(super) struct HotTail {
    budget: usize,
    /// Segment offset of `cur[0]`; `cur` always ends at the segment's length.
    cur_start: u64,
    cur: Vec<u8>,
    /// Bytes just before `cur`: `[cur_start - prev.len(), cur_start)`.
    prev: Vec<u8>,
}

impl HotTail {
    pub fn new(budget: usize, seg_len: u64) -> Self {
        HotTail {
            budget,
            cur_start: seg_len,
            cur: Vec::new(),
            prev: Vec::new(),
        }
    }

    /// Forgets everything; the segment now ends at `seg_len`.
    pub fn reset(&mut self, seg_len: u64) {
        self.cur.clear();
        self.prev.clear();
        self.cur_start = seg_len;
    }

    /// Records bytes appended at the segment's end.
    pub fn append(&mut self, data: &[u8]) {
        let half = self.budget / 2;
        if data.len() > half {
            // Larger than a generation: keep nothing older than it, and nothing of it.
            self.reset(self.cur_start + self.cur.len() as u64 + data.len() as u64);
            return;
        }
        if self.cur.len() + data.len() > half {
            std::mem::swap(&mut self.cur, &mut self.prev);
            self.cur_start += self.prev.len() as u64;
            self.cur.clear();
        }
        self.cur.extend_from_slice(data);
    }

    /// The bytes `[off, off + len)` when all of them are held.
    pub fn get(&self, off: u64, len: usize) -> Option<&[u8]> {
        let end = off.checked_add(len as u64)?;
        if off >= self.cur_start {
            let from = usize::try_from(off - self.cur_start).ok()?;
            return self.cur.get(from..from.checked_add(len)?);
        }
        let prev_start = self.cur_start.checked_sub(self.prev.len() as u64)?;
        if off >= prev_start && end <= self.cur_start {
            let from = usize::try_from(off - prev_start).ok()?;
            return self.prev.get(from..from.checked_add(len)?);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_recent_bytes_and_nothing_else() {
        let mut h = HotTail::new(100, 1000);
        let mut model: Vec<u8> = vec![0; 1000];
        let mut x = 0u8;
        for n in [10usize, 30, 5, 20, 40, 1, 49, 60, 3] {
            let d: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_add(1);
                    x
                })
                .collect();
            h.append(&d);
            model.extend_from_slice(&d);
            let total = model.len() as u64;
            let mut held = 0;
            for off in 990..total {
                for len in [1usize, 7, 30] {
                    if let Some(b) = h.get(off, len) {
                        assert_eq!(b, &model[off as usize..off as usize + len]);
                        held += 1;
                    }
                }
            }
            assert!(h.get(0, 10).is_none(), "old bytes are not held");
            assert!(h.get(total, 1).is_none(), "nothing past the end");
            assert_eq!(held > 0, n <= 50, "held unless larger than a generation");
            assert!(h.cur.len() + h.prev.len() <= 100);
        }
        h.reset(5000);
        assert!(h.get(4990, 5).is_none());
        h.append(&[9; 60]);
        assert!(
            h.get(5000, 1).is_none(),
            "larger than a generation: not kept"
        );
    }
}
