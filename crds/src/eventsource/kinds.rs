//! The configuration of each event source kind Argon runs: one plain serde
//! struct per kind, named after the manifest key it sits under.
//!
//! Longer than most files because it is upstream's schema of the event source
//! kinds, field for field, one struct per kind: one table, read top to
//! bottom.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::SecretKeySelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AWSMSKIAMConfig, Backoff, BasicAuth, EventSourceFilter, KafkaConsumerGroup, SASLConfig, SchemaRegistryConfig,
    TLSConfig,
};

/// The HTTP endpoint an event source serves (the webhook family).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookContext {
    /// URL path the events are posted to, e.g. "/example".
    pub endpoint: String,
    /// HTTP method accepted on the endpoint, e.g. "POST".
    pub method: String,
    /// Port the HTTP server listens on, as a string, e.g. "12000".
    pub port: String,
    /// Public URL of this server, used when registering hooks with the provider.
    pub url: Option<String>,
    /// Secret key holding the TLS certificate of the server.
    pub server_cert_secret: Option<SecretKeySelector>,
    /// Secret key holding the TLS private key of the server.
    pub server_key_secret: Option<SecretKeySelector>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Secret key holding a bearer token that requests must present.
    pub auth_secret: Option<SecretKeySelector>,
    /// Largest accepted request body in bytes (default 1048576); larger requests are rejected.
    pub max_payload_size: Option<i64>,
    /// Username and password that requests must present (basic authentication).
    pub basic_auth: Option<BasicAuth>,
}

impl WebhookContext {
    /// The default largest request body: 1 MiB.
    pub const DEFAULT_MAX_PAYLOAD_SIZE: i64 = 1_048_576;

    /// The largest accepted request body in bytes.
    pub fn max_payload_size(&self) -> i64 {
        self.max_payload_size.unwrap_or(Self::DEFAULT_MAX_PAYLOAD_SIZE)
    }
}

/// A plain HTTP endpoint: each request becomes an event.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", from = "WebhookEventSourceFields")]
pub struct WebhookEventSource {
    /// The endpoint served.
    #[serde(flatten)]
    pub context: WebhookContext,
    /// Expression deciding which requests become events.
    pub filter: Option<EventSourceFilter>,
}

/// The manifest form of [`WebhookEventSource`]: the same fields, side by
/// side. Decoding through it (rather than through `flatten`) keeps the field
/// path in type errors (`spec.webhook.example.port`, not `spec.webhook.example`).
#[serde_with::skip_serializing_none]
#[doc(hidden)]
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEventSourceFields {
    /// URL path the events are posted to, e.g. "/example".
    pub endpoint: String,
    /// HTTP method accepted on the endpoint, e.g. "POST".
    pub method: String,
    /// Port the HTTP server listens on, as a string, e.g. "12000".
    pub port: String,
    /// Public URL of this server, used when registering hooks with the provider.
    pub url: Option<String>,
    /// Secret key holding the TLS certificate of the server.
    pub server_cert_secret: Option<SecretKeySelector>,
    /// Secret key holding the TLS private key of the server.
    pub server_key_secret: Option<SecretKeySelector>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Secret key holding a bearer token that requests must present.
    pub auth_secret: Option<SecretKeySelector>,
    /// Largest accepted request body in bytes (default 1048576); larger requests are rejected.
    pub max_payload_size: Option<i64>,
    /// Username and password that requests must present (basic authentication).
    pub basic_auth: Option<BasicAuth>,
    /// Expression deciding which requests become events.
    pub filter: Option<EventSourceFilter>,
}

impl From<WebhookEventSourceFields> for WebhookEventSource {
    fn from(f: WebhookEventSourceFields) -> Self {
        WebhookEventSource {
            context: WebhookContext {
                endpoint: f.endpoint,
                method: f.method,
                port: f.port,
                url: f.url,
                server_cert_secret: f.server_cert_secret,
                server_key_secret: f.server_key_secret,
                metadata: f.metadata,
                auth_secret: f.auth_secret,
                max_payload_size: f.max_payload_size,
                basic_auth: f.basic_auth,
            },
            filter: f.filter,
        }
    }
}

/// GitHub repository or organization hooks.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubEventSource {
    /// Deprecated and unused: the hook id.
    pub id: Option<i64>,
    /// The endpoint GitHub delivers to.
    pub webhook: WebhookContext,
    /// Deprecated: the repository owner; use `repositories`.
    pub owner: Option<String>,
    /// Deprecated: the repository name; use `repositories`.
    pub repository: Option<String>,
    /// GitHub events to subscribe to, e.g. "push", or "*" for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Secret key holding a GitHub API token, used to create the hooks.
    pub api_token: Option<SecretKeySelector>,
    /// Secret key holding the hook secret used to verify deliveries.
    pub webhook_secret: Option<SecretKeySelector>,
    /// Let GitHub skip TLS verification when delivering.
    pub insecure: Option<bool>,
    /// Whether the created hook is active.
    pub active: Option<bool>,
    /// Content type of deliveries: "json" or "form".
    pub content_type: Option<String>,
    /// API base URL (GitHub Enterprise).
    #[serde(rename = "githubBaseURL", default)]
    pub github_base_url: Option<String>,
    /// Upload URL (GitHub Enterprise).
    #[serde(rename = "githubUploadURL", default)]
    pub github_upload_url: Option<String>,
    /// Delete the created hooks when the event source stops.
    pub delete_hook_on_finish: Option<bool>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Repositories to hook, grouped by owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<OwnedRepositories>,
    /// Organizations to hook (organization-level hooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    /// GitHub App credentials, an alternative to `apiToken`.
    pub github_app: Option<GithubAppCreds>,
    /// Expression deciding which deliveries become events.
    pub filter: Option<EventSourceFilter>,
}

impl GithubEventSource {
    /// The repositories to hook, including the deprecated `owner`/`repository` form.
    pub fn owned_repositories(&self) -> Vec<OwnedRepositories> {
        if !self.repositories.is_empty() {
            return self.repositories.clone();
        }
        match (&self.owner, &self.repository) {
            (Some(owner), Some(repo)) if !owner.is_empty() && !repo.is_empty() => {
                vec![OwnedRepositories {
                    owner: Some(owner.clone()),
                    names: vec![repo.clone()],
                }]
            }
            _ => Vec::new(),
        }
    }
}

/// Repositories of one GitHub owner.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnedRepositories {
    /// Organization or user name.
    pub owner: Option<String>,
    /// Repository names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// GitHub App credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GithubAppCreds {
    /// Secret key holding the app's private key.
    pub private_key: SecretKeySelector,
    /// The GitHub App ID.
    #[serde(rename = "appID")]
    pub app_id: i64,
    /// The installation ID of the app.
    #[serde(rename = "installationID")]
    pub installation_id: i64,
}

/// GitLab project or group hooks.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitlabEventSource {
    /// The endpoint GitLab delivers to.
    pub webhook: WebhookContext,
    /// Deprecated: one project id; use `projects`.
    #[serde(rename = "projectID", default)]
    pub project_id: Option<String>,
    /// GitLab events to subscribe to, e.g. "PushEvents".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Secret key holding a GitLab API token, used to create the hooks.
    pub access_token: Option<SecretKeySelector>,
    /// Let GitLab verify TLS when delivering.
    #[serde(rename = "enableSSLVerification", default)]
    pub enable_ssl_verification: Option<bool>,
    /// API base URL, e.g. "https://gitlab.com".
    #[serde(rename = "gitlabBaseURL", default)]
    pub gitlab_base_url: Option<String>,
    /// Delete the created hooks when the event source stops.
    pub delete_hook_on_finish: Option<bool>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Project ids or paths ("group/project") to hook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Secret key holding the token GitLab sends with each delivery.
    pub secret_token: Option<SecretKeySelector>,
    /// Expression deciding which deliveries become events.
    pub filter: Option<EventSourceFilter>,
    /// Group ids or names to hook (group-level hooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Bitbucket (cloud) repository hooks.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketEventSource {
    /// Delete the created hooks when the event source stops.
    pub delete_hook_on_finish: Option<bool>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The endpoint Bitbucket delivers to.
    pub webhook: WebhookContext,
    /// Credentials used to create the hooks.
    pub auth: BitbucketAuth,
    /// Bitbucket events to subscribe to, e.g. "repo:push".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Deprecated: the repository owner; use `repositories`.
    pub owner: Option<String>,
    /// Deprecated: the project key; use `repositories`.
    pub project_key: Option<String>,
    /// Deprecated: the repository slug; use `repositories`.
    pub repository_slug: Option<String>,
    /// Repositories to hook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<BitbucketRepository>,
    /// Expression deciding which deliveries become events.
    pub filter: Option<EventSourceFilter>,
}

/// A Bitbucket repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketRepository {
    /// Owner of the repository.
    pub owner: String,
    /// URL-friendly name of the repository.
    pub repository_slug: String,
}

/// Credentials for the Bitbucket API: basic or OAuth.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketAuth {
    /// Username and password.
    pub basic: Option<BitbucketBasicAuth>,
    /// Secret key holding an OAuth bearer token.
    #[serde(rename = "oauthToken", default)]
    pub oauth_token: Option<SecretKeySelector>,
}

/// Bitbucket username and password, each read from a secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketBasicAuth {
    /// Secret key holding the username.
    pub username: SecretKeySelector,
    /// Secret key holding the password.
    pub password: SecretKeySelector,
}

/// Bitbucket Server (self-hosted) repository or project hooks.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketServerEventSource {
    /// The endpoint Bitbucket Server delivers to.
    pub webhook: WebhookContext,
    /// Deprecated: the project key; use `repositories`.
    pub project_key: Option<String>,
    /// Deprecated: the repository slug; use `repositories`.
    pub repository_slug: Option<String>,
    /// Projects whose every repository is hooked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Repositories to hook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<BitbucketServerRepository>,
    /// Bitbucket Server events to subscribe to, e.g. "repo:refs_changed".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Skip `repo:refs_changed` for branches that have an open pull request.
    #[serde(rename = "skipBranchRefsChangedOnOpenPR")]
    pub skip_branch_refs_changed_on_open_pr: Option<bool>,
    /// Publish one event per change of a `repo:refs_changed` delivery.
    pub one_event_per_change: Option<bool>,
    /// Secret key holding an API token, used to create the hooks.
    pub access_token: Option<SecretKeySelector>,
    /// Secret key holding the hook secret used to verify deliveries (HMAC).
    pub webhook_secret: Option<SecretKeySelector>,
    /// API base URL, e.g. "https://bitbucket.example.com/rest".
    #[serde(rename = "bitbucketserverBaseURL", default)]
    pub bitbucketserver_base_url: Option<String>,
    /// Delete the created hooks when the event source stops.
    pub delete_hook_on_finish: Option<bool>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Expression deciding which deliveries become events.
    pub filter: Option<EventSourceFilter>,
    /// TLS settings of the API client.
    pub tls: Option<TLSConfig>,
    /// How often to check that the hooks still exist, e.g. "1m" (default).
    pub check_interval: Option<String>,
}

/// A Bitbucket Server repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketServerRepository {
    /// Key of the project.
    pub project_key: String,
    /// Slug of the repository.
    pub repository_slug: String,
}

/// Time-based events: a cron schedule or a fixed interval.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarEventSource {
    /// Cron expression (5 fields) or descriptor such as "@hourly"; wins over `interval`.
    pub schedule: Option<String>,
    /// Fixed interval between events, e.g. "10s", "1h30m".
    pub interval: Option<String>,
    /// Date-times on which no event fires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusion_dates: Vec<String>,
    /// IANA time zone of the schedule, e.g. "Europe/Paris".
    pub timezone: Option<String>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Remember the last fired time, to catch up on missed ticks after a restart.
    pub persistence: Option<EventPersistence>,
    /// Expression deciding which ticks become events.
    pub filter: Option<EventSourceFilter>,
}

/// How a calendar event source remembers the ticks it fired.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPersistence {
    /// Fire the ticks missed while the event source was down.
    pub catchup: Option<CatchupConfiguration>,
    /// Config map the last fired time is stored in.
    pub config_map: Option<ConfigMapPersistence>,
}

impl EventPersistence {
    /// Whether missed ticks are fired after a restart.
    pub fn catchup_enabled(&self) -> bool {
        self.catchup.as_ref().and_then(|c| c.enabled).unwrap_or(false)
    }
}

/// Catch-up of missed calendar ticks.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatchupConfiguration {
    /// Fire the missed ticks on restart.
    pub enabled: Option<bool>,
    /// How far back to catch up, e.g. "5m".
    pub max_duration: Option<String>,
}

/// The config map that stores calendar state.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapPersistence {
    /// Name of the config map.
    pub name: Option<String>,
    /// Create the config map when it does not exist.
    pub create_if_not_exist: Option<bool>,
}

/// Changes to files in a local directory.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileEventSource {
    /// File operation to watch: CREATE, WRITE, REMOVE, RENAME or CHMOD.
    pub event_type: String,
    /// The directory and file(s) to watch.
    pub watch_path_config: WatchPathConfig,
    /// Poll the directory instead of using inotify.
    pub polling: Option<bool>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Expression deciding which changes become events.
    pub filter: Option<EventSourceFilter>,
}

/// A directory and the file name or pattern to watch in it.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchPathConfig {
    /// Absolute path of the directory to watch.
    pub directory: String,
    /// File path relative to the directory.
    pub path: Option<String>,
    /// Regular expression matched against paths relative to the directory.
    pub path_regexp: Option<String>,
}

/// Messages published on a NATS subject.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATSEventsSource {
    /// URL of the NATS server, e.g. "nats://localhost:4222".
    pub url: String,
    /// Subject to subscribe to.
    pub subject: String,
    /// Retry timing of the connection.
    pub connection_backoff: Option<Backoff>,
    /// Treat message bodies as JSON.
    pub json_body: Option<bool>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Credentials of the client.
    pub auth: Option<NATSAuth>,
    /// Expression deciding which messages become events.
    pub filter: Option<EventSourceFilter>,
    /// Queue group to subscribe in; a plain subscription when absent.
    pub queue: Option<String>,
    /// Argon's own field, not upstream's: read `subject` from a JetStream
    /// stream through a durable consumer, acknowledging each message only
    /// once Argon's bus stored its event (instead of a core subscription,
    /// which loses what arrives while Argon is away).
    pub jet_stream: Option<NATSJetStream>,
}

/// A JetStream stream read by a durable pull consumer with explicit acks.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATSJetStream {
    /// Name of the stream (it must exist; Argon does not create it).
    pub stream: String,
    /// Name of the durable consumer, created when missing; default
    /// `argon-EVENTSOURCE-EVENT`.
    pub consumer: Option<String>,
    /// How long the server waits for the ack of a delivered message before
    /// it sends the message again, e.g. "30s" (the default). Applies when
    /// the consumer is created.
    pub ack_wait: Option<String>,
}

/// Credentials for a NATS connection; set one of them.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NATSAuth {
    /// Username and password.
    pub basic: Option<BasicAuth>,
    /// Secret key holding a token.
    pub token: Option<SecretKeySelector>,
    /// Secret key holding an NKey seed.
    #[serde(rename = "nkey", default)]
    pub nkey: Option<SecretKeySelector>,
    /// Secret key holding a credentials file.
    pub credential: Option<SecretKeySelector>,
}

/// Messages published on an MQTT topic.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MQTTEventSource {
    /// URL of the broker, e.g. "tcp://localhost:1883".
    pub url: String,
    /// Topic to subscribe to.
    pub topic: String,
    /// Client id presented to the broker.
    pub client_id: String,
    /// Retry timing of the connection.
    pub connection_backoff: Option<Backoff>,
    /// Treat message bodies as JSON.
    pub json_body: Option<bool>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Expression deciding which messages become events.
    pub filter: Option<EventSourceFilter>,
    /// Username and password of the client.
    pub auth: Option<BasicAuth>,
}

/// Messages published on Redis pub/sub channels.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisEventSource {
    /// Address of the Redis server, host:port.
    pub host_address: String,
    /// Secret key holding the password.
    pub password: Option<SecretKeySelector>,
    /// Namespace the password secret is read from.
    pub namespace: Option<String>,
    /// Database number (default 0).
    pub db: Option<i32>,
    /// Channels to subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Expression deciding which messages become events.
    pub filter: Option<EventSourceFilter>,
    /// Treat message bodies as JSON.
    pub json_body: Option<bool>,
    /// Username for ACL authentication.
    pub username: Option<String>,
}

/// Entries of Redis streams, read in a consumer group.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisStreamEventSource {
    /// Address of the Redis server, host:port.
    pub host_address: String,
    /// Secret key holding the password.
    pub password: Option<SecretKeySelector>,
    /// Database number (default 0).
    pub db: Option<i32>,
    /// Streams to read; XREADGROUP reads them all in one consumer group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<String>,
    /// Most entries read from each stream per read (default 10).
    pub max_msg_count_per_read: Option<i32>,
    /// Consumer group name (default "argo-events-cg"); created at the stream's
    /// end when missing.
    pub consumer_group: Option<String>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Expression deciding which entries become events.
    pub filter: Option<EventSourceFilter>,
    /// Username for ACL authentication.
    pub username: Option<String>,
}

/// Messages of an AWS SQS queue (or an SQS-compatible endpoint).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SQSEventSource {
    /// Secret key holding the AWS access key id.
    pub access_key: Option<SecretKeySelector>,
    /// Secret key holding the AWS secret access key.
    pub secret_key: Option<SecretKeySelector>,
    /// AWS region of the queue.
    pub region: String,
    /// Name of the queue.
    pub queue: String,
    /// Seconds a receive waits for messages (long polling, at most 20).
    pub wait_time_seconds: Option<i64>,
    /// Role to assume (not used by Argon: credentials come from the keys or the environment).
    #[serde(rename = "roleARN", default)]
    pub role_arn: Option<String>,
    /// Treat message bodies as JSON.
    pub json_body: Option<bool>,
    /// AWS account id owning the queue, when it is not the caller's.
    pub queue_account_id: Option<String>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Whether this is a dead-letter queue (only changes logging upstream).
    #[serde(rename = "dlq", default)]
    pub dlq: Option<bool>,
    /// SQS endpoint URL, e.g. a local SQS-compatible server.
    pub endpoint: Option<String>,
    /// Secret key holding an AWS session token.
    pub session_token: Option<SecretKeySelector>,
    /// Expression deciding which messages become events.
    pub filter: Option<EventSourceFilter>,
}

/// Messages from an AMQP (RabbitMQ) exchange.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AMQPEventSource {
    /// URL of the broker, e.g. "amqp://localhost:5672"; or use `urlSecret`.
    pub url: Option<String>,
    /// Name of the exchange.
    pub exchange_name: String,
    /// Type of the exchange: direct, fanout, topic or headers.
    pub exchange_type: String,
    /// Routing key of the binding.
    pub routing_key: String,
    /// Retry timing of the connection.
    pub connection_backoff: Option<Backoff>,
    /// Treat message bodies as JSON.
    pub json_body: Option<bool>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// How the exchange is declared.
    pub exchange_declare: Option<AMQPExchangeDeclareConfig>,
    /// How the queue is declared.
    pub queue_declare: Option<AMQPQueueDeclareConfig>,
    /// How the queue is bound to the exchange.
    pub queue_bind: Option<AMQPQueueBindConfig>,
    /// How messages are consumed.
    pub consume: Option<AMQPConsumeConfig>,
    /// Username and password of the client.
    pub auth: Option<BasicAuth>,
    /// Secret key holding the broker URL.
    pub url_secret: Option<SecretKeySelector>,
    /// Expression deciding which messages become events.
    pub filter: Option<EventSourceFilter>,
}

/// Exchange declaration options.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AMQPExchangeDeclareConfig {
    /// Keep the exchange across broker restarts.
    pub durable: Option<bool>,
    /// Delete the exchange when no binding is left.
    pub auto_delete: Option<bool>,
    /// Internal exchange: accepts no publishing.
    pub internal: Option<bool>,
    /// Do not wait for the broker's confirmation.
    pub no_wait: Option<bool>,
}

/// Queue declaration options.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AMQPQueueDeclareConfig {
    /// Queue name; the broker generates one when empty.
    pub name: Option<String>,
    /// Keep the queue across broker restarts.
    pub durable: Option<bool>,
    /// Delete the queue when no consumer is left.
    pub auto_delete: Option<bool>,
    /// Only this connection may use the queue.
    pub exclusive: Option<bool>,
    /// Do not wait for the broker's confirmation.
    pub no_wait: Option<bool>,
    /// Queue arguments ("x-arguments") as a JSON string.
    pub arguments: Option<String>,
}

/// Queue binding options.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AMQPQueueBindConfig {
    /// Do not wait for the broker's confirmation.
    pub no_wait: Option<bool>,
}

/// Consumer options.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AMQPConsumeConfig {
    /// Consumer tag sent with every delivery.
    pub consumer_tag: Option<String>,
    /// Let the broker consider messages acknowledged on delivery.
    pub auto_ack: Option<bool>,
    /// Be the only consumer of the queue.
    pub exclusive: Option<bool>,
    /// Not supported by RabbitMQ.
    pub no_local: Option<bool>,
    /// Do not wait for the broker's confirmation.
    pub no_wait: Option<bool>,
}

/// Messages of a Kafka topic.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaEventSource {
    /// Broker addresses, comma separated.
    pub url: String,
    /// Partition to read (without a consumer group).
    pub partition: Option<String>,
    /// Topic to read.
    pub topic: String,
    /// Retry timing of the connection.
    pub connection_backoff: Option<Backoff>,
    /// TLS settings of the client.
    pub tls: Option<TLSConfig>,
    /// Treat message bodies as JSON.
    pub json_body: Option<bool>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Consumer group to read in.
    pub consumer_group: Option<KafkaConsumerGroup>,
    /// Most events read per second.
    pub limit_events_per_second: Option<i64>,
    /// Kafka protocol version of the brokers, e.g. "2.8.0".
    pub version: Option<String>,
    /// SASL authentication of the client.
    pub sasl: Option<SASLConfig>,
    /// Expression deciding which messages become events.
    pub filter: Option<EventSourceFilter>,
    /// Extra client settings as YAML.
    pub config: Option<String>,
    /// Schema registry used to decode Avro messages.
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Authenticate to Amazon MSK with AWS IAM (enables TLS, ignores `sasl`).
    pub aws_msk_iam_auth: Option<AWSMSKIAMConfig>,
}

/// Events from an external gRPC server implementing the generic event source protocol.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenericEventSource {
    /// Address of the gRPC server.
    pub url: String,
    /// Configuration handed to the server, as text.
    pub config: String,
    /// Connect without TLS.
    pub insecure: Option<bool>,
    /// Treat event bodies as JSON.
    pub json_body: Option<bool>,
    /// User metadata passed along with each event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Secret key holding a bearer token for the server.
    pub auth_secret: Option<SecretKeySelector>,
    /// Expression deciding which events are published.
    pub filter: Option<EventSourceFilter>,
}
