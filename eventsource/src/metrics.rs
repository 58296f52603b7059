//! Prometheus metrics of the event sources, under the names dashboards built
//! for the argoproj.io event sources already use.

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::error::Result;

/// Events published to the bus.
pub const EVENTS_SENT: &str = "argo_events_events_sent_total";
/// Events that could not be published to the bus.
pub const EVENTS_SENT_FAILED: &str = "argo_events_events_sent_failed_total";
/// Requests that failed before an event could be built (auth, size, parse).
pub const EVENTS_PROCESSING_FAILED: &str = "argo_events_events_processing_failed_total";
/// Time from receiving a request (or a tick) to the bus acknowledgement.
pub const EVENT_PROCESSING_DURATION: &str = "argo_events_event_processing_duration_milliseconds";
/// Events of each event source being served.
pub const EVENT_SERVICE_RUNNING: &str = "argo_events_event_service_running_total";

/// Label: the EventSource name.
pub const LABEL_EVENT_SOURCE: &str = "event_source_name";
/// Label: the event name.
pub const LABEL_EVENT: &str = "event_name";

/// The metrics of one runner, in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    sent: IntCounterVec,
    sent_failed: IntCounterVec,
    processing_failed: IntCounterVec,
    duration: HistogramVec,
    running: IntGaugeVec,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Result<Self> {
        let labels = [LABEL_EVENT_SOURCE, LABEL_EVENT];
        let registry = Registry::new();
        let sent = IntCounterVec::new(Opts::new(EVENTS_SENT, "Events published to the event bus"), &labels)?;
        let sent_failed = IntCounterVec::new(
            Opts::new(
                EVENTS_SENT_FAILED,
                "Events that could not be published to the event bus",
            ),
            &labels,
        )?;
        let processing_failed = IntCounterVec::new(
            Opts::new(EVENTS_PROCESSING_FAILED, "Requests rejected before an event was built"),
            &labels,
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                EVENT_PROCESSING_DURATION,
                "Milliseconds from receiving a request or tick to the bus acknowledgement",
            )
            .buckets(vec![
                0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
            ]),
            &labels,
        )?;
        let running = IntGaugeVec::new(
            Opts::new(EVENT_SERVICE_RUNNING, "Events being served by each event source"),
            &[LABEL_EVENT_SOURCE],
        )?;
        registry.register(Box::new(sent.clone()))?;
        registry.register(Box::new(sent_failed.clone()))?;
        registry.register(Box::new(processing_failed.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(running.clone()))?;
        Ok(Metrics {
            registry,
            sent,
            sent_failed,
            processing_failed,
            duration,
            running,
        })
    }

    /// The metrics of one event, resolved once so the request path does no
    /// label lookups.
    pub fn event(&self, source: &str, event: &str) -> EventMetrics {
        let labels = [source, event];
        EventMetrics {
            sent: self.sent.with_label_values(&labels),
            sent_failed: self.sent_failed.with_label_values(&labels),
            processing_failed: self.processing_failed.with_label_values(&labels),
            duration: self.duration.with_label_values(&labels),
        }
    }

    /// One event published, after `millis`.
    pub fn sent(&self, source: &str, event: &str, millis: f64) {
        self.sent.with_label_values(&[source, event]).inc();
        self.duration.with_label_values(&[source, event]).observe(millis);
    }

    /// One event the bus did not take.
    pub fn sent_failed(&self, source: &str, event: &str) {
        self.sent_failed.with_label_values(&[source, event]).inc();
    }

    /// One request rejected before it became an event.
    pub fn processing_failed(&self, source: &str, event: &str) {
        self.processing_failed.with_label_values(&[source, event]).inc();
    }

    /// `count` more events served by `source`.
    pub fn running(&self, source: &str, count: i64) {
        self.running.with_label_values(&[source]).add(count);
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered metrics into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The metrics of one event.
#[derive(Clone)]
pub struct EventMetrics {
    sent: IntCounter,
    sent_failed: IntCounter,
    processing_failed: IntCounter,
    duration: Histogram,
}

impl EventMetrics {
    /// One event published, after `millis`.
    pub fn sent(&self, millis: f64) {
        self.sent.inc();
        self.duration.observe(millis);
    }

    /// One event the bus did not take.
    pub fn sent_failed(&self) {
        self.sent_failed.inc();
    }

    /// One request rejected before it became an event.
    pub fn processing_failed(&self) {
        self.processing_failed.inc();
    }
}

impl std::fmt::Debug for EventMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventMetrics")
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_upstream_names_with_labels() {
        let m = Metrics::new().unwrap();
        m.sent("es", "ev", 1.5);
        m.sent_failed("es", "ev");
        m.processing_failed("es", "ev");
        let text = m.render();
        assert!(
            text.contains("argo_events_events_sent_total{event_name=\"ev\",event_source_name=\"es\"} 1"),
            "{text}"
        );
        assert!(text.contains(EVENTS_SENT_FAILED), "{text}");
        assert!(text.contains(EVENTS_PROCESSING_FAILED), "{text}");
        assert!(
            text.contains("argo_events_event_processing_duration_milliseconds_bucket"),
            "{text}"
        );
    }
}
