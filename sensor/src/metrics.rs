//! Prometheus metrics of a sensor, with the names dashboards already use
//! for argoproj.io sensors, served on `/metrics`.

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Firings that succeeded.
pub const ACTION_TRIGGERED: &str = "argo_events_action_triggered_total";
/// Firings that failed (after their retries).
pub const ACTION_FAILED: &str = "argo_events_action_failed_total";
/// Firings whose retries were exhausted.
pub const ACTION_RETRIES_FAILED: &str = "argo_events_action_retries_failed_total";
/// Duration of a firing.
pub const ACTION_DURATION: &str = "argo_events_action_duration_milliseconds";
/// Events a dependency received, by outcome (`passed`, `filtered`, `error`).
pub const EVENTS_PROCESSED: &str = "argon_sensor_events_total";

/// The metrics of one process.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `sensor_name`, `trigger_name`.
    pub triggered: IntCounterVec,
    /// `sensor_name`, `trigger_name`.
    pub failed: IntCounterVec,
    /// `sensor_name`, `trigger_name`.
    pub retries_failed: IntCounterVec,
    /// `sensor_name`, `trigger_name`.
    pub duration: HistogramVec,
    /// `sensor_name`, `dependency`, `outcome`.
    pub events: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let labels = ["sensor_name", "trigger_name"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let triggered = counter(ACTION_TRIGGERED, "Actions triggered successfully.", &labels);
        let failed = counter(ACTION_FAILED, "Actions that failed.", &labels);
        let retries_failed = counter(
            ACTION_RETRIES_FAILED,
            "Actions that failed after all their retries.",
            &labels,
        );
        let events = counter(
            EVENTS_PROCESSED,
            "Events received by dependency and outcome.",
            &["sensor_name", "dependency", "outcome"],
        );
        let duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(ACTION_DURATION, "Time to run an action, in milliseconds.").buckets(vec![
                    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0, 30000.0,
                ]),
                &labels,
            ),
        );
        Metrics {
            registry,
            triggered,
            failed,
            retries_failed,
            duration,
            events,
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

/// Registers a new metric in `registry`. The names and labels are this
/// file's constants, so a failure is a bug here, not a condition to handle.
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("valid metric");
    registry.register(Box::new(metric.clone())).expect("unique metric");
    metric
}
