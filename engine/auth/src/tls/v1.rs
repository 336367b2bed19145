//! X.509 v1 client certificates, which Go's TLS stack (so nats-server) accepts and webpki
//! refuses outright (it parses v3 only). A v1 certificate has no extensions, so there is no
//! path building to do: it is accepted when a configured CA issued it directly (issuer name
//! equals the CA's subject, and the CA's key verifies its signature) and it is within its
//! validity period. Every v3 certificate goes to webpki unchanged.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// webpki for v3 certificates, the direct check above for v1 (and v2) ones.
#[derive(Debug)]
pub struct AcceptV1 {
    inner: Arc<dyn ClientCertVerifier>,
    roots: Vec<CertificateDer<'static>>,
    algs: WebPkiSupportedAlgorithms,
}

impl AcceptV1 {
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        roots: Vec<CertificateDer<'static>>,
        algs: WebPkiSupportedAlgorithms,
    ) -> AcceptV1 {
        AcceptV1 { inner, roots, algs }
    }
}

fn bad(e: CertificateError) -> Error {
    Error::InvalidCertificate(e)
}

/// Whether `der` is a certificate older than v3 (`None`: not a certificate at all).
fn before_v3(der: &[u8]) -> Option<bool> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.version().0 < 2)
}

/// One DER element: (tag, contents, the rest after it). Definite lengths only, as DER has.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// A BIT STRING's bits, which must be whole bytes.
fn bits(contents: &[u8]) -> Option<&[u8]> {
    match contents.split_first() {
        Some((0, b)) => Some(b),
        _ => None,
    }
}

/// (the signed TBSCertificate as encoded, the signature algorithm's contents, the signature).
fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, _, after_tbs) = tlv(cert)? else {
        return None;
    };
    let tbs = &cert[..cert.len() - after_tbs.len()];
    let (0x30, alg, rest) = tlv(after_tbs)? else {
        return None;
    };
    let (0x03, sig, _) = tlv(rest)? else {
        return None;
    };
    Some((tbs, alg, bits(sig)?))
}

/// (the key algorithm's contents, the key) of a SubjectPublicKeyInfo.
fn spki_parts(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, inner, _) = tlv(spki)? else {
        return None;
    };
    let (0x30, alg, rest) = tlv(inner)? else {
        return None;
    };
    let (0x03, key, _) = tlv(rest)? else {
        return None;
    };
    Some((alg, bits(key)?))
}

/// Verifies `signature` over `message` with the key of `spki`, by any supported algorithm
/// whose key type is the key's and (when given) whose signature algorithm is `sig_alg`.
fn verify_with(
    algs: &[&dyn SignatureVerificationAlgorithm],
    spki: &[u8],
    sig_alg: Option<&[u8]>,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Some((key_alg, key)) = spki_parts(spki) else {
        return false;
    };
    algs.iter().any(|a| {
        a.public_key_alg_id().as_ref() == key_alg
            && sig_alg.is_none_or(|s| a.signature_alg_id().as_ref() == s)
            && a.verify_signature(key, message, signature).is_ok()
    })
}

impl AcceptV1 {
    fn verify_v1(&self, end_entity: &[u8], now: UnixTime) -> Result<(), Error> {
        let (_, leaf) = X509Certificate::from_der(end_entity)
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        let now = x509_parser::time::ASN1Time::from_timestamp(now.as_secs() as i64)
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        if now < leaf.validity().not_before {
            return Err(bad(CertificateError::NotValidYet));
        }
        if now > leaf.validity().not_after {
            return Err(bad(CertificateError::Expired));
        }
        let (tbs, sig_alg, signature) =
            signed_parts(end_entity).ok_or(bad(CertificateError::BadEncoding))?;
        let issued = self.roots.iter().any(|root| {
            let Ok((_, ca)) = X509Certificate::from_der(root) else {
                return false;
            };
            ca.subject().as_raw() == leaf.issuer().as_raw()
                && verify_with(
                    self.algs.all,
                    ca.public_key().raw,
                    Some(sig_alg),
                    tbs,
                    signature,
                )
        });
        if issued {
            Ok(())
        } else {
            Err(bad(CertificateError::UnknownIssuer))
        }
    }

    /// A handshake signature: by the certificate's own key for v1, by webpki (`webpki`) for v3.
    fn verify_handshake(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        webpki: impl FnOnce(&dyn ClientCertVerifier) -> Result<HandshakeSignatureValid, Error>,
    ) -> Result<HandshakeSignatureValid, Error> {
        if before_v3(cert) == Some(true) {
            self.verify_v1_handshake(message, cert, dss)
        } else {
            webpki(self.inner.as_ref())
        }
    }

    /// The handshake signature of a v1 certificate's key.
    fn verify_v1_handshake(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let (_, leaf) =
            X509Certificate::from_der(cert).map_err(|_| bad(CertificateError::BadEncoding))?;
        let scheme = dss.scheme;
        let candidates = self
            .algs
            .mapping
            .iter()
            .find(|(s, _)| *s == scheme)
            .map(|(_, algs)| *algs)
            .ok_or(Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        if verify_with(
            candidates,
            leaf.public_key().raw,
            None,
            message,
            dss.signature(),
        ) {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(bad(CertificateError::BadSignature))
        }
    }
}

impl ClientCertVerifier for AcceptV1 {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if before_v3(end_entity) == Some(true) {
            self.verify_v1(end_entity, now)?;
            return Ok(ClientCertVerified::assertion());
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_handshake(message, cert, dss, |v| {
            v.verify_tls12_signature(message, cert, dss)
        })
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.verify_handshake(message, cert, dss, |v| {
            v.verify_tls13_signature(message, cert, dss)
        })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_short_and_long() {
        assert_eq!(
            tlv(&[0x30, 2, 1, 2, 9]),
            Some((0x30, &[1u8, 2][..], &[9u8][..]))
        );
        let mut long = vec![0x04, 0x81, 200];
        long.extend(std::iter::repeat_n(7u8, 200));
        let (tag, body, rest) = tlv(&long).expect("long form");
        assert_eq!((tag, body.len(), rest.len()), (4, 200, 0));
        assert_eq!(tlv(&[0x30, 5, 1]), None, "truncated");
        assert_eq!(tlv(&[0x30, 0x80]), None, "indefinite length is not DER");
        assert_eq!(bits(&[1, 0xff]), None, "partial bytes");
    }
}
