//! TLS client settings of triggers: [`argon_crds::tls::client_config`], with
//! its errors as the trigger's errors.

use argon_crds::common::TLSConfig;
use argon_crds::secret::Secrets;
use argon_crds::tls::TlsError;
use rustls::ClientConfig;

use crate::{Error, Result};

/// The rustls configuration of `trigger`.
pub fn client_config(trigger: &str, tls: Option<&TLSConfig>, secrets: &Secrets) -> Result<ClientConfig> {
    argon_crds::tls::client_config(tls, secrets).map_err(|e| match e {
        TlsError::Secret(e) => Error::Secret(e),
        TlsError::Invalid(m) => Error::permanent(trigger, m),
    })
}
