//! The event API through `tower::ServiceExt::oneshot`, over an embedded bus
//! and a real engine: the list (filters, pages), one event with the
//! workflows it created, replay (read-write token only, a sensor that is
//! not running refused), and the event flow's counts.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use argon_client::SubmitOptions;
use argon_engine::events::{DependencyNode, EventsApi, SensorNode, SourceEvent, SourceNode, Topology, TriggerNode};
use argon_engine::server::{ApiAuth, ApiState, Token, router};
use argon_eventbus::embedded::EmbeddedBus;
use argon_eventbus::{EmbeddedConfig, Event, EventBus};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, uri: &str, token: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn topology() -> Topology {
    Topology {
        event_sources: vec![SourceNode {
            name: "hooks".into(),
            bus: "default".into(),
            events: vec![SourceEvent {
                name: "push".into(),
                kind: "webhook".into(),
            }],
        }],
        sensors: vec![SensorNode {
            name: "ci".into(),
            bus: "default".into(),
            dependencies: vec![DependencyNode {
                name: "push".into(),
                event_source_name: "hooks".into(),
                event_name: "push".into(),
            }],
            triggers: vec![TriggerNode {
                name: "build".into(),
                kind: "argoWorkflow".into(),
                dependencies: vec!["push".into()],
            }],
        }],
    }
}

fn workflow() -> argon_crds::workflow::Workflow {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "build-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine", "command": ["true"]}}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn events_list_get_replay_and_flow() {
    let h = harness();
    let bus: Arc<dyn EventBus> = Arc::new(
        EmbeddedBus::open(EmbeddedConfig::new(h.dir.path().join("bus")))
            .await
            .unwrap(),
    );
    let events = Arc::new(EventsApi::new());
    events.set_bus("default", bus.clone());
    events.set_topology(topology());
    let app = router(ApiState {
        engine: h.engine.clone(),
        auth: ApiAuth {
            write: Token::new("rw"),
            read: Token::new("ro"),
        },
        metrics: None,
        events: Some(events),
    });

    let mut ids = Vec::new();
    for n in 0..3 {
        let e = Event::new("hooks", "push", "webhook", &json!({"body": {"n": n}}));
        ids.push(e.context.id.clone());
        bus.publish(&e).await.unwrap();
    }
    bus.publish(&Event::new("cron", "tick", "calendar", &json!({})))
        .await
        .unwrap();

    // The workflow a sensor made of event 1, with its lineage.
    let mut wf = workflow();
    wf.metadata.annotations = Some(BTreeMap::from([(
        "events.argon.dev/events".to_owned(),
        json!({"push": ids[1]}).to_string(),
    )]));
    let labels = BTreeMap::from([
        ("events.argoproj.io/sensor".to_owned(), "ci".to_owned()),
        ("events.argoproj.io/trigger".to_owned(), "build".to_owned()),
        ("events.argon.dev/event".to_owned(), ids[1].clone()),
    ]);
    let made = h
        .engine
        .submit_workflow(
            "default",
            wf,
            SubmitOptions {
                labels,
                ..Default::default()
            },
        )
        .unwrap();

    // The list: newest first, filtered, in pages; a read-only token may read.
    let (status, all) = call(&app, "GET", "/api/v1/events", "ro").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let sources: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["context"]["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["cron", "hooks", "hooks", "hooks"]);
    assert_eq!(all["items"][0]["bus"], "default");
    assert!(all["items"][0]["storedAt"].is_string() && all["items"][0]["sequence"] == 4);
    let (_, page) = call(&app, "GET", "/api/v1/events?source=hooks&limit=2", "ro").await;
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["context"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()]);
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned();
    let (_, rest) = call(
        &app,
        "GET",
        &format!("/api/v1/events?source=hooks&limit=2&continue={token}"),
        "ro",
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["context"]["id"], ids[0].as_str());
    assert!(rest["metadata"].get("continue").is_none());
    let (_, none) = call(&app, "GET", "/api/v1/events?since=2099-01-01T00:00:00Z", "ro").await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (status, bad) = call(&app, "GET", "/api/v1/events?since=someday", "ro").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, _) = call(&app, "GET", "/api/v1/events", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // One event, with the workflow it created.
    let (status, one) = call(&app, "GET", &format!("/api/v1/events/{}", ids[1]), "ro").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["data"], json!({"body": {"n": 1}}));
    assert_eq!(one["workflows"][0]["name"], made.name.as_str());
    assert_eq!(one["workflows"][0]["sensor"], "ci");
    let (_, other) = call(&app, "GET", &format!("/api/v1/events/{}", ids[0]), "ro").await;
    assert_eq!(other["workflows"], json!([]));
    let (status, missing) = call(&app, "GET", "/api/v1/events/nope", "ro").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        missing["message"].as_str().unwrap().contains("no stored event"),
        "{missing}"
    );

    // Replay: read-write only; a new event naming the original.
    let replay_path = format!("/api/v1/events/{}/replay?sensor=ci", ids[1]);
    let (status, _) = call(&app, "POST", &replay_path, "ro").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, refused) = call(
        &app,
        "POST",
        &format!("/api/v1/events/{}/replay?sensor=nobody", ids[1]),
        "rw",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        refused["message"].as_str().unwrap().contains("running: ci"),
        "{refused}"
    );
    let (status, replay) = call(&app, "POST", &replay_path, "rw").await;
    assert_eq!(status, StatusCode::CREATED, "{replay}");
    let replay_id = replay["context"]["id"].as_str().unwrap().to_owned();
    assert_ne!(replay_id, ids[1]);
    assert_eq!(replay["context"]["argonreplayof"], ids[1].as_str());
    assert_eq!(replay["context"]["argonsensor"], "ci");
    let (_, stored) = call(&app, "GET", &format!("/api/v1/events/{replay_id}"), "ro").await;
    assert_eq!(stored["context"]["argonreplayof"], ids[1].as_str());

    // The flow: 3 + 1 pushes (the replay counts), 1 workflow of the trigger.
    let (status, flow) = call(&app, "GET", "/api/v1/event-flow?since=1h", "ro").await;
    assert_eq!(status, StatusCode::OK, "{flow}");
    let edge = |from: &str, to: &str| {
        flow["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["from"] == from && e["to"] == to)
            .unwrap_or_else(|| panic!("no edge {from} -> {to} in {flow}"))["count"]
            .clone()
    };
    assert_eq!(edge("eventsource/hooks", "sensor/ci"), 4);
    assert_eq!(edge("sensor/ci", "trigger/ci/build"), 1);
    assert_eq!(edge("trigger/ci/build", "workflows/ci/build"), 1);
    assert_eq!(flow["nodes"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_server_without_a_bus_says_where_the_history_is() {
    let h = harness();
    let app = router(ApiState {
        engine: h.engine.clone(),
        auth: ApiAuth::default(),
        metrics: None,
        events: None,
    });
    let (status, body) = call(&app, "GET", "/api/v1/events", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("argon run"), "{body}");
}
