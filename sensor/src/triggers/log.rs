//! `log` triggers: log the events that fired the trigger (at most once per
//! `intervalSeconds` when set).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::Request;
use crate::params::Events;

/// The request: the events by dependency, each `{context, data}`.
pub fn prepare(events: &Events) -> Request {
    let events: Map<String, Value> = events.iter().map(|(k, e)| (k.clone(), e.to_json())).collect();
    Request::Log {
        events: Value::Object(events),
    }
}

/// Logs, unless the previous line is younger than the interval.
#[derive(Debug, Default)]
pub struct Logger {
    last: Mutex<Option<Instant>>,
}

impl Logger {
    /// Writes the log line; returns whether it was written.
    pub fn execute(&self, sensor: &str, trigger: &str, interval_seconds: Option<u64>, request: &Request) -> bool {
        let Request::Log { events } = request else { return false };
        if let Some(secs) = interval_seconds.filter(|s| *s > 0) {
            let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(secs)) {
                return false;
            }
            *last = Some(now);
        }
        tracing::info!(sensor, trigger, events = %events, "log trigger");
        true
    }
}
