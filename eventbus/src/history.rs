//! The history of a bus: the accepted events it still holds (within its
//! retention), newest first, for the API's event list, an event's page and
//! replay.

use chrono::{DateTime, Utc};

use crate::event::Event;
use crate::subject::{self, SubjectFilter};

/// The most events one history page holds.
pub const MAX_PAGE: usize = 1000;

/// Which stored events to list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryQuery {
    /// Only events of this EventSource and/or event name; empty: every event.
    pub filter: SubjectFilter,
    /// Only events stored at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Continues a listing: only events before this bus sequence (the
    /// [`HistoryPage::next`] of the previous page).
    pub before: Option<u64>,
    /// At most this many events (at least 1, at most [`MAX_PAGE`]).
    pub limit: usize,
}

impl HistoryQuery {
    /// The newest `limit` events.
    pub fn newest(limit: usize) -> Self {
        HistoryQuery {
            limit,
            ..Default::default()
        }
    }

    /// The page size, within bounds.
    pub fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// Whether a stored event, published on `subject`, passes the filter.
    pub(crate) fn matches(&self, bus: &str, subject: &str) -> bool {
        subject::matches(&self.filter.pattern(bus), subject)
    }
}

/// One event as the bus stored it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Its position in the bus.
    pub sequence: u64,
    /// The subject it was published on.
    pub subject: String,
    /// When the bus stored it.
    pub stored_at: DateTime<Utc>,
    /// The event.
    pub event: Event,
}

/// A page of the history, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryPage {
    /// The events, newest first.
    pub events: Vec<StoredEvent>,
    /// Where the next (older) page starts, as [`HistoryQuery::before`];
    /// `None` when there is nothing older that matches.
    pub next: Option<u64>,
}

/// A time in milliseconds since the epoch as a UTC time.
pub(crate) fn from_millis(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or_default()
}

/// The time a UUID v7 event id was made at (milliseconds since the epoch),
/// to start looking for the event near it; `None` for other ids.
pub(crate) fn id_time_ms(id: &str) -> Option<u64> {
    let uuid = uuid::Uuid::parse_str(id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_ids_carry_their_time() {
        let before = Utc::now().timestamp_millis() as u64;
        let id = uuid::Uuid::now_v7().to_string();
        let t = id_time_ms(&id).unwrap();
        assert!(t >= before && t <= before + 1000, "{t} vs {before}");
        assert_eq!(id_time_ms(&uuid::Uuid::new_v4().to_string()), None);
        assert_eq!(id_time_ms("github-delivery-1"), None);
    }

    #[test]
    fn filters_by_source_and_event() {
        let mut q = HistoryQuery::newest(10);
        assert!(q.matches("default", "default.hooks.push"));
        q.filter.source = Some("hooks".into());
        assert!(q.matches("default", "default.hooks.push"));
        assert!(!q.matches("default", "default.other.push"));
        q.filter.event = Some("pull".into());
        assert!(!q.matches("default", "default.hooks.push"));
    }
}
