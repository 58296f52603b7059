//! Argon's workflow engine: runs the Argo Workflows that sensors and users
//! submit, each step a real process, with a store, an API server and the
//! client API the sensor and the CLI use.

pub mod client;
pub mod error;

pub use client::{Submitted, SubmitOptions, WorkflowAction, WorkflowClient};
pub use error::{Error, Result};
