//! The event history API of `argon run` over HTTP: stored events, one event
//! with the workflows it created, replay, and the event flow.

use reqwest::Method;
use serde_json::Value;

use crate::http::{HttpClient, encode};
use crate::{Error, Result};

/// Which stored events to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this EventSource's events.
    pub source: Option<String>,
    /// Only events of this name.
    pub event: Option<String>,
    /// Only events stored since: RFC 3339, or a duration back from now (`1h`).
    pub since: Option<String>,
    /// At most this many per page.
    pub limit: Option<usize>,
    /// Where the previous page ended.
    pub continue_token: Option<String>,
}

/// A page of stored events, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventPage {
    /// Each event: `context`, `data`, `bus`, `sequence`, `subject`, `storedAt`.
    pub items: Vec<Value>,
    /// Pass as [`EventQuery::continue_token`] for the next page.
    pub continue_token: Option<String>,
}

impl HttpClient {
    /// A page of the stored events.
    pub async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        let mut pairs = Vec::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                pairs.push(format!("{k}={}", encode(v)));
            }
        };
        put("source", &query.source);
        put("event", &query.event);
        put("since", &query.since);
        put("continue", &query.continue_token);
        put("limit", &query.limit.map(|l| l.to_string()));
        let path = if pairs.is_empty() {
            "/api/v1/events".to_owned()
        } else {
            format!("/api/v1/events?{}", pairs.join("&"))
        };
        let body = self.events_call(Method::GET, &path).await?;
        Ok(EventPage {
            items: body["items"].as_array().cloned().unwrap_or_default(),
            continue_token: body["metadata"]["continue"].as_str().map(str::to_owned),
        })
    }

    /// One stored event, with the workflows it created (`workflows`).
    pub async fn get_event(&self, id: &str) -> Result<Value> {
        self.events_call(Method::GET, &format!("/api/v1/events/{}", encode(id)))
            .await
    }

    /// Replays a stored event (to `sensor` only, when given); the new event.
    pub async fn replay_event(&self, id: &str, sensor: Option<&str>) -> Result<Value> {
        let mut path = format!("/api/v1/events/{}/replay", encode(id));
        if let Some(sensor) = sensor {
            path.push_str(&format!("?sensor={}", encode(sensor)));
        }
        self.events_call(Method::POST, &path).await
    }

    /// The event flow: EventSources, Sensors, triggers and workflows with
    /// counts per edge since `since` (default 24h).
    pub async fn event_flow(&self, since: Option<&str>) -> Result<Value> {
        let path = match since {
            Some(s) => format!("/api/v1/event-flow?since={}", encode(s)),
            None => "/api/v1/event-flow".to_owned(),
        };
        self.events_call(Method::GET, &path).await
    }

    /// Calls the event API: its refusals (4xx) become [`Error::Refused`]
    /// with the server's message.
    async fn events_call(&self, method: Method, path: &str) -> Result<Value> {
        let resp = self
            .request(method, path)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot reach the argon server at {}: {e}", self.base())))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(format!("reading the server's answer: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"].as_str().unwrap_or_default().to_owned();
        Err(match status.as_u16() {
            401 => Error::Unavailable(format!(
                "the argon server refused the request: {message} (set --auth-token-file or ARGON_AUTH_TOKEN)"
            )),
            403 => Error::Unavailable(format!(
                "the argon server refused the request: {message} (this needs the read-write token)"
            )),
            400..=499 => Error::Refused(message),
            _ => Error::Unavailable(format!("the argon server answered {status}: {message}")),
        })
    }
}
