//! Durable consumer state: delivered and ack-floor sequences, pending acks and redelivery counts,
//! stored as one snapshot per consumer in the record framing of the segments
//! (`[len u32][crc32c u32][body]`) and replaced atomically (temporary file, fdatasync, rename,
//! directory fsync), so a crash leaves either the old or the new snapshot, never a mix.
//!
//! Body: `b"TXCST001"`, delivered consumer/stream seq, ack floor consumer/stream seq (u64 each),
//! pending count u64 then `[stream seq u64][consumer seq u64][timestamp i64][deliveries u64]`,
//! redelivered count u64 then `[stream seq u64][count u64]`, all little-endian.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::frame;
use crate::io::{read_all, Io};

const MAGIC: &[u8; 8] = b"TXCST001";

/// A consumer sequence and the stream sequence it stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequencePair {
    pub consumer_seq: u64,
    pub stream_seq: u64,
}

/// A delivered message that is not acknowledged yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingAck {
    /// Consumer sequence of the latest delivery.
    pub consumer_seq: u64,
    /// Nanoseconds since the Unix epoch of the latest delivery (the ack-wait clock starts there).
    pub timestamp: i64,
    /// Times delivered so far (1 after the first delivery).
    pub deliveries: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerState {
    /// The last message handed out.
    pub delivered: SequencePair,
    /// Everything at or below this is acknowledged.
    pub ack_floor: SequencePair,
    /// Keyed by stream sequence.
    pub pending: BTreeMap<u64, PendingAck>,
    /// Stream sequence → redelivery count, for messages delivered more than once.
    pub redelivered: BTreeMap<u64, u64>,
}

impl ConsumerState {
    pub fn encode(&self) -> Vec<u8> {
        let mut body =
            Vec::with_capacity(56 + self.pending.len() * 32 + self.redelivered.len() * 16);
        body.extend_from_slice(MAGIC);
        for v in [
            self.delivered.consumer_seq,
            self.delivered.stream_seq,
            self.ack_floor.consumer_seq,
            self.ack_floor.stream_seq,
            self.pending.len() as u64,
        ] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        for (seq, p) in &self.pending {
            body.extend_from_slice(&seq.to_le_bytes());
            body.extend_from_slice(&p.consumer_seq.to_le_bytes());
            body.extend_from_slice(&p.timestamp.to_le_bytes());
            body.extend_from_slice(&p.deliveries.to_le_bytes());
        }
        body.extend_from_slice(&(self.redelivered.len() as u64).to_le_bytes());
        for (seq, n) in &self.redelivered {
            body.extend_from_slice(&seq.to_le_bytes());
            body.extend_from_slice(&n.to_le_bytes());
        }
        let mut out = Vec::with_capacity(body.len() + frame::FRAME_HEADER);
        frame::write_frame(&mut out, &body);
        out
    }

    /// Decodes a snapshot; the error says what is wrong with it.
    pub fn decode(data: &[u8]) -> std::result::Result<Self, String> {
        let (body, len) = frame::read_frame(data).map_err(|e| format!("frame: {e:?}"))?;
        if len != data.len() {
            return Err(format!("{} bytes after the snapshot", data.len() - len));
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC {
            return Err("bad magic".into());
        }
        let mut s = ConsumerState {
            delivered: SequencePair {
                consumer_seq: r.u64()?,
                stream_seq: r.u64()?,
            },
            ack_floor: SequencePair {
                consumer_seq: r.u64()?,
                stream_seq: r.u64()?,
            },
            ..Default::default()
        };
        let n = r.count(32)?;
        for _ in 0..n {
            let seq = r.u64()?;
            let p = PendingAck {
                consumer_seq: r.u64()?,
                timestamp: r.u64()? as i64,
                deliveries: r.u64()?,
            };
            s.pending.insert(seq, p);
        }
        let n = r.count(16)?;
        for _ in 0..n {
            let seq = r.u64()?;
            s.redelivered.insert(seq, r.u64()?);
        }
        if !r.0.is_empty() {
            return Err("trailing bytes in the snapshot body".into());
        }
        Ok(s)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("snapshot body too short".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    /// An element count, checked against the bytes left so a corrupt count cannot allocate.
    fn count(&mut self, elem: usize) -> std::result::Result<usize, String> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n.checked_mul(elem).is_some_and(|b| b <= self.0.len()) => Ok(n),
            _ => Err(format!("count {n} exceeds the snapshot")),
        }
    }
}

/// One consumer's state file, `<dir>/<name>.cst`.
pub struct ConsumerStateFile {
    io: Arc<dyn Io>,
    dir: PathBuf,
    name: String,
}

impl ConsumerStateFile {
    /// `name` is used as a file name: the caller keeps it free of `/`.
    pub fn new(io: Arc<dyn Io>, dir: impl AsRef<Path>, name: &str) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(StoreError::corrupt(
                &dir,
                format!("consumer name {name:?} is not usable as a file name"),
            ));
        }
        io.create_dir_all(&dir)
            .map_err(|e| StoreError::io(&dir, e))?;
        Ok(ConsumerStateFile {
            io,
            dir,
            name: format!("{name}.cst"),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Replaces the stored snapshot; durable when this returns.
    pub fn save(&self, state: &ConsumerState) -> Result<()> {
        crate::file::write_atomic(self.io.as_ref(), &self.dir, &self.name, &state.encode())
    }

    /// The stored snapshot, `None` if there is none; a damaged one is an error, never a guess.
    pub fn load(&self) -> Result<Option<ConsumerState>> {
        let p = self.path();
        let f = match self.io.open(&p, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(p, e)),
        };
        let data = read_all(f.as_ref()).map_err(|e| StoreError::io(&p, e))?;
        ConsumerState::decode(&data)
            .map(Some)
            .map_err(|what| StoreError::corrupt(p, what))
    }

    /// Removes the snapshot (the consumer was deleted).
    pub fn remove(&self) -> Result<()> {
        let p = self.path();
        match self.io.remove(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(p, e)),
        }
        self.io
            .sync_dir(&self.dir)
            .map_err(|e| StoreError::io(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_io::SimIo;
    use rand::{Rng, SeedableRng};

    fn sample(k: u64) -> ConsumerState {
        let mut s = ConsumerState {
            delivered: SequencePair {
                consumer_seq: 100 + k,
                stream_seq: 200 + k,
            },
            ack_floor: SequencePair {
                consumer_seq: 90 + k,
                stream_seq: 180 + k,
            },
            ..Default::default()
        };
        for i in 0..5 + k {
            s.pending.insert(
                181 + k + i,
                PendingAck {
                    consumer_seq: 91 + k + i,
                    timestamp: -5 + i as i64 * 1_000_000,
                    deliveries: 1 + i % 3,
                },
            );
            if i % 3 > 0 {
                s.redelivered.insert(181 + k + i, i % 3);
            }
        }
        s
    }

    #[test]
    fn round_trip_on_disk_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let f = ConsumerStateFile::new(crate::io::StdIo::shared(), dir.path(), "dur").unwrap();
        assert_eq!(f.load().unwrap(), None);
        f.save(&ConsumerState::default()).unwrap();
        assert_eq!(f.load().unwrap(), Some(ConsumerState::default()));
        for k in [3, 0, 7] {
            f.save(&sample(k)).unwrap();
            assert_eq!(f.load().unwrap(), Some(sample(k)));
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["dur.cst"], "no temporary file left behind");
        f.remove().unwrap();
        assert_eq!(f.load().unwrap(), None);
        assert!(ConsumerStateFile::new(crate::io::StdIo::shared(), dir.path(), "a/b").is_err());
    }

    #[test]
    fn every_bit_flip_and_truncation_is_detected() {
        let enc = sample(2).encode();
        for bit in 0..enc.len() * 8 {
            let mut b = enc.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(ConsumerState::decode(&b).is_err(), "bit {bit} undetected");
        }
        for cut in 0..enc.len() {
            assert!(ConsumerState::decode(&enc[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(ConsumerState::decode(&longer).is_err());

        let io = SimIo::new();
        let f = ConsumerStateFile::new(Arc::new(io.clone()), "/c", "x").unwrap();
        f.save(&sample(1)).unwrap();
        io.with_file(Path::new("/c/x.cst"), |d| d[20] ^= 0x10)
            .unwrap();
        assert!(matches!(f.load(), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn replace_survives_power_failure_at_every_step() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (old, new) = (sample(1), sample(4));
        let mut saw = (false, false);
        for round in 0..200u64 {
            let io = SimIo::new();
            let f = ConsumerStateFile::new(Arc::new(io.clone()), "/c", "d").unwrap();
            f.save(&old).unwrap();
            // write_atomic does open, set_len, write, sync, rename: die before any of them.
            io.fail_after(round % 7);
            let done = f.save(&new).is_ok();
            io.crash(|n| rng.gen_range(0..n));
            let got = f.load().unwrap().expect("a snapshot must survive");
            if done {
                assert_eq!(got, new, "completed save lost (round {round})");
            } else {
                assert!(got == old || got == new, "mixed state (round {round})");
            }
            saw.0 |= got == old;
            saw.1 |= got == new;
            // Saving again after the crash works over a leftover temporary file.
            f.save(&new).unwrap();
            assert_eq!(f.load().unwrap(), Some(new.clone()));
        }
        assert!(saw.0 && saw.1, "both outcomes expected across crash points");
    }
}
