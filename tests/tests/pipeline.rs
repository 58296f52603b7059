//! The whole pipeline with real processes: webhook -> bus -> sensor ->
//! engine -> a workflow whose step is a real process. In one process on the
//! embedded bus, and as separate processes over a real nats-server, with
//! processes killed mid-stream.

use std::collections::BTreeMap;
use std::time::Duration;

use argon_e2e::{Api, Example, Proc, free_port, post_json, wait_until};
use argon_eventbus::testing::NatsServer;
use serde_json::json;

const START: Duration = Duration::from_secs(120);
const RUN: Duration = Duration::from_secs(120);

/// `argon run examples/quickstart` on fresh ports and a fresh state dir.
fn argon_run(example: &Example, state: &std::path::Path, api: &str, extra: &[&str]) -> Proc {
    example.run(state, api, extra, &[])
}

/// The posted value of each workflow (its `message` argument), counted.
fn messages(workflows: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for w in workflows {
        let params = w["spec"]["arguments"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let message = params
            .iter()
            .find(|p| p["name"] == "message")
            .and_then(|p| p["value"].as_str())
            .unwrap_or("");
        *out.entry(message.to_string()).or_default() += 1;
    }
    out
}

#[test]
fn one_process_embedded_bus_runs_the_posted_value() {
    let example = Example::prepare("quickstart", &[]);
    let state = tempfile::tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let mut run = argon_run(&example, state.path(), &api_addr, &[]);
    let url = format!("http://127.0.0.1:{}/example", example.port(12000));
    run.wait_for_output(&format!("webhook example POST {url}"), START);

    assert_eq!(
        post_json(&url, &json!({"message": "hello", "who": "e2e-one-process"})),
        200
    );
    let api = Api::new(&api_addr);
    let workflows = api.wait_finished(1, RUN);
    assert_eq!(workflows.len(), 1);
    assert_eq!(workflows[0]["status"]["phase"], "Succeeded", "{}", workflows[0]);
    let logs = api.logs("@latest");
    assert!(logs.contains("hello e2e-one-process"), "{logs}");

    assert_eq!(run.terminate(Duration::from_secs(30)), Some(0), "{}", run.output());
}

/// The same pipeline as four processes: nats-server, `argon server`,
/// `argon eventsource run`, `argon sensor run --server`.
struct Distributed {
    nats: NatsServer,
    example: Example,
    api: Api,
    _state: tempfile::TempDir,
    server: Proc,
    eventsource: Proc,
    sensor: Proc,
    url: String,
}

impl Distributed {
    fn start(publish_timeout: &str) -> Distributed {
        let nats = NatsServer::start();
        let example = Example::prepare("quickstart", &[]);
        let state = tempfile::tempdir().unwrap();
        let api_addr = format!("127.0.0.1:{}", free_port());
        let server = Proc::spawn(
            "argon server",
            &[
                "server",
                "--state-dir",
                state.path().to_str().unwrap(),
                "--api-addr",
                &api_addr,
            ],
            &[],
        );
        server.wait_for_output("listening on", START);
        let eventsource = Proc::spawn(
            "argon eventsource run",
            &[
                "eventsource",
                "run",
                &format!("{}/eventsource.yaml", example.path()),
                "--bus",
                &nats.url(),
                "--publish-timeout",
                publish_timeout,
            ],
            &[],
        );
        let url = format!("http://127.0.0.1:{}/example", example.port(12000));
        eventsource.wait_for_output(&url, START);
        let sensor = Self::sensor(&example, &nats.url(), &api_addr);
        Distributed {
            nats,
            example,
            api: Api::new(&api_addr),
            _state: state,
            server,
            eventsource,
            sensor,
            url,
        }
    }

    fn sensor(example: &Example, bus: &str, api_addr: &str) -> Proc {
        let metrics = format!("127.0.0.1:{}", free_port());
        let p = Proc::spawn(
            "argon sensor run",
            &[
                "sensor",
                "run",
                &format!("{}/sensor.yaml", example.path()),
                "--bus",
                bus,
                "--server",
                &format!("http://{api_addr}"),
                "--metrics-addr",
                &metrics,
            ],
            &[],
        );
        p.wait_for_output("sensor started", START);
        p
    }

    fn restart_sensor(&mut self) {
        self.sensor.kill();
        let api_addr = self.api.base.trim_start_matches("http://").to_string();
        self.sensor = Self::sensor(&self.example, &self.nats.url(), &api_addr);
    }
}

#[test]
fn distributed_processes_over_nats_run_the_posted_value() {
    let mut d = Distributed::start("5s");
    assert_eq!(
        post_json(&d.url, &json!({"message": "hello", "who": "e2e-distributed"})),
        200
    );
    let workflows = d.api.wait_finished(1, RUN);
    assert_eq!(workflows[0]["status"]["phase"], "Succeeded", "{}", workflows[0]);
    let name = workflows[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert!(d.api.logs(&name).contains("hello e2e-distributed"));
    for p in [&mut d.sensor, &mut d.eventsource, &mut d.server] {
        assert_eq!(p.terminate(Duration::from_secs(30)), Some(0), "{}", p.output());
    }
}

/// 500 events posted while the sensor is SIGKILLed and restarted: every
/// event becomes exactly one workflow.
#[test]
fn sensor_killed_mid_stream_gives_exactly_one_workflow_per_event() {
    let mut d = Distributed::start("5s");
    const N: usize = 500;
    let url = d.url.clone();
    let poster = std::thread::spawn(move || {
        (0..N)
            .map(|i| post_json(&url, &json!({"message": format!("m{i:03}"), "who": "crash"})))
            .collect::<Vec<u16>>()
    });
    // Kill the sensor twice while events flow, once it has fired some triggers.
    for round in 1..=2 {
        wait_until(RUN, "some workflows", || d.api.workflows().len() >= round * 60).unwrap();
        d.restart_sensor();
    }
    let statuses = poster.join().unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every post is accepted: {statuses:?}"
    );
    let workflows = d.api.wait_finished(N, Duration::from_secs(600));
    let counts = messages(&workflows);
    assert_eq!(workflows.len(), N, "exactly {N} workflows");
    assert_eq!(counts.len(), N, "each posted value once");
    assert!(counts.values().all(|c| *c == 1));
}

/// `argon run` SIGKILLed right after answering 200: the event is on disk,
/// so after a restart its workflow runs.
#[test]
fn argon_run_killed_after_a_200_runs_the_workflow_after_restart() {
    let example = Example::prepare("quickstart", &[]);
    let state = tempfile::tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    // The kill lands right after the 200: whatever the sensor and the engine
    // had done by then, the restarted process must run the workflow, once.
    let mut run = argon_run(&example, state.path(), &api_addr, &[]);
    let url = format!("http://127.0.0.1:{}/example", example.port(12000));
    assert_eq!(post_json(&url, &json!({"message": "survivor", "who": "kill-9"})), 200);
    run.kill();

    let mut run = argon_run(&example, state.path(), &api_addr, &[]);
    let api = Api::new(&api_addr);
    let workflows = api.wait_finished(1, RUN);
    let counts = messages(&workflows);
    assert_eq!(counts.get("survivor"), Some(&1), "{counts:?}");
    // The workflow ran. When the kill landed while its step was running, the
    // engine's policy applies to that step: retried under a retryStrategy,
    // otherwise failed with a message saying the engine restarted (the
    // quickstart workflow has no retryStrategy).
    for w in &workflows {
        let phase = w["status"]["phase"].as_str().unwrap_or("");
        let message = w["status"]["message"].as_str().unwrap_or("");
        assert!(
            phase == "Succeeded" || (phase == "Failed" && message.contains("engine restarted")),
            "{w}"
        );
    }
    assert_eq!(run.terminate(Duration::from_secs(30)), Some(0));
}

/// nats-server stopped while events are posted: a 200 means the event
/// reaches a workflow once NATS is back; everything else got 503.
#[test]
fn nats_down_while_posting_gives_503_or_a_workflow() {
    let mut d = Distributed::start("1s");
    let mut statuses = BTreeMap::new();
    for i in 0..20 {
        statuses.insert(
            format!("before{i}"),
            post_json(&d.url, &json!({"message": format!("before{i}"), "who": "x"})),
        );
    }
    d.nats.kill();
    for i in 0..10 {
        statuses.insert(
            format!("down{i}"),
            post_json(&d.url, &json!({"message": format!("down{i}"), "who": "x"})),
        );
    }
    d.nats.restart();
    // Publishing resumes without restarting any Argon process.
    wait_until(RUN, "the webhook to accept again", || {
        post_json(&d.url, &json!({"message": "after", "who": "x"})) == 200
    })
    .unwrap();
    statuses.insert("after".to_string(), 200);

    assert!(statuses.values().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .filter(|(k, _)| k.starts_with("down"))
            .all(|(_, s)| *s == 503),
        "{statuses:?}"
    );
    let accepted: Vec<&String> = statuses.iter().filter(|(_, s)| **s == 200).map(|(k, _)| k).collect();
    let workflows = d.api.wait_finished(accepted.len(), RUN);
    let counts = messages(&workflows);
    for k in accepted {
        assert_eq!(
            counts.get(k),
            Some(&1),
            "{k} was answered 200 and must run once: {counts:?}"
        );
    }
}

/// Editing a manifest while `argon run` runs applies it without a restart;
/// an edit with an error leaves the running version in place.
#[test]
fn argon_run_applies_manifest_edits() {
    let example = Example::prepare("quickstart", &[]);
    let state = tempfile::tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let mut run = argon_run(&example, state.path(), &api_addr, &[]);
    let port = example.port(12000);
    let file = example.dir.path().join("eventsource.yaml");
    let text = std::fs::read_to_string(&file).unwrap();

    std::fs::write(&file, text.replace("method: POST", "methd: POST")).unwrap();
    run.wait_for_output("not reloaded, still running the previous manifests", RUN);
    assert!(run.output().contains("did you mean 'method'?"), "{}", run.output());
    assert_eq!(
        post_json(
            &format!("http://127.0.0.1:{port}/example"),
            &json!({"message": "a", "who": "b"})
        ),
        200
    );

    std::fs::write(&file, text.replace("endpoint: /example", "endpoint: /renamed")).unwrap();
    run.wait_for_output("argon run: reloaded", RUN);
    let renamed = format!("http://127.0.0.1:{port}/renamed");
    assert_eq!(post_json(&renamed, &json!({"message": "edited", "who": "live"})), 200);
    assert_eq!(post_json(&format!("http://127.0.0.1:{port}/example"), &json!({})), 404);
    let workflows = Api::new(&api_addr).wait_finished(2, RUN);
    assert_eq!(messages(&workflows).get("edited"), Some(&1));
    assert_eq!(run.terminate(Duration::from_secs(30)), Some(0));
}
