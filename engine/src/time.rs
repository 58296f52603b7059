//! Conversions between the manifests' timestamps and `chrono` times.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The current time as a manifest timestamp.
pub fn now() -> Time {
    from_chrono(Utc::now())
}

/// A `chrono` time as a manifest timestamp.
pub fn from_chrono(t: DateTime<Utc>) -> Time {
    Time(Timestamp::from_microsecond(t.timestamp_micros()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A manifest timestamp as a `chrono` time.
pub fn to_chrono(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.0.as_microsecond()).unwrap_or_default()
}
