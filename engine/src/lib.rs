//! Engine.

pub mod cli;
pub mod logging;
pub mod portsfile;
