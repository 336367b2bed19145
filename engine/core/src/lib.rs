//! Tachyon's shard core: shards, connections, subscription index, cross-shard routing, and
//! the shard side of monitoring and reload. Start-up, listeners, logging and the HTTP monitor
//! are the server's (`tachyon-server`); flags and the config file are `tachyon-config`'s.
//!
//! See ARCHITECTURE.md for the map of these modules and the invariants they keep.

pub mod accounts;
pub mod auth;
pub mod backlog;
pub mod client;
pub mod conn;
pub mod doorbell;
pub mod envelope;
pub mod global;
pub mod gotext;
pub mod handover;
pub mod interest;
pub mod leaf;
pub mod monitor;
pub mod outlet;
pub mod piece;
pub mod reload;
pub mod ring;
pub mod route;
pub mod service;
pub mod shard;
pub mod signal;
pub mod socket;
pub mod sublist;
pub mod tls;
pub mod websocket;
