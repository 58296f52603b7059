//! What the message-queue sources (`nats`, `mqtt`, `redis`, `redisStream`,
//! `amqp`, `sqs`) and `file` share: the event built from a message, the
//! filter, the publish that retries until the bus has stored the event (the
//! caller acknowledges the broker only after it returns `true`), and the
//! connection backoff with the loop that connects again after a failure
//! ([`Session`], [`reconnect`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use argon_crds::common::{Backoff, BasicAuth, EventSourceFilter, Int64OrString};
use argon_crds::secret::Secrets;
use argon_eventbus::Event;
use base64::Engine as _;
use k8s_openapi::api::core::v1::SecretKeySelector;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::Publisher;
use crate::error::{Error, Result};
use crate::filter::Filter;

/// The parts of a message source that do not depend on its broker.
pub(crate) struct Common {
    /// The EventSource name.
    pub source: String,
    /// The event name.
    pub event: String,
    /// The kind, the event `type`.
    pub kind: &'static str,
    filter: Option<Filter>,
    /// `metadata` of the manifest, passed in every event.
    pub metadata: BTreeMap<String, String>,
    json_body: bool,
    /// How long to wait between connection attempts.
    pub backoff: ConnectBackoff,
}

impl Common {
    pub(crate) fn new(
        source: &str,
        event: &str,
        kind: &'static str,
        filter: Option<&EventSourceFilter>,
        metadata: &BTreeMap<String, String>,
        json_body: Option<bool>,
        backoff: Option<&Backoff>,
    ) -> Result<Self> {
        let filter = filter
            .and_then(|f| f.expression.as_deref())
            .filter(|e| !e.trim().is_empty())
            .map(|e| Filter::parse(e).map_err(|err| Error::config(source, event, err.to_string())))
            .transpose()?;
        Ok(Common {
            source: source.to_owned(),
            event: event.to_owned(),
            kind,
            filter,
            metadata: metadata.clone(),
            json_body: json_body.unwrap_or(false),
            backoff: ConnectBackoff::new(backoff).map_err(|why| Error::config(source, event, why))?,
        })
    }

    /// A configuration error of this event.
    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        Error::config(&self.source, &self.event, reason)
    }

    /// The message body as upstream puts it in the event: the JSON itself
    /// with `jsonBody`, else the bytes (base64, as Go marshals `[]byte`).
    /// A `jsonBody` message that is not JSON is kept as a string rather than
    /// dropped.
    pub(crate) fn body(&self, bytes: &[u8]) -> Value {
        if self.json_body {
            self.body_json(bytes)
        } else {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }

    /// A `jsonBody` message: its JSON, or its text when it is not JSON.
    pub(crate) fn body_json(&self, bytes: &[u8]) -> Value {
        match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(event_source = %self.source, event = %self.event, error = %e, "jsonBody message is not JSON; kept as text");
                Value::String(String::from_utf8_lossy(bytes).into_owned())
            }
        }
    }

    /// Publishes the event made of `data` (with `id` when the broker gives
    /// one that is stable across redeliveries), retrying until the bus has
    /// stored it. Returns `true` once the message may be acknowledged to
    /// the broker (stored, or dropped by the filter), `false` when shut
    /// down first: then it must not be acknowledged.
    pub(crate) async fn deliver(
        &self,
        publisher: &Publisher,
        data: Value,
        id: Option<String>,
        shutdown: &CancellationToken,
    ) -> bool {
        let started = Instant::now();
        if let Some(filter) = &self.filter {
            match filter.matches(&data) {
                Ok(true) => {}
                Ok(false) => return true,
                Err(e) => {
                    tracing::warn!(event_source = %self.source, event = %self.event, error = %e, "message dropped: filter failed");
                    publisher.metrics().processing_failed(&self.source, &self.event);
                    return true;
                }
            }
        }
        let mut event = Event::new(&self.source, &self.event, self.kind, &data);
        if let Some(id) = id {
            event = event.with_id(id);
        }
        let metrics = publisher.metrics().event(&self.source, &self.event);
        let mut wait = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                return false;
            }
            if publisher.publish(&event, &metrics, started).await.is_ok() {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return false,
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// An id derived from what identifies a message at its broker, the same
    /// at every redelivery, so the bus drops a second copy.
    pub(crate) fn stable_id(&self, parts: &[&str]) -> String {
        let name = format!("{}\0{}\0{}", self.source, self.event, parts.join("\0"));
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
    }
}

/// Reads a secret for a source, as a string.
pub(crate) fn secret(common: &Common, secrets: &Secrets, selector: &SecretKeySelector) -> Result<String> {
    secrets.require(selector).map_err(|e| Error::Secret {
        source_name: common.source.clone(),
        event: common.event.clone(),
        secret: Box::new(e),
    })
}

/// The user name and password of `auth` (each empty when not set).
pub(crate) fn basic_auth(common: &Common, secrets: &Secrets, auth: &BasicAuth) -> Result<(String, String)> {
    let read = |s: &Option<SecretKeySelector>| {
        s.as_ref()
            .map(|s| secret(common, secrets, s))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    Ok((read(&auth.username)?, read(&auth.password)?))
}

/// The wait between connection attempts: `connectionBackoff`'s duration,
/// multiplied by its factor after each failure (at most 30 s), with its
/// jitter. Upstream gives up after `steps` attempts and lets Kubernetes
/// restart the pod; Argon keeps trying (one process runs every source, and
/// a broker that comes back must be picked up), and only counts `steps` to
/// warn.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ConnectBackoff {
    initial: Duration,
    factor: f64,
    jitter: f64,
    current: Duration,
    failures: u32,
}

impl ConnectBackoff {
    const MAX: Duration = Duration::from_secs(30);

    fn new(config: Option<&Backoff>) -> Result<Self, String> {
        let initial = match config.and_then(|b| b.duration.as_ref()) {
            None => Duration::from_secs(1),
            Some(Int64OrString::Int(nanos)) => Duration::from_nanos((*nanos).max(0) as u64),
            Some(Int64OrString::Str(text)) => match text.parse::<u64>() {
                Ok(nanos) => Duration::from_nanos(nanos),
                Err(_) => {
                    argon_crds::time::parse_duration(text).map_err(|why| format!("connectionBackoff.duration {why}"))?
                }
            },
        };
        let initial = initial.max(Duration::from_millis(10));
        let factor = config
            .and_then(|b| b.factor.as_ref())
            .map(|f| f.as_f64())
            .filter(|f| *f >= 1.0)
            .unwrap_or(2.0);
        let jitter = config
            .and_then(|b| b.jitter.as_ref())
            .map(|j| j.as_f64().clamp(0.0, 1.0))
            .unwrap_or(0.0);
        Ok(ConnectBackoff {
            initial,
            factor,
            jitter,
            current: initial,
            failures: 0,
        })
    }

    /// A connection worked: the next failure waits the initial duration again.
    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
        self.failures = 0;
    }

    /// The wait before the next attempt, growing it for the one after.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let base = self.current;
        self.current = base.mul_f64(self.factor).min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        if self.jitter > 0.0 {
            base.mul_f64(1.0 + self.jitter * fastrand::f64())
        } else {
            base
        }
    }

    /// Consecutive failed attempts.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Sleeps the next wait; `false` when shut down first.
    pub(crate) async fn sleep(&mut self, shutdown: &CancellationToken) -> bool {
        let wait = self.next_wait();
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = shutdown.cancelled() => false,
        }
    }
}

/// A source that consumes over one broker connection at a time: `consume`
/// connects and reads until shut down or until the connection fails, and
/// [`reconnect`] then waits the event's `connectionBackoff` and calls it
/// again.
pub(crate) trait Session {
    /// Why a connection ended.
    type Error;

    /// The wait between attempts; `consume` resets it once connected.
    fn backoff(&mut self) -> &mut ConnectBackoff;

    /// Connects and consumes until shut down (`Ok`) or until the connection
    /// fails or ends (`Err`).
    async fn consume(&mut self, publisher: &Publisher, shutdown: &CancellationToken) -> Result<(), Self::Error>;

    /// Logs why the connection ended, before the wait (each source in its
    /// own words).
    fn lost(&self, error: &Self::Error);
}

/// Runs `session` until shut down, connecting again after each failure;
/// a broker that is away is waited for, never given up on.
pub(crate) async fn reconnect(mut session: impl Session, publisher: Publisher, shutdown: CancellationToken) {
    loop {
        match session.consume(&publisher, &shutdown).await {
            Ok(()) => return,
            Err(e) => session.lost(&e),
        }
        if !session.backoff().sleep(&shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon_crds::common::Amount;

    #[test]
    fn backoff_grows_by_its_factor_up_to_the_cap_and_resets() {
        let config = Backoff {
            duration: Some(Int64OrString::Str("100ms".into())),
            factor: Some(Amount(serde_json::Number::from(3))),
            jitter: None,
            steps: Some(5),
        };
        let mut b = ConnectBackoff::new(Some(&config)).unwrap();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
        assert_eq!(b.next_wait(), Duration::from_millis(300));
        assert_eq!(b.next_wait(), Duration::from_millis(900));
        for _ in 0..10 {
            b.next_wait();
        }
        assert_eq!(b.next_wait(), ConnectBackoff::MAX);
        assert_eq!(b.failures(), 14);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn backoff_durations_are_nanoseconds_or_duration_text() {
        let nanos = Backoff {
            duration: Some(Int64OrString::Int(2_000_000_000)),
            ..Backoff::default()
        };
        assert_eq!(
            ConnectBackoff::new(Some(&nanos)).unwrap().next_wait(),
            Duration::from_secs(2)
        );
        let bad = Backoff {
            duration: Some(Int64OrString::Str("soon".into())),
            ..Backoff::default()
        };
        assert!(
            ConnectBackoff::new(Some(&bad))
                .unwrap_err()
                .contains("connectionBackoff.duration")
        );
        assert_eq!(ConnectBackoff::new(None).unwrap().next_wait(), Duration::from_secs(1));
    }

    #[test]
    fn bodies_are_json_with_json_body_else_base64() {
        let meta = BTreeMap::new();
        let json = Common::new("s", "e", "nats", None, &meta, Some(true), None).unwrap();
        assert_eq!(json.body(br#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(json.body(b"not json"), serde_json::json!("not json"));
        let raw = Common::new("s", "e", "nats", None, &meta, None, None).unwrap();
        assert_eq!(raw.body(b"hi"), serde_json::json!("aGk="));
        assert_eq!(raw.stable_id(&["a", "1"]), raw.stable_id(&["a", "1"]));
        assert_ne!(raw.stable_id(&["a", "1"]), raw.stable_id(&["a", "2"]));
    }
}
