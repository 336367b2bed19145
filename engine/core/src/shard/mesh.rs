//! The ring mesh between shards, built once at start: ring i→j feeds shard j from shard i,
//! with a doorbell to wake j; plus each shard's control bell, reload listener and (with
//! monitoring) mailbox. The result is one [`ShardParts`] per executor and the handles the
//! start-up thread keeps.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::rebalance::Placement;
use super::tasks::ShardParts;
use crate::doorbell::{self, Doorbell};
use crate::envelope::{Control, Envelope};
use crate::outlet::Outlet;
use crate::ring;
use tachyon_config::MigrateMode;

/// Envelopes per shard-pair ring. Small enough that a many-shard mesh stays modest in memory.
pub const RING_CAPACITY: usize = 4096;
/// Shards at most: the mesh holds n·(n−1) rings of `RING_CAPACITY` envelopes, each with a
/// socket pair, so memory and descriptors grow with the square of the count (128 shards: 16 256
/// rings, 32 512 descriptors). One shard per core is the design; no host Tachyon is for has more.
pub const MAX_SHARDS: usize = 128;
const _: () = assert!(MAX_SHARDS <= u16::MAX as usize, "shard ids are u16");
const _: () = assert!(MAX_SHARDS >= 1);

/// Descriptors the mesh takes for `n` shards (two per doorbell: rings, control bells, reload
/// bells), plus a listener per shard and headroom for the process's own files.
pub fn descriptors(n: usize) -> u64 {
    let n = n as u64;
    2 * n * n.saturating_sub(1) + 2 * n + 2 * n + n + 64
}

/// Tells every shard to stop (or enter lame duck): the order is posted, then each shard's
/// control bell rings. Used once, from the signal thread.
pub struct Controls {
    order: Arc<AtomicU8>,
    bells: Vec<Doorbell>,
}

impl Controls {
    pub fn send(&self, order: Control) {
        self.order.store(order as u8, Ordering::SeqCst);
        for bell in &self.bells {
            bell.ring();
        }
    }
}

pub struct Mesh {
    pub parts: Vec<ShardParts>,
    pub controls: Controls,
    /// Where the control order is read by the shards.
    pub order: Arc<AtomicU8>,
    /// One per shard when monitoring is on.
    pub mailboxes: Vec<crate::monitor::mailbox::Mailbox>,
    pub reloads: crate::reload::Notifier,
}

/// Builds the mesh for one shard per listener in `listener_fds`.
pub fn build(
    listener_fds: &[std::os::fd::RawFd],
    migrate: MigrateMode,
    monitoring: bool,
) -> std::io::Result<Mesh> {
    let n = listener_fds.len();
    assert!(
        (1..=MAX_SHARDS).contains(&n),
        "{n} shards: the caller checks the bound"
    );
    let mut parts: Vec<ShardParts> = Vec::with_capacity(n);
    let mut bells = Vec::with_capacity(n);
    let mut mailboxes = Vec::new();
    let (reloads, reload_listeners) = crate::reload::channel(n)?;
    let placements = Placement::for_shards(migrate, n);
    assert_eq!(placements.len(), n, "one placement per shard");
    for (((id, fd), reload), placement) in listener_fds
        .iter()
        .enumerate()
        .zip(reload_listeners)
        .zip(placements)
    {
        let (ctl_tx, ctl_rx) = doorbell::doorbell()?;
        bells.push(ctl_tx);
        let inbox = if monitoring {
            let (mb, inbox) = crate::monitor::mailbox::mailbox()?;
            mailboxes.push(mb);
            Some(inbox)
        } else {
            None
        };
        let mut outlets = Vec::with_capacity(n);
        outlets.resize_with(n, || None);
        parts.push(ShardParts {
            id,
            listener_fd: *fd,
            outlets,
            inlets: Vec::new(),
            control: ctl_rx,
            monitor: inbox,
            reload,
            placement,
        });
    }
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let (p, c) = ring::channel::<Envelope>(RING_CAPACITY);
            let (bell, bell_rx) = doorbell::doorbell()?;
            parts[i].outlets[j] = Some(Outlet::new(p, bell));
            parts[j].inlets.push((i as u16, c, bell_rx));
        }
    }
    let order = Arc::new(AtomicU8::new(0));
    Ok(Mesh {
        parts,
        controls: Controls {
            order: order.clone(),
            bells,
        },
        order,
        mailboxes,
        reloads,
    })
}
