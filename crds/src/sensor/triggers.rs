//! The trigger kinds Argon models field by field (`k8s`, `argoWorkflow`,
//! `http`, `log`, `nats`, `kafka`, `slack`, `email`, `custom`) and where a
//! trigger's resource comes from (`source`: inline, file, URL, config map,
//! git, S3).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMapKeySelector, SecretKeySelector};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TriggerParameter;
use crate::common::{BasicAuth, S3Artifact, SASLConfig, SchemaRegistryConfig, SecureHeader, TLSConfig};
// Shared with the NATS and GitHub event sources.
use crate::eventsource::{GithubAppCreds, NATSAuth};

/// What to do with a Kubernetes resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum KubernetesResourceOperation {
    /// Create the resource (the default).
    #[default]
    #[serde(rename = "create")]
    Create,
    /// Update the resource.
    #[serde(rename = "update")]
    Update,
    /// Patch the resource (see `patchStrategy`).
    #[serde(rename = "patch")]
    Patch,
    /// Delete the resource.
    #[serde(rename = "delete")]
    Delete,
}

/// Creates, updates, patches or deletes a Kubernetes resource.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandardK8STrigger {
    /// Where the resource comes from.
    pub source: Option<ArtifactLocation>,
    /// create (default), update, patch or delete.
    pub operation: Option<KubernetesResourceOperation>,
    /// Parameters applied to the resource before the operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// Patch type for `patch`, e.g. `application/merge-patch+json` (the default).
    pub patch_strategy: Option<String>,
    /// For `update`: fetch the live resource instead of using the source as is.
    pub live_object: Option<bool>,
}

/// What to do with an Argo workflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ArgoWorkflowOperation {
    /// Submit the workflow (the default).
    #[default]
    #[serde(rename = "submit")]
    Submit,
    /// Submit a workflow from an existing resource (a CronWorkflow or WorkflowTemplate).
    #[serde(rename = "submit-from")]
    SubmitFrom,
    /// Resubmit a workflow.
    #[serde(rename = "resubmit")]
    Resubmit,
    /// Resume a suspended workflow.
    #[serde(rename = "resume")]
    Resume,
    /// Retry a failed workflow.
    #[serde(rename = "retry")]
    Retry,
    /// Suspend a workflow.
    #[serde(rename = "suspend")]
    Suspend,
    /// Terminate a workflow.
    #[serde(rename = "terminate")]
    Terminate,
    /// Stop a workflow.
    #[serde(rename = "stop")]
    Stop,
}

/// Submits or operates on an Argo workflow.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgoWorkflowTrigger {
    /// Where the workflow comes from.
    pub source: Option<ArtifactLocation>,
    /// submit (default), submit-from, resubmit, resume, retry, suspend, terminate or stop.
    pub operation: Option<ArgoWorkflowOperation>,
    /// Parameters applied to the workflow before the operation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// Extra command-line arguments of the operation, e.g. `--serviceaccount`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// Sends an HTTP request.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HTTPTrigger {
    /// URL to send the request to.
    pub url: String,
    /// Key-value pairs, taken from the events, that make up the JSON request body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<TriggerParameter>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// HTTP method; POST when unset.
    pub method: Option<String>,
    /// Parameters applied to this trigger's fields (e.g. dest `url`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// Request timeout in seconds; 60 when unset.
    pub timeout: Option<i64>,
    /// Basic authentication of the request.
    pub basic_auth: Option<BasicAuth>,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request headers whose values are read from secrets or config maps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secure_headers: Vec<SecureHeader>,
    /// Request headers taken from the events (dest is the header name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_headers: Vec<TriggerParameter>,
    /// Host header of the request (virtual hosting).
    pub host: Option<String>,
}

/// Logs the events that fired the trigger.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogTrigger {
    /// Log at most once per this many seconds; every firing when unset.
    pub interval_seconds: Option<u64>,
}

/// Publishes a message to a NATS subject.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATSTrigger {
    /// URL of the NATS server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Subject to publish to.
    pub subject: String,
    /// Key-value pairs, taken from the events, that make up the JSON message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<TriggerParameter>,
    /// Parameters applied to this trigger's fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// TLS settings of the connection.
    pub tls: Option<TLSConfig>,
    /// Authentication to the NATS server.
    pub auth: Option<NATSAuth>,
    /// Argon's own field, not upstream's: publish through JetStream and
    /// wait for the stream's ack (a stream must take `subject`), with the
    /// firing's idempotency key as `Nats-Msg-Id`, so a firing retried or
    /// redelivered is stored once. A core publish when unset.
    pub jet_stream: Option<bool>,
}

/// Publishes a message to a Kafka topic.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTrigger {
    /// Kafka broker URLs, comma separated.
    pub url: String,
    /// Topic to publish to.
    pub topic: String,
    /// Partition to publish to (deprecated; use `partitioningKey`).
    pub partition: Option<i32>,
    /// Parameters applied to this trigger's fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// Number of replica acknowledgements to wait for; 1 when unset.
    pub required_acks: Option<i32>,
    /// Compress messages with snappy.
    pub compress: Option<bool>,
    /// How often to flush batches, in milliseconds; 500 when unset.
    pub flush_frequency: Option<i32>,
    /// TLS settings of the producer.
    pub tls: Option<TLSConfig>,
    /// Key-value pairs, taken from the events, that make up the JSON message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<TriggerParameter>,
    /// Key used to pick the partition of each message.
    pub partitioning_key: Option<String>,
    /// Kafka protocol version of the brokers; 1.0.0 when unset.
    pub version: Option<String>,
    /// SASL authentication of the producer.
    pub sasl: Option<SASLConfig>,
    /// Schema registry used to encode messages as Avro.
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Message headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Message headers whose values are read from secrets or config maps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secure_headers: Vec<SecureHeader>,
}

/// Sends a Slack message.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackTrigger {
    /// Parameters applied to this trigger's fields (e.g. dest `slack.message`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// Secret key holding the Slack token.
    pub slack_token: Option<SecretKeySelector>,
    /// Channel to post to.
    pub channel: Option<String>,
    /// Message text.
    pub message: Option<String>,
    /// Slack attachments, as a JSON array in a string.
    pub attachments: Option<String>,
    /// Slack blocks, as a JSON array in a string.
    pub blocks: Option<String>,
    /// Post into a thread.
    pub thread: Option<SlackThread>,
    /// How the sending application appears.
    pub sender: Option<SlackSender>,
    /// Argon's own field, not upstream's: the base URL of Slack's Web API,
    /// `https://slack.com/api` when unset (a proxy, or a test server).
    #[serde(rename = "apiURL", default)]
    pub api_url: Option<String>,
}

/// Posting Slack messages into threads.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackThread {
    /// Messages with the same key go to the same thread.
    pub message_aggregation_key: Option<String>,
    /// Also post thread messages to the channel.
    pub broadcast_message_to_channel: Option<bool>,
}

/// How the Slack application that sends the message appears.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackSender {
    /// Display name of the application.
    pub username: Option<String>,
    /// Icon: an emoji like `:robot_face:` or an image URL.
    pub icon: Option<String>,
}

/// Sends an email over SMTP.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailTrigger {
    /// Parameters applied to this trigger's fields (e.g. dest `email.to.-1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// SMTP user name.
    pub username: Option<String>,
    /// Secret key holding the SMTP password.
    pub smtp_password: Option<SecretKeySelector>,
    /// SMTP server host.
    pub host: Option<String>,
    /// SMTP server port.
    pub port: Option<i32>,
    /// Recipient addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Sender address.
    pub from: Option<String>,
    /// Subject line.
    pub subject: Option<String>,
    /// Message body.
    pub body: Option<String>,
    /// Argon's own field, not upstream's: how the server's certificate is
    /// verified (`caCertSecret`, `insecureSkipVerify`). Argon always upgrades
    /// with STARTTLS when the server offers it and requires it when a
    /// password is sent; port 465 is TLS from the start.
    pub tls: Option<TLSConfig>,
}

/// Calls a custom trigger gRPC server.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomTrigger {
    /// Address of the gRPC server.
    #[serde(rename = "serverURL")]
    pub server_url: String,
    /// Connect with TLS.
    pub secure: Option<bool>,
    /// Secret key holding the server certificate for a secure connection.
    pub cert_secret: Option<SecretKeySelector>,
    /// Server name expected in the server certificate.
    pub server_name_override: Option<String>,
    /// The trigger specification the server interprets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spec: BTreeMap<String, String>,
    /// Parameters applied to `spec`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TriggerParameter>,
    /// Key-value pairs, taken from the events, sent to the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<TriggerParameter>,
}

/// Where a trigger's resource (a workflow, any Kubernetes object) comes from.
/// One location is set.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    /// An object in an S3-compatible bucket.
    pub s3: Option<S3Artifact>,
    /// The resource as a YAML or JSON string.
    pub inline: Option<String>,
    /// A file on the sensor's file system.
    pub file: Option<FileArtifact>,
    /// A URL to fetch the resource from.
    pub url: Option<URLArtifact>,
    /// A key of a config map.
    pub configmap: Option<ConfigMapKeySelector>,
    /// A file in a git repository.
    pub git: Option<GitArtifact>,
    /// The resource itself, written inline as an object.
    #[serde(default)]
    #[schemars(schema_with = "super::free_object")]
    pub resource: Option<serde_json::Value>,
}

/// A file on the sensor's file system.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileArtifact {
    /// Path of the file.
    pub path: Option<String>,
}

/// A resource fetched over HTTP.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = verify_cert_alias)]
pub struct URLArtifact {
    /// The complete URL.
    pub path: String,
    /// Verify the server's TLS certificate.
    #[serde(default, alias = "verifycert")]
    pub verify_cert: Option<bool>,
}

/// Also accept the `verifycert` spelling used by some published manifests.
fn verify_cert_alias(schema: &mut schemars::Schema) {
    super::add_alias_property(schema, "verifyCert", "verifycert");
}

/// A file in a git repository.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitArtifact {
    /// URL of the repository.
    pub url: String,
    /// Directory the repository is cloned into.
    pub clone_directory: String,
    /// Username and password for the repository.
    pub creds: Option<GitCreds>,
    /// Secret key holding an SSH private key for the repository.
    pub ssh_key_secret: Option<SecretKeySelector>,
    /// Path of the file in the repository.
    pub file_path: String,
    /// Branch to check out.
    pub branch: Option<String>,
    /// Tag to check out.
    pub tag: Option<String>,
    /// Ref to fetch (shallow clone).
    #[serde(rename = "ref", default)]
    pub ref_: Option<String>,
    /// Remote to fetch from; "origin" when unset.
    pub remote: Option<GitRemoteConfig>,
    /// Do not verify the SSH host key.
    pub insecure_ignore_host_key: Option<bool>,
    /// GitHub App credentials for the repository.
    pub github_app: Option<GithubAppCreds>,
}

/// A named git remote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRemoteConfig {
    /// Name of the remote.
    pub name: String,
    /// URLs of the remote; fetching uses the first.
    pub urls: Vec<String>,
}

/// Username and password for a git repository, read from secrets.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitCreds {
    /// Secret key holding the username.
    pub username: Option<SecretKeySelector>,
    /// Secret key holding the password or token.
    pub password: Option<SecretKeySelector>,
}
