//! `calendar`: events on a cron `schedule` (5 fields or `@hourly`-style) or a
//! fixed `interval`, in a `timezone`, skipping `exclusionDates`. With
//! `persistence.catchup` the last fired tick is kept in the bus key-value
//! store; after a restart every tick missed within `maxDuration` is fired
//! once. Tick event ids are derived from the tick, so firing one twice is
//! dropped by the bus dedup window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon_crds::eventsource::CalendarEventSource;
use argon_crds::time::{Schedule, parse_duration, parse_zone};
use argon_eventbus::{Event, KeyValue, subject};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Publisher;
use crate::error::{Error, Result};
use crate::filter::Filter;

/// Where calendar events read the time; tests use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Completes once [`Clock::now`] is at or past `deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been adjusted.
            loop {
                let left = deadline - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that moves only when told to (for tests).
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Moves the clock to `to` (never backwards), waking the sleepers due.
    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_if_modified(|now| {
            let later = to > *now;
            if later {
                *now = to;
            }
            later
        });
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let to = *self.now.borrow() + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.set(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if it is
            // gone, nobody can move time any more and the sleep never ends.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// One calendar event, ready to run.
#[derive(Debug)]
pub struct CalendarEvent {
    source: String,
    event: String,
    schedule: Schedule,
    timezone: Tz,
    exclusions: Vec<NaiveDate>,
    metadata: BTreeMap<String, String>,
    catchup: Option<Option<chrono::Duration>>,
    filter: Option<Filter>,
}

impl CalendarEvent {
    /// Checks and compiles the configuration.
    pub fn new(source: &str, event: &str, config: &CalendarEventSource) -> Result<Self> {
        let bad = |reason: String| Error::config(source, event, reason);
        let zone = match config.timezone.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(name) => parse_zone(name).map_err(|e| bad(format!("timezone: {e}")))?,
            None => Tz::UTC,
        };
        let schedule = match (config.schedule.as_deref().map(str::trim), config.interval.as_deref()) {
            (Some(schedule), _) if !schedule.is_empty() => Schedule::parse(schedule, zone).map_err(bad)?,
            (_, Some(interval)) if !interval.trim().is_empty() => {
                let every = parse_duration(interval.trim()).map_err(|e| bad(format!("interval: {e}")))?;
                Schedule::every(every).map_err(|e| bad(format!("interval: {e}")))?
            }
            _ => return Err(bad("a calendar event needs a schedule or an interval".into())),
        };
        // A `CRON_TZ=` prefix names the zone the exclusion dates are in too.
        let timezone = schedule.zone();
        let exclusions = config
            .exclusion_dates
            .iter()
            .map(|d| {
                parse_exclusion(d, timezone).ok_or_else(|| {
                    bad(format!(
                        "exclusion date {d:?} is not a date (2024-12-25) or an RFC 3339 date-time"
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let catchup = match &config.persistence {
            Some(p) if p.catchup_enabled() => {
                let max = p
                    .catchup
                    .as_ref()
                    .and_then(|c| c.max_duration.as_deref())
                    .filter(|d| !d.trim().is_empty())
                    .map(|d| {
                        parse_duration(d.trim())
                            .map_err(|e| bad(format!("persistence.catchup.maxDuration: {e}")))
                            .and_then(|d| chrono::Duration::from_std(d).map_err(|e| bad(e.to_string())))
                    })
                    .transpose()?;
                Some(max)
            }
            _ => None,
        };
        let filter = config
            .filter
            .as_ref()
            .and_then(|f| f.expression.as_deref())
            .filter(|e| !e.trim().is_empty())
            .map(|e| Filter::parse(e).map_err(|err| bad(err.to_string())))
            .transpose()?;
        Ok(CalendarEvent {
            source: source.to_owned(),
            event: event.to_owned(),
            schedule,
            timezone,
            exclusions,
            metadata: config.metadata.clone(),
            catchup,
            filter,
        })
    }

    /// The first tick strictly after `after`.
    fn next_tick(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.next_after(after)
    }

    fn excluded(&self, tick: DateTime<Utc>) -> bool {
        let day = tick.with_timezone(&self.timezone).date_naive();
        self.exclusions.contains(&day)
    }

    /// The deterministic id of the event of one tick.
    fn tick_id(&self, tick: DateTime<Utc>) -> String {
        let name = format!(
            "argon/calendar/{}/{}/{}",
            self.source,
            self.event,
            tick.timestamp_nanos_opt().unwrap_or(tick.timestamp())
        );
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
    }

    /// Fires ticks until `shutdown`.
    pub(crate) async fn run(
        self,
        publisher: Publisher,
        clock: Arc<dyn Clock>,
        now: DateTime<Utc>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let state = match self.catchup {
            Some(_) => Some(publisher.bus().kv(&state_bucket(&self.source)).await?),
            None => None,
        };
        let key = state_key(&self.event);
        let state = state.as_deref().map(|kv| (kv, key.as_str()));
        let mut last = now;
        if let Some((kv, key)) = state
            && let Some(entry) = kv.get(key).await?
            && let Some(stored) = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        {
            match self
                .fire_due(&publisher, state, stored.with_timezone(&Utc), now, false, &shutdown)
                .await
            {
                Some(fired_up_to) => last = fired_up_to,
                None => return Ok(()),
            }
        }
        while let Some(tick) = self.next_tick(last) {
            tokio::select! {
                () = clock.sleep_until(tick) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            // Usually only `tick` is due; after a clock jump (a suspended
            // machine) several are, and the catch-up rules apply to them.
            let now = clock.now().max(tick);
            match self.fire_due(&publisher, state, last, now, true, &shutdown).await {
                Some(fired_up_to) => last = fired_up_to,
                None => return Ok(()),
            }
        }
        tracing::warn!(event_source = %self.source, event = %self.event, "schedule has no further ticks");
        shutdown.cancelled().await;
        Ok(())
    }

    /// Fires the ticks in `(after, now]`: with catch-up, those within
    /// `maxDuration` of `now`; the latest one anyway when `latest` is set.
    /// Returns the last tick passed (`after` if none), or `None` on shutdown.
    async fn fire_due(
        &self,
        publisher: &Publisher,
        state: Option<(&dyn KeyValue, &str)>,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
        latest: bool,
        shutdown: &CancellationToken,
    ) -> Option<DateTime<Utc>> {
        let floor = match self.catchup {
            Some(Some(max)) => now.checked_sub_signed(max),
            Some(None) => None,
            // No catch-up: only the latest tick counts.
            None => Some(now),
        };
        let mut last = after;
        while let Some(tick) = self.next_tick(last).filter(|t| *t <= now) {
            let is_latest = self.next_tick(tick).is_none_or(|t| t > now);
            if (floor.is_none_or(|f| tick >= f) || (latest && is_latest)) && !self.fire(publisher, tick, shutdown).await
            {
                return None;
            }
            if let Some((kv, key)) = state {
                record(kv, key, tick).await;
            }
            last = tick;
        }
        Some(last)
    }

    /// Publishes the event of one tick, retrying until the bus takes it.
    /// Returns false when shut down first.
    async fn fire(&self, publisher: &Publisher, tick: DateTime<Utc>, shutdown: &CancellationToken) -> bool {
        if self.excluded(tick) {
            return true;
        }
        let data = serde_json::json!({
            "eventTime": tick.with_timezone(&self.timezone).to_rfc3339(),
            "metadata": self.metadata,
        });
        if let Some(filter) = &self.filter {
            match filter.matches(&data) {
                Ok(true) => {}
                Ok(false) => return true,
                Err(e) => {
                    tracing::warn!(event_source = %self.source, event = %self.event, error = %e, "tick dropped: filter failed");
                    return true;
                }
            }
        }
        let mut event = Event::new(&self.source, &self.event, "calendar", &data).with_id(self.tick_id(tick));
        event.context.time = tick;
        let metrics = publisher.metrics().event(&self.source, &self.event);
        let mut backoff = Duration::from_millis(200);
        loop {
            if publisher.publish(&event, &metrics, Instant::now()).await.is_ok() {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return false,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

async fn record(kv: &dyn KeyValue, key: &str, tick: DateTime<Utc>) {
    if let Err(e) = kv.put(key, Bytes::from(tick.to_rfc3339())).await {
        tracing::warn!(key, error = %e, "calendar catch-up state not saved");
    }
}

fn parse_exclusion(text: &str, timezone: Tz) -> Option<NaiveDate> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date);
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&timezone).date_naive())
}

/// The key-value bucket of one EventSource's calendar state.
pub fn state_bucket(source: &str) -> String {
    subject::bucket_name("eventsource", source)
}

fn state_key(event: &str) -> String {
    format!("calendar.{}", subject::name_safe(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar(yaml: serde_json::Value) -> CalendarEvent {
        let config: CalendarEventSource = serde_json::from_value(yaml).unwrap();
        CalendarEvent::new("es", "tick", &config).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_descriptors_and_timezones() {
        let c = calendar(serde_json::json!({"schedule": "@hourly"}));
        assert_eq!(
            c.next_tick(at("2026-01-01T10:20:00Z")),
            Some(at("2026-01-01T11:00:00Z"))
        );
        let c = calendar(serde_json::json!({"schedule": "0 6 * * *", "timezone": "Europe/Paris"}));
        assert_eq!(
            c.next_tick(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-02T05:00:00Z"))
        );
        let c = calendar(serde_json::json!({"schedule": "CRON_TZ=America/New_York 0 6 * * *"}));
        assert_eq!(
            c.next_tick(at("2026-01-01T12:00:00Z")),
            Some(at("2026-01-02T11:00:00Z"))
        );
        let c = calendar(serde_json::json!({"interval": "10s"}));
        assert_eq!(
            c.next_tick(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T00:00:10Z"))
        );
    }

    #[test]
    fn exclusions_and_ids() {
        let c = calendar(
            serde_json::json!({"schedule": "@daily", "exclusionDates": ["2026-01-02", "2026-01-04T00:00:00Z"]}),
        );
        assert!(c.excluded(at("2026-01-02T00:00:00Z")));
        assert!(c.excluded(at("2026-01-04T00:00:00Z")));
        assert!(!c.excluded(at("2026-01-03T00:00:00Z")));
        assert_eq!(
            c.tick_id(at("2026-01-03T00:00:00Z")),
            c.tick_id(at("2026-01-03T00:00:00Z"))
        );
        assert_ne!(
            c.tick_id(at("2026-01-03T00:00:00Z")),
            c.tick_id(at("2026-01-04T00:00:00Z"))
        );
    }

    #[test]
    fn bad_configuration_is_named() {
        let config: CalendarEventSource = serde_json::from_value(serde_json::json!({"schedule": "* * *"})).unwrap();
        let e = CalendarEvent::new("es", "tick", &config).unwrap_err().to_string();
        assert!(e.contains("event 'tick'") && e.contains("schedule"), "{e}");
        let config: CalendarEventSource =
            serde_json::from_value(serde_json::json!({"interval": "1m", "timezone": "Mars/Base"})).unwrap();
        let e = CalendarEvent::new("es", "tick", &config).unwrap_err().to_string();
        assert!(e.contains("Mars/Base"), "{e}");
    }
}
