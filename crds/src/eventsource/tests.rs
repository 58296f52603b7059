//! Conformance: every upstream EventSource example loads into the typed model
//! and serializes back to the same document (nothing dropped or renamed).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EventConfig, EventSource, EventSourceKind};

/// The conformance corpus of Argo Events examples.
pub(crate) fn corpus_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/argo-events/examples")
        .join(sub)
}

/// Drops nulls and empty maps and lists, which mean "absent" in a manifest.
fn prune(value: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> =
                map.into_iter().filter_map(|(k, v)| prune(v).map(|v| (k, v))).collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Value::Array(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(prune).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        other => Some(other),
    }
}

/// Loads `file` as `T` and checks that serializing it gives back the input.
pub(crate) fn assert_round_trip<T: DeserializeOwned + Serialize>(file: &Path) -> T {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let typed: T = {
        let de = serde_norway::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de)
            .unwrap_or_else(|e| panic!("{}: {} at {}", file.display(), e.inner(), e.path()))
    };
    let input: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let output = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        prune(output),
        prune(input),
        "{}: serializing the typed value does not give back the input",
        file.display()
    );
    typed
}

#[test]
fn every_event_source_example_round_trips() {
    let dir = corpus_dir("event-sources");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 31, "the corpus has 31 EventSource examples");
    for file in &files {
        let es: EventSource = assert_round_trip(file);
        assert!(!es.spec.events().is_empty(), "{}: no event", file.display());
        // The upstream examples are valid: no error, at most "not supported yet" warnings.
        for finding in super::validate(&es) {
            assert_eq!(
                finding.severity,
                crate::diag::Severity::Warning,
                "{}: {} {}",
                file.display(),
                finding.path,
                finding.message
            );
        }
    }
}

/// The corpus also passes the strict decoding of the loader: the generated
/// schema knows every field the examples use.
#[test]
fn every_event_source_example_passes_strict_decoding() {
    let dir = corpus_dir("event-sources");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        let value: serde_json::Value = serde_norway::from_str(&text).unwrap();
        // The root's schema leaves apiVersion, kind and metadata to the loader.
        if let Err(findings) = crate::strict::decode::<super::EventSourceSpec>(&value["spec"]) {
            panic!("{}: {findings:?}", file.display());
        }
    }
}

#[test]
fn events_lists_kind_name_and_config() {
    let es: EventSource = assert_round_trip(&corpus_dir("event-sources").join("github.yaml"));
    let events = es.spec.events();
    let names: Vec<(&str, &str)> = events.iter().map(|e| (e.kind.as_str(), e.name)).collect();
    assert_eq!(
        names,
        [("github", "example"), ("github", "example-without-api-credentials")]
    );
    let EventConfig::Github(gh) = events[1].config else {
        panic!("not github")
    };
    assert_eq!(gh.owned_repositories()[0].names, ["argo"]);
    assert_eq!(events[0].config.webhook_context().unwrap().port, "12000");

    let es: EventSource = assert_round_trip(&corpus_dir("event-sources").join("aws-sqs.yaml"));
    let events = es.spec.events();
    assert!(events.iter().all(|e| e.kind == EventSourceKind::Sqs));
    assert!(matches!(events[0].config, EventConfig::Sqs(_)));

    let es: EventSource = assert_round_trip(&corpus_dir("event-sources").join("pulsar.yaml"));
    let events = es.spec.events();
    assert!(
        events
            .iter()
            .all(|e| e.kind == EventSourceKind::Unsupported("pulsar".into()))
    );
    assert!(matches!(events[0].config, EventConfig::Unsupported(_)));
}

#[test]
fn kinds_map_to_their_spec_keys() {
    for kind in EventSourceKind::SUPPORTED {
        assert_eq!(EventSourceKind::from_key(kind.as_str()), kind);
        assert!(kind.is_supported());
    }
    assert_eq!(
        EventSourceKind::from_key("pubSub"),
        EventSourceKind::Unsupported("pubSub".into())
    );
    assert!(EventSourceKind::BitbucketServer.is_webhook_family());
    assert!(!EventSourceKind::Calendar.is_webhook_family());
}

#[test]
fn the_webhook_context_is_flattened_into_the_webhook_event() {
    let es: EventSource = assert_round_trip(&corpus_dir("event-sources").join("webhook.yaml"));
    let hook = &es.spec.webhook["example"];
    assert_eq!(hook.context.endpoint, "/example");
    assert_eq!(hook.context.method, "POST");
    assert_eq!(hook.context.max_payload_size(), 1_048_576);
}

#[test]
fn type_errors_in_a_webhook_event_name_the_field() {
    let yaml = "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata: {name: x}\nspec:\n  webhook:\n    ex:\n      port: \"12000\"\n      endpoint: /x\n      method: POST\n      maxPayloadSize: big\n";
    let de = serde_norway::Deserializer::from_str(yaml);
    let err = serde_path_to_error::deserialize::<_, EventSource>(de).unwrap_err();
    assert_eq!(err.path().to_string(), "spec.webhook.ex.maxPayloadSize");
}

#[test]
fn the_schema_rejects_misspelled_fields_but_keeps_unsupported_kinds_raw() {
    let spec = serde_json::json!({
        "webhook": {"ex": {"port": "12000", "endpoint": "/x", "method": "POST", "methd": "GET"}},
        "calendar": {"tick": {"interval": "10s", "persistence": {"catchup": {"enabeld": true}}}},
        "sns": {"q": {"anything": {"goes": 1}}},
    });
    let findings = crate::strict::decode::<super::EventSourceSpec>(&spec).unwrap_err();
    let mut paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["calendar.tick.persistence.catchup.enabeld", "webhook.ex.methd"]);
}
