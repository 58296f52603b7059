//! `argon sensor run` and `argon sensor test` as processes: a real NATS
//! server, a real HTTP sink, SIGKILL while triggers are in flight, an AND
//! condition across a restart, and NATS restarted mid-stream.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use argon_eventbus::testing::NatsServer;
use argon_eventbus::{Event, EventBus};
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

/// What the sink received: (Idempotency-Key, body), in arrival order.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// An HTTP server on a free port that records every POST and answers 200
/// after `delay`. It de-duplicates nothing.
async fn sink(delay: Duration) -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State((rx, delay)): State<(Received, Duration)>, headers: HeaderMap, body: String| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    rx.lock()
                        .unwrap()
                        .push((key, serde_json::from_str(&body).unwrap_or(Value::Null)));
                    tokio::time::sleep(delay).await;
                    "ok"
                },
            ),
        )
        .with_state((received.clone(), delay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

fn write_sensor(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A sensor process; killed (SIGKILL) on drop.
struct SensorProcess {
    child: Child,
    metrics: String,
}

impl SensorProcess {
    fn start(file: &Path, bus: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_argon"))
            .args(["sensor", "run"])
            .arg(file)
            .args(["--bus", bus, "--metrics-addr", "127.0.0.1:0", "--ack-wait", "2s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut metrics = String::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the sensor starts within 30s");
            if let Some(url) = line.strip_prefix("metrics ") {
                metrics = url.to_owned();
            }
            if line == "sensor running" {
                break;
            }
        }
        SensorProcess { child, metrics }
    }

    /// SIGKILL, as a crash.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for SensorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes, retrying while the bus is unreachable (NATS restarting).
async fn publish(bus: &Arc<dyn EventBus>, event: &Event) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = bus.publish(event).await {
        assert!(Instant::now() < deadline, "cannot publish: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP/1.0 GET (the body as text).
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(out)
}

fn event(source: &str, name: &str, id: &str, data: Value) -> Event {
    Event::new(source, name, "webhook", &data).with_id(id)
}

fn http_sensor(name: &str, url: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: {name}
spec:
  dependencies:
    - name: dep
      eventSourceName: webhook
      eventName: example
  triggers:
    - template:
        name: notify
        http:
          url: {url}
          method: POST
          payload:
            - src:
                dependencyName: dep
                dataKey: body.n
                useRawData: true
              dest: n
      retryStrategy:
        steps: 3
        duration: 100ms
"#
    )
}

/// Distinct keys and, for each, the body it carried (checked identical on repeats).
fn by_key(received: &Received) -> (BTreeMap<String, Value>, usize) {
    let all = received.lock().unwrap().clone();
    let mut map = BTreeMap::new();
    for (key, body) in &all {
        let first = map.entry(key.clone()).or_insert_with(|| body.clone());
        assert_eq!(first, body, "a repeated idempotency key must carry the same request");
    }
    (map, all.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_firing_then_restart_fires_every_event_exactly_once_per_key() {
    const N: usize = 60;
    let nats = NatsServer::start();
    let bus = argon_eventbus::open(&nats.url()).await.unwrap();
    let (url, received) = sink(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_sensor(dir.path(), "kill", &http_sensor("kill-test", &url));

    let sensor = SensorProcess::start(&file, &nats.url());
    for i in 0..N {
        publish(
            &bus,
            &event("webhook", "example", &format!("ev-{i}"), json!({"body": {"n": i}})),
        )
        .await;
    }
    // Requests are on the wire (the sink holds each for 300 ms): crash now.
    wait_until("10 requests at the sink", Duration::from_secs(30), || {
        received.lock().unwrap().len() >= 10
    })
    .await;
    sensor.kill();
    let at_kill = received.lock().unwrap().len();

    let sensor = SensorProcess::start(&file, &nats.url());
    wait_until("every event at the sink", Duration::from_secs(60), || {
        by_key(&received).0.len() >= N
    })
    .await;

    // Exactly once per firing, at least once per request. The sink saw every
    // event under exactly one idempotency key, with the same body each time.
    // Requests that were in flight at the SIGKILL (sent, answer not yet
    // acknowledged on the bus) are delivered again after the ack wait and sent
    // again with the same key: a crash between the HTTP call and the ack can
    // only repeat a request, never lose one or mint a second key for it.
    let (keys, total) = by_key(&received);
    assert_eq!(keys.len(), N, "one key per event");
    let ns: BTreeSet<u64> = keys.values().map(|b| b["n"].as_u64().expect("n in body")).collect();
    assert_eq!(ns, (0..N as u64).collect(), "every event fired");
    assert!(total >= N, "{total} requests");
    assert!(
        total - N <= N.saturating_sub(at_kill.min(N)) + at_kill,
        "repeats only for requests in flight at the kill: {total} requests, {at_kill} before it"
    );
    eprintln!(
        "{N} events, {total} requests ({} repeated after the SIGKILL, same keys)",
        total - N
    );

    // The answers come 300 ms after the requests: wait for the counters.
    let line = "argo_events_action_triggered_total{sensor_name=\"kill-test\",trigger_name=\"notify\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = http_get(&sensor.metrics).await;
        if metrics.contains(line) || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics.contains("argo_events_action_triggered_total{sensor_name=\"kill-test\",trigger_name=\"notify\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("argo_events_action_duration_milliseconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn and_condition_half_met_before_a_restart_completes_after_it() {
    let nats = NatsServer::start();
    let bus = argon_eventbus::open(&nats.url()).await.unwrap();
    let (url, received) = sink(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_sensor(
        dir.path(),
        "and",
        &format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: and-test
spec:
  dependencies:
    - name: a
      eventSourceName: webhook
      eventName: first
    - name: b
      eventSourceName: webhook
      eventName: second
  triggers:
    - template:
        name: both
        conditions: "a && b"
        http:
          url: {url}
          payload:
            - src:
                dependencyName: a
                dataKey: body.v
              dest: a
            - src:
                dependencyName: b
                dataKey: body.v
              dest: b
"#
        ),
    );
    let sensor = SensorProcess::start(&file, &nats.url());
    publish(
        &bus,
        &event("webhook", "first", "a-1", json!({"body": {"v": "from-a"}})),
    )
    .await;
    // The half-met state reaches the bus KV before the event is acknowledged.
    let kv = bus.kv(&argon_eventbus::kv_bucket_name("and-test")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = kv.get("trigger.both").await.unwrap();
        if state.is_some_and(|e| String::from_utf8_lossy(&e.value).contains("a-1")) {
            break;
        }
        assert!(Instant::now() < deadline, "the half-met condition was not stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sensor.kill();
    assert!(received.lock().unwrap().is_empty(), "half a condition fires nothing");

    let _sensor = SensorProcess::start(&file, &nats.url());
    publish(
        &bus,
        &event("webhook", "second", "b-1", json!({"body": {"v": "from-b"}})),
    )
    .await;
    wait_until("the trigger", Duration::from_secs(30), || {
        !received.lock().unwrap().is_empty()
    })
    .await;
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, json!({"a": "from-a", "b": "from-b"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_mid_stream_loses_nothing() {
    const N: usize = 40;
    let mut nats = NatsServer::start();
    let bus = argon_eventbus::open(&nats.url()).await.unwrap();
    let (url, received) = sink(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_sensor(dir.path(), "restart", &http_sensor("nats-restart", &url));
    let _sensor = SensorProcess::start(&file, &nats.url());
    for i in 0..N / 2 {
        publish(
            &bus,
            &event("webhook", "example", &format!("r-{i}"), json!({"body": {"n": i}})),
        )
        .await;
    }
    nats.restart();
    for i in N / 2..N {
        publish(
            &bus,
            &event("webhook", "example", &format!("r-{i}"), json!({"body": {"n": i}})),
        )
        .await;
    }
    wait_until("every event after the NATS restart", Duration::from_secs(90), || {
        by_key(&received).0.len() >= N
    })
    .await;
    let (keys, _) = by_key(&received);
    let ns: BTreeSet<u64> = keys.values().map(|b| b["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, (0..N as u64).collect());
}

#[test]
fn dry_run_prints_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_sensor(dir.path(), "dry", &http_sensor("dry", "http://127.0.0.1:9/hook"));
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"body": {"n": 7}}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argon"))
        .args(["sensor", "test"])
        .arg(&file)
        .arg("--event")
        .arg(&event)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trigger = &report["triggers"][0];
    assert_eq!(trigger["fires"], true);
    assert_eq!(trigger["request"]["body"], json!({"n": 7}));
    assert_eq!(trigger["request"]["url"], "http://127.0.0.1:9/hook");

    let bad = write_sensor(
        dir.path(),
        "bad",
        &http_sensor("bad", "x").replace("dataKey: body.n", "dataTemplate: \"{{ .Input.body.n \""),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_argon"))
        .args(["sensor", "test"])
        .arg(&bad)
        .arg("--event")
        .arg(&event)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never closed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_k8s_trigger_for_a_pod_without_a_cluster_is_a_clear_error_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let sensor = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/argo-events/examples/sensors/trigger-standard-k8s-resource.yaml"
    ))
    .unwrap();
    let file = write_sensor(dir.path(), "pod", &sensor);
    let out = Command::new(env!("CARGO_BIN_EXE_argon"))
        .args(["sensor", "run"])
        .arg(&file)
        .arg("--bus")
        .arg(format!("embedded:{}", dir.path().join("bus").display()))
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("webhook-pod-trigger") && stderr.contains("needs a cluster"),
        "{stderr}"
    );
}
