//! TLS client settings shared by everything Argon connects to as a client
//! (message sources, HTTP, Slack and other triggers): rustls with the ring
//! provider, the system roots plus `caCertSecret`, an optional client
//! certificate (`clientCertSecret`/`clientKeySecret`), or no verification
//! (`insecureSkipVerify`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::common::TLSConfig;
use crate::secret::{SecretError, Secrets};

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A secret it names could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The certificates or keys are not usable.
    #[error("{0}")]
    Invalid(String),
}

/// The rustls configuration of a client for `tls` (none: the system roots).
pub fn client_config(tls: Option<&TLSConfig>, secrets: &Secrets) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let bad = |m: String| TlsError::Invalid(m);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup: {e}")))?;
    let insecure = tls.and_then(|t| t.insecure_skip_verify).unwrap_or(false);
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system certificate rustls cannot use is skipped, as curl does.
            let _ = roots.add(cert);
        }
        if let Some(sel) = tls.and_then(|t| t.ca_cert_secret.as_ref()) {
            let pem = secrets.bytes(sel)?.unwrap_or_default();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots
                    .add(cert.map_err(|e| bad(format!("CA certificate {}/{}: {e}", sel.name, sel.key)))?)
                    .map_err(|e| bad(format!("CA certificate {}/{}: {e}", sel.name, sel.key)))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let client_cert = tls.and_then(|t| t.client_cert_secret.as_ref().zip(t.client_key_secret.as_ref()));
    Ok(match client_cert {
        Some((cert, key)) => {
            let cert_pem = secrets.bytes(cert)?.unwrap_or_default();
            let key_pem = secrets.bytes(key)?.unwrap_or_default();
            let certs = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("client certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad(format!("client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    })
}

/// Accepts any server certificate (`insecureSkipVerify: true`); signatures
/// are still checked so the handshake is well formed.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
