//! Types shared by EventSource, Sensor and EventBus manifests: secrets and
//! TLS/SASL settings, backoff, the pod template, the service, S3 locations,
//! status conditions and the small scalar wrappers (`Amount`, `Int64OrString`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapKeySelector, EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext,
    ResourceRequirements, SecretKeySelector, SecurityContext, ServicePort, Toleration, Volume, VolumeMount,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A decimal number kept exactly as written (`2`, `0.5`), used for backoff
/// factors and jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(pub serde_json::Number);

impl Amount {
    /// The amount as a float.
    pub fn as_f64(&self) -> f64 {
        self.0.as_f64().unwrap_or_default()
    }
}

impl JsonSchema for Amount {
    fn schema_name() -> Cow<'static, str> {
        "Amount".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A numeric amount, such as a backoff factor (`2`) or jitter (`0.1`).",
            "type": "number",
        })
    }
}

/// A value written either as an integer (nanoseconds, a count) or as a string
/// (`"10s"`, `"3m"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Int64OrString {
    /// The value was written as an integer.
    Int(i64),
    /// The value was written as a string.
    Str(String),
}

impl Int64OrString {
    /// The integer value: the integer itself, or the string parsed as a
    /// base-10 integer (`None` when it is not one, e.g. `"10s"`).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Int64OrString::Int(i) => Some(*i),
            Int64OrString::Str(s) => s.parse().ok(),
        }
    }
}

impl fmt::Display for Int64OrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Int64OrString::Int(i) => write!(f, "{i}"),
            Int64OrString::Str(s) => f.write_str(s),
        }
    }
}

impl Serialize for Int64OrString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Int64OrString::Int(i) => serializer.serialize_i64(*i),
            Int64OrString::Str(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for Int64OrString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Int64OrString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string such as \"10s\"")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Int64OrString::Int(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(Int64OrString::Int)
                    .map_err(|_| E::custom(format!("integer {v} is too large")))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Int64OrString::Str(v.to_string()))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Int64OrString {
    fn schema_name() -> Cow<'static, str> {
        "Int64OrString".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An integer or a string such as \"10s\".",
            "x-kubernetes-int-or-string": true,
        })
    }
}

/// Retry timing for an operation (a connection, a trigger).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Initial wait: nanoseconds as an integer, or a duration string like "1s", "3m".
    pub duration: Option<Int64OrString>,
    /// The wait is multiplied by this factor after each attempt.
    pub factor: Option<Amount>,
    /// Random jitter applied to each wait, as a fraction of it.
    pub jitter: Option<Amount>,
    /// Give up with an error after this many attempts.
    pub steps: Option<i32>,
}

/// Username and password for basic authentication, each read from a secret.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// Secret key holding the username.
    pub username: Option<SecretKeySelector>,
    /// Secret key holding the password.
    pub password: Option<SecretKeySelector>,
}

/// TLS settings for a client connection.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TLSConfig {
    /// Secret key holding the CA certificate used to verify the server.
    pub ca_cert_secret: Option<SecretKeySelector>,
    /// Secret key holding the client certificate.
    pub client_cert_secret: Option<SecretKeySelector>,
    /// Secret key holding the client private key.
    pub client_key_secret: Option<SecretKeySelector>,
    /// Skip verification of the server certificate (testing only).
    pub insecure_skip_verify: Option<bool>,
    /// Use TLS even when no certificate is given.
    pub enabled: Option<bool>,
}

/// SASL authentication for a client (Kafka).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SASLConfig {
    /// SASL mechanism: PLAIN (default), OAUTHBEARER, SCRAM-SHA-256, SCRAM-SHA-512 or GSSAPI.
    pub mechanism: Option<String>,
    /// Secret key holding the user name.
    pub user_secret: Option<SecretKeySelector>,
    /// Secret key holding the password.
    pub password_secret: Option<SecretKeySelector>,
}

impl SASLConfig {
    /// The mechanism to use: the configured one when it is known, else PLAIN.
    pub fn effective_mechanism(&self) -> &str {
        match self.mechanism.as_deref() {
            Some(m @ ("OAUTHBEARER" | "SCRAM-SHA-256" | "SCRAM-SHA-512" | "GSSAPI")) => m,
            _ => "PLAIN",
        }
    }
}

/// SASL/OAUTHBEARER authentication to Amazon MSK with AWS IAM credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AWSMSKIAMConfig {
    /// AWS region of the MSK cluster, e.g. "us-east-1".
    pub region: String,
}

/// A Kafka schema registry, used to decode Avro messages.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRegistryConfig {
    /// URL of the schema registry.
    pub url: String,
    /// ID of the schema to decode with.
    pub schema_id: i32,
    /// Basic authentication for the registry.
    pub auth: Option<BasicAuth>,
}

/// An HTTP header whose value is read from a secret or a config map.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecureHeader {
    /// Header name.
    pub name: Option<String>,
    /// Where the header value is read from.
    pub value_from: Option<ValueFromSource>,
}

/// A value read from a key of a secret or of a config map.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFromSource {
    /// Read the value from this secret key.
    pub secret_key_ref: Option<SecretKeySelector>,
    /// Read the value from this config map key.
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
}

/// An expression that decides, at the event source, whether an event is published.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSourceFilter {
    /// Boolean expression over the event; the event is dropped when it is false.
    pub expression: Option<String>,
}

/// Annotations and labels to put on a generated pod or service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Annotations to add.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels to add.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The pod that runs an EventSource or a Sensor when deployed on Kubernetes.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Annotations and labels of the pod.
    pub metadata: Option<Metadata>,
    /// Service account the pod runs as.
    pub service_account_name: Option<String>,
    /// Settings of the main container.
    pub container: Option<Container>,
    /// Volumes the container can mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Pod-level security attributes.
    pub security_context: Option<PodSecurityContext>,
    /// Node labels the pod must be scheduled on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Secrets used to pull the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Priority class of the pod.
    pub priority_class_name: Option<String>,
    /// Priority value of the pod.
    pub priority: Option<i32>,
    /// Scheduling constraints of the pod.
    pub affinity: Option<Affinity>,
}

/// Settings applied to the main container of an EventSource or Sensor pod.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// CPU and memory requests and limits.
    pub resources: Option<ResourceRequirements>,
    /// Image pull policy: Always, IfNotPresent or Never.
    pub image_pull_policy: Option<String>,
    /// Container-level security attributes.
    pub security_context: Option<SecurityContext>,
    /// Volumes mounted into the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Extra environment variables read from config maps or secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
}

/// Settings of a helper container (event bus pods).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerTemplate {
    /// CPU and memory requests and limits.
    pub resources: Option<ResourceRequirements>,
    /// Image pull policy: Always, IfNotPresent or Never.
    pub image_pull_policy: Option<String>,
    /// Container-level security attributes.
    pub security_context: Option<SecurityContext>,
}

/// The Kubernetes service that exposes an EventSource (webhook family).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Annotations and labels of the service.
    pub metadata: Option<Metadata>,
    /// Ports the service exposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Cluster IP of the service ("None" for a headless service).
    #[serde(rename = "clusterIP", default)]
    pub cluster_ip: Option<String>,
}

/// An S3-compatible bucket and the connection to it.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Artifact {
    /// Endpoint of the S3 service, host:port.
    pub endpoint: String,
    /// The bucket, and optionally an object key in it.
    pub bucket: S3Bucket,
    /// Region of the bucket.
    pub region: Option<String>,
    /// Connect over plain HTTP.
    pub insecure: Option<bool>,
    /// Secret key holding the access key.
    pub access_key: Option<SecretKeySelector>,
    /// Secret key holding the secret key.
    pub secret_key: Option<SecretKeySelector>,
    /// Bucket notification events to listen to, e.g. "s3:ObjectCreated:Put".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Only objects whose key matches this prefix and suffix.
    pub filter: Option<S3Filter>,
    /// User metadata passed along with the event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Secret key holding a CA certificate for the S3 endpoint.
    pub ca_certificate: Option<SecretKeySelector>,
}

/// An S3 bucket and optionally one object key in it.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Bucket {
    /// Object key inside the bucket.
    pub key: Option<String>,
    /// Bucket name.
    pub name: String,
}

/// Constraints on the object keys of bucket notifications.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Filter {
    /// The key must start with this.
    pub prefix: Option<String>,
    /// The key must end with this.
    pub suffix: Option<String>,
}

/// One observation of a resource's state (e.g. `Ready`).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. "Ready".
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// When the condition last changed, RFC 3339.
    pub last_transition_time: Option<String>,
    /// Machine-readable reason of the last change.
    pub reason: Option<String>,
    /// Human-readable details of the last change.
    pub message: Option<String>,
}

/// The status shared by the Argo Events kinds: a list of conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Latest observations of the resource's state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A Kafka consumer group.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaConsumerGroup {
    /// Name of the consumer group.
    pub group_name: String,
    /// A new group starts from the oldest message (true) or the newest (false, default).
    pub oldest: Option<bool>,
    /// Partition rebalance strategy: range (default), sticky or roundrobin.
    pub rebalance_strategy: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_or_string_keeps_its_form() {
        let b: Backoff = serde_json::from_str(r#"{"duration": "10s", "factor": 2, "jitter": 0.2}"#).unwrap();
        assert_eq!(b.duration, Some(Int64OrString::Str("10s".into())));
        assert_eq!(b.factor.as_ref().map(Amount::as_f64), Some(2.0));
        let back = serde_json::to_value(&b).unwrap();
        assert_eq!(back, serde_json::json!({"duration": "10s", "factor": 2, "jitter": 0.2}));

        let n: Int64OrString = serde_norway::from_str("1000000000").unwrap();
        assert_eq!(n, Int64OrString::Int(1_000_000_000));
        assert_eq!(Int64OrString::Str("42".into()).as_i64(), Some(42));
        assert!(serde_json::from_str::<Int64OrString>("true").is_err());
    }

    #[test]
    fn sasl_mechanism_defaults_to_plain() {
        assert_eq!(SASLConfig::default().effective_mechanism(), "PLAIN");
        let s = SASLConfig {
            mechanism: Some("SCRAM-SHA-512".into()),
            ..Default::default()
        };
        assert_eq!(s.effective_mechanism(), "SCRAM-SHA-512");
    }
}
