//! nats-server's configuration file: the value tree (`value`), and — filled in by the config
//! work — the lexer/parser that produces it and the mapping onto `Options`.
//!
//! Each feature that has a config block (authorization, accounts, tls, http, jetstream) reads
//! its own block from a [`value::Map`] in its own module, so this module never learns what
//! those blocks mean.

pub mod value;

pub use value::{ConfigError, Item, Map, Pos, Value};
