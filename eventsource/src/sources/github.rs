//! `github`: repository and organization hooks. The `X-Hub-Signature-256`
//! HMAC is checked over the raw body before anything is parsed; `ping` is
//! answered without an event; `X-GitHub-Delivery` is the event id, so a
//! redelivered hook is dropped by the bus dedup window.

use std::collections::BTreeMap;

use argon_crds::eventsource::GithubEventSource;
use axum::http::request::Parts;
use bytes::Bytes;
use k8s_openapi::api::core::v1::SecretKeySelector;

use super::{Incoming, Receiver, content_type, git_event_data, header, parse_json, verify_hmac_sha256, wanted};
use crate::error::{Rejection, Result};

/// A GitHub hook endpoint.
#[derive(Debug)]
pub struct Github {
    secret: Option<Vec<u8>>,
    events: Vec<String>,
    metadata: BTreeMap<String, String>,
}

impl Github {
    /// The receiver for one GitHub event; reads `webhookSecret`.
    pub fn new(
        source: &str,
        event: &str,
        config: &GithubEventSource,
        secret: impl Fn(&SecretKeySelector) -> Result<String>,
    ) -> Result<Self> {
        if config.api_token.is_some() || config.github_app.is_some() {
            tracing::warn!(
                event_source = source,
                event,
                "apiToken/githubApp set: argon does not register GitHub hooks; create the hook in GitHub \
                 pointing at this endpoint (receiving works as usual)"
            );
        }
        Ok(Github {
            secret: config
                .webhook_secret
                .as_ref()
                .map(secret)
                .transpose()?
                .map(String::into_bytes),
            events: config.events.clone(),
            metadata: config.metadata.clone(),
        })
    }
}

impl Receiver for Github {
    fn receive(&self, request: &Parts, body: &Bytes) -> Result<Vec<Incoming>, Rejection> {
        if let Some(secret) = &self.secret {
            verify_hmac_sha256(secret, body, header(request, "x-hub-signature-256"))?;
        }
        let Some(event_type) = header(request, "x-github-event") else {
            return Err(Rejection::BadRequest("missing X-GitHub-Event header".into()));
        };
        if event_type == "ping" && !self.events.iter().any(|e| e == "ping") {
            return Ok(Vec::new());
        }
        if !wanted(&self.events, event_type) {
            return Ok(Vec::new());
        }
        let form_payload: String;
        let payload = match content_type(request).as_str() {
            "application/x-www-form-urlencoded" => {
                form_payload = form_urlencoded::parse(body)
                    .find(|(k, _)| k == "payload")
                    .map(|(_, v)| v.into_owned())
                    .ok_or_else(|| Rejection::BadRequest("form body has no 'payload' field".into()))?;
                parse_json(form_payload.as_bytes())?
            }
            _ => parse_json(body)?,
        };
        Ok(vec![Incoming {
            id: header(request, "x-github-delivery")
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            data: git_event_data(request, payload, &self.metadata),
        }])
    }
}
