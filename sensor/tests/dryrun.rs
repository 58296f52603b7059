//! Dry runs of the conformance sensors (`../shared/conformance/argo-events/
//! examples/sensors/`) whose features Argon supports, each with a sample
//! event from `tests/events/`; the output is checked value by value.

use std::path::PathBuf;

use argon_crds::secret::Secrets;
use argon_crds::sensor::Sensor;
use argon_sensor::dryrun::{self, Sample};
use argon_sensor::sensor::CompiledSensor;
use serde_json::Value;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/argo-events/examples/sensors"
    ))
    .join(name)
}

fn load(name: &str) -> Sensor {
    let report = argon_crds::lint::lint_paths(&[corpus(name)]);
    assert!(!report.has_errors(), "{name}: {:?}", report.diagnostics);
    report
        .sensors()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{name}: no sensor"))
}

fn sample(event: &str, dependency: Option<&str>) -> Sample {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/events")).join(event);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sample {
        json: serde_json::from_str(&text).expect("sample is JSON"),
        dependency: dependency.map(str::to_owned),
    }
}

fn dry_run(sensor: &str, samples: &[(&str, Option<&str>)]) -> Value {
    let compiled =
        CompiledSensor::compile(&load(sensor), Secrets::default()).unwrap_or_else(|e| panic!("{sensor}: {e}"));
    let samples: Vec<Sample> = samples.iter().map(|(e, d)| sample(e, *d)).collect();
    dryrun::run(&compiled, &samples).unwrap_or_else(|e| panic!("{sensor}: {e}"))
}

fn trigger<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["triggers"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no trigger {name} in {report:#}"))
}

/// The workflow a firing submits.
fn workflow<'a>(report: &'a Value, name: &str) -> &'a Value {
    let t = trigger(report, name);
    assert_eq!(t["fires"], true, "{t:#}");
    assert_eq!(t["request"]["kind"], "workflow", "{t:#}");
    assert_eq!(t["request"]["operation"], "submit");
    let wf = &t["request"]["workflow"];
    assert_eq!(wf["metadata"]["labels"]["events.argoproj.io/trigger"], name);
    assert_eq!(t["idempotencyKey"].as_str().map(str::len), Some(32));
    wf
}

fn first_argument(wf: &Value) -> &Value {
    &wf["spec"]["arguments"]["parameters"][0]["value"]
}

#[test]
fn webhook_submits_the_body_as_the_message() {
    let r = dry_run("webhook.yaml", &[("webhook.json", None)]);
    assert_eq!(r["events"][0]["passed"], true);
    let wf = workflow(&r, "webhook-workflow-trigger");
    assert_eq!(first_argument(wf), r#"{"message":"hello"}"#);
    assert_eq!(wf["metadata"]["labels"]["events.argoproj.io/sensor"], "webhook");
    assert_eq!(wf["metadata"]["generateName"], "webhook-");
}

#[test]
fn simple_data_filter_passes_hey_and_rejects_goodbye() {
    let r = dry_run("filter-with-data-simple-1.yaml", &[("data-simple.json", None)]);
    assert_eq!(first_argument(workflow(&r, "data-workflow")), "hey");
    let r = dry_run("filter-with-data-simple-1.yaml", &[("data-simple-rejected.json", None)]);
    assert_eq!(r["events"][0]["passed"], false);
    assert_eq!(trigger(&r, "data-workflow")["fires"], false);
    assert_eq!(
        trigger(&r, "data-workflow")["waitingFor"],
        serde_json::json!(["test-dep"])
    );
}

#[test]
fn advanced_data_filters() {
    let r = dry_run("filter-with-data-advanced.yaml", &[("data-advanced.json", None)]);
    assert_eq!(first_argument(workflow(&r, "workflow")), "advanced-run");
}

#[test]
fn expression_filters_and_mixed_or() {
    let r = dry_run("filter-with-expressions.yaml", &[("expressions.json", None)]);
    assert_eq!(r["events"][0]["passed"], true, "{r:#}");
    let r = dry_run("filter-with-multiple-filters-in-or.yaml", &[("expressions.json", None)]);
    assert_eq!(first_argument(workflow(&r, "workflow")), "expr-run");
}

#[test]
fn script_filter() {
    let r = dry_run("filter-script.yaml", &[("script.json", None)]);
    assert_eq!(r["events"][0]["passed"], true, "{r:#}");
}

#[test]
fn transforms_by_script_and_jq() {
    let r = dry_run(
        "transform.yaml",
        &[("transform-script.json", None), ("transform-jq.json", None)],
    );
    assert_eq!(r["events"][0]["dependency"], "test-dep");
    assert_eq!(r["events"][0]["event"]["data"]["body"]["message"], "updated");
    assert_eq!(r["events"][1]["dependency"], "test-dep-foo");
    assert_eq!(r["events"][1]["event"]["data"]["body"]["message"], "abab");
}

#[test]
fn http_trigger_request() {
    let r = dry_run("http-trigger.yaml", &[("minio.json", None)]);
    let t = trigger(&r, "http-trigger");
    assert_eq!(t["fires"], true);
    let req = &t["request"];
    assert_eq!(req["kind"], "http");
    assert_eq!(req["method"], "POST");
    assert_eq!(req["url"], "http://http-server.argo-events.svc:8090/hello");
    assert_eq!(req["body"], serde_json::json!({"bucket": "input", "type": "minio"}));
    let headers = req["headers"].as_array().unwrap();
    assert!(
        headers.contains(&serde_json::json!(["Idempotency-Key", t["idempotencyKey"]])),
        "{headers:?}"
    );
}

#[test]
fn http_secure_headers_are_not_read_in_a_dry_run() {
    let r = dry_run("http-trigger-secure-headers.yaml", &[("webhook.json", None)]);
    let req = &trigger(&r, "http-trigger")["request"];
    assert_eq!(req["method"], "GET");
    assert_eq!(req["allowStatus"], serde_json::json!([200, 201]));
    let headers = req["headers"].as_array().unwrap();
    assert!(
        headers.contains(&serde_json::json!([
            "serviceToken",
            "<secret dev-services-secret/serviceToken>"
        ])),
        "{headers:?}"
    );
}

#[test]
fn nats_trigger_message() {
    let r = dry_run("trigger-nats-messages.yaml", &[("minio.json", None)]);
    let req = &trigger(&r, "nats-trigger")["request"];
    assert_eq!(req["kind"], "nats");
    assert_eq!(req["subject"], "minio-events");
    assert_eq!(
        req["payload"],
        serde_json::json!({"fileName": "reports/2026-11.csv", "bucket": "input"})
    );
}

#[test]
fn log_trigger() {
    let r = dry_run("log.yaml", &[("calendar.json", None)]);
    let req = &trigger(&r, "log-trigger")["request"];
    assert_eq!(req["kind"], "log");
    assert_eq!(req["events"]["test-dep"]["data"]["metadata"]["hello"], "world");
    assert_eq!(req["events"]["test-dep"]["context"]["id"], "evt-calendar-1");
}

#[test]
fn multi_dependencies_wait_then_fire_with_both_events() {
    let r = dry_run("multi-dependencies.yaml", &[("multi-webhook.json", None)]);
    let t = trigger(&r, "multi-dependencies-workflow-trigger");
    assert_eq!(t["fires"], false);
    assert_eq!(t["waitingFor"], serde_json::json!(["test-dependency-calendar"]));
    let r = dry_run(
        "multi-dependencies.yaml",
        &[("multi-webhook.json", None), ("calendar.json", None)],
    );
    let wf = workflow(&r, "multi-dependencies-workflow-trigger");
    assert_eq!(wf["spec"]["arguments"]["parameters"][0]["value"], "from-webhook");
    assert_eq!(
        wf["spec"]["arguments"]["parameters"][1]["value"],
        "2026-11-21 10:30:00 +0000 UTC"
    );
}

#[test]
fn templates_with_sprig_functions() {
    let r = dry_run("trigger-with-template.yaml", &[("template.json", None)]);
    let wf = workflow(&r, "templated-workflow-trigger");
    assert_eq!(wf["spec"]["arguments"]["parameters"][0]["value"], "Hello From Argon");
    assert_eq!(wf["spec"]["arguments"]["parameters"][1]["value"], "Example");
    assert_eq!(wf["metadata"]["generateName"], "webhook-buildbot-");
}

#[test]
fn per_trigger_conditions() {
    let r = dry_run("dependencies-conditions.yaml", &[("webhook.json", None)]);
    workflow(&r, "webhook-workflow-trigger");
    assert_eq!(trigger(&r, "webhook-workflow-trigger-2")["fires"], false);
    let r = dry_run("dependencies-conditions.yaml", &[("foo.json", None)]);
    assert_eq!(trigger(&r, "webhook-workflow-trigger")["fires"], false);
    workflow(&r, "webhook-workflow-trigger-2");
}

#[test]
fn time_filters_wrap_past_midnight() {
    let r = dry_run(
        "time-filter-webhook.yaml",
        &[("time-in-window.json", None), ("time-after-midnight.json", None)],
    );
    assert_eq!(r["events"][0]["passed"], true);
    assert_eq!(r["events"][1]["passed"], true);
    workflow(&r, "hello-world-workflow-trigger");
    let r = dry_run("time-filter-webhook.yaml", &[("time-outside.json", None)]);
    assert_eq!(r["events"][0]["passed"], false);
}

#[test]
fn argo_workflow_trigger_keeps_its_name() {
    let r = dry_run("special-workflow-trigger.yaml", &[("webhook.json", None)]);
    let wf = workflow(&r, "argo-workflow-trigger");
    assert_eq!(wf["metadata"]["name"], "special-trigger");
    assert_eq!(first_argument(wf), r#"{"message":"hello"}"#);
}

#[test]
fn k8s_pod_gets_a_deterministic_name_and_labels() {
    let r = dry_run("trigger-standard-k8s-resource.yaml", &[("webhook.json", None)]);
    let t = trigger(&r, "webhook-pod-trigger");
    let req = &t["request"];
    assert_eq!(req["kind"], "k8s");
    assert_eq!(req["operation"], "create");
    let key = t["idempotencyKey"].as_str().unwrap();
    assert_eq!(
        req["resource"]["metadata"]["name"],
        format!("hello-world-{}", &key[..12])
    );
    assert_eq!(
        req["resource"]["metadata"]["labels"]["events.argoproj.io/sensor"],
        "trigger-standard-k8s-resource"
    );
    assert_eq!(
        req["resource"]["spec"]["containers"][0]["args"][0],
        r#"{"message":"hello"}"#
    );
    // the same event gives the same name
    let again = dry_run("trigger-standard-k8s-resource.yaml", &[("webhook.json", None)]);
    assert_eq!(trigger(&again, "webhook-pod-trigger")["request"], *req);
}

#[test]
fn unsupported_features_are_clear_errors() {
    for (file, needle) in [
        ("context-filter-webhook.yaml", "s3"),
        ("trigger-source-configmap.yaml", "configmap"),
        ("trigger-source-git.yaml", "git"),
        ("aws-lambda-trigger.yaml", "awsLambda"),
        ("custom-trigger.yaml", "custom"),
    ] {
        let err = CompiledSensor::compile(&load(file), Secrets::default())
            .expect_err(file)
            .to_string();
        assert!(
            err.contains(needle) && err.contains("not supported yet"),
            "{file}: {err}"
        );
    }
}
