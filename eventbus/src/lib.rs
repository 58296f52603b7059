//! The Argon event bus: carries every event from event sources to sensors.
//!
//! One trait, [`EventBus`], two implementations: [`embedded::EmbeddedBus`]
//! (durable, in process, on disk under the state dir) and
//! [`jetstream::JetStreamBus`] (NATS JetStream). Both guarantee that an event
//! is durably stored when [`EventBus::publish`] returns, and both redeliver
//! what a consumer has not acknowledged.
//!
//! Subjects are `<bus>.<eventSourceName>.<eventName>`; consumers are durable,
//! named from (sensor, dependency) with [`consumer_name`].

pub mod config;
pub mod embedded;
pub mod error;
pub mod event;
pub mod history;
pub mod jetstream;
pub mod subject;
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};

pub use config::{Auth, BusConfig, ClientCert, EmbeddedConfig, JetStreamConfig, StreamSettings, Tls};
pub use error::{Error, Result};
pub use event::{Data, Event, EventContext};
pub use history::{HistoryPage, HistoryQuery, StoredEvent};
pub use subject::{SubjectFilter, consumer_name, kv_bucket_name};

/// Where events go and where sensors read them from.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync {
    /// The bus name: the first token of every subject.
    fn name(&self) -> &str;

    /// Stores the event durably, then returns. A second publish of the same
    /// event id within the dedup window is dropped and reported as duplicate.
    async fn publish(&self, event: &Event) -> Result<PublishAck>;

    /// Opens (creating on first use) the durable consumer and streams its
    /// deliveries. Several subscriptions to the same durable share its work.
    async fn subscribe(&self, consumer: &ConsumerSpec) -> Result<Subscription>;

    /// The key-value bucket (created on first use), for the partially satisfied
    /// conditions of one sensor. Name it with [`kv_bucket_name`].
    async fn kv(&self, bucket: &str) -> Result<Arc<dyn KeyValue>>;

    /// The stored events that match `query`, newest first, a page at a time
    /// (within the bus's retention).
    async fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        let _ = query;
        Err(Error::NoHistory)
    }

    /// The stored event with this id, if the bus still holds it.
    async fn stored_event(&self, id: &str) -> Result<Option<StoredEvent>> {
        let _ = id;
        Err(Error::NoHistory)
    }
}

/// What the bus says about a stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishAck {
    /// Position of the event in the bus.
    pub sequence: u64,
    /// True when the id had already been stored within the dedup window; the
    /// event was not stored a second time.
    pub duplicate: bool,
}

/// Where a new durable consumer starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliverPolicy {
    /// Every event still held by the bus.
    #[default]
    All,
    /// Only events published after the consumer is created.
    New,
}

/// A durable consumer: its name, what it reads and how it is redelivered.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerSpec {
    /// Durable name; see [`consumer_name`]. The consumer keeps its position
    /// under this name across restarts.
    pub durable_name: String,
    /// Which events to receive; empty means every event on the bus.
    pub filters: Vec<SubjectFilter>,
    /// How long a delivery may stay unacknowledged, from when the subscriber
    /// takes it from its [`Subscription`], before it is redelivered.
    pub ack_wait: Duration,
    /// How many times an event is delivered at most; `None` means no limit.
    pub max_deliver: Option<u32>,
    /// How many deliveries may be unacknowledged at once.
    pub max_ack_pending: u32,
    /// Where a new consumer starts; ignored once it exists.
    pub deliver_policy: DeliverPolicy,
}

impl ConsumerSpec {
    /// A consumer with the defaults: every event, ack wait 30 s, 5 deliveries
    /// at most, 1000 unacknowledged at most, starting from the oldest event.
    pub fn new(durable_name: impl Into<String>) -> Self {
        ConsumerSpec {
            durable_name: durable_name.into(),
            filters: Vec::new(),
            ack_wait: Duration::from_secs(30),
            max_deliver: Some(5),
            max_ack_pending: 1000,
            deliver_policy: DeliverPolicy::All,
        }
    }

    /// Adds a filter.
    pub fn filter(mut self, filter: SubjectFilter) -> Self {
        self.filters.push(filter);
        self
    }

    /// Sets the ack wait.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Sets the delivery limit.
    pub fn max_deliver(mut self, max_deliver: Option<u32>) -> Self {
        self.max_deliver = max_deliver;
        self
    }

    /// Sets the start position of a new consumer.
    pub fn deliver_policy(mut self, deliver_policy: DeliverPolicy) -> Self {
        self.deliver_policy = deliver_policy;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        subject::validate_name("durable consumer name", &self.durable_name)?;
        if self.ack_wait < Duration::from_millis(100) {
            return Err(Error::Config(format!(
                "ack_wait {:?} of consumer {:?} is too short (at least 100ms)",
                self.ack_wait, self.durable_name
            )));
        }
        Ok(())
    }
}

/// One delivery of an event to a consumer. Settle it with exactly one of
/// [`ack`](Delivery::ack), [`nak`](Delivery::nak) or [`term`](Delivery::term);
/// a delivery dropped unsettled comes back after the ack wait.
pub struct Delivery {
    /// The event.
    pub event: Event,
    /// The subject it was published on.
    pub subject: String,
    /// Position of the event in the bus.
    pub sequence: u64,
    /// 1 on the first delivery, 2 on the first redelivery, ...
    pub delivered: u64,
    acker: Box<dyn Acker>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.subject)
            .field("sequence", &self.sequence)
            .field("delivered", &self.delivered)
            .field("event", &self.event)
            .finish()
    }
}

impl Delivery {
    pub(crate) fn new(event: Event, subject: String, sequence: u64, delivered: u64, acker: Box<dyn Acker>) -> Self {
        Delivery {
            event,
            subject,
            sequence,
            delivered,
            acker,
        }
    }

    /// The event was handled: never deliver it again to this consumer.
    /// Returns once the bus has recorded the acknowledgement.
    pub async fn ack(self) -> Result<()> {
        self.acker.settle(Settle::Ack).await
    }

    /// Handling failed for now: deliver it again after `delay` (at once when
    /// `None`), within the consumer's `max_deliver`.
    pub async fn nak(self, delay: Option<Duration>) -> Result<()> {
        self.acker.settle(Settle::Nak(delay)).await
    }

    /// The event can never be handled: stop delivering it.
    pub async fn term(self) -> Result<()> {
        self.acker.settle(Settle::Term).await
    }

    /// Still working on it: restart the ack wait.
    pub async fn in_progress(&self) -> Result<()> {
        self.acker.settle(Settle::InProgress).await
    }
}

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settle {
    Ack,
    Nak(Option<Duration>),
    Term,
    InProgress,
}

/// Settles one delivery on the bus it came from.
#[async_trait::async_trait]
pub(crate) trait Acker: Send + Sync {
    async fn settle(&self, how: Settle) -> Result<()>;

    /// The subscriber has just taken the delivery from its subscription:
    /// its ack wait starts now. Until then the bus keeps it from being
    /// redelivered (it is the subscriber's, waiting to be taken).
    fn taken(&self);
}

/// The deliveries of a durable consumer, as a stream. A delivery's ack wait
/// starts when it is taken from the stream; what the bus fetched ahead is
/// kept from redelivery until then. Dropping it stops fetching and hands
/// back at once (a nak, so it counts as a delivery) what the bus had fetched
/// for it but not yet given out; deliveries it gave out and that were not
/// settled come back after their ack wait.
pub struct Subscription {
    rx: mpsc::Receiver<Result<Delivery>>,
    /// To the task that feeds `rx`: the deliveries still in the channel
    /// when the subscription is dropped, which that task hands back with the
    /// rest of what it holds, in the order its bus needs.
    hand_back: Option<oneshot::Sender<Vec<Delivery>>>,
}

impl Subscription {
    /// A subscription fed through `rx`; its feeding task, once `rx` is
    /// closed, receives on `hand_back` what was left in the channel.
    pub(crate) fn new(rx: mpsc::Receiver<Result<Delivery>>, hand_back: oneshot::Sender<Vec<Delivery>>) -> Self {
        Subscription {
            rx,
            hand_back: Some(hand_back),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(delivery))) = &next {
            delivery.acker.taken();
        }
        next
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.rx.close();
        let mut left = Vec::new();
        while let Ok(item) = self.rx.try_recv() {
            left.extend(item.ok());
        }
        if let Some(hand_back) = self.hand_back.take() {
            let _ = hand_back.send(left);
        }
    }
}

/// A value in a key-value bucket with its revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The stored bytes.
    pub value: Bytes,
    /// Increases with every write to the bucket; use it for compare-and-set.
    pub revision: u64,
}

/// A small durable key-value bucket. Keys are `[-/_=.a-zA-Z0-9]+`.
#[async_trait::async_trait]
pub trait KeyValue: Send + Sync {
    /// The value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KvEntry>>;
    /// Stores `value` under `key`; returns the new revision.
    async fn put(&self, key: &str, value: Bytes) -> Result<u64>;
    /// Stores `value` only if `key` is absent, else [`Error::Conflict`].
    async fn create(&self, key: &str, value: Bytes) -> Result<u64>;
    /// Stores `value` only if `key` is at `revision`, else [`Error::Conflict`].
    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64>;
    /// Removes `key` (no error when absent).
    async fn delete(&self, key: &str) -> Result<()>;
    /// All keys, sorted.
    async fn keys(&self) -> Result<Vec<String>>;
}

/// Opens the bus a URL names: `nats://HOST:PORT` (JetStream, defaults) or
/// `embedded:DIR` (the embedded bus, state under DIR).
pub async fn open(url: &str) -> Result<Arc<dyn EventBus>> {
    open_config(BusConfig::from_url(url)?).await
}

/// Opens the bus a configuration describes.
pub async fn open_config(config: BusConfig) -> Result<Arc<dyn EventBus>> {
    Ok(match config {
        BusConfig::Embedded(config) => Arc::new(embedded::EmbeddedBus::open(config).await?),
        BusConfig::JetStream(config) => Arc::new(jetstream::JetStreamBus::connect(config).await?),
    })
}
