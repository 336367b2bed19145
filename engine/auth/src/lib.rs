//! Who may connect and how: the authentication service the shard core calls at CONNECT
//! (`authn`: tokens, users with plain or bcrypt passwords, nkeys, `no_auth_user`, certificate
//! mapping) and client TLS over rustls (`tls`). Both plug into `tachyon-core` through its
//! `Authenticate` and `TlsAcceptor` traits: the core links neither rustls, bcrypt nor an X.509
//! parser.

pub mod authn;
pub mod leaf_signer;
pub mod tls;

pub use authn::Authenticator;
pub use leaf_signer::{BadSeed, CredsSigner, NkeySigner};
pub use tls::{ClientTls, ServerTls, TlsError};
