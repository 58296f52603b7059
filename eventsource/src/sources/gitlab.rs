//! `gitlab`: project and group hooks. `X-Gitlab-Token` must equal
//! `secretToken` (constant-time compare); `X-Gitlab-Event` (`Push Hook`, ...)
//! is matched against `events` (`PushEvents`, ...).

use std::collections::BTreeMap;

use argon_crds::eventsource::GitlabEventSource;
use axum::http::request::Parts;
use bytes::Bytes;
use k8s_openapi::api::core::v1::SecretKeySelector;
use subtle::ConstantTimeEq as _;

use super::{Incoming, Receiver, git_event_data, header, parse_json, wanted};
use crate::error::{Rejection, Result};

/// The manifest event names by the `X-Gitlab-Event` header value.
const EVENT_NAMES: [(&str, &str); 17] = [
    ("Push Hook", "PushEvents"),
    ("Tag Push Hook", "TagPushEvents"),
    ("Issue Hook", "IssuesEvents"),
    ("Confidential Issue Hook", "ConfidentialIssuesEvents"),
    ("Note Hook", "NoteEvents"),
    ("Confidential Note Hook", "ConfidentialNoteEvents"),
    ("Merge Request Hook", "MergeRequestsEvents"),
    ("Wiki Page Hook", "WikiPageEvents"),
    ("Pipeline Hook", "PipelineEvents"),
    ("Job Hook", "JobEvents"),
    ("Deployment Hook", "DeploymentEvents"),
    ("Feature Flag Hook", "FeatureFlagEvents"),
    ("Release Hook", "ReleasesEvents"),
    ("Emoji Hook", "EmojiEvents"),
    ("Member Hook", "MemberEvents"),
    ("Subgroup Hook", "SubgroupEvents"),
    ("Resource Access Token Hook", "ResourceAccessTokenEvents"),
];

/// The manifest name of a GitLab event header value (`Push Hook` -> `PushEvents`).
pub fn event_name(header_value: &str) -> Option<&'static str> {
    EVENT_NAMES.iter().find(|(h, _)| *h == header_value).map(|(_, n)| *n)
}

/// A GitLab hook endpoint.
#[derive(Debug)]
pub struct Gitlab {
    token: Option<Vec<u8>>,
    events: Vec<String>,
    metadata: BTreeMap<String, String>,
}

impl Gitlab {
    /// The receiver for one GitLab event; reads `secretToken`.
    pub fn new(
        source: &str,
        event: &str,
        config: &GitlabEventSource,
        secret: impl Fn(&SecretKeySelector) -> Result<String>,
    ) -> Result<Self> {
        if config.access_token.is_some()
            && (!config.projects.is_empty() || !config.groups.is_empty() || config.project_id.is_some())
        {
            tracing::warn!(
                event_source = source,
                event,
                "accessToken with projects/groups set: argon does not register GitLab hooks; create the hook \
                 in GitLab pointing at this endpoint (receiving works as usual)"
            );
        }
        Ok(Gitlab {
            token: config
                .secret_token
                .as_ref()
                .map(secret)
                .transpose()?
                .map(String::into_bytes),
            events: config.events.clone(),
            metadata: config.metadata.clone(),
        })
    }
}

impl Receiver for Gitlab {
    fn receive(&self, request: &Parts, body: &Bytes) -> Result<Vec<Incoming>, Rejection> {
        if let Some(token) = &self.token {
            let presented = header(request, "x-gitlab-token").unwrap_or("");
            if !bool::from(presented.as_bytes().ct_eq(token)) {
                return Err(Rejection::Unauthorized("missing or invalid X-Gitlab-Token"));
            }
        }
        let Some(event_type) = header(request, "x-gitlab-event") else {
            return Err(Rejection::BadRequest("missing X-Gitlab-Event header".into()));
        };
        let name = event_name(event_type).unwrap_or(event_type);
        if !wanted(&self.events, name) {
            return Ok(Vec::new());
        }
        let payload = parse_json(body)?;
        Ok(vec![Incoming {
            // GitLab repeats the Idempotency-Key on retries of one delivery.
            id: header(request, "idempotency-key")
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            data: git_event_data(request, payload, &self.metadata),
        }])
    }
}
