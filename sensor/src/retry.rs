//! `retryStrategy`: how often and how long a failing trigger is tried again
//! (steps, duration, factor, jitter), as exponential backoff.
//!
//! Written here rather than with a backoff crate: upstream's semantics are
//! those of Kubernetes' `wait.Backoff` (`steps` counts attempts, `jitter`
//! adds up to that fraction of the wait, no cap but an hour), which neither
//! `backon` nor `backoff` reproduces, and the formula is one line.

use std::time::Duration;

use argon_crds::common::{Backoff, Int64OrString};

/// A parsed backoff.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub steps: u32,
    /// Wait before the second attempt.
    pub duration: Duration,
    /// Multiplier of the wait after each attempt.
    pub factor: f64,
    /// Random extra wait, as a fraction of the wait (0 to 1).
    pub jitter: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            steps: 1,
            duration: Duration::from_secs(1),
            factor: 1.0,
            jitter: 0.0,
        }
    }
}

/// A duration from an integer (nanoseconds, as Go's `time.Duration`) or a
/// string like `1s`, `500ms`, `1h30m`.
pub fn parse_duration(v: &Int64OrString) -> Option<Duration> {
    match v {
        Int64OrString::Int(n) => u64::try_from(*n).ok().map(Duration::from_nanos),
        Int64OrString::Str(s) => match s.trim().parse::<u64>() {
            Ok(n) => Some(Duration::from_nanos(n)),
            Err(_) => argon_crds::time::parse_duration(s.trim()).ok(),
        },
    }
}

impl Retry {
    /// The strategy of a trigger (one attempt when unset).
    pub fn from_backoff(b: Option<&Backoff>) -> Self {
        let Some(b) = b else { return Retry::default() };
        Retry {
            steps: b
                .steps
                .and_then(|s| u32::try_from(s).ok())
                .filter(|s| *s > 0)
                .unwrap_or(1),
            duration: b
                .duration
                .as_ref()
                .and_then(parse_duration)
                .unwrap_or(Duration::from_secs(1)),
            factor: b
                .factor
                .as_ref()
                .map(|f| f.as_f64())
                .filter(|f| *f > 0.0)
                .unwrap_or(1.0),
            jitter: b.jitter.as_ref().map(|j| j.as_f64()).unwrap_or(0.0).clamp(0.0, 1.0),
        }
    }

    /// The wait before attempt `attempt + 1` (`attempt` starts at 1), jitter included.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.duration.as_secs_f64() * self.factor.powi(attempt.saturating_sub(1) as i32);
        let jitter = if self.jitter > 0.0 {
            base * self.jitter * fastrand::f64()
        } else {
            0.0
        };
        Duration::from_secs_f64((base + jitter).min(3600.0))
    }
}

#[cfg(test)]
mod tests {
    use argon_crds::common::Amount;

    use super::*;

    #[test]
    fn durations() {
        let cases = [
            (Int64OrString::Int(1_000_000_000), Some(Duration::from_secs(1))),
            (Int64OrString::Str("2s".into()), Some(Duration::from_secs(2))),
            (Int64OrString::Str("500ms".into()), Some(Duration::from_millis(500))),
            (Int64OrString::Str("1m".into()), Some(Duration::from_secs(60))),
            (Int64OrString::Str("1.5s".into()), Some(Duration::from_millis(1500))),
            (Int64OrString::Str("soon".into()), None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_duration(&v), want, "{v}");
        }
    }

    #[test]
    fn backoff_grows_with_factor_and_jitter_stays_bounded() {
        let b = Backoff {
            duration: Some(Int64OrString::Str("1s".into())),
            factor: Some(Amount(serde_json::Number::from(2))),
            jitter: Some(Amount(serde_json::Number::from_f64(0.5).unwrap())),
            steps: Some(3),
        };
        let r = Retry::from_backoff(Some(&b));
        assert_eq!(r.steps, 3);
        for (attempt, base) in [(1, 1.0), (2, 2.0), (3, 4.0)] {
            let d = r.delay(attempt).as_secs_f64();
            assert!(d >= base && d <= base * 1.5, "attempt {attempt}: {d}");
        }
        assert_eq!(Retry::from_backoff(None).steps, 1);
    }
}
