//! The shard side of monitoring: how an HTTP request reaches a shard (`mailbox`), what a shard
//! copies out for it (`snapshot`), and the recently closed connections (`closed`). The HTTP
//! server and the endpoints' JSON are the server crate's.

pub mod closed;
pub mod mailbox;
pub mod snapshot;
