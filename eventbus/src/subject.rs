//! Subjects (`<bus>.<eventSourceName>.<eventName>`), filters over them, and
//! the deterministic names of consumers and key-value buckets.

use crate::error::{Error, Result};

/// The subject an event is published on. Characters that NATS reserves in a
/// subject token (`.`, `*`, `>`, whitespace) become `_`.
pub fn subject(bus: &str, source: &str, event: &str) -> String {
    format!("{bus}.{}.{}", token(source), token(event))
}

/// One subject token made safe.
pub fn token(raw: &str) -> String {
    if raw.is_empty() {
        return "_".to_owned();
    }
    raw.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Which events a consumer receives: an EventSource name and an event name,
/// each `None` for any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectFilter {
    /// EventSource name, `None` for any.
    pub source: Option<String>,
    /// Event name, `None` for any.
    pub event: Option<String>,
}

impl SubjectFilter {
    /// Events named `event` of the EventSource `source`.
    pub fn new(source: &str, event: &str) -> Self {
        SubjectFilter {
            source: Some(source.to_owned()),
            event: Some(event.to_owned()),
        }
    }

    /// The NATS subject pattern of this filter on `bus`.
    pub fn pattern(&self, bus: &str) -> String {
        let part = |p: &Option<String>| p.as_deref().map_or_else(|| "*".to_owned(), token);
        format!("{bus}.{}.{}", part(&self.source), part(&self.event))
    }
}

/// The subject patterns a consumer reads on `bus`.
pub(crate) fn patterns(bus: &str, filters: &[SubjectFilter]) -> Vec<String> {
    if filters.is_empty() {
        vec![format!("{bus}.*.*")]
    } else {
        filters.iter().map(|f| f.pattern(bus)).collect()
    }
}

/// Whether `subject` matches the NATS pattern (`*` one token, `>` the rest).
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// The durable consumer name of one sensor dependency: readable, valid in
/// NATS, and distinct for distinct pairs (a hash of the raw pair is appended).
pub fn consumer_name(sensor: &str, dependency: &str) -> String {
    let hash = fnv1a(format!("{sensor}\0{dependency}").as_bytes());
    format!("{}_{}_{:08x}", name_safe(sensor), name_safe(dependency), hash as u32)
}

/// The key-value bucket name of one sensor's state.
pub fn kv_bucket_name(sensor: &str) -> String {
    bucket_name("sensor", sensor)
}

/// The key-value bucket name of the state of `owner`, a `kind` (`sensor`,
/// `eventsource`): readable, valid in NATS, and distinct for distinct owners
/// (a hash of the raw name is appended).
pub fn bucket_name(kind: &str, owner: &str) -> String {
    let hash = fnv1a(owner.as_bytes());
    format!("{kind}_{}_{:08x}", name_safe(owner), hash as u32)
}

/// `raw` with every character other than letters, digits, `-` and `_`
/// made `_`: safe in a stream, consumer, bucket or key name.
pub fn name_safe(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Checks a stream, consumer or bucket name: `[A-Za-z0-9_-]+`.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::Config(format!(
            "{what} {name:?} must be non-empty and use only letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

/// Checks a key-value key: `[-/_=.a-zA-Z0-9]+`, not starting or ending with `.`.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "key-value key {key:?} must use only letters, digits and -/_=. (not starting or ending with '.')"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_patterns() {
        assert_eq!(subject("default", "web.hook", "a b"), "default.web_hook.a_b");
        assert_eq!(SubjectFilter::new("wh", "ex").pattern("b"), "b.wh.ex");
        assert_eq!(SubjectFilter::default().pattern("b"), "b.*.*");
        assert!(matches("b.*.ex", "b.wh.ex"));
        assert!(matches("b.>", "b.wh.ex"));
        assert!(!matches("b.>", "b"));
        assert!(!matches("b.wh", "b.wh.ex"));
        assert!(!matches("b.wh.ex.x", "b.wh.ex"));
    }

    #[test]
    fn consumer_names_are_valid_and_distinct() {
        let a = consumer_name("my.sensor", "dep-1");
        validate_name("consumer", &a).unwrap();
        assert_eq!(a, consumer_name("my.sensor", "dep-1"));
        assert_ne!(a, consumer_name("my_sensor", "dep-1"));
        validate_name("bucket", &kv_bucket_name("a.b")).unwrap();
        assert!(validate_key("dep/1.x=y").is_ok());
        assert!(validate_key("a b").is_err());
    }
}
