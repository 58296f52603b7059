//! Errors of the event sources: startup errors that say what to fix, and the
//! answers a sender gets, which never reveal internals.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the event sources could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest asks for something Argon cannot run.
    #[error("event source '{source_name}', event '{event}': {reason}")]
    Config {
        /// The EventSource name.
        source_name: String,
        /// The event name.
        event: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A secret the manifest names could not be read.
    #[error("event source '{source_name}', event '{event}': {secret}")]
    Secret {
        /// The EventSource name.
        source_name: String,
        /// The event name.
        event: String,
        /// The secret error, naming the secret and key.
        #[source]
        secret: Box<argon_crds::secret::SecretError>,
    },

    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The event bus failed outside a request (catch-up state, startup).
    #[error(transparent)]
    Bus(#[from] argon_eventbus::Error),

    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    pub(crate) fn config(source_name: &str, event: &str, reason: impl Into<String>) -> Self {
        Error::Config {
            source_name: source_name.to_owned(),
            event: event.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The answer to a request that did not become an event. The message says
/// what the sender did wrong, never what failed inside.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// No event is served on this path.
    #[error("no event is served at this path")]
    NotFound,
    /// The path is served, with another method.
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed {
        /// The method(s) accepted.
        allow: String,
    },
    /// The body is larger than `maxPayloadSize`.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The body could not be understood.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong credentials, token or signature.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The bus did not store the event in time: the sender should retry.
    #[error("the event could not be stored; retry later")]
    Unavailable {
        /// Sent as `Retry-After`.
        retry_after: Duration,
    },
    /// The event could not be published for another reason.
    #[error("the event could not be processed")]
    Internal,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = match &self {
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Rejection::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = (status, format!("{self}\n")).into_response();
        let headers = response.headers_mut();
        match &self {
            Rejection::MethodNotAllowed { allow } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    headers.insert(header::ALLOW, v);
                }
            }
            Rejection::Unavailable { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
            }
            Rejection::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
