//! Accounts: isolated subject spaces, and the stream/service imports that are the only way a
//! message crosses from one into another.
//!
//! Every client belongs to one account (`GLOBAL` unless its user is declared in an account).
//! Shards keep one sublist and one remote-interest index per account; routing never looks
//! outside the publisher's account except through the routes resolved here.

pub mod mapping;
pub mod table;

pub use table::{AccountId, Accounts, Route, GLOBAL};
