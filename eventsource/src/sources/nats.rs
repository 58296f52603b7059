//! `nats` events: each message on a core NATS subject (in a queue group
//! when `queue` is set) becomes an event. Core NATS does not redeliver, so a
//! message that arrives while the bus is down is retried until the bus takes
//! it, and one sent while Argon is not connected is not seen (as upstream).
//! The client reconnects on its own, waiting `connectionBackoff` between
//! attempts, and resubscribes.

use std::collections::BTreeMap;
use std::time::Duration;

use argon_crds::eventsource::NATSEventsSource;
use argon_crds::secret::Secrets;
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::message::{Common, secret};
use crate::Publisher;
use crate::error::Result;

/// One `nats` event, ready to run.
pub(crate) struct NatsEvent {
    common: Common,
    url: String,
    subject: String,
    queue: Option<String>,
    options: async_nats::ConnectOptions,
}

impl NatsEvent {
    pub(crate) fn new(source: &str, event: &str, config: &NATSEventsSource, secrets: &Secrets) -> Result<Self> {
        let common = Common::new(
            source,
            event,
            "nats",
            config.filter.as_ref(),
            &config.metadata,
            config.json_body,
            config.connection_backoff.as_ref(),
        )?;
        if config.subject.trim().is_empty() {
            return Err(common.error("subject is empty"));
        }
        let backoff = common.backoff.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("argon-{source}-{event}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .subscription_capacity(65_536)
            .reconnect_delay_callback(move |attempts| {
                let mut b = backoff.clone();
                let mut wait = Duration::ZERO;
                for _ in 0..attempts.clamp(1, 64) {
                    wait = b.next_wait();
                }
                wait
            });
        if let Some(auth) = &config.auth {
            if let Some(token) = &auth.token {
                options = options.token(secret(&common, secrets, token)?);
            }
            if let Some(basic) = &auth.basic {
                let user = basic
                    .username
                    .as_ref()
                    .map(|s| secret(&common, secrets, s))
                    .transpose()?
                    .unwrap_or_default();
                let password = basic
                    .password
                    .as_ref()
                    .map(|s| secret(&common, secrets, s))
                    .transpose()?
                    .unwrap_or_default();
                options = options.user_and_password(user, password);
            }
            if let Some(nkey) = &auth.nkey {
                options = options.nkey(secret(&common, secrets, nkey)?.trim().to_owned());
            }
            if let Some(creds) = &auth.credential {
                options = options
                    .credentials(&secret(&common, secrets, creds)?)
                    .map_err(|e| common.error(format!("auth.credential: {e}")))?;
            }
        }
        if let Some(tls) = &config.tls {
            let client =
                crate::tls::client_config(Some(tls), secrets).map_err(|why| common.error(format!("tls: {why}")))?;
            options = options.require_tls(true).tls_client_config(client);
        }
        Ok(NatsEvent {
            common,
            url: config.url.clone(),
            subject: config.subject.clone(),
            queue: config.queue.clone().filter(|q| !q.is_empty()),
            options,
        })
    }

    pub(crate) async fn run(self, publisher: Publisher, shutdown: CancellationToken) -> Result<()> {
        let NatsEvent {
            common,
            url,
            subject,
            queue,
            options,
        } = self;
        let client = options
            .connect(url.as_str())
            .await
            .map_err(|e| common.error(format!("cannot connect to NATS at {url}: {e}")))?;
        let subscribed = match &queue {
            Some(q) => client.queue_subscribe(subject.clone(), q.clone()).await,
            None => client.subscribe(subject.clone()).await,
        };
        let mut messages = subscribed.map_err(|e| common.error(format!("cannot subscribe to {subject}: {e}")))?;
        tracing::debug!(event_source = %common.source, event = %common.event, %url, %subject, "nats source subscribed");
        loop {
            let message = tokio::select! {
                m = messages.next() => m,
                () = shutdown.cancelled() => return Ok(()),
            };
            let Some(message) = message else {
                return Err(common.error(format!("the subscription to {subject} ended")));
            };
            let header: BTreeMap<String, Vec<String>> = message
                .headers
                .iter()
                .flat_map(|h| h.iter())
                .map(|(k, v)| (k.to_string(), v.iter().map(|v| v.to_string()).collect()))
                .collect();
            let data = json!({
                "subject": message.subject.as_str(),
                "header": if header.is_empty() { Value::Null } else { json!(header) },
                "body": common.body(&message.payload),
                "metadata": common.metadata,
            });
            if !common.deliver(&publisher, data, None, &shutdown).await {
                return Ok(());
            }
        }
    }
}
