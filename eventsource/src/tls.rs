//! HTTPS on webhook ports. `serverCertSecret` and `serverKeySecret` name a
//! PEM certificate chain and its private key (the `tls.crt` / `tls.key` of a
//! Kubernetes TLS secret, or any files under `--secrets-dir`). Every event
//! served on one port must ask for the same certificate, or for none.
//!
//! Handshakes run in each connection's own task, within the listener's
//! header deadline ([`crate::listener`]).
//!
//! The message sources connect as TLS clients with [`client_config`].

use std::sync::Arc;

use argon_crds::common::TLSConfig;
use argon_crds::secret::Secrets;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The certificate and key of one port, as read from the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The PEM certificate chain, leaf first.
    pub cert: String,
    /// The PEM private key.
    pub key: String,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsFiles { .. }")
    }
}

/// The rustls configuration serving `files`, or what is wrong with them.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = CertificateDer::pem_slice_iter(files.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("serverCertSecret is not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("serverCertSecret holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    let key = PrivateKeyDer::from_pem_slice(files.key.as_bytes())
        .map_err(|e| format!("serverKeySecret is not a PEM private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("serverCertSecret and serverKeySecret do not make a usable certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The rustls configuration of a message-source client: the system roots
/// plus `caCertSecret`, an optional client certificate, or no verification
/// (`insecureSkipVerify`). The error says what is wrong, for the event's
/// configuration error.
pub fn client_config(tls: Option<&TLSConfig>, secrets: &Secrets) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let bad = |m: String| m;
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
            let pem = secrets.bytes(sel).map_err(|e| e.to_string())?.unwrap_or_default();
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
            let cert_pem = secrets.bytes(cert).map_err(|e| e.to_string())?.unwrap_or_default();
            let key_pem = secrets.bytes(key).map_err(|e| e.to_string())?.unwrap_or_default();
            let certs = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<std::result::Result<Vec<_>, _>>()
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
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
