//! The client API over HTTP: [`WorkflowClient`] and [`WorkflowAdmin`]
//! against an `argon server` (what the CLI and `argon sensor run --server`
//! use).

use std::time::Duration;

use argon_crds::workflow::Workflow;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{CREATED_HEADER, CreateRequest, SubmitOpts};
use crate::client::{LogEntry, SubmitOptions, Submitted, TemplateKind, WorkflowAction, WorkflowAdmin, WorkflowClient};
use crate::list::{ListOptions, WorkflowPage};
use crate::{Error, Result};

/// A client of an `argon server`.
#[derive(Clone)]
pub struct HttpClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("HttpClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

fn path_ns(ns: &str) -> &str {
    if ns.is_empty() { "-" } else { ns }
}

impl HttpClient {
    /// A client of the server at `base` (`http://127.0.0.1:2746`), sending
    /// `token` as a Bearer token when given.
    pub fn new(base: &str, token: Option<String>) -> Result<HttpClient> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        let mut base = base.trim_end_matches('/').to_string();
        if !base.contains("://") {
            base = format!("http://{base}");
        }
        Ok(HttpClient { base, token, http })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot reach the argon server at {}: {e}", self.base)))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        Err(error_of(status, &body))
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let resp = self.send(req).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(format!("reading the server's answer: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Unavailable(format!("the server's answer is not understood: {e}")))
    }

    /// Follows a workflow's log from position `after`, calling `each` per
    /// line until the workflow ends (`follow`) or the lines so far are read.
    pub async fn stream_logs(
        &self,
        namespace: &str,
        name: &str,
        after: i64,
        follow: bool,
        mut each: impl FnMut(LogEntry),
    ) -> Result<()> {
        let path = format!(
            "/api/v1/workflows/{}/{name}/log?logOptions.follow={follow}&after={after}",
            path_ns(namespace)
        );
        let mut resp = self.send(self.request(Method::GET, &path)).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Error::Unavailable(format!("log stream: {e}")))?
        {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                    let r = &v["result"];
                    each(LogEntry {
                        seq: r["seq"].as_i64().unwrap_or(0),
                        step: r["podName"].as_str().unwrap_or("").to_string(),
                        stream: r["stream"].as_str().unwrap_or("stdout").to_string(),
                        time: r["time"].as_str().unwrap_or("").to_string(),
                        line: r["content"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Watches the workflows that pass `options` (Argo's
    /// `/api/v1/workflow-events/{ns}`): `each` is called with every event,
    /// first an ADDED for each matching workflow, and the watch goes on
    /// while it returns true. An error when the stream breaks.
    pub async fn watch(
        &self,
        namespace: &str,
        options: &ListOptions,
        mut each: impl FnMut(WatchEvent) -> bool,
    ) -> Result<()> {
        let path = format!("/api/v1/workflow-events/{}{}", path_ns(namespace), query(options));
        let mut resp = self.send(self.request(Method::GET, &path)).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Error::Unavailable(format!("watch stream: {e}")))?
        {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(mut v) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let kind = v["result"]["type"].as_str().unwrap_or("").to_string();
                let Ok(workflow) = serde_json::from_value::<Workflow>(v["result"]["object"].take()) else {
                    continue;
                };
                if !each(WatchEvent { kind, workflow }) {
                    return Ok(());
                }
            }
        }
        Err(Error::Unavailable(format!(
            "the argon server at {} ended the watch stream",
            self.base
        )))
    }

    /// A page of the workflow archive (Argo's `/api/v1/archived-workflows`).
    pub async fn archived(&self, namespace: &str, options: &ListOptions) -> Result<WorkflowPage> {
        let mut q = query(options);
        if !namespace.is_empty() {
            q.push(if q.is_empty() { '?' } else { '&' });
            q.push_str(&format!("namespace={}", encode(namespace)));
        }
        let v: Value = self
            .json(self.request(Method::GET, &format!("/api/v1/archived-workflows{q}")))
            .await?;
        Ok(WorkflowPage {
            items: serde_json::from_value(v["items"].clone())
                .map_err(|e| Error::Unavailable(format!("the server's list is not understood: {e}")))?,
            continue_token: v["metadata"]["continue"].as_str().map(str::to_string),
        })
    }

    /// An archived workflow by uid or name, nodes included.
    pub async fn archived_workflow(&self, namespace: &str, id: &str) -> Result<Workflow> {
        let mut path = format!("/api/v1/archived-workflows/{}", encode(id));
        if !namespace.is_empty() {
            path.push_str(&format!("?namespace={}", encode(namespace)));
        }
        self.json(self.request(Method::GET, &path)).await
    }

    /// Removes a workflow from the archive.
    pub async fn delete_archived(&self, namespace: &str, id: &str) -> Result<()> {
        let mut path = format!("/api/v1/archived-workflows/{}", encode(id));
        if !namespace.is_empty() {
            path.push_str(&format!("?namespace={}", encode(namespace)));
        }
        self.send(self.request(Method::DELETE, &path)).await.map(|_| ())
    }

    /// Suspends (or resumes) a CronWorkflow; returns it as stored.
    pub async fn suspend_cron(&self, namespace: &str, name: &str, suspend: bool) -> Result<Value> {
        let action = if suspend { "suspend" } else { "resume" };
        let path = format!("/api/v1/cron-workflows/{}/{name}/{action}", path_ns(namespace));
        self.json(self.request(Method::PUT, &path)).await
    }

    /// The response carrying output artifact `artifact` of node `node_id`
    /// as stored (Argo's `/artifacts/...`), or file `file` of a directory
    /// stored as it is; a directory's response has the
    /// `x-argon-artifact-directory` header and lists its files, one a line.
    pub async fn artifact(
        &self,
        namespace: &str,
        name: &str,
        node_id: &str,
        artifact: &str,
        file: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut path = format!("/artifacts/{}/{name}/{node_id}/{artifact}", path_ns(namespace));
        if let Some(f) = file {
            path.push('/');
            path.push_str(f);
        }
        self.send(self.request(Method::GET, &path)).await
    }

    fn template_path(kind: TemplateKind, namespace: &str) -> String {
        match kind {
            TemplateKind::WorkflowTemplate => format!("/api/v1/workflow-templates/{}", path_ns(namespace)),
            TemplateKind::ClusterWorkflowTemplate => "/api/v1/cluster-workflow-templates".to_string(),
            TemplateKind::CronWorkflow => format!("/api/v1/cron-workflows/{}", path_ns(namespace)),
        }
    }
}

/// The engine error an HTTP error answer stands for.
fn error_of(status: StatusCode, body: &Value) -> Error {
    let message = body["message"].as_str().unwrap_or("").to_string();
    let e = &body["error"];
    let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
    match status {
        StatusCode::BAD_REQUEST => Error::Invalid(if e["detail"].is_string() { s("detail") } else { message }),
        StatusCode::NOT_FOUND => Error::NotFound {
            kind: match e["kind"].as_str().unwrap_or("workflow") {
                "WorkflowTemplate" => "WorkflowTemplate",
                "ClusterWorkflowTemplate" => "ClusterWorkflowTemplate",
                "CronWorkflow" => "CronWorkflow",
                "template" => "template",
                "archived workflow" => "archived workflow",
                _ => "workflow",
            },
            namespace: s("namespace"),
            name: s("name"),
        },
        StatusCode::CONFLICT => Error::Conflict {
            action: s("action"),
            name: s("name"),
            reason: s("reason"),
        },
        StatusCode::UNAUTHORIZED => Error::Unavailable(format!(
            "the argon server refused the request: {message} (set --auth-token-file or ARGON_AUTH_TOKEN)"
        )),
        StatusCode::FORBIDDEN => Error::Unavailable(format!(
            "the argon server refused the request: {message} (this needs the read-write token)"
        )),
        _ => Error::Unavailable(format!("the argon server answered {status}: {message}")),
    }
}

#[async_trait::async_trait]
impl WorkflowClient for HttpClient {
    async fn submit(&self, namespace: &str, workflow: Workflow, options: SubmitOptions) -> Result<Submitted> {
        let ns = workflow
            .metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| namespace.to_string());
        let labels = options
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let body = CreateRequest {
            workflow,
            submit_options: Some(SubmitOpts {
                parameters: options.parameters.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                labels: (!labels.is_empty()).then_some(labels),
                idempotency_key: options.idempotency_key.clone(),
            }),
        };
        let req = self
            .request(Method::POST, &format!("/api/v1/workflows/{}", path_ns(&ns)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).map_err(|e| Error::Invalid(e.to_string()))?);
        let resp = self.send(req).await?;
        let created = resp
            .headers()
            .get(CREATED_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v == "true")
            .unwrap_or(resp.status() == StatusCode::CREATED);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(format!("reading the server's answer: {e}")))?;
        let wf: Workflow = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Unavailable(format!("the server's answer is not a workflow: {e}")))?;
        Ok(Submitted {
            namespace: wf.metadata.namespace.clone().unwrap_or_default(),
            name: wf.metadata.name.clone().unwrap_or_default(),
            uid: wf.metadata.uid.clone().unwrap_or_default(),
            created,
        })
    }

    async fn act(&self, namespace: &str, name: &str, action: WorkflowAction) -> Result<Workflow> {
        let path = format!("/api/v1/workflows/{}/{name}/{}", path_ns(namespace), action.as_str());
        self.json(self.request(Method::PUT, &path)).await
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<Workflow> {
        let path = format!("/api/v1/workflows/{}/{name}", path_ns(namespace));
        self.json(self.request(Method::GET, &path)).await
    }
}

#[async_trait::async_trait]
impl WorkflowAdmin for HttpClient {
    async fn list(&self, namespace: &str, options: &ListOptions) -> Result<WorkflowPage> {
        let path = format!("/api/v1/workflows/{}{}", path_ns(namespace), query(options));
        let v: Value = self.json(self.request(Method::GET, &path)).await?;
        Ok(WorkflowPage {
            items: serde_json::from_value(v["items"].clone())
                .map_err(|e| Error::Unavailable(format!("the server's list is not understood: {e}")))?,
            continue_token: v["metadata"]["continue"].as_str().map(str::to_string),
        })
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<()> {
        let path = format!("/api/v1/workflows/{}/{name}", path_ns(namespace));
        self.send(self.request(Method::DELETE, &path)).await.map(|_| ())
    }

    async fn logs(&self, namespace: &str, name: &str, after: i64) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        self.stream_logs(namespace, name, after, false, |l| out.push(l)).await?;
        Ok(out)
    }

    async fn put_template(&self, namespace: &str, manifest: Value) -> Result<Value> {
        let kind = match manifest["kind"].as_str() {
            Some("WorkflowTemplate") => TemplateKind::WorkflowTemplate,
            Some("ClusterWorkflowTemplate") => TemplateKind::ClusterWorkflowTemplate,
            Some("CronWorkflow") => TemplateKind::CronWorkflow,
            other => {
                return Err(Error::Invalid(format!(
                    "kind '{}' is not a template: expected WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow",
                    other.unwrap_or("")
                )));
            }
        };
        let ns = manifest["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(namespace)
            .to_string();
        let key = if kind == TemplateKind::CronWorkflow {
            "cronWorkflow"
        } else {
            "template"
        };
        let req = self
            .request(Method::POST, &Self::template_path(kind, &ns))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({ key: manifest }).to_string());
        self.json(req).await
    }

    async fn list_templates(&self, kind: TemplateKind, namespace: &str) -> Result<Vec<Value>> {
        let v: Value = self
            .json(self.request(Method::GET, &Self::template_path(kind, namespace)))
            .await?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    async fn get_template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<Value> {
        let path = format!("{}/{name}", Self::template_path(kind, namespace));
        self.json(self.request(Method::GET, &path)).await
    }

    async fn delete_template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<()> {
        let path = format!("{}/{name}", Self::template_path(kind, namespace));
        self.send(self.request(Method::DELETE, &path)).await.map(|_| ())
    }
}

/// `options` as a query string (`?a=b&c=d`, empty without options).
fn query(options: &ListOptions) -> String {
    let pairs: Vec<String> = options
        .query()
        .into_iter()
        .map(|(k, v)| format!("{k}={}", encode(&v)))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// One event of a watch stream.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: String,
    /// The workflow as it is now (for DELETED, at least its metadata).
    pub workflow: Workflow,
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
