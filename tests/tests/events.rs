//! `argon events list|get|replay` against a real `argon run` of the
//! quickstart: the webhook's event is listed and names the workflow it
//! created; its replay makes a second workflow that records the original.

use std::time::Duration;

use argon_e2e::{Api, Example, argon, free_port, post_json, wait_until};
use serde_json::{Value, json};

const RUN: Duration = Duration::from_secs(120);

fn events(args: &[&str], server: &str) -> (bool, String, String) {
    let mut all = vec!["events"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--server", server]);
    let out = argon(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn events_are_listed_shown_and_replayed() {
    let example = Example::prepare("quickstart", &[]);
    let state = tempfile::tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let server = format!("http://{api_addr}");
    let run = example.run(state.path(), &api_addr, &[], &[]);
    let url = format!("http://127.0.0.1:{}/example", example.port(12000));
    assert_eq!(post_json(&url, &json!({"message": "hello", "who": "events"})), 200);
    let api = Api::new(&api_addr);
    let first = api.wait_finished(1, RUN);
    let first_name = first[0]["metadata"]["name"].as_str().unwrap().to_owned();

    let (ok, listed, err) = events(&["list", "--source", "webhook", "--since", "1h", "-o", "json"], &server);
    assert!(ok, "{err}");
    let items: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(items.len(), 1, "{listed}");
    let id = items[0]["context"]["id"].as_str().unwrap().to_owned();
    assert_eq!(items[0]["context"]["subject"], "example");
    let (ok, table, err) = events(&["list"], &server);
    assert!(ok, "{err}");
    assert!(table.starts_with("ID") && table.contains(&id), "{table}");
    let (_, none, _) = events(&["list", "--source", "nothing", "-o", "json"], &server);
    assert_eq!(none.trim(), "");

    let (ok, shown, err) = events(&["get", &id], &server);
    assert!(ok, "{err}");
    assert!(
        shown.contains(&first_name) && shown.contains("webhook/say-hello"),
        "{shown}"
    );
    assert!(shown.contains("\"who\": \"events\""), "{shown}");

    let (ok, replayed, err) = events(&["replay", &id, "--sensor", "webhook", "-o", "json"], &server);
    assert!(ok, "{err}");
    let replay: Value = serde_json::from_str(&replayed).unwrap();
    let replay_id = replay["context"]["id"].as_str().unwrap().to_owned();
    assert_ne!(replay_id, id);
    let all = api.wait_finished(2, RUN);
    let second = all
        .iter()
        .find(|w| w["metadata"]["name"] != first_name.as_str())
        .expect("a second workflow");
    assert_eq!(second["metadata"]["labels"]["events.argon.dev/replay-of"], id.as_str());
    assert_eq!(
        second["metadata"]["labels"]["events.argon.dev/event"],
        replay_id.as_str()
    );
    // The original's page lists both workflows; the replay's, its own.
    wait_until(RUN, "the original to list both workflows", || {
        let (_, shown, _) = events(&["get", &id], &server);
        shown.contains(&first_name) && shown.contains("(from a replay)")
    })
    .unwrap();

    let (ok, _, err) = events(&["replay", &id, "--sensor", "nobody"], &server);
    assert!(!ok);
    assert!(err.contains("no sensor named 'nobody'"), "{err}");
    let (ok, _, err) = events(&["get", "no-such-event"], &server);
    assert!(!ok);
    assert!(err.contains("no stored event"), "{err}");
    drop(run);
}
