//! Tachyon's configuration: nats-server's command-line flags (`flags`), its config file format
//! (the value tree in `value`, scanned by `lexer`, parsed by `parser`, mapped onto options by
//! `file`), the one [`Options`] struct both fill, and the typed settings of the blocks other
//! crates act on (`auth`, `permissions`, `accounts`, `tls`).
//!
//! Nothing here opens a socket, reads a certificate or hashes a password: settings are data,
//! checked for form. What they mean at run time lives in the engine.

pub mod accounts;
pub mod auth;
pub mod file;
pub mod flags;
pub mod lexer;
pub mod options;
pub mod parser;
pub mod permissions;
pub mod tls;
pub mod value;

pub use file::{load, resolve, FileConfig};
pub use options::{JetStreamOpts, MigrateMode, Options, NATS_VERSION, TACHYON_VERSION};
pub use parser::{parse_file, parse_str, Document};
pub use value::{ConfigError, Item, Map, Pos, Value};
