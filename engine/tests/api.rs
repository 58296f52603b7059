//! The API server through `tower::ServiceExt::oneshot`, and the HTTP client
//! against it on a real port.

mod common;

use std::time::Duration;

use argon_client::{HttpClient, SubmitOptions, WorkflowAction, WorkflowAdmin, WorkflowClient};
use argon_crds::workflow::WorkflowPhase;
use argon_engine::server::{ApiAuth, ApiState, Token, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt;

fn hello() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hello-"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "who", "value": "world"}]},
            "templates": [{"name": "main", "container": {"image": "alpine", "command": ["echo", "hello {{workflow.parameters.who}}"]}}]
        }
    })
}

/// The API's router over `engine`, with no token.
fn open_router(engine: &std::sync::Arc<argon_engine::Engine>) -> axum::Router {
    router(ApiState {
        engine: engine.clone(),
        auth: ApiAuth::default(),
        metrics: None,
        events: None,
    })
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

#[tokio::test]
async fn workflows_through_the_router() {
    let h = harness();
    let app = open_router(&h.engine);
    let (status, wf) = call(
        &app,
        "POST",
        "/api/v1/workflows/team",
        Some(json!({"workflow": hello(), "submitOptions": {"parameters": ["who=api"], "idempotencyKey": "k1"}})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{wf}");
    let name = wf["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(wf["metadata"]["namespace"], "team");
    let (status, again) = call(
        &app,
        "POST",
        "/api/v1/workflows/team",
        Some(json!({"workflow": hello(), "submitOptions": {"idempotencyKey": "k1"}})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["metadata"]["name"], name.as_str());

    let done = wait_done(&h.engine, "team", &name).await;
    assert_eq!(phase(&done), Some(WorkflowPhase::Succeeded));
    let (status, got) = call(&app, "GET", &format!("/api/v1/workflows/team/{name}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["status"]["phase"], "Succeeded");
    let root = &got["status"]["nodes"][&name];
    assert_eq!(root["displayName"], name.as_str());
    assert_eq!(root["type"], "Pod");
    assert_eq!(root["outputs"]["result"], "hello api");
    assert!(got["status"]["startedAt"].is_string() && got["status"]["finishedAt"].is_string());

    let (_, latest) = call(&app, "GET", "/api/v1/workflows/-/@latest", None, None).await;
    assert_eq!(latest["metadata"]["name"], name.as_str());
    let (_, list) = call(&app, "GET", "/api/v1/workflows/-", None, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let (status, log) = call(&app, "GET", &format!("/api/v1/workflows/team/{name}/log"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = log.to_string();
    assert!(text.contains("hello api"), "{text}");

    let (status, err) = call(
        &app,
        "PUT",
        &format!("/api/v1/workflows/team/{name}/resume"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let (status, _) = call(&app, "PUT", &format!("/api/v1/workflows/team/{name}/jump"), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut bad = hello();
    bad["spec"]["templates"][0]["name"] = json!("other");
    let (status, err) = call(
        &app,
        "POST",
        "/api/v1/workflows/team",
        Some(json!({"workflow": bad})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["message"].as_str().unwrap().contains("spec.entrypoint"), "{err}");

    let (status, _) = call(&app, "DELETE", &format!("/api/v1/workflows/team/{name}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = call(&app, "GET", &format!("/api/v1/workflows/team/{name}"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["name"], name.as_str());
}

#[tokio::test]
async fn templates_through_the_router_and_bearer_auth() {
    let h = harness();
    let app = router(ApiState {
        engine: h.engine.clone(),
        auth: ApiAuth {
            write: Token::new("s3cret"),
            read: None,
        },
        metrics: None,
        events: None,
    });
    let (status, _) = call(&app, "GET", "/api/v1/workflows/-", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, "GET", "/api/v1/workflows/-", None, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let t = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "greet"},
        "spec": {"templates": [{"name": "main", "container": {"image": "alpine", "command": ["echo", "hi"]}}]}
    });
    let (status, stored) = call(
        &app,
        "POST",
        "/api/v1/workflow-templates/default",
        Some(json!({"template": t})),
        Some("s3cret"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (_, list) = call(&app, "GET", "/api/v1/workflow-templates/default", None, Some("s3cret")).await;
    assert_eq!(list["items"][0]["metadata"]["name"], "greet");
    // Read, delete, and read again: gone.
    for (method, expected) in [
        ("GET", StatusCode::OK),
        ("DELETE", StatusCode::OK),
        ("GET", StatusCode::NOT_FOUND),
    ] {
        let (status, _) = call(
            &app,
            method,
            "/api/v1/workflow-templates/default/greet",
            None,
            Some("s3cret"),
        )
        .await;
        assert_eq!(status, expected, "{method}");
    }
}

#[tokio::test]
async fn the_http_client_speaks_to_a_real_server() {
    let h = harness();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ApiState {
        engine: h.engine.clone(),
        auth: ApiAuth {
            write: Token::new("tok"),
            read: None,
        },
        metrics: None,
        events: None,
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = HttpClient::new(&format!("http://{addr}"), Some("tok".into())).unwrap();
    let wf: argon_crds::workflow::Workflow = serde_json::from_value(hello()).unwrap();
    let opts = SubmitOptions {
        idempotency_key: Some("event-7".into()),
        ..Default::default()
    };
    let a = client.submit("default", wf.clone(), opts.clone()).await.unwrap();
    let b = client.submit("default", wf.clone(), opts).await.unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.name, b.name);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = client.get("default", &a.name).await.unwrap();
        if got
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_completed())
        {
            assert_eq!(phase(&got), Some(WorkflowPhase::Succeeded));
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = client.logs("default", &a.name, 0).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].line, "hello world");
    assert_eq!(logs[0].step, a.name);
    let err = client.act("default", &a.name, WorkflowAction::Stop).await.unwrap_err();
    assert!(matches!(err, argon_client::Error::Conflict { .. }), "{err}");
    let err = client.get("default", "nope").await.unwrap_err();
    assert!(matches!(err, argon_client::Error::NotFound { .. }), "{err}");
    let mut bad = wf.clone();
    bad.spec.entrypoint = Some("missing".into());
    let err = client
        .submit("default", bad, SubmitOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, argon_client::Error::Invalid(m) if m.contains("missing")),
        "{err}"
    );
    assert_eq!(client.list("", &Default::default()).await.unwrap().items.len(), 1);
    let resubmitted = client.act("default", &a.name, WorkflowAction::Resubmit).await.unwrap();
    assert_ne!(resubmitted.metadata.name.as_deref(), Some(a.name.as_str()));
    client.delete("default", &a.name).await.unwrap();
    assert_eq!(
        client.list("default", &Default::default()).await.unwrap().items.len(),
        1
    );

    let unauthorized = HttpClient::new(&format!("http://{addr}"), None).unwrap();
    let err = unauthorized.get("default", "x").await.unwrap_err();
    assert!(err.to_string().contains("Bearer"), "{err}");
    let down = HttpClient::new("127.0.0.1:1", None).unwrap();
    assert!(matches!(
        down.get("default", "x").await.unwrap_err(),
        argon_client::Error::Unavailable(_)
    ));
}

#[tokio::test]
async fn logs_follow_until_the_workflow_ends_and_cluster_templates_resolve() {
    let h = harness();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = open_router(&h.engine);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = HttpClient::new(&addr.to_string(), None).unwrap();
    let cwt = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterWorkflowTemplate",
        "metadata": {"name": "ticker"},
        "spec": {"templates": [{"name": "tick", "container": {"image": "alpine", "command": ["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"]}}]}
    });
    client.put_template("", cwt).await.unwrap();
    assert_eq!(
        client
            .list_templates(argon_client::TemplateKind::ClusterWorkflowTemplate, "")
            .await
            .unwrap()
            .len(),
        1
    );
    let wf: argon_crds::workflow::Workflow = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "follow-"},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "steps": [[{"name": "t", "templateRef": {"name": "ticker", "template": "tick", "clusterScope": true}}]]}]
        }
    }))
    .unwrap();
    let s = client.submit("default", wf, SubmitOptions::default()).await.unwrap();
    let mut lines = Vec::new();
    client
        .stream_logs(&s.namespace, &s.name, 0, true, |l| {
            lines.push(format!("{}: {}", l.step, l.line))
        })
        .await
        .unwrap();
    assert_eq!(lines, vec!["t: tick 1", "t: tick 2", "t: tick 3"]);
    let done = client.get(&s.namespace, &s.name).await.unwrap();
    assert_eq!(phase(&done), Some(WorkflowPhase::Succeeded));
}

#[tokio::test]
async fn a_read_token_reads_and_only_the_write_token_changes() {
    let h = harness();
    let app = router(ApiState {
        engine: h.engine.clone(),
        auth: ApiAuth {
            write: Token::new("rw-token"),
            read: Token::new("ro-token"),
        },
        metrics: Some(std::sync::Arc::new(|| "argon_up 1\n".to_string())),
        events: None,
    });
    let create = || Some(json!({"workflow": hello()}));
    let (status, body) = call(&app, "POST", "/api/v1/workflows/default", create(), Some("ro-token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], 7);
    let (status, wf) = call(&app, "POST", "/api/v1/workflows/default", create(), Some("rw-token")).await;
    assert_eq!(status, StatusCode::CREATED, "{wf}");
    let name = wf["metadata"]["name"].as_str().unwrap().to_string();
    for token in ["ro-token", "rw-token"] {
        let (status, _) = call(&app, "GET", "/api/v1/workflows/default", None, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        let (status, text) = call(&app, "GET", "/metrics", None, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        assert_eq!(text, Value::String("argon_up 1\n".into()));
    }
    let (status, _) = call(&app, "GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (method, path) in [
        ("PUT", format!("/api/v1/workflows/default/{name}/stop")),
        ("PUT", format!("/api/v1/workflows/default/{name}/suspend")),
        ("PUT", format!("/api/v1/workflows/default/{name}/retry")),
        ("DELETE", format!("/api/v1/workflows/default/{name}")),
        ("POST", "/api/v1/workflow-templates/default".to_string()),
        ("DELETE", "/api/v1/cron-workflows/default/x".to_string()),
    ] {
        let (status, body) = call(&app, method, &path, None, Some("ro-token")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    // A token that is a prefix or an extension of the real one is no token.
    for wrong in ["rw-toke", "rw-token2", "", "ro-token "] {
        let (status, _) = call(
            &app,
            "DELETE",
            &format!("/api/v1/workflows/default/{name}"),
            None,
            Some(wrong),
        )
        .await;
        assert_ne!(status, StatusCode::OK, "{wrong:?}");
    }
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/api/v1/workflows/default/{name}"),
        None,
        Some("rw-token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn tokens_do_not_show_in_debug_output() {
    let auth = ApiAuth {
        write: Token::new("super-secret-value"),
        read: Token::new("another-secret"),
    };
    let shown = format!("{auth:?}");
    assert!(!shown.contains("secret-value") && !shown.contains("another"), "{shown}");
    let client = HttpClient::new("http://127.0.0.1:1", Some("super-secret-value".into())).unwrap();
    let shown = format!("{client:?}");
    assert!(!shown.contains("secret-value"), "{shown}");
}

#[tokio::test]
async fn names_kubernetes_would_refuse_get_400_with_the_reason() {
    let h = harness();
    let app = open_router(&h.engine);
    let long = "a".repeat(100_000);
    for name in ["../../../../tmp/x", "a/b", "..", long.as_str(), "UPPER", "-a"] {
        let mut wf = hello();
        wf["metadata"] = json!({"name": name});
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/workflows/default",
            Some(json!({"workflow": wf})),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:.40}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("metadata.name"), "{message}");
        assert!(
            message.len() < 1000,
            "the reason repeats the whole name: {} bytes",
            message.len()
        );

        let template = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": name},
            "spec": {"templates": [{"name": "main", "container": {"image": "alpine", "command": ["true"]}}]}
        });
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/workflow-templates/default",
            Some(json!({"template": template})),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "template {name:.40}: {body}");
    }
    let mut wf = hello();
    wf["metadata"] = json!({"generateName": "../x-"});
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/workflows/default",
        Some(json!({"workflow": wf})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("generateName"), "{body}");
    let mut wf = hello();
    wf["metadata"]["labels"] = json!({"bad key!": "v"});
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/workflows/default",
        Some(json!({"workflow": wf})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/workflows/default",
        Some(json!({"workflow": hello(), "submitOptions": {"labels": "ok=../x"}})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/workflows/a..b",
        Some(json!({"workflow": hello()})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Good names still go through.
    let mut wf = hello();
    wf["metadata"] = json!({"name": "fine.name-1", "labels": {"app.kubernetes.io/name": "x"}});
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/workflows/default",
        Some(json!({"workflow": wf})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Argo's list semantics: pages that cover every workflow once, label and
/// field selectors, the phase labels, name prefixes and creation times, and
/// clear errors for what the server cannot read.
#[tokio::test]
async fn lists_page_and_select_as_argo_does() {
    let h = harness();
    let app = open_router(&h.engine);
    let mut names = Vec::new();
    for i in 0..23 {
        let labels = [("batch".to_string(), format!("b{}", i % 3))].into();
        let ns = if i % 2 == 0 { "even" } else { "odd" };
        let wf: argon_crds::workflow::Workflow = serde_json::from_value(hello()).unwrap();
        let s = h
            .engine
            .submit_workflow(
                ns,
                wf,
                SubmitOptions {
                    labels,
                    ..Default::default()
                },
            )
            .unwrap();
        names.push((s.namespace, s.name));
    }
    for (ns, name) in &names {
        wait_done(&h.engine, ns, name).await;
    }
    // Pages of 5 cover the 23 once, newest first, the last without a token.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut uri = "/api/v1/workflows/-?listOptions.limit=5".to_string();
        if let Some(t) = &token {
            uri.push_str(&format!("&listOptions.continue={t}"));
        }
        let (status, page) = call(&app, "GET", &uri, None, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            assert!(item["status"]["nodes"].is_null(), "a list has no nodes");
            seen.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let newest_first: Vec<String> = names.iter().rev().map(|(_, n)| n.clone()).collect();
    assert_eq!(seen, newest_first);

    let count = |v: &Value| v["items"].as_array().map(|a| a.len()).unwrap_or(usize::MAX);
    let (_, v) = call(&app, "GET", "/api/v1/workflows/even", None, None).await;
    assert_eq!(count(&v), 12);
    for (selector, want) in [
        ("batch%3Db1", 8),
        ("batch%20in%20(b0%2Cb2)", 15),
        ("batch!%3Db0", 15),
        ("batch%20notin%20(b0%2Cb1)", 7),
        ("batch", 23),
        ("!batch", 0),
        ("workflows.argoproj.io%2Fcompleted%3Dtrue", 23),
        ("workflows.argoproj.io%2Fcompleted!%3Dtrue", 0),
        ("workflows.argoproj.io%2Fphase%20in%20(Running%2CFailed)", 0),
        ("workflows.argoproj.io%2Fphase%3DSucceeded%2Cbatch%3Db2", 7),
    ] {
        let (status, v) = call(
            &app,
            "GET",
            &format!("/api/v1/workflows/-?listOptions.labelSelector={selector}"),
            None,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{selector}: {v}");
        assert_eq!(count(&v), want, "{selector}");
    }
    let (_, last) = names.last().unwrap();
    for (query, want) in [
        (format!("listOptions.fieldSelector=metadata.name%3D{last}"), 1),
        (format!("listOptions.fieldSelector=metadata.name!%3D{last}"), 22),
        (
            "listOptions.fieldSelector=status.phase%3DSucceeded,metadata.namespace%3Dodd".to_string(),
            11,
        ),
        ("namePrefix=hello-".to_string(), 23),
        ("namePrefix=nope".to_string(), 0),
        (
            "createdAfter=2000-01-01T00:00:00Z&createdBefore=2999-01-01T00:00:00Z".to_string(),
            23,
        ),
        ("createdAfter=2999-01-01T00:00:00Z".to_string(), 0),
        ("finishedBefore=2999-01-01T00:00:00Z".to_string(), 23),
        ("finishedBefore=2000-01-01T00:00:00Z".to_string(), 0),
    ] {
        let (status, v) = call(&app, "GET", &format!("/api/v1/workflows/-?{query}"), None, None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {v}");
        assert_eq!(count(&v), want, "{query}");
    }
    for (query, says) in [
        ("listOptions.limit=ten", "not a whole number"),
        ("listOptions.continue=bm9wZQ", "not a token this server gave"),
        ("listOptions.labelSelector=a%20in%20(b", "not closed"),
        ("listOptions.fieldSelector=spec.entrypoint%3Dx", "not supported"),
        ("createdAfter=yesterday", "not an RFC 3339 time"),
    ] {
        let (status, v) = call(&app, "GET", &format!("/api/v1/workflows/-?{query}"), None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{query}: {v}");
    }
}

/// The watch stream: what already matches comes first as ADDED, then each
/// change of a matching workflow until it ends, then DELETED; workflows
/// the selector leaves out are never sent.
#[tokio::test]
async fn the_watch_stream_follows_a_workflow_to_its_end() {
    let h = harness();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = open_router(&h.engine);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = HttpClient::new(&format!("http://{addr}"), None).unwrap();
    let wf: argon_crds::workflow::Workflow = serde_json::from_value(hello()).unwrap();
    let labelled = |v: &str| SubmitOptions {
        labels: [("watch".to_string(), v.to_string())].into(),
        ..Default::default()
    };
    let before = client.submit("default", wf.clone(), labelled("yes")).await.unwrap();
    wait_done(&h.engine, "default", &before.name).await;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = client.clone();
    tokio::spawn(async move {
        let options = argon_client::list::ListOptions {
            label_selector: Some("watch=yes".into()),
            ..Default::default()
        };
        let _ = watcher
            .watch("default", &options, |ev| tx.send((ev.kind, ev.workflow)).is_ok())
            .await;
    });
    let next = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, argon_crds::workflow::Workflow)>| {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no watch event within 20 s"))
            .expect("the watch goes on")
    };
    let (kind, first) = next(&mut rx).await;
    assert_eq!(kind, "ADDED");
    assert_eq!(first.metadata.name.as_deref(), Some(before.name.as_str()));
    assert_eq!(phase(&first), Some(WorkflowPhase::Succeeded));

    client.submit("default", wf.clone(), labelled("no")).await.unwrap();
    let s = client.submit("default", wf.clone(), labelled("yes")).await.unwrap();
    let (kind, added) = next(&mut rx).await;
    assert_eq!(kind, "ADDED", "the other workflow is not sent");
    assert_eq!(added.metadata.name.as_deref(), Some(s.name.as_str()));
    let done = loop {
        let (kind, wf) = next(&mut rx).await;
        assert_eq!(kind, "MODIFIED");
        assert_eq!(wf.metadata.name.as_deref(), Some(s.name.as_str()));
        if phase(&wf).is_some_and(|p| p.is_completed()) {
            break wf;
        }
    };
    assert_eq!(phase(&done), Some(WorkflowPhase::Succeeded));
    assert!(
        !done.status.as_ref().unwrap().nodes.is_empty(),
        "watch events carry the nodes"
    );
    client.delete("default", &s.name).await.unwrap();
    let (kind, gone) = next(&mut rx).await;
    assert_eq!(kind, "DELETED");
    assert_eq!(gone.metadata.name.as_deref(), Some(s.name.as_str()));
}

/// CronWorkflows are suspended and resumed through the API, as with Argo's
/// `PUT /api/v1/cron-workflows/{ns}/{name}/suspend|resume`.
#[tokio::test]
async fn cron_workflows_suspend_and_resume() {
    let h = harness();
    let app = open_router(&h.engine);
    let cron = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "workflowSpec": hello()["spec"]}
    });
    let (status, v) = call(
        &app,
        "POST",
        "/api/v1/cron-workflows/default",
        Some(json!({"cronWorkflow": cron})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = call(
        &app,
        "PUT",
        "/api/v1/cron-workflows/default/nightly/suspend",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["spec"]["suspend"], true);
    let (_, v) = call(&app, "GET", "/api/v1/cron-workflows/default/nightly", None, None).await;
    assert_eq!(v["spec"]["suspend"], true);
    let (_, v) = call(&app, "PUT", "/api/v1/cron-workflows/default/nightly/resume", None, None).await;
    assert_eq!(v["spec"]["suspend"], false);
    let (status, _) = call(&app, "PUT", "/api/v1/cron-workflows/default/nightly/jump", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        "PUT",
        "/api/v1/cron-workflows/default/missing/suspend",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Finished workflows are archived with their nodes and stay there when
/// they are deleted; the archive lists, gets (by uid or name) and deletes
/// as Argo's `/api/v1/archived-workflows` does, and `archive_ttl` empties it.
#[tokio::test]
async fn the_archive_outlives_deletion() {
    let h = harness();
    let app = open_router(&h.engine);
    let (status, wf) = call(
        &app,
        "POST",
        "/api/v1/workflows/team",
        Some(json!({"workflow": hello()})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{wf}");
    let name = wf["metadata"]["name"].as_str().unwrap().to_string();
    let uid = wf["metadata"]["uid"].as_str().unwrap().to_string();
    wait_done(&h.engine, "team", &name).await;
    let (status, _) = call(&app, "DELETE", &format!("/api/v1/workflows/team/{name}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, list) = call(
        &app,
        "GET",
        "/api/v1/archived-workflows?namespace=team&listOptions.limit=10",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["metadata"]["name"], name.as_str());
    let (_, other) = call(
        &app,
        "GET",
        "/api/v1/archived-workflows?namespace=elsewhere",
        None,
        None,
    )
    .await;
    assert!(other["items"].as_array().unwrap().is_empty());
    for id in [&uid, &name] {
        let (status, got) = call(&app, "GET", &format!("/api/v1/archived-workflows/{id}"), None, None).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["status"]["phase"], "Succeeded");
        assert_eq!(got["status"]["nodes"][&name]["outputs"]["result"], "hello world");
    }
    let (status, _) = call(&app, "DELETE", &format!("/api/v1/archived-workflows/{uid}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, "GET", &format!("/api/v1/archived-workflows/{uid}"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // With a ttl of zero the archive empties itself.
    let h = harness_with(|c| c.archive_ttl = Some(Duration::ZERO));
    let s = h
        .engine
        .submit_workflow(
            "team",
            serde_json::from_value(hello()).unwrap(),
            SubmitOptions::default(),
        )
        .unwrap();
    wait_done(&h.engine, "team", &s.name).await;
    let serve = tokio::spawn(argon_engine::serve(h.engine.clone(), std::future::pending()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !h
        .engine
        .list_archived("", &Default::default())
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the archive kept its expired workflow"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve.abort();
}
