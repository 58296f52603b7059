//! Every row of the answer table, for every webhook-family source, over real
//! HTTP against both buses (embedded in a temp dir, JetStream on a real
//! `nats-server`). Signatures are computed here with the real algorithms.

mod common;

use std::time::{Duration, Instant};

use argon_eventbus::testing::NatsServer;
use axum::http::StatusCode;
use serde_json::{Value, json};

use common::{BusKind, Harness, hmac_hex};

/// One EventSource with every webhook-family kind on one port.
fn manifest(port: u16) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: hooks
spec:
  webhook:
    example:
      endpoint: /example
      method: POST
      port: "{port}"
      authSecret: {{name: hook, key: token}}
      maxPayloadSize: 4096
      metadata: {{team: blue}}
      filter:
        expression: 'body.drop != true'
    query:
      endpoint: /query
      method: GET
      port: "{port}"
  github:
    gh:
      webhook: {{endpoint: /github, method: POST, port: "{port}", maxPayloadSize: 4096}}
      events: [push]
      webhookSecret: {{name: github, key: secret}}
      apiToken: {{name: github, key: api-token-not-read}}
      filter:
        expression: 'body.drop != true'
  gitlab:
    gl:
      webhook: {{endpoint: /gitlab, method: POST, port: "{port}", maxPayloadSize: 4096}}
      events: [PushEvents, MergeRequestsEvents]
      secretToken: {{name: gitlab, key: token}}
      filter:
        expression: 'body.drop != true'
  bitbucket:
    bb:
      webhook:
        endpoint: /bitbucket
        method: POST
        port: "{port}"
        maxPayloadSize: 4096
        authSecret: {{name: hook, key: token}}
      auth:
        oauthToken: {{name: bitbucket, key: not-read}}
      events: ["repo:push"]
      filter:
        expression: 'body.drop != true'
  bitbucketserver:
    bbs:
      webhook: {{endpoint: /bitbucketserver, method: POST, port: "{port}", maxPayloadSize: 4096}}
      events: ["repo:refs_changed"]
      webhookSecret: {{name: bbs, key: secret}}
      oneEventPerChange: true
      filter:
        expression: 'body.drop != true'
"#
    )
}

const SECRETS: [(&str, &str, &str); 4] = [
    ("hook", "token", "s3cret-token\n"),
    ("github", "secret", "gh-hmac-key"),
    ("gitlab", "token", "gl-token"),
    ("bbs", "secret", "bbs-hmac-key"),
];

async fn answer_table(kind: BusKind) {
    let mut h = Harness::start(kind, manifest, &SECRETS, Duration::from_secs(5)).await;
    let endpoints: Vec<String> = h.running().endpoints().iter().map(ToString::to_string).collect();
    assert!(
        endpoints.contains(&format!("webhook example POST {}/example", h.base)),
        "{endpoints:?}"
    );
    assert_eq!(endpoints.len(), 6, "{endpoints:?}");

    // Health shares the port.
    assert_eq!(h.get("/health").await.status(), StatusCode::OK);
    // Unknown path: 404.
    assert_eq!(h.post("/nowhere", &[], "{}").await.status(), StatusCode::NOT_FOUND);

    webhook_rows(&mut h).await;
    github_rows(&mut h).await;
    gitlab_rows(&mut h).await;
    bitbucket_rows(&mut h).await;
    bitbucketserver_rows(&mut h).await;

    // Metrics are never served on a webhook port.
    assert_eq!(h.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    let metrics = h.running().metrics().render();
    assert!(
        metrics.contains(r#"argo_events_events_sent_total{event_name="example",event_source_name="hooks"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("argo_events_event_processing_duration_milliseconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("argo_events_events_processing_failed_total"),
        "{metrics}"
    );
    h.stop().await;
}

/// The common rows: wrong method, too large, bad JSON, and the filter (200 and
/// nothing published, checked by the next event being the sentinel).
async fn common_rows(h: &mut Harness, path: &str, headers: &dyn Fn(&str) -> Vec<(String, String)>, subject: &str) {
    let r = h.client.get(h.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
    assert_eq!(r.headers()["allow"], "POST", "{path}");

    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(5000));
    let r = h.post(path, &headers(&big), &big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");

    let broken = r#"{"a": "#;
    let r = h.post(path, &headers(broken), broken).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
    let text = r.text().await.unwrap();
    assert!(text.contains("not valid JSON"), "{path}: {text}");

    let dropped = r#"{"drop": true}"#;
    assert_eq!(
        h.post(path, &headers(dropped), dropped).await.status(),
        StatusCode::OK,
        "{path}"
    );
    let sentinel = r#"{"sentinel": 1}"#;
    assert_eq!(
        h.post(path, &headers(sentinel), sentinel).await.status(),
        StatusCode::OK,
        "{path}"
    );
    let event = h.next_event().await;
    assert_eq!(event.context.subject, subject);
    assert_eq!(
        data(&event)["body"],
        json!({"sentinel": 1}),
        "{path}: the filtered event was published"
    );
}

fn data(event: &argon_eventbus::Event) -> Value {
    event.data.to_value().expect("JSON data")
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn webhook_rows(h: &mut Harness) {
    let auth = |_: &str| {
        owned(&[
            ("authorization", "Bearer s3cret-token"),
            ("content-type", "application/json"),
        ])
    };
    // Stored: 200, data {header, body, metadata}, Authorization masked.
    let r = h.post("/example", &auth(""), r#"{"a": "x", "n": 1}"#).await;
    assert_eq!(r.status(), StatusCode::OK);
    let event = h.next_event().await;
    assert_eq!(event.context.source, "hooks");
    assert_eq!(event.context.subject, "example");
    assert_eq!(event.context.r#type, "webhook");
    let d = data(&event);
    assert_eq!(d["body"], json!({"a": "x", "n": 1}));
    assert_eq!(d["metadata"], json!({"team": "blue"}));
    assert_eq!(d["header"]["Authorization"], json!(["*****"]));
    assert_eq!(d["header"]["Content-Type"], json!(["application/json"]));

    // A form becomes a map.
    let form = owned(&[
        ("authorization", "Bearer s3cret-token"),
        ("content-type", "application/x-www-form-urlencoded"),
    ]);
    assert_eq!(
        h.post("/example", &form, "a=1&b=two+words").await.status(),
        StatusCode::OK
    );
    assert_eq!(data(&h.next_event().await)["body"], json!({"a": "1", "b": "two words"}));

    // A GET query string becomes a map.
    let r = h.client.get(h.url("/query?x=1&y=z")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let event = h.next_event().await;
    assert_eq!(event.context.subject, "query");
    assert_eq!(data(&event)["body"], json!({"x": "1", "y": "z"}));
    // Default maxPayloadSize: 1 MiB.
    let r = h
        .client
        .get(h.url("/query"))
        .body(vec![b' '; (1 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = h.post("/query", &[], "{}").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET");

    // Missing or wrong bearer token: 401, nothing published.
    let json_only = owned(&[("content-type", "application/json")]);
    assert_eq!(
        h.post("/example", &json_only, "{}").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong = owned(&[
        ("authorization", "Bearer s3cret-tokem"),
        ("content-type", "application/json"),
    ]);
    assert_eq!(
        h.post("/example", &wrong, "{}").await.status(),
        StatusCode::UNAUTHORIZED
    );

    common_rows(h, "/example", &auth, "example").await;
}

async fn github_rows(h: &mut Harness) {
    let signed = |event: &'static str, delivery: &'static str| {
        move |body: &str| {
            owned(&[
                ("content-type", "application/json"),
                ("x-github-event", event),
                ("x-github-delivery", delivery),
                (
                    "x-hub-signature-256",
                    &format!("sha256={}", hmac_hex(b"gh-hmac-key", body.as_bytes())),
                ),
            ])
        }
    };
    let body = r#"{"ref": "refs/heads/main"}"#;
    // Stored, with the delivery id as event id.
    let push = signed("push", "d-1");
    assert_eq!(h.post("/github", &push(body), body).await.status(), StatusCode::OK);
    let event = h.next_event().await;
    assert_eq!(event.context.id, "d-1");
    assert_eq!(event.context.r#type, "github");
    let d = data(&event);
    assert_eq!(d["body"]["ref"], "refs/heads/main");
    assert_eq!(d["headers"]["X-Github-Event"], json!(["push"]));

    // A redelivery (same X-GitHub-Delivery) is answered 200 and dropped by the bus.
    assert_eq!(h.post("/github", &push(body), body).await.status(), StatusCode::OK);
    // ping: 200, no event; an event type not in `events`: 200, no event.
    let ping = signed("ping", "d-ping");
    assert_eq!(h.post("/github", &ping("{}"), "{}").await.status(), StatusCode::OK);
    let issues = signed("issues", "d-issues");
    assert_eq!(h.post("/github", &issues("{}"), "{}").await.status(), StatusCode::OK);
    // The form content type carries the JSON in `payload=`.
    let form_body = "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fform%22%7D";
    let mut form = signed("push", "d-form")(form_body);
    form[0].1 = "application/x-www-form-urlencoded".into();
    assert_eq!(h.post("/github", &form, form_body).await.status(), StatusCode::OK);
    let event = h.next_event().await;
    assert_eq!(
        event.context.id, "d-form",
        "redelivery, ping or unwanted event published"
    );
    assert_eq!(data(&event)["body"]["ref"], "refs/heads/form");

    // Bad or missing signature: 401 (checked before the body is parsed).
    let mut bad = push(body);
    bad[3].1 = format!("sha256={}", hmac_hex(b"wrong-key", body.as_bytes()));
    assert_eq!(h.post("/github", &bad, body).await.status(), StatusCode::UNAUTHORIZED);
    bad.remove(3);
    assert_eq!(h.post("/github", &bad, body).await.status(), StatusCode::UNAUTHORIZED);
    let r = h.post("/github", &push("not json"), "not json").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let deliveries = std::sync::atomic::AtomicU32::new(0);
    let fresh = move |body: &str| {
        let n = deliveries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut headers = signed("push", "unused")(body);
        headers[2].1 = format!("d-common-{n}");
        headers
    };
    common_rows(h, "/github", &fresh, "gh").await;
}

async fn gitlab_rows(h: &mut Harness) {
    let with = |event: &'static str, token: &'static str| {
        move |_: &str| {
            owned(&[
                ("content-type", "application/json"),
                ("x-gitlab-event", event),
                ("x-gitlab-token", token),
            ])
        }
    };
    let push = with("Push Hook", "gl-token");
    assert_eq!(
        h.post("/gitlab", &push(""), r#"{"object_kind": "push"}"#)
            .await
            .status(),
        StatusCode::OK
    );
    let event = h.next_event().await;
    assert_eq!(event.context.r#type, "gitlab");
    let d = data(&event);
    assert_eq!(d["body"]["object_kind"], "push");
    assert_eq!(d["headers"]["X-Gitlab-Token"], json!(["*****"]));
    // An event not asked for: 200, nothing published.
    let note = with("Note Hook", "gl-token");
    assert_eq!(
        h.post("/gitlab", &note(""), r#"{"object_kind": "note"}"#)
            .await
            .status(),
        StatusCode::OK
    );
    let mr = with("Merge Request Hook", "gl-token");
    assert_eq!(
        h.post("/gitlab", &mr(""), r#"{"object_kind": "merge_request"}"#)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(data(&h.next_event().await)["body"]["object_kind"], "merge_request");
    // Wrong or missing token: 401.
    let wrong = with("Push Hook", "gl-tokem");
    assert_eq!(
        h.post("/gitlab", &wrong(""), "{}").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let none = owned(&[("content-type", "application/json"), ("x-gitlab-event", "Push Hook")]);
    assert_eq!(h.post("/gitlab", &none, "{}").await.status(), StatusCode::UNAUTHORIZED);
    common_rows(h, "/gitlab", &push, "gl").await;
}

async fn bitbucket_rows(h: &mut Harness) {
    let with = |event: &'static str| {
        move |_: &str| {
            owned(&[
                ("content-type", "application/json"),
                ("x-event-key", event),
                ("authorization", "Bearer s3cret-token"),
            ])
        }
    };
    let push = with("repo:push");
    assert_eq!(
        h.post("/bitbucket", &push(""), r#"{"push": {}}"#).await.status(),
        StatusCode::OK
    );
    let event = h.next_event().await;
    assert_eq!(event.context.r#type, "bitbucket");
    assert_eq!(data(&event)["body"], json!({"push": {}}));
    let fork = with("repo:fork");
    assert_eq!(h.post("/bitbucket", &fork(""), "{}").await.status(), StatusCode::OK);
    let no_auth = owned(&[("content-type", "application/json"), ("x-event-key", "repo:push")]);
    assert_eq!(
        h.post("/bitbucket", &no_auth, "{}").await.status(),
        StatusCode::UNAUTHORIZED
    );
    common_rows(h, "/bitbucket", &push, "bb").await;
}

async fn bitbucketserver_rows(h: &mut Harness) {
    let signed = |event: &'static str| {
        move |body: &str| {
            owned(&[
                ("content-type", "application/json"),
                ("x-event-key", event),
                ("x-request-id", "r-1"),
                (
                    "x-hub-signature",
                    &format!("sha256={}", hmac_hex(b"bbs-hmac-key", body.as_bytes())),
                ),
            ])
        }
    };
    let refs = signed("repo:refs_changed");
    // oneEventPerChange: two changes, two events.
    let body = r#"{"changes": [{"ref": {"id": "refs/heads/a"}}, {"ref": {"id": "refs/heads/b"}}]}"#;
    assert_eq!(
        h.post("/bitbucketserver", &refs(body), body).await.status(),
        StatusCode::OK
    );
    let first = h.next_event().await;
    let second = h.next_event().await;
    assert_eq!(first.context.r#type, "bitbucketserver");
    assert_eq!(data(&first)["body"]["changes"][0]["ref"]["id"], "refs/heads/a");
    assert_eq!(data(&second)["body"]["changes"][0]["ref"]["id"], "refs/heads/b");
    assert_ne!(first.context.id, second.context.id);
    // diagnostics:ping: 200, nothing published.
    let ping = signed("diagnostics:ping");
    assert_eq!(
        h.post("/bitbucketserver", &ping("{}"), "{}").await.status(),
        StatusCode::OK
    );
    // Bad signature: 401.
    let mut bad = refs(body);
    bad[3].1 = format!("sha256={}", hmac_hex(b"other", body.as_bytes()));
    assert_eq!(
        h.post("/bitbucketserver", &bad, body).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let ids = std::sync::atomic::AtomicU32::new(0);
    let fresh = move |body: &str| {
        let mut headers = refs(body);
        headers[2].1 = format!("r-common-{}", ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        headers
    };
    common_rows(h, "/bitbucketserver", &fresh, "bbs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_table_embedded() {
    answer_table(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_table_jetstream() {
    answer_table(BusKind::JetStream).await;
}

fn single_webhook(port: u16) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: one
spec:
  webhook:
    example: {{endpoint: /example, method: POST, port: "{port}"}}
"#
    )
}

/// The bus cannot store the event within the publish timeout: 503 with
/// Retry-After, in time, never 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_bus_answers_503_jetstream() {
    let timeout = Duration::from_millis(700);
    let mut h = Harness::start(BusKind::JetStream, single_webhook, &[], timeout).await;
    let json = owned(&[("content-type", "application/json")]);
    assert_eq!(h.post("/example", &json, "{}").await.status(), StatusCode::OK);
    h.nats.as_mut().map(NatsServer::kill);
    for _ in 0..2 {
        let started = Instant::now();
        let r = h.post("/example", &json, "{}").await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(
            started.elapsed() < timeout + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let metrics = h.running().metrics().render();
    assert!(metrics.contains("argo_events_events_sent_failed_total"), "{metrics}");
    h.stop().await;
}

/// The embedded bus never confirms (a stalled disk, simulated by holding
/// its publishes): 503 with Retry-After within the publish timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_bus_answers_503_embedded() {
    let timeout = Duration::from_millis(500);
    let h = Harness::start(BusKind::StalledEmbedded, single_webhook, &[], timeout).await;
    let json = owned(&[("content-type", "application/json")]);
    let started = Instant::now();
    let r = h.post("/example", &json, "{}").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(started.elapsed() < timeout + Duration::from_secs(1));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_is_a_startup_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bus = argon_eventbus::open(&format!("embedded:{}", dir.path().display()))
        .await
        .unwrap();
    let manifests = common::load(&manifest(argon_eventbus::testing::free_port()));
    let secrets = argon_crds::secret::Secrets::new(Some(dir.path().join("secrets")));
    let e = argon_eventsource::EventSourceRunner::start(
        &manifests,
        bus,
        &secrets,
        argon_eventsource::RunnerConfig::default(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("secret 'hook' key 'token'"), "{e}");
}

/// Shutdown stops accepting connections but finishes the request in flight,
/// which is answered 200 once its event is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let mut h = Harness::start(BusKind::GatedEmbedded, single_webhook, &[], Duration::from_secs(10)).await;
    let client = h.client.clone();
    let url = h.url("/example");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"late": true}"#)
            .send()
            .await
            .unwrap()
            .status()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.gate.waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "request never reached the bus");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.begin_stop();
    // New connections are refused once the listener is closed. A probe
    // that connected just as the shutdown began may be neither served nor
    // closed (hyper's graceful shutdown leaves such a connection to the
    // runner's drain bound): no answer within 2 s is not being served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = common::client::Client::new().get(h.url("/health")).send();
        if !matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Ok(_))) {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.gate.open();
    assert_eq!(in_flight.await.unwrap(), StatusCode::OK);
    let event = h.next_event().await;
    assert_eq!(data(&event)["body"], json!({"late": true}));
    h.stop().await;
}

/// A connection that never completes its request does not hold the stop
/// up for ever: the servers get the publish timeout plus 10 s to finish,
/// then are stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_does_not_hang_the_stop() {
    use tokio::io::AsyncWriteExt as _;
    let h = Harness::start(BusKind::Embedded, single_webhook, &[], Duration::from_secs(1)).await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(format!("POST /example HTTP/1.1\r\nhost: {addr}\r\n").as_bytes())
        .await
        .unwrap();
    // The server has the connection once it answers another one.
    let answered = h.client.get(h.url("/health")).send().await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let started = Instant::now();
    h.stop_within(Duration::from_secs(25)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "stopped after {:?}, before the drain bound: the connection was not stalled",
        started.elapsed()
    );
    drop(stalled);
}

/// Sends one request with a body written whole before the answer is read
/// (as most clients do), with a declared length or in chunks; returns the
/// answer's status line.
async fn send_whole(addr: &str, method: &str, path: &str, size: usize, chunked: bool) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let length = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {size}")
    };
    let head =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{length}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b' '; 64 << 10];
    let mut left = size;
    while left > 0 {
        let n = left.min(piece.len());
        if chunked {
            s.write_all(format!("{n:x}\r\n").as_bytes()).await.unwrap();
        }
        s.write_all(&piece[..n]).await.expect("the server took the body");
        if chunked {
            s.write_all(b"\r\n").await.unwrap();
        }
        left -= n;
    }
    if chunked {
        s.write_all(b"0\r\n\r\n").await.unwrap();
    }
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut buf).await.expect("the server answered");
            assert!(n > 0, "the server closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer in time");
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

/// A client that writes the whole of a rejected body before it reads gets
/// the 413 (or 404, 405), whether the body declares its length or comes in
/// chunks: the server reads the rest of the body after answering, so the
/// connection is not reset while the client is still sending. Nothing is
/// published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_bodies_sent_whole_get_their_answer_not_a_reset() {
    let mut h = Harness::start(BusKind::Embedded, single_webhook, &[], Duration::from_secs(5)).await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    let big = (1 << 20) + 1;
    for _ in 0..25 {
        for chunked in [false, true] {
            let status = send_whole(&addr, "POST", "/example", big, chunked).await;
            assert_eq!(status, "HTTP/1.1 413 Payload Too Large", "chunked: {chunked}");
        }
    }
    for chunked in [false, true] {
        for _ in 0..15 {
            let status = send_whole(&addr, "POST", "/nowhere", big, chunked).await;
            assert_eq!(status, "HTTP/1.1 404 Not Found", "chunked: {chunked}");
            let status = send_whole(&addr, "PUT", "/example", big, chunked).await;
            assert_eq!(status, "HTTP/1.1 405 Method Not Allowed", "chunked: {chunked}");
        }
    }
    let json = owned(&[("content-type", "application/json")]);
    let r = h.post("/example", &json, r#"{"sentinel": 1}"#).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(data(&h.next_event().await)["body"], json!({"sentinel": 1}));
    h.stop().await;
}
