//! `rateLimit`: at most `requestsPerUnit` firings per second, minute or hour
//! for one trigger; a firing over the limit waits for its turn. A token
//! bucket as `governor` keeps it (GCRA): a burst of `requestsPerUnit`, then
//! one firing every unit / `requestsPerUnit`.

use std::num::NonZeroU32;
use std::time::Duration;

use argon_crds::sensor::{RateLimit, RateLimitUnit};
use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Governor};

/// The rate limiter of one trigger.
#[derive(Debug)]
pub struct RateLimiter(Governor<NotKeyed, InMemoryState, DefaultClock>);

impl RateLimiter {
    /// The limiter of a trigger; `None` when no positive limit is set.
    pub fn new(limit: Option<&RateLimit>) -> Option<Self> {
        let limit = limit?;
        let n = NonZeroU32::new(u32::try_from(limit.requests_per_unit.filter(|n| *n > 0)?).unwrap_or(u32::MAX))?;
        let unit = match limit.unit.unwrap_or_default() {
            RateLimitUnit::Second => 1.0,
            RateLimitUnit::Minute => 60.0,
            RateLimitUnit::Hour => 3600.0,
        };
        let quota = Quota::with_period(Duration::from_secs_f64(unit / f64::from(n.get())))?.allow_burst(n);
        Some(RateLimiter(Governor::direct(quota)))
    }

    /// Waits until a firing is allowed, then takes its token.
    pub async fn acquire(&self) {
        self.0.until_ready().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_the_rate() {
        let limiter = RateLimiter::new(Some(&RateLimit {
            unit: Some(RateLimitUnit::Second),
            requests_per_unit: Some(20),
        }))
        .unwrap();
        let start = std::time::Instant::now();
        for _ in 0..30 {
            limiter.acquire().await;
        }
        // 20 at once, then 10 more at 20 per second.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(480) && elapsed < Duration::from_millis(1500),
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
