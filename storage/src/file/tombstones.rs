//! `deletes.log`: framed records that make deletes and purges survive a restart.
//! Body: `[kind u8][seq u64]`; kinds: 1 deleted seq, 2 floor (everything below is gone),
//! 3 last seq (the stream reached at least this sequence).

use crate::frame;

pub const DELETE: u8 = 1;
pub const FLOOR: u8 = 2;
pub const LAST_SEQ: u8 = 3;

pub fn encode(buf: &mut Vec<u8>, kind: u8, seq: u64) {
    let mut body = [0u8; 9];
    body[0] = kind;
    body[1..].copy_from_slice(&seq.to_le_bytes());
    frame::write_frame(buf, &body);
}

#[derive(Debug, Default)]
pub struct Tombstones {
    pub deleted: std::collections::BTreeSet<u64>,
    pub floor: u64,
    pub last_seq: u64,
    pub valid_len: u64,
    /// Corrupt records found before the end (their deletes are lost).
    pub corrupt: usize,
}

pub fn parse(data: &[u8]) -> Tombstones {
    let mut t = Tombstones::default();
    let mut off = 0usize;
    while off < data.len() {
        let rest = &data[off..];
        match frame::read_frame(rest) {
            Ok((body, len)) if body.len() == 9 => {
                let mut s = [0u8; 8];
                s.copy_from_slice(&body[1..]);
                let seq = u64::from_le_bytes(s);
                match body[0] {
                    DELETE => {
                        t.deleted.insert(seq);
                    }
                    FLOOR => t.floor = t.floor.max(seq),
                    LAST_SEQ => t.last_seq = t.last_seq.max(seq),
                    _ => t.corrupt += 1,
                }
                off += len;
            }
            _ => {
                // A fixed-size record: a bad one mid-file can be stepped over.
                const REC: usize = frame::FRAME_HEADER + 9;
                if rest.len() > REC && frame::read_frame(&rest[REC..]).is_ok() {
                    t.corrupt += 1;
                    off += REC;
                } else {
                    break;
                }
            }
        }
    }
    t.valid_len = off as u64;
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_records_and_torn_tail() {
        let mut b = Vec::new();
        encode(&mut b, DELETE, 4);
        encode(&mut b, FLOOR, 3);
        encode(&mut b, LAST_SEQ, 9);
        encode(&mut b, DELETE, 7);
        let t = parse(&b[..b.len() - 3]);
        assert_eq!(t.deleted.iter().copied().collect::<Vec<_>>(), vec![4]);
        assert_eq!((t.floor, t.last_seq, t.corrupt), (3, 9, 0));
        let mut c = b.clone();
        c[10] ^= 1;
        let t = parse(&c);
        assert_eq!(t.corrupt, 1);
        assert!(t.deleted.contains(&7) && !t.deleted.contains(&4));
    }
}
