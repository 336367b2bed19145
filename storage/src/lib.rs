//! JetStream stream storage: a memory store and a crash-safe file store behind one API.

#[allow(dead_code)] // until the file store uses all of it
mod core;
#[allow(dead_code)]
pub mod error;
pub mod memory;
pub mod store;
pub mod subject;
pub mod types;

pub use error::{Result, StoreError};
pub use memory::MemoryStore;
pub use store::Store;
pub use types::*;
