//! The manifest model of Argon: the `argoproj.io/v1alpha1` kinds of Argo Events
//! and Argo Workflows as Rust types, strict parsing with `file:line:col`
//! diagnostics, semantic validation and CRD generation.

pub mod common;
pub mod crd;
pub mod diag;
pub mod eventbus;
pub mod eventsource;
pub mod lint;
pub mod manifest;
pub mod names;
pub mod secret;
pub mod sensor;
pub mod source;
pub mod strict;
pub mod time;
pub mod tls;
pub mod upstream;
pub mod workflow;
