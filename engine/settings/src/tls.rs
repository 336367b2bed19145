//! What an operator asks of client TLS, from a `tls {}` block or the `--tls*` flags, with
//! nats-server's defaults. Nothing here touches a file: certificates are read at start.

use std::path::PathBuf;
use std::time::Duration;

/// nats-server's `TLS_TIMEOUT`: how long a client has to complete its handshake.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA bundle client certificates are verified against (only used with `verify`).
    pub ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `ca_file`.
    pub verify: bool,
    /// `verify_and_map`: also take the user from the client certificate.
    pub map: bool,
    /// Handshake deadline; the connection is closed when it passes.
    pub timeout: Duration,
    /// Handshake before INFO (clients' `tls_first`), instead of right after it.
    pub handshake_first: bool,
    /// With `handshake_first`: a client that sends nothing for this long gets INFO first after
    /// all (`handshake_first: auto` or a duration); zero waits for the handshake forever.
    pub fallback: Duration,
}

/// nats-server's `DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK_DELAY`, for `handshake_first: auto`.
pub const DEFAULT_FALLBACK_DELAY: Duration = Duration::from_millis(50);

impl TlsConfig {
    /// The configuration the `--tlscert/--tlskey/--tlscacert/--tlsverify` flags describe.
    pub fn from_flags(
        cert_file: PathBuf,
        key_file: PathBuf,
        ca_file: Option<PathBuf>,
        verify: bool,
    ) -> TlsConfig {
        TlsConfig {
            cert_file,
            key_file,
            ca_file,
            verify,
            map: false,
            timeout: DEFAULT_TLS_TIMEOUT,
            handshake_first: false,
            fallback: Duration::ZERO,
        }
    }
}
