//! JetStream stream storage: a memory store and a crash-safe file store behind one API.

pub mod consumer_state;
mod core;
pub mod direct_io;
pub mod error;
pub mod file;
pub mod frame;
pub mod io;
pub mod memory;
mod seq_index;
pub mod sim_io;
pub mod store;
pub mod subject;
pub mod types;

#[cfg(test)]
mod accounting_tests;
#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod limits_tests;

pub use consumer_state::{ConsumerState, ConsumerStateFile, PendingAck, SequencePair};
pub use direct_io::DirectIo;
pub use error::{Result, StoreError};
pub use file::{FileStore, FileStoreConfig, IoKind, Maintenance, RecoveryReport};
pub use io::{Io, IoFile, StdIo};
pub use memory::MemoryStore;
pub use sim_io::SimIo;
pub use store::Store;
pub use types::*;
