//! The rustls server configuration, built once at start from a [`TlsConfig`] and shared by
//! every shard (rustls configurations are immutable and `Send + Sync`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use glommio::net::TcpStream;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tachyon_core::tls::{Handshake, HandshakeError, TlsAcceptor, TlsSettings};

use tachyon_config::tls::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("error parsing X509 certificate/key pair: {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("error parsing X509 certificate/key pair: {path}: no certificate found")]
    NoCertificate { path: PathBuf },
    #[error("error parsing X509 certificate/key pair: {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("failed to parse root ca certificate {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("client certificate verification requires a ca_file (tlscacert)")]
    VerifyWithoutCa,
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// Everything a shard needs to accept TLS clients.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub settings: TlsSettings,
}

impl TlsAcceptor for ServerTls {
    fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    fn handshake<'a>(&'a self, stream: &'a mut TcpStream, pre: &'a [u8]) -> Handshake<'a> {
        Box::pin(async move {
            let conn = ServerConnection::new(self.config.clone())
                .map_err(|e| HandshakeError::Tls(e.to_string()))?;
            super::session::establish(conn, stream, pre).await
        })
    }
}

impl ServerTls {
    /// Reads the certificate, key and CA files and builds the rustls configuration.
    /// `allow_non_tls` is the top-level option of that name.
    pub fn load(cfg: &TlsConfig, allow_non_tls: bool) -> Result<ServerTls, TlsError> {
        let chain = load_chain(&cfg.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&cfg.key_file).map_err(|e| TlsError::Key {
            path: cfg.key_file.clone(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        // Like nats-server, a CA file without `verify` asks no certificate of the client.
        let builder = if cfg.verify {
            let ca = cfg.ca_file.as_deref().ok_or(TlsError::VerifyWithoutCa)?;
            let (roots, anchors) = load_roots(ca)?;
            let algs = provider.signature_verification_algorithms;
            let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            // X.509 v1 client certificates, as Go accepts them (`v1.rs`).
            let verifier = Arc::new(super::v1::AcceptV1::new(webpki, anchors, algs));
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Certificate {
                path: cfg.cert_file.clone(),
                reason: e.to_string(),
            })?;
        Ok(ServerTls {
            config: Arc::new(config),
            settings: TlsSettings {
                timeout: cfg.timeout,
                handshake_first: cfg.handshake_first,
                fallback: cfg.fallback,
                allow_non_tls,
                verify: cfg.verify,
            },
        })
    }
}

pub(super) fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |e: rustls_pki_types::pem::Error| TlsError::Certificate {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The CA file as rustls trust anchors, and as the certificates themselves.
pub(super) fn load_roots(
    path: &Path,
) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), TlsError> {
    let bad = |reason: String| TlsError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert.clone()).map_err(|e| bad(e.to_string()))?;
        certs.push(cert);
    }
    if roots.is_empty() {
        return Err(bad("no certificate found".to_string()));
    }
    Ok((roots, certs))
}
