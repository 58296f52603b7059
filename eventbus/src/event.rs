//! The event envelope carried on the bus: a CloudEvents 1.0 context plus data,
//! encoded as JSON `{"context": {...}, "data": ...}`.
//!
//! JSON data is embedded as JSON (not base64), so a sensor reads
//! `data.body.x` straight from the envelope. Data that is not JSON is carried
//! as `"data_base64": "..."` (the CloudEvents JSON-format name for binary data).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error::Result;

/// The CloudEvents spec version Argon emits.
pub const SPEC_VERSION: &str = "1.0";

/// The content type of JSON data.
pub const APPLICATION_JSON: &str = "application/json";

/// One event: where it came from and what it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// CloudEvents attributes.
    pub context: EventContext,
    /// The payload.
    pub data: Data,
}

/// The CloudEvents attributes of an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventContext {
    /// Unique id of the event; the bus drops a second publish of the same id
    /// within its dedup window.
    pub id: String,
    /// The EventSource name.
    pub source: String,
    /// Always "1.0".
    pub specversion: String,
    /// The kind of source, e.g. "webhook", "calendar".
    #[serde(rename = "type")]
    pub r#type: String,
    /// Media type of `data`, e.g. "application/json".
    pub datacontenttype: String,
    /// The event name inside the EventSource.
    pub subject: String,
    /// When the event was produced.
    pub time: DateTime<Utc>,
    /// Argon's extension attribute on a replay: the id of the event it
    /// replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argonreplayof: Option<String>,
    /// Argon's extension attribute on a replay meant for one sensor: that
    /// sensor's name (the others acknowledge it without acting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argonsensor: Option<String>,
}

/// The payload of an event.
#[derive(Clone)]
pub enum Data {
    /// Valid JSON text, kept verbatim.
    Json(Box<RawValue>),
    /// Anything else.
    Binary(Bytes),
}

impl Event {
    /// A new event with a fresh time-ordered id, the current time and JSON data.
    pub fn new(source: &str, subject: &str, kind: &str, data: &serde_json::Value) -> Self {
        Self::with_raw_data(source, subject, kind, Data::json(data))
    }

    /// A new event with a fresh time-ordered id, the current time and `data`
    /// as it is (JSON data is `application/json`, other data
    /// `application/octet-stream`).
    pub fn with_raw_data(source: &str, subject: &str, kind: &str, data: Data) -> Self {
        let content_type = match data {
            Data::Json(_) => APPLICATION_JSON,
            Data::Binary(_) => "application/octet-stream",
        };
        Event {
            context: EventContext {
                id: uuid::Uuid::now_v7().to_string(),
                source: source.to_owned(),
                specversion: SPEC_VERSION.to_owned(),
                r#type: kind.to_owned(),
                datacontenttype: content_type.to_owned(),
                subject: subject.to_owned(),
                time: Utc::now(),
                argonreplayof: None,
                argonsensor: None,
            },
            data,
        }
    }

    /// A replay of this event: the same source, subject, type and data under
    /// a new id (so the triggers' idempotency keys are new and they fire
    /// again) and the current time, recording the id it replays and, when
    /// given, the only sensor that is to act on it.
    pub fn replay(&self, sensor: Option<&str>) -> Event {
        let mut copy = self.clone();
        copy.context.id = uuid::Uuid::now_v7().to_string();
        copy.context.time = Utc::now();
        // A replay of a replay replays the original.
        copy.context.argonreplayof = Some(
            self.context
                .argonreplayof
                .clone()
                .unwrap_or_else(|| self.context.id.clone()),
        );
        copy.context.argonsensor = sensor.filter(|s| !s.is_empty()).map(str::to_owned);
        copy
    }

    /// Whether a sensor named `sensor` is to act on this event: every
    /// sensor, unless it is a replay aimed at another one.
    pub fn is_for_sensor(&self, sensor: &str) -> bool {
        self.context.argonsensor.as_deref().is_none_or(|s| s == sensor)
    }

    /// Replaces the id (e.g. with one derived from the request, for dedup).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.context.id = id.into();
        self
    }

    /// Replaces the data; the content type follows (`application/json` for
    /// JSON data, unchanged otherwise).
    pub fn with_data(mut self, data: Data) -> Self {
        if matches!(data, Data::Json(_)) {
            APPLICATION_JSON.clone_into(&mut self.context.datacontenttype);
        }
        self.data = data;
        self
    }

    /// Encodes the envelope as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, a timestamp and verbatim JSON cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Appends the envelope, as JSON, to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // As in `to_json`: writing to a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }

    /// Decodes an envelope from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

impl Data {
    /// JSON data.
    pub fn json(value: &serde_json::Value) -> Self {
        // A serde_json::Value always serializes to valid JSON.
        Data::Json(serde_json::value::to_raw_value(value).unwrap_or_else(|_| null()))
    }

    /// Data received with a content type: kept as JSON when the type says JSON
    /// (`application/json`, `*+json`, `text/json`) and the bytes parse as JSON.
    pub fn from_bytes(content_type: &str, bytes: Bytes) -> Self {
        if is_json_content_type(content_type)
            && let Ok(text) = std::str::from_utf8(&bytes)
            && let Ok(raw) = RawValue::from_string(text.to_owned())
        {
            return Data::Json(raw);
        }
        Data::Binary(bytes)
    }

    /// The raw bytes: JSON text or the binary payload.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Data::Json(raw) => raw.get().as_bytes(),
            Data::Binary(bytes) => bytes,
        }
    }

    /// The JSON text, if the data is JSON.
    pub fn as_json_str(&self) -> Option<&str> {
        match self {
            Data::Json(raw) => Some(raw.get()),
            Data::Binary(_) => None,
        }
    }

    /// The data parsed as a JSON value (`None` for binary data).
    pub fn to_value(&self) -> Option<serde_json::Value> {
        self.as_json_str().and_then(|s| serde_json::from_str(s).ok())
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

/// Whether a media type denotes JSON.
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Data::Json(a), Data::Json(b)) => a.get() == b.get(),
            (Data::Binary(a), Data::Binary(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::Json(raw) => write!(f, "Json({})", raw.get()),
            Data::Binary(bytes) => write!(f, "Binary({} bytes)", bytes.len()),
        }
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Event", 2)?;
        out.serialize_field("context", &self.context)?;
        match &self.data {
            Data::Json(raw) => out.serialize_field("data", raw)?,
            Data::Binary(bytes) => out.serialize_field("data_base64", &BASE64.encode(bytes))?,
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            context: EventContext,
            #[serde(default)]
            data: Option<Box<RawValue>>,
            #[serde(default)]
            data_base64: Option<String>,
        }
        let wire = Wire::deserialize(deserializer)?;
        let data = match (wire.data, wire.data_base64) {
            (Some(raw), None) => Data::Json(raw),
            (None, Some(b64)) => Data::Binary(
                BASE64
                    .decode(b64.as_bytes())
                    .map_err(|e| D::Error::custom(format!("data_base64: {e}")))?
                    .into(),
            ),
            (None, None) => Data::Json(null()),
            (Some(_), Some(_)) => {
                return Err(D::Error::custom("both data and data_base64 are set"));
            }
        };
        Ok(Event {
            context: wire.context,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_data_stays_json_in_the_envelope() {
        let event = Event::new("webhook", "example", "webhook", &json!({"body": {"x": 1}}));
        let encoded: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(encoded["data"], json!({"body": {"x": 1}}));
        assert_eq!(encoded["context"]["specversion"], "1.0");
        assert_eq!(encoded["context"]["type"], "webhook");
        assert_eq!(encoded["context"]["datacontenttype"], "application/json");
        assert_eq!(Event::from_json(&event.to_json()).unwrap(), event);
    }

    #[test]
    fn binary_data_round_trips_as_base64() {
        let event = Event::new("mqtt", "t", "mqtt", &json!(null)).with_data(Data::from_bytes(
            "application/octet-stream",
            Bytes::from_static(b"\x00\xffhi"),
        ));
        let encoded: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert!(encoded.get("data").is_none());
        assert_eq!(encoded["data_base64"], "AP9oaQ==");
        let back = Event::from_json(&event.to_json()).unwrap();
        assert_eq!(back.data.as_bytes(), b"\x00\xffhi");
    }

    #[test]
    fn json_content_type_with_invalid_json_is_binary() {
        assert!(matches!(
            Data::from_bytes("application/json", Bytes::from_static(b"{nope")),
            Data::Binary(_)
        ));
        assert!(matches!(
            Data::from_bytes(
                "application/cloudevents+json; charset=utf-8",
                Bytes::from_static(b"[1]")
            ),
            Data::Json(_)
        ));
    }

    #[test]
    fn replay_has_a_new_id_and_names_the_original() {
        let event = Event::new("hooks", "push", "webhook", &json!({"n": 1}));
        let replay = event.replay(Some("ci"));
        assert_ne!(replay.context.id, event.context.id);
        assert_eq!(replay.context.argonreplayof.as_deref(), Some(event.context.id.as_str()));
        assert_eq!(replay.data.as_bytes(), event.data.as_bytes());
        assert!(replay.is_for_sensor("ci") && !replay.is_for_sensor("other"));
        assert!(event.is_for_sensor("other"));
        let encoded: serde_json::Value = serde_json::from_slice(&replay.to_json()).unwrap();
        assert_eq!(encoded["context"]["argonreplayof"], json!(event.context.id));
        assert_eq!(encoded["context"]["argonsensor"], "ci");
        assert_eq!(Event::from_json(&replay.to_json()).unwrap(), replay);
        let again = replay.replay(None);
        assert_eq!(again.context.argonreplayof, replay.context.argonreplayof);
        assert!(again.is_for_sensor("other"));
        // An original carries neither attribute.
        let plain: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert!(plain["context"].get("argonreplayof").is_none());
    }

    #[test]
    fn malformed_envelope_is_an_error() {
        assert!(Event::from_json(b"{\"data\": 1}").is_err());
    }
}
