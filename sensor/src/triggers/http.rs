//! `http` triggers: a request with a payload built from parameters, headers
//! (plain, from secrets, from events), basic auth, a timeout, TLS options and
//! `policy.status.allow`.
//!
//! Every request carries the `Idempotency-Key` header of its firing. The
//! delivery guarantee is at least once: a crash after the request was sent
//! but before the event was acknowledged sends it again with the same key,
//! so a receiver that honours the key sees each firing exactly once.

use std::time::Duration;

use argon_crds::secret::Secrets;
use argon_crds::sensor::{HTTPTrigger, TriggerPolicy};
use base64::Engine as _;
use k8s_openapi::api::core::v1::SecretKeySelector;

use super::client::HttpClient;
use super::{IDEMPOTENCY_HEADER, Request, body_value};
use crate::params::{Events, Parameter, payload};
use crate::{Error, Result};

/// Default timeout of a request.
const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// Builds the request of one firing. With `redact`, secret values are shown
/// as `<secret NAME/KEY>` and not read.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    trigger: &str,
    config: &HTTPTrigger,
    payload_params: &[Parameter],
    header_params: &[Parameter],
    policy: Option<&TriggerPolicy>,
    events: &Events,
    secrets: &Secrets,
    key: &str,
    redact: bool,
) -> Result<Request> {
    let body = payload(payload_params, events)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    if !config.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    }
    headers.extend(config.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    for h in &config.secure_headers {
        let (Some(name), Some(from)) = (&h.name, &h.value_from) else {
            continue;
        };
        let Some(selector) = &from.secret_key_ref else {
            return Err(Error::permanent(
                trigger,
                format!("secure header {name}: only secretKeyRef is supported outside a cluster"),
            ));
        };
        let value = if redact {
            format!("<secret {}/{}>", selector.name, selector.key)
        } else {
            secrets.string(selector)?.unwrap_or_default()
        };
        headers.push((name.clone(), value));
    }
    for p in header_params {
        if let Some(v) = p.resolve(events)? {
            headers.push((p.dest.clone(), v.text()));
        }
    }
    headers.push((IDEMPOTENCY_HEADER.to_owned(), key.to_owned()));
    let (mut user, mut password) = (None, None);
    if let Some(auth) = &config.basic_auth {
        let read = |s: &Option<SecretKeySelector>| -> Result<Option<String>> {
            match s {
                Some(sel) if redact => Ok(Some(format!("<secret {}/{}>", sel.name, sel.key))),
                Some(sel) => Ok(secrets.string(sel)?),
                None => Ok(None),
            }
        };
        user = read(&auth.username)?;
        password = read(&auth.password)?;
    }
    let allow_status = policy
        .and_then(|p| p.status.as_ref())
        .map(|s| s.allow.iter().filter_map(|c| u16::try_from(*c).ok()).collect())
        .unwrap_or_default();
    Ok(Request::Http {
        method: config
            .method
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "POST".to_owned())
            .to_uppercase(),
        url: config.url.clone(),
        headers,
        body: body_value(&body),
        timeout_seconds: config
            .timeout
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_TIMEOUT_SECS),
        allow_status,
        basic_auth_user: user,
        basic_auth_password: password,
        raw_body: body,
    })
}

/// Builds the HTTP client of a trigger: rustls with the system roots, the CA
/// and client certificate from secrets, or no verification when asked.
pub fn client(trigger: &str, config: &HTTPTrigger, secrets: &Secrets) -> Result<HttpClient> {
    Ok(HttpClient::new(crate::triggers::tls::client_config(
        trigger,
        config.tls.as_ref(),
        secrets,
    )?))
}

/// Sends the request; returns the response status.
pub async fn execute(trigger: &str, client: &HttpClient, request: &Request) -> Result<u16> {
    let Request::Http {
        method,
        url,
        headers,
        timeout_seconds,
        allow_status,
        basic_auth_user,
        basic_auth_password,
        raw_body,
        ..
    } = request
    else {
        return Err(Error::permanent(trigger, "not an HTTP request"));
    };
    let mut headers = headers.clone();
    if let Some(user) = basic_auth_user {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", basic_auth_password.as_deref().unwrap_or_default()));
        headers.push(("Authorization".to_owned(), format!("Basic {token}")));
    }
    let resp = client
        .send(
            method,
            url,
            &headers,
            raw_body.clone().into(),
            Duration::from_secs(*timeout_seconds),
        )
        .await
        .map_err(|e| Error::transient(trigger, e))?;
    let status = resp.status;
    let ok = if allow_status.is_empty() {
        status < 500
    } else {
        allow_status.contains(&status)
    };
    if ok {
        Ok(status)
    } else if status >= 500 || status == 429 || status == 408 {
        Err(Error::transient(trigger, format!("{url} answered {status}")))
    } else {
        Err(Error::permanent(
            trigger,
            format!("{url} answered {status}, not in policy.status.allow {allow_status:?}"),
        ))
    }
}
