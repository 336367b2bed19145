//! Tachyon's configuration: nats-server's command-line flags (`flags`) and its config file format
//! (the value tree in `value`, scanned by `lexer`, parsed by `parser`, mapped onto options by
//! `file`; the blocks read in `auth`, `accounts`, `tls`), filling the settings of
//! `tachyon-settings` (re-exported here: `Options`, `options`, `permissions`, the block types).
//!
//! Nothing here opens a socket, reads a certificate or hashes a password: settings are data,
//! checked for form. What they mean at run time lives in the engine.

pub mod accounts;
pub mod auth;
pub mod cluster;
pub mod file;
pub mod flags;
pub mod leafnode;
pub mod lexer;
pub mod parser;
pub mod tls;
pub mod value;
pub mod websocket;

pub use file::{load, resolve, FileConfig};
pub use parser::{parse_file, parse_str, Document};
pub use tachyon_settings::{gofmt, options, permissions};
pub use tachyon_settings::{
    JetStreamOpts, JsSync, MigrateMode, Options, NATS_VERSION, TACHYON_VERSION,
};
pub use value::{ConfigError, Item, Map, Pos, Value};
