//! Argon's workflow engine: runs the Argo Workflows that sensors and users
//! submit, each step a real process, with a store, an API server and the
//! client API the sensor and the CLI use.
//!
//! Embed it with [`Engine::open`] and [`serve`]; serve its API with
//! [`server::router`]. It implements the client API of `argon-client`
//! in process; `argon_client::HttpClient` reaches a remote one.

pub mod artifacts;
pub mod cron;
mod engine;
pub mod events;
pub mod executor;
pub mod expr;
pub mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use argon_client::{Error, Result};
pub use engine::{CRON_WORKFLOW_LABEL, Engine, EngineConfig};
pub use executor::{ExecutorChoice, ExecutorKind};

/// Runs the engine ([`Engine::run`]) and its CronWorkflow scheduler
/// ([`cron::schedule`]) until `shutdown` completes.
pub async fn serve(engine: std::sync::Arc<Engine>, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let scheduler = cron::schedule(engine.clone());
    tokio::select! {
        r = engine.run(shutdown) => r,
        _ = scheduler => Ok(()),
    }
}
