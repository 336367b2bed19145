//! Tachyon's settings as data: the one [`Options`] struct the flags and the config file fill,
//! and the typed settings of the `authorization`, permissions, `accounts` and `tls` blocks, with
//! the positions and errors that name where they were written. No parsing: `tachyon-config`
//! reads flags and files into these; the shard core reads these and never links a parser.

pub mod accounts;
pub mod auth;
pub mod cluster;
pub mod error;
pub mod gofmt;
pub mod leafnode;
pub mod options;
pub mod permissions;
pub mod tls;
pub mod websocket;

pub use error::{ConfigError, Pos};
pub use options::{JetStreamOpts, JsSync, MigrateMode, Options, NATS_VERSION, TACHYON_VERSION};
