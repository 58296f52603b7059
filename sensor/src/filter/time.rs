//! The `time` filter: the event's time of day must fall in `[start, stop)`,
//! in the filter's time zone; a `stop` before `start` wraps past midnight.

use argon_crds::sensor::TimeFilter;
use chrono::{NaiveTime, Timelike};
use chrono_tz::Tz;

use crate::{Error, Result, SensorEvent};

/// A daily window.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeWindow {
    start: NaiveTime,
    stop: NaiveTime,
    zone: Tz,
}

fn parse_time(field: &str, s: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M"))
        .map_err(|_| Error::Filter {
            kind: "time",
            message: format!("{field} {s:?} is not a time of day HH:MM:SS"),
        })
}

impl TimeWindow {
    /// Parses `start`, `stop` (`HH:MM:SS` or `HH:MM`) and `timezone` (IANA, UTC when unset).
    pub fn compile(f: &TimeFilter) -> Result<Self> {
        let zone = match f.timezone.as_deref().map(str::trim) {
            None | Some("") => Tz::UTC,
            Some(name) => {
                argon_crds::time::parse_zone(name).map_err(|message| Error::Filter { kind: "time", message })?
            }
        };
        Ok(TimeWindow {
            start: parse_time("start", &f.start)?,
            stop: parse_time("stop", &f.stop)?,
            zone,
        })
    }

    /// Whether the event time, in the window's zone, is in the window.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        let local = event.context.time.with_timezone(&self.zone).time();
        let t = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second()).unwrap_or(local);
        Ok(if self.start < self.stop {
            self.start <= t && t < self.stop
        } else {
            self.start <= t || t < self.stop
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event_at;

    #[test]
    fn table() {
        // (start, stop, zone, event time UTC, expected)
        let cases = [
            ("10:00:00", "11:00:00", None, "2026-11-21T10:30:00Z", true),
            ("10:00:00", "11:00:00", None, "2026-11-21T10:00:00Z", true),
            ("10:00:00", "11:00:00", None, "2026-11-21T11:00:00Z", false),
            ("10:00:00", "11:00:00", None, "2026-11-21T09:59:59Z", false),
            // wraps past midnight
            ("22:00:00", "02:00:00", None, "2026-11-21T23:30:00Z", true),
            ("22:00:00", "02:00:00", None, "2026-11-21T01:30:00Z", true),
            ("22:00:00", "02:00:00", None, "2026-11-21T12:00:00Z", false),
            // 10:30 UTC is 05:30 in New York (EST, UTC-5, in November)
            (
                "05:00:00",
                "06:00:00",
                Some("America/New_York"),
                "2026-11-21T10:30:00Z",
                true,
            ),
            (
                "10:00:00",
                "11:00:00",
                Some("America/New_York"),
                "2026-11-21T10:30:00Z",
                false,
            ),
            // 23:30 UTC is 08:30 next day in Tokyo
            ("08:00", "09:00", Some("Asia/Tokyo"), "2026-11-21T23:30:00Z", true),
        ];
        for (start, stop, zone, at, want) in cases {
            let w = TimeWindow::compile(&TimeFilter {
                start: start.into(),
                stop: stop.into(),
                timezone: zone.map(str::to_owned),
            })
            .unwrap();
            assert_eq!(
                w.matches(&event_at(json!({}), at)).unwrap(),
                want,
                "{start}-{stop} {zone:?} {at}"
            );
        }
    }

    #[test]
    fn bad_values_are_errors() {
        let bad = |start: &str, zone: Option<&str>| {
            TimeWindow::compile(&TimeFilter {
                start: start.into(),
                stop: "10:00:00".into(),
                timezone: zone.map(Into::into),
            })
        };
        assert!(bad("25:00:00", None).is_err());
        assert!(bad("noon", None).is_err());
        assert!(bad("09:00:00", Some("Mars/Olympus")).is_err());
    }
}
