//! Tachyon's engine: shards, connections, subscription index, cross-shard routing.
//!
//! See ARCHITECTURE.md for the map of these modules and the invariants they keep.

pub mod accounts;
pub mod auth;
pub mod client;
pub mod conn;
pub mod doorbell;
pub mod envelope;
pub mod global;
pub mod interest;
pub mod listener;
pub mod logging;
pub mod monitor;
pub mod outlet;
pub mod portsfile;
pub mod reload;
pub mod ring;
pub mod server;
pub mod shard;
pub mod signal;
pub mod sublist;
pub mod tls;
