//! HTTPS on webhook ports. `serverCertSecret` and `serverKeySecret` name a
//! PEM certificate chain and its private key (the `tls.crt` / `tls.key` of a
//! Kubernetes TLS secret, or any files under `--secrets-dir`). Every event
//! served on one port must ask for the same certificate, or for none.
//!
//! Handshakes run in each connection's own task, within the listener's
//! header deadline ([`crate::listener`]).
//!
//! The message sources connect as TLS clients with
//! [`argon_crds::tls::client_config`].

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
