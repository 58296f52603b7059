//! `bitbucket` (cloud): repository hooks. Bitbucket Cloud does not sign
//! deliveries; protect the endpoint with the webhook `authSecret` if needed.
//! `X-Event-Key` (`repo:push`, ...) is matched against `events`.

use std::collections::BTreeMap;

use argon_crds::eventsource::BitbucketEventSource;
use axum::http::request::Parts;
use bytes::Bytes;

use super::{Incoming, Receiver, git_event_data, header, parse_json, wanted};
use crate::error::Rejection;

/// A Bitbucket Cloud hook endpoint.
#[derive(Debug)]
pub struct Bitbucket {
    events: Vec<String>,
    metadata: BTreeMap<String, String>,
}

impl Bitbucket {
    /// The receiver for one Bitbucket event.
    pub fn new(source: &str, event: &str, config: &BitbucketEventSource) -> Self {
        if !config.repositories.is_empty() || config.owner.is_some() {
            tracing::warn!(
                event_source = source,
                event,
                "auth with repositories set: argon does not register Bitbucket hooks; create the hook in \
                 Bitbucket pointing at this endpoint (receiving works as usual)"
            );
        }
        Bitbucket {
            events: config.events.clone(),
            metadata: config.metadata.clone(),
        }
    }
}

impl Receiver for Bitbucket {
    fn receive(&self, request: &Parts, body: &Bytes) -> Result<Vec<Incoming>, Rejection> {
        let Some(event_type) = header(request, "x-event-key") else {
            return Err(Rejection::BadRequest("missing X-Event-Key header".into()));
        };
        if !wanted(&self.events, event_type) {
            return Ok(Vec::new());
        }
        let payload = parse_json(body)?;
        Ok(vec![Incoming {
            // The same on every retry of one delivery.
            id: header(request, "x-request-uuid")
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            data: git_event_data(request, payload, &self.metadata),
        }])
    }
}
