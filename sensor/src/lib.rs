//! argon-sensor: where events become actions.
//!
//! A sensor reads one durable consumer per dependency from the event bus,
//! passes each event through the dependency's transform and filters, keeps
//! the latest event of every dependency (in the bus KV, so a half-met
//! condition survives a restart), and fires each trigger whose condition
//! completes, with its parameters applied. An event is acknowledged only after
//! every trigger it completed has fired or gone to its DLQ trigger.
//!
//! The same code answers `argon sensor test` offline ([`dryrun`]).

pub mod conditions;
pub mod dryrun;
pub mod error;
pub mod event;
pub mod filter;
pub mod metrics;
pub mod params;
pub mod ratelimit;
pub mod retry;
pub mod runner;
pub mod sensor;
pub mod template;
pub mod transform;
pub mod triggers;

pub use error::{Error, Result};
pub use event::SensorEvent;
pub use runner::{RunnerOptions, SensorRunner, Services};
pub use sensor::CompiledSensor;
