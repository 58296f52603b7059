//! `email` triggers: send a mail over SMTP (lettre). The connection is
//! upgraded with STARTTLS whenever the server offers it, and must be when a
//! password is sent (Argon never sends one in clear text); port 465 is TLS
//! from the start. The message id is derived from the firing's idempotency
//! key, so a mail sent twice by a retry or a redelivery carries the same
//! `Message-ID`. Connection failures and 4xx replies are retried by the
//! trigger's retry strategy; 5xx replies (an address refused, bad
//! credentials) are not.

use std::time::Duration;

use argon_crds::common::TLSConfig;
use argon_crds::secret::Secrets;
use argon_crds::sensor::EmailTrigger;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use super::Request;
use crate::{Error, Result};

/// How long one SMTP exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The mail of one firing.
pub fn prepare(trigger: &str, config: &EmailTrigger, secrets: &Secrets, redact: bool) -> Result<Request> {
    let bad = |m: String| Error::permanent(trigger, m);
    let host = config
        .host
        .clone()
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| bad("email.host is empty: name the SMTP server".into()))?;
    let port = match config.port {
        None | Some(0) => 587,
        Some(p) => u16::try_from(p).map_err(|_| bad(format!("email.port {p} is not a port")))?,
    };
    let from = config
        .from
        .clone()
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| bad("email.from is empty".into()))?;
    from.parse::<Mailbox>()
        .map_err(|e| bad(format!("email.from '{from}' is not an address: {e}")))?;
    let to: Vec<String> = config.to.iter().filter(|t| !t.trim().is_empty()).cloned().collect();
    if to.is_empty() {
        return Err(bad("email.to is empty: give at least one recipient".into()));
    }
    for address in &to {
        address
            .parse::<Mailbox>()
            .map_err(|e| bad(format!("email.to '{address}' is not an address: {e}")))?;
    }
    let password = match (&config.smtp_password, redact) {
        (None, _) => None,
        (Some(_), true) => Some(String::new()),
        (Some(selector), false) => Some(
            secrets
                .require(selector)
                .map_err(|e| bad(format!("email.smtpPassword: {e}")))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
    };
    let ca = match (config.tls.as_ref().and_then(|t| t.ca_cert_secret.as_ref()), redact) {
        (Some(selector), false) => secrets
            .bytes(selector)
            .map_err(|e| bad(format!("email.tls.caCertSecret: {e}")))?,
        _ => None,
    };
    Ok(Request::Email {
        host,
        port,
        username: config.username.clone().filter(|u| !u.is_empty()),
        from,
        to,
        subject: config.subject.clone().unwrap_or_default(),
        body: config.body.clone().unwrap_or_default(),
        password,
        insecure_skip_verify: config
            .tls
            .as_ref()
            .and_then(|t: &TLSConfig| t.insecure_skip_verify)
            .unwrap_or(false),
        ca,
    })
}

/// Sends the mail; the error says whether a retry can help.
pub async fn execute(trigger: &str, request: &Request, key: &str) -> Result<()> {
    let Request::Email {
        host,
        port,
        username,
        from,
        to,
        subject,
        body,
        password,
        insecure_skip_verify,
        ca,
    } = request
    else {
        return Err(Error::permanent(trigger, "not an email request"));
    };
    let bad = |m: String| Error::permanent(trigger, m);
    let mut message = Message::builder()
        .from(from.parse().map_err(|e| bad(format!("email.from: {e}")))?)
        .subject(subject)
        .message_id(Some(format!("<{key}@argon>")))
        .header(ContentType::TEXT_PLAIN);
    for address in to {
        message = message.to(address.parse().map_err(|e| bad(format!("email.to: {e}")))?);
    }
    let message = message
        .body(body.clone())
        .map_err(|e| bad(format!("the mail cannot be built: {e}")))?;

    let mut tls = TlsParameters::builder(host.clone()).dangerous_accept_invalid_certs(*insecure_skip_verify);
    if let Some(pem) = ca {
        let cert = Certificate::from_pem(pem).map_err(|e| bad(format!("email.tls.caCertSecret: {e}")))?;
        tls = tls.add_root_certificate(cert);
    }
    let tls = tls
        .build_rustls()
        .map_err(|e| bad(format!("TLS setup for {host}: {e}")))?;
    let tls = if *port == 465 {
        Tls::Wrapper(tls)
    } else if password.is_some() {
        Tls::Required(tls)
    } else {
        Tls::Opportunistic(tls)
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(*port)
        .tls(tls)
        .timeout(Some(TIMEOUT));
    if let Some(password) = password {
        transport = transport.credentials(Credentials::new(username.clone().unwrap_or_default(), password.clone()));
    }
    let transport = transport.build();
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(Error::permanent(
            trigger,
            format!("{host}:{port} refused the mail: {e}"),
        )),
        Err(e) => Err(Error::transient(trigger, format!("sending to {host}:{port}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailTrigger {
        EmailTrigger {
            host: Some("smtp.example.net".into()),
            port: Some(587),
            from: Some("argon@example.net".into()),
            to: vec!["ops@example.net".into()],
            subject: Some("s".into()),
            body: Some("b".into()),
            ..EmailTrigger::default()
        }
    }

    #[test]
    fn a_valid_mail_is_prepared() {
        let Request::Email { host, port, to, .. } = prepare("t", &config(), &Secrets::default(), true).unwrap() else {
            panic!("not email")
        };
        assert_eq!((host.as_str(), port), ("smtp.example.net", 587));
        assert_eq!(to, ["ops@example.net"]);
    }

    #[test]
    fn bad_addresses_and_missing_fields_are_clear_errors() {
        let mut c = config();
        c.to = vec!["not an address".into()];
        assert!(
            prepare("t", &c, &Secrets::default(), true)
                .unwrap_err()
                .to_string()
                .contains("email.to 'not an address' is not an address")
        );
        let mut c = config();
        c.to.clear();
        assert!(
            prepare("t", &c, &Secrets::default(), true)
                .unwrap_err()
                .to_string()
                .contains("email.to is empty")
        );
        let mut c = config();
        c.host = None;
        assert!(
            prepare("t", &c, &Secrets::default(), true)
                .unwrap_err()
                .to_string()
                .contains("email.host")
        );
    }
}
