//! Object names, label and annotation keys checked as Kubernetes checks them
//! (`k8s.io/apimachinery/pkg/util/validation`). Names become keys in the
//! store and parts of paths on disk: one that is not a DNS subdomain (`a/b`,
//! `..`, a 100,000-character string) is refused before anything uses it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::diag::{FieldPath, Finding};

/// Longest DNS subdomain (RFC 1123): object names.
pub const MAX_SUBDOMAIN: usize = 253;
/// Longest DNS label: namespaces.
pub const MAX_LABEL: usize = 63;
/// Longest label value and name part of a qualified name.
pub const MAX_QUALIFIED_NAME: usize = 63;
/// Most bytes all annotations of an object may take together.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 << 10;
/// Characters a generated name appends to its `generateName` prefix.
pub const GENERATED_SUFFIX: usize = 5;

/// What a rejected text looked like, short enough for an error message.
pub fn shown(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        format!("'{text}'")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("'{head}...' ({} characters)", text.chars().count())
    }
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Why `text` is not a DNS label (lowercase letters, digits and `-`,
/// starting and ending with a letter or digit, at most `max` characters).
fn label_error(text: &str, max: usize) -> Option<String> {
    let b = text.as_bytes();
    if b.is_empty() {
        return Some("must not be empty".into());
    }
    if b.len() > max {
        return Some(format!("must be at most {max} characters, not {}", b.len()));
    }
    if !b.iter().all(|&c| is_alnum_lower(c) || c == b'-') {
        return Some("may hold only lowercase letters, digits and '-'".into());
    }
    if !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return Some("must start and end with a lowercase letter or digit".into());
    }
    None
}

/// Why `name` is not a DNS subdomain (RFC 1123): lowercase letters, digits,
/// `-` and `.`, dot-separated parts each starting and ending with a letter
/// or digit, at most 253 characters. `None` when it is one.
pub fn subdomain_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_SUBDOMAIN {
        return Some(format!(
            "must be at most {MAX_SUBDOMAIN} characters, not {}",
            name.len()
        ));
    }
    if !name.bytes().all(|c| is_alnum_lower(c) || c == b'-' || c == b'.') {
        return Some("may hold only lowercase letters, digits, '-' and '.' (RFC 1123 subdomain)".into());
    }
    if name.split('.').any(|part| label_error(part, MAX_SUBDOMAIN).is_some()) {
        return Some(
            "each '.'-separated part must start and end with a lowercase letter or digit (RFC 1123 subdomain)".into(),
        );
    }
    None
}

/// Why `prefix` is not a usable `generateName`: as Kubernetes does, a
/// trailing `-` is allowed, and the prefix leaves room for the suffix.
pub fn generate_name_error(prefix: &str) -> Option<String> {
    let masked = match prefix.strip_suffix('-') {
        Some(rest) => format!("{rest}a"),
        None => prefix.to_string(),
    };
    if masked.len() > MAX_SUBDOMAIN - GENERATED_SUFFIX {
        return Some(format!(
            "must be at most {} characters, not {}, to leave room for the generated suffix",
            MAX_SUBDOMAIN - GENERATED_SUFFIX,
            prefix.len()
        ));
    }
    subdomain_error(&masked)
}

/// Why `namespace` is not a namespace name (a DNS label, at most 63).
pub fn namespace_error(namespace: &str) -> Option<String> {
    label_error(namespace, MAX_LABEL).map(|e| format!("{e} (RFC 1123 label)"))
}

/// Why `name` is not the name part of a qualified name: at most 63
/// characters, letters, digits, `-`, `_` and `.`, starting and ending with a
/// letter or digit.
fn name_part_error(name: &str) -> Option<String> {
    let b = name.as_bytes();
    if b.is_empty() {
        return Some("the name part must not be empty".into());
    }
    if b.len() > MAX_QUALIFIED_NAME {
        return Some(format!(
            "the name part must be at most {MAX_QUALIFIED_NAME} characters, not {}",
            b.len()
        ));
    }
    if !b
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Some("the name part may hold only letters, digits, '-', '_' and '.'".into());
    }
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Some("the name part must start and end with a letter or digit".into());
    }
    None
}

/// Why `key` is not a label or annotation key: `[prefix/]name`, the prefix a
/// DNS subdomain, the name as in [`name_part_error`].
pub fn qualified_name_error(key: &str) -> Option<String> {
    match key.split_once('/') {
        Some((prefix, name)) => {
            if let Some(e) = subdomain_error(prefix) {
                return Some(format!("the prefix before '/' {e}"));
            }
            name_part_error(name)
        }
        None => name_part_error(key),
    }
}

/// Why `value` is not a label value: empty, or at most 63 characters as a
/// name part.
pub fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    name_part_error(value).map(|e| e.replace("the name part", "a label value"))
}

/// Findings about an object's name, generateName, namespace, labels and
/// annotations, at `metadata.*`.
pub fn check_metadata(meta: &ObjectMeta) -> Vec<Finding> {
    let at = FieldPath::root().key("metadata");
    let mut findings = Vec::new();
    if let Some(name) = meta.name.as_deref().filter(|n| !n.is_empty())
        && let Some(e) = subdomain_error(name)
    {
        findings.push(Finding::error(at.key("name"), format!("name {} {e}", shown(name))));
    }
    if let Some(prefix) = meta.generate_name.as_deref().filter(|n| !n.is_empty())
        && let Some(e) = generate_name_error(prefix)
    {
        findings.push(Finding::error(
            at.key("generateName"),
            format!("generateName {} {e}", shown(prefix)),
        ));
    }
    if let Some(ns) = meta.namespace.as_deref().filter(|n| !n.is_empty())
        && let Some(e) = namespace_error(ns)
    {
        findings.push(Finding::error(
            at.key("namespace"),
            format!("namespace {} {e}", shown(ns)),
        ));
    }
    for (key, value) in meta.labels.iter().flatten() {
        if let Some(e) = qualified_name_error(key) {
            findings.push(Finding::error(
                at.key("labels"),
                format!("label key {}: {e}", shown(key)),
            ));
        }
        if let Some(e) = label_value_error(value) {
            findings.push(Finding::error(
                at.key("labels").key(key),
                format!("label value {}: {e}", shown(value)),
            ));
        }
    }
    let mut size = 0usize;
    for (key, value) in meta.annotations.iter().flatten() {
        if let Some(e) = qualified_name_error(key) {
            findings.push(Finding::error(
                at.key("annotations"),
                format!("annotation key {}: {e}", shown(key)),
            ));
        }
        size += key.len() + value.len();
    }
    if size > MAX_ANNOTATIONS_BYTES {
        findings.push(Finding::error(
            at.key("annotations"),
            format!("annotations take {size} bytes; at most {MAX_ANNOTATIONS_BYTES} are allowed"),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        for good in ["a", "hello-world", "a.b.c", "x1", "1x", &"a".repeat(253)] {
            assert_eq!(subdomain_error(good), None, "{good}");
        }
        for bad in [
            "",
            "../../../../tmp/x",
            "a/b",
            "..",
            ".",
            "a..b",
            "-a",
            "a-",
            "A",
            "a_b",
            "a b",
            "é",
            ".a",
            &"a".repeat(254),
            &"a".repeat(100_000),
        ] {
            assert!(subdomain_error(bad).is_some(), "{bad:.40}");
        }
    }

    #[test]
    fn generate_names() {
        for good in ["hello-", "a", "a.b-", &"a".repeat(248)] {
            assert_eq!(generate_name_error(good), None, "{good}");
        }
        for bad in ["../", "a/b-", "A-", &"a".repeat(249)] {
            assert!(generate_name_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn label_keys_values_and_namespaces() {
        for good in [
            "app",
            "app.kubernetes.io/name",
            "a_b.c-d",
            "workflows.argoproj.io/workflow-template",
        ] {
            assert_eq!(qualified_name_error(good), None, "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a/b/c",
            "_a",
            "a_",
            "Bad_Prefix/x",
            &"a".repeat(64),
            "a b",
        ] {
            assert!(qualified_name_error(bad).is_some(), "{bad}");
        }
        for good in ["", "v1", "A_b-c.d"] {
            assert_eq!(label_value_error(good), None, "{good}");
        }
        for bad in ["-v", "a b", &"v".repeat(64)] {
            assert!(label_value_error(bad).is_some(), "{bad}");
        }
        assert_eq!(namespace_error("team-a"), None);
        assert!(namespace_error("a.b").is_some());
        assert!(namespace_error("..").is_some());
    }

    #[test]
    fn a_long_name_is_shown_short() {
        let meta = ObjectMeta {
            name: Some("x".repeat(100_000)),
            ..Default::default()
        };
        let findings = check_metadata(&meta);
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.len() < 300, "{}", findings[0].message);
        assert!(findings[0].message.contains("100000"), "{}", findings[0].message);
    }
}
