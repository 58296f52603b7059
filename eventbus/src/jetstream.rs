//! The NATS JetStream bus: one stream per bus, subjects
//! `<bus>.<eventSourceName>.<eventName>`, `Nats-Msg-Id` = event id, durable
//! pull consumers with explicit ack, JetStream key-value buckets for sensor
//! state.
//!
//! While NATS is unreachable `publish` fails within `publish_timeout`; the
//! client reconnects by itself and subscriptions re-create their pull
//! consumer, so publishing and consuming resume without a restart.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy as NatsDeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv;
use async_nats::jetstream::message::{AckKind, Acker as NatsAcker, PublishMessage};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::{Client, ConnectOptions, ServerAddr};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{Auth, Discard, JetStreamConfig, Retention};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::history::{HistoryPage, HistoryQuery, StoredEvent};
use crate::subject::{self, validate_key, validate_name};
use crate::{
    Acker, ConsumerSpec, DeliverPolicy, Delivery, EventBus, KeyValue, KvEntry, PublishAck, Settle, Subscription,
};

/// Most messages one history page looks at (each is a request to the server).
const HISTORY_SCAN: u64 = 10_000;
/// Most messages, back from the newest, looked at for an event by id.
const ID_SCAN: u64 = 100_000;
/// Messages a subscription asks the server for at once.
const PULL_BATCH: usize = 128;
/// Heartbeat of a pull request; two missed ones restart the pull.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);
/// Lifetime of one pull request.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// A subscription stops draining its pull into its local queue while the
/// queue holds this many payload bytes.
const QUEUE_BYTES: usize = 16 << 20;

/// The JetStream bus. Cheap to clone.
#[derive(Clone)]
pub struct JetStreamBus {
    config: Arc<JetStreamConfig>,
    client: Client,
    js: async_nats::jetstream::Context,
}

impl JetStreamBus {
    /// Connects and creates (or updates) the bus's stream. Fails with
    /// [`Error::Unavailable`] when NATS cannot be reached within
    /// `connect_timeout`.
    pub async fn connect(config: JetStreamConfig) -> Result<Self> {
        validate_name("bus name", &config.name)?;
        let addrs = config
            .url
            .split(',')
            .map(|u| u.trim().parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("NATS URL {:?}: {e}", config.url)))?;
        let mut options = ConnectOptions::new()
            .name(format!("argon-{}", config.name))
            .connection_timeout(config.connect_timeout)
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100u64.saturating_mul(1 << attempts.min(5))).min(Duration::from_secs(2))
            })
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS, reconnecting"),
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            });
        options = match &config.auth {
            Auth::None => options,
            Auth::UserPassword { user, password } => options.user_and_password(user.clone(), password.clone()),
            Auth::Token(token) => options.token(token.clone()),
            Auth::NKey(seed) => options.nkey(seed.clone()),
            Auth::CredentialsFile(path) => options
                .credentials_file(path)
                .await
                .map_err(|e| Error::Config(format!("NATS credentials file {}: {e}", path.display())))?,
        };
        let tls = &config.tls;
        // With more than one rustls backend in the build (the workspace
        // unifies features), rustls picks none by itself: ring, as elsewhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some(cert) = &tls.client_cert {
            options = options.add_client_certificate(cert.cert_file.clone(), cert.key_file.clone());
        }
        if tls.require_tls {
            options = options.require_tls(true);
        }
        let client = tokio::time::timeout(config.connect_timeout, options.connect(addrs))
            .await
            .map_err(|_| Error::unavailable(format!("connecting to {} timed out", config.url)))?
            .map_err(|e| connect_err(&config.url, e))?;
        let mut js = async_nats::jetstream::new(client.clone());
        js.set_timeout(config.publish_timeout);
        let bus = JetStreamBus {
            config: Arc::new(config),
            client,
            js,
        };
        bus.ensure_stream().await?;
        Ok(bus)
    }

    /// The underlying NATS client (for benchmarks and diagnostics).
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn stream_config(&self) -> stream::Config {
        let s = &self.config.stream;
        stream::Config {
            name: self.config.name.clone(),
            subjects: vec![format!("{}.*.*", self.config.name)],
            max_messages: s.max_msgs,
            max_bytes: s.max_bytes,
            max_age: s.max_age,
            num_replicas: s.replicas,
            duplicate_window: s.duplicates,
            storage: StorageType::File,
            retention: match s.retention {
                Retention::Limits => RetentionPolicy::Limits,
                Retention::Interest => RetentionPolicy::Interest,
                Retention::WorkQueue => RetentionPolicy::WorkQueue,
            },
            discard: match s.discard {
                Discard::Old => DiscardPolicy::Old,
                Discard::New => DiscardPolicy::New,
            },
            ..Default::default()
        }
    }

    async fn ensure_stream(&self) -> Result<stream::Stream> {
        let config = self.stream_config();
        match self.js.get_stream(&config.name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(js_err)?;
                if (info.config.subjects != config.subjects
                    || info.config.max_messages != config.max_messages
                    || info.config.max_bytes != config.max_bytes
                    || info.config.max_age != config.max_age
                    || info.config.duplicate_window != config.duplicate_window)
                    && let Err(e) = self.js.update_stream(&config).await
                {
                    tracing::warn!(stream = %config.name, error = %e, "could not update stream settings, keeping the existing ones");
                }
                Ok(existing)
            }
            Err(_) => match self.js.create_stream(config.clone()).await {
                Ok(stream) => Ok(stream),
                // Another process may have created it in the meantime.
                Err(create_err) => self.js.get_stream(&config.name).await.map_err(|_| js_err(create_err)),
            },
        }
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>> {
        let mut patterns = subject::patterns(&self.config.name, &spec.filters);
        let mut config = pull::Config {
            durable_name: Some(spec.durable_name.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_deliver: spec.max_deliver.map_or(-1, i64::from),
            max_ack_pending: i64::from(spec.max_ack_pending.max(1)),
            deliver_policy: match spec.deliver_policy {
                DeliverPolicy::All => NatsDeliverPolicy::All,
                DeliverPolicy::New => NatsDeliverPolicy::New,
            },
            ..Default::default()
        };
        // A single filter works on every server; several need nats-server 2.10.
        if patterns.len() == 1 {
            config.filter_subject = patterns.remove(0);
        } else {
            config.filter_subjects = patterns;
        }
        let stream = self.ensure_stream().await?;
        match stream.get_consumer::<pull::Config>(&spec.durable_name).await {
            Ok(existing) => {
                let current = &existing.cached_info().config;
                let changed = current.filter_subject != config.filter_subject
                    || current.filter_subjects != config.filter_subjects
                    || current.ack_wait != config.ack_wait
                    || current.max_deliver != config.max_deliver
                    || current.max_ack_pending != config.max_ack_pending;
                if changed {
                    return stream.update_consumer(config).await.map_err(js_err);
                }
                Ok(existing)
            }
            Err(_) => stream
                .get_or_create_consumer(&spec.durable_name, config)
                .await
                .map_err(js_err),
        }
    }
}

/// A failed first connection: refused credentials and TLS failures are
/// configuration errors (retrying changes nothing); the rest is "unavailable".
fn connect_err(url: &str, e: async_nats::ConnectError) -> Error {
    use async_nats::ConnectErrorKind as Kind;
    let url = url.to_string();
    let reason = e.to_string();
    match e.kind() {
        Kind::AuthorizationViolation | Kind::Authentication => Error::Auth { url, reason },
        Kind::Tls => Error::Tls { url, reason },
        // rustls failures reach async-nats as I/O errors: tell them by their text.
        Kind::Io if is_tls_failure(&reason) => Error::Tls { url, reason },
        _ => Error::unavailable(format!("connecting to {url}: {reason}")),
    }
}

fn is_tls_failure(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "alert", "corrupt message"]
        .iter()
        .any(|marker| lower.contains(marker))
}

fn js_err(e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("timed out")
        || lower.contains("no responders")
        || lower.contains("broken pipe")
        || lower.contains("disconnected")
        || lower.contains("connection")
    {
        Error::unavailable(text)
    } else {
        Error::JetStream(text)
    }
}

#[async_trait::async_trait]
impl EventBus for JetStreamBus {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn publish(&self, event: &Event) -> Result<PublishAck> {
        let subject = subject::subject(&self.config.name, &event.context.source, &event.context.subject);
        let payload = Bytes::from(event.to_json());
        let id = &event.context.id;
        let timeout = self.config.publish_timeout;
        let attempt = async {
            let message = PublishMessage::build().payload(payload.clone()).message_id(id);
            let sent = self.js.send_publish(subject.clone(), message).await;
            match sent {
                Ok(ack) => match ack.await {
                    // The stream is gone (a server that lost its store):
                    // recreate it and try once more.
                    Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                        self.ensure_stream().await?;
                        let message = PublishMessage::build().payload(payload).message_id(id);
                        let ack = self.js.send_publish(subject, message).await.map_err(publish_err)?;
                        ack.await.map_err(publish_err)
                    }
                    other => other.map_err(publish_err),
                },
                Err(e) => Err(publish_err(e)),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(ack)) => Ok(PublishAck {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) if self.client.connection_state() != async_nats::connection::State::Connected => Err(
                Error::unavailable(format!("not connected to NATS at {}", self.config.url)),
            ),
            Err(_) => Err(Error::Timeout { timeout }),
        }
    }

    async fn subscribe(&self, spec: &ConsumerSpec) -> Result<Subscription> {
        spec.validate()?;
        let consumer = self.consumer(spec).await?;
        let (tx, rx) = mpsc::channel(1);
        let (hand_back, handed_back) = oneshot::channel();
        tokio::spawn(pull_loop(self.clone(), spec.clone(), consumer, tx, handed_back));
        Ok(Subscription::new(rx, hand_back))
    }

    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        let stream = self.ensure_stream().await?;
        let limit = query.page_size();
        let state = stream_state(&stream).await?;
        let lower = state.first_sequence.max(1);
        let mut seq = query
            .before
            .map_or(state.last_sequence, |b| b.saturating_sub(1))
            .min(state.last_sequence);
        let mut page = HistoryPage::default();
        let mut scanned = 0;
        while seq >= lower && seq > 0 {
            if scanned >= HISTORY_SCAN {
                page.next = Some(seq + 1);
                break;
            }
            scanned += 1;
            let Some(message) = message_at(&stream, seq).await? else {
                seq -= 1;
                continue;
            };
            let stored = stored_event(&message);
            if let Some(since) = query.since
                && stored.as_ref().is_some_and(|s| s.stored_at < since)
            {
                break;
            }
            if let Some(stored) = stored.filter(|s| query.matches(&self.config.name, &s.subject)) {
                page.events.push(stored);
                if page.events.len() == limit {
                    page.next = (seq > lower).then_some(seq);
                    break;
                }
            }
            seq -= 1;
        }
        Ok(page)
    }

    /// Looks from the newest message back, by the `Nats-Msg-Id` header (the
    /// event id), through at most `ID_SCAN` messages.
    async fn stored_event(&self, id: &str) -> Result<Option<StoredEvent>> {
        let stream = self.ensure_stream().await?;
        let state = stream_state(&stream).await?;
        let lower = state
            .first_sequence
            .max(1)
            .max(state.last_sequence.saturating_sub(ID_SCAN));
        let mut seq = state.last_sequence;
        while seq >= lower && seq > 0 {
            if let Some(message) = message_at(&stream, seq).await?
                && message
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .is_some_and(|v| v.as_str() == id)
            {
                return Ok(stored_event(&message));
            }
            seq -= 1;
        }
        Ok(None)
    }

    async fn kv(&self, bucket: &str) -> Result<Arc<dyn KeyValue>> {
        validate_name("key-value bucket", bucket)?;
        let store = match self.js.get_key_value(bucket).await {
            Ok(store) => store,
            Err(_) => {
                // The stream behind a bucket, as the KV API lays it out. Built
                // here rather than with `create_key_value`, whose account query
                // nats-server 2.9 does not answer in the shape it expects.
                let config = stream::Config {
                    name: format!("KV_{bucket}"),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 1,
                    storage: StorageType::File,
                    num_replicas: self.config.stream.replicas,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: DiscardPolicy::New,
                    ..Default::default()
                };
                if let Err(e) = self.js.create_stream(config).await {
                    tracing::debug!(bucket, error = %e, "bucket creation raced or failed");
                }
                self.js.get_key_value(bucket).await.map_err(js_err)?
            }
        };
        Ok(Arc::new(JetStreamKv { store }))
    }
}

/// The first and last sequence of the stream, as of now.
async fn stream_state(stream: &stream::Stream) -> Result<stream::State> {
    let mut stream = stream.clone();
    Ok(stream.info().await.map_err(js_err)?.state.clone())
}

/// The message at `seq`; `None` when it was removed.
async fn message_at(
    stream: &stream::Stream,
    seq: u64,
) -> Result<Option<async_nats::jetstream::message::StreamMessage>> {
    match stream.get_raw_message(seq).await {
        Ok(message) => Ok(Some(message)),
        Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(js_err(e)),
    }
}

/// A stream message as a history entry; `None` when it is not an event.
fn stored_event(message: &async_nats::jetstream::message::StreamMessage) -> Option<StoredEvent> {
    let nanos = message.time.unix_timestamp_nanos();
    Some(StoredEvent {
        sequence: message.sequence,
        subject: message.subject.to_string(),
        stored_at: chrono::DateTime::from_timestamp_nanos(i64::try_from(nanos).unwrap_or(i64::MAX)),
        event: Event::from_json(&message.payload).ok()?,
    })
}

fn publish_err(e: async_nats::jetstream::context::PublishError) -> Error {
    match e.kind() {
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::StreamNotFound => {
            Error::unavailable(e)
        }
        _ => Error::JetStream(e.to_string()),
    }
}

/// Pulls from the durable consumer into the subscription's channel until it is
/// dropped, re-creating the pull (and the consumer) after any failure; then
/// hands back what it held.
async fn pull_loop(
    bus: JetStreamBus,
    spec: ConsumerSpec,
    consumer: async_nats::jetstream::consumer::Consumer<pull::Config>,
    tx: mpsc::Sender<Result<Delivery>>,
    handed_back: oneshot::Receiver<Vec<Delivery>>,
) {
    let mut queue = VecDeque::new();
    let pull = feed(&bus, &spec, consumer, tx, &mut queue).await;
    // What the pull had already received joins the rest. The pull goes
    // first, and a flush waits until the server has seen it go, so that the
    // server drops its pending request rather than send the naked messages
    // straight back into it; then they are handed back in order.
    let mut received = Vec::new();
    if let Some(mut pull) = pull {
        while let Some(Some(Ok(message))) = pull.next().now_or_never() {
            received.push(message);
        }
        drop(pull);
        let _ = bus.client.flush().await;
    }
    for delivery in handed_back.await.unwrap_or_default() {
        let _ = delivery.nak(None).await;
    }
    for (delivery, _, _) in queue {
        let _ = delivery.nak(None).await;
    }
    for message in received {
        let _ = message.ack_with(AckKind::Nak(None)).await;
    }
}

/// Feeds the subscription until it is dropped; the pull open at that time.
///
/// The server starts a message's ack wait when it sends it, and a pull
/// fetches up to `PULL_BATCH` ahead of the subscriber. So that a subscriber
/// which takes a while over each event still gets (nearly) the whole ack
/// wait from when it takes an event, fetched messages are drained into
/// `queue` at once, and those that wait there, or in the subscription's
/// channel, have their ack wait restarted (`+WPI`) every quarter of it, and
/// once more when taken if they waited more than an eighth
/// ([`Acker::taken`]). The queue holds at most the consumer's
/// `max_ack_pending` messages (the server enforces it) and stops taking more
/// at `QUEUE_BYTES`.
async fn feed(
    bus: &JetStreamBus,
    spec: &ConsumerSpec,
    mut consumer: async_nats::jetstream::consumer::Consumer<pull::Config>,
    tx: mpsc::Sender<Result<Delivery>>,
    queue: &mut VecDeque<(Delivery, Arc<Held>, usize)>,
) -> Option<pull::Stream> {
    let mut backoff = Duration::from_millis(100);
    let beat = spec.ack_wait / 4;
    let mut queued_bytes = 0;
    // The one in the channel (capacity 1), until the subscriber takes it.
    let mut in_channel: Option<Arc<Held>> = None;
    loop {
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .heartbeat(PULL_HEARTBEAT)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        match messages {
            Ok(mut messages) => {
                let mut ticker = tokio::time::interval_at(Instant::now() + beat, beat);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        next = messages.next(), if queued_bytes < QUEUE_BYTES => match next {
                            Some(Ok(message)) => {
                                backoff = Duration::from_millis(100);
                                let size = message.payload.len();
                                if let Some((delivery, held)) = to_delivery(message, spec.ack_wait).await {
                                    queue.push_back((delivery, held, size));
                                    queued_bytes += size;
                                }
                            }
                            Some(Err(e)) => {
                                tracing::warn!(consumer = %spec.durable_name, error = %e, "pull interrupted, restarting it");
                                break;
                            }
                            None => break,
                        },
                        room = tx.reserve(), if !queue.is_empty() => {
                            let Ok(room) = room else { return Some(messages) };
                            let Some((delivery, held, size)) = queue.pop_front() else { continue };
                            queued_bytes -= size;
                            room.send(Ok(delivery));
                            in_channel = Some(held);
                        }
                        _ = ticker.tick(), if !queue.is_empty() || in_channel.as_ref().is_some_and(|h| !h.is_taken()) => {
                            let waiting = queue.iter().map(|(_, held, _)| held).chain(in_channel.iter().filter(|h| !h.is_taken()));
                            for held in waiting {
                                held.keep_if_older(beat).await;
                            }
                        }
                        () = tx.closed() => return Some(messages),
                    }
                }
            }
            Err(e) => tracing::warn!(consumer = %spec.durable_name, error = %e, "pull failed, retrying"),
        }
        // What was fetched is still the subscriber's, in order.
        while !queue.is_empty() {
            let Ok(room) = tx.reserve().await else {
                return None;
            };
            if let Some((delivery, held, size)) = queue.pop_front() {
                queued_bytes -= size;
                room.send(Ok(delivery));
                in_channel = Some(held);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = tx.closed() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
        match bus.consumer(spec).await {
            Ok(fresh) => consumer = fresh,
            Err(e) => tracing::warn!(consumer = %spec.durable_name, error = %e, "consumer not reachable, retrying"),
        }
    }
}

async fn to_delivery(message: async_nats::jetstream::Message, ack_wait: Duration) -> Option<(Delivery, Arc<Held>)> {
    let (sequence, delivered) = match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered.max(1) as u64),
        Err(e) => {
            tracing::warn!(error = %e, "message without JetStream metadata skipped");
            return None;
        }
    };
    let (message, acker) = message.split();
    match Event::from_json(&message.payload) {
        Ok(event) => {
            let held = Arc::new(Held {
                acker,
                ack_wait,
                taken: AtomicBool::new(false),
                touched: Mutex::new(Instant::now()),
            });
            let delivery = Delivery::new(
                event,
                message.subject.to_string(),
                sequence,
                delivered,
                Box::new(JetStreamAcker(held.clone())),
            );
            Some((delivery, held))
        }
        Err(e) => {
            tracing::warn!(subject = %message.subject, sequence, error = %e, "undecodable event terminated");
            let _ = acker.ack_with(AckKind::Term).await;
            None
        }
    }
}

/// A fetched message, shared by its delivery and the task that feeds the
/// subscription, which keeps it in progress until the subscriber takes it.
struct Held {
    acker: NatsAcker,
    ack_wait: Duration,
    taken: AtomicBool,
    /// When its ack wait last (re)started: fetched, or told `+WPI`.
    touched: Mutex<Instant>,
}

impl Held {
    fn is_taken(&self) -> bool {
        self.taken.load(Ordering::Acquire)
    }

    fn touched(&self) -> Instant {
        *self.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Restarts the ack wait if it last started more than `age` ago.
    async fn keep_if_older(&self, age: Duration) {
        if self.touched().elapsed() >= age && self.acker.ack_with(AckKind::Progress).await.is_ok() {
            *self.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        }
    }
}

struct JetStreamAcker(Arc<Held>);

#[async_trait::async_trait]
impl Acker for JetStreamAcker {
    async fn settle(&self, how: Settle) -> Result<()> {
        let acker = &self.0.acker;
        let result = match how {
            // Confirmed, so an acked event is not redelivered after a restart.
            Settle::Ack => acker.double_ack().await,
            Settle::Nak(delay) => acker.ack_with(AckKind::Nak(delay)).await,
            Settle::Term => acker.ack_with(AckKind::Term).await,
            Settle::InProgress => acker.ack_with(AckKind::Progress).await,
        };
        result.map_err(js_err)
    }

    /// Marks it taken, so the feeding task stops keeping it; a message that
    /// waited more than an eighth of its ack wait since the last `+WPI`
    /// gets one more, so the subscriber has (nearly) all of it.
    fn taken(&self) {
        let held = &self.0;
        held.taken.store(true, Ordering::Release);
        if held.touched().elapsed() > held.ack_wait / 8
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let held = held.clone();
            runtime.spawn(async move { held.keep_if_older(held.ack_wait / 8).await });
        }
    }
}

/// A JetStream key-value bucket.
struct JetStreamKv {
    store: kv::Store,
}

#[async_trait::async_trait]
impl KeyValue for JetStreamKv {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>> {
        validate_key(key)?;
        let entry = self.store.entry(key).await.map_err(js_err)?;
        Ok(entry.filter(|e| e.operation == kv::Operation::Put).map(|e| KvEntry {
            value: e.value,
            revision: e.revision,
        }))
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64> {
        validate_key(key)?;
        self.store.put(key, value).await.map_err(js_err)
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64> {
        validate_key(key)?;
        self.store.create(key, value).await.map_err(|e| match e.kind() {
            kv::CreateErrorKind::AlreadyExists => Error::Conflict {
                key: key.to_owned(),
                expected: None,
            },
            _ => js_err(e),
        })
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64> {
        validate_key(key)?;
        self.store
            .update(key, value, revision)
            .await
            .map_err(|e| match e.kind() {
                kv::UpdateErrorKind::WrongLastRevision => Error::Conflict {
                    key: key.to_owned(),
                    expected: Some(revision),
                },
                _ => js_err(e),
            })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.store.delete(key).await.map_err(js_err)
    }

    async fn keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(js_err)?
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(js_err)?;
        keys.sort();
        Ok(keys)
    }
}
