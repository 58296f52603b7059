//! The reconcilers against a scripted API: create, update, delete, status,
//! conflicts and server errors with their backoff, for each kind.

use std::sync::Arc;
use std::time::Duration;

use argon_crds::eventbus::EventBus;
use argon_crds::eventsource::EventSource;
use argon_crds::sensor::Sensor;
use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::testing::{self, Exchange, Recorded, Reply, expect};

const ES_PATH: &str = "/apis/argoproj.io/v1alpha1/namespaces/default/eventsources/webhook";
const SENSOR_PATH: &str = "/apis/argoproj.io/v1alpha1/namespaces/default/sensors/webhook";
const BUS_PATH: &str = "/apis/argoproj.io/v1alpha1/namespaces/default/eventbus/default";
const CORE: &str = "/api/v1/namespaces/default";
const APPS: &str = "/apis/apps/v1/namespaces/default";

fn meta(name: &str, finalized: bool, deleting: bool) -> Value {
    let mut meta = json!({"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": "7"});
    if finalized {
        meta["finalizers"] = json!([FINALIZER]);
    }
    if deleting {
        meta["deletionTimestamp"] = json!("2026-12-07T10:00:00Z");
    }
    meta
}

fn eventsource_json(port: &str, finalized: bool, deleting: bool) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
        "metadata": meta("webhook", finalized, deleting),
        "spec": {"webhook": {"example": {
            "port": port, "endpoint": "/example", "method": "POST",
            "authSecret": {"name": "webhook-token", "key": "token"}
        }}}
    })
}

fn eventsource(value: Value) -> Arc<EventSource> {
    Arc::new(serde_json::from_value(value).expect("an EventSource"))
}

fn sensor_json(finalized: bool, deleting: bool) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
        "metadata": meta("webhook", finalized, deleting),
        "spec": {
            "dependencies": [{"name": "dep", "eventSourceName": "webhook", "eventName": "example"}],
            "triggers": [{"template": {"name": "log", "log": {}}}]
        }
    })
}

fn sensor(value: Value) -> Arc<Sensor> {
    Arc::new(serde_json::from_value(value).expect("a Sensor"))
}

fn bus_json(spec: Value, finalized: bool, deleting: bool) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "EventBus",
        "metadata": meta("default", finalized, deleting),
        "spec": spec
    })
}

fn bus(value: Value) -> Arc<EventBus> {
    Arc::new(serde_json::from_value(value).expect("an EventBus"))
}

fn jetstream_bus() -> Value {
    bus_json(json!({"jetstream": {"replicas": 3}}), true, false)
}

fn deleted() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn settings() -> Settings {
    Settings {
        image: "registry.example/argon:1".into(),
        image_pull_policy: None,
        server_url: Some("http://argon-server.argon.svc:2746".into()),
        server_token_secret: Some("argon-server-token".into()),
    }
}

/// The bus read and the applies of `name`'s manifest ConfigMap and
/// Deployment (each echoed back), with which a reconcile of `name` starts.
fn bus_and_applies(name: &str) -> Vec<Exchange> {
    vec![
        expect(Method::GET, BUS_PATH, Reply::Json(200, jetstream_bus())),
        expect(Method::PATCH, format!("{CORE}/configmaps/{name}-manifest"), Reply::Echo),
        expect(Method::PATCH, format!("{APPS}/deployments/{name}"), Reply::Echo),
    ]
}

/// [`bus_and_applies`] of the EventSource, then its Service applied.
fn eventsource_applies() -> Vec<Exchange> {
    let mut script = bus_and_applies("webhook-eventsource");
    script.push(expect(
        Method::PATCH,
        format!("{CORE}/services/webhook-eventsource-svc"),
        Reply::Echo,
    ));
    script
}

/// Runs `reconcile` against the scripted API.
async fn run<F>(reconcile: F, script: Vec<Exchange>) -> (Result<Action>, Vec<Recorded>)
where
    F: FnOnce(Arc<Context>) -> futures::future::BoxFuture<'static, Result<Action>>,
{
    let (client, handle) = testing::client();
    let ctx = Context::new(client, settings());
    tokio::join!(reconcile(ctx), testing::serve(handle, script))
}

fn conditions_of(status_patch: &Recorded) -> Vec<(String, String, String)> {
    status_patch.body["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn applied(recorded: &Recorded) {
    assert_eq!(recorded.method, Method::PATCH);
    assert!(
        recorded.query.contains("fieldManager=argon-controller") && recorded.query.contains("force=true"),
        "not a forced server-side apply: {}",
        recorded.query
    );
}

fn es_status(status: Value) -> Value {
    let mut es = eventsource_json("12000", true, false);
    es["status"] = status;
    es
}

#[tokio::test]
async fn a_new_eventsource_gets_the_finalizer_first() {
    let es = eventsource(eventsource_json("12000", false, false));
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventsource(es, ctx)),
        vec![expect(
            Method::PATCH,
            ES_PATH,
            Reply::Json(200, eventsource_json("12000", true, false)),
        )],
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    let ops = recorded[0].body.as_array().expect("a JSON patch");
    assert!(
        ops.iter()
            .any(|op| op["op"] == "add" && op["value"] == json!([FINALIZER])),
        "{ops:?}"
    );
}

#[tokio::test]
async fn eventsource_create_applies_its_objects_and_writes_the_status() {
    let es = eventsource(eventsource_json("12000", true, false));
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventsource(es, ctx)),
        eventsource_applies()
            .into_iter()
            .chain([expect(
                Method::PATCH,
                format!("{ES_PATH}/status"),
                Reply::Status(eventsource_json("12000", true, false)),
            )])
            .collect(),
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    for r in &recorded[1..4] {
        applied(r);
        assert_eq!(r.body["metadata"]["ownerReferences"][0]["uid"], "uid-webhook");
        assert_eq!(r.body["metadata"]["ownerReferences"][0]["controller"], true);
    }
    let deployment = &recorded[2].body;
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example/argon:1");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args[..5],
        [
            "eventsource",
            "run",
            "/etc/argon/manifest/eventsource.yaml",
            "--bus",
            "nats://eventbus-default-js-svc.default.svc:4222"
        ]
    );
    assert!(args.ends_with(&["--secrets-dir", "/etc/argon/secrets"]), "{args:?}");
    let mounts = container["volumeMounts"].to_string();
    assert!(mounts.contains("/etc/argon/secrets/webhook-token"), "{mounts}");
    assert_eq!(recorded[3].body["spec"]["ports"][0]["port"], 12000);
    assert_eq!(recorded[4].query, "");
    assert_eq!(
        conditions_of(&recorded[4]),
        [
            ("SourcesProvided".into(), "True".into(), "EventSourceValid".into()),
            ("Deployed".into(), "True".into(), "Deployed".into())
        ]
    );
}

#[tokio::test]
async fn a_spec_change_rolls_out_and_an_unchanged_status_is_not_rewritten() {
    let status = json!({"conditions": [
        {"type": "SourcesProvided", "status": "True", "lastTransitionTime": "2026-12-07T09:00:00Z", "reason": "EventSourceValid"},
        {"type": "Deployed", "status": "True", "lastTransitionTime": "2026-12-07T09:00:00Z", "reason": "Deployed",
         "message": "Deployment webhook-eventsource applied"}
    ]});
    let mut hashes = Vec::new();
    for port in ["12000", "13000"] {
        let mut value = eventsource_json(port, true, false);
        value["status"] = status.clone();
        let es = eventsource(value);
        let (result, recorded) = run(
            move |ctx| Box::pin(reconcile_eventsource(es, ctx)),
            eventsource_applies(),
        )
        .await;
        assert_eq!(result.unwrap(), Action::requeue(RESYNC));
        let manifest = recorded[1].body["data"]["eventsource.yaml"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(manifest.contains(&format!("port: '{port}'")), "{manifest}");
        assert!(!manifest.contains("status"), "{manifest}");
        assert!(!manifest.contains("resourceVersion"), "{manifest}");
        assert_eq!(
            recorded[3].body["spec"]["ports"][0]["port"],
            port.parse::<i64>().unwrap()
        );
        hashes.push(
            recorded[2].body["spec"]["template"]["metadata"]["annotations"][objects::CONFIG_HASH_ANNOTATION].clone(),
        );
    }
    assert_ne!(hashes[0], hashes[1], "a new manifest must roll the pods");
}

#[tokio::test]
async fn eventsource_delete_removes_its_objects_then_the_finalizer() {
    let es = eventsource(eventsource_json("12000", true, true));
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventsource(es, ctx)),
        vec![
            expect(
                Method::DELETE,
                format!("{APPS}/deployments/webhook-eventsource"),
                Reply::Json(200, deleted()),
            ),
            expect(
                Method::DELETE,
                format!("{CORE}/services/webhook-eventsource-svc"),
                Reply::Fail(404, "NotFound"),
            ),
            expect(
                Method::DELETE,
                format!("{CORE}/configmaps/webhook-eventsource-manifest"),
                Reply::Json(200, deleted()),
            ),
            expect(
                Method::PATCH,
                ES_PATH,
                Reply::Json(200, eventsource_json("12000", false, true)),
            ),
        ],
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(recorded[0].body["propagationPolicy"], "Background");
    let ops = recorded[3].body.as_array().expect("a JSON patch");
    assert!(ops.iter().any(|op| op["op"] == "remove"), "{ops:?}");
}

#[tokio::test]
async fn conflicts_and_server_errors_back_off_and_success_resets_it() {
    let (client, handle) = testing::client();
    let ctx = Context::new(client, settings());
    let es = eventsource(es_status(json!({})));
    let mut script = vec![
        // First attempt: the Deployment apply conflicts.
        expect(Method::GET, BUS_PATH, Reply::Json(200, jetstream_bus())),
        expect(
            Method::PATCH,
            format!("{CORE}/configmaps/webhook-eventsource-manifest"),
            Reply::Echo,
        ),
        expect(
            Method::PATCH,
            format!("{APPS}/deployments/webhook-eventsource"),
            Reply::Fail(409, "Conflict"),
        ),
        // Second: the API server fails.
        expect(Method::GET, BUS_PATH, Reply::Fail(500, "InternalError")),
    ];
    // Third: it works.
    script.extend(eventsource_applies());
    script.push(expect(
        Method::PATCH,
        format!("{ES_PATH}/status"),
        Reply::Status(es_status(json!({}))),
    ));
    let attempts = async {
        let mut delays = Vec::new();
        for _ in 0..2 {
            let error = reconcile_eventsource(es.clone(), ctx.clone()).await.unwrap_err();
            assert!(matches!(&error, Error::Finalizer(_)), "{error}");
            delays.push(error_policy(es.clone(), &error, ctx.clone()));
        }
        let ok = reconcile_eventsource(es.clone(), ctx.clone()).await.unwrap();
        (delays, ok)
    };
    let ((delays, ok), _) = tokio::join!(attempts, testing::serve(handle, script));
    assert_eq!(
        delays,
        [
            Action::requeue(Duration::from_secs(2)),
            Action::requeue(Duration::from_secs(4))
        ]
    );
    assert_eq!(ok, Action::requeue(RESYNC));
    let metrics = ctx.metrics.render();
    assert!(
        metrics.contains(r#"argon_controller_reconciles_total{kind="EventSource",outcome="error"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"argon_controller_reconciles_total{kind="EventSource",outcome="ok"} 1"#),
        "{metrics}"
    );
    // Success forgot the failures: the next error starts again at 2 s.
    let error = Error::BusInUse {
        name: "x".into(),
        users: "y".into(),
    };
    assert_eq!(error_policy(es, &error, ctx), Action::requeue(Duration::from_secs(2)));
}

#[test]
fn backoff_doubles_from_two_seconds_to_five_minutes() {
    let secs: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
}

#[tokio::test]
async fn an_eventsource_without_its_eventbus_waits_for_it() {
    let es = eventsource(eventsource_json("12000", true, false));
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventsource(es, ctx)),
        vec![
            expect(Method::GET, BUS_PATH, Reply::Fail(404, "NotFound")),
            expect(
                Method::PATCH,
                format!("{ES_PATH}/status"),
                Reply::Status(eventsource_json("12000", true, false)),
            ),
        ],
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(BUS_WAIT));
    assert_eq!(conditions_of(&recorded[1])[1].2, "EventBusNotFound");
    assert!(
        recorded[1]
            .body
            .to_string()
            .contains("EventBus 'default' does not exist in namespace default")
    );
}

#[tokio::test]
async fn an_invalid_eventsource_is_not_deployed() {
    let es = eventsource(eventsource_json("not-a-port", true, false));
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventsource(es, ctx)),
        vec![expect(
            Method::PATCH,
            format!("{ES_PATH}/status"),
            Reply::Status(eventsource_json("not-a-port", true, false)),
        )],
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    let conditions = conditions_of(&recorded[0]);
    assert_eq!(
        conditions[0],
        ("SourcesProvided".into(), "False".into(), "InvalidEventSource".into())
    );
    assert_eq!(conditions[1].1, "False");
    let message = recorded[0].body["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains("spec.webhook.example.port"), "{message}");
}

#[tokio::test]
async fn an_eventsource_without_webhooks_has_no_service() {
    let mut value = eventsource_json("12000", true, false);
    value["spec"] = json!({"calendar": {"tick": {"interval": "10s"}}});
    let es = eventsource(value.clone());
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventsource(es, ctx)),
        vec![
            expect(Method::GET, BUS_PATH, Reply::Json(200, jetstream_bus())),
            expect(
                Method::PATCH,
                format!("{CORE}/configmaps/webhook-eventsource-manifest"),
                Reply::Echo,
            ),
            expect(
                Method::PATCH,
                format!("{APPS}/deployments/webhook-eventsource"),
                Reply::Echo,
            ),
            expect(
                Method::DELETE,
                format!("{CORE}/services/webhook-eventsource-svc"),
                Reply::Fail(404, "NotFound"),
            ),
            expect(Method::PATCH, format!("{ES_PATH}/status"), Reply::Status(value)),
        ],
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    assert!(!recorded[2].body.to_string().contains("/etc/argon/secrets"));
}

#[tokio::test]
async fn sensor_create_applies_its_objects_and_writes_the_status() {
    let s = sensor(sensor_json(true, false));
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_sensor(s, ctx)),
        bus_and_applies("webhook-sensor")
            .into_iter()
            .chain([expect(
                Method::PATCH,
                format!("{SENSOR_PATH}/status"),
                Reply::Status(sensor_json(true, false)),
            )])
            .collect(),
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    applied(&recorded[1]);
    applied(&recorded[2]);
    let spec = &recorded[2].body["spec"];
    assert_eq!(spec["strategy"]["type"], "Recreate");
    let args = spec["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains(r#""sensor","run","/etc/argon/manifest/sensor.yaml""#),
        "{args}"
    );
    assert!(
        args.contains(r#""--server","http://argon-server.argon.svc:2746""#),
        "{args}"
    );
    assert!(
        args.contains(r#""--auth-token-file","/etc/argon/server-token/token""#),
        "{args}"
    );
    assert!(spec.to_string().contains(r#""secretName":"argon-server-token""#));
    assert_eq!(
        conditions_of(&recorded[3]),
        [
            ("DependenciesProvided".into(), "True".into(), "DependenciesValid".into()),
            ("TriggersProvided".into(), "True".into(), "TriggersValid".into()),
            ("Deployed".into(), "True".into(), "Deployed".into())
        ]
    );
}

#[tokio::test]
async fn sensor_delete_removes_its_objects_then_the_finalizer() {
    let s = sensor(sensor_json(true, true));
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_sensor(s, ctx)),
        vec![
            expect(
                Method::DELETE,
                format!("{APPS}/deployments/webhook-sensor"),
                Reply::Json(200, deleted()),
            ),
            expect(
                Method::DELETE,
                format!("{CORE}/configmaps/webhook-sensor-manifest"),
                Reply::Fail(404, "NotFound"),
            ),
            expect(Method::PATCH, SENSOR_PATH, Reply::Json(200, sensor_json(false, true))),
        ],
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert!(
        recorded[2]
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["op"] == "remove")
    );
}

#[tokio::test]
async fn a_failed_sensor_status_write_is_an_error_to_retry() {
    let s = sensor(sensor_json(true, false));
    let (result, _) = run(
        {
            let s = s.clone();
            move |ctx| Box::pin(reconcile_sensor(s, ctx))
        },
        bus_and_applies("webhook-sensor")
            .into_iter()
            .chain([expect(
                Method::PATCH,
                format!("{SENSOR_PATH}/status"),
                Reply::Fail(409, "Conflict"),
            )])
            .collect(),
    )
    .await;
    let error = result.unwrap_err();
    assert!(error.to_string().contains("scripted Conflict"), "{error}");
}

#[tokio::test]
async fn a_sensor_with_bad_triggers_says_which_condition_fails() {
    let mut value = sensor_json(true, false);
    value["spec"]["triggers"] = json!([]);
    let s = sensor(value.clone());
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_sensor(s, ctx)),
        vec![expect(
            Method::PATCH,
            format!("{SENSOR_PATH}/status"),
            Reply::Status(value),
        )],
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    let conditions = conditions_of(&recorded[0]);
    assert_eq!(conditions[0].1, "True");
    assert_eq!(
        conditions[1],
        ("TriggersProvided".into(), "False".into(), "InvalidTriggers".into())
    );
    assert_eq!(conditions[2].1, "False");
}

#[tokio::test]
async fn a_jetstream_eventbus_gets_its_statefulset_service_and_status() {
    let b = bus(jetstream_bus());
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventbus(b, ctx)),
        vec![
            expect(
                Method::PATCH,
                format!("{CORE}/configmaps/eventbus-default-js-config"),
                Reply::Echo,
            ),
            expect(
                Method::PATCH,
                format!("{APPS}/statefulsets/eventbus-default-js"),
                Reply::Echo,
            ),
            expect(
                Method::PATCH,
                format!("{CORE}/services/eventbus-default-js-svc"),
                Reply::Echo,
            ),
            expect(
                Method::PATCH,
                format!("{BUS_PATH}/status"),
                Reply::Status(jetstream_bus()),
            ),
        ],
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    for r in &recorded[..3] {
        applied(r);
    }
    assert_eq!(recorded[1].body["spec"]["replicas"], 3);
    assert_eq!(recorded[2].body["spec"]["clusterIP"], "None");
    let status = &recorded[3].body["status"];
    assert_eq!(
        status["config"]["jetstream"]["url"],
        "nats://eventbus-default-js-svc.default.svc:4222"
    );
    assert_eq!(
        conditions_of(&recorded[3]),
        [
            ("Configured".into(), "True".into(), "Configured".into()),
            ("Deployed".into(), "True".into(), "Deployed".into())
        ]
    );
}

#[tokio::test]
async fn an_exotic_eventbus_only_gets_a_status() {
    let value = bus_json(
        json!({"jetstreamExotic": {"url": "nats://nats.example:4222", "accessSecret": {"name": "nats", "key": "token"}}}),
        true,
        false,
    );
    let b = bus(value.clone());
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventbus(b, ctx)),
        vec![expect(
            Method::PATCH,
            format!("{BUS_PATH}/status"),
            Reply::Status(value),
        )],
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    assert_eq!(
        recorded[0].body["status"]["config"]["jetstream"]["url"],
        "nats://nats.example:4222"
    );
    assert_eq!(conditions_of(&recorded[0])[1].2, "Skipped");
    assert_eq!(
        recorded[0].body["status"]["config"]["jetstream"]["accessSecret"],
        json!({"name": "nats", "key": "token"})
    );
}

/// An EventSource and a Sensor on an exotic bus with an accessSecret and
/// TLS: their pods get the bus manifest, its Secrets mounted read-only
/// under the secrets dir, and the flags that point `argon` at both.
#[tokio::test]
async fn pods_of_an_exotic_bus_with_an_access_secret_mount_it_and_get_the_flags() {
    let exotic = bus_json(
        json!({"jetstreamExotic": {
            "url": "nats://nats.example:4222",
            "accessSecret": {"name": "nats-auth", "key": "auth.yaml"},
            "tls": {"caCertSecret": {"name": "nats-tls", "key": "ca.crt"}}
        }}),
        true,
        false,
    );
    let script = |name: &str, status_path: String, status: Value| {
        vec![
            expect(Method::GET, BUS_PATH, Reply::Json(200, exotic.clone())),
            expect(Method::PATCH, format!("{CORE}/configmaps/{name}-manifest"), Reply::Echo),
            expect(Method::PATCH, format!("{APPS}/deployments/{name}"), Reply::Echo),
            expect(Method::PATCH, status_path, Reply::Status(status)),
        ]
    };
    let s = sensor(sensor_json(true, false));
    let (result, sensor_recorded) = run(
        move |ctx| Box::pin(reconcile_sensor(s, ctx)),
        script(
            "webhook-sensor",
            format!("{SENSOR_PATH}/status"),
            sensor_json(true, false),
        ),
    )
    .await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));
    let es = eventsource(eventsource_json("12000", true, false));
    let mut es_script = script(
        "webhook-eventsource",
        format!("{ES_PATH}/status"),
        eventsource_json("12000", true, false),
    );
    es_script.insert(
        3,
        expect(
            Method::PATCH,
            format!("{CORE}/services/webhook-eventsource-svc"),
            Reply::Echo,
        ),
    );
    let (result, es_recorded) = run(move |ctx| Box::pin(reconcile_eventsource(es, ctx)), es_script).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC));

    for (recorded, own_secret) in [(&sensor_recorded, None), (&es_recorded, Some("webhook-token"))] {
        let config_map = &recorded[1].body;
        let bus_manifest = config_map["data"]["eventbus.yaml"].as_str().expect("the bus manifest");
        assert!(
            bus_manifest.contains("nats-auth") && bus_manifest.contains("nats.example"),
            "{bus_manifest}"
        );
        let pod = &recorded[2].body["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let flag = |name: &str| args.iter().position(|a| *a == name).map(|i| args[i + 1]);
        assert_eq!(flag("--bus"), Some("nats://nats.example:4222"), "{args:?}");
        assert_eq!(
            flag("--eventbus"),
            Some("/etc/argon/manifest/eventbus.yaml"),
            "{args:?}"
        );
        assert_eq!(flag("--secrets-dir"), Some("/etc/argon/secrets"), "{args:?}");
        let mut wanted = vec!["nats-auth", "nats-tls"];
        wanted.extend(own_secret);
        for secret in wanted {
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["secret"]["secretName"] == secret)
                .unwrap_or_else(|| panic!("no volume of Secret {secret}: {}", pod["volumes"]));
            let mount = container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == volume["name"])
                .unwrap_or_else(|| panic!("Secret {secret} not mounted"));
            assert_eq!(mount["mountPath"], format!("/etc/argon/secrets/{secret}"));
            assert_eq!(mount["readOnly"], true);
        }
    }
}

#[tokio::test]
async fn an_unsupported_eventbus_is_not_configured() {
    let value = bus_json(json!({"kafka": {"url": "kafka:9092"}}), true, false);
    let b = bus(value.clone());
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventbus(b, ctx)),
        vec![expect(
            Method::PATCH,
            format!("{BUS_PATH}/status"),
            Reply::Status(value),
        )],
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(
        conditions_of(&recorded[0])[0],
        ("Configured".into(), "False".into(), "NotSupported".into())
    );
    assert!(
        recorded[0]
            .body
            .to_string()
            .contains("Kafka (spec.kafka) is not supported")
    );
}

#[tokio::test]
async fn an_eventbus_in_use_is_kept_until_its_users_go() {
    let b = bus(bus_json(json!({"jetstream": {}}), true, true));
    let (result, _) = run(
        move |ctx| Box::pin(reconcile_eventbus(b, ctx)),
        vec![
            expect(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/eventsources",
                Reply::Json(
                    200,
                    list("EventSourceList", vec![eventsource_json("12000", true, false)]),
                ),
            ),
            expect(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/sensors",
                Reply::Json(200, list("SensorList", vec![sensor_json(true, true)])),
            ),
        ],
    )
    .await;
    let error = result.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("EventBus 'default' is still used by EventSource webhook;"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unused_eventbus_is_removed_with_its_objects() {
    let b = bus(bus_json(json!({"jetstream": {}}), true, true));
    let (result, recorded) = run(
        move |ctx| Box::pin(reconcile_eventbus(b, ctx)),
        vec![
            expect(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/eventsources",
                Reply::Json(200, list("EventSourceList", vec![])),
            ),
            expect(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/namespaces/default/sensors",
                Reply::Json(200, list("SensorList", vec![])),
            ),
            expect(
                Method::DELETE,
                format!("{APPS}/statefulsets/eventbus-default-js"),
                Reply::Json(200, deleted()),
            ),
            expect(
                Method::DELETE,
                format!("{CORE}/services/eventbus-default-js-svc"),
                Reply::Json(200, deleted()),
            ),
            expect(
                Method::DELETE,
                format!("{CORE}/configmaps/eventbus-default-js-config"),
                Reply::Json(200, deleted()),
            ),
            expect(
                Method::PATCH,
                BUS_PATH,
                Reply::Json(200, bus_json(json!({"jetstream": {}}), false, true)),
            ),
        ],
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    assert_eq!(recorded.len(), 6);
}
