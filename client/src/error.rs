//! Errors of the workflow engine as its clients see them.

/// What went wrong, said so that the caller knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The workflow is not valid; the message is the lint output.
    #[error("invalid workflow: {0}")]
    Invalid(String),
    /// No workflow (or template) by that name.
    #[error("{kind} '{name}' not found in namespace '{namespace}'")]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    /// The action does not apply to the workflow in its current phase.
    #[error("cannot {action} workflow '{name}': {reason}")]
    Conflict {
        action: String,
        name: String,
        reason: String,
    },
    /// The server refused a request of the event API; the message says why
    /// (an event that is not stored, a sensor that is not running).
    #[error("{0}")]
    Refused(String),
    /// The engine (local store or remote server) could not be reached or failed;
    /// retrying later may succeed.
    #[error("workflow engine unavailable: {0}")]
    Unavailable(String),
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Unavailable(format!("workflow store holds an unreadable record: {e}"))
    }
}

/// Results of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;
