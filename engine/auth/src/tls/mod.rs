//! Client TLS over rustls: the server configuration built once at start (`server`, which
//! implements the core's `TlsAcceptor`), the session the core drives after the handshake
//! (`session`), and the identity a client certificate maps to for `verify_and_map`
//! (`identity`).

pub mod client;
pub mod identity;
pub mod server;
pub mod session;
pub mod v1;

pub use client::ClientTls;
pub use identity::CertIdentity;
pub use server::{ServerTls, TlsError};
