//! Trigger kinds, one module each. A trigger first *prepares* a [`Request`]
//! from the events (pure: parameters applied, resource loaded, headers
//! resolved) — what the dry run prints — then *executes* it.

pub mod client;
pub mod email;
pub mod http;
pub mod k8s;
pub mod log;
pub mod nats;
pub mod slack;
pub mod tls;
pub mod workflow;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Label with the sensor name on created objects.
pub const LABEL_SENSOR: &str = "events.argoproj.io/sensor";
/// Label with the trigger name on created objects.
pub const LABEL_TRIGGER: &str = "events.argoproj.io/trigger";
/// Label with the id of the event that fired the trigger (the newest of
/// the events used) on created workflows.
pub const LABEL_EVENT: &str = "events.argon.dev/event";
/// Label with the id of the original event when the firing event is a replay.
pub const LABEL_REPLAY_OF: &str = "events.argon.dev/replay-of";
/// Annotation with the ids of every event used, by dependency, as JSON.
pub const ANNOTATION_EVENTS: &str = "events.argon.dev/events";
/// HTTP header carrying the idempotency key of a firing.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Exactly what a trigger does for one firing.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Request {
    /// A workflow submission or action through the engine client.
    #[serde(rename_all = "camelCase")]
    Workflow {
        /// `submit`, `resubmit`, `suspend`, `resume`, `retry`, `terminate` or `stop`.
        operation: String,
        /// Namespace of the workflow.
        namespace: String,
        /// Name of the workflow an action applies to (not for submit).
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The workflow submitted, with parameters applied.
        #[serde(skip_serializing_if = "Option::is_none")]
        workflow: Option<Value>,
    },
    /// A Kubernetes object operation.
    #[serde(rename_all = "camelCase")]
    K8s {
        /// `create`, `update`, `patch` or `delete`.
        operation: String,
        /// Patch type for `patch`.
        #[serde(skip_serializing_if = "Option::is_none")]
        patch_strategy: Option<String>,
        /// The object, with parameters applied, labels and a deterministic name.
        resource: Value,
    },
    /// An HTTP request.
    #[serde(rename_all = "camelCase")]
    Http {
        method: String,
        url: String,
        /// Headers (secret values shown as `<secret NAME/KEY>` in a dry run).
        headers: Vec<(String, String)>,
        /// The body: JSON when it parses as JSON, else text.
        body: Value,
        /// Request timeout in seconds.
        timeout_seconds: u64,
        /// Statuses that count as success (empty: any status below 500).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        allow_status: Vec<u16>,
        /// Basic auth user (the password is never printed).
        #[serde(skip_serializing_if = "Option::is_none")]
        basic_auth_user: Option<String>,
        #[serde(skip)]
        basic_auth_password: Option<String>,
        #[serde(skip)]
        raw_body: Vec<u8>,
    },
    /// A log line with the events.
    #[serde(rename_all = "camelCase")]
    Log {
        /// The events that fired the trigger, by dependency.
        events: Value,
    },
    /// A NATS message.
    #[serde(rename_all = "camelCase")]
    Nats {
        url: String,
        subject: String,
        /// The message: JSON when it parses as JSON, else text.
        payload: Value,
        /// Published through JetStream, waiting for the stream's ack.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        jet_stream: bool,
        #[serde(skip)]
        raw_payload: Vec<u8>,
    },
    /// A Slack `chat.postMessage` call.
    #[serde(rename_all = "camelCase")]
    Slack {
        url: String,
        /// The JSON posted (the token goes in a header, never printed).
        body: Value,
        /// The thread aggregation key, when messages are threaded.
        #[serde(skip_serializing_if = "Option::is_none")]
        thread_key: Option<String>,
        /// Replies in a thread are also shown in the channel.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        broadcast: bool,
        #[serde(skip)]
        token: String,
    },
    /// A mail sent over SMTP.
    #[serde(rename_all = "camelCase")]
    Email {
        host: String,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        from: String,
        to: Vec<String>,
        subject: String,
        body: String,
        #[serde(skip)]
        password: Option<String>,
        #[serde(skip)]
        insecure_skip_verify: bool,
        #[serde(skip)]
        ca: Option<Vec<u8>>,
    },
}

/// The idempotency key of a firing: a hash of the sensor, the trigger and the
/// sorted ids of the events used. The same events always give the same key.
pub fn idempotency_key<'a>(sensor: &str, trigger: &str, event_ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut ids: Vec<&str> = event_ids.into_iter().collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    h.update(sensor.as_bytes());
    h.update([0]);
    h.update(trigger.as_bytes());
    for id in ids {
        h.update([0]);
        h.update(id.as_bytes());
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Bytes as a JSON value when they parse as JSON, else as a string.
pub(crate) fn body_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_ignore_event_order_and_differ_otherwise() {
        let a = idempotency_key("s", "t", ["e1", "e2"]);
        assert_eq!(a, idempotency_key("s", "t", ["e2", "e1"]));
        assert_eq!(a.len(), 32);
        assert_ne!(a, idempotency_key("s", "t2", ["e1", "e2"]));
        assert_ne!(a, idempotency_key("s2", "t", ["e1", "e2"]));
        assert_ne!(a, idempotency_key("s", "t", ["e1"]));
    }
}
