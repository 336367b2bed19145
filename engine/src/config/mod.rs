//! nats-server's configuration file: the value tree (`value`), the scanner (`lexer`) and
//! parser (`parser`) that produce it, and the mapping onto `Options` (`options`).
//!
//! Each feature that has a config block (authorization, accounts, tls, http, jetstream) reads
//! its own block from a [`value::Map`] in its own module, so this module never learns what
//! those blocks mean.

pub mod lexer;
pub mod options;
pub mod parser;
pub mod value;

pub use options::{load, resolve, FileConfig};
pub use parser::{parse_file, parse_str, Document};
pub use value::{ConfigError, Item, Map, Pos, Value};
