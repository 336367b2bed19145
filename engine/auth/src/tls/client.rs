//! The rustls client configuration of a leafnode remote's `tls {}` (Tachyon dialing a hub
//! that wants TLS), built once at start; it implements the core's `TlsConnector`.

use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tachyon_core::tls::{Handshake, HandshakeError, TlsConnector};
use tachyon_settings::leafnode::LeafTls;

use super::server::{load_chain, load_roots, TlsError};

#[derive(Debug, Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub timeout: Duration,
}

impl TlsConnector for ClientTls {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn connect<'a>(&'a self, stream: &'a mut TcpStream, server_name: &'a str) -> Handshake<'a> {
        Box::pin(async move {
            let name = ServerName::try_from(server_name.to_string())
                .map_err(|e| HandshakeError::Tls(format!("server name {server_name:?}: {e}")))?;
            let conn = ClientConnection::new(self.config.clone(), name)
                .map_err(|e| HandshakeError::Tls(e.to_string()))?;
            super::session::establish_client(conn, stream).await
        })
    }
}

impl ClientTls {
    /// Reads the CA and (optional) client certificate files.
    pub fn load(cfg: &LeafTls) -> Result<ClientTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = if cfg.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else {
            let ca = cfg.ca_file.as_deref().ok_or_else(|| {
                TlsError::Rustls(
                    "a leafnode remote's tls {} needs ca_file (or insecure: true)".into(),
                )
            })?;
            builder.with_root_certificates(load_roots(ca)?.0)
        };
        let config = match (&cfg.cert_file, &cfg.key_file) {
            (Some(cert), Some(key)) => {
                let chain = load_chain(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
                    path: key.to_path_buf(),
                    reason: e.to_string(),
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Certificate {
                        path: cert.to_path_buf(),
                        reason: e.to_string(),
                    })?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(ClientTls {
            config: Arc::new(config),
            timeout: cfg.timeout,
        })
    }
}

/// `insecure: true`: any hub certificate is accepted (its signatures are still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
