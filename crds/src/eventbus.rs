//! The `EventBus` kind: the transport between event sources and sensors.
//! Argon runs its embedded bus or a NATS JetStream server; the other bus
//! kinds of the manifest format load so the manifests stay valid.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, PodSecurityContext, SecretKeySelector, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, ContainerTemplate, KafkaConsumerGroup, Metadata, SASLConfig, TLSConfig};

/// Which bus to use; set exactly one of the fields.
#[serde_with::skip_serializing_none]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "EventBus",
    namespaced,
    status = "EventBusStatus",
    // Upstream's plural: the CRD is eventbus.argoproj.io, the API path .../eventbus.
    plural = "eventbus",
    shortname = "eb"
)]
#[serde(rename_all = "camelCase")]
pub struct EventBusSpec {
    /// A NATS Streaming bus, deployed (`native`) or existing (`exotic`).
    pub nats: Option<NATSBus>,
    /// A NATS JetStream bus deployed for this EventBus.
    pub jetstream: Option<JetStreamBus>,
    /// A Kafka bus.
    pub kafka: Option<KafkaBus>,
    /// An existing NATS JetStream server.
    pub jetstream_exotic: Option<JetStreamConfig>,
}

/// A NATS Streaming bus.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATSBus {
    /// Deploy a NATS Streaming server for this bus.
    pub native: Option<NativeStrategy>,
    /// Use an existing NATS Streaming server.
    pub exotic: Option<NATSConfig>,
}

/// How clients authenticate to a NATS bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthStrategy {
    /// No authentication (default).
    None,
    /// A shared token.
    Token,
    /// Username and password.
    Basic,
    /// JWT credentials.
    Jwt,
}

/// A NATS Streaming server deployed for the bus.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NativeStrategy {
    /// Size of the server StatefulSet (at least 3).
    pub replicas: Option<i32>,
    /// How clients authenticate.
    pub auth: Option<AuthStrategy>,
    /// Storage of the server.
    pub persistence: Option<PersistenceStrategy>,
    /// Settings of the NATS container.
    pub container_template: Option<ContainerTemplate>,
    /// Settings of the metrics container.
    pub metrics_container_template: Option<ContainerTemplate>,
    /// Node labels the pods must be scheduled on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Annotations and labels of the pods.
    pub metadata: Option<Metadata>,
    /// Pod-level security attributes.
    pub security_context: Option<PodSecurityContext>,
    /// Longest time a message is kept, e.g. "72h".
    pub max_age: Option<String>,
    /// Secrets used to pull the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Service account of the StatefulSet.
    pub service_account_name: Option<String>,
    /// Priority class of the pods.
    pub priority_class_name: Option<String>,
    /// Priority value of the pods.
    pub priority: Option<i32>,
    /// Scheduling constraints of the pods.
    pub affinity: Option<Affinity>,
    /// Most messages per channel, 0 for unlimited (default 1000000).
    pub max_msgs: Option<u64>,
    /// Most bytes per channel, e.g. "1GB", 0 for unlimited.
    pub max_bytes: Option<String>,
    /// Most subscriptions per channel, 0 for unlimited (default 1000).
    pub max_subs: Option<u64>,
    /// Largest message payload, e.g. "1MB", 0 for unlimited.
    pub max_payload: Option<String>,
    /// Time as follower without a leader before an election, e.g. "2s".
    pub raft_heartbeat_timeout: Option<String>,
    /// Time as candidate without a leader before an election, e.g. "2s".
    pub raft_election_timeout: Option<String>,
    /// Time a leader goes without a quorum before stepping down, e.g. "1s".
    pub raft_lease_timeout: Option<String>,
    /// Time without an apply before a heartbeat is sent, e.g. "100ms".
    pub raft_commit_timeout: Option<String>,
}

/// An existing NATS Streaming server.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATSConfig {
    /// URL of the server, e.g. "nats://nats:4222".
    pub url: Option<String>,
    /// NATS Streaming cluster id.
    #[serde(rename = "clusterID", default)]
    pub cluster_id: Option<String>,
    /// How clients authenticate.
    pub auth: Option<AuthStrategy>,
    /// Secret key holding the credentials.
    pub access_secret: Option<SecretKeySelector>,
}

/// Storage of a deployed bus server.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceStrategy {
    /// Storage class of the volume claim.
    pub storage_class_name: Option<String>,
    /// Access mode of the volume, e.g. "ReadWriteOnce".
    pub access_mode: Option<String>,
    /// Size of the volume, e.g. "10Gi".
    pub volume_size: Option<Quantity>,
}

/// A NATS JetStream server deployed for the bus.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JetStreamBus {
    /// JetStream version, e.g. "2.10.10".
    pub version: Option<String>,
    /// Size of the server StatefulSet (default 3).
    pub replicas: Option<i32>,
    /// Settings of the NATS container.
    pub container_template: Option<ContainerTemplate>,
    /// Settings of the config reloader container.
    pub reloader_container_template: Option<ContainerTemplate>,
    /// Settings of the metrics container.
    pub metrics_container_template: Option<ContainerTemplate>,
    /// Storage of the server.
    pub persistence: Option<PersistenceStrategy>,
    /// Annotations and labels of the pods.
    pub metadata: Option<Metadata>,
    /// Node labels the pods must be scheduled on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Pod-level security attributes.
    pub security_context: Option<PodSecurityContext>,
    /// Secrets used to pull the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Priority class of the pods.
    pub priority_class_name: Option<String>,
    /// Priority value of the pods.
    pub priority: Option<i32>,
    /// Scheduling constraints of the pods.
    pub affinity: Option<Affinity>,
    /// Service account of the StatefulSet.
    pub service_account_name: Option<String>,
    /// JetStream server settings (`max_memory_store`, `max_file_store`) as text.
    pub settings: Option<String>,
    /// Extra nats-server arguments, e.g. "-D".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_args: Vec<String>,
    /// Stream settings as YAML (maxBytes, maxMsgs, maxAge, replicas, duplicates, retention, discard).
    pub stream_config: Option<String>,
    /// Largest message payload, e.g. "1MB", 0 for unlimited.
    pub max_payload: Option<String>,
}

impl JetStreamBus {
    /// The StatefulSet size: 3 unless set.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(3)
    }
}

/// An existing NATS JetStream server.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JetStreamConfig {
    /// URL of the server, e.g. "nats://localhost:4222".
    pub url: Option<String>,
    /// Secret key holding the credentials.
    pub access_secret: Option<SecretKeySelector>,
    /// Stream settings as YAML.
    pub stream_config: Option<String>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// How clients authenticate.
    pub auth: Option<AuthStrategy>,
}

/// A Kafka bus.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBus {
    /// Broker addresses, comma separated.
    pub url: Option<String>,
    /// Topic name (default `<namespace>-<eventbus name>`).
    pub topic: Option<String>,
    /// Kafka protocol version of the brokers.
    pub version: Option<String>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// SASL authentication of the client.
    pub sasl: Option<SASLConfig>,
    /// Consumer group of the sensors.
    pub consumer_group: Option<KafkaConsumerGroup>,
    /// Producer partitioning: random (default), hash, roundrobin or manual.
    pub partitioner: Option<String>,
    /// Longest wait to fill a consumer batch, e.g. "1s" (default); "0" disables batching.
    pub consumer_batch_max_wait: Option<String>,
}

/// The observed state of an EventBus.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBusStatus {
    /// Latest observations: `Deployed`, `Configured`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The resolved bus configuration clients use.
    pub config: Option<BusConfig>,
}

/// The resolved configuration of a bus.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusConfig {
    /// NATS Streaming connection.
    pub nats: Option<NATSConfig>,
    /// JetStream connection.
    pub jetstream: Option<JetStreamConfig>,
    /// Kafka connection.
    pub kafka: Option<KafkaBus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventsource::tests::{assert_round_trip, corpus_dir};

    #[test]
    fn native_example_round_trips() {
        let bus: EventBus = assert_round_trip(&corpus_dir("eventbus").join("native.yaml"));
        let native = bus.spec.nats.and_then(|n| n.native).expect("nats.native");
        assert_eq!(native.replicas, Some(3));
        assert_eq!(native.auth, Some(AuthStrategy::Token));

        let text = std::fs::read_to_string(corpus_dir("eventbus").join("native.yaml")).unwrap();
        let value: serde_json::Value = serde_norway::from_str(&text).unwrap();
        if let Err(findings) = crate::strict::decode::<EventBusSpec>(&value["spec"]) {
            panic!("native.yaml: {findings:?}");
        }
    }

    #[test]
    fn jetstream_and_exotic_forms_load() {
        let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata: {name: default}
spec:
  jetstream:
    version: "2.10.10"
    replicas: 3
    maxPayload: "2MB"
    streamConfig: |
      maxAge: 72h
    persistence:
      storageClassName: standard
      accessMode: ReadWriteOnce
      volumeSize: 10Gi
    containerTemplate:
      resources:
        requests: {cpu: 10m}
  jetstreamExotic:
    url: nats://nats:4222
    accessSecret: {name: nats, key: token}
  kafka:
    url: kafka:9092
    consumerGroup: {groupName: argo, oldest: true}
"#;
        let bus: EventBus = serde_norway::from_str(yaml).unwrap();
        let js = bus.spec.jetstream.as_ref().unwrap();
        assert_eq!(js.replicas(), 3);
        assert_eq!(
            js.persistence.as_ref().unwrap().volume_size,
            Some(Quantity("10Gi".into()))
        );
        assert_eq!(
            bus.spec.jetstream_exotic.unwrap().url.as_deref(),
            Some("nats://nats:4222")
        );
        assert_eq!(bus.spec.kafka.unwrap().consumer_group.unwrap().group_name, "argo");
        let err = serde_norway::from_str::<EventBus>(
            "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {name: x}\nspec:\n  nats:\n    native:\n      auth: password\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant `password`"), "{err}");
    }
}
