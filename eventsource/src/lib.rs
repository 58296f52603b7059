//! argon-eventsource: turns HTTP requests, git hooks and cron ticks into
//! events on the bus.
//!
//! [`EventSourceRunner::start`] runs every event of a set of EventSource
//! manifests: the webhook family (`webhook`, `github`, `gitlab`, `bitbucket`,
//! `bitbucketserver`) on one axum server per port, `calendar` events as
//! timers, the message-queue kinds (`nats`, `mqtt`, `redis`, `redisStream`,
//! `amqp`) and `file` as one task per event holding its connection. A
//! request is answered 2xx only once the bus has durably stored its event;
//! when the bus cannot store it in time the answer is 503 with
//! `Retry-After`. A broker's message is acknowledged only once the bus has
//! stored its event.

pub mod error;
pub mod filter;
pub mod listener;
pub mod metrics;
pub mod server;
pub mod sources;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon_crds::eventsource::{EventConfig, EventSource};
use argon_crds::secret::Secrets;
use argon_eventbus::{Event, EventBus};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Rejection, Result};
pub use metrics::Metrics;
pub use sources::calendar::{Clock, ManualClock, SystemClock};

/// How the runner publishes and serves; the defaults suit production.
#[derive(Clone)]
pub struct RunnerConfig {
    /// Longest wait for the bus to confirm an event; past it the sender gets
    /// 503 (default 5 s).
    pub publish_timeout: Duration,
    /// Sent as `Retry-After` with a 503 (default 1 s, whole seconds).
    pub retry_after: Duration,
    /// Address the webhook ports are bound on (default 0.0.0.0).
    pub host: IpAddr,
    /// Time source of calendar events.
    pub clock: Arc<dyn Clock>,
    /// Deadlines and connection cap of every webhook port.
    pub limits: listener::Limits,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            publish_timeout: Duration::from_secs(5),
            retry_after: Duration::from_secs(1),
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            clock: Arc::new(SystemClock),
            limits: listener::Limits::default(),
        }
    }
}

impl fmt::Debug for RunnerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("publish_timeout", &self.publish_timeout)
            .field("retry_after", &self.retry_after)
            .field("host", &self.host)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// One HTTP endpoint being served, for display:
/// `webhook example POST http://127.0.0.1:12000/example`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The source kind, e.g. `webhook`, `github`.
    pub kind: String,
    /// The EventSource name.
    pub event_source: String,
    /// The event name.
    pub event: String,
    /// The HTTP method accepted.
    pub method: String,
    /// Where to send requests.
    pub url: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {}", self.kind, self.event, self.method, self.url)
    }
}

/// Runs the events of a set of EventSources.
#[derive(Debug)]
pub struct EventSourceRunner;

impl EventSourceRunner {
    /// Reads the secrets, binds every port and starts every event. Returns
    /// once all listeners are up; a missing secret, a port in use or a kind
    /// Argon does not run is an error before anything starts. Cancelling
    /// `shutdown` stops accepting requests, finishes those in flight and
    /// stops the timers.
    pub async fn start(
        manifests: &[EventSource],
        bus: Arc<dyn EventBus>,
        secrets: &Secrets,
        config: RunnerConfig,
        shutdown: CancellationToken,
    ) -> Result<Running> {
        let metrics = Metrics::new()?;
        let publisher = Publisher {
            bus: bus.clone(),
            metrics: metrics.clone(),
            timeout: config.publish_timeout,
            retry_after: config.retry_after,
        };
        let mut routes: BTreeMap<u16, Vec<server::Route>> = BTreeMap::new();
        let mut calendars = Vec::new();
        let mut messages = Vec::new();
        for es in manifests {
            let source_name = es.metadata.name.clone().unwrap_or_default();
            let events = es.spec.events();
            metrics.running(&source_name, events.len() as i64);
            for event in events {
                let name = event.name;
                match event.config {
                    EventConfig::Calendar(c) => {
                        calendars.push(sources::calendar::CalendarEvent::new(&source_name, name, c)?);
                    }
                    ref config => {
                        if let Some(message) = sources::MessageSource::new(&source_name, name, config, secrets)? {
                            messages.push(message);
                            continue;
                        }
                        let Some(context) = config.webhook_context() else {
                            return Err(Error::config(
                                &source_name,
                                name,
                                format!(
                                    "events of kind '{}' are not run by argon eventsource yet \
                                     (supported: webhook, github, gitlab, bitbucket, bitbucketserver, calendar, \
                                     file, nats, mqtt, redis, redisStream, amqp, sqs; kafka needs a broker Argon cannot test against yet)",
                                    event.kind
                                ),
                            ));
                        };
                        let route = server::Route::new(&source_name, name, config, context, secrets, &metrics)?;
                        routes.entry(route.port).or_default().push(route);
                    }
                }
            }
        }

        let mut tasks = JoinSet::new();
        let mut endpoints = Vec::new();
        for (port, port_routes) in routes {
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.host, port))
                .await
                .map_err(|source| Error::Bind {
                    addr: SocketAddr::new(config.host, port).to_string(),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| Error::Bind {
                addr: SocketAddr::new(config.host, port).to_string(),
                source,
            })?;
            let shown_host = if local.ip().is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                local.ip()
            };
            let tls = port_tls(&port_routes)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let base = format!("{scheme}://{}", SocketAddr::new(shown_host, local.port()));
            for r in &port_routes {
                endpoints.push(Endpoint {
                    kind: r.kind.to_string(),
                    event_source: r.source.to_string(),
                    event: r.event.to_string(),
                    method: r.method.to_string(),
                    url: format!("{base}{}", r.path),
                });
            }
            let router = server::router(server::ServerState::new(port_routes, publisher.clone())?);
            let token = shutdown.clone();
            // Longer than any request in flight can take (its publish is
            // bounded, a rejected body's rest is read for at most 5 s).
            let drain = config.publish_timeout + Duration::from_secs(10);
            let limits = config.limits;
            tasks.spawn(async move {
                listener::serve(listener, tls, router, limits, token, drain)
                    .await
                    .map_err(|source| Error::Bind {
                        addr: local.to_string(),
                        source,
                    })
            });
        }
        for calendar in calendars {
            let publisher = publisher.clone();
            let clock = config.clock.clone();
            let token = shutdown.clone();
            // The start time is read now, not when the task first runs, so a
            // tick due right after start is never skipped.
            let started = clock.now();
            tasks.spawn(async move { calendar.run(publisher, clock, started, token).await });
        }
        for message in messages {
            tasks.spawn(message.run(publisher.clone(), shutdown.clone()));
        }
        Ok(Running {
            endpoints,
            metrics,
            tasks,
            shutdown,
        })
    }
}

/// The running event sources.
pub struct Running {
    endpoints: Vec<Endpoint>,
    metrics: Metrics,
    tasks: JoinSet<Result<()>>,
    shutdown: CancellationToken,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The HTTP endpoints served, in port then event order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The metrics of these event sources (serve them with [`server::serve_metrics`]).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Asks everything to stop (same as cancelling the shutdown token).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until every server and timer has stopped: after shutdown, or
    /// at the first that fails (the others are then stopped too). Servers
    /// give requests in flight the publish timeout plus 10 s
    /// ([`server::serve_drained`]).
    pub async fn wait(mut self) -> Result<()> {
        let mut outcome = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let result = match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Ok(()),
            };
            if let Err(e) = result {
                self.shutdown.cancel();
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
        outcome
    }
}

/// Publishes events with a bounded wait, counting them.
#[derive(Clone)]
pub(crate) struct Publisher {
    bus: Arc<dyn EventBus>,
    metrics: Metrics,
    timeout: Duration,
    retry_after: Duration,
}

impl Publisher {
    /// Publishes one event; `Ok` only once the bus confirmed it is stored.
    pub(crate) async fn publish(
        &self,
        event: &Event,
        metrics: &metrics::EventMetrics,
        started: Instant,
    ) -> Result<(), Rejection> {
        let source = &event.context.source;
        let name = &event.context.subject;
        let outcome = tokio::time::timeout(self.timeout, self.bus.publish(event)).await;
        match outcome {
            Ok(Ok(_ack)) => {
                metrics.sent(started.elapsed().as_secs_f64() * 1000.0);
                Ok(())
            }
            Ok(Err(e)) => {
                metrics.sent_failed();
                tracing::warn!(event_source = %source, event = %name, id = %event.context.id, error = %e, "event not published");
                // Whatever the cause (unreachable, slow, disk full), nothing
                // is known to be stored: the sender must retry.
                Err(Rejection::Unavailable {
                    retry_after: self.retry_after,
                })
            }
            Err(_elapsed) => {
                metrics.sent_failed();
                tracing::warn!(event_source = %source, event = %name, id = %event.context.id, timeout = ?self.timeout, "event bus did not confirm in time");
                Err(Rejection::Unavailable {
                    retry_after: self.retry_after,
                })
            }
        }
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }
}

/// The TLS configuration of a port: every event on it must ask for the same
/// certificate and key, or for none.
fn port_tls(routes: &[server::Route]) -> Result<Option<Arc<rustls::ServerConfig>>> {
    let Some(first) = routes.first() else {
        return Ok(None);
    };
    if let Some(other) = routes.iter().find(|r| r.tls != first.tls) {
        let (port, event, source) = (first.port, &first.event, &first.source);
        let reason = match (&first.tls, &other.tls) {
            (Some(_), None) => format!(
                "port {port} serves HTTPS (event '{event}' of '{source}') but this event has no \
                 serverCertSecret/serverKeySecret; give every event on a port the same ones, or use another port"
            ),
            (None, _) => format!(
                "this event asks for HTTPS on port {port}, which serves plain HTTP (event '{event}' of '{source}'); \
                 give every event on a port the same serverCertSecret/serverKeySecret, or use another port"
            ),
            (Some(_), Some(_)) => format!(
                "port {port} already serves HTTPS with another certificate (event '{event}' of '{source}'); \
                 one port has one certificate"
            ),
        };
        return Err(Error::config(&other.source, &other.event, reason));
    }
    first
        .tls
        .as_ref()
        .map(|files| tls::server_config(files).map_err(|reason| Error::config(&first.source, &first.event, reason)))
        .transpose()
}
