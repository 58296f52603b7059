//! Status conditions as Argo Events writes them: one entry per type, whose
//! `lastTransitionTime` moves only when its status changes.

use argon_crds::common::Condition;

/// EventSource: its events are valid.
pub const SOURCES_PROVIDED: &str = "SourcesProvided";
/// Sensor: its dependencies are valid.
pub const DEPENDENCIES_PROVIDED: &str = "DependenciesProvided";
/// Sensor: its triggers are valid.
pub const TRIGGERS_PROVIDED: &str = "TriggersProvided";
/// EventBus: the bus configuration is resolved.
pub const CONFIGURED: &str = "Configured";
/// Every kind: what runs it is applied to the cluster.
pub const DEPLOYED: &str = "Deployed";

/// One observation: a condition type that is true or false, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Observed {
    /// A condition that holds.
    pub fn holds(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Observed {
            type_,
            status: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn fails(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Observed {
            type_,
            status: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// The conditions after `observed`: each observed type in the given order,
/// keeping its `lastTransitionTime` from `existing` when its status did not
/// change (`now` otherwise); conditions of other types are kept after them.
pub fn merge(existing: &[Condition], observed: &[Observed], now: &str) -> Vec<Condition> {
    let mut out: Vec<Condition> = observed
        .iter()
        .map(|o| {
            let status = if o.status { "True" } else { "False" };
            let previous = existing.iter().find(|c| c.type_ == o.type_);
            let last_transition_time = match previous {
                Some(c) if c.status == status && c.last_transition_time.is_some() => c.last_transition_time.clone(),
                _ => Some(now.to_string()),
            };
            Condition {
                type_: o.type_.to_string(),
                status: status.to_string(),
                last_transition_time,
                reason: Some(o.reason.clone()),
                message: (!o.message.is_empty()).then(|| o.message.clone()),
            }
        })
        .collect();
    out.extend(
        existing
            .iter()
            .filter(|c| !observed.iter().any(|o| o.type_ == c.type_))
            .cloned(),
    );
    out
}

/// The time of a transition, as conditions write it (RFC 3339, seconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str, time: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: Some(time.into()),
            reason: Some("Old".into()),
            message: None,
        }
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let existing = vec![
            condition(DEPLOYED, "True", "2026-01-01T00:00:00Z"),
            condition(SOURCES_PROVIDED, "False", "2026-01-01T00:00:00Z"),
            condition("Custom", "True", "2025-01-01T00:00:00Z"),
        ];
        let merged = merge(
            &existing,
            &[
                Observed::holds(SOURCES_PROVIDED, "EventSourceValid", ""),
                Observed::holds(DEPLOYED, "Deployed", "applied"),
            ],
            "2026-02-02T00:00:00Z",
        );
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0].type_, SOURCES_PROVIDED);
        assert_eq!(merged[0].last_transition_time.as_deref(), Some("2026-02-02T00:00:00Z"));
        assert_eq!(merged[0].message, None);
        assert_eq!(merged[1].type_, DEPLOYED);
        assert_eq!(merged[1].last_transition_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(merged[1].reason.as_deref(), Some("Deployed"));
        assert_eq!(merged[1].message.as_deref(), Some("applied"));
        assert_eq!(merged[2].type_, "Custom");
    }

    #[test]
    fn a_new_condition_starts_now() {
        let merged = merge(&[], &[Observed::fails(CONFIGURED, "NotSupported", "kafka")], "T");
        assert_eq!(merged[0].status, "False");
        assert_eq!(merged[0].last_transition_time.as_deref(), Some("T"));
        assert!(now().ends_with('Z'));
    }
}
