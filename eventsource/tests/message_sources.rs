//! The message-queue sources and `file` against real servers (mosquitto,
//! redis-server, rabbitmq-server, nats-server, moto for SQS; one of each per run of this
//! binary): a message becomes an event; for the durable kinds (`mqtt`,
//! `redisStream`, `amqp`, `nats` with `jetStream`, `sqs`) a message delivered to an Argon that dies before
//! the bus stored it comes back to the next Argon; after a broker restart
//! the source reconnects and goes on.
//!
//! "Dies" is an Argon whose runtime is dropped at once
//! (`shutdown_background`): its tasks end where they stand, its sockets
//! close, nothing acknowledges.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon_crds::secret::Secrets;
use argon_eventbus::{ConsumerSpec, Event, EventBus, KeyValue, PublishAck, Subscription};
use argon_eventsource::testing::{Kind, shared, sqs_client};
use argon_eventsource::{EventSourceRunner, RunnerConfig, Running};
use common::load;
use futures::StreamExt as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The secrets of every test: `aws/accessKey` and `aws/secretKey`, which
/// moto accepts whatever they are.
fn test_secrets() -> Secrets {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("aws")).unwrap();
        std::fs::write(dir.path().join("aws/accessKey"), "testing").unwrap();
        std::fs::write(dir.path().join("aws/secretKey"), "testing").unwrap();
        dir
    });
    Secrets::new(Some(dir.path().to_owned()))
}

/// An Argon event source: a runner on a bus, stopped on drop.
struct Argon {
    running: Option<Running>,
    shutdown: CancellationToken,
}

impl Argon {
    async fn start(yaml: &str, bus: Arc<dyn EventBus>) -> Argon {
        // RUST_LOG=argon_eventsource=debug shows the sources' connections.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let shutdown = CancellationToken::new();
        let config = RunnerConfig {
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            publish_timeout: Duration::from_secs(2),
            ..RunnerConfig::default()
        };
        let running = EventSourceRunner::start(&load(yaml), bus, &test_secrets(), config, shutdown.clone())
            .await
            .unwrap();
        Argon {
            running: Some(running),
            shutdown,
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        let running = self.running.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), running.wait())
            .await
            .expect("stopped within 10 s")
            .unwrap();
    }
}

/// An Argon in a runtime of its own whose bus never confirms a publish: it
/// receives messages and holds them, unacknowledged, until it is killed.
struct DoomedArgon {
    runtime: Option<tokio::runtime::Runtime>,
    held: Arc<Mutex<Vec<Value>>>,
}

impl DoomedArgon {
    fn start(yaml: String) -> DoomedArgon {
        let held = Arc::new(Mutex::new(Vec::new()));
        let bus: Arc<dyn EventBus> = Arc::new(HoldingBus { held: held.clone() });
        let runtime = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let argon = runtime.block_on(Argon::start(&yaml, bus));
            // Leaked on purpose: it dies with its runtime, never stopped.
            std::mem::forget(argon);
            runtime
        })
        .join()
        .unwrap();
        DoomedArgon {
            runtime: Some(runtime),
            held,
        }
    }

    /// The data of the events received and not stored so far.
    fn held(&self) -> Vec<Value> {
        self.held.lock().unwrap().clone()
    }

    /// The data of the first event received, waited for at most `within`.
    async fn first_held(&self, within: Duration) -> Value {
        tokio::time::timeout(within, async {
            loop {
                if let Some(first) = self.held().first() {
                    return first.clone();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the message reached the doomed Argon")
    }

    /// Ends it at once, as a crash would.
    fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for DoomedArgon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A bus that records each event published and never confirms it.
struct HoldingBus {
    held: Arc<Mutex<Vec<Value>>>,
}

#[async_trait::async_trait]
impl EventBus for HoldingBus {
    fn name(&self) -> &str {
        "default"
    }

    async fn publish(&self, event: &Event) -> argon_eventbus::Result<PublishAck> {
        self.held
            .lock()
            .unwrap()
            .push(event.data.to_value().unwrap_or_default());
        std::future::pending().await
    }

    async fn subscribe(&self, _consumer: &ConsumerSpec) -> argon_eventbus::Result<Subscription> {
        std::future::pending().await
    }

    async fn kv(&self, _bucket: &str) -> argon_eventbus::Result<Arc<dyn KeyValue>> {
        std::future::pending().await
    }
}

async fn embedded_bus(dir: &std::path::Path) -> Arc<dyn EventBus> {
    argon_eventbus::open(&format!("embedded:{}", dir.display()))
        .await
        .unwrap()
}

/// The next event on `sub` (acknowledged), within `within`.
async fn next_event(sub: &mut Subscription, within: Duration) -> Option<Event> {
    let delivery = tokio::time::timeout(within, sub.next()).await.ok()??.ok()?;
    let event = delivery.event.clone();
    delivery.ack().await.ok()?;
    Some(event)
}

fn data(event: &Event) -> Value {
    event.data.to_value().unwrap()
}

/// Calls `send(i)` for i = 0, 1, ... every 100 ms until `done()` holds, at
/// most `within`: messages sent before a subscription exists are not
/// routed, so a test sends until one arrives rather than guessing when the
/// source is subscribed.
async fn send_until<F, Fut>(within: Duration, mut send: F, mut done: impl FnMut() -> bool) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut i = 0;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing arrived within {within:?}"
        );
        send(i).await;
        i += 1;
        let step = tokio::time::Instant::now() + Duration::from_millis(100);
        while tokio::time::Instant::now() < step && !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    i
}

/// Sends until `sub` yields an event whose data satisfies `wanted`;
/// returns it.
async fn send_until_event<F, Fut>(
    sub: &mut Subscription,
    within: Duration,
    mut send: F,
    wanted: impl Fn(&Value) -> bool,
) -> Value
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut i = 0;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no wanted event within {within:?}"
        );
        send(i).await;
        i += 1;
        while let Some(event) = next_event(sub, Duration::from_millis(200)).await {
            let d = data(&event);
            if wanted(&d) {
                return d;
            }
        }
    }
}

// ---------------------------------------------------------------- mqtt

fn mqtt_yaml(port: u16, client_id: &str, topic: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: devices
spec:
  mqtt:
    readings:
      url: tcp://127.0.0.1:{port}
      topic: {topic}
      clientId: {client_id}
      jsonBody: true
      connectionBackoff:
        duration: 100ms
        factor: 2
      metadata:
        site: lab
"#
    )
}

struct MqttPublisher {
    client: rumqttc::AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl MqttPublisher {
    fn new(port: u16) -> MqttPublisher {
        let id = format!("test-pub-{}", uuid::Uuid::new_v4().simple());
        let options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let task = tokio::spawn(async move {
            loop {
                if eventloop.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        MqttPublisher { client, task }
    }

    async fn send(&self, topic: &str, body: String) {
        let _ = self
            .client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, body.into_bytes())
            .await;
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_message_becomes_an_event_with_upstream_fields() {
    let broker = shared(Kind::Mosquitto).lock().await;
    let (_dir, mut sub, argon) = argon_with_reader(&mqtt_yaml(broker.port(), "argon-basic", "sensors/basic")).await;
    let publisher = MqttPublisher::new(broker.port());
    let got = send_until_event(
        &mut sub,
        Duration::from_secs(30),
        |i| publisher.send("sensors/basic", format!(r#"{{"n":{i}}}"#)),
        |_| true,
    )
    .await;
    assert_eq!(got["topic"], "sensors/basic");
    assert!(got["body"]["n"].is_number(), "{got}");
    assert_eq!(got["metadata"]["site"], "lab");
    argon.stop().await;
}

/// A burst far beyond the broker's in-flight window (100 here) and the
/// client's request queue: every message becomes an event, none stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_source_keeps_up_with_a_burst() {
    let broker = shared(Kind::Mosquitto).lock().await;
    let (_dir, mut sub, argon) = argon_with_reader(&mqtt_yaml(broker.port(), "argon-burst", "sensors/burst")).await;
    let publisher = MqttPublisher::new(broker.port());
    // The source is subscribed once a first message comes through.
    send_until_event(
        &mut sub,
        Duration::from_secs(30),
        |i| publisher.send("sensors/burst", format!(r#"{{"warm":{i}}}"#)),
        |_| true,
    )
    .await;
    const BURST: usize = 5000;
    for i in 0..BURST {
        publisher.send("sensors/burst", format!(r#"{{"burst":{i}}}"#)).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < BURST {
        let Some(event) = next_event(&mut sub, Duration::from_secs(30)).await else {
            break;
        };
        if let Some(i) = data(&event)["body"]["burst"].as_u64() {
            seen.insert(i);
        }
    }
    assert_eq!(seen.len(), BURST, "events of the burst that reached the bus");
    argon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_message_not_stored_when_argon_dies_is_delivered_after_restart() {
    let broker = shared(Kind::Mosquitto).lock().await;
    let yaml = mqtt_yaml(broker.port(), "argon-crash", "sensors/crash");
    let mut doomed = DoomedArgon::start(yaml.clone());
    let publisher = MqttPublisher::new(broker.port());
    send_until(
        Duration::from_secs(30),
        |i| publisher.send("sensors/crash", format!(r#"{{"n":{i}}}"#)),
        || !doomed.held().is_empty(),
    )
    .await;
    let held = doomed.held()[0]["body"].clone();
    doomed.kill();

    assert_redelivered(&yaml, &["body"], &held, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_source_reconnects_after_a_broker_restart() {
    let mut broker = shared(Kind::Mosquitto).lock().await;
    let (_dir, mut sub, argon) = argon_with_reader(&mqtt_yaml(broker.port(), "argon-restart", "sensors/restart")).await;
    {
        let publisher = MqttPublisher::new(broker.port());
        send_until_event(
            &mut sub,
            Duration::from_secs(30),
            |i| publisher.send("sensors/restart", format!(r#"{{"before":{i}}}"#)),
            |_| true,
        )
        .await;
    }
    broker.restart();
    let publisher = MqttPublisher::new(broker.port());
    let got = send_until_event(
        &mut sub,
        Duration::from_secs(60),
        |i| publisher.send("sensors/restart", format!(r#"{{"after":{i}}}"#)),
        |d| d["body"].get("after").is_some(),
    )
    .await;
    assert!(got["body"]["after"].is_number());
    argon.stop().await;
}

// ---------------------------------------------------------------- redis

fn redis_yaml(address: &str, channel: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: cache
spec:
  redis:
    updates:
      hostAddress: {address}
      channels: [{channel}]
      jsonBody: true
"#
    )
}

fn redis_stream_yaml(address: &str, stream: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: orders
spec:
  redisStream:
    created:
      hostAddress: {address}
      streams: [{stream}]
      consumerGroup: argon
      maxMsgCountPerRead: 5
      metadata:
        shop: main
"#
    )
}

async fn redis_connection(address: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{address}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn redis_send(address: &str, args: &[&str]) {
    // A fresh connection each time: the server may just have restarted.
    if let Ok(client) = redis::Client::open(format!("redis://{address}"))
        && let Ok(mut con) = client.get_multiplexed_async_connection().await
    {
        let _: redis::RedisResult<Value> = redis::cmd(args[0])
            .arg(&args[1..])
            .query_async::<redis::Value>(&mut con)
            .await
            .map(|_| Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_message_becomes_an_event_and_survives_a_server_restart() {
    let mut broker = shared(Kind::Redis).lock().await;
    let address = broker.address();
    let (_dir, mut sub, argon) = argon_with_reader(&redis_yaml(&address, "prices")).await;
    let got = send_until_event(
        &mut sub,
        Duration::from_secs(30),
        |i| {
            let address = address.clone();
            async move { redis_send(&address, &["PUBLISH", "prices", &format!(r#"{{"n":{i}}}"#)]).await }
        },
        |_| true,
    )
    .await;
    assert_eq!(got["channel"], "prices");
    assert!(got["body"]["n"].is_number(), "{got}");

    broker.restart();
    let got = send_until_event(
        &mut sub,
        Duration::from_secs(60),
        |i| {
            let address = address.clone();
            async move { redis_send(&address, &["PUBLISH", "prices", &format!(r#"{{"after":{i}}}"#)]).await }
        },
        |d| d["body"].get("after").is_some(),
    )
    .await;
    assert!(got["body"]["after"].is_number());
    argon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stream_entry_becomes_an_event_and_is_acknowledged() {
    let broker = shared(Kind::Redis).lock().await;
    let address = broker.address();
    let (_dir, mut sub, argon) = argon_with_reader(&redis_stream_yaml(&address, "orders-basic")).await;
    let got = send_until_event(
        &mut sub,
        Duration::from_secs(30),
        |i| {
            let address = address.clone();
            async move { redis_send(&address, &["XADD", "orders-basic", "*", "order", &i.to_string()]).await }
        },
        |_| true,
    )
    .await;
    assert_eq!(got["stream"], "orders-basic");
    assert!(got["values"]["order"].is_string(), "{got}");
    assert_eq!(got["metadata"]["shop"], "main");
    // XACK follows the bus's ack: nothing stays pending once the events
    // are on the bus.
    let mut con = redis_connection(&address).await;
    let pending_is_empty = async {
        loop {
            let (count,): (i64,) = redis::cmd("XPENDING")
                .arg("orders-basic")
                .arg("argon")
                .query_async::<(i64, redis::Value, redis::Value, redis::Value)>(&mut con)
                .await
                .map(|(c, ..)| (c,))
                .unwrap_or((1,));
            if count == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), pending_is_empty)
        .await
        .expect("no entry left pending");
    argon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stream_entry_not_stored_when_argon_dies_is_delivered_after_restart() {
    let broker = shared(Kind::Redis).lock().await;
    let address = broker.address();
    let yaml = redis_stream_yaml(&address, "orders-crash");
    let mut doomed = DoomedArgon::start(yaml.clone());
    send_until(
        Duration::from_secs(30),
        |i| {
            let address = address.clone();
            async move { redis_send(&address, &["XADD", "orders-crash", "*", "order", &i.to_string()]).await }
        },
        || !doomed.held().is_empty(),
    )
    .await;
    let held = doomed.held()[0]["id"].clone();
    doomed.kill();

    let (_dir, mut sub, argon) = argon_with_reader(&yaml).await;
    let event = next_event(&mut sub, Duration::from_secs(20))
        .await
        .expect("the pending entry, again");
    assert_eq!(data(&event)["id"], held, "the entry read before the crash comes first");
    argon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stream_source_reconnects_after_a_server_restart() {
    let mut broker = shared(Kind::Redis).lock().await;
    let address = broker.address();
    let (_dir, mut sub, argon) = argon_with_reader(&redis_stream_yaml(&address, "orders-restart")).await;
    let send = |tag: &'static str| {
        let address = address.clone();
        move |i: usize| {
            let address = address.clone();
            async move { redis_send(&address, &["XADD", "orders-restart", "*", tag, &i.to_string()]).await }
        }
    };
    send_until_event(&mut sub, Duration::from_secs(30), send("before"), |_| true).await;
    broker.restart();
    let got = send_until_event(&mut sub, Duration::from_secs(60), send("after"), |d| {
        d["values"].get("after").is_some()
    })
    .await;
    assert!(got["values"]["after"].is_string());
    argon.stop().await;
}

// ---------------------------------------------------------------- amqp

fn amqp_yaml(port: u16, queue: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: jobs
spec:
  amqp:
    queued:
      url: amqp://guest:guest@127.0.0.1:{port}
      exchangeName: argon-test
      exchangeType: direct
      routingKey: {queue}
      jsonBody: true
      connectionBackoff:
        duration: 200ms
        factor: 2
      queueDeclare:
        name: {queue}
        durable: true
        exclusive: false
        autoDelete: false
"#
    )
}

async fn amqp_send(port: u16, routing_key: &str, body: String) {
    let url = format!("amqp://guest:guest@127.0.0.1:{port}");
    let Ok(connection) = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        let properties = lapin::BasicProperties::default()
            .with_message_id(uuid::Uuid::new_v4().to_string().into())
            .with_delivery_mode(2);
        let _ = channel
            .basic_publish(
                "argon-test".into(),
                routing_key.into(),
                lapin::options::BasicPublishOptions::default(),
                body.as_bytes(),
                properties,
            )
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_message_becomes_an_event_with_upstream_fields() {
    let broker = shared(Kind::RabbitMq).lock().await;
    let port = broker.port();
    let (_dir, mut sub, argon) = argon_with_reader(&amqp_yaml(port, "basic")).await;
    let got = send_until_event(
        &mut sub,
        Duration::from_secs(60),
        |i| amqp_send(port, "basic", format!(r#"{{"job":{i}}}"#)),
        |_| true,
    )
    .await;
    assert_eq!(got["exchange"], "argon-test");
    assert_eq!(got["routingKey"], "basic");
    assert!(got["messageId"].is_string());
    assert!(got["body"]["job"].is_number(), "{got}");
    argon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_message_not_stored_when_argon_dies_is_delivered_after_restart() {
    let broker = shared(Kind::RabbitMq).lock().await;
    let port = broker.port();
    let yaml = amqp_yaml(port, "crash");
    let mut doomed = DoomedArgon::start(yaml.clone());
    send_until(
        Duration::from_secs(60),
        |i| amqp_send(port, "crash", format!(r#"{{"job":{i}}}"#)),
        || !doomed.held().is_empty(),
    )
    .await;
    let held = doomed.held()[0]["messageId"].clone();
    doomed.kill();

    assert_redelivered(&yaml, &["messageId"], &held, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_source_reconnects_after_a_broker_restart() {
    let mut broker = shared(Kind::RabbitMq).lock().await;
    let port = broker.port();
    let (_dir, mut sub, argon) = argon_with_reader(&amqp_yaml(port, "restart")).await;
    send_until_event(
        &mut sub,
        Duration::from_secs(60),
        |i| amqp_send(port, "restart", format!(r#"{{"before":{i}}}"#)),
        |_| true,
    )
    .await;
    broker.restart();
    let got = send_until_event(
        &mut sub,
        Duration::from_secs(120),
        |i| amqp_send(port, "restart", format!(r#"{{"after":{i}}}"#)),
        |d| d["body"].get("after").is_some(),
    )
    .await;
    assert!(got["body"]["after"].is_number());
    argon.stop().await;
}

// ---------------------------------------------------------------- nats

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_message_becomes_an_event_and_survives_a_server_restart() {
    let mut broker = shared(Kind::Nats).lock().await;
    let port = broker.port();
    let yaml = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: bus-watch
spec:
  nats:
    hello:
      url: nats://127.0.0.1:{port}
      subject: greetings.>
      jsonBody: true
      connectionBackoff:
        duration: 100ms
"#
    );
    let (_dir, mut sub, argon) = argon_with_reader(&yaml).await;
    let send = |tag: &'static str| {
        move |i: usize| async move {
            if let Ok(client) = async_nats::connect(format!("nats://127.0.0.1:{port}")).await {
                let _ = client
                    .publish("greetings.world", format!(r#"{{"{tag}":{i}}}"#).into())
                    .await;
                let _ = client.flush().await;
            }
        }
    };
    let got = send_until_event(&mut sub, Duration::from_secs(30), send("before"), |_| true).await;
    assert_eq!(got["subject"], "greetings.world");
    assert!(got["body"]["before"].is_number(), "{got}");
    broker.restart();
    let got = send_until_event(&mut sub, Duration::from_secs(60), send("after"), |d| {
        d["body"].get("after").is_some()
    })
    .await;
    assert!(got["body"]["after"].is_number());
    argon.stop().await;
}

// ---------------------------------------------------------------- file

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_created_in_the_watched_directory_becomes_an_event() {
    let watched = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: inbox
spec:
  file:
    reports:
      eventType: CREATE
      watchPathConfig:
        directory: {}
        pathRegexp: '\.csv$'
"#,
        watched.path().display()
    );
    let (_dir, mut sub, argon) = argon_with_reader(&yaml).await;
    std::fs::write(watched.path().join("ignored.txt"), "x").unwrap();
    std::fs::write(watched.path().join("q3.csv"), "a,b").unwrap();
    let event = next_event(&mut sub, Duration::from_secs(20)).await.expect("an event");
    let got = data(&event);
    assert_eq!(got["op"], "CREATE");
    assert!(got["name"].as_str().unwrap().ends_with("q3.csv"), "{got}");
    assert_eq!(event.context.r#type, "file");
    argon.stop().await;
}

// ---------------------------------------------------------------- nats JetStream

fn jet_stream_yaml(port: u16, stream: &str, consumer: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: ledger
spec:
  nats:
    entries:
      url: nats://127.0.0.1:{port}
      subject: {stream}.>
      jsonBody: true
      connectionBackoff:
        duration: 100ms
      jetStream:
        stream: {stream}
        consumer: {consumer}
        ackWait: 2s
"#
    )
}

/// Creates the file-backed stream `name` on `{name}.>`.
async fn jet_stream_create(port: u16, name: &str) {
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}")).await.unwrap();
    async_nats::jetstream::new(client)
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{name}.>")],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Publishes to JetStream and waits for the stream's ack; a failure (the
/// server restarting) is left to the caller's next attempt.
async fn jet_stream_send(port: u16, subject: &str, body: String) {
    let Ok(client) = async_nats::connect(format!("nats://127.0.0.1:{port}")).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    if let Ok(ack) = js.publish(subject.to_owned(), body.into()).await {
        let _ = ack.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jet_stream_message_not_stored_when_argon_dies_is_delivered_after_restart() {
    let broker = shared(Kind::Nats).lock().await;
    let port = broker.port();
    jet_stream_create(port, "LEDGERCRASH").await;
    let yaml = jet_stream_yaml(port, "LEDGERCRASH", "argon-crash");
    let mut doomed = DoomedArgon::start(yaml.clone());
    // Stored in the stream before any consumer exists: the consumer starts
    // at the stream's beginning, so one message is enough.
    jet_stream_send(port, "LEDGERCRASH.new", r#"{"entry":1}"#.into()).await;
    let held = doomed.first_held(Duration::from_secs(30)).await["body"].clone();
    assert_eq!(held["entry"], 1);
    doomed.kill();

    let (_dir, mut sub, argon) = argon_with_reader(&yaml).await;
    // Redelivered once the ack wait (2 s) of the first delivery has passed.
    let event = next_event(&mut sub, Duration::from_secs(30))
        .await
        .expect("the message, again");
    assert_eq!(data(&event)["body"], held);
    assert_eq!(data(&event)["subject"], "LEDGERCRASH.new");
    // Acknowledged this time: no third delivery.
    assert!(next_event(&mut sub, Duration::from_secs(4)).await.is_none());
    argon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jet_stream_source_reconnects_after_a_server_restart() {
    let mut broker = shared(Kind::Nats).lock().await;
    let port = broker.port();
    jet_stream_create(port, "LEDGERRESTART").await;
    let (_dir, mut sub, argon) = argon_with_reader(&jet_stream_yaml(port, "LEDGERRESTART", "argon-restart")).await;
    jet_stream_send(port, "LEDGERRESTART.x", r#"{"before":1}"#.into()).await;
    let event = next_event(&mut sub, Duration::from_secs(30)).await.expect("before");
    assert_eq!(data(&event)["body"]["before"], 1);
    broker.restart();
    // Published while the source may still be reconnecting: JetStream
    // keeps it, and the consumer reads it once back.
    let sent = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(client) = async_nats::connect(format!("nats://127.0.0.1:{port}")).await
                && let Ok(ack) = async_nats::jetstream::new(client)
                    .publish("LEDGERRESTART.x", r#"{"after":1}"#.into())
                    .await
                && ack.await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(sent.is_ok(), "the restarted server took the message");
    let event = next_event(&mut sub, Duration::from_secs(60)).await.expect("after");
    assert_eq!(data(&event)["body"]["after"], 1);
    argon.stop().await;
}

// ---------------------------------------------------------------- sqs

fn sqs_yaml(port: u16, queue: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: inbox
spec:
  sqs:
    orders:
      region: us-east-1
      queue: {queue}
      endpoint: http://127.0.0.1:{port}
      waitTimeSeconds: 1
      jsonBody: true
      accessKey: {{name: aws, key: accessKey}}
      secretKey: {{name: aws, key: secretKey}}
      metadata:
        team: billing
"#
    )
}

/// Creates `queue` (a received message is invisible for 2 s) and gives its url.
async fn sqs_create(port: u16, queue: &str) -> String {
    sqs_client(port)
        .create_queue()
        .queue_name(queue)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "2")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn sqs_send(port: u16, url: &str, body: &str) -> String {
    sqs_client(port)
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap()
}

/// Messages in the queue, visible or not.
async fn sqs_count(port: u16, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs_client(port)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attributes = out.attributes.unwrap_or_default();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .map(|a| attributes.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_message_becomes_an_event_and_is_deleted_once_stored() {
    let broker = shared(Kind::Moto).lock().await;
    let port = broker.port();
    let url = sqs_create(port, "orders-basic").await;
    let (_dir, mut sub, argon) = argon_with_reader(&sqs_yaml(port, "orders-basic")).await;
    let id = sqs_send(port, &url, r#"{"order":7}"#).await;
    let event = next_event(&mut sub, Duration::from_secs(30)).await.expect("an event");
    let got = data(&event);
    assert_eq!(got["messageId"], id.as_str());
    assert_eq!(got["body"]["order"], 7);
    assert_eq!(got["metadata"]["team"], "billing");
    assert_eq!(event.context.r#type, "sqs");
    let deleted = tokio::time::timeout(Duration::from_secs(10), async {
        while sqs_count(port, &url).await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(deleted.is_ok(), "the message was deleted from the queue");
    argon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_message_not_stored_when_argon_dies_is_delivered_after_restart() {
    let broker = shared(Kind::Moto).lock().await;
    let port = broker.port();
    let url = sqs_create(port, "orders-crash").await;
    let yaml = sqs_yaml(port, "orders-crash");
    let mut doomed = DoomedArgon::start(yaml.clone());
    let id = sqs_send(port, &url, r#"{"order":1}"#).await;
    let held = doomed.first_held(Duration::from_secs(30)).await["messageId"].clone();
    assert_eq!(held, id.as_str());
    doomed.kill();
    // Received, not deleted: still in the queue.
    assert_eq!(sqs_count(port, &url).await, 1);

    let (_dir, mut sub, argon) = argon_with_reader(&yaml).await;
    // Visible again once its visibility timeout (2 s) has passed.
    let event = next_event(&mut sub, Duration::from_secs(30))
        .await
        .expect("the message, again");
    assert_eq!(data(&event)["messageId"], held);
    argon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_source_goes_on_after_a_server_restart() {
    let mut broker = shared(Kind::Moto).lock().await;
    let port = broker.port();
    let url = sqs_create(port, "orders-restart").await;
    let (_dir, mut sub, argon) = argon_with_reader(&sqs_yaml(port, "orders-restart")).await;
    sqs_send(port, &url, r#"{"before":1}"#).await;
    let event = next_event(&mut sub, Duration::from_secs(30)).await.expect("before");
    assert_eq!(data(&event)["body"]["before"], 1);
    // moto keeps its queues in memory: the restarted server has none until
    // the queue is made again; the source retries (with its backoff) meanwhile.
    broker.restart();
    let url = sqs_create(port, "orders-restart").await;
    sqs_send(port, &url, r#"{"after":1}"#).await;
    let event = next_event(&mut sub, Duration::from_secs(60)).await.expect("after");
    assert_eq!(data(&event)["body"]["after"], 1);
    argon.stop().await;
}

/// Starts a fresh Argon with `yaml` on a new bus and waits (up to `within`
/// for each event) for the event whose data at `path` is `held`: the message
/// a killed Argon had received but not stored.
async fn assert_redelivered(yaml: &str, path: &[&str], held: &Value, within: Duration) {
    let (_dir, mut sub, argon) = argon_with_reader(yaml).await;
    let mut seen = Vec::new();
    while let Some(event) = next_event(&mut sub, within).await {
        seen.push(path.iter().fold(data(&event), |v, k| v[*k].clone()));
        if seen.contains(held) {
            break;
        }
    }
    assert!(seen.contains(held), "{held} not redelivered; got {seen:?}");
    argon.stop().await;
}

/// An Argon running `yaml` on a new embedded bus (in the returned temp dir),
/// and a reader of that bus.
async fn argon_with_reader(yaml: &str) -> (tempfile::TempDir, Subscription, Argon) {
    let dir = tempfile::tempdir().unwrap();
    let bus = embedded_bus(dir.path()).await;
    let sub = bus.subscribe(&ConsumerSpec::new("reader")).await.unwrap();
    let argon = Argon::start(yaml, bus.clone()).await;
    (dir, sub, argon)
}
