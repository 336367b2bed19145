//! The ring mesh between shards, built once at start: ring i→j feeds shard j from shard i,
//! with a doorbell to wake j; plus each shard's mailbox. The result is one [`ShardParts`] per executor and the handles the
//! start-up thread keeps.

use std::sync::Arc;

use super::mailbox::{mailbox, Mailbox};
use super::rebalance::Placement;
use super::tasks::{Ready, ShardParts};
use crate::doorbell;
use crate::envelope::Envelope;
use crate::outlet::Outlet;
use crate::ring;
use tachyon_settings::MigrateMode;

/// Envelopes per shard-pair ring. Small enough that a many-shard mesh stays modest in memory.
pub const RING_CAPACITY: usize = 4096;
/// Shards at most: the mesh holds n·(n−1) rings of `RING_CAPACITY` envelopes, each with a
/// socket pair, so memory and descriptors grow with the square of the count (128 shards: 16 256
/// rings, 32 512 descriptors). One shard per core is the design; no host Tachyon is for has more.
pub const MAX_SHARDS: usize = 128;
const _: () = assert!(MAX_SHARDS <= u16::MAX as usize, "shard ids are u16");
const _: () = assert!(MAX_SHARDS >= 1);
// `ring::channel` rounds up to a power of two: say the real size here.
const _: () = assert!(RING_CAPACITY.is_power_of_two());
/// What one ring may hold in envelopes: 4096 × 160 B = 640 KiB per shard pair.
const RING_BYTES: usize = RING_CAPACITY * std::mem::size_of::<Envelope>();
const _: () = assert!(
    RING_BYTES <= 1 << 20,
    "a ring over 1 MiB: shrink it or the envelope"
);

/// Bytes a shard's inbound rings can hold in flight altogether, split between its peers.
const INBOUND_ARENAS: usize = 4 << 20;
/// Bytes one shard-pair ring can hold in flight, at most and at least: a ring holds many small
/// messages, and a fair number of the largest copied ones.
const RING_ARENA_MAX: usize = 1 << 20;
const RING_ARENA_MIN: usize = 64 << 10;
// A ring's arena holds a fair number of the largest messages routing copies into it.
const _: () = assert!(super::routing::COPY_MAX * 32 <= RING_ARENA_MIN);
const _: () = assert!(RING_ARENA_MIN.is_power_of_two() && RING_ARENA_MAX.is_power_of_two());
const _: () = assert!(RING_ARENA_MIN <= RING_ARENA_MAX);

/// The arena of each ring of a mesh of `shards` shards: a many-shard mesh has the square of
/// their count in rings, so each gets less.
fn ring_arena(shards: usize) -> usize {
    let share = INBOUND_ARENAS / shards.saturating_sub(1).max(1);
    // The largest power of two within the share.
    let share = 1usize << (usize::BITS - 1 - share.leading_zeros());
    share.clamp(RING_ARENA_MIN, RING_ARENA_MAX)
}

/// Descriptors the mesh takes for `n` shards (two per doorbell: one per ring, one per
/// mailbox), plus a listener per shard and headroom for the process's own files.
pub fn descriptors(n: usize) -> u64 {
    let n = n as u64;
    2 * n * n.saturating_sub(1) + 2 * n + n + 64
}

pub struct Mesh {
    pub parts: Vec<ShardParts>,
    /// Each shard's mailbox, by shard id: how the process posts work to the shards.
    pub mailboxes: Arc<[Mailbox]>,
    /// Every shard past its start hooks: the server is ready.
    pub ready: Arc<Ready>,
}

/// Builds the mesh for one shard per listener in `listener_fds`.
pub fn build(listener_fds: &[std::os::fd::RawFd], migrate: MigrateMode) -> std::io::Result<Mesh> {
    let n = listener_fds.len();
    assert!(
        (1..=MAX_SHARDS).contains(&n),
        "{n} shards: the caller checks the bound"
    );
    let mut parts: Vec<ShardParts> = Vec::with_capacity(n);
    let mut mailboxes = Vec::with_capacity(n);
    let placements = Placement::for_shards(migrate, n);
    let ready = Arc::new(Ready::new(n));
    assert_eq!(placements.len(), n, "one placement per shard");
    for ((id, fd), placement) in listener_fds.iter().enumerate().zip(placements) {
        let (mb, inbox) = mailbox()?;
        mailboxes.push(mb);
        let mut outlets = Vec::with_capacity(n);
        outlets.resize_with(n, || None);
        parts.push(ShardParts {
            id,
            listener_fd: *fd,
            ws_listener_fd: None,
            outlets,
            inlets: Vec::new(),
            inbox,
            placement,
            ready: ready.clone(),
            on_start: Vec::new(),
            on_stop: Vec::new(),
        });
    }
    let arena = ring_arena(n);
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let (p, c) = ring::channel_with_bytes::<Envelope>(RING_CAPACITY, arena);
            let (bell, bell_rx) = doorbell::doorbell()?;
            parts[i].outlets[j] = Some(Outlet::new(p, bell));
            parts[j].inlets.push((i as u16, c, bell_rx));
        }
    }
    Ok(Mesh {
        parts,
        mailboxes: mailboxes.into(),
        ready,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_arenas_shrink_with_the_mesh_within_their_bounds() {
        assert_eq!(ring_arena(1), RING_ARENA_MAX);
        assert_eq!(ring_arena(2), RING_ARENA_MAX);
        assert_eq!(ring_arena(5), RING_ARENA_MAX);
        assert_eq!(ring_arena(14), 256 << 10);
        assert_eq!(ring_arena(128), RING_ARENA_MIN);
        for n in 1..=MAX_SHARDS {
            let a = ring_arena(n);
            assert!(a.is_power_of_two() && (RING_ARENA_MIN..=RING_ARENA_MAX).contains(&a));
        }
    }
}
