//! How the HTTP thread asks the shards for snapshots: a per-shard queue locked only per HTTP
//! request, and the same doorbell the rings use to wake a parked shard. The shard answers on a
//! std channel.

use std::rc::Rc;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::snapshot::{self, ShardSnapshot, Want};
use crate::doorbell::{self, BellReceiver, Doorbell};
use crate::shard::Shard;

struct Request {
    want: Want,
    reply: Sender<ShardSnapshot>,
}

type Queue = Arc<Mutex<Vec<Request>>>;

fn lock(q: &Queue) -> MutexGuard<'_, Vec<Request>> {
    // Requests are whole values; a panic elsewhere cannot leave one half-pushed.
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// The HTTP thread's end for one shard.
pub struct Mailbox {
    queue: Queue,
    bell: Doorbell,
}

/// The shard's end; moved to its executor and served there by [`Inbox::serve`].
pub struct Inbox {
    queue: Queue,
    bell: BellReceiver,
}

pub fn mailbox() -> std::io::Result<(Mailbox, Inbox)> {
    let (bell, rx) = doorbell::doorbell()?;
    let queue: Queue = Arc::new(Mutex::new(Vec::new()));
    Ok((
        Mailbox {
            queue: queue.clone(),
            bell,
        },
        Inbox { queue, bell: rx },
    ))
}

impl Inbox {
    /// Answers requests for as long as the shard runs.
    pub async fn serve(self, shard: Rc<Shard>) {
        let mut waiter = self.bell.attach();
        loop {
            waiter.wait_until(|| !lock(&self.queue).is_empty()).await;
            let requests: Vec<Request> = std::mem::take(&mut *lock(&self.queue));
            for r in requests {
                // The asker may have given up waiting; nothing to do then.
                let _ = r.reply.send(snapshot::take(&shard, r.want));
            }
        }
    }
}

/// Asks every shard and waits for their answers, up to `timeout` in all. A shard that does not
/// answer in time (shutting down) is left out rather than blocking the request.
pub fn gather(boxes: &[Mailbox], want: Want, timeout: Duration) -> Vec<ShardSnapshot> {
    let (tx, rx) = mpsc::channel();
    for b in boxes {
        lock(&b.queue).push(Request {
            want,
            reply: tx.clone(),
        });
        b.bell.ring();
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(boxes.len());
    while out.len() < boxes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => out.push(s),
            Err(_) => break,
        }
    }
    out
}
