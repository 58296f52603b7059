//! The runner in process, on the embedded bus: workflow submissions through
//! the real engine (a redelivery after a failure between submit and ack is a
//! no-op), retries of transient HTTP failures with the same idempotency key,
//! the DLQ trigger for a failure that retrying cannot fix, and a firing slower
//! than the ack wait fired once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon_client::{SubmitOptions, Submitted, WorkflowAction, WorkflowClient};
use argon_crds::manifest::{Decoded, Manifest, decode};
use argon_crds::secret::Secrets;
use argon_crds::sensor::Sensor;
use argon_crds::workflow::Workflow;
use argon_engine::{Engine, EngineConfig};
use argon_eventbus::{BusConfig, EmbeddedConfig, Event, EventBus};
use argon_sensor::metrics::Metrics;
use argon_sensor::{RunnerOptions, SensorRunner, Services};
use axum::http::{HeaderMap, StatusCode};
use tokio_util::sync::CancellationToken;

fn sensor(yaml: &str) -> Sensor {
    let docs = argon_crds::source::parse("test.yaml", yaml).expect("yaml");
    match decode(&docs[0].value) {
        Ok(Decoded::Manifest(Manifest::Sensor(s))) => *s,
        other => panic!("not a sensor: {other:?}"),
    }
}

async fn embedded_bus(dir: &std::path::Path) -> Arc<dyn EventBus> {
    argon_eventbus::open_config(BusConfig::Embedded(EmbeddedConfig::new(dir.join("bus"))))
        .await
        .unwrap()
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The engine, except that the first submission fails after the engine
/// stored the workflow: a crash between the submit and the ack.
struct FailsOnceAfterSubmit {
    engine: Arc<Engine>,
    calls: Mutex<Vec<(Option<String>, Submitted)>>,
}

#[async_trait::async_trait]
impl WorkflowClient for FailsOnceAfterSubmit {
    async fn submit(&self, namespace: &str, wf: Workflow, options: SubmitOptions) -> argon_client::Result<Submitted> {
        let key = options.idempotency_key.clone();
        let submitted = self.engine.submit(namespace, wf, options).await?;
        let first = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((key, submitted.clone()));
            calls.len() == 1
        };
        if first {
            return Err(argon_client::Error::Unavailable("connection lost after submit".into()));
        }
        Ok(submitted)
    }

    async fn act(&self, namespace: &str, name: &str, action: WorkflowAction) -> argon_client::Result<Workflow> {
        self.engine.act(namespace, name, action).await
    }

    async fn get(&self, namespace: &str, name: &str) -> argon_client::Result<Workflow> {
        self.engine.get(namespace, name).await
    }
}

const WORKFLOW_SENSOR: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: wf
spec:
  dependencies:
    - name: dep
      eventSourceName: webhook
      eventName: example
  triggers:
    - template:
        name: submit
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata:
                generateName: hello-
              spec:
                entrypoint: main
                arguments:
                  parameters:
                    - name: message
                templates:
                  - name: main
                    container:
                      image: busybox
                      command: [echo, "{{workflow.parameters.message}}"]
          parameters:
            - src:
                dependencyName: dep
                dataKey: body.message
              dest: spec.arguments.parameters.0.value
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_does_not_create_a_second_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path()).await;
    let engine = Engine::open(EngineConfig::new(dir.path().join("engine"))).unwrap();
    let client = Arc::new(FailsOnceAfterSubmit {
        engine: engine.clone(),
        calls: Mutex::default(),
    });
    let services = Services {
        bus: bus.clone(),
        client: Some(client.clone()),
        secrets: Secrets::default(),
        metrics: Metrics::new(),
    };
    let shutdown = CancellationToken::new();
    let runner = SensorRunner::start(&sensor(WORKFLOW_SENSOR), services, shutdown.clone())
        .await
        .unwrap();
    let event = Event::new(
        "webhook",
        "example",
        "webhook",
        &serde_json::json!({"body": {"message": "hi"}}),
    );
    bus.publish(&event).await.unwrap();

    // The first submission "fails", the event is delivered again, the second
    // submission carries the same key and finds the workflow of the first.
    wait_until("the second submission", || client.calls.lock().unwrap().len() >= 2).await;
    let calls = client.calls.lock().unwrap().clone();
    assert_eq!(calls[0].0, calls[1].0, "same idempotency key");
    assert_eq!(calls[0].1.name, calls[1].1.name, "same workflow");
    assert!(calls[0].1.created);
    assert!(!calls[1].1.created, "the second submission created nothing");
    let wf = engine.get("default", &calls[0].1.name).await.unwrap();
    assert_eq!(wf.metadata.labels.as_ref().unwrap()["events.argoproj.io/sensor"], "wf");
    assert_eq!(
        wf.metadata.labels.as_ref().unwrap()["events.argoproj.io/trigger"],
        "submit"
    );
    let message = serde_json::to_value(&wf.spec.arguments.parameters[0]).unwrap();
    assert_eq!(message["value"], "hi");
    shutdown.cancel();
    runner.wait().await;
}

/// A sink whose answers follow `script` (then 200), recording (path, key).
async fn scripted_sink(script: Vec<u16>) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let answers = Arc::new(Mutex::new(script.into_iter()));
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback({
        let seen = seen.clone();
        move |uri: axum::http::Uri, headers: HeaderMap| {
            let (seen, answers, calls) = (seen.clone(), answers.clone(), calls.clone());
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                seen.lock().unwrap().push((uri.path().to_owned(), key.to_owned()));
                let status = if uri.path() == "/main" {
                    answers.lock().unwrap().next().unwrap_or(200)
                } else {
                    200
                };
                StatusCode::from_u16(status).unwrap()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn http_sensor(base: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: http
spec:
  dependencies:
    - name: dep
      eventSourceName: webhook
      eventName: example
  triggers:
    - template:
        name: main
        http:
          url: {base}/main
      retryStrategy:
        steps: 3
        duration: 10ms
        factor: 2
      policy:
        status:
          allow: [200]
      dlqTrigger:
        template:
          name: to-dlq
          http:
            url: {base}/dlq
"#
    )
}

/// The HTTP sensor against the sink at `base`, with a 1 s ack wait, and one
/// event published to it.
struct HttpRun {
    metrics: Metrics,
    runner: SensorRunner,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start_http(base: &str) -> HttpRun {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path()).await;
    let metrics = Metrics::new();
    let services = Services {
        bus: bus.clone(),
        client: None,
        secrets: Secrets::default(),
        metrics: metrics.clone(),
    };
    let shutdown = CancellationToken::new();
    let options = RunnerOptions {
        ack_wait: Duration::from_secs(1),
        ..RunnerOptions::default()
    };
    let runner = SensorRunner::start_with(&sensor(&http_sensor(base)), services, options, shutdown.clone())
        .await
        .unwrap();
    bus.publish(&Event::new(
        "webhook",
        "example",
        "webhook",
        &serde_json::json!({"n": 1}),
    ))
    .await
    .unwrap();
    HttpRun {
        metrics,
        runner,
        shutdown,
        _dir: dir,
    }
}

async fn run_http(script: Vec<u16>) -> (Vec<(String, String)>, Metrics) {
    let (base, seen) = scripted_sink(script).await;
    let run = start_http(&base).await;
    let metrics = run.metrics.clone();
    wait_until("a successful firing", || {
        metrics.triggered.with_label_values(&["http", "main"]).get()
            + metrics.triggered.with_label_values(&["http", "to-dlq"]).get()
            > 0
    })
    .await;
    run.shutdown.cancel();
    run.runner.wait().await;
    let seen = seen.lock().unwrap().clone();
    (seen, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_the_same_key() {
    let (seen, metrics) = run_http(vec![503, 502]).await;
    let main: Vec<_> = seen.iter().filter(|(p, _)| p == "/main").collect();
    assert_eq!(main.len(), 3, "{seen:?}");
    assert!(main.iter().all(|(_, k)| k == &main[0].1 && k.len() == 32), "{seen:?}");
    assert!(seen.iter().all(|(p, _)| p != "/dlq"), "{seen:?}");
    assert_eq!(metrics.triggered.with_label_values(&["http", "main"]).get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_retrying_cannot_fix_goes_to_the_dlq_trigger() {
    let (seen, metrics) = run_http(vec![400]).await;
    assert_eq!(
        seen.iter().filter(|(p, _)| p == "/main").count(),
        1,
        "4xx is not retried: {seen:?}"
    );
    assert_eq!(seen.iter().filter(|(p, _)| p == "/dlq").count(), 1, "{seen:?}");
    assert_eq!(metrics.failed.with_label_values(&["http", "main"]).get(), 1);
    assert_eq!(metrics.triggered.with_label_values(&["http", "to-dlq"]).get(), 1);
}

/// A firing that takes longer than the ack wait (a sink that answers after
/// 2.5 s, the ack wait is 1 s) is not delivered again while it runs, to be
/// fired a second time at once: the sink sees one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_slower_than_the_ack_wait_is_not_fired_twice() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback({
        let calls = calls.clone();
        move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                // The sink's own slowness; not a synchronisation.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                StatusCode::OK
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let run = start_http(&base).await;
    wait_until("the slow firing", || {
        run.metrics.triggered.with_label_values(&["http", "main"]).get() > 0
    })
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the event was fired again while its firing ran"
    );
    run.shutdown.cancel();
    run.runner.wait().await;
}

/// A replay fires again (new id, so a new idempotency key) with the lineage
/// of the original, and only in the sensor it is aimed at; the other sensor
/// acknowledges it without acting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_fires_only_the_sensor_it_names_and_records_its_original() {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path()).await;
    let engine = Engine::open(EngineConfig::new(dir.path().join("engine"))).unwrap();
    let client: Arc<dyn WorkflowClient> = engine.clone();
    let services = Services {
        bus: bus.clone(),
        client: Some(client),
        secrets: Secrets::default(),
        metrics: Metrics::new(),
    };
    let shutdown = CancellationToken::new();
    // One delivery at a time: "other" handles its events in bus order.
    let sequential = RunnerOptions {
        in_flight: 1,
        ..RunnerOptions::default()
    };
    let mut runners = Vec::new();
    for name in ["wf", "other"] {
        let yaml = WORKFLOW_SENSOR.replace("name: wf", &format!("name: {name}"));
        let runner = SensorRunner::start_with(&sensor(&yaml), services.clone(), sequential.clone(), shutdown.clone())
            .await
            .unwrap();
        runners.push(runner);
    }
    let of = |sensor: &str| {
        engine
            .list_workflows("default", Some(("events.argoproj.io/sensor", sensor)))
            .unwrap()
    };
    let label = |wf: &Workflow, key: &str| wf.metadata.labels.as_ref().and_then(|l| l.get(key).cloned());

    let original = Event::new(
        "webhook",
        "example",
        "webhook",
        &serde_json::json!({"body": {"message": "hi"}}),
    );
    bus.publish(&original).await.unwrap();
    wait_until("a workflow from each sensor", || {
        of("wf").len() == 1 && of("other").len() == 1
    })
    .await;
    let first = &of("wf")[0];
    assert_eq!(
        label(first, "events.argon.dev/event").as_deref(),
        Some(original.context.id.as_str())
    );
    assert_eq!(label(first, "events.argon.dev/replay-of"), None);
    let ids: serde_json::Value =
        serde_json::from_str(&first.metadata.annotations.as_ref().unwrap()["events.argon.dev/events"]).unwrap();
    assert_eq!(ids, serde_json::json!({"dep": original.context.id}));

    let replay = original.replay(Some("wf"));
    bus.publish(&replay).await.unwrap();
    wait_until("the replay's workflow", || of("wf").len() == 2).await;
    let replayed = of("wf")
        .into_iter()
        .find(|w| label(w, "events.argon.dev/event").as_deref() == Some(replay.context.id.as_str()))
        .expect("a workflow labelled with the replay's id");
    assert_eq!(
        label(&replayed, "events.argon.dev/replay-of").as_deref(),
        Some(original.context.id.as_str())
    );

    // "other" has handled the replay once it has handled a later event.
    let later = Event::new(
        "webhook",
        "example",
        "webhook",
        &serde_json::json!({"body": {"message": "later"}}),
    );
    bus.publish(&later).await.unwrap();
    wait_until("other's workflow of the later event", || {
        of("other")
            .iter()
            .any(|w| label(w, "events.argon.dev/event").as_deref() == Some(later.context.id.as_str()))
    })
    .await;
    assert_eq!(of("other").len(), 2, "the replay for wf made nothing in other");
    shutdown.cancel();
    for runner in runners {
        runner.wait().await;
    }
}
