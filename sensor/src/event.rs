//! The event as filters, templates and parameters see it: the CloudEvents
//! context and the data decoded as JSON once.

use argon_eventbus::{Data, Event, EventContext};
use serde_json::Value;

/// One event inside the sensor.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorEvent {
    /// CloudEvents attributes.
    pub context: EventContext,
    /// The data as JSON; data that is not JSON is a string (UTF-8, lossy).
    pub data: Value,
    /// The data as JSON text (what GJSON paths run on).
    pub data_text: String,
}

impl SensorEvent {
    /// The view of a bus event.
    pub fn from_event(event: &Event) -> Self {
        let (data, data_text) = match &event.data {
            Data::Json(raw) => {
                let text = raw.get().to_owned();
                (serde_json::from_str(&text).unwrap_or(Value::Null), text)
            }
            Data::Binary(bytes) => {
                let value = Value::String(String::from_utf8_lossy(bytes).into_owned());
                let text = value.to_string();
                (value, text)
            }
        };
        SensorEvent {
            context: event.context.clone(),
            data,
            data_text,
        }
    }

    /// An event with the same context and new data.
    pub fn with_data(&self, data: Value) -> Self {
        SensorEvent {
            context: self.context.clone(),
            data_text: data.to_string(),
            data,
        }
    }

    /// The context as JSON (`id`, `source`, `specversion`, `type`,
    /// `datacontenttype`, `subject`, `time`).
    pub fn context_json(&self) -> Value {
        serde_json::to_value(&self.context).unwrap_or(Value::Null)
    }

    /// The whole event as JSON: `{"context": {...}, "data": ...}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "context": self.context_json(), "data": self.data })
    }
}
