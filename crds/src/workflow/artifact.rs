//! Artifacts: files and directories that steps produce and consume, and the
//! places they are fetched from or stored in (S3, git, HTTP, GCS, ...).

use k8s_openapi::api::core::v1::{EnvVar, SecretKeySelector, Volume, VolumeMount};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Metadata, null_as_default};

/// A file or directory placed at `path` (input) or saved from it (output).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// The artifact's name, unique among a template's inputs or outputs.
    pub name: String,
    /// The path in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The file mode set when an input artifact is placed (e.g. 0755, read as octal).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "file_mode")]
    #[schemars(schema_with = "file_mode_schema")]
    pub mode: Option<i32>,
    /// Another step's artifact to use (`{{steps.a.outputs.artifacts.x}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Where the artifact is fetched from or stored.
    #[serde(flatten)]
    pub location: ArtifactLocation,
    /// Also export the output as `{{workflow.outputs.artifacts.NAME}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_name: Option<String>,
    /// How the artifact is packed when stored (default: tar and gzip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveStrategy>,
    /// A missing artifact is not an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// Use only this sub-path of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    /// Apply `mode` to every file of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurse_mode: Option<bool>,
    /// An expression giving the artifact to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_expression: Option<String>,
    /// When this artifact is deleted (overrides the workflow's artifactGC).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "artifactGC")]
    pub artifact_gc: Option<ArtifactGc>,
    /// The artifact has been deleted (set at run time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// Reads a file mode. YAML 1.1 (what Kubernetes tooling reads manifests
/// with) takes `0755` as octal; a YAML 1.2 reader hands it over as the text
/// "0755", so a text with a leading zero (or `0o`) is read as octal here.
fn file_mode<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
    use serde::de::Error;
    let v = Option::<serde_json::Value>::deserialize(deserializer)?;
    let Some(v) = v else { return Ok(None) };
    let mode = match &v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => parse_file_mode(s),
        _ => None,
    };
    match mode.and_then(|m| i32::try_from(m).ok()) {
        Some(m) => Ok(Some(m)),
        None => Err(D::Error::custom(format!(
            "invalid file mode {v}: expected a number such as 0755"
        ))),
    }
}

/// `0755` and `0o755` are octal, `493` is decimal.
pub fn parse_file_mode(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(oct) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        return i64::from_str_radix(oct, 8).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return i64::from_str_radix(&s[1..], 8).ok();
    }
    s.parse().ok()
}

fn file_mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The file mode set when an input artifact is placed (e.g. 0755, read as octal).",
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    })
}

/// Where an artifact is fetched from or stored: at most one location.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    /// Archive the container logs as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_logs: Option<bool>,
    /// An S3 (or S3-compatible, e.g. MinIO) object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Artifact>,
    /// A git repository checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitArtifact>,
    /// A file served over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpArtifact>,
    /// An Artifactory file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifactory: Option<ArtifactoryArtifact>,
    /// An HDFS file (taken as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdfs: Option<serde_json::Value>,
    /// Literal content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawArtifact>,
    /// An Alibaba Cloud OSS object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oss: Option<OssArtifact>,
    /// A Google Cloud Storage object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsArtifact>,
    /// An Azure Blob Storage blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureArtifact>,
}

impl ArtifactLocation {
    /// No location is set.
    pub fn is_empty(&self) -> bool {
        self.s3.is_none()
            && self.git.is_none()
            && self.http.is_none()
            && self.artifactory.is_none()
            && self.hdfs.is_none()
            && self.raw.is_none()
            && self.oss.is_none()
            && self.gcs.is_none()
            && self.azure.is_none()
    }
}

/// How an artifact is packed when stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArchiveStrategy {
    /// Tar and gzip it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar: Option<TarStrategy>,
    /// Store the files as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none: Option<NoneStrategy>,
    /// Zip it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<ZipStrategy>,
}

/// Tar and gzip an artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TarStrategy {
    /// The gzip level, 0 (none) to 9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
}

/// Store an artifact's files as they are (an empty object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoneStrategy {}

/// Zip an artifact (an empty object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ZipStrategy {}

/// When artifacts are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ArtifactGcStrategy {
    /// Not set: inherit.
    #[serde(rename = "")]
    Undefined,
    /// When the workflow completes.
    OnWorkflowCompletion,
    /// When the workflow is deleted.
    OnWorkflowDeletion,
    /// Never.
    Never,
}

/// When an artifact is deleted, and how the deleting pod runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactGc {
    /// When the artifact is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<ArtifactGcStrategy>,
    /// Labels and annotations of the deleting pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_metadata: Option<Metadata>,
    /// The service account of the deleting pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Environment of the deleting pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub env: Vec<EnvVar>,
    /// Volumes of the deleting pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    /// Volume mounts of the deleting pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// When a workflow's artifacts are deleted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowLevelArtifactGc {
    /// The default for every artifact of the workflow.
    #[serde(flatten)]
    pub artifact_gc: ArtifactGc,
    /// Remove the workflow's finalizer even when deleting artifacts failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_finalizer_removal: Option<bool>,
    /// A strategic merge patch applied to the deleting pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_spec_patch: Option<String>,
}

/// An S3 object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Artifact {
    /// The host (and port) of the S3 endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The bucket's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Connect without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// The secret key holding the access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<SecretKeySelector>,
    /// The secret key holding the secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_secret: Option<SecretKeySelector>,
    /// The secret key holding a session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_secret: Option<SecretKeySelector>,
    /// The role to assume.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "roleARN")]
    pub role_arn: Option<String>,
    /// Take credentials from the SDK's default chain.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "useSDKCreds")]
    pub use_sdk_creds: Option<bool>,
    /// Create the bucket when it does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_bucket_if_not_present: Option<CreateS3BucketOptions>,
    /// Server-side encryption settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_options: Option<S3EncryptionOptions>,
    /// The secret key holding the CA that verifies the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeySelector>,
    /// The object key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Options of bucket creation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateS3BucketOptions {
    /// Enable object locking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_locking: Option<bool>,
}

/// S3 server-side encryption settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3EncryptionOptions {
    /// The KMS key to encrypt with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// A JSON encryption context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_encryption_context: Option<String>,
    /// Encrypt objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_encryption: Option<bool>,
    /// The secret key holding a customer key (SSE-C).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_customer_key_secret: Option<SecretKeySelector>,
}

/// A git repository checkout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitArtifact {
    /// The repository URL.
    pub repo: String,
    /// The commit, tag or branch to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Make a shallow clone of this many commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// Refs to fetch before the checkout.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub fetch: Vec<String>,
    /// The secret key holding the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret: Option<SecretKeySelector>,
    /// The secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeySelector>,
    /// The secret key holding an SSH private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_private_key_secret: Option<SecretKeySelector>,
    /// Skip SSH host key checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_ignore_host_key: Option<bool>,
    /// Do not check out submodules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_submodules: Option<bool>,
    /// Clone only `branch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_branch: Option<bool>,
    /// The branch cloned with singleBranch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Skip TLS verification of the repository.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "insecureSkipTLS")]
    pub insecure_skip_tls: Option<bool>,
}

/// A file served over HTTP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpArtifact {
    /// The URL.
    pub url: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub headers: Vec<Header>,
    /// How to authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
}

/// A request header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Header {
    /// The header name.
    pub name: String,
    /// The header value.
    pub value: String,
}

/// How to authenticate an HTTP artifact request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpAuth {
    /// A client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<ClientCertAuth>,
    /// OAuth2 client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Auth>,
    /// Basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
}

/// A client certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertAuth {
    /// The secret key holding the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret: Option<SecretKeySelector>,
    /// The secret key holding the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_secret: Option<SecretKeySelector>,
}

/// OAuth2 client credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Auth {
    /// The secret key holding the client id.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "clientIDSecret")]
    pub client_id_secret: Option<SecretKeySelector>,
    /// The secret key holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_secret: Option<SecretKeySelector>,
    /// The secret key holding the token URL.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "tokenURLSecret")]
    pub token_url_secret: Option<SecretKeySelector>,
    /// Scopes requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub scopes: Vec<String>,
    /// Extra parameters of the token request.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub endpoint_params: Vec<OAuth2EndpointParam>,
}

/// An extra parameter of an OAuth2 token request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OAuth2EndpointParam {
    /// The parameter name.
    pub key: String,
    /// The parameter value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Basic authentication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The secret key holding the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret: Option<SecretKeySelector>,
    /// The secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeySelector>,
}

/// An Artifactory file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactoryArtifact {
    /// The URL of the file.
    pub url: String,
    /// The secret key holding the username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret: Option<SecretKeySelector>,
    /// The secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeySelector>,
}

/// Literal artifact content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawArtifact {
    /// The content.
    pub data: String,
}

/// A Google Cloud Storage object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsArtifact {
    /// The bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The secret key holding the service account key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key_secret: Option<SecretKeySelector>,
    /// The object key.
    pub key: String,
}

/// An Alibaba Cloud OSS object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OssArtifact {
    /// The endpoint host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The secret key holding the access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<SecretKeySelector>,
    /// The secret key holding the secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_secret: Option<SecretKeySelector>,
    /// Create the bucket when it does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_bucket_if_not_present: Option<bool>,
    /// A temporary security token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_token: Option<String>,
    /// The bucket's lifecycle rule (taken as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_rule: Option<serde_json::Value>,
    /// Take credentials from the SDK's default chain.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "useSDKCreds")]
    pub use_sdk_creds: Option<bool>,
    /// The object key.
    pub key: String,
}

/// An Azure Blob Storage blob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureArtifact {
    /// The service URL (`https://ACCOUNT.blob.core.windows.net`).
    pub endpoint: String,
    /// The container.
    pub container: String,
    /// The secret key holding the account key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key_secret: Option<SecretKeySelector>,
    /// Take credentials from the SDK's default chain.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "useSDKCreds")]
    pub use_sdk_creds: Option<bool>,
    /// The blob name.
    pub blob: String,
}
