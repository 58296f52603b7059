//! `argon eventsource run` as a process: it prints its endpoints, answers
//! 200 once the event is on the bus, serves /health on its webhook port and /metrics on --metrics-addr, exits 0 on
//! SIGTERM, and refuses to start without a secret it needs.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use argon_eventbus::ConsumerSpec;
use argon_eventbus::testing::free_port;
use futures::StreamExt as _;

/// One plain HTTP/1.1 request over a fresh connection: (status, body).
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn argon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_argon"))
}

/// Lines of the child's stdout, read on a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("argon did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_webhook_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("es.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: webhook\nspec:\n  webhook:\n    \
             example:\n      endpoint: /example\n      method: POST\n      port: \"{port}\"\n"
        ),
    )
    .unwrap();
    let bus_dir = dir.path().join("bus");
    let mut child = argon()
        .args(["eventsource", "run"])
        .arg(&file)
        .arg("--bus")
        .arg(format!("embedded:{}", bus_dir.display()))
        .args(["--metrics-addr", "127.0.0.1:0", "--host", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let mut metrics_url = None;
    let expected = format!("webhook example POST http://127.0.0.1:{port}/example");
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("endpoint printed within 30s");
        if let Some(url) = line.strip_prefix("metrics ") {
            metrics_url = Some(url.to_owned());
        }
        if line == expected {
            break;
        }
    }
    let (status, _) = http(
        "POST",
        &format!("http://127.0.0.1:{port}/example"),
        &[("content-type", "application/json")],
        r#"{"hello": "argon"}"#,
    );
    assert_eq!(status, 200);
    let (status, _) = http("GET", &format!("http://127.0.0.1:{port}/health"), &[], "");
    assert_eq!(status, 200);
    let (_, metrics) = http("GET", &metrics_url.unwrap(), &[], "");
    assert!(
        metrics.contains(r#"argo_events_events_sent_total{event_name="example",event_source_name="webhook"} 1"#),
        "{metrics}"
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");

    // The event the 200 answered for is on the bus.
    let bus = argon_eventbus::open(&format!("embedded:{}", bus_dir.display()))
        .await
        .unwrap();
    let mut sub = bus.subscribe(&ConsumerSpec::new("check")).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let data = delivery.event.data.to_value().unwrap();
    assert_eq!(data["body"]["hello"], "argon");
}

#[test]
fn a_missing_secret_stops_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("es.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: webhook\nspec:\n  webhook:\n    \
         example:\n      endpoint: /example\n      method: POST\n      port: \"12000\"\n      \
         authSecret: {name: hook, key: token}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    let out = argon()
        .args(["eventsource", "run"])
        .arg(&file)
        .arg("--bus")
        .arg(format!("embedded:{}", dir.path().join("bus").display()))
        .arg("--secrets-dir")
        .arg(dir.path().join("secrets"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secret 'hook' key 'token' not found"), "{stderr}");
}

/// `--eventbus` with an accessSecret: a missing secret key file stops
/// start-up naming it; the right token connects to a server that demands
/// it and a webhook event lands on the bus; a wrong one is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eventbus_access_secret_authenticates_or_stops_startup() {
    use argon_eventbus::testing::{NatsOptions, NatsServer};
    let nats = NatsServer::start_with(NatsOptions::default().token("t0ken"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let es = dir.path().join("es.yaml");
    std::fs::write(
        &es,
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: webhook\nspec:\n  webhook:\n    \
             example:\n      endpoint: /example\n      method: POST\n      port: \"{port}\"\n"
        ),
    )
    .unwrap();
    let bus = dir.path().join("eventbus.yaml");
    std::fs::write(
        &bus,
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata:\n  name: default\nspec:\n  jetstreamExotic:\n    \
             url: {}\n    auth: token\n    accessSecret: {{name: nats, key: auth.yaml}}\n",
            nats.url()
        ),
    )
    .unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("nats")).unwrap();
    let run = || {
        let mut command = argon();
        command
            .args(["eventsource", "run"])
            .arg(&es)
            .arg("--eventbus")
            .arg(&bus)
            .arg("--secrets-dir")
            .arg(&secrets)
            .arg("--host")
            .arg("127.0.0.1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };

    let out = run().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("EventBus 'default': accessSecret: secret 'nats' key 'auth.yaml' not found"),
        "{stderr}"
    );

    std::fs::write(secrets.join("nats/auth.yaml"), "token: wrong\n").unwrap();
    let out = run().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("NATS server {} refused the credentials", nats.url())),
        "{stderr}"
    );

    std::fs::write(secrets.join("nats/auth.yaml"), "token: t0ken\n").unwrap();
    let mut child = run().spawn().unwrap();
    let rx = lines(&mut child);
    let endpoint = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("argon printed no endpoint");
    assert!(endpoint.contains(&format!(":{port}")), "{endpoint}");
    let (status, body) = http("POST", &format!("http://127.0.0.1:{port}/example"), &[], "{\"n\":1}");
    assert_eq!(status, 200, "{body}");
    let mut config = argon_eventbus::JetStreamConfig::new(nats.url());
    config.auth = argon_eventbus::Auth::Token("t0ken".into());
    let reader = argon_eventbus::open_config(argon_eventbus::BusConfig::JetStream(config))
        .await
        .unwrap();
    let mut sub = reader.subscribe(&ConsumerSpec::new("check")).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("no event on the bus")
        .expect("subscription ended")
        .expect("delivery error");
    assert_eq!(delivery.event.context.source, "webhook");
    let _ = child.kill();
    let _ = child.wait();
}
