//! Semantic checks of a Sensor beyond its shape: names that must be unique or
//! must exist, condition expressions, parameter paths, filter settings, cron
//! schedules and trigger kinds. Each finding names the field it is about.

use std::collections::HashMap;

use super::{
    Comparator, Condition, DataFilter, EventDependency, JsonType, Sensor, Trigger, TriggerKind, TriggerParameter,
};
use crate::diag::{FieldPath, Finding, suggest};

/// Every problem found in the sensor, errors and warnings, in manifest order.
pub fn validate(s: &Sensor) -> Vec<Finding> {
    let mut v = Validator {
        deps: s.spec.dependencies.iter().map(|d| d.name.as_str()).collect(),
        out: Vec::new(),
    };
    let spec = FieldPath::root().key("spec");

    if s.spec.dependencies.is_empty() {
        v.out.push(Finding::error(
            spec.key("dependencies"),
            "the sensor has no dependencies; add at least one under spec.dependencies",
        ));
    }
    if s.spec.triggers.is_empty() {
        v.out.push(Finding::error(
            spec.key("triggers"),
            "the sensor has no triggers; add at least one under spec.triggers",
        ));
    }

    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, dep) in s.spec.dependencies.iter().enumerate() {
        let path = spec.key("dependencies").index(i);
        if let Some(first) = seen.get(dep.name.as_str()) {
            v.out.push(Finding::error(
                path.key("name"),
                format!(
                    "duplicate dependency name '{}' (also spec.dependencies[{first}])",
                    dep.name
                ),
            ));
        } else {
            seen.insert(&dep.name, i);
        }
        v.dependency(dep, &path);
    }

    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, trigger) in s.spec.triggers.iter().enumerate() {
        let path = spec.key("triggers").index(i);
        let name = trigger.template.name.as_str();
        if let Some(first) = seen.get(name) {
            v.out.push(Finding::error(
                path.key("template").key("name"),
                format!("duplicate trigger name '{name}' (also spec.triggers[{first}])"),
            ));
        } else {
            seen.insert(name, i);
        }
        v.trigger(trigger, &path);
    }
    v.out
}

struct Validator<'a> {
    deps: Vec<&'a str>,
    out: Vec<Finding>,
}

impl Validator<'_> {
    fn dependency(&mut self, dep: &EventDependency, path: &FieldPath) {
        for (field, value) in [
            ("name", &dep.name),
            ("eventSourceName", &dep.event_source_name),
            ("eventName", &dep.event_name),
        ] {
            if value.trim().is_empty() {
                self.out.push(Finding::error(
                    path.key(field),
                    format!("dependency {field} must not be empty"),
                ));
            }
        }
        let Some(filters) = &dep.filters else { return };
        let fpath = path.key("filters");
        if let Some(time) = &filters.time {
            for (field, value) in [("start", &time.start), ("stop", &time.stop)] {
                if !is_time_of_day(value) {
                    self.out.push(Finding::error(
                        fpath.key("time").key(field),
                        format!("time filter {field} '{value}' is not a time of day in HH:MM:SS form (e.g. 09:30:00)"),
                    ));
                }
            }
        }
        for (i, data) in filters.data.iter().enumerate() {
            self.data_filter(data, &fpath.key("data").index(i));
        }
        for (i, expr) in filters.exprs.iter().enumerate() {
            if expr.expr.trim().is_empty() {
                self.out.push(Finding::error(
                    fpath.key("exprs").index(i).key("expr"),
                    "expression filter has an empty expr",
                ));
            }
        }
    }

    fn data_filter(&mut self, data: &DataFilter, path: &FieldPath) {
        if data.path.trim().is_empty() {
            self.out
                .push(Finding::error(path.key("path"), "data filter path must not be empty"));
        }
        if data.json_type().is_none() {
            self.out.push(Finding::error(
                path.key("type"),
                format!(
                    "unknown data filter type '{}'; expected one of {}",
                    data.type_,
                    JsonType::NAMES.join(", ")
                ),
            ));
        }
        if data.comparator().is_none() {
            self.out.push(Finding::error(
                path.key("comparator"),
                format!(
                    "unknown comparator '{}'; expected one of {} (empty means =)",
                    data.comparator.as_deref().unwrap_or_default(),
                    Comparator::NAMES.join(" ")
                ),
            ));
        }
    }

    fn trigger(&mut self, trigger: &Trigger, path: &FieldPath) {
        let template = &trigger.template;
        let tpath = path.key("template");
        if template.name.trim().is_empty() {
            self.out
                .push(Finding::error(tpath.key("name"), "trigger name must not be empty"));
        }
        if let Some(expr) = template.conditions.as_deref().filter(|c| !c.trim().is_empty()) {
            self.conditions(expr, &tpath.key("conditions"));
        }
        for (i, reset) in template.conditions_reset.iter().enumerate() {
            let Some(by_time) = &reset.by_time else { continue };
            let cron_path = tpath.key("conditionsReset").index(i).key("byTime").key("cron");
            if let Err(msg) = crate::time::check_schedule(by_time.cron.as_deref().unwrap_or_default()) {
                self.out.push(Finding::error(cron_path, msg));
            }
        }

        let misplaced = [
            (
                "atLeastOnce",
                template.at_least_once.is_some(),
                trigger.at_least_once.is_some(),
            ),
            ("policy", template.policy.is_some(), trigger.policy.is_some()),
        ];
        for (field, in_template, on_trigger) in misplaced {
            if in_template {
                let effect = if on_trigger {
                    "it is ignored because the trigger sets its own"
                } else {
                    "Argon applies it to the trigger"
                };
                self.out.push(Finding::warning(
                    tpath.key(field),
                    format!(
                        "'{field}' belongs on the trigger ({}), not in its template; {effect}",
                        path.key(field)
                    ),
                ));
            }
        }

        self.parameters(&trigger.parameters, &path.key("parameters"));

        let kinds = template.kinds();
        match kinds.as_slice() {
            [] => self.out.push(Finding::error(
                tpath.clone(),
                format!(
                    "trigger '{}' has no trigger kind; set one of k8s, argoWorkflow, http, log, nats, kafka, slack, email, custom",
                    template.name
                ),
            )),
            [_] => {}
            more => {
                let names: Vec<&str> = more.iter().map(TriggerKind::name).collect();
                self.out.push(Finding::error(
                    tpath.clone(),
                    format!(
                        "trigger '{}' sets more than one trigger kind ({}); set exactly one",
                        template.name,
                        names.join(", ")
                    ),
                ));
            }
        }
        for kind in &kinds {
            let kpath = tpath.key(kind.name());
            match kind {
                TriggerKind::Unsupported(name) => {
                    self.out.push(Finding::warning(
                        kpath.clone(),
                        format!("trigger kind '{name}' is not supported by Argon yet; the sensor loads but this trigger will not fire"),
                    ));
                    if let Some(config) = template.unsupported_config(name) {
                        self.raw_parameters(config, &kpath);
                    }
                }
                TriggerKind::K8s(t) if t.source.is_none() => {
                    self.out.push(Finding::error(
                        kpath.key("source"),
                        "k8s trigger needs a source (resource, file, url, configmap, git or s3)",
                    ));
                }
                TriggerKind::ArgoWorkflow(t) if t.source.is_none() => {
                    self.out.push(Finding::error(
                        kpath.key("source"),
                        "argoWorkflow trigger needs a source (resource, file, url, configmap, git or s3)",
                    ));
                }
                _ => {}
            }
            for (field, params) in kind.parameter_lists() {
                self.parameters(params, &kpath.key(field));
            }
        }

        if let Some(dlq) = &trigger.dlq_trigger {
            self.trigger(dlq, &path.key("dlqTrigger"));
        }
    }

    fn conditions(&mut self, expr: &str, path: &FieldPath) {
        match Condition::parse(expr) {
            Err(e) => self.out.push(Finding::error(
                path.clone(),
                format!("invalid conditions '{expr}': {e}"),
            )),
            Ok(condition) => {
                for name in condition.names() {
                    if !self.deps.contains(&name) {
                        let msg = format!("conditions name unknown dependency '{name}'{}", self.hint(name));
                        self.out.push(Finding::error(path.clone(), msg));
                    }
                }
            }
        }
    }

    fn parameters(&mut self, params: &[TriggerParameter], path: &FieldPath) {
        for (i, p) in params.iter().enumerate() {
            let ppath = path.index(i);
            if let Some(src) = &p.src {
                self.dependency_name(&src.dependency_name, &ppath.key("src").key("dependencyName"));
            }
            if let Err(msg) = check_dest(&p.dest) {
                self.out.push(Finding::error(ppath.key("dest"), msg));
            }
        }
    }

    /// Parameters of a trigger kind kept as raw JSON: only their dependency
    /// names are checked.
    fn raw_parameters(&mut self, config: &serde_json::Value, path: &FieldPath) {
        for field in ["parameters", "payload"] {
            let Some(list) = config.get(field).and_then(|v| v.as_array()) else {
                continue;
            };
            for (i, p) in list.iter().enumerate() {
                if let Some(name) = p.pointer("/src/dependencyName").and_then(|v| v.as_str()) {
                    self.dependency_name(name, &path.key(field).index(i).key("src").key("dependencyName"));
                }
            }
        }
    }

    fn dependency_name(&mut self, name: &str, path: &FieldPath) {
        if !self.deps.contains(&name) {
            let msg = format!("parameter refers to unknown dependency '{name}'{}", self.hint(name));
            self.out.push(Finding::error(path.clone(), msg));
        }
    }

    /// `; did you mean 'x'?` for a close name, else the list of known names.
    fn hint(&self, unknown: &str) -> String {
        match suggest(unknown, self.deps.iter().copied()) {
            Some(close) => format!("; did you mean '{close}'?"),
            None if self.deps.is_empty() => "; the sensor has no dependencies".to_string(),
            None => {
                let known: Vec<String> = self.deps.iter().map(|d| format!("'{d}'")).collect();
                format!("; known dependencies: {}", known.join(", "))
            }
        }
    }
}

/// `HH:MM:SS` with hours 0-23 (one digit accepted), minutes and seconds 00-59.
fn is_time_of_day(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let [h, m, sec] = parts.as_slice() else { return false };
    let num = |p: &str, len: std::ops::RangeInclusive<usize>, max: u32| {
        len.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u32>().is_ok_and(|n| n <= max)
    };
    num(h, 1..=2, 23) && num(m, 2..=2, 59) && num(sec, 2..=2, 59)
}

/// A parameter `dest`: dot-separated keys, none empty (`\.` is a literal dot).
fn check_dest(dest: &str) -> Result<(), String> {
    if dest.is_empty() {
        return Err(
            "parameter dest is empty; give the dotted path of the key to set, e.g. spec.arguments.parameters.0.value"
                .to_string(),
        );
    }
    if dest.starts_with('.') {
        return Err(format!("parameter dest '{dest}' starts with '.'"));
    }
    let mut escaped = false;
    let mut prev_dot = false;
    for (i, c) in dest.char_indices() {
        let is_sep = c == '.' && !escaped;
        if is_sep && prev_dot {
            return Err(format!("parameter dest '{dest}' has an empty key at offset {i} ('..')"));
        }
        prev_dot = is_sep;
        escaped = c == '\\' && !escaped;
    }
    if prev_dot {
        return Err(format!("parameter dest '{dest}' ends with '.'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;

    fn sensor(yaml: &str) -> Sensor {
        serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("test manifest does not load: {e}"))
    }

    /// A valid sensor with two dependencies; `triggers` is spliced in.
    fn with_triggers(triggers: &str) -> Sensor {
        sensor(&format!(
            "apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: s
spec:
  dependencies:
    - name: dep-a
      eventSourceName: webhook
      eventName: a
    - name: dep-b
      eventSourceName: webhook
      eventName: b
  triggers:
{triggers}"
        ))
    }

    fn log_trigger(name: &str) -> String {
        format!("    - template:\n        name: {name}\n        log: {{}}\n")
    }

    fn errors(s: &Sensor) -> Vec<(String, String)> {
        validate(s)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| (f.path, f.message))
            .collect()
    }

    fn one_error(s: &Sensor) -> (String, String) {
        let all = validate(s);
        assert_eq!(all.len(), 1, "expected one finding, got {all:#?}");
        assert_eq!(all[0].severity, Severity::Error, "{all:#?}");
        (all[0].path.clone(), all[0].message.clone())
    }

    #[test]
    fn a_valid_sensor_has_no_findings() {
        let s = with_triggers(&log_trigger("t1"));
        assert_eq!(validate(&s), vec![]);
    }

    #[test]
    fn no_dependencies() {
        let s = sensor(
            "apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: s}
spec:
  dependencies: []
  triggers:
    - template: {name: t, log: {}}
",
        );
        assert_eq!(
            one_error(&s),
            (
                "spec.dependencies".into(),
                "the sensor has no dependencies; add at least one under spec.dependencies".into()
            )
        );
    }

    #[test]
    fn no_triggers() {
        let s = with_triggers("    []\n");
        assert_eq!(one_error(&s).0, "spec.triggers");
    }

    #[test]
    fn duplicate_dependency_names() {
        let s = sensor(
            "apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: s}
spec:
  dependencies:
    - {name: dep, eventSourceName: webhook, eventName: a}
    - {name: other, eventSourceName: webhook, eventName: b}
    - {name: dep, eventSourceName: webhook, eventName: c}
  triggers:
    - template: {name: t, log: {}, conditions: dep && other}
",
        );
        assert_eq!(
            one_error(&s),
            (
                "spec.dependencies[2].name".into(),
                "duplicate dependency name 'dep' (also spec.dependencies[0])".into()
            )
        );
    }

    #[test]
    fn duplicate_trigger_names() {
        let s = with_triggers(&format!("{}{}", log_trigger("same"), log_trigger("same")));
        assert_eq!(
            one_error(&s),
            (
                "spec.triggers[1].template.name".into(),
                "duplicate trigger name 'same' (also spec.triggers[0])".into()
            )
        );
    }

    #[test]
    fn conditions_that_do_not_parse() {
        let s = with_triggers(
            "    - template:\n        name: t\n        conditions: \"(dep-a || dep-b\"\n        log: {}\n",
        );
        assert_eq!(
            one_error(&s),
            (
                "spec.triggers[0].template.conditions".into(),
                "invalid conditions '(dep-a || dep-b': at column 16: expected ')', found the end of the expression (the '(' at column 1 is not closed)".into()
            )
        );
        let s = with_triggers("    - template:\n        name: t\n        conditions: dep-a & dep-b\n        log: {}\n");
        assert_eq!(
            one_error(&s).1,
            "invalid conditions 'dep-a & dep-b': at column 7: expected '&&', found '&'"
        );
    }

    #[test]
    fn conditions_naming_an_unknown_dependency() {
        let s =
            with_triggers("    - template:\n        name: t\n        conditions: dep-b && dep-aa\n        log: {}\n");
        assert_eq!(
            one_error(&s),
            (
                "spec.triggers[0].template.conditions".into(),
                "conditions name unknown dependency 'dep-aa'; did you mean 'dep-a'?".into()
            )
        );
        let s = with_triggers("    - template:\n        name: t\n        conditions: zzz\n        log: {}\n");
        assert_eq!(
            one_error(&s).1,
            "conditions name unknown dependency 'zzz'; known dependencies: 'dep-a', 'dep-b'"
        );
    }

    #[test]
    fn parameter_with_unknown_dependency_on_the_trigger() {
        let s = with_triggers(
            "    - template:
        name: t
        http:
          url: http://example.invalid
      parameters:
        - src: {dependencyName: dep-b, dataKey: body.url}
          dest: http.url
        - src: {dependencyName: dep-bb, dataKey: body.url}
          dest: http.url
",
        );
        assert_eq!(
            one_error(&s),
            (
                "spec.triggers[0].parameters[1].src.dependencyName".into(),
                "parameter refers to unknown dependency 'dep-bb'; did you mean 'dep-b'?".into()
            )
        );
    }

    #[test]
    fn parameter_with_unknown_dependency_on_the_kind() {
        let s = with_triggers(
            "    - template:
        name: t
        argoWorkflow:
          operation: submit
          source:
            resource: {apiVersion: argoproj.io/v1alpha1, kind: Workflow}
          parameters:
            - src: {dependencyName: dep-a, dataKey: body}
              dest: spec.arguments.parameters.0.value
            - src: {dependencyName: dep-x, dataKey: body}
              dest: spec.arguments.parameters.1.value
",
        );
        let (path, msg) = one_error(&s);
        assert_eq!(
            path,
            "spec.triggers[0].template.argoWorkflow.parameters[1].src.dependencyName"
        );
        assert!(
            msg.starts_with("parameter refers to unknown dependency 'dep-x'"),
            "{msg}"
        );

        let s = with_triggers(
            "    - template:
        name: t
        http:
          url: http://example.invalid
          payload:
            - src: {dependencyName: nope, dataKey: body}
              dest: message
",
        );
        assert_eq!(
            one_error(&s).0,
            "spec.triggers[0].template.http.payload[0].src.dependencyName"
        );
    }

    #[test]
    fn malformed_dest() {
        let with_dest = |dest: &str| {
            with_triggers(&format!(
                "    - template:\n        name: t\n        log: {{}}\n      parameters:\n        - src: {{dependencyName: dep-a}}\n          dest: \"{dest}\"\n"
            ))
        };
        let path = "spec.triggers[0].parameters[0].dest".to_string();
        assert_eq!(
            one_error(&with_dest("")),
            (path.clone(), "parameter dest is empty; give the dotted path of the key to set, e.g. spec.arguments.parameters.0.value".into())
        );
        assert_eq!(
            one_error(&with_dest("a..b")),
            (
                path.clone(),
                "parameter dest 'a..b' has an empty key at offset 2 ('..')".into()
            )
        );
        assert_eq!(
            one_error(&with_dest(".a")),
            (path.clone(), "parameter dest '.a' starts with '.'".into())
        );
        assert_eq!(
            one_error(&with_dest("a.b.")),
            (path, "parameter dest 'a.b.' ends with '.'".into())
        );
        // An escaped dot is part of a key, not a separator.
        assert_eq!(
            validate(&with_dest("metadata.labels.app\\\\.kubernetes\\\\.io/name")),
            vec![]
        );
        assert_eq!(validate(&with_dest("spec.list.-1")), vec![]);
    }

    fn with_filter(filters: &str) -> Sensor {
        sensor(&format!(
            "apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: s}}
spec:
  dependencies:
    - name: dep
      eventSourceName: webhook
      eventName: a
      filters:
{filters}
  triggers:
    - template: {{name: t, log: {{}}}}
"
        ))
    }

    #[test]
    fn data_filter_type() {
        let s = with_filter("        data:\n          - {path: body.n, type: int, value: ['1']}");
        assert_eq!(
            one_error(&s),
            (
                "spec.dependencies[0].filters.data[0].type".into(),
                "unknown data filter type 'int'; expected one of bool, number, string".into()
            )
        );
    }

    #[test]
    fn data_filter_comparator() {
        let s = with_filter("        data:\n          - {path: body.n, type: number, value: ['1'], comparator: '=='}");
        assert_eq!(
            one_error(&s),
            (
                "spec.dependencies[0].filters.data[0].comparator".into(),
                "unknown comparator '=='; expected one of = != < <= > >= (empty means =)".into()
            )
        );
        for ok in ["", "=", "!=", "<", "<=", ">", ">="] {
            let s = with_filter(&format!(
                "        data:\n          - {{path: body.n, type: number, value: ['1'], comparator: '{ok}'}}"
            ));
            assert_eq!(validate(&s), vec![], "comparator {ok:?}");
        }
    }

    #[test]
    fn time_filter_format() {
        let s = with_filter("        time: {start: '25:00:00', stop: '9:5:00'}");
        assert_eq!(
            errors(&s),
            vec![
                (
                    "spec.dependencies[0].filters.time.start".into(),
                    "time filter start '25:00:00' is not a time of day in HH:MM:SS form (e.g. 09:30:00)".into()
                ),
                (
                    "spec.dependencies[0].filters.time.stop".into(),
                    "time filter stop '9:5:00' is not a time of day in HH:MM:SS form (e.g. 09:30:00)".into()
                ),
            ]
        );
        let s = with_filter("        time: {start: '9:30:00', stop: '23:59:59'}");
        assert_eq!(validate(&s), vec![]);
    }

    #[test]
    fn conditions_reset_cron_fields() {
        let with_cron = |cron: &str| {
            with_triggers(&format!(
                "    - template:\n        name: t\n        log: {{}}\n        conditionsReset:\n          - byTime: {{cron: '{cron}', timezone: UTC}}\n"
            ))
        };
        assert_eq!(
            one_error(&with_cron("0 0 * * * *")),
            (
                "spec.triggers[0].template.conditionsReset[0].byTime.cron".into(),
                "schedule '0 0 * * * *' has 6 fields; a cron schedule has 5 (minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'), or use a descriptor such as '@hourly'".into()
            )
        );
        assert!(
            one_error(&with_cron("@sometimes"))
                .1
                .starts_with("schedule '@sometimes': unknown descriptor '@sometimes'")
        );
        for ok in ["0 23 * * *", "@daily", "@every 1h", "CRON_TZ=UTC 0 0 * * *"] {
            assert_eq!(validate(&with_cron(ok)), vec![], "cron {ok:?}");
        }
    }

    #[test]
    fn trigger_without_kind() {
        let s = with_triggers("    - template:\n        name: t\n");
        let (path, msg) = one_error(&s);
        assert_eq!(path, "spec.triggers[0].template");
        assert!(
            msg.starts_with("trigger 't' has no trigger kind; set one of k8s, argoWorkflow"),
            "{msg}"
        );
    }

    #[test]
    fn trigger_with_two_kinds() {
        let s = with_triggers("    - template:\n        name: t\n        log: {}\n        http: {url: 'http://x'}\n");
        assert_eq!(
            one_error(&s),
            (
                "spec.triggers[0].template".into(),
                "trigger 't' sets more than one trigger kind (http, log); set exactly one".into()
            )
        );
    }

    #[test]
    fn unsupported_kind_is_a_warning() {
        let s = with_triggers(
            "    - template:
        name: t
        awsLambda:
          functionName: hello
          region: us-east-1
          payload:
            - src: {dependencyName: other}
              dest: x
",
        );
        let all = validate(&s);
        assert_eq!(
            all,
            vec![
                Finding::warning(
                    "spec.triggers[0].template.awsLambda",
                    "trigger kind 'awsLambda' is not supported by Argon yet; the sensor loads but this trigger will not fire"
                ),
                Finding::error(
                    "spec.triggers[0].template.awsLambda.payload[0].src.dependencyName",
                    "parameter refers to unknown dependency 'other'; known dependencies: 'dep-a', 'dep-b'"
                ),
            ]
        );
    }

    #[test]
    fn k8s_trigger_without_source() {
        let s = with_triggers("    - template:\n        name: t\n        k8s: {operation: create}\n");
        assert_eq!(one_error(&s).0, "spec.triggers[0].template.k8s.source");
    }

    #[test]
    fn dlq_trigger_is_checked_too() {
        let s = with_triggers(
            "    - template: {name: t, log: {}}
      atLeastOnce: true
      dlqTrigger:
        template:
          name: dlq
          http: {url: 'http://x'}
        parameters:
          - src: {dependencyName: dep-z}
            dest: http.url
",
        );
        assert_eq!(
            one_error(&s).0,
            "spec.triggers[0].dlqTrigger.parameters[0].src.dependencyName"
        );
    }

    #[test]
    fn misplaced_template_fields_are_warnings() {
        let s = with_triggers("    - template:\n        name: t\n        log: {}\n        atLeastOnce: true\n");
        assert_eq!(
            validate(&s),
            vec![Finding::warning(
                "spec.triggers[0].template.atLeastOnce",
                "'atLeastOnce' belongs on the trigger (spec.triggers[0].atLeastOnce), not in its template; Argon applies it to the trigger"
            )]
        );
        assert!(s.spec.triggers[0].at_least_once());
    }
}
