//! Errors of the event bus, each saying what went wrong and what to do about it.

use std::time::Duration;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to an event bus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus could not be reached or did not confirm in time. The event was
    /// NOT accepted: answer the sender with a retryable status (HTTP 503).
    #[error(
        "event bus unavailable: {reason} (nothing was stored; retry later, and check that the NATS server is up and reachable)"
    )]
    Unavailable {
        /// What failed.
        reason: String,
    },

    /// The bus did not confirm within the configured time. The event may or may
    /// not be stored; retrying with the same event id is safe (deduplicated).
    #[error(
        "event bus did not confirm within {timeout:?} (retry with the same event id; raise publishTimeout if the bus is just slow)"
    )]
    Timeout {
        /// The deadline that passed.
        timeout: Duration,
    },

    /// The NATS server refused the credentials (or their absence). Not
    /// retryable: the configuration has to change.
    #[error(
        "NATS server {url} refused the credentials: {reason} (check the EventBus accessSecret and auth against the server's authorization settings)"
    )]
    Auth {
        /// The bus URL.
        url: String,
        /// What the server or the client said.
        reason: String,
    },

    /// The TLS handshake with the NATS server failed, or TLS was required
    /// by one side and not offered by the other.
    #[error(
        "TLS with NATS server {url} failed: {reason} (check the EventBus tls settings and the server's certificate)"
    )]
    Tls {
        /// The bus URL.
        url: String,
        /// What failed.
        reason: String,
    },

    /// The bus URL or a configuration value is wrong.
    #[error("invalid event bus configuration: {0}")]
    Config(String),

    /// The embedded store failed (disk full, permissions, corruption).
    #[error("embedded event store at {path}: {reason} (check free space and permissions of the state dir)")]
    Store {
        /// The store directory.
        path: String,
        /// What failed.
        reason: String,
    },

    /// Bytes on the bus are not an Argon event envelope.
    #[error("malformed event envelope: {0} (expected JSON {{\"context\": {{...}}, \"data\": ...}})")]
    Envelope(#[from] serde_json::Error),

    /// A compare-and-set on the key-value store lost the race.
    #[error("key {key:?} was changed concurrently (expected revision {expected:?}); read it again and retry")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected, `None` for "absent".
        expected: Option<u64>,
    },

    /// The bus was closed while the call was in progress.
    #[error("event bus closed (the process is shutting down)")]
    Closed,

    /// The bus keeps no history of its events (a bus of a test or benchmark).
    #[error("this event bus keeps no event history")]
    NoHistory,

    /// Any other error reported by NATS JetStream.
    #[error("NATS JetStream: {0}")]
    JetStream(String),
}

impl Error {
    /// Whether the caller should tell its client to retry later (HTTP 503).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. } | Error::Closed)
    }

    pub(crate) fn store(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Error::Store {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The same failure again, as a store error, for each of several callers
    /// waiting on one write.
    pub(crate) fn to_store(&self) -> Self {
        match self {
            Error::Store { path, reason } => Error::Store {
                path: path.clone(),
                reason: reason.clone(),
            },
            other => Error::Store {
                path: String::new(),
                reason: other.to_string(),
            },
        }
    }

    pub(crate) fn unavailable(reason: impl std::fmt::Display) -> Self {
        Error::Unavailable {
            reason: reason.to_string(),
        }
    }
}
