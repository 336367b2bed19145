//! tachyon-bench: a NATS load generator and server comparison harness. It is a
//! client only: it speaks the wire protocol itself and never links the engine.

pub mod compare;
pub mod conn;
pub mod cpus;
pub mod error;
pub mod goclient;
pub mod jetstream;
pub mod link;
pub mod procfs;
pub mod replay;
pub mod report;
pub mod server;
pub mod sink;
pub mod stats;
pub mod uring;
pub mod workloads;
pub mod ws;

pub use error::{BenchError, Result};
