//! What travels between shards on the SPSC rings.
//!
//! Interest deltas, barriers and messages share one FIFO ring per shard pair, so a delta is always
//! applied before any message published after it on the same shard.

use std::sync::Arc;

use bytes::Bytes;

use crate::accounts::AccountId;
use crate::client::StallGate;
use crate::handover::{Handoff, Migrant};
use crate::ring::{InSlot, Stored};

/// Queue groups whose one recipient was picked on the receiving shard. Almost every message picks
/// none or one group, so those cases carry no heap allocation.
#[derive(Debug, Clone, Default)]
pub enum QueuePicks {
    #[default]
    None,
    One(Bytes),
    Many(Vec<Bytes>),
}

impl QueuePicks {
    pub fn push(&mut self, name: Bytes) {
        match std::mem::take(self) {
            QueuePicks::None => *self = QueuePicks::One(name),
            QueuePicks::One(first) => *self = QueuePicks::Many(vec![first, name]),
            QueuePicks::Many(mut all) => {
                all.push(name);
                *self = QueuePicks::Many(all);
            }
        }
    }

    pub fn for_each(&self, mut f: impl FnMut(&Bytes)) {
        match self {
            QueuePicks::None => {}
            QueuePicks::One(name) => f(name),
            QueuePicks::Many(all) => all.iter().for_each(f),
        }
    }
}

/// A published message handed to another shard.
#[derive(Debug)]
pub struct RoutedMsg {
    /// The subject space it is delivered in.
    pub account: AccountId,
    pub body: MsgBody,
    /// 32 bits keep the envelope in its budget; a payload never reaches 4 GiB (`max_payload`
    /// is bounded by `MAX_PAYLOAD_LIMIT`).
    pub header_len: Option<u32>,
    /// When set, the payload starts with this many bytes of the subject the MSG line shows
    /// (a JetStream delivery: routed on `subject`, shown with the stored message's subject),
    /// and `header_len` counts from after them. 16 bits keep the envelope in its budget; a
    /// longer subject is not shown (the MSG line carries `subject`).
    pub shown_len: u16,
    /// Deliver to the receiving shard's plain (non-queue) subscriptions.
    pub plain: bool,
    pub picks: QueuePicks,
    /// The publishing connection's id (0 for none): where a stall notice goes back to.
    pub origin: u64,
}

/// A routed message's subject, reply and payload (the header block, when there is one, first).
#[derive(Debug)]
pub enum MsgBody {
    /// Copied into the ring beside the envelope, back to back: subject, reply, payload, and
    /// the name of the one queue group picked here when there is one. What a message takes
    /// when it is small enough (`shard::routing::COPY_MAX`) and the ring has room: no handle on
    /// the publisher's buffer or on the group's name, whose reference counts both shards would
    /// otherwise touch (`ring/arena.rs`).
    InRing {
        bytes: Stored,
        subject_len: u32,
        reply_len: Option<u32>,
        pick_len: Option<u32>,
    },
    /// Handles on the publisher's read buffer: a large message, or one whose ring had no room
    /// for its bytes.
    Shared {
        subject: Bytes,
        reply: Option<Bytes>,
        payload: Bytes,
    },
}

/// A routed message's bytes, borrowed from its envelope or its ring.
#[derive(Debug, Clone, Copy)]
pub struct MsgParts<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub payload: &'a [u8],
    /// A queue group picked on the receiving shard, besides the envelope's `picks`.
    pub pick: Option<&'a [u8]>,
}

impl MsgBody {
    /// The message's bytes; `slot` is the ring slot the envelope lies in.
    pub fn parts<'a>(&'a self, slot: &InSlot<'a>) -> MsgParts<'a> {
        match self {
            MsgBody::InRing {
                bytes,
                subject_len,
                reply_len,
                pick_len,
            } => {
                let all = slot.bytes(bytes);
                let (all, pick) = match pick_len {
                    Some(n) => {
                        let (all, pick) = all.split_at(all.len() - *n as usize);
                        (all, Some(pick))
                    }
                    None => (all, None),
                };
                let (subject, rest) = all.split_at(*subject_len as usize);
                let (reply, payload) = match reply_len {
                    Some(n) => {
                        let (reply, payload) = rest.split_at(*n as usize);
                        (Some(reply), payload)
                    }
                    None => (None, rest),
                };
                MsgParts {
                    subject,
                    reply,
                    payload,
                    pick,
                }
            }
            MsgBody::Shared {
                subject,
                reply,
                payload,
            } => MsgParts {
                subject,
                reply: reply.as_deref(),
                payload,
                pick: None,
            },
        }
    }
}

/// A response on its way to the shard that opened its reply subject. Boxed: rare, and the
/// envelope budget is for messages.
#[derive(Debug)]
pub struct ForwardedResponse {
    pub token: u64,
    /// The publisher's account.
    pub account: AccountId,
    pub subject: Bytes,
    pub reply: Option<Bytes>,
    pub header_len: Option<usize>,
    pub payload: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterestOp {
    Add,
    Remove,
}

/// Envelopes are moved through the rings by value and handled in their slot: a larger one costs
/// every message (measured: copying ~150-byte envelopes out was ~5 % of cross-shard pubsub).
pub const ENVELOPE_BUDGET: usize = 160;
const _: () = assert!(std::mem::size_of::<Envelope>() <= ENVELOPE_BUDGET);

#[derive(Debug)]
pub enum Envelope {
    Msg(RoutedMsg),
    Interest {
        op: InterestOp,
        account: AccountId,
        subject: Bytes,
        queue: Option<Bytes>,
        /// A leafnode link's subscription (the hub's interest).
        leaf: bool,
    },
    /// Asks the receiver to answer with `BarrierAck` once everything before it was applied.
    Barrier {
        token: u64,
    },
    BarrierAck {
        token: u64,
    },
    /// A response published (in `account`) on reply subject `_R_.<shard>.<token>` of the
    /// receiving shard, which decides whether it reaches the requester (`shard/responses.rs`).
    Response(Box<ForwardedResponse>),
    /// To a publisher's shard: connection `cid` fed a client of the sender that is past its
    /// stall mark; its reader pauses on `gate` as a local publisher would. The ring consumer
    /// that delivered never waits itself: it carries every other publisher of that shard too.
    Stall {
        cid: u64,
        gate: Arc<StallGate>,
    },
    /// To a publisher's shard: a client of the sender, fed through a subscription on
    /// `subject`, is past its stall mark; every publisher of the receiver whose messages match
    /// pauses on `gate` (`shard/holds.rs`).
    Hold {
        account: AccountId,
        subject: Bytes,
        gate: Arc<StallGate>,
    },
    /// A connection moving here from the sender: its state and subscriptions. The receiver
    /// holds its deliveries until the `Handoff` (`shard/migration.rs`).
    Adopt(Box<Migrant>),
    /// To every shard but the new home: route these subscriptions of connection `cid` to
    /// shard `to` instead of the sender.
    Move {
        cid: u64,
        to: u16,
        account: AccountId,
        subs: Arc<[(Bytes, Option<Bytes>)]>,
    },
    /// To a moving connection's old home: the sender routes the connection's subscriptions to
    /// the new home from now on, and everything it sent here earlier was applied.
    SwitchedOld {
        cid: u64,
    },
    /// To the new home: the sender routes to it from now on; what it sent earlier reached the
    /// old home.
    SwitchedNew {
        cid: u64,
    },
    /// The old home's last word on a moving connection: what it had not written yet.
    Handoff(Box<Handoff>),
    /// What is left in a ring slot whose envelope was moved out to be kept.
    Taken,
}
