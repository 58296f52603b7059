//! `nats` events: each message on a core NATS subject (in a queue group
//! when `queue` is set) becomes an event. Core NATS does not redeliver, so a
//! message that arrives while the bus is down is retried until the bus takes
//! it, and one sent while Argon is not connected is not seen (as upstream).
//! With Argon's `jetStream` field the subject is read from a JetStream
//! stream by a durable pull consumer instead, each message acknowledged
//! only once the bus stored its event: what Argon received and had not
//! stored is delivered again after a crash. The client reconnects on its
//! own, waiting `connectionBackoff` between attempts, and resubscribes.

use std::collections::BTreeMap;
use std::time::Duration;

use argon_crds::eventsource::NATSEventsSource;
use argon_crds::secret::Secrets;
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::message::{Common, ConnectBackoff, Session, reconnect, secret};
use crate::Publisher;
use crate::error::Result;

/// One `nats` event, ready to run.
pub(crate) struct NatsEvent {
    common: Common,
    url: String,
    subject: String,
    queue: Option<String>,
    /// (stream, durable consumer, ack wait) when reading from JetStream.
    jet_stream: Option<(String, String, Duration)>,
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
            let client = argon_crds::tls::client_config(Some(tls), secrets)
                .map_err(|why| common.error(format!("tls: {why}")))?;
            options = options.require_tls(true).tls_client_config(client);
        }
        let jet_stream = match &config.jet_stream {
            None => None,
            Some(js) => {
                if js.stream.trim().is_empty() {
                    return Err(common.error("jetStream.stream is empty"));
                }
                if config.queue.as_deref().is_some_and(|q| !q.is_empty()) {
                    return Err(common.error(
                        "queue and jetStream cannot be combined: a durable consumer is already shared by its readers",
                    ));
                }
                let consumer = js
                    .consumer
                    .clone()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| format!("argon-{source}-{event}"));
                if consumer.contains(['.', '*', '>', ' ']) {
                    return Err(common.error(format!(
                        "jetStream.consumer '{consumer}' may not contain '.', '*', '>' or spaces; name it with jetStream.consumer"
                    )));
                }
                let ack_wait = match js.ack_wait.as_deref().filter(|w| !w.trim().is_empty()) {
                    None => Duration::from_secs(30),
                    Some(text) => argon_crds::time::parse_duration(text)
                        .map_err(|why| common.error(format!("jetStream.ackWait {why}")))?,
                };
                if ack_wait < Duration::from_secs(1) {
                    return Err(common.error("jetStream.ackWait must be at least 1s"));
                }
                Some((js.stream.clone(), consumer, ack_wait))
            }
        };
        Ok(NatsEvent {
            common,
            url: config.url.clone(),
            subject: config.subject.clone(),
            queue: config.queue.clone().filter(|q| !q.is_empty()),
            jet_stream,
            options,
        })
    }

    pub(crate) async fn run(self, publisher: Publisher, shutdown: CancellationToken) -> Result<()> {
        let NatsEvent {
            common,
            url,
            subject,
            queue,
            jet_stream,
            options,
        } = self;
        let client = options
            .connect(url.as_str())
            .await
            .map_err(|e| common.error(format!("cannot connect to NATS at {url}: {e}")))?;
        if let Some((stream, consumer, ack_wait)) = jet_stream {
            let source = JetStreamSource {
                common,
                js: async_nats::jetstream::new(client),
                stream,
                consumer,
                subject,
                ack_wait,
            };
            reconnect(source, publisher, shutdown).await;
            return Ok(());
        }
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
            let data = event_data(&common, &message);
            if !common.deliver(&publisher, data, None, &shutdown).await {
                return Ok(());
            }
        }
    }
}

/// The event data of a message, upstream's shape.
fn event_data(common: &Common, message: &async_nats::Message) -> Value {
    let header: BTreeMap<String, Vec<String>> = message
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .map(|(k, v)| (k.to_string(), v.iter().map(|v| v.to_string()).collect()))
        .collect();
    json!({
        "subject": message.subject.as_str(),
        "header": if header.is_empty() { Value::Null } else { json!(header) },
        "body": common.body(&message.payload),
        "metadata": common.metadata,
    })
}

/// Reads `subject` from `stream` through the durable pull consumer
/// `consumer` (created when missing), acking each message once the bus
/// stored its event. The event id comes from the stream and the message's
/// sequence, so a redelivered message the bus already has is dropped there.
/// A missing stream, a lost connection or a consumer error is retried after
/// `connectionBackoff`.
struct JetStreamSource {
    common: Common,
    js: async_nats::jetstream::Context,
    stream: String,
    consumer: String,
    subject: String,
    ack_wait: Duration,
}

/// Why a JetStream consumer stopped.
enum JetStreamLost {
    /// The stream or the consumer could not be had.
    Unavailable(String),
    /// Reading the consumer's messages failed.
    Failed(async_nats::jetstream::consumer::pull::MessagesError),
    /// The consumer's messages ended.
    Ended,
}

impl Session for JetStreamSource {
    type Error = JetStreamLost;

    fn backoff(&mut self) -> &mut ConnectBackoff {
        &mut self.common.backoff
    }

    fn lost(&self, error: &JetStreamLost) {
        let common = &self.common;
        match error {
            JetStreamLost::Unavailable(e) => {
                tracing::warn!(event_source = %common.source, event = %common.event, error = %e, failures = common.backoff.failures(), "nats jetstream consumer unavailable; retrying");
            }
            JetStreamLost::Failed(e) => {
                tracing::warn!(event_source = %common.source, event = %common.event, error = %e, "nats jetstream consumer failed; consuming again");
            }
            JetStreamLost::Ended => {}
        }
    }

    async fn consume(&mut self, publisher: &Publisher, shutdown: &CancellationToken) -> Result<(), JetStreamLost> {
        use async_nats::jetstream::consumer::{AckPolicy, pull};
        let JetStreamSource {
            common,
            js,
            stream,
            consumer,
            subject,
            ack_wait,
        } = self;
        let attempt = async {
            let handle = js
                .get_stream(stream.as_str())
                .await
                .map_err(|e| format!("stream '{stream}': {e}"))?;
            let pull_consumer: async_nats::jetstream::consumer::Consumer<pull::Config> = handle
                .get_or_create_consumer(
                    consumer,
                    pull::Config {
                        durable_name: Some(consumer.clone()),
                        filter_subject: subject.clone(),
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: *ack_wait,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("consumer '{consumer}' of stream '{stream}': {e}"))?;
            pull_consumer
                .messages()
                .await
                .map_err(|e| format!("consumer '{consumer}' of stream '{stream}': {e}"))
        };
        let mut messages = tokio::select! {
            m = attempt => m.map_err(JetStreamLost::Unavailable)?,
            () = shutdown.cancelled() => return Ok(()),
        };
        common.backoff.reset();
        tracing::debug!(event_source = %common.source, event = %common.event, %stream, %consumer, "nats jetstream source consuming");
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                () = shutdown.cancelled() => return Ok(()),
            };
            let message = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(JetStreamLost::Failed(e)),
                None => return Err(JetStreamLost::Ended),
            };
            let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            let data = event_data(common, &message);
            let id = (sequence > 0).then(|| common.stable_id(&[stream, &sequence.to_string()]));
            if !common.deliver(publisher, data, id, shutdown).await {
                return Ok(());
            }
            // A failed ack means the server sends it again after
            // ack_wait; the bus drops that second copy by its id.
            if let Err(e) = message.ack().await {
                tracing::warn!(event_source = %common.source, event = %common.event, error = %e, "nats jetstream ack failed; the message comes again");
            }
        }
    }
}
