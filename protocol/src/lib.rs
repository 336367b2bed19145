//! NATS client protocol: parsing what clients send, encoding what servers send (and the
//! reverse, for the bench harness), INFO/CONNECT JSON, header blocks, subject rules and
//! the error texts nats-server uses. No I/O, no async.

pub mod encode;
pub mod errors;
pub mod headers;
pub mod json;
pub mod leaf;
mod line;
pub mod parser;
pub mod route;
pub mod server_parser;
pub mod subject;

pub use parser::{ClientOp, Input, Limits, Parser, ProtocolError, PubFrame};
pub use server_parser::{ServerOp, ServerParser};
