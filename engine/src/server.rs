//! The engine's HTTP API, modelled on the Argo Server's JSON REST API:
//! workflows (list, create, get, delete, log, suspend/resume/stop/terminate/
//! retry/resubmit), WorkflowTemplates, ClusterWorkflowTemplates and
//! CronWorkflows, the event history ([`crate::events`]) and `/metrics`. Two optional Bearer tokens: a read token
//! that may only read (GET), a write token that may do everything. Tokens
//! are compared in constant time. The namespace `-` stands for every
//! namespace.
//!
//! Longer than most files: every route of the API with its query types, and
//! the watch stream's state machine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use argon_crds::workflow::Workflow;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::Engine;
use argon_client::api::{CREATED_HEADER, CreateRequest};
use argon_client::list::ListOptions;
use argon_client::{Error, SubmitOptions, TemplateKind, WorkflowAction, WorkflowAdmin};

/// What the router serves.
#[derive(Clone)]
pub struct ApiState {
    pub engine: Arc<Engine>,
    /// Who may call.
    pub auth: ApiAuth,
    /// Renders the Prometheus metrics served on `/metrics` (404 when unset).
    pub metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// The event history and flow (`/api/v1/events`, `/api/v1/event-flow`;
    /// 404 when unset).
    pub events: Option<Arc<crate::events::EventsApi>>,
}

/// A Bearer token; never shown by `Debug`.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl Token {
    /// A token; surrounding whitespace (a file's newline) is not part of it.
    /// `None` for an empty one.
    pub fn new(text: &str) -> Option<Token> {
        let text = text.trim();
        (!text.is_empty()).then(|| Token(text.as_bytes().into()))
    }

    /// Whether `given` is this token, in time that depends on neither's
    /// content nor length (both are hashed first).
    pub fn matches(&self, given: &[u8]) -> bool {
        use sha2::Digest as _;
        use subtle::ConstantTimeEq as _;
        let want = sha2::Sha256::digest(&self.0);
        let got = sha2::Sha256::digest(given);
        bool::from(want.ct_eq(&got))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The tokens of the API. No write token: anyone may do anything (the CLI
/// allows that only on a loopback address, or with `--insecure-no-auth`).
#[derive(Clone, Debug, Default)]
pub struct ApiAuth {
    /// May do everything.
    pub write: Option<Token>,
    /// May only read: GET and HEAD.
    pub read: Option<Token>,
}

impl ApiAuth {
    /// Whether a request with `method` and `Authorization` header value
    /// `authorization` may go on; `Err` says why not.
    fn check(
        &self,
        method: &axum::http::Method,
        authorization: Option<&[u8]>,
    ) -> Result<(), (StatusCode, &'static str)> {
        let Some(write) = &self.write else {
            return Ok(());
        };
        let Some(given) = authorization.and_then(|v| v.strip_prefix(b"Bearer ")) else {
            return Err((
                StatusCode::UNAUTHORIZED,
                "a Bearer token is required (Authorization: Bearer TOKEN)",
            ));
        };
        let given = given.trim_ascii();
        if write.matches(given) {
            return Ok(());
        }
        if self.read.as_ref().is_some_and(|r| r.matches(given)) {
            return if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
                Ok(())
            } else {
                Err((
                    StatusCode::FORBIDDEN,
                    "this token may only read; changes need the read-write token",
                ))
            };
        }
        Err((StatusCode::UNAUTHORIZED, "the Bearer token is not valid"))
    }
}

type St = State<ApiState>;
type Ns = Path<String>;
type NsName = Path<(String, String)>;

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/v1/workflows/{ns}", get(list_workflows).post(create_workflow))
        .route(
            "/api/v1/workflows/{ns}/{name}",
            get(get_workflow).delete(delete_workflow),
        )
        .route("/api/v1/workflows/{ns}/{name}/log", get(workflow_log))
        .route("/api/v1/workflow-events/{ns}", get(watch_workflows))
        .route("/api/v1/archived-workflows", get(list_archived))
        .route(
            "/api/v1/archived-workflows/{id}",
            get(get_archived).delete(delete_archived),
        )
        .route("/api/v1/workflows/{ns}/{name}/{action}", put(act))
        .route("/artifacts/{ns}/{name}/{node}/{artifact}", get(artifact_object))
        .route("/artifacts/{ns}/{name}/{node}/{artifact}/{*file}", get(artifact_file))
        .route(
            "/api/v1/workflow-templates/{ns}",
            get(|s: St, p: Ns| list_templates(s, p, TemplateKind::WorkflowTemplate))
                .post(|s: St, p: Ns, b: Bytes| create_template(s, p, b, "WorkflowTemplate")),
        )
        .route(
            "/api/v1/workflow-templates/{ns}/{name}",
            get(|s: St, p: NsName| get_template(s, p, TemplateKind::WorkflowTemplate))
                .delete(|s: St, p: NsName| delete_template(s, p, TemplateKind::WorkflowTemplate)),
        )
        .route(
            "/api/v1/cluster-workflow-templates",
            get(|s: St| list_templates(s, Path("-".to_string()), TemplateKind::ClusterWorkflowTemplate))
                .post(|s: St, b: Bytes| create_template(s, Path("-".to_string()), b, "ClusterWorkflowTemplate")),
        )
        .route(
            "/api/v1/cluster-workflow-templates/{name}",
            get(|s: St, Path(name): Ns| {
                get_template(s, Path(("-".to_string(), name)), TemplateKind::ClusterWorkflowTemplate)
            })
            .delete(|s: St, Path(name): Ns| {
                delete_template(s, Path(("-".to_string(), name)), TemplateKind::ClusterWorkflowTemplate)
            }),
        )
        .route(
            "/api/v1/cron-workflows/{ns}",
            get(|s: St, p: Ns| list_templates(s, p, TemplateKind::CronWorkflow))
                .post(|s: St, p: Ns, b: Bytes| create_template(s, p, b, "CronWorkflow")),
        )
        .route(
            "/api/v1/cron-workflows/{ns}/{name}",
            get(|s: St, p: NsName| get_template(s, p, TemplateKind::CronWorkflow))
                .delete(|s: St, p: NsName| delete_template(s, p, TemplateKind::CronWorkflow)),
        )
        .route(
            "/api/v1/cron-workflows/{ns}/{name}/{action}",
            put(cron_act).get(cron_next_runs),
        )
        .route(
            "/api/v1/version",
            get(|| async { Json(json!({"version": env!("CARGO_PKG_VERSION"), "platform": "argon"})) }),
        )
        .route("/metrics", get(metrics))
        .merge(crate::events::routes())
        .layer(middleware::from_fn_with_state(state.clone(), auth));
    // Step pods' transfers carry their own tokens, not the API's.
    let steps = state.engine.step_routes();
    let api = api.with_state(state);
    match steps {
        Some(s) => api.merge(s),
        None => api,
    }
}

async fn auth(State(state): State<ApiState>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if let Err((status, message)) = state.auth.check(req.method(), given) {
        // gRPC-style codes as the Argo Server: 16 unauthenticated, 7 permission denied.
        let code = if status == StatusCode::FORBIDDEN { 7 } else { 16 };
        return (status, Json(json!({"code": code, "message": message}))).into_response();
    }
    next.run(req).await
}

async fn metrics(State(state): State<ApiState>) -> Response {
    match &state.metrics {
        Some(render) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An engine error as an HTTP response; internals stay in the log.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = match &self.0 {
            Error::Invalid(m) => (StatusCode::BAD_REQUEST, 3, json!({"type": "Invalid", "detail": m})),
            Error::NotFound { kind, namespace, name } => (
                StatusCode::NOT_FOUND,
                5,
                json!({"type": "NotFound", "kind": kind, "namespace": namespace, "name": name}),
            ),
            Error::Conflict { action, name, reason } => (
                StatusCode::CONFLICT,
                9,
                json!({"type": "Conflict", "action": action, "name": name, "reason": reason}),
            ),
            Error::Refused(m) => (StatusCode::BAD_REQUEST, 3, json!({"type": "Refused", "detail": m})),
            Error::Unavailable(m) => {
                tracing::error!(error = %m, "engine error");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    14,
                    json!({"type": "Unavailable", "detail": "the workflow engine failed; see its log"}),
                )
            }
        };
        let message = match &self.0 {
            Error::Unavailable(_) => "workflow engine unavailable: see the server log".to_string(),
            other => other.to_string(),
        };
        (status, Json(json!({"code": code, "message": message, "error": detail}))).into_response()
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

fn ns(p: &str) -> &str {
    if p == "-" { "" } else { p }
}

/// The query of a list or watch: Argo's `listOptions.*` and Argon's
/// `namePrefix`, `createdAfter`, `createdBefore` and `template`.
#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(rename = "listOptions.limit")]
    limit: Option<String>,
    #[serde(rename = "listOptions.continue")]
    continue_token: Option<String>,
    #[serde(rename = "listOptions.labelSelector")]
    label_selector: Option<String>,
    #[serde(rename = "listOptions.fieldSelector")]
    field_selector: Option<String>,
    #[serde(rename = "namePrefix")]
    name_prefix: Option<String>,
    #[serde(rename = "createdAfter")]
    created_after: Option<String>,
    #[serde(rename = "createdBefore")]
    created_before: Option<String>,
    #[serde(rename = "finishedBefore")]
    finished_before: Option<String>,
    /// The runs of this WorkflowTemplate.
    template: Option<String>,
    /// The namespace of the archive's paths (which have none of their own).
    namespace: Option<String>,
}

/// The most a page may hold; a larger `listOptions.limit` is lowered to it.
const MAX_PAGE: usize = 10_000;

impl ListQuery {
    fn options(self) -> Result<ListOptions, Error> {
        let limit = match self.limit.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            None => None,
            Some(l) => match l.parse::<usize>() {
                // Kubernetes: 0 means no limit.
                Ok(0) => None,
                Ok(n) => Some(n.min(MAX_PAGE)),
                Err(_) => {
                    return Err(Error::Invalid(format!("listOptions.limit '{l}' is not a whole number")));
                }
            },
        };
        let mut o = ListOptions {
            limit,
            continue_token: self.continue_token,
            label_selector: self.label_selector,
            field_selector: self.field_selector,
            name_prefix: self.name_prefix,
            created_after: self.created_after,
            created_before: self.created_before,
            finished_before: self.finished_before,
        };
        if let Some(t) = self.template.filter(|t| !t.is_empty()) {
            o.and_label(&argon_client::api::template_selector(&t));
        }
        Ok(o)
    }
}

/// A page of workflows: `{"metadata": {"continue": TOKEN}, "items": [...]}`
/// as the Argo Server answers; without `listOptions.limit`, all of them.
async fn list_workflows(
    State(s): State<ApiState>,
    Path(namespace): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let options = q.options()?;
    let engine = s.engine.clone();
    let page = tokio::task::spawn_blocking(move || engine.list_page(ns(&namespace), &options))
        .await
        .map_err(|e| Error::Unavailable(format!("listing workflows: {e}")))??;
    page_response(page)
}

/// A page as the Argo Server answers it: `{"metadata": {"continue": TOKEN}, "items": [...]}`.
fn page_response(page: argon_client::list::WorkflowPage) -> ApiResult<Response> {
    let mut metadata = serde_json::Map::new();
    if let Some(t) = page.continue_token {
        metadata.insert("continue".into(), Value::String(t));
    }
    let body = serde_json::to_vec(&json!({"metadata": metadata, "items": page.items}))
        .map_err(|e| Error::Unavailable(format!("rendering the list: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/v1/archived-workflows?namespace=NS&listOptions...`: a page of
/// the archive of finished workflows, with the list semantics of the live ones.
async fn list_archived(State(s): State<ApiState>, Query(mut q): Query<ListQuery>) -> ApiResult<Response> {
    let namespace = q.namespace.take().unwrap_or_default();
    let options = q.options()?;
    let engine = s.engine.clone();
    let page = tokio::task::spawn_blocking(move || engine.list_archived(ns(&namespace), &options))
        .await
        .map_err(|e| Error::Unavailable(format!("listing the archive: {e}")))??;
    page_response(page)
}

#[derive(Deserialize)]
struct ArchiveQuery {
    namespace: Option<String>,
}

/// One archived workflow by uid (or name), nodes included.
async fn get_archived(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> ApiResult<Json<Workflow>> {
    Ok(Json(
        s.engine.get_archived(ns(q.namespace.as_deref().unwrap_or("")), &id)?,
    ))
}

async fn delete_archived(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> ApiResult<Json<Value>> {
    s.engine
        .delete_archived(ns(q.namespace.as_deref().unwrap_or("")), &id)?;
    Ok(Json(json!({})))
}

/// The events of a watch, as Argo's `/api/v1/workflow-events/{ns}` streams
/// them: `{"result": {"type": "ADDED"|"MODIFIED"|"DELETED", "object": WORKFLOW}}`,
/// one a line (newline-delimited JSON), or as server-sent events
/// (`data: ...`) when the request accepts `text/event-stream`. The
/// workflows that already match come first as ADDED, then every change;
/// a workflow that stops matching is DELETED. `listOptions.limit` and
/// `continue` do not apply.
async fn watch_workflows(
    State(s): State<ApiState>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let mut options = q.options()?;
    options.limit = None;
    options.continue_token = None;
    let filter = argon_client::list::Filter::parse(&options)?;
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let namespace = ns(&namespace).to_string();
    // Subscribed before the first read: no change falls between the two.
    let changes = s.engine.subscribe();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let engine = s.engine.clone();
    tokio::spawn(async move {
        let mut w = Watch {
            engine,
            namespace,
            filter,
            options,
            sse,
            seen: std::collections::HashSet::new(),
            tx,
        };
        let _ = w.run(changes).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .map_err(|e| Error::Unavailable(e.to_string()))?)
}

/// One watch stream's state.
struct Watch {
    engine: Arc<Engine>,
    namespace: String,
    filter: argon_client::list::Filter,
    options: ListOptions,
    sse: bool,
    /// The workflows the watcher was told about (and not told are gone).
    seen: std::collections::HashSet<String>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

/// The watcher went away.
struct Gone;

/// A deleted workflow as a watch event's object: its metadata.
fn gone(metadata: Value) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": metadata, "spec": {}})
}

impl Watch {
    async fn run(&mut self, mut changes: tokio::sync::broadcast::Receiver<crate::store::Change>) -> Result<(), Gone> {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        self.resync().await?;
        loop {
            // Every change waiting is taken at once, and each workflow is
            // sent once, as it is now: a busy workflow's node updates collapse.
            let mut pending: Vec<crate::store::Change> = Vec::new();
            let mut lagged = false;
            tokio::select! {
                first = changes.recv() => match first {
                    Ok(c) => pending.push(c),
                    Err(RecvError::Lagged(_)) => lagged = true,
                    Err(RecvError::Closed) => return Ok(()),
                },
                _ = self.tx.closed() => return Err(Gone),
            }
            loop {
                match changes.try_recv() {
                    Ok(c) => pending.push(c),
                    Err(TryRecvError::Lagged(_)) => lagged = true,
                    Err(_) => break,
                }
            }
            if lagged {
                self.resync().await?;
                continue;
            }
            let mut done = std::collections::HashSet::new();
            for c in pending.into_iter().rev() {
                if !done.insert(c.uid.clone()) {
                    continue;
                }
                if !self.namespace.is_empty() && c.namespace != self.namespace {
                    continue;
                }
                self.send_current(&c.uid, Some((&c.namespace, &c.name))).await?;
            }
        }
    }

    /// Sends every matching workflow (ADDED when new to the watcher).
    async fn resync(&mut self) -> Result<(), Gone> {
        let mut options = self.options.clone();
        options.limit = Some(500);
        loop {
            let engine = self.engine.clone();
            let namespace = self.namespace.clone();
            let o = options.clone();
            let page = tokio::task::spawn_blocking(move || engine.list_page(&namespace, &o))
                .await
                .map_err(|_| Gone)?
                .map_err(|_| Gone)?;
            for wf in &page.items {
                let uid = wf.metadata.uid.clone().unwrap_or_default();
                self.send_current(&uid, None).await?;
            }
            match page.continue_token {
                Some(t) => options.continue_token = Some(t),
                None => return Ok(()),
            }
        }
    }

    /// Tells the watcher how workflow `uid` is now.
    async fn send_current(&mut self, uid: &str, names: Option<(&str, &str)>) -> Result<(), Gone> {
        let wf = self.engine.workflow_now(uid).ok().flatten();
        match wf {
            Some(wf) if self.filter.matches(&wf) => {
                let kind = if self.seen.insert(uid.to_string()) {
                    "ADDED"
                } else {
                    "MODIFIED"
                };
                self.send(kind, &serde_json::to_value(&wf).unwrap_or(Value::Null)).await
            }
            other => {
                if !self.seen.remove(uid) {
                    return Ok(());
                }
                // A workflow gone from the store is told as its metadata.
                let object = match (other, names) {
                    (Some(wf), _) => serde_json::to_value(&wf).unwrap_or(Value::Null),
                    (None, Some((namespace, name))) => gone(json!({"name": name, "namespace": namespace, "uid": uid})),
                    (None, None) => gone(json!({"uid": uid})),
                };
                self.send("DELETED", &object).await
            }
        }
    }

    async fn send(&self, kind: &str, object: &Value) -> Result<(), Gone> {
        let event = json!({"result": {"type": kind, "object": object}}).to_string();
        let text = if self.sse {
            format!("data: {event}\n\n")
        } else {
            format!("{event}\n")
        };
        self.tx.send(Bytes::from(text)).await.map_err(|_| Gone)
    }
}

async fn create_workflow(State(s): State<ApiState>, Path(namespace): Path<String>, body: Bytes) -> ApiResult<Response> {
    let req: CreateRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::Invalid(format!("the request body is not a workflow create request: {e}")))?;
    let opts = req.submit_options.unwrap_or_default();
    let mut parameters = Vec::new();
    for p in &opts.parameters {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("parameter '{p}' is not NAME=VALUE")))?;
        parameters.push((k.to_string(), v.to_string()));
    }
    let mut labels = BTreeMap::new();
    for l in opts.labels.iter().flat_map(|l| l.split(',')).filter(|l| !l.is_empty()) {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("label '{l}' is not KEY=VALUE")))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let submitted = s.engine.submit_workflow(
        ns(&namespace),
        req.workflow,
        SubmitOptions {
            idempotency_key: opts.idempotency_key,
            parameters,
            labels,
        },
    )?;
    let wf = s.engine.get_workflow(&submitted.namespace, &submitted.name)?;
    let status = if submitted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, [(CREATED_HEADER, submitted.created.to_string())], Json(wf)).into_response())
}

async fn get_workflow(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
) -> ApiResult<Json<Workflow>> {
    Ok(Json(s.engine.get_workflow(ns(&namespace), &name)?))
}

/// The header naming the files of a directory artifact stored as it is
/// (the body is then their list, one per line).
pub const ARTIFACT_DIRECTORY_HEADER: &str = "x-argon-artifact-directory";

async fn artifact_object(
    State(s): State<ApiState>,
    Path((namespace, name, node, artifact)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    artifact_response(&s, &namespace, &name, &node, &artifact, None).await
}

async fn artifact_file(
    State(s): State<ApiState>,
    Path((namespace, name, node, artifact, file)): Path<(String, String, String, String, String)>,
) -> ApiResult<Response> {
    artifact_response(&s, &namespace, &name, &node, &artifact, Some(&file)).await
}

/// An output artifact's object as stored (Argo's `/artifacts/...`), or the
/// files of a directory stored as it is.
async fn artifact_response(
    s: &ApiState,
    namespace: &str,
    name: &str,
    node: &str,
    artifact: &str,
    file: Option<&str>,
) -> ApiResult<Response> {
    let stored = s
        .engine
        .artifact_object(ns(namespace), name, node, artifact, file)
        .await?;
    Ok(match stored {
        crate::artifacts::StoredArtifact::Object(stream) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            axum::body::Body::from_stream(stream),
        )
            .into_response(),
        crate::artifacts::StoredArtifact::Directory(files) => (
            [
                (header::CONTENT_TYPE, "text/plain"),
                (header::HeaderName::from_static(ARTIFACT_DIRECTORY_HEADER), "true"),
            ],
            files.join("\n"),
        )
            .into_response(),
    })
}

async fn delete_workflow(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    s.engine.delete_workflow(ns(&namespace), &name)?;
    Ok(Json(json!({})))
}

async fn act(
    State(s): State<ApiState>,
    Path((namespace, name, action)): Path<(String, String, String)>,
) -> ApiResult<Json<Workflow>> {
    let action = match action.as_str() {
        "suspend" => WorkflowAction::Suspend,
        "resume" => WorkflowAction::Resume,
        "stop" => WorkflowAction::Stop,
        "terminate" => WorkflowAction::Terminate,
        "retry" => WorkflowAction::Retry,
        "resubmit" => WorkflowAction::Resubmit,
        other => {
            return Err(Error::Invalid(format!(
                "unknown action '{other}': use suspend, resume, stop, terminate, retry or resubmit"
            ))
            .into());
        }
    };
    Ok(Json(s.engine.act_on(ns(&namespace), &name, action).await?))
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(rename = "logOptions.follow")]
    follow: Option<bool>,
    /// Lines after this position only.
    after: Option<i64>,
}

/// `PUT /api/v1/cron-workflows/{ns}/{name}/suspend|resume`, as the Argo Server.
async fn cron_act(
    State(s): State<ApiState>,
    Path((namespace, name, action)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let suspend = match action.as_str() {
        "suspend" => true,
        "resume" => false,
        other => {
            return Err(Error::Invalid(format!(
                "'{other}' is not an action on a CronWorkflow; use suspend or resume"
            ))
            .into());
        }
    };
    Ok(Json(
        serde_json::to_value(s.engine.suspend_cron_workflow(ns(&namespace), &name, suspend)?)
            .map_err(|e| Error::Unavailable(e.to_string()))?,
    ))
}

/// `GET /api/v1/cron-workflows/{ns}/{name}/next-runs[?count=N]` (Argon's):
/// when the CronWorkflow runs next, `{"nextRuns": [RFC 3339, ...]}`, none
/// while it is suspended.
async fn cron_next_runs(
    State(s): State<ApiState>,
    Path((namespace, name, what)): Path<(String, String, String)>,
    Query(q): Query<NextRunsQuery>,
) -> ApiResult<Json<Value>> {
    if what != "next-runs" {
        return Err(Error::Invalid(format!("'{what}' is not a view of a CronWorkflow; use next-runs")).into());
    }
    let doc = s.engine.template(TemplateKind::CronWorkflow, ns(&namespace), &name)?;
    let cron: argon_crds::workflow::CronWorkflow =
        serde_json::from_value(doc).map_err(|e| Error::Unavailable(format!("stored CronWorkflow '{name}': {e}")))?;
    let mut runs = Vec::new();
    let mut after = chrono::Utc::now();
    for _ in 0..q.count.unwrap_or(3).clamp(1, 20) {
        match crate::cron::next_run(&cron, after) {
            Some(next) => {
                runs.push(next.to_rfc3339());
                after = next;
            }
            None => break,
        }
    }
    Ok(Json(json!({"nextRuns": runs})))
}

#[derive(Deserialize)]
struct NextRunsQuery {
    count: Option<usize>,
}

/// Streams log lines as newline-delimited JSON `{"result": {"content", "podName", "seq", ...}}`.
async fn workflow_log(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let namespace = ns(&namespace).to_string();
    // Fails early with 404 for an unknown workflow.
    s.engine.get_workflow(&namespace, &name)?;
    let follow = q.follow.unwrap_or(false);
    let engine = s.engine.clone();
    let state = (q.after.unwrap_or(0), false);
    let stream = futures::stream::unfold(state, move |(after, done)| {
        let engine = engine.clone();
        let namespace = namespace.clone();
        let name = name.clone();
        async move {
            if done {
                return None;
            }
            loop {
                let lines = match WorkflowAdmin::logs(engine.as_ref(), &namespace, &name, after).await {
                    Ok(l) => l,
                    Err(_) => return None,
                };
                if let Some(last) = lines.last() {
                    let seq = last.seq;
                    let mut out = String::new();
                    for l in &lines {
                        out.push_str(
                            &json!({"result": {"content": l.line, "podName": l.step, "stream": l.stream, "time": l.time, "seq": l.seq}})
                                .to_string(),
                        );
                        out.push('\n');
                    }
                    return Some((Ok::<_, std::io::Error>(out), (seq, false)));
                }
                if !follow {
                    return None;
                }
                let finished = engine
                    .get_workflow(&namespace, &name)
                    .map(|w| w.status.and_then(|s| s.phase).is_some_and(|p| p.is_completed()))
                    .unwrap_or(true);
                if finished {
                    // One last read: lines written just before the end.
                    let tail = WorkflowAdmin::logs(engine.as_ref(), &namespace, &name, after)
                        .await
                        .unwrap_or_default();
                    if tail.is_empty() {
                        return None;
                    }
                    continue;
                }
                let _ = engine.watch(&namespace, &name, Duration::from_secs(1)).await;
            }
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .map_err(|e| Error::Unavailable(e.to_string()))?)
}

async fn list_templates(
    State(s): State<ApiState>,
    Path(namespace): Path<String>,
    kind: TemplateKind,
) -> ApiResult<Json<Value>> {
    let items = s.engine.templates(kind, ns(&namespace))?;
    Ok(Json(json!({"metadata": {}, "items": items})))
}

async fn create_template(
    State(s): State<ApiState>,
    Path(namespace): Path<String>,
    body: Bytes,
    kind: &'static str,
) -> ApiResult<Json<Value>> {
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| Error::Invalid(format!("the request body is not JSON: {e}")))?;
    // Argo's bodies wrap the object: {"template": ...}, {"cronWorkflow": ...}.
    let mut manifest = body
        .get("template")
        .or_else(|| body.get("cronWorkflow"))
        .cloned()
        .unwrap_or(body);
    if let Some(obj) = manifest.as_object_mut() {
        obj.entry("kind").or_insert_with(|| Value::String(kind.to_string()));
        obj.entry("apiVersion")
            .or_insert_with(|| Value::String("argoproj.io/v1alpha1".to_string()));
    }
    let given = manifest.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if given != kind {
        return Err(Error::Invalid(format!("this endpoint stores {kind}s, not {given}")).into());
    }
    Ok(Json(
        WorkflowAdmin::put_template(s.engine.as_ref(), ns(&namespace), manifest).await?,
    ))
}

async fn get_template(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    kind: TemplateKind,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.engine.template(kind, ns(&namespace), &name)?))
}

async fn delete_template(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    kind: TemplateKind,
) -> ApiResult<Json<Value>> {
    s.engine.delete_template(kind, ns(&namespace), &name)?;
    Ok(Json(json!({})))
}
