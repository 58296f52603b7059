//! One axum server per port: `/health` and the endpoint of every
//! webhook-family event on that port (`/metrics` is served apart, never on a
//! webhook port). Wrong method is 405 with `Allow`, an
//! unknown path 404, a body over `maxPayloadSize` 413; a request is answered
//! 200 only after its events are durably on the bus. A port whose events
//! name `serverCertSecret` and `serverKeySecret` serves HTTPS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use argon_crds::eventsource::{EventConfig, WebhookContext};
use argon_crds::secret::Secrets;
use argon_eventbus::{Data, Event};
use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use subtle::ConstantTimeEq as _;

use crate::Publisher;
use crate::error::{Error, Rejection, Result};
use crate::filter::Filter;
use crate::sources::{self, Incoming, Receiver};
use crate::tls::TlsFiles;

/// One webhook-family event served on a port.
pub struct Route {
    /// Source kind, e.g. `github`.
    pub kind: &'static str,
    /// EventSource name.
    pub source: Arc<str>,
    /// Event name.
    pub event: Arc<str>,
    /// Port it is served on.
    pub port: u16,
    /// Path, always starting with `/`.
    pub path: String,
    /// Accepted method.
    pub method: Method,
    /// The certificate and key when the port serves HTTPS.
    pub tls: Option<TlsFiles>,
    max_payload: u64,
    auth: Option<Auth>,
    filter: Option<Filter>,
    receiver: Box<dyn Receiver>,
    metrics: crate::metrics::EventMetrics,
}

/// Credentials a request must present (from the webhook context).
enum Auth {
    Bearer(Vec<u8>),
    Basic(Vec<u8>),
}

impl Route {
    /// Builds the route of one event, reading its secrets now so a missing
    /// secret fails at startup.
    pub fn new(
        source: &str,
        event: &str,
        config: &EventConfig<'_>,
        context: &WebhookContext,
        secrets: &Secrets,
        metrics: &crate::Metrics,
    ) -> Result<Self> {
        let bad = |reason: String| Error::config(source, event, reason);
        let port: u16 = context
            .port
            .trim()
            .parse()
            .map_err(|_| bad(format!("port {:?} is not a port number", context.port)))?;
        let method_text = if context.method.trim().is_empty() {
            "POST"
        } else {
            context.method.trim()
        };
        let method = Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad(format!("method {:?} is not an HTTP method", context.method)))?;
        let path = if context.endpoint.starts_with('/') {
            context.endpoint.clone()
        } else {
            format!("/{}", context.endpoint)
        };
        let max_payload = u64::try_from(context.max_payload_size())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                bad(format!(
                    "maxPayloadSize {} must be positive",
                    context.max_payload_size()
                ))
            })?;
        let secret = |selector: &k8s_openapi::api::core::v1::SecretKeySelector| {
            secrets.require(selector).map_err(|e| Error::Secret {
                source_name: source.to_owned(),
                event: event.to_owned(),
                secret: Box::new(e),
            })
        };
        let tls = match (&context.server_cert_secret, &context.server_key_secret) {
            (None, None) => None,
            // Parsed once per port, when the runner builds its listener.
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: secret(cert)?,
                key: secret(key)?,
            }),
            (Some(_), None) => {
                return Err(bad(
                    "serverCertSecret is set without serverKeySecret; HTTPS needs both".into()
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "serverKeySecret is set without serverCertSecret; HTTPS needs both".into()
                ));
            }
        };
        let auth = match (&context.auth_secret, &context.basic_auth) {
            (Some(token), _) => Some(Auth::Bearer(secret(token)?.into_bytes())),
            (None, Some(basic)) => {
                let user = basic.username.as_ref().map(&secret).transpose()?.unwrap_or_default();
                let password = basic.password.as_ref().map(&secret).transpose()?.unwrap_or_default();
                Some(Auth::Basic(format!("{user}:{password}").into_bytes()))
            }
            (None, None) => None,
        };
        let (kind, receiver, filter) = sources::receiver(source, event, config, secrets)?;
        let filter = filter
            .map(|f| Filter::parse(f).map_err(|e| bad(e.to_string())))
            .transpose()?;
        Ok(Route {
            kind,
            source: source.into(),
            event: event.into(),
            port,
            path,
            method,
            tls,
            max_payload,
            auth,
            filter,
            receiver,
            metrics: metrics.event(source, event),
        })
    }

    fn authorize(&self, request: &axum::http::request::Parts) -> Result<(), Rejection> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let presented = request
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = match auth {
            Auth::Bearer(token) => presented
                .strip_prefix("Bearer ")
                .is_some_and(|p| bool::from(p.trim().as_bytes().ct_eq(token))),
            Auth::Basic(pair) => presented.strip_prefix("Basic ").is_some_and(|p| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(p.trim())
                    .is_ok_and(|decoded| bool::from(decoded.ct_eq(pair)))
            }),
        };
        if ok {
            Ok(())
        } else {
            Err(Rejection::Unauthorized("missing or invalid credentials"))
        }
    }
}

/// What the handlers of one port share (cloned per request, so one `Arc`).
#[derive(Clone)]
pub struct ServerState(Arc<Shared>);

struct Shared {
    routes: HashMap<String, Vec<Route>>,
    publisher: Publisher,
}

impl ServerState {
    pub(crate) fn new(routes: Vec<Route>, publisher: Publisher) -> Result<Self> {
        let mut by_path: HashMap<String, Vec<Route>> = HashMap::new();
        for route in routes {
            let same_path = by_path.entry(route.path.clone()).or_default();
            if let Some(other) = same_path.iter().find(|r| r.method == route.method) {
                return Err(Error::config(
                    &route.source,
                    &route.event,
                    format!(
                        "{} {} on port {} is already served by event '{}' of '{}'",
                        route.method, route.path, route.port, other.event, other.source
                    ),
                ));
            }
            same_path.push(route);
        }
        Ok(ServerState(Arc::new(Shared {
            routes: by_path,
            publisher,
        })))
    }
}

/// The router of one port.
pub fn router(state: ServerState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(State(state): State<ServerState>, request: Request) -> Response {
    let started = Instant::now();
    let state = &*state.0;
    let Some(routes) = state.routes.get(request.uri().path()) else {
        return match (request.uri().path(), request.method()) {
            ("/health", &Method::GET | &Method::HEAD) => (StatusCode::OK, "OK\n").into_response(),
            _ => {
                linger(request.into_body());
                Rejection::NotFound.into_response()
            }
        };
    };
    let Some(route) = routes.iter().find(|r| r.method == request.method()) else {
        let allow = routes.iter().map(|r| r.method.as_str()).collect::<Vec<_>>().join(", ");
        linger(request.into_body());
        return Rejection::MethodNotAllowed { allow }.into_response();
    };
    match handle(state, route, request, started).await {
        Ok(()) => (StatusCode::OK, "success\n").into_response(),
        Err(rejection) => {
            if !matches!(rejection, Rejection::Unavailable { .. } | Rejection::Internal) {
                route.metrics.processing_failed();
            }
            rejection.into_response()
        }
    }
}

async fn handle(state: &Shared, route: &Route, request: Request, started: Instant) -> Result<(), Rejection> {
    let (parts, body) = request.into_parts();
    if let Err(e) = route.authorize(&parts) {
        linger(body);
        return Err(e);
    }
    let body = read_body(&parts, body, route.max_payload).await?;
    let incoming = route.receiver.receive(&parts, &body)?;
    for Incoming { id, data } in incoming {
        if let Some(filter) = &route.filter {
            let value: serde_json::Value = serde_json::from_str(data.get()).unwrap_or_default();
            match filter.matches(&value) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(event_source = %route.source, event = %route.event, error = %e, "event dropped: filter failed");
                    continue;
                }
            }
        }
        let mut event = Event::with_raw_data(&route.source, &route.event, route.kind, Data::Json(data));
        if let Some(id) = id {
            event = event.with_id(id);
        }
        state.publisher.publish(&event, &route.metrics, started).await?;
    }
    Ok(())
}

/// How much of a rejected body is read and dropped after the answer, and
/// for how long at most.
const LINGER_BYTES: u64 = 16 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(5);

async fn read_body(parts: &axum::http::request::Parts, mut body: Body, limit: u64) -> Result<Bytes, Rejection> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        linger(body);
        return Err(Rejection::PayloadTooLarge { limit });
    }
    // By hand rather than http_body_util::Limited: Limited consumes the body
    // when the limit is passed, and the rest must stay readable for linger().
    // One frame (the usual case) is kept as it is; from the second on they are
    // copied into one buffer. Keeping many frames would keep their buffers: a
    // frame of one byte holds on to the whole read buffer it was cut from, so
    // a client trickling a body byte by byte would pin kilobytes per byte.
    let mut first: Option<Bytes> = None;
    let mut rest = bytes::BytesMut::new();
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Rejection::BadRequest(format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        size += data.len() as u64;
        if size > limit {
            linger(body);
            return Err(Rejection::PayloadTooLarge { limit });
        }
        match &first {
            None => first = Some(data),
            Some(kept) => {
                if rest.is_empty() {
                    rest.extend_from_slice(kept);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.freeze()
    })
}

/// Reads and drops the rest of a rejected request's body while the answer
/// goes out. Most clients send the whole body before they read; a server
/// that stops reading and closes resets their connection, and they report a
/// broken pipe instead of the 4xx (nginx's "lingering close" solves the
/// same). Bounded by LINGER_BYTES and LINGER_TIME; past either, or when the
/// body says it is longer, it is dropped and the connection closed.
fn linger(mut body: Body) {
    if body.is_end_stream() || body.size_hint().lower() > LINGER_BYTES {
        return;
    }
    tokio::spawn(async move {
        let drain = async {
            let mut read = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                read += frame.data_ref().map_or(0, |d| d.len() as u64);
                if read > LINGER_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

/// Renders the Prometheus text of `/metrics`.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The router of the stand-alone metrics address: `/metrics` and `/health`.
pub fn metrics_router(render: RenderMetrics) -> Router {
    Router::new()
        .route("/health", axum::routing::get(|| async { "OK\n" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let text = render();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
}

/// Serves [`metrics_router`] on `addr` within `limits` until `shutdown`.
pub async fn serve_metrics(
    addr: std::net::SocketAddr,
    render: RenderMetrics,
    limits: crate::listener::Limits,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<std::net::SocketAddr> {
    let bind_error = |source| Error::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    tokio::spawn(async move {
        let router = metrics_router(render);
        let drain = std::time::Duration::from_secs(1);
        if let Err(e) = crate::listener::serve(listener, None, router, limits, shutdown, drain).await {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    Ok(local)
}

/// Property tests of the body handling of every webhook-family kind: any
/// headers and any body are turned into events or refused with a 4xx,
/// never a panic. A few hundred cases run in `cargo test`;
/// `PROPTEST_CASES=100000` runs longer.
#[cfg(test)]
mod proptests {
    use argon_crds::eventsource::EventSource;
    use argon_crds::manifest::{LoadReport, load_text};
    use proptest::prelude::*;

    use super::*;

    const MANIFEST: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: hooks
spec:
  webhook:
    example:
      endpoint: /example
      method: POST
      port: "12000"
      maxPayloadSize: 4096
      filter:
        expression: 'body.drop != true && len(body.items) < 3'
  github:
    gh:
      webhook: {endpoint: /github, method: POST, port: "12000", maxPayloadSize: 4096}
      events: ["*"]
  gitlab:
    gl:
      webhook: {endpoint: /gitlab, method: POST, port: "12000", maxPayloadSize: 4096}
      events: [PushEvents, MergeRequestsEvents]
  bitbucket:
    bb:
      webhook: {endpoint: /bitbucket, method: POST, port: "12000", maxPayloadSize: 4096}
      auth:
        oauthToken: {name: bitbucket, key: not-read}
      events: ["repo:push"]
  bitbucketserver:
    bbs:
      webhook: {endpoint: /bitbucketserver, method: POST, port: "12000", maxPayloadSize: 4096}
      events: ["repo:refs_changed"]
      oneEventPerChange: true
"#;

    fn routes() -> Vec<Route> {
        let mut report = LoadReport::default();
        load_text("fuzz.yaml", MANIFEST, &mut report);
        let diagnostics: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
        let es: EventSource = report
            .event_sources()
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("the manifest does not decode: {diagnostics:?}"));
        let metrics = crate::Metrics::new().unwrap();
        es.spec
            .events()
            .into_iter()
            .map(|e| {
                let context = e.config.webhook_context().expect("a webhook-family event");
                Route::new("hooks", e.name, &e.config, context, &Secrets::default(), &metrics).unwrap()
            })
            .collect()
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let json_text = prop::collection::vec(
            prop::sample::select(
                &[
                    "{",
                    "}",
                    "[",
                    "]",
                    ",",
                    ":",
                    "\"ref\"",
                    "\"changes\"",
                    "\"items\"",
                    "\"drop\"",
                    "\"object_kind\"",
                    "\"push\"",
                    "\"payload\"",
                    "true",
                    "null",
                    "1",
                    "-0",
                    "1e999",
                    "\"\\u0000\"",
                    "\"\\ud800\"",
                    " ",
                    "\"a\"",
                    "payload=",
                    "%7B%7D",
                    "&",
                    "=",
                ][..],
            ),
            0..40,
        )
        .prop_map(|t| t.concat().into_bytes());
        prop_oneof![json_text, prop::collection::vec(any::<u8>(), 0..256)]
    }

    fn headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
        let name = prop::sample::select(
            &[
                "content-type",
                "x-github-event",
                "x-github-delivery",
                "x-hub-signature-256",
                "x-gitlab-event",
                "x-gitlab-token",
                "x-event-key",
                "x-request-id",
                "x-hook-uuid",
                "authorization",
            ][..],
        );
        let value = prop_oneof![
            prop::sample::select(
                &[
                    "application/json",
                    "application/x-www-form-urlencoded",
                    "text/plain",
                    "push",
                    "ping",
                    "Push Hook",
                    "repo:push",
                    "repo:refs_changed",
                    "sha256=00",
                    "Bearer x",
                ][..]
            )
            .prop_map(str::to_string),
            "[ -~]{0,24}",
        ];
        prop::collection::vec((name, value), 0..6)
    }

    proptest! {
        #[test]
        fn any_request_is_an_event_or_a_rejection(route in 0usize..5, headers in headers(), body in body()) {
            let routes = routes();
            let route = &routes[route];
            let mut request = axum::http::Request::builder().method(Method::POST).uri(&route.path);
            for (name, value) in &headers {
                request = request.header(*name, value.as_str());
            }
            let Ok(request) = request.body(()) else { return Ok(()) };
            let (parts, ()) = request.into_parts();
            let body = Bytes::from(body);
            if route.authorize(&parts).is_err() {
                return Ok(());
            }
            match route.receiver.receive(&parts, &body) {
                Ok(incoming) => {
                    for Incoming { data, .. } in incoming {
                        let value: serde_json::Value = serde_json::from_str(data.get()).unwrap_or_default();
                        if let Some(filter) = &route.filter {
                            let _ = filter.matches(&value);
                        }
                    }
                }
                Err(rejection) => {
                    let status = rejection.into_response().status();
                    prop_assert!(status.is_client_error(), "{status}");
                }
            }
        }
    }
}
