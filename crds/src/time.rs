//! Time as the manifests write it, parsed one way for the linter and for
//! the parts that act on it: durations (Go syntax), time zones (IANA names)
//! and schedules (cron fields, descriptors, `@every`, with a `CRON_TZ=`
//! prefix) of CronWorkflows, calendar event sources and sensors'
//! `conditionsReset`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::diag::suggest;

/// Parses a duration written the way the manifests write them (Go syntax):
/// a sequence of decimal numbers with a unit each, `10s`, `1m`, `1h30m`,
/// `1.5h`, `300ms`; units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; `0` alone
/// is zero. Negative durations are refused. The error says what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.strip_prefix('+').unwrap_or(text);
    if s.starts_with('-') {
        return Err(format!("'{text}' is negative"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("the duration is empty".to_string());
    }
    if s.contains(char::is_whitespace) {
        return Err(format!(
            "'{text}' is not a duration such as 10s, 1m or 1h30m (no spaces)"
        ));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(format!("'{text}' is not a duration such as 10s, 1m or 1h30m"));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not a duration such as 10s, 1m or 1h30m"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "'{text}' has a number without a unit; add one of ns, us, ms, s, m, h"
                ));
            }
            other => {
                return Err(format!(
                    "'{text}' has an unknown unit '{other}'; use ns, us, ms, s, m or h"
                ));
            }
        };
        total += value * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if total > u64::MAX as f64 {
        return Err(format!("'{text}' is too long"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Parses `20` (seconds, as Argo's `timeout` and suspend `duration` allow)
/// or a duration such as `2m`.
pub fn parse_seconds_or_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() => Ok(Duration::from_secs_f64(secs.max(0.0))),
        _ => parse_duration(s),
    }
}

/// Parses an IANA time zone name (`Europe/Paris`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone '{name}' (use an IANA name such as Europe/Paris)"))
}

/// The descriptors a schedule may use instead of five fields.
pub const DESCRIPTORS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// A schedule: cron fields or a descriptor in a time zone, or a fixed interval.
#[derive(Clone, Debug)]
pub struct Schedule {
    when: When,
    zone: Tz,
}

#[derive(Clone, Debug)]
enum When {
    Cron(Box<croner::Cron>),
    Every(chrono::Duration),
}

impl Schedule {
    /// Parses `[CRON_TZ=ZONE ]SCHEDULE` (or `TZ=ZONE`), where SCHEDULE is five
    /// fields (minute hour day-of-month month day-of-week), a descriptor
    /// such as `@hourly`, or `@every DURATION`; `zone` is the time zone when
    /// the text names none. The error quotes the schedule and says what is
    /// wrong.
    pub fn parse(text: &str, zone: Tz) -> Result<Schedule, String> {
        let mut s = text.trim();
        let mut zone = zone;
        if s.is_empty() {
            return Err("the schedule is empty; write five cron fields such as '0 0 * * *'".to_string());
        }
        if let Some(rest) = s.strip_prefix("CRON_TZ=").or_else(|| s.strip_prefix("TZ=")) {
            let (z, r) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            zone = parse_zone(z).map_err(|e| format!("schedule '{text}': {e}"))?;
            s = r.trim();
        }
        if let Some(every) = s.strip_prefix("@every") {
            let every = every.trim();
            if every.is_empty() {
                return Err(format!("schedule '{text}': '@every' needs a duration such as 1h30m"));
            }
            let d = parse_duration(every).map_err(|e| format!("schedule '{text}': @every {e}"))?;
            if d.is_zero() {
                return Err(format!("schedule '{text}': the interval must be longer than zero"));
            }
            let d = chrono::Duration::from_std(d).map_err(|e| format!("schedule '{text}': {e}"))?;
            return Ok(Schedule {
                when: When::Every(d),
                zone,
            });
        }
        if let Some(descriptor) = s.strip_prefix('@')
            && !DESCRIPTORS.contains(&s)
        {
            let hint = suggest(descriptor, DESCRIPTORS.map(|d| &d[1..]))
                .map(|d| format!("; did you mean '@{d}'?"))
                .unwrap_or_default();
            return Err(format!(
                "schedule '{text}': unknown descriptor '@{descriptor}'{hint} (known: {}, @every DURATION)",
                DESCRIPTORS.join(", ")
            ));
        }
        let fields = s.split_whitespace().count();
        if !s.starts_with('@') && fields != 5 {
            return Err(format!(
                "schedule '{text}' has {fields} field{}; a cron schedule has 5 (minute hour day-of-month month \
                 day-of-week, e.g. '*/5 * * * *'), or use a descriptor such as '@hourly'",
                if fields == 1 { "" } else { "s" }
            ));
        }
        if !s.starts_with('@') {
            const MONTHS: [&str; 12] = [
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ];
            const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
            let specs: [(&str, u32, u32, &[&str], u32); 5] = [
                ("minute", 0, 59, &[], 0),
                ("hour", 0, 23, &[], 0),
                ("day-of-month", 1, 31, &[], 0),
                ("month", 1, 12, &MONTHS, 1),
                ("day-of-week", 0, 6, &DAYS, 0),
            ];
            for (field, (name, min, max, names, first)) in s.split_whitespace().zip(specs) {
                check_field(field, min, max, names, first)
                    .map_err(|why| format!("schedule '{text}': {name} field '{field}' {why}"))?;
            }
        }
        let cron = croner::parser::CronParser::new()
            .parse(s)
            .map_err(|e| format!("schedule '{text}': {e}"))?;
        Ok(Schedule {
            when: When::Cron(Box::new(cron)),
            zone,
        })
    }

    /// A fixed interval (a calendar source's `interval`).
    pub fn every(interval: Duration) -> Result<Schedule, String> {
        if interval.is_zero() {
            return Err("the interval must be longer than zero".to_string());
        }
        Ok(Schedule {
            when: When::Every(chrono::Duration::from_std(interval).map_err(|e| e.to_string())?),
            zone: Tz::UTC,
        })
    }

    /// The time zone the schedule runs in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first scheduled time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Every(d) => after.checked_add_signed(*d),
            When::Cron(cron) => cron
                .find_next_occurrence(&after.with_timezone(&self.zone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// Checks one cron field (a list of values, ranges and steps) so that the
/// error names the field and the value, as croner's do not.
fn check_field(field: &str, min: u32, max: u32, names: &[&str], first: u32) -> Result<(), String> {
    let value = |v: &str| -> Result<u32, String> {
        if let Ok(n) = v.parse::<u32>() {
            if (min..=max).contains(&n) {
                return Ok(n);
            }
            return Err(format!("has {n}, outside {min}-{max}"));
        }
        let lower = v.to_ascii_lowercase();
        match names.iter().position(|n| *n == lower) {
            Some(i) => Ok(first + i as u32),
            None if v.is_empty() => Err("has an empty value".to_string()),
            None => Err(format!("has '{v}', which is neither a number nor a known name")),
        }
    };
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(n) if n > 0 => {}
                _ => return Err(format!("has step '{step}', which is not a positive number")),
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        match range.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (value(lo)?, value(hi)?);
                if lo > hi {
                    return Err(format!("has a range that ends before it starts ({lo}-{hi})"));
                }
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

/// Checks a schedule as [`Schedule::parse`] reads it.
pub fn check_schedule(text: &str) -> Result<(), String> {
    Schedule::parse(text, Tz::UTC).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_go_syntax() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").unwrap_err().contains("without a unit"));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit 'x'"));
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1..2s").is_err());
    }

    #[test]
    fn schedules_in_their_time_zone() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let s = Schedule::parse("CRON_TZ=Asia/Tokyo 0 9 * * MON-FRI", Tz::UTC).unwrap();
        assert_eq!(s.zone(), chrono_tz::Asia::Tokyo);
        assert_eq!(
            s.next_after(at("2026-12-07T00:30:00Z")),
            Some(at("2026-12-08T00:00:00Z"))
        );
        let s = Schedule::parse("@every 1h30m", Tz::UTC).unwrap();
        assert_eq!(
            s.next_after(at("2026-12-07T00:00:00Z")),
            Some(at("2026-12-07T01:30:00Z"))
        );
        let s = Schedule::parse("@hourly", chrono_tz::Europe::Paris).unwrap();
        assert_eq!(
            s.next_after(at("2026-12-07T00:30:00Z")),
            Some(at("2026-12-07T01:00:00Z"))
        );
        assert!(
            Schedule::parse("0 0 * *", Tz::UTC)
                .unwrap_err()
                .contains("has 4 fields")
        );
        assert!(
            Schedule::parse("@daly", Tz::UTC)
                .unwrap_err()
                .contains("did you mean '@daily'?")
        );
        assert!(
            Schedule::parse("@every", Tz::UTC)
                .unwrap_err()
                .contains("needs a duration")
        );
        assert!(
            Schedule::parse("@every 0s", Tz::UTC)
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(
            Schedule::parse("CRON_TZ=Mars/Base 0 0 * * *", Tz::UTC)
                .unwrap_err()
                .contains("unknown time zone 'Mars/Base'")
        );
        assert!(Schedule::parse("0 25 * * *", Tz::UTC).is_err());
        assert!(Schedule::parse("", Tz::UTC).is_err());
        assert_eq!(parse_seconds_or_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_seconds_or_duration("2m"), Ok(Duration::from_secs(120)));
    }
}
