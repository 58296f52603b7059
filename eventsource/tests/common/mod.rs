//! Test fixtures: an EventSource runner on a free port over a chosen bus, an
//! HTTP client, and a reader of what reached the bus.

#![allow(dead_code)]

pub mod client;

use std::sync::Arc;
use std::time::Duration;

use argon_crds::eventsource::EventSource;
use argon_crds::manifest::{LoadReport, load_text};
use argon_crds::secret::Secrets;
use argon_eventbus::testing::{NatsServer, free_port};
use argon_eventbus::{BusConfig, ConsumerSpec, Event, EventBus, JetStreamConfig, KeyValue, PublishAck, Subscription};
use argon_eventsource::{EventSourceRunner, RunnerConfig, Running};
use futures::StreamExt as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// Which bus a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusKind {
    /// The embedded bus in a temp dir.
    Embedded,
    /// JetStream on a real nats-server.
    JetStream,
    /// The embedded bus with every publish held forever (a stalled store).
    StalledEmbedded,
    /// The embedded bus with every publish held until [`Gate::open`].
    GatedEmbedded,
}

/// Holds publishes until opened; counts those waiting.
pub struct Gate {
    permits: tokio::sync::Semaphore,
    pub waiting: std::sync::atomic::AtomicUsize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            permits: tokio::sync::Semaphore::new(0),
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Gate {
    /// Lets every held and future publish through.
    pub fn open(&self) {
        self.permits.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }
}

/// Decodes EventSource manifests from YAML text.
pub fn load(yaml: &str) -> Vec<EventSource> {
    let mut report = LoadReport::default();
    load_text("test.yaml", yaml, &mut report);
    assert!(!report.has_errors(), "{:?}", report.diagnostics);
    report.event_sources()
}

/// HMAC-SHA256 of `body` under `key`, as lower-case hex.
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens a bus of the given kind (the nats-server, if any, is returned to
/// keep it alive).
pub async fn open_bus(
    kind: BusKind,
    dir: &std::path::Path,
    publish_timeout: Duration,
) -> (Arc<dyn EventBus>, Option<NatsServer>) {
    open_bus_with_gate(kind, dir, publish_timeout, Arc::default()).await
}

async fn open_bus_with_gate(
    kind: BusKind,
    dir: &std::path::Path,
    publish_timeout: Duration,
    gate: Arc<Gate>,
) -> (Arc<dyn EventBus>, Option<NatsServer>) {
    match kind {
        BusKind::GatedEmbedded => {
            let inner = argon_eventbus::open(&format!("embedded:{}", dir.display()))
                .await
                .unwrap();
            (Arc::new(GatedBus { inner, gate }), None)
        }
        BusKind::Embedded => (
            argon_eventbus::open(&format!("embedded:{}", dir.display()))
                .await
                .unwrap(),
            None,
        ),
        BusKind::StalledEmbedded => {
            let inner = argon_eventbus::open(&format!("embedded:{}", dir.display()))
                .await
                .unwrap();
            (Arc::new(StalledBus(inner)), None)
        }
        BusKind::JetStream => {
            let nats = NatsServer::start();
            let mut config = JetStreamConfig::new(nats.url());
            config.publish_timeout = publish_timeout;
            let bus = argon_eventbus::open_config(BusConfig::JetStream(config)).await.unwrap();
            (bus, Some(nats))
        }
    }
}

/// Writes (name, key, value) secrets as `dir/name/key`, the layout of a
/// mounted Kubernetes secret.
pub fn write_secrets(dir: &std::path::Path, secrets: &[(&str, &str, &str)]) {
    for (name, key, value) in secrets {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join(key), value).unwrap();
    }
}

/// A running EventSource with a client and a reader of the bus.
pub struct Harness {
    pub base: String,
    pub client: client::Client,
    pub bus: Arc<dyn EventBus>,
    pub nats: Option<NatsServer>,
    pub gate: Arc<Gate>,
    running: Option<Running>,
    shutdown: CancellationToken,
    subscription: Option<Subscription>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts the manifest `yaml(port)` on a free port, with `secrets` as
    /// (name, key, value) under a temp secrets dir.
    pub async fn start(
        kind: BusKind,
        yaml: impl Fn(u16) -> String,
        secrets: &[(&str, &str, &str)],
        publish_timeout: Duration,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_secrets(&dir.path().join("secrets"), secrets);
        let gate = Arc::new(Gate::default());
        let (bus, nats) = open_bus_with_gate(kind, &dir.path().join("bus"), publish_timeout, gate.clone()).await;
        let port = free_port();
        let manifests = load(&yaml(port));
        let shutdown = CancellationToken::new();
        let config = RunnerConfig {
            publish_timeout,
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            ..RunnerConfig::default()
        };
        let running = EventSourceRunner::start(
            &manifests,
            bus.clone(),
            &Secrets::new(Some(dir.path().join("secrets"))),
            config,
            shutdown.clone(),
        )
        .await
        .unwrap();
        let subscription = if kind == BusKind::StalledEmbedded {
            None
        } else {
            Some(bus.subscribe(&ConsumerSpec::new("test-reader")).await.unwrap())
        };
        Harness {
            base: format!("http://127.0.0.1:{port}"),
            client: client::Client::new(),
            bus,
            nats,
            gate,
            running: Some(running),
            shutdown,
            subscription,
            _dir: dir,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> client::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, headers: &[(String, String)], body: &str) -> client::Response {
        let mut request = self.client.post(self.url(path)).body(body.to_owned());
        for (k, v) in headers {
            request = request.header(k.clone(), v.clone());
        }
        request.send().await.unwrap()
    }

    /// The next event on the bus (acknowledged), within 10 s.
    pub async fn next_event(&mut self) -> Event {
        let subscription = self.subscription.as_mut().unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("an event within 10s")
            .expect("subscription open")
            .expect("delivery");
        let event = delivery.event.clone();
        delivery.ack().await.unwrap();
        event
    }

    /// Asks the runner to stop, without waiting.
    pub fn begin_stop(&self) {
        self.shutdown.cancel();
    }

    /// Stops the runner and waits for it, within `within`.
    pub async fn stop_within(mut self, within: Duration) {
        self.shutdown.cancel();
        let running = self.running.take().unwrap();
        tokio::time::timeout(within, running.wait())
            .await
            .expect("stopped in time")
            .unwrap();
    }

    /// Stops the runner and waits for it, within 10 s.
    pub async fn stop(self) {
        self.stop_within(Duration::from_secs(10)).await;
    }
}

/// A bus whose publishes never complete.
struct StalledBus(Arc<dyn EventBus>);

#[async_trait::async_trait]
impl EventBus for StalledBus {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn publish(&self, _event: &Event) -> argon_eventbus::Result<PublishAck> {
        std::future::pending().await
    }

    async fn subscribe(&self, consumer: &ConsumerSpec) -> argon_eventbus::Result<Subscription> {
        self.0.subscribe(consumer).await
    }

    async fn kv(&self, bucket: &str) -> argon_eventbus::Result<Arc<dyn KeyValue>> {
        self.0.kv(bucket).await
    }
}

/// A bus whose publishes wait for the gate.
struct GatedBus {
    inner: Arc<dyn EventBus>,
    gate: Arc<Gate>,
}

#[async_trait::async_trait]
impl EventBus for GatedBus {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn publish(&self, event: &Event) -> argon_eventbus::Result<PublishAck> {
        self.gate.waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _permit = self.gate.permits.acquire().await;
        self.inner.publish(event).await
    }

    async fn subscribe(&self, consumer: &ConsumerSpec) -> argon_eventbus::Result<Subscription> {
        self.inner.subscribe(consumer).await
    }

    async fn kv(&self, bucket: &str) -> argon_eventbus::Result<Arc<dyn KeyValue>> {
        self.inner.kv(bucket).await
    }
}
