//! Argon's workflow engine: runs the Argo Workflows that sensors and users
//! submit, each step a real process, with a store, an API server and the
//! client API the sensor and the CLI use.
//!
//! Embed it with [`Engine::open`] and [`Engine::run`]; serve it with
//! [`server::router`]; reach a remote one with [`HttpClient`].

pub mod artifacts;
pub mod client;
pub mod cron;
mod engine;
pub mod error;
pub mod executor;
pub mod expr;
pub mod http_client;
pub mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use client::{LogEntry, SubmitOptions, Submitted, WorkflowAction, WorkflowAdmin, WorkflowClient};
pub use engine::{CRON_WORKFLOW_LABEL, Engine, EngineConfig, WORKFLOW_TEMPLATE_LABEL};
pub use error::{Error, Result};
pub use executor::{ExecutorChoice, ExecutorKind};
pub use http_client::HttpClient;
