//! Record framing shared by segments, tombstones and consumer state:
//! `[len u32][crc32c u32 over the rest][body]`, `len` counting the whole record.

use crate::types::RECORD_OVERHEAD;

pub const FRAME_HEADER: usize = 8;
/// Larger records are taken for a corrupt length field.
pub const MAX_RECORD: usize = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header or the declared length: a torn tail.
    Short,
    BadLength,
    BadCrc,
}

/// Appends one frame around `body`.
pub fn write_frame(buf: &mut Vec<u8>, body: &[u8]) {
    let len = (FRAME_HEADER + body.len()) as u32;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    buf.extend_from_slice(body);
}

/// Declared total length of the frame at the start of `buf`, if the header is there.
pub fn declared_len(buf: &[u8]) -> Option<usize> {
    let b: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b) as usize)
}

/// The body of the frame at the start of `buf` and the frame's total length.
pub fn read_frame(buf: &[u8]) -> Result<(&[u8], usize), FrameError> {
    let len = declared_len(buf).ok_or(FrameError::Short)?;
    if !(FRAME_HEADER..=MAX_RECORD).contains(&len) {
        return Err(FrameError::BadLength);
    }
    let frame = buf.get(..len).ok_or(FrameError::Short)?;
    let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let body = &frame[FRAME_HEADER..];
    if crc32c::crc32c(body) != crc {
        return Err(FrameError::BadCrc);
    }
    Ok((body, len))
}

/// A message record's fields, borrowed from a verified frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgRecord<'a> {
    pub seq: u64,
    pub ts: i64,
    pub subject: &'a [u8],
    pub headers: &'a [u8],
    pub payload: &'a [u8],
}

const MSG_FIXED: usize = RECORD_OVERHEAD as usize - FRAME_HEADER;

pub fn encode_msg(
    buf: &mut Vec<u8>,
    seq: u64,
    ts: i64,
    subject: &[u8],
    headers: &[u8],
    payload: &[u8],
) {
    let len = RECORD_OVERHEAD as usize + subject.len() + headers.len() + payload.len();
    let start = buf.len();
    buf.reserve(len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&ts.to_le_bytes());
    buf.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    buf.extend_from_slice(subject);
    buf.extend_from_slice(headers);
    buf.extend_from_slice(payload);
    let crc = crc32c::crc32c(&buf[start + FRAME_HEADER..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Parses a verified message body; `None` when its inner lengths do not add up.
pub fn parse_msg(body: &[u8]) -> Option<MsgRecord<'_>> {
    let fixed = body.get(..MSG_FIXED)?;
    let seq = u64::from_le_bytes(fixed[0..8].try_into().ok()?);
    let ts = i64::from_le_bytes(fixed[8..16].try_into().ok()?);
    let slen = u16::from_le_bytes(fixed[16..18].try_into().ok()?) as usize;
    let hlen = u32::from_le_bytes(fixed[18..22].try_into().ok()?) as usize;
    let rest = &body[MSG_FIXED..];
    let subject = rest.get(..slen)?;
    let headers = rest.get(slen..slen.checked_add(hlen)?)?;
    let payload = &rest[slen + hlen..];
    Some(MsgRecord {
        seq,
        ts,
        subject,
        headers,
        payload,
    })
}

/// A verified message record at the start of `buf` and its length.
pub fn read_msg(buf: &[u8]) -> Result<(MsgRecord<'_>, usize), FrameError> {
    let (body, len) = read_frame(buf)?;
    let rec = parse_msg(body).ok_or(FrameError::BadLength)?;
    Ok((rec, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_bit_flip_detected() {
        let mut buf = Vec::new();
        encode_msg(&mut buf, 7, -3, b"a.b", b"hdr", b"payload");
        let (rec, len) = read_msg(&buf).unwrap();
        assert_eq!(len, buf.len());
        assert_eq!(
            (rec.seq, rec.ts, rec.subject, rec.headers, rec.payload),
            (7, -3, &b"a.b"[..], &b"hdr"[..], &b"payload"[..])
        );
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(read_msg(&b).is_err(), "bit {bit} undetected");
        }
        assert_eq!(read_msg(&buf[..buf.len() - 1]), Err(FrameError::Short));
    }
}
