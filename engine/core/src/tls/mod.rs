//! Client TLS: the `tls {}` block and `--tls*` flags (`settings`), the rustls server
//! configuration built once at start (`server`), the per-connection session shared by a
//! connection's reader and writer tasks (`session`), and the identity a client certificate maps
//! to for `verify_and_map` (`identity`).
//!
//! A plaintext connection never touches this module after accept: the reader and writer pick
//! their path once per connection, so the per-message path of a plain client is unchanged.

pub mod identity;
pub mod server;
pub mod session;

pub use identity::CertIdentity;
pub use server::{ServerTls, TlsError};
pub use session::{accept, Accepted, HandshakeError, Start, TlsReader, TlsWriter};
pub use tachyon_config::tls::{
    from_config, TlsConfig, DEFAULT_FALLBACK_DELAY, DEFAULT_TLS_TIMEOUT,
};
