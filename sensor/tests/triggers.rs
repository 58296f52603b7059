//! The `nats` (JetStream), `slack` and `email` triggers against real
//! servers: a nats-server with a stream, a local HTTP server standing in
//! for Slack's Web API, and aiosmtpd (Python, in scripts/test's moto venv)
//! as an SMTP server that requires STARTTLS and a login. Each fires from an
//! event on the embedded bus, retries what can be retried and acks the
//! event only after the trigger has fired.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon_crds::manifest::{Decoded, Manifest, decode};
use argon_crds::secret::Secrets;
use argon_crds::sensor::Sensor;
use argon_eventbus::{BusConfig, EmbeddedConfig, Event, EventBus};
use argon_sensor::metrics::Metrics;
use argon_sensor::{RunnerOptions, SensorRunner, Services};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn sensor(yaml: &str) -> Sensor {
    let docs = argon_crds::source::parse("test.yaml", yaml).expect("yaml");
    match decode(&docs[0].value) {
        Ok(Decoded::Manifest(Manifest::Sensor(s))) => *s,
        other => panic!("not a sensor: {other:?}"),
    }
}

async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A sensor running on its own embedded bus, with secrets from `secrets`.
struct Run {
    metrics: Metrics,
    bus: Arc<dyn EventBus>,
    runner: SensorRunner,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Run {
    async fn start(yaml: &str, secrets: Option<&Path>) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let bus = argon_eventbus::open_config(BusConfig::Embedded(EmbeddedConfig::new(dir.path().join("bus"))))
            .await
            .unwrap();
        let metrics = Metrics::new();
        let services = Services {
            bus: bus.clone(),
            client: None,
            secrets: Secrets::new(secrets.map(Path::to_path_buf)),
            metrics: metrics.clone(),
        };
        let shutdown = CancellationToken::new();
        let runner = SensorRunner::start_with(&sensor(yaml), services, RunnerOptions::default(), shutdown.clone())
            .await
            .unwrap();
        Run {
            metrics,
            bus,
            runner,
            shutdown,
            _dir: dir,
        }
    }

    async fn publish(&self, data: Value) {
        self.bus
            .publish(&Event::new("webhook", "example", "webhook", &data))
            .await
            .unwrap();
    }

    fn count(&self, metric: &str, trigger: &str, sensor: &str) -> u64 {
        let m = match metric {
            "triggered" => &self.metrics.triggered,
            _ => &self.metrics.failed,
        };
        m.with_label_values(&[sensor, trigger]).get()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.runner.wait().await;
    }
}

/// A secrets dir holding `NAME/KEY` = value for each entry.
fn secrets(entries: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, key, value) in entries {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join(key), value).unwrap();
    }
    dir
}

// ---------------------------------------------------------------- nats

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_trigger_publishes_through_jet_stream_with_the_firing_key() {
    let server = argon_eventbus::testing::NatsServer::start();
    let js_client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(js_client.clone());
    let yaml = format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: alerts
spec:
  dependencies:
    - name: dep
      eventSourceName: webhook
      eventName: example
  triggers:
    - template:
        name: to-nats
        nats:
          url: {url}
          subject: alerts.new
          jetStream: true
          payload:
            - src: {{dependencyName: dep, dataKey: level}}
              dest: level
      retryStrategy:
        steps: 50
        duration: 100ms
"#,
        url = server.url()
    );
    // A plain subscriber sees each attempt, answering none of them.
    let mut attempts = js_client.subscribe("alerts.new").await.unwrap();
    let run = Run::start(&yaml, None).await;
    // No stream takes the subject yet: the first attempt gets no ack and
    // the firing is retried; the stream is made once an attempt was seen.
    run.publish(json!({"level": "high"})).await;
    tokio::time::timeout(Duration::from_secs(30), futures::StreamExt::next(&mut attempts))
        .await
        .expect("a first attempt");
    assert_eq!(run.count("triggered", "to-nats", "alerts"), 0);
    let mut stream = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "ALERTS".into(),
            subjects: vec!["alerts.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    wait_until("the firing", Duration::from_secs(30), || {
        run.count("triggered", "to-nats", "alerts") == 1
    })
    .await;
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 1);
    let message = stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&message.payload).unwrap(),
        json!({"level": "high"})
    );
    let id = message
        .headers
        .get("Nats-Msg-Id")
        .map(|v| v.to_string())
        .unwrap_or_default();
    assert_eq!(
        id.len(),
        32,
        "the idempotency key is the message id: {:?}",
        message.headers
    );
    run.stop().await;
}

// ---------------------------------------------------------------- slack

/// Calls a stand-in Slack received: (authorization, path and query, body).
type SlackCalls = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A stand-in for Slack's Web API: answers `chat.postMessage` with the
/// bodies of `answers` in turn (then ok); `conversations.list` with the
/// channel `C0DEPLOYS` named "deploys" on its second page;
/// `conversations.join` with ok. Records every call; the posts alone are
/// also given as (authorization, body).
async fn fake_slack(answers: Vec<Value>) -> (String, Arc<Mutex<Vec<(String, Value)>>>, SlackCalls) {
    let posts: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let calls: SlackCalls = Arc::default();
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let app = axum::Router::new().fallback({
        let (posts, calls) = (posts.clone(), calls.clone());
        move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let (posts, calls, answers) = (posts.clone(), calls.clone(), answers.clone());
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let target = uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                calls.lock().unwrap().push((auth.clone(), target.clone(), body.clone()));
                let answer = match uri.path() {
                    "/api/chat.postMessage" => {
                        let n = {
                            let mut posts = posts.lock().unwrap();
                            posts.push((auth, body));
                            posts.len()
                        };
                        answers
                            .lock()
                            .unwrap()
                            .next()
                            .unwrap_or_else(|| json!({"ok": true, "ts": format!("1700000000.{n:06}")}))
                    }
                    "/api/conversations.list" if target.contains("cursor=page%2F2") => json!({
                        "ok": true,
                        "channels": [{"id": "C0DEPLOYS", "name": "deploys"}],
                        "response_metadata": {"next_cursor": ""}
                    }),
                    "/api/conversations.list" => json!({
                        "ok": true,
                        "channels": [{"id": "C0GENERAL", "name": "general"}],
                        "response_metadata": {"next_cursor": "page/2"}
                    }),
                    "/api/conversations.join" => json!({"ok": true, "channel": {"id": body["channel"]}}),
                    _ => json!({"ok": false, "error": "unknown_method"}),
                };
                axum::Json(answer)
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, posts, calls)
}

fn slack_sensor(api: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: chat
spec:
  dependencies:
    - name: dep
      eventSourceName: webhook
      eventName: example
  triggers:
    - parameters:
        - src: {{dependencyName: dep, dataKey: text}}
          dest: slack.message
      template:
        name: to-slack
        slack:
          apiURL: {api}
          slackToken: {{name: slack, key: token}}
          channel: deploys
          message: placeholder
          thread:
            messageAggregationKey: deploys
          sender:
            username: argon
            icon: ":rocket:"
      retryStrategy:
        steps: 3
        duration: 10ms
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_trigger_posts_retries_a_rate_limit_and_threads_by_key() {
    let (api, seen, _) = fake_slack(vec![json!({"ok": false, "error": "ratelimited"})]).await;
    let dir = secrets(&[("slack", "token", "xoxb-test\n")]);
    let run = Run::start(&slack_sensor(&api), Some(dir.path())).await;
    run.publish(json!({"text": "v1 is out"})).await;
    wait_until("the first message", Duration::from_secs(30), || {
        run.count("triggered", "to-slack", "chat") == 1
    })
    .await;
    run.publish(json!({"text": "v2 is out"})).await;
    wait_until("the second message", Duration::from_secs(30), || {
        run.count("triggered", "to-slack", "chat") == 2
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "ratelimited once, retried, then the second: {seen:?}");
    assert!(seen.iter().all(|(auth, _)| auth == "Bearer xoxb-test"), "{seen:?}");
    let first = &seen[1].1;
    assert_eq!(first["channel"], "deploys");
    assert_eq!(first["text"], "v1 is out");
    assert_eq!(first["username"], "argon");
    assert_eq!(first["icon_emoji"], ":rocket:");
    assert!(first.get("thread_ts").is_none(), "{first}");
    // The second message of the key goes into the first one's thread.
    assert_eq!(seen[2].1["text"], "v2 is out");
    assert_eq!(seen[2].1["thread_ts"], "1700000000.000002");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_errors_a_retry_cannot_fix_are_not_retried() {
    let (api, seen, _) = fake_slack(vec![json!({"ok": false, "error": "channel_not_found"})]).await;
    let dir = secrets(&[("slack", "token", "xoxb-test")]);
    let run = Run::start(&slack_sensor(&api), Some(dir.path())).await;
    run.publish(json!({"text": "lost"})).await;
    wait_until("the failure", Duration::from_secs(30), || {
        run.count("failed", "to-slack", "chat") == 1
    })
    .await;
    assert_eq!(seen.lock().unwrap().len(), 1, "channel_not_found is not retried");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_not_in_the_channel_looks_it_up_by_name_joins_and_posts() {
    let (api, posts, calls) = fake_slack(vec![json!({"ok": false, "error": "not_in_channel"})]).await;
    let dir = secrets(&[("slack", "token", "xoxb-test")]);
    let run = Run::start(&slack_sensor(&api), Some(dir.path())).await;
    run.publish(json!({"text": "v3 is out"})).await;
    wait_until("the message after joining", Duration::from_secs(30), || {
        run.count("triggered", "to-slack", "chat") == 1
    })
    .await;
    let calls: Vec<(String, String, Value)> = calls.lock().unwrap().clone();
    let paths: Vec<&str> = calls
        .iter()
        .map(|(_, p, _)| p.split('?').next().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        [
            "/api/chat.postMessage",
            "/api/conversations.list",
            "/api/conversations.list",
            "/api/conversations.join",
            "/api/chat.postMessage"
        ],
        "{calls:?}"
    );
    assert!(calls[1].1.contains("types=public_channel,private_channel"), "{calls:?}");
    assert!(
        calls[2].1.contains("cursor=page%2F2"),
        "the second page by its cursor: {calls:?}"
    );
    assert_eq!(calls[3].2, json!({"channel": "C0DEPLOYS"}), "joins by id");
    assert!(calls.iter().all(|(auth, _, _)| auth == "Bearer xoxb-test"), "{calls:?}");
    assert_eq!(posts.lock().unwrap()[1].1["text"], "v3 is out");
    run.stop().await;
}

// ---------------------------------------------------------------- email

/// aiosmtpd on a free port, requiring STARTTLS and the login
/// argon/hunter2, appending each mail as a JSON line to `mails.jsonl`.
/// While a file `fail-once` exists beside it, the next mail is refused
/// with a transient 451 (and the file removed).
struct SmtpServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
    ca_pem: String,
}

const SMTP_SERVER: &str = r#"
import asyncio, json, os, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
cert, key, port, out = sys.argv[1:5]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        flag = os.path.join(os.path.dirname(out), "fail-once")
        if os.path.exists(flag):
            os.remove(flag)
            return "451 4.3.0 Try again later"
        with open(out, "a") as f:
            f.write(json.dumps({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                                "data": envelope.content.decode(), "tls": session.ssl is not None,
                                "user": session.auth_data.login.decode() if session.authenticated else None}) + "\n")
        return "250 OK"
def authenticate(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"argon" and data.password == b"hunter2"
    return AuthResult(success=ok, handled=False, auth_data=data)
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=context,
                        require_starttls=True, authenticator=authenticate, auth_required=True)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

impl SmtpServer {
    fn start() -> SmtpServer {
        let bin = std::env::var_os("ARGON_MOTO_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/argon-moto/venv/bin")
            });
        let python = bin.join("python");
        assert!(
            python.exists(),
            "{} is missing: run ./scripts/test, which installs aiosmtpd in the moto venv (or set ARGON_MOTO_BIN)",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        let port = argon_eventbus::testing::free_port();
        let mut child = std::process::Command::new(python)
            .arg("-c")
            .arg(SMTP_SERVER)
            .arg(dir.path().join("cert.pem"))
            .arg(dir.path().join("key.pem"))
            .arg(port.to_string())
            .arg(dir.path().join("mails.jsonl"))
            // Its stdin is this process's pipe: it ends when the test does.
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start (is it installed?)");
        SmtpServer {
            child,
            port,
            dir,
            ca_pem: made.cert.pem(),
        }
    }

    fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("mails.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email_sensor(port: u16, password_key: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: mail
spec:
  dependencies:
    - name: dep
      eventSourceName: webhook
      eventName: example
  triggers:
    - parameters:
        - src: {{dependencyName: dep, dataKey: to}}
          dest: email.to.-1
        - src:
            dependencyName: dep
            dataTemplate: "Hi {{{{.Input.name}}}}, the build passed."
          dest: email.body
      template:
        name: to-mail
        email:
          host: 127.0.0.1
          port: {port}
          username: argon
          smtpPassword: {{name: smtp, key: {password_key}}}
          from: argon@example.net
          subject: Build passed
          tls:
            caCertSecret: {{name: smtp, key: ca.pem}}
      retryStrategy:
        steps: 2
        duration: 10ms
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_trigger_sends_over_starttls_with_a_login() {
    let smtp = SmtpServer::start();
    let dir = secrets(&[
        ("smtp", "password", "hunter2"),
        ("smtp", "wrong", "nope"),
        ("smtp", "ca.pem", &smtp.ca_pem),
    ]);
    let run = Run::start(&email_sensor(smtp.port, "password"), Some(dir.path())).await;
    run.publish(json!({"to": "ops@example.net", "name": "Ada"})).await;
    wait_until("the mail", Duration::from_secs(30), || {
        run.count("triggered", "to-mail", "mail") == 1
    })
    .await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["tls"], true, "sent after STARTTLS");
    assert_eq!(mail["user"], "argon");
    assert_eq!(mail["from"], "argon@example.net");
    assert_eq!(mail["to"], json!(["ops@example.net"]));
    let data = mail["data"].as_str().unwrap();
    assert!(data.contains("Subject: Build passed"), "{data}");
    assert!(data.contains("Hi Ada, the build passed."), "{data}");
    assert!(
        data.contains("@argon>"),
        "the Message-ID comes from the idempotency key: {data}"
    );
    run.stop().await;

    // A refused login fails the firing, and nothing is sent.
    let run = Run::start(&email_sensor(smtp.port, "wrong"), Some(dir.path())).await;
    run.publish(json!({"to": "ops@example.net", "name": "Bob"})).await;
    wait_until("the refused mail", Duration::from_secs(30), || {
        run.count("failed", "to-mail", "mail") == 1
    })
    .await;
    assert_eq!(smtp.mails().len(), 1, "nothing sent with a wrong password");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_trigger_retries_a_transient_smtp_refusal() {
    let smtp = SmtpServer::start();
    let dir = secrets(&[("smtp", "password", "hunter2"), ("smtp", "ca.pem", &smtp.ca_pem)]);
    let flag = smtp.dir.path().join("fail-once");
    std::fs::write(&flag, "").unwrap();
    let run = Run::start(&email_sensor(smtp.port, "password"), Some(dir.path())).await;
    run.publish(json!({"to": "ops@example.net", "name": "Cy"})).await;
    wait_until("the mail after a retry", Duration::from_secs(30), || {
        run.count("triggered", "to-mail", "mail") == 1
    })
    .await;
    assert!(!flag.exists(), "the first attempt was refused with 451");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "sent once, by the retry: {mails:?}");
    assert!(mails[0]["data"].as_str().unwrap().contains("Hi Cy"), "{mails:?}");
    assert_eq!(run.count("failed", "to-mail", "mail"), 0);
    run.stop().await;
}
