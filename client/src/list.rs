//! Argo's list semantics for workflows: `listOptions.limit` and
//! `listOptions.continue` (pages), `listOptions.labelSelector` and
//! `listOptions.fieldSelector` (Kubernetes selector syntax), and Argon's
//! `namePrefix`, `createdAfter` and `createdBefore`. The same parsed
//! [`Filter`] selects rows in the engine's store and matches workflows in
//! memory (the watch stream).
//!
//! The selector parser is written here: kube-core's `Selector` is built from
//! the structured `LabelSelector` only and has no parser for the string form
//! that `kubectl -l` and the Argo API take.

use std::collections::BTreeMap;

use argon_crds::workflow::{Workflow, WorkflowPhase};
use chrono::{DateTime, Utc};

use crate::{Error, Result};

/// The label Argo's controller keeps the workflow's phase in; Argon answers
/// selectors on it from the phase itself.
pub const PHASE_LABEL: &str = "workflows.argoproj.io/phase";
/// The label Argo's controller sets to `true` once a workflow finished
/// (`argo list --running` selects `completed!=true`); answered from the phase.
pub const COMPLETED_LABEL: &str = "workflows.argoproj.io/completed";

/// The options of a list or watch request, as the API's query takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many workflows (`listOptions.limit`; none: all).
    pub limit: Option<usize>,
    /// Where the previous page ended (`listOptions.continue`).
    pub continue_token: Option<String>,
    /// `listOptions.labelSelector`: `k=v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`.
    pub label_selector: Option<String>,
    /// `listOptions.fieldSelector`: `metadata.name`, `metadata.namespace`,
    /// `status.phase` with `=`, `==` or `!=`.
    pub field_selector: Option<String>,
    /// Only names starting with this.
    pub name_prefix: Option<String>,
    /// Only workflows created at or after this time (RFC 3339).
    pub created_after: Option<String>,
    /// Only workflows created before this time (RFC 3339).
    pub created_before: Option<String>,
    /// Only workflows that finished before this time (RFC 3339; `argo list --older`).
    pub finished_before: Option<String>,
}

impl ListOptions {
    /// The options as query pairs of the API.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(l) = self.limit {
            q.push(("listOptions.limit", l.to_string()));
        }
        let mut put = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                q.push((k, v.clone()));
            }
        };
        put("listOptions.continue", &self.continue_token);
        put("listOptions.labelSelector", &self.label_selector);
        put("listOptions.fieldSelector", &self.field_selector);
        put("namePrefix", &self.name_prefix);
        put("createdAfter", &self.created_after);
        put("createdBefore", &self.created_before);
        put("finishedBefore", &self.finished_before);
        q
    }

    /// Adds a label requirement (`a=b`) to the label selector.
    pub fn and_label(&mut self, requirement: &str) {
        self.label_selector = Some(match self.label_selector.take().filter(|s| !s.trim().is_empty()) {
            Some(s) => format!("{s},{requirement}"),
            None => requirement.to_string(),
        });
    }
}

/// One page of a list.
#[derive(Clone, Debug, Default)]
pub struct WorkflowPage {
    /// Newest first, without nodes.
    pub items: Vec<Workflow>,
    /// Pass as `listOptions.continue` for the next page; `None` on the last one.
    pub continue_token: Option<String>,
}

/// A requirement on one label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `k=v`, `k==v`, `k in (v1,v2)`.
    In(String, Vec<String>),
    /// `k!=v`, `k notin (v1,v2)`: the label is absent or has another value.
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
}

impl LabelRequirement {
    /// The label the requirement is about.
    pub fn key(&self) -> &str {
        match self {
            LabelRequirement::In(k, _)
            | LabelRequirement::NotIn(k, _)
            | LabelRequirement::Exists(k)
            | LabelRequirement::NotExists(k) => k,
        }
    }

    fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (LabelRequirement::In(_, vs), Some(v)) => vs.iter().any(|x| x == v),
            (LabelRequirement::In(_, _), None) => false,
            (LabelRequirement::NotIn(_, vs), Some(v)) => !vs.iter().any(|x| x == v),
            (LabelRequirement::NotIn(_, _), None) => true,
            (LabelRequirement::Exists(_), v) => v.is_some(),
            (LabelRequirement::NotExists(_), v) => v.is_none(),
        }
    }
}

/// A field a field selector may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Name,
    Namespace,
    Phase,
}

/// `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: Field,
    pub equal: bool,
    pub value: String,
}

/// What a list keeps, parsed from [`ListOptions`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Requirements on real labels.
    pub labels: Vec<LabelRequirement>,
    /// Requirements on fields; the phase labels of Argo's controller
    /// ([`PHASE_LABEL`], [`COMPLETED_LABEL`]) become requirements on the phase.
    pub fields: Vec<FieldRequirement>,
    /// Allowed phases from the phase labels (`None`: any). An unset phase is `""`.
    pub phases: Option<Vec<String>>,
    /// Phases ruled out by the phase labels.
    pub not_phases: Vec<String>,
    pub name_prefix: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub finished_before: Option<DateTime<Utc>>,
}

/// The phases a finished workflow may have.
pub const COMPLETED_PHASES: [&str; 3] = ["Succeeded", "Failed", "Error"];
/// The phases of a workflow that has not finished (`""`: not yet picked up).
pub const UNFINISHED_PHASES: [&str; 3] = ["", "Pending", "Running"];

impl Filter {
    /// Parses the selectors and times of `opts`; errors say which option is wrong.
    pub fn parse(opts: &ListOptions) -> Result<Filter> {
        let mut f = Filter::default();
        if let Some(s) = &opts.label_selector {
            for r in parse_label_selector(s)? {
                f.add_label(r)?;
            }
        }
        if let Some(s) = &opts.field_selector {
            f.fields = parse_field_selector(s)?;
        }
        f.name_prefix = opts.name_prefix.clone().filter(|p| !p.is_empty());
        let time = |name: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>> {
            match v.as_deref().filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => DateTime::parse_from_rfc3339(v)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(|e| Error::Invalid(format!("{name} '{v}' is not an RFC 3339 time: {e}"))),
            }
        };
        f.created_after = time("createdAfter", &opts.created_after)?;
        f.created_before = time("createdBefore", &opts.created_before)?;
        f.finished_before = time("finishedBefore", &opts.finished_before)?;
        Ok(f)
    }

    fn add_label(&mut self, r: LabelRequirement) -> Result<()> {
        let phases_of = |key: &str, values: &[String]| -> Result<Vec<String>> {
            if key == PHASE_LABEL {
                return Ok(values.to_vec());
            }
            // completed=true / completed=false.
            let mut out = Vec::new();
            for v in values {
                match v.as_str() {
                    "true" => out.extend(COMPLETED_PHASES.iter().map(|s| s.to_string())),
                    "false" => out.extend(UNFINISHED_PHASES.iter().map(|s| s.to_string())),
                    other => {
                        return Err(Error::Invalid(format!(
                            "label {COMPLETED_LABEL} is true or false, not '{other}'"
                        )));
                    }
                }
            }
            Ok(out)
        };
        let key = r.key().to_string();
        if key != PHASE_LABEL && key != COMPLETED_LABEL {
            self.labels.push(r);
            return Ok(());
        }
        match r {
            LabelRequirement::In(_, vs) => {
                let allowed = phases_of(&key, &vs)?;
                self.phases = Some(match self.phases.take() {
                    Some(prev) => prev.into_iter().filter(|p| allowed.contains(p)).collect(),
                    None => allowed,
                });
            }
            LabelRequirement::NotIn(_, vs) => self.not_phases.extend(phases_of(&key, &vs)?),
            // Every workflow has a phase (an unset one counts as pending).
            LabelRequirement::Exists(_) => {}
            LabelRequirement::NotExists(_) => self.phases = Some(Vec::new()),
        }
        Ok(())
    }

    /// Whether `wf` passes the filter.
    pub fn matches(&self, wf: &Workflow) -> bool {
        let empty = BTreeMap::new();
        let labels = wf.metadata.labels.as_ref().unwrap_or(&empty);
        let name = wf.metadata.name.as_deref().unwrap_or("");
        let namespace = wf.metadata.namespace.as_deref().unwrap_or("");
        let phase = phase_name(wf.status.as_ref().and_then(|s| s.phase));
        if !self
            .labels
            .iter()
            .all(|r| r.matches(labels.get(r.key()).map(String::as_str)))
        {
            return false;
        }
        for r in &self.fields {
            let actual = match r.field {
                Field::Name => name,
                Field::Namespace => namespace,
                Field::Phase => phase,
            };
            if (actual == r.value) != r.equal {
                return false;
            }
        }
        if self.phases.as_ref().is_some_and(|ps| !ps.iter().any(|p| p == phase)) {
            return false;
        }
        if self.not_phases.iter().any(|p| p == phase) {
            return false;
        }
        if self.name_prefix.as_ref().is_some_and(|p| !name.starts_with(p.as_str())) {
            return false;
        }
        let created = wf
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp_micros(t.0.as_microsecond()));
        if let Some(after) = self.created_after
            && created.is_none_or(|c| c < after)
        {
            return false;
        }
        if let Some(before) = self.created_before
            && created.is_none_or(|c| c >= before)
        {
            return false;
        }
        if let Some(before) = self.finished_before {
            let finished = wf
                .status
                .as_ref()
                .and_then(|s| s.finished_at.as_ref())
                .and_then(|t| DateTime::from_timestamp_micros(t.0.as_microsecond()));
            if finished.is_none_or(|f| f >= before) {
                return false;
            }
        }
        true
    }
}

/// The phase as the store and the selectors spell it (`""` when unset).
pub fn phase_name(p: Option<WorkflowPhase>) -> &'static str {
    match p {
        None => "",
        Some(WorkflowPhase::Pending) => "Pending",
        Some(WorkflowPhase::Running) => "Running",
        Some(WorkflowPhase::Succeeded) => "Succeeded",
        Some(WorkflowPhase::Failed) => "Failed",
        Some(WorkflowPhase::Error) => "Error",
    }
}

fn invalid(selector: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("label selector '{selector}': {why}"))
}

/// Parses a label selector in Kubernetes' string form.
pub fn parse_label_selector(s: &str) -> Result<Vec<LabelRequirement>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (req, after) = requirement(s, rest)?;
        out.push(req);
        rest = after.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
            if rest.is_empty() {
                return Err(invalid(s, "a requirement is missing after the last ','"));
            }
        } else if !rest.is_empty() {
            return Err(invalid(s, format!("expected ',' before '{rest}'")));
        }
    }
    Ok(out)
}

/// One requirement at the start of `rest`, and what follows it.
fn requirement<'a>(whole: &str, rest: &'a str) -> Result<(LabelRequirement, &'a str)> {
    let is_key = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    if let Some(r) = rest.strip_prefix('!') {
        let r = r.trim_start();
        let end = r.find(|c: char| !is_key(c)).unwrap_or(r.len());
        let key = check_key(whole, &r[..end])?;
        return Ok((LabelRequirement::NotExists(key), &r[end..]));
    }
    let end = rest.find(|c: char| !is_key(c)).unwrap_or(rest.len());
    let key = check_key(whole, &rest[..end])?;
    let r = rest[end..].trim_start();
    if r.is_empty() || r.starts_with(',') {
        return Ok((LabelRequirement::Exists(key), r));
    }
    for (op, equal) in [("==", true), ("!=", false), ("=", true)] {
        if let Some(r) = r.strip_prefix(op) {
            let r = r.trim_start();
            let end = r.find(|c: char| c == ',' || c.is_whitespace()).unwrap_or(r.len());
            let value = check_value(whole, &r[..end])?;
            let req = if equal {
                LabelRequirement::In(key, vec![value])
            } else {
                LabelRequirement::NotIn(key, vec![value])
            };
            return Ok((req, &r[end..]));
        }
    }
    for (word, in_) in [("notin", false), ("in", true)] {
        if let Some(r) = r.strip_prefix(word)
            && r.trim_start().starts_with('(')
        {
            let r = r.trim_start()[1..].trim_start();
            let close = r
                .find(')')
                .ok_or_else(|| invalid(whole, format!("'{word} (' of '{key}' is not closed with ')'")))?;
            let values = r[..close]
                .split(',')
                .map(|v| check_value(whole, v.trim()))
                .collect::<Result<Vec<_>>>()?;
            if values.iter().all(String::is_empty) {
                return Err(invalid(whole, format!("'{key} {word} ()' lists no value")));
            }
            let req = if in_ {
                LabelRequirement::In(key, values)
            } else {
                LabelRequirement::NotIn(key, values)
            };
            return Ok((req, &r[close + 1..]));
        }
    }
    Err(invalid(
        whole,
        format!("after '{key}' expected =, ==, !=, in (...), notin (...) or ',', found '{r}'"),
    ))
}

fn check_key(whole: &str, key: &str) -> Result<String> {
    if key.is_empty() {
        return Err(invalid(whole, "a label key is missing"));
    }
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if prefix.is_some_and(|p| p.is_empty() || p.len() > 253) {
        return Err(invalid(
            whole,
            format!("the prefix of key '{key}' is empty or longer than 253"),
        ));
    }
    if name.is_empty() || name.len() > 63 {
        return Err(invalid(
            whole,
            format!("the name of key '{key}' must have 1 to 63 characters"),
        ));
    }
    Ok(key.to_string())
}

fn check_value(whole: &str, value: &str) -> Result<String> {
    if value.len() > 63
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            whole,
            format!("'{value}' is not a label value (at most 63 of A-Z a-z 0-9 - _ .)"),
        ));
    }
    Ok(value.to_string())
}

/// Parses a field selector: comma-separated `field=value`, `field==value`, `field!=value`.
pub fn parse_field_selector(s: &str) -> Result<Vec<FieldRequirement>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = part.split_once("==") {
            (f, true, v)
        } else if let Some((f, v)) = part.split_once('=') {
            (f, true, v)
        } else {
            return Err(Error::Invalid(format!(
                "field selector '{s}': '{part}' is not FIELD=VALUE or FIELD!=VALUE"
            )));
        };
        let field = match field.trim() {
            "metadata.name" => Field::Name,
            "metadata.namespace" => Field::Namespace,
            "status.phase" => Field::Phase,
            other => {
                return Err(Error::Invalid(format!(
                    "field selector '{s}': field '{other}' is not supported; use metadata.name, metadata.namespace \
                     or status.phase"
                )));
            }
        };
        out.push(FieldRequirement {
            field,
            equal,
            value: value.trim().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &str) -> Vec<LabelRequirement> {
        parse_label_selector(s).unwrap()
    }

    #[test]
    fn label_selectors_parse_as_kubernetes_reads_them() {
        use LabelRequirement::*;
        assert_eq!(labels("a=b"), vec![In("a".into(), vec!["b".into()])]);
        assert_eq!(
            labels(" x.io/k == v , y != z"),
            vec![
                In("x.io/k".into(), vec!["v".into()]),
                NotIn("y".into(), vec!["z".into()])
            ]
        );
        assert_eq!(
            labels("env in (prod, dev),tier notin (web),ready,!gone"),
            vec![
                In("env".into(), vec!["prod".into(), "dev".into()]),
                NotIn("tier".into(), vec!["web".into()]),
                Exists("ready".into()),
                NotExists("gone".into()),
            ]
        );
        assert_eq!(labels("a="), vec![In("a".into(), vec![String::new()])]);
        assert!(labels("").is_empty());
    }

    #[test]
    fn bad_label_selectors_say_what_is_wrong() {
        for (s, says) in [
            ("a=b,", "missing after the last ','"),
            ("a in (b", "not closed"),
            ("a b", "expected"),
            ("=b", "key is missing"),
            ("a=b c", "expected ','"),
            ("a=b@c", "is not a label value"),
            ("a in ()", "lists no value"),
        ] {
            let e = parse_label_selector(s).unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn the_phase_labels_are_answered_from_the_phase() {
        let opts = |l: &str| ListOptions {
            label_selector: Some(l.to_string()),
            ..Default::default()
        };
        let f = Filter::parse(&opts("workflows.argoproj.io/completed!=true")).unwrap();
        assert_eq!(f.not_phases, vec!["Succeeded", "Failed", "Error"]);
        assert!(f.labels.is_empty());
        let f = Filter::parse(&opts("workflows.argoproj.io/phase in (Running,Failed)")).unwrap();
        assert_eq!(f.phases, Some(vec!["Running".to_string(), "Failed".to_string()]));
        let mut wf = Workflow::new("w", Default::default());
        wf.status = Some(Default::default());
        assert!(!f.matches(&wf));
        wf.status.as_mut().unwrap().phase = Some(WorkflowPhase::Failed);
        assert!(f.matches(&wf));
        assert!(Filter::parse(&opts("workflows.argoproj.io/completed=maybe")).is_err());
    }

    #[test]
    fn filters_match_in_memory() {
        let mut wf = Workflow::new("build-1", Default::default());
        wf.metadata.namespace = Some("ci".into());
        wf.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let f = |o: ListOptions| Filter::parse(&o).unwrap().matches(&wf);
        assert!(f(ListOptions {
            label_selector: Some("app=web,!other".into()),
            field_selector: Some("metadata.namespace=ci,metadata.name!=x".into()),
            name_prefix: Some("build-".into()),
            ..Default::default()
        }));
        assert!(!f(ListOptions {
            label_selector: Some("app notin (web)".into()),
            ..Default::default()
        }));
        assert!(!f(ListOptions {
            field_selector: Some("status.phase=Running".into()),
            ..Default::default()
        }));
        assert!(
            Filter::parse(&ListOptions {
                field_selector: Some("spec.x=1".into()),
                ..Default::default()
            })
            .unwrap_err()
            .to_string()
            .contains("not supported")
        );
    }
}
