//! Prometheus metrics of the controller, served on `/metrics` by
//! `argon controller --metrics-addr`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

/// Reconciles, by kind and outcome (`ok`, `error`).
pub const RECONCILES: &str = "argon_controller_reconciles_total";
/// Time one reconcile took, by kind.
pub const RECONCILE_DURATION: &str = "argon_controller_reconcile_duration_seconds";

/// The metrics of one controller process.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `kind`, `outcome`.
    pub reconciles: IntCounterVec,
    /// `kind`.
    pub duration: HistogramVec,
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
        // The names and labels are constants: registering them cannot fail.
        let reconciles = IntCounterVec::new(
            Opts::new(RECONCILES, "Reconciles by kind and outcome."),
            &["kind", "outcome"],
        )
        .expect("valid metric");
        registry.register(Box::new(reconciles.clone())).expect("unique metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(RECONCILE_DURATION, "Time one reconcile took, in seconds.")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["kind"],
        )
        .expect("valid metric");
        registry.register(Box::new(duration.clone())).expect("unique metric");
        Metrics {
            registry,
            reconciles,
            duration,
        }
    }

    /// Counts one reconcile of `kind` that took `seconds`.
    pub fn observe(&self, kind: &str, ok: bool, seconds: f64) {
        let outcome = if ok { "ok" } else { "error" };
        self.reconciles.with_label_values(&[kind, outcome]).inc();
        self.duration.with_label_values(&[kind]).observe(seconds);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_by_kind_and_outcome() {
        let m = Metrics::new();
        m.observe("Sensor", true, 0.02);
        m.observe("Sensor", false, 0.5);
        m.observe("Sensor", false, 0.5);
        let text = m.render();
        assert!(
            text.contains(r#"argon_controller_reconciles_total{kind="Sensor",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"argon_controller_reconciles_total{kind="Sensor",outcome="error"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"argon_controller_reconcile_duration_seconds_count{kind="Sensor"} 3"#),
            "{text}"
        );
    }
}
