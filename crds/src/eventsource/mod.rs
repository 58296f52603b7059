//! The `EventSource` kind: where events come from. A spec holds, per source
//! kind, a map from event name to that event's configuration; sensors address
//! an event by (EventSource name, event name).

mod kinds;
mod validate;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, Service, Template};

pub use kinds::*;
pub use validate::validate;

/// Configuration of events kept as written, for the kinds Argon does not run yet.
pub type RawEvents = BTreeMap<String, serde_json::Value>;

/// What an EventSource listens to, and how its pod is deployed.
#[serde_with::skip_serializing_none]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "EventSource",
    namespaced,
    status = "EventSourceStatus",
    shortname = "es"
)]
#[serde(rename_all = "camelCase")]
pub struct EventSourceSpec {
    /// Event bus the events are published to ("default" when empty).
    pub event_bus_name: Option<String>,
    /// Pod settings used when the event source is deployed on Kubernetes.
    pub template: Option<Template>,
    /// Service exposing the event source's HTTP ports.
    pub service: Option<Service>,
    /// Number of replicas of the event source deployment (default 1).
    pub replicas: Option<i32>,

    /// Plain HTTP endpoints, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub webhook: BTreeMap<String, WebhookEventSource>,
    /// GitHub hooks, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub github: BTreeMap<String, GithubEventSource>,
    /// GitLab hooks, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gitlab: BTreeMap<String, GitlabEventSource>,
    /// Bitbucket (cloud) hooks, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bitbucket: BTreeMap<String, BitbucketEventSource>,
    /// Bitbucket Server hooks, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bitbucketserver: BTreeMap<String, BitbucketServerEventSource>,
    /// Cron schedules and intervals, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calendar: BTreeMap<String, CalendarEventSource>,
    /// Watched files, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub file: BTreeMap<String, FileEventSource>,
    /// NATS subjects, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nats: BTreeMap<String, NATSEventsSource>,
    /// MQTT topics, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mqtt: BTreeMap<String, MQTTEventSource>,
    /// Redis pub/sub channels, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redis: BTreeMap<String, RedisEventSource>,
    /// AMQP exchanges, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub amqp: BTreeMap<String, AMQPEventSource>,
    /// Kafka topics, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka: BTreeMap<String, KafkaEventSource>,
    /// Generic gRPC event source servers, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub generic: BTreeMap<String, GenericEventSource>,

    /// MinIO bucket notifications (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub minio: RawEvents,
    /// Kubernetes resource changes (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource: RawEvents,
    /// AWS SNS notifications (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sns: RawEvents,
    /// AWS SQS queues, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sqs: BTreeMap<String, SQSEventSource>,
    /// GCP Pub/Sub subscriptions (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pub_sub: RawEvents,
    /// HDFS file changes (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hdfs: RawEvents,
    /// Slack events API (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slack: RawEvents,
    /// NetApp StorageGRID notifications (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_grid: RawEvents,
    /// Azure Event Hubs (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub azure_events_hub: RawEvents,
    /// Stripe webhooks (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stripe: RawEvents,
    /// Emitter channels (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub emitter: RawEvents,
    /// NSQ topics (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nsq: RawEvents,
    /// Apache Pulsar topics (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pulsar: RawEvents,
    /// Redis streams, by event name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redis_stream: BTreeMap<String, RedisStreamEventSource>,
    /// Azure Service Bus queues and topics (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub azure_service_bus: RawEvents,
    /// Azure Queue Storage queues (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub azure_queue_storage: RawEvents,
    /// SFTP directory changes (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sftp: RawEvents,
    /// Gerrit hooks (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gerrit: RawEvents,
    /// AlibabaCloud MNS queues (not run by Argon yet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mns: RawEvents,
}

/// The observed state of an EventSource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSourceStatus {
    /// Latest observations: `SourcesProvided`, `Deployed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The kind of an event source: the spec key its events sit under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventSourceKind {
    /// `webhook`: plain HTTP endpoints.
    Webhook,
    /// `github`: GitHub hooks.
    Github,
    /// `gitlab`: GitLab hooks.
    Gitlab,
    /// `bitbucket`: Bitbucket (cloud) hooks.
    Bitbucket,
    /// `bitbucketserver`: Bitbucket Server hooks.
    BitbucketServer,
    /// `calendar`: cron schedules and intervals.
    Calendar,
    /// `file`: watched files.
    File,
    /// `nats`: NATS subjects.
    Nats,
    /// `mqtt`: MQTT topics.
    Mqtt,
    /// `redis`: Redis pub/sub channels.
    Redis,
    /// `redisStream`: Redis streams.
    RedisStream,
    /// `amqp`: AMQP exchanges.
    Amqp,
    /// `sqs`: AWS SQS queues.
    Sqs,
    /// `kafka`: Kafka topics.
    Kafka,
    /// `generic`: generic gRPC event source servers.
    Generic,
    /// A kind the manifest format has but Argon does not run yet; holds its
    /// spec key, e.g. `sqs`.
    Unsupported(String),
}

impl EventSourceKind {
    /// The kinds Argon runs, in the order their events are listed.
    pub const SUPPORTED: [EventSourceKind; 15] = [
        EventSourceKind::Webhook,
        EventSourceKind::Github,
        EventSourceKind::Gitlab,
        EventSourceKind::Bitbucket,
        EventSourceKind::BitbucketServer,
        EventSourceKind::Calendar,
        EventSourceKind::File,
        EventSourceKind::Nats,
        EventSourceKind::Mqtt,
        EventSourceKind::Redis,
        EventSourceKind::RedisStream,
        EventSourceKind::Amqp,
        EventSourceKind::Sqs,
        EventSourceKind::Kafka,
        EventSourceKind::Generic,
    ];

    /// The spec key of the kind, as written in manifests (`webhook`, `pubSub`).
    /// It is also the event `type` Argon publishes.
    pub fn as_str(&self) -> &str {
        match self {
            EventSourceKind::Webhook => "webhook",
            EventSourceKind::Github => "github",
            EventSourceKind::Gitlab => "gitlab",
            EventSourceKind::Bitbucket => "bitbucket",
            EventSourceKind::BitbucketServer => "bitbucketserver",
            EventSourceKind::Calendar => "calendar",
            EventSourceKind::File => "file",
            EventSourceKind::Nats => "nats",
            EventSourceKind::Mqtt => "mqtt",
            EventSourceKind::Redis => "redis",
            EventSourceKind::RedisStream => "redisStream",
            EventSourceKind::Amqp => "amqp",
            EventSourceKind::Sqs => "sqs",
            EventSourceKind::Kafka => "kafka",
            EventSourceKind::Generic => "generic",
            EventSourceKind::Unsupported(key) => key,
        }
    }

    /// The kind for a spec key; keys Argon does not run give `Unsupported`.
    pub fn from_key(key: &str) -> EventSourceKind {
        Self::SUPPORTED
            .into_iter()
            .find(|k| k.as_str() == key)
            .unwrap_or_else(|| EventSourceKind::Unsupported(key.to_string()))
    }

    /// Whether Argon runs events of this kind.
    pub fn is_supported(&self) -> bool {
        !matches!(self, EventSourceKind::Unsupported(_))
    }

    /// Whether events of this kind are received over HTTP (and so need a port).
    pub fn is_webhook_family(&self) -> bool {
        matches!(
            self,
            EventSourceKind::Webhook
                | EventSourceKind::Github
                | EventSourceKind::Gitlab
                | EventSourceKind::Bitbucket
                | EventSourceKind::BitbucketServer
        )
    }
}

impl fmt::Display for EventSourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The configuration of one event, borrowed from the spec, typed by kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventConfig<'a> {
    /// A `webhook` event.
    Webhook(&'a WebhookEventSource),
    /// A `github` event.
    Github(&'a GithubEventSource),
    /// A `gitlab` event.
    Gitlab(&'a GitlabEventSource),
    /// A `bitbucket` event.
    Bitbucket(&'a BitbucketEventSource),
    /// A `bitbucketserver` event.
    BitbucketServer(&'a BitbucketServerEventSource),
    /// A `calendar` event.
    Calendar(&'a CalendarEventSource),
    /// A `file` event.
    File(&'a FileEventSource),
    /// A `nats` event.
    Nats(&'a NATSEventsSource),
    /// An `mqtt` event.
    Mqtt(&'a MQTTEventSource),
    /// A `redis` event.
    Redis(&'a RedisEventSource),
    /// A `redisStream` event.
    RedisStream(&'a RedisStreamEventSource),
    /// An `amqp` event.
    Amqp(&'a AMQPEventSource),
    /// An `sqs` event.
    Sqs(&'a SQSEventSource),
    /// A `kafka` event.
    Kafka(&'a KafkaEventSource),
    /// A `generic` event.
    Generic(&'a GenericEventSource),
    /// A kind Argon does not run yet, kept as written.
    Unsupported(&'a serde_json::Value),
}

impl EventConfig<'_> {
    /// The HTTP endpoint of a webhook-family event.
    pub fn webhook_context(&self) -> Option<&WebhookContext> {
        match self {
            EventConfig::Webhook(c) => Some(&c.context),
            EventConfig::Github(c) => Some(&c.webhook),
            EventConfig::Gitlab(c) => Some(&c.webhook),
            EventConfig::Bitbucket(c) => Some(&c.webhook),
            EventConfig::BitbucketServer(c) => Some(&c.webhook),
            _ => None,
        }
    }
}

/// One event declared by an EventSource: its kind, its name (the key under
/// the kind) and its configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredEvent<'a> {
    /// The kind, i.e. the spec key the event sits under.
    pub kind: EventSourceKind,
    /// The event name, unique within the EventSource; the bus subject's last part.
    pub name: &'a str,
    /// The event's configuration.
    pub config: EventConfig<'a>,
}

impl EventSourceSpec {
    /// Every event this spec declares, as `(kind, name, config)`: first the
    /// kinds Argon runs in [`EventSourceKind::SUPPORTED`] order, then the
    /// others by spec key; within a kind, by event name. Runtime code starts
    /// one listener per entry; validation walks the same list.
    pub fn events(&self) -> Vec<DeclaredEvent<'_>> {
        fn push<'a, T>(
            out: &mut Vec<DeclaredEvent<'a>>,
            kind: EventSourceKind,
            map: &'a BTreeMap<String, T>,
            wrap: fn(&'a T) -> EventConfig<'a>,
        ) {
            out.extend(map.iter().map(|(name, config)| DeclaredEvent {
                kind: kind.clone(),
                name,
                config: wrap(config),
            }));
        }

        let mut out = Vec::new();
        push(&mut out, EventSourceKind::Webhook, &self.webhook, EventConfig::Webhook);
        push(&mut out, EventSourceKind::Github, &self.github, EventConfig::Github);
        push(&mut out, EventSourceKind::Gitlab, &self.gitlab, EventConfig::Gitlab);
        push(
            &mut out,
            EventSourceKind::Bitbucket,
            &self.bitbucket,
            EventConfig::Bitbucket,
        );
        push(
            &mut out,
            EventSourceKind::BitbucketServer,
            &self.bitbucketserver,
            EventConfig::BitbucketServer,
        );
        push(
            &mut out,
            EventSourceKind::Calendar,
            &self.calendar,
            EventConfig::Calendar,
        );
        push(&mut out, EventSourceKind::File, &self.file, EventConfig::File);
        push(&mut out, EventSourceKind::Nats, &self.nats, EventConfig::Nats);
        push(&mut out, EventSourceKind::Mqtt, &self.mqtt, EventConfig::Mqtt);
        push(&mut out, EventSourceKind::Redis, &self.redis, EventConfig::Redis);
        push(
            &mut out,
            EventSourceKind::RedisStream,
            &self.redis_stream,
            EventConfig::RedisStream,
        );
        push(&mut out, EventSourceKind::Amqp, &self.amqp, EventConfig::Amqp);
        push(&mut out, EventSourceKind::Sqs, &self.sqs, EventConfig::Sqs);
        push(&mut out, EventSourceKind::Kafka, &self.kafka, EventConfig::Kafka);
        push(&mut out, EventSourceKind::Generic, &self.generic, EventConfig::Generic);
        for (key, map) in self.unsupported_kinds() {
            push(
                &mut out,
                EventSourceKind::Unsupported(key.to_string()),
                map,
                EventConfig::Unsupported,
            );
        }
        out
    }

    /// The kinds Argon does not run yet, as (spec key, events), by spec key.
    fn unsupported_kinds(&self) -> [(&'static str, &RawEvents); 17] {
        [
            ("azureEventsHub", &self.azure_events_hub),
            ("azureQueueStorage", &self.azure_queue_storage),
            ("azureServiceBus", &self.azure_service_bus),
            ("emitter", &self.emitter),
            ("gerrit", &self.gerrit),
            ("hdfs", &self.hdfs),
            ("minio", &self.minio),
            ("mns", &self.mns),
            ("nsq", &self.nsq),
            ("pubSub", &self.pub_sub),
            ("pulsar", &self.pulsar),
            ("resource", &self.resource),
            ("sftp", &self.sftp),
            ("slack", &self.slack),
            ("sns", &self.sns),
            ("storageGrid", &self.storage_grid),
            ("stripe", &self.stripe),
        ]
    }
}
