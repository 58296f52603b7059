//! The web UI in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) against one real `argon run` with tokens, and
//! 10,000 stored workflows. What the DOM must show: a workflow submitted
//! elsewhere appears in the list without a reload; its graph has one node
//! per node of the workflow, each with the workflow's phase; its logs show;
//! the template page counts the runs (one submitted from its form); an
//! event replayed from the UI creates a new workflow; a read-only token
//! sees but cannot act. One argon and one chromedriver for the whole file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argon_e2e::{Api, Example, free_port, http, post_json};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);
const WRITE_TOKEN: &str = "ui-write-token";
const READ_TOKEN: &str = "ui-read-token";
/// Workflows in the store before argon starts.
const STORED: usize = 10_000;

const TEMPLATE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: greet
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: who
        value: world
  templates:
    - name: main
      steps:
        - - name: hello
            template: say
            arguments:
              parameters: [{name: text, value: "hello {{workflow.parameters.who}}"}]
        - - name: bye
            template: say
            arguments:
              parameters: [{name: text, value: "bye {{workflow.parameters.who}}"}]
    - name: say
      inputs:
        parameters: [{name: text}]
      container:
        image: busybox
        command: [sh, -c, "echo '{{inputs.parameters.text}}'; echo '{{inputs.parameters.text}}' > /tmp/said.txt"]
      outputs:
        artifacts: [{name: said, path: /tmp/said.txt}]
"#;

/// A `chromedriver` on a free port, stopped when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = free_port();
        let child = Command::new(binary("CHROMEDRIVER", &["chromedriver", "/usr/bin/chromedriver"]))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver (apt-get install chromium-driver): {e}"));
        let driver = ChromeDriver { child, port };
        argon_e2e::wait_until(DEADLINE, "chromedriver to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .unwrap();
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$VAR`, else the first of `names` found on PATH or as a path.
fn binary(var: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    for name in names {
        let p = Path::new(name);
        if p.is_absolute() && p.is_file() {
            return p.to_path_buf();
        }
        if let Some(paths) = std::env::var_os("PATH")
            && let Some(found) = std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        {
            return found;
        }
    }
    PathBuf::from(names[0])
}

/// Puts `n` finished workflows into a fresh engine store, as a long history would.
fn seed_store(state: &Path, n: usize) {
    let store = argon_engine::store::Store::open(&state.join("engine.sqlite")).unwrap();
    let start = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    for i in 0..n {
        let wf: argon_crds::workflow::Workflow = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "name": format!("old-{i:05}"), "namespace": "default", "uid": format!("00000000-0000-4000-8000-{i:012}"),
                "creationTimestamp": start,
            },
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox", "command": ["true"]}}]},
            "status": {"phase": if i % 10 == 0 { "Failed" } else { "Succeeded" }, "startedAt": start, "finishedAt": start},
        }))
        .unwrap();
        store.insert_workflow(&wf, None).unwrap();
    }
}

/// An authenticated API call; the JSON answer.
fn call(base: &str, method: &str, path: &str, body: &Value) -> Value {
    let auth = format!("Bearer {WRITE_TOKEN}");
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, answer) = http(
        method,
        &format!("{base}{path}"),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        &text,
    )
    .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    assert!(status < 300, "{method} {path}: {status} {answer}");
    serde_json::from_str(&answer).unwrap_or(Value::Null)
}

/// Evaluates `script` (a function body returning a value) in the page until
/// `ok` holds for its value; the value.
async fn wait_js(client: &Client, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let v = client.execute(script, vec![]).await.unwrap_or(Value::Null);
        if ok(&v) {
            return v;
        }
        if Instant::now() > deadline {
            let page = client.source().await.unwrap_or_default();
            panic!("timed out waiting for {what}; last value {v}\n--- page ---\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{name}: not a real screenshot"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Waits until the API lists a workflow `pick` chooses; its name.
fn wait_workflow(api: &Api, what: &str, pick: impl Fn(&Value) -> bool) -> String {
    let mut found = None;
    argon_e2e::wait_until(DEADLINE, what, || {
        found = api.workflows_auth(WRITE_TOKEN).into_iter().find(|w| pick(w));
        found.is_some()
    })
    .unwrap();
    found.unwrap()["metadata"]["name"].as_str().unwrap().to_owned()
}

trait AuthApi {
    fn workflows_auth(&self, token: &str) -> Vec<Value>;
}

impl AuthApi for Api {
    /// The newest workflows of `default` (the first page of 100).
    fn workflows_auth(&self, token: &str) -> Vec<Value> {
        let auth = format!("Bearer {token}");
        let url = format!("{}/api/v1/workflows/default?listOptions.limit=100", self.base);
        match http("GET", &url, &[("Authorization", &auth)], "") {
            Some((200, body)) => serde_json::from_str::<Value>(&body).unwrap()["items"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_in_a_browser() {
    let example = Example::prepare("quickstart", &[]);
    std::fs::write(example.dir.path().join("template.yaml"), TEMPLATE).unwrap();
    let state = tempfile::tempdir().unwrap();
    seed_store(state.path(), STORED);
    let api_addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{api_addr}");
    let run = example.run(
        state.path(),
        &api_addr,
        &[],
        &[("ARGON_AUTH_TOKEN", WRITE_TOKEN), ("ARGON_READ_TOKEN", READ_TOKEN)],
    );
    let api = Api::new(&api_addr);

    let driver = ChromeDriver::start();
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {
            "binary": binary("CHROMIUM", &["chromium", "/usr/bin/chromium"]),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"],
        }
    }))
    .unwrap();
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromedriver session");

    // Without a token the page says it needs one; with it, the list's first
    // page of the 10,000 stored workflows renders.
    client.goto(&format!("{base}/#/workflows")).await.unwrap();
    wait_js(
        &client,
        "the token notice",
        "return document.getElementById('notice').textContent",
        |v| v.as_str().is_some_and(|t| t.contains("needs a token")),
    )
    .await;
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(WRITE_TOKEN)
        .await
        .unwrap();
    client
        .find(Locator::Css("#token-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let first_page = wait_js(
        &client,
        "the first page of workflows",
        "const t = document.getElementById('workflow-list'); return t && t.dataset.firstRenderMs ? [t.querySelectorAll('tbody tr[data-name]').length, Number(t.dataset.firstRenderMs)] : null",
        |v| v.is_array(),
    )
    .await;
    assert_eq!(first_page[0], 50, "a page of 50 of the {STORED} stored workflows");
    let first_render_ms = first_page[1].as_f64().unwrap();
    eprintln!("ui: first page of {STORED} stored workflows rendered in {first_render_ms:.1} ms");
    assert!(first_render_ms < 300.0, "first page took {first_render_ms} ms");
    screenshot(&client, "workflows").await;

    // A workflow submitted elsewhere appears without a reload.
    let submitted = call(
        &base,
        "POST",
        "/api/v1/workflows/default",
        &json!({"workflow": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": "greet-"},
            "spec": {"workflowTemplateRef": {"name": "greet"}, "arguments": {"parameters": [{"name": "who", "value": "browser"}]}}}}),
    );
    let name = submitted["metadata"]["name"].as_str().unwrap().to_owned();
    wait_js(
        &client,
        "the new workflow in the list",
        &format!("return !!document.querySelector('#workflow-list tr[data-name=\"{name}\"]')"),
        |v| v == &json!(true),
    )
    .await;

    // Its page: one graph node per node, each with its phase; the logs.
    client
        .goto(&format!("{base}/#/workflows/default/{name}"))
        .await
        .unwrap();
    let done = {
        let mut done = Value::Null;
        argon_e2e::wait_until(DEADLINE, "the workflow to finish", || {
            done = call(&base, "GET", &format!("/api/v1/workflows/default/{name}"), &Value::Null);
            done["status"]["phase"] == "Succeeded" || done["status"]["phase"] == "Failed"
        })
        .unwrap();
        done
    };
    assert_eq!(done["status"]["phase"], "Succeeded", "{done}");
    let nodes = done["status"]["nodes"].as_object().unwrap();
    let mut want: Vec<(String, String)> = nodes
        .iter()
        .map(|(id, n)| (id.clone(), n["phase"].as_str().unwrap().to_owned()))
        .collect();
    want.sort();
    let shown = wait_js(
        &client,
        "the graph with every node finished",
        "return [...document.querySelectorAll('#graph g.node')].map(g => [g.dataset.id, g.dataset.phase]).sort()",
        |v| serde_json::to_value(&want).is_ok_and(|w| &w == v),
    )
    .await;
    assert_eq!(
        shown.as_array().unwrap().len(),
        5,
        "a steps node, two step groups, two steps"
    );
    wait_js(
        &client,
        "the logs",
        "return document.getElementById('logs').textContent",
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("hello browser") && t.contains("bye browser"))
        },
    )
    .await;
    // A click on a step shows its outputs, its artifacts with where they
    // are stored, and only its log.
    client
        .find(Locator::Css("#graph g.node[data-name=\"hello\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &client,
        "the step's details",
        "const l = document.querySelector('#node-outputs .artifact[data-name=\"said\"] .location'); \
         return [document.getElementById('node-details').textContent, document.getElementById('logs').textContent, l && l.textContent]",
        |v| {
            v[0].as_str()
                .is_some_and(|t| t.contains("Outputs") && t.contains("hello browser"))
                && v[2].as_str().is_some_and(|t| t.starts_with("local:") && t.ends_with("said.tgz"))
                && v[1]
                    .as_str()
                    .is_some_and(|t| t.contains("hello browser") && !t.contains("bye"))
        },
    )
    .await;
    screenshot(&client, "workflow").await;

    // The template page: submit from its form, then it counts both runs.
    client.goto(&format!("{base}/#/templates/default/greet")).await.unwrap();
    wait_js(
        &client,
        "the template's form",
        "return !!document.getElementById('p-who')",
        |v| v == &json!(true),
    )
    .await;
    let who = client.find(Locator::Id("p-who")).await.unwrap();
    who.clear().await.unwrap();
    who.send_keys("form").await.unwrap();
    client.find(Locator::Id("submit")).await.unwrap().click().await.unwrap();
    wait_js(&client, "the submitted workflow's page", "return location.hash", |v| {
        v.as_str()
            .is_some_and(|h| h.starts_with("#/workflows/default/greet-") && !h.ends_with(&name))
    })
    .await;
    let from_form = wait_workflow(&api, "the workflow of the form", |w| {
        w["spec"]["arguments"]["parameters"][0]["value"] == "form"
    });
    client.goto(&format!("{base}/#/templates/default/greet")).await.unwrap();
    wait_js(
        &client,
        "the run count",
        "const c = document.getElementById('run-count'); return c && c.textContent",
        |v| v.as_str() == Some("2"),
    )
    .await;
    assert!(from_form.starts_with("greet-"));
    screenshot(&client, "template").await;

    // An event replayed from its page creates a new workflow.
    let url = format!("http://127.0.0.1:{}/example", example.port(12000));
    assert_eq!(post_json(&url, &json!({"message": "hi", "who": "ui"})), 200);
    let events = call(&base, "GET", "/api/v1/events?source=webhook", &Value::Null);
    let id = events["items"][0]["context"]["id"].as_str().unwrap().to_owned();
    wait_workflow(&api, "the event's workflow", |w| {
        w["metadata"]["labels"]["events.argon.dev/event"] == id.as_str()
    });
    client.goto(&format!("{base}/#/events/{id}")).await.unwrap();
    wait_js(
        &client,
        "the event's workflow on its page",
        "return document.querySelectorAll('#event-workflows tr[data-name]').length",
        |v| v == 1,
    )
    .await;
    client.find(Locator::Id("replay")).await.unwrap().click().await.unwrap();
    let replayed = wait_workflow(&api, "the replay's workflow", |w| {
        w["metadata"]["labels"]["events.argon.dev/replay-of"] == id.as_str()
    });
    wait_js(
        &client,
        "the replay's page with its workflow",
        "return [location.hash, document.querySelectorAll('#event-workflows tr[data-name]').length]",
        |v| {
            v[0].as_str()
                .is_some_and(|h| h.starts_with("#/events/") && !h.ends_with(&id))
                && v[1] == 1
        },
    )
    .await;
    assert!(replayed.starts_with("hello-"));

    // The event flow counts the two events (original and replay) on the
    // webhook's edge and the two workflows of the trigger.
    client.goto(&format!("{base}/#/event-flow")).await.unwrap();
    wait_js(
        &client,
        "the flow's counts",
        "return [...document.querySelectorAll('#flow text.count')].map(t => t.dataset.from + '>' + t.dataset.to + '=' + t.dataset.count).sort()",
        |v| {
            v == &json!([
                "eventsource/webhook>sensor/webhook=2",
                "sensor/webhook>trigger/webhook/say-hello=2",
                "trigger/webhook/say-hello>workflows/webhook/say-hello=2",
            ])
        },
    )
    .await;
    screenshot(&client, "event-flow").await;

    // A read-only token sees, and is told it cannot act.
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(READ_TOKEN)
        .await
        .unwrap();
    client
        .find(Locator::Css("#token-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .goto(&format!("{base}/#/workflows/default/{name}"))
        .await
        .unwrap();
    wait_js(
        &client,
        "the workflow's actions",
        "return !!document.querySelector('button[data-action=\"retry\"]')",
        |v| v == &json!(true),
    )
    .await;
    client
        .find(Locator::Css("button[data-action=\"retry\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &client,
        "the refusal",
        "return document.getElementById('notice').textContent",
        |v| v.as_str().is_some_and(|t| t.contains("may only read")),
    )
    .await;

    client.close().await.unwrap();
    drop(driver);
    drop(run);
}
