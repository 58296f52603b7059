//! Errors of the sensor runtime, each saying what went wrong and what to do.

use argon_crds::secret::SecretError;

/// What went wrong in a sensor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sensor manifest asks for something Argon cannot run; found at startup.
    #[error("sensor '{sensor}': {message}")]
    Config { sensor: String, message: String },
    /// A filter could not be evaluated against an event (the event does not pass).
    #[error("{kind} filter error: {message}")]
    Filter { kind: &'static str, message: String },
    /// A transform (jq or Lua) failed on an event.
    #[error("transform error: {0}")]
    Transform(String),
    /// A Go template could not be parsed or executed.
    #[error("template error: {0}")]
    Template(String),
    /// A trigger parameter could not be resolved or applied.
    #[error("parameter error: {0}")]
    Parameter(String),
    /// A trigger failed; `retryable` says whether trying again may succeed.
    #[error("trigger '{trigger}' failed: {message}")]
    Trigger {
        trigger: String,
        message: String,
        retryable: bool,
    },
    /// The event bus failed.
    #[error(transparent)]
    Bus(#[from] argon_eventbus::Error),
    /// The workflow engine refused or failed.
    #[error(transparent)]
    Engine(#[from] argon_client::Error),
    /// A secret the trigger needs could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl Error {
    /// A configuration error of `sensor`.
    pub fn config(sensor: &str, message: impl Into<String>) -> Self {
        Error::Config {
            sensor: sensor.to_owned(),
            message: message.into(),
        }
    }

    /// A trigger failure that a retry may fix.
    pub fn transient(trigger: &str, message: impl Into<String>) -> Self {
        Error::Trigger {
            trigger: trigger.to_owned(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A trigger failure that a retry will not fix.
    pub fn permanent(trigger: &str, message: impl Into<String>) -> Self {
        Error::Trigger {
            trigger: trigger.to_owned(),
            message: message.into(),
            retryable: false,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Trigger { retryable, .. } => *retryable,
            Error::Bus(_) => true,
            Error::Engine(argon_client::Error::Unavailable(_)) => true,
            _ => false,
        }
    }
}

/// Results of the sensor.
pub type Result<T, E = Error> = std::result::Result<T, E>;
