//! `rateLimit`: at most `requestsPerUnit` firings per second, minute or hour
//! for one trigger; a firing over the limit waits for its turn.

use std::time::Duration;

use argon_crds::sensor::{RateLimit, RateLimitUnit};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket that refills continuously.
#[derive(Debug)]
pub struct RateLimiter {
    per_token: Duration,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// The limiter of a trigger; `None` when no positive limit is set.
    pub fn new(limit: Option<&RateLimit>) -> Option<Self> {
        let limit = limit?;
        let n = limit.requests_per_unit.filter(|n| *n > 0)? as f64;
        let unit = match limit.unit.unwrap_or_default() {
            RateLimitUnit::Second => 1.0,
            RateLimitUnit::Minute => 60.0,
            RateLimitUnit::Hour => 3600.0,
        };
        Some(RateLimiter {
            per_token: Duration::from_secs_f64(unit / n),
            capacity: n,
            state: Mutex::new((n, Instant::now())),
        })
    }

    /// Waits until a firing is allowed, then takes its token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(state.1).as_secs_f64() / self.per_token.as_secs_f64();
                state.0 = (state.0 + refill).min(self.capacity);
                state.1 = now;
                if state.0 >= 1.0 {
                    state.0 -= 1.0;
                    return;
                }
                self.per_token.mul_f64(1.0 - state.0)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_the_rate() {
        let limiter = RateLimiter::new(Some(&RateLimit {
            unit: Some(RateLimitUnit::Second),
            requests_per_unit: Some(5),
        }))
        .unwrap();
        let start = Instant::now();
        for _ in 0..15 {
            limiter.acquire().await;
        }
        // 5 at once, then 10 more at 5 per second
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1990) && elapsed < Duration::from_millis(2100),
            "{elapsed:?}"
        );
        assert!(
            RateLimiter::new(Some(&RateLimit {
                unit: None,
                requests_per_unit: Some(0)
            }))
            .is_none()
        );
        assert!(RateLimiter::new(None).is_none());
    }
}
