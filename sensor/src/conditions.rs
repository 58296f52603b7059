//! Trigger conditions as a state machine: each trigger keeps the latest event
//! of each dependency its condition mentions; when an event completes the
//! condition, the trigger fires with those events and its state is cleared.
//!
//! The state lives in the bus key-value bucket of the sensor (one key per
//! trigger), written before the event that changed it is acknowledged, so a
//! half-met `a && b` survives a restart. It also remembers the ids of the
//! events its last firings used, so that an event redelivered after a crash
//! between "state cleared" and "event acknowledged" is not stored again as a
//! fresh half of the condition.
//!
//! `conditionsReset.byTime` clears the state on a cron schedule.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use argon_crds::sensor::{Condition, ConditionsResetByTime};
use argon_crds::time::{Schedule, parse_zone};
use argon_eventbus::{Event, KeyValue};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::params::Events;
use crate::{Error, Result, SensorEvent};

/// How many fired event ids a trigger remembers.
const FIRED_MEMORY: usize = 1024;

/// The persisted state of one trigger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    /// Latest event (bus envelope) of each dependency that has one.
    #[serde(default)]
    pub events: BTreeMap<String, serde_json::Value>,
    /// Ids of events used by recent firings, newest last.
    #[serde(default)]
    pub fired: VecDeque<String>,
}

/// What an event does to a trigger.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The event completes the condition: fire with these events.
    Fire(Events),
    /// The event was stored; the condition is not complete yet.
    Stored,
    /// The event was already used by a firing (a redelivery): nothing to do.
    AlreadyFired,
}

impl TriggerState {
    /// Records `event` for `dependency` and says whether `condition` is now
    /// complete. On completion the returned events are every latest event the
    /// condition mentions; the caller clears the state once the trigger fired
    /// ([`TriggerState::fired`]).
    pub fn offer(&mut self, condition: &Condition, dependency: &str, event: &SensorEvent) -> Step {
        if self.fired.iter().any(|id| id == &event.context.id) {
            return Step::AlreadyFired;
        }
        self.events.insert(dependency.to_owned(), envelope(event));
        if condition.eval(&|name| self.events.contains_key(name)) {
            let events = self
                .events
                .iter()
                .filter_map(|(dep, v)| Some((dep.clone(), from_envelope(v)?)))
                .collect();
            Step::Fire(events)
        } else {
            Step::Stored
        }
    }

    /// Clears the state after a firing with `events`, remembering their ids.
    pub fn fired(&mut self, events: &Events) {
        for e in events.values() {
            self.fired.push_back(e.context.id.clone());
        }
        while self.fired.len() > FIRED_MEMORY {
            self.fired.pop_front();
        }
        self.events.clear();
    }
}

fn envelope(event: &SensorEvent) -> serde_json::Value {
    serde_json::json!({ "context": event.context_json(), "data": event.data })
}

fn from_envelope(v: &serde_json::Value) -> Option<SensorEvent> {
    let e = Event::from_json(v.to_string().as_bytes()).ok()?;
    Some(SensorEvent::from_event(&e))
}

/// The KV key of a trigger's state.
pub fn state_key(trigger: &str) -> String {
    let safe: String = trigger
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("trigger.{safe}")
}

/// Reads and writes trigger states in the bus KV with compare-and-set.
#[derive(Clone)]
pub struct StateStore {
    kv: Arc<dyn KeyValue>,
}

impl StateStore {
    /// A store over the sensor's bucket.
    pub fn new(kv: Arc<dyn KeyValue>) -> Self {
        StateStore { kv }
    }

    /// The state of `trigger` and its revision (0 when absent).
    pub async fn load(&self, trigger: &str) -> Result<(TriggerState, u64)> {
        match self.kv.get(&state_key(trigger)).await? {
            Some(entry) => {
                let state = serde_json::from_slice(&entry.value).unwrap_or_default();
                Ok((state, entry.revision))
            }
            None => Ok((TriggerState::default(), 0)),
        }
    }

    /// Writes the state of `trigger`. Writers of one trigger are serialized
    /// by the runner (one lock per trigger), and one sensor has one process.
    pub async fn save(&self, trigger: &str, state: &TriggerState) -> Result<u64> {
        let value = Bytes::from(serde_json::to_vec(state).unwrap_or_default());
        Ok(self.kv.put(&state_key(trigger), value).await?)
    }

    /// Forgets the half-met events of `trigger` (keeps the fired ids).
    pub async fn reset(&self, trigger: &str) -> Result<()> {
        let (mut state, _) = self.load(trigger).await?;
        if state.events.is_empty() {
            return Ok(());
        }
        state.events.clear();
        self.save(trigger, &state).await?;
        Ok(())
    }
}

/// A `conditionsReset.byTime` schedule.
#[derive(Clone, Debug)]
pub struct ResetSchedule(Schedule);

impl ResetSchedule {
    /// Parses the cron expression (5 fields or a descriptor like `@daily`) and the time zone.
    pub fn parse(by_time: &ConditionsResetByTime) -> Result<Option<Self>> {
        let Some(cron) = by_time.cron.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Ok(None);
        };
        let zone = match by_time.timezone.as_deref().map(str::trim) {
            None | Some("") => Tz::UTC,
            Some(name) => parse_zone(name).map_err(|e| Error::Parameter(format!("conditionsReset: {e}")))?,
        };
        let schedule = Schedule::parse(cron, zone).map_err(|e| Error::Parameter(format!("conditionsReset: {e}")))?;
        Ok(Some(ResetSchedule(schedule)))
    }

    /// The first reset strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.next_after(now)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event;

    fn ev(id: &str) -> SensorEvent {
        let mut e = event(json!({"id": id}));
        e.context.id = id.to_owned();
        e
    }

    #[test]
    fn and_or_and_parentheses() {
        let cond = Condition::parse("(dep01 || dep02) && dep03").unwrap();
        let mut s = TriggerState::default();
        assert_eq!(s.offer(&cond, "dep01", &ev("a")), Step::Stored);
        assert_eq!(s.offer(&cond, "dep02", &ev("b")), Step::Stored);
        let Step::Fire(events) = s.offer(&cond, "dep03", &ev("c")) else {
            panic!("should fire")
        };
        assert_eq!(events.keys().collect::<Vec<_>>(), ["dep01", "dep02", "dep03"]);
        s.fired(&events);
        assert!(s.events.is_empty());
        // redelivery of a used event does nothing
        assert_eq!(s.offer(&cond, "dep03", &ev("c")), Step::AlreadyFired);
        // a fresh round starts empty
        assert_eq!(s.offer(&cond, "dep03", &ev("d")), Step::Stored);
    }

    #[test]
    fn latest_event_wins() {
        let cond = Condition::all(["a", "b"]);
        let mut s = TriggerState::default();
        s.offer(&cond, "a", &ev("a1"));
        s.offer(&cond, "a", &ev("a2"));
        let Step::Fire(events) = s.offer(&cond, "b", &ev("b1")) else {
            panic!("should fire")
        };
        assert_eq!(events["a"].context.id, "a2");
        assert_eq!(events["a"].data, json!({"id": "a2"}));
        assert_eq!(events["b"].context.id, "b1");
    }

    #[test]
    fn or_fires_alone() {
        let cond = Condition::parse("a || b").unwrap();
        let mut s = TriggerState::default();
        let Step::Fire(events) = s.offer(&cond, "b", &ev("b1")) else {
            panic!("should fire")
        };
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn state_round_trips_through_json() {
        let cond = Condition::all(["a", "b"]);
        let mut s = TriggerState::default();
        s.offer(&cond, "a", &ev("a1"));
        let back: TriggerState = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn reset_schedule() {
        let by = |cron: &str, tz: Option<&str>| ConditionsResetByTime {
            cron: Some(cron.into()),
            timezone: tz.map(Into::into),
        };
        let now: DateTime<Utc> = "2026-11-21T10:30:00Z".parse().unwrap();
        let s = ResetSchedule::parse(&by("0 23 * * *", None)).unwrap().unwrap();
        assert_eq!(s.next_after(now).unwrap().to_rfc3339(), "2026-11-21T23:00:00+00:00");
        let s = ResetSchedule::parse(&by("0 23 * * *", Some("America/Los_Angeles")))
            .unwrap()
            .unwrap();
        assert_eq!(s.next_after(now).unwrap().to_rfc3339(), "2026-11-22T07:00:00+00:00");
        assert!(ResetSchedule::parse(&by("61 * * * *", None)).is_err());
        assert!(ResetSchedule::parse(&by("0 0 * * *", Some("Nowhere/Land"))).is_err());
    }
}
