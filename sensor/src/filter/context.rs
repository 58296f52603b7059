//! The `context` filter: each context attribute set in the filter (`type`,
//! `subject`, `source`, `datacontenttype`) must equal the event's.

use argon_crds::sensor::EventContext;

use crate::{Result, SensorEvent};

/// Expected context attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContextFilter {
    expected: EventContext,
}

impl ContextFilter {
    /// The filter from the manifest.
    pub fn new(expected: &EventContext) -> Self {
        ContextFilter {
            expected: expected.clone(),
        }
    }

    /// Whether every attribute set (and non-empty) equals the event's.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        let c = &event.context;
        let check = |want: &Option<String>, got: &str| want.as_deref().is_none_or(|w| w.is_empty() || w == got);
        Ok(check(&self.expected.type_, &c.r#type)
            && check(&self.expected.subject, &c.subject)
            && check(&self.expected.source, &c.source)
            && check(&self.expected.datacontenttype, &c.datacontenttype))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event;

    #[test]
    fn table() {
        let ctx = |v: serde_json::Value| -> EventContext { serde_json::from_value(v).unwrap() };
        // event: source "webhook", subject "example", type "webhook", application/json
        let cases = [
            (json!({}), true),
            (json!({"source": "webhook"}), true),
            (json!({"source": "other"}), false),
            (json!({"type": "webhook", "subject": "example"}), true),
            (json!({"type": "webhook", "subject": "nope"}), false),
            (json!({"datacontenttype": "application/json"}), true),
            (json!({"datacontenttype": "text/plain"}), false),
            (json!({"source": ""}), true),
        ];
        for (expected, want) in cases {
            let f = ContextFilter::new(&ctx(expected.clone()));
            assert_eq!(f.matches(&event(json!({}))).unwrap(), want, "{expected}");
        }
    }
}
