//! The client API of Argon's workflow engine, on its own so that callers
//! (the sensor's workflow trigger, the CLI) need not build the engine: the
//! traits [`WorkflowClient`] and [`WorkflowAdmin`] with their types and
//! errors, the API's request types, and [`HttpClient`], which implements
//! them against an `argon server`. The engine implements them in process.

pub mod api;
mod client;
mod error;
pub mod events;
mod http;
pub mod list;

pub use client::{LogEntry, SubmitOptions, Submitted, TemplateKind, WorkflowAction, WorkflowAdmin, WorkflowClient};
pub use error::{Error, Result};
pub use http::{HttpClient, WatchEvent};
