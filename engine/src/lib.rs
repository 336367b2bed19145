//! Engine.

pub mod ring;
pub mod sublist;
