//! The shard side of monitoring: what a shard copies out for an HTTP request (`snapshot`; the
//! request reaches it through its mailbox, `shard/mailbox.rs`) and the recently closed
//! connections (`closed`). The HTTP server and the endpoints' JSON are the server crate's.

pub mod closed;
pub mod snapshot;
