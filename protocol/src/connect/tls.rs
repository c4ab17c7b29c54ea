//! Certificate checks: pinning by SHA-256 fingerprint (QUIC, wss, a self-signed gateway), and
//! the TLS 1.3 client configuration every transport uses.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::ConnectError;
use crate::token::{decode_hex, encode_hex};

/// How a client checks a server's certificate (QUIC, wss, and the gateway's HTTPS when pinned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertCheck {
    /// Accept only a leaf certificate whose SHA-256 is this (from the match result).
    Pinned([u8; 32]),
    /// DEVELOPMENT ONLY: accept any certificate. Never ship a client with this.
    InsecureAcceptAnyCertificate,
}

impl CertCheck {
    /// Pins the lower-case hex fingerprint the gateway returned.
    pub fn pinned_hex(hex: &str) -> Result<CertCheck, ConnectError> {
        let bytes = decode_hex(hex).ok_or(ConnectError::BadFingerprint)?;
        let pin: [u8; 32] = bytes.try_into().map_err(|_| ConnectError::BadFingerprint)?;
        Ok(CertCheck::Pinned(pin))
    }
}

/// A TLS 1.3 client configuration that checks the certificate with `check`, offering `alpn`;
/// never sends early data (it could be replayed).
pub(super) fn tls_client_config(
    check: &CertCheck,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinVerifier {
        pin: match check {
            CertCheck::Pinned(p) => Some(*p),
            CertCheck::InsecureAcceptAnyCertificate => None,
        },
        provider: provider.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConnectError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.enable_early_data = false;
    Ok(tls)
}

#[derive(Debug)]
struct PinVerifier {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pin) if Sha256::digest(end_entity.as_ref()).as_slice() == pin => {
                Ok(ServerCertVerified::assertion())
            }
            Some(_) => Err(rustls::Error::General(
                "server certificate does not match the pinned fingerprint".into(),
            )),
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Lower-case hex of a fingerprint (for logs and flags).
pub fn fingerprint_hex(pin: &[u8; 32]) -> String {
    encode_hex(pin)
}
