//! `bitbucketserver`: Bitbucket Server (Data Center) hooks. `X-Hub-Signature`
//! (`sha256=<hex>`, HMAC of the raw body under `webhookSecret`) is checked
//! first; `diagnostics:ping` is answered without an event; with
//! `oneEventPerChange` a `repo:refs_changed` delivery gives one event per change.

use std::collections::BTreeMap;

use argon_crds::eventsource::BitbucketServerEventSource;
use axum::http::request::Parts;
use bytes::Bytes;
use k8s_openapi::api::core::v1::SecretKeySelector;
use serde_json::Value;

use super::{Incoming, Receiver, git_event_data, header, parse_json, to_raw, verify_hmac_sha256, wanted};
use crate::error::{Rejection, Result};

/// A Bitbucket Server hook endpoint.
#[derive(Debug)]
pub struct BitbucketServer {
    secret: Option<Vec<u8>>,
    events: Vec<String>,
    one_event_per_change: bool,
    metadata: BTreeMap<String, String>,
}

impl BitbucketServer {
    /// The receiver for one Bitbucket Server event; reads `webhookSecret`.
    pub fn new(
        source: &str,
        event: &str,
        config: &BitbucketServerEventSource,
        secret: impl Fn(&SecretKeySelector) -> Result<String>,
    ) -> Result<Self> {
        if config.access_token.is_some() {
            tracing::warn!(
                event_source = source,
                event,
                "accessToken set: argon does not register Bitbucket Server hooks; create the hook pointing at \
                 this endpoint (receiving works as usual)"
            );
        }
        if config.skip_branch_refs_changed_on_open_pr == Some(true) {
            tracing::warn!(
                event_source = source,
                event,
                "skipBranchRefsChangedOnOpenPR needs the Bitbucket Server API and is not applied"
            );
        }
        Ok(BitbucketServer {
            secret: config
                .webhook_secret
                .as_ref()
                .map(secret)
                .transpose()?
                .map(String::into_bytes),
            events: config.events.clone(),
            one_event_per_change: config.one_event_per_change.unwrap_or(false),
            metadata: config.metadata.clone(),
        })
    }
}

impl Receiver for BitbucketServer {
    fn receive(&self, request: &Parts, body: &Bytes) -> Result<Vec<Incoming>, Rejection> {
        if let Some(secret) = &self.secret {
            verify_hmac_sha256(secret, body, header(request, "x-hub-signature"))?;
        }
        let Some(event_type) = header(request, "x-event-key") else {
            return Err(Rejection::BadRequest("missing X-Event-Key header".into()));
        };
        if event_type == "diagnostics:ping" || !wanted(&self.events, event_type) {
            return Ok(Vec::new());
        }
        let payload = parse_json(body)?;
        let id = header(request, "x-request-id").filter(|id| !id.is_empty());
        if self.one_event_per_change
            && event_type == "repo:refs_changed"
            && let Ok(parsed) = serde_json::from_str::<Value>(payload.get())
            && let Some(changes) = parsed.get("changes").and_then(Value::as_array)
            && changes.len() > 1
        {
            return Ok(changes
                .iter()
                .enumerate()
                .map(|(i, change)| {
                    let mut one = parsed.clone();
                    one["changes"] = Value::Array(vec![change.clone()]);
                    Incoming {
                        id: id.map(|id| format!("{id}-{i}")),
                        data: git_event_data(request, &to_raw(&one), &self.metadata),
                    }
                })
                .collect());
        }
        Ok(vec![Incoming {
            id: id.map(str::to_owned),
            data: git_event_data(request, payload, &self.metadata),
        }])
    }
}
