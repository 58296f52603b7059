//! `amqp` events: each message of a queue bound to an exchange becomes an
//! event. Argon always acknowledges by hand (`basic.ack`), and only once the
//! bus has stored the event, whatever `consume.autoAck` says: a message
//! delivered but not stored when Argon dies or loses the connection goes
//! back to the queue and is delivered again. For that to hold across
//! restarts the queue must outlive the connection: name it, and leave
//! `exclusive` and `autoDelete` off. A lost connection is opened again after
//! `connectionBackoff` waits, declaring the exchange, queue and binding
//! again.

use std::time::Duration;

use argon_crds::eventsource::AMQPEventSource;
use argon_crds::secret::Secrets;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::message::{Common, ConnectBackoff, Session, basic_auth, secret};
use crate::Publisher;
use crate::error::Result;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Messages handed to Argon at once before their acknowledgements.
const PREFETCH: u16 = 256;

/// One `amqp` event, ready to run.
pub(crate) struct AmqpSource {
    common: Common,
    url: String,
    config: AMQPEventSource,
}

impl AmqpSource {
    pub(crate) fn new(source: &str, event: &str, config: &AMQPEventSource, secrets: &Secrets) -> Result<Self> {
        let common = Common::new(
            source,
            event,
            "amqp",
            config.filter.as_ref(),
            &config.metadata,
            config.json_body,
            config.connection_backoff.as_ref(),
        )?;
        let mut url = match (&config.url, &config.url_secret) {
            (_, Some(selector)) => secret(&common, secrets, selector)?.trim().to_owned(),
            (Some(url), None) if !url.is_empty() => url.clone(),
            _ => return Err(common.error("give the broker's url or urlSecret")),
        };
        if config
            .tls
            .as_ref()
            .is_some_and(|t| t.ca_cert_secret.is_some() || t.client_cert_secret.is_some())
        {
            return Err(common.error(
                "tls certificates from secrets are not supported for amqp yet; use an amqps:// url \
                 (the system's roots verify the broker)",
            ));
        }
        if let Some(auth) = &config.auth {
            let (user, password) = basic_auth(&common, secrets, auth)?;
            url = with_credentials(&url, &user, &password).map_err(|why| common.error(why))?;
        }
        Ok(AmqpSource {
            common,
            url,
            config: config.clone(),
        })
    }
}

impl Session for AmqpSource {
    type Error = BoxError;

    fn backoff(&mut self) -> &mut ConnectBackoff {
        &mut self.common.backoff
    }

    fn lost(&self, error: &BoxError) {
        tracing::warn!(event_source = %self.common.source, event = %self.common.event, error = %error, failures = self.common.backoff.failures(), "amqp connection failed; reconnecting");
    }

    /// Declares the exchange, queue and binding, then consumes.
    async fn consume(&mut self, publisher: &Publisher, shutdown: &CancellationToken) -> Result<(), BoxError> {
        let c = &self.config;
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let exchange = c.exchange_declare.clone().unwrap_or_default();
        let kind = match c.exchange_type.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            other => ExchangeKind::Custom(other.to_owned()),
        };
        channel
            .exchange_declare(
                c.exchange_name.as_str().into(),
                kind,
                ExchangeDeclareOptions {
                    passive: false,
                    durable: exchange.durable.unwrap_or(true),
                    auto_delete: exchange.auto_delete.unwrap_or(false),
                    internal: exchange.internal.unwrap_or(false),
                    nowait: exchange.no_wait.unwrap_or(false),
                },
                FieldTable::default(),
            )
            .await?;
        let q = c.queue_declare.clone().unwrap_or_default();
        let arguments = match q.arguments.as_deref().filter(|a| !a.trim().is_empty()) {
            Some(text) => serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| serde_json::from_value::<FieldTable>(v).ok())
                .unwrap_or_default(),
            None => FieldTable::default(),
        };
        let queue = channel
            .queue_declare(
                q.name.clone().unwrap_or_default().as_str().into(),
                QueueDeclareOptions {
                    passive: false,
                    durable: q.durable.unwrap_or(false),
                    exclusive: q.exclusive.unwrap_or(true),
                    auto_delete: q.auto_delete.unwrap_or(false),
                    nowait: q.no_wait.unwrap_or(false),
                },
                arguments,
            )
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                c.exchange_name.as_str().into(),
                c.routing_key.as_str().into(),
                QueueBindOptions {
                    nowait: c.queue_bind.as_ref().and_then(|b| b.no_wait).unwrap_or(false),
                },
                FieldTable::default(),
            )
            .await?;
        channel.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
        let consume = c.consume.clone().unwrap_or_default();
        let mut consumer = channel
            .basic_consume(
                queue.name().clone(),
                consume
                    .consumer_tag
                    .clone()
                    .unwrap_or_else(|| "argo-events".to_owned())
                    .as_str()
                    .into(),
                BasicConsumeOptions {
                    no_local: consume.no_local.unwrap_or(false),
                    no_ack: false,
                    exclusive: consume.exclusive.unwrap_or(false),
                    nowait: consume.no_wait.unwrap_or(false),
                },
                FieldTable::default(),
            )
            .await?;
        self.common.backoff.reset();
        tracing::debug!(event_source = %self.common.source, event = %self.common.event, queue = %queue.name(), "amqp source consuming");
        loop {
            let delivery = tokio::select! {
                d = consumer.next() => d,
                () = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection.close(200, "shutdown".into())).await;
                    return Ok(());
                }
            };
            let delivery = match delivery {
                Some(d) => d?,
                None => return Err("the broker ended the consumer".into()),
            };
            let p = &delivery.properties;
            let text = |s: &Option<lapin::types::ShortString>| s.as_ref().map(|s| s.as_str().to_owned());
            let data = json!({
                "contentType": text(p.content_type()),
                "contentEncoding": text(p.content_encoding()),
                "deliveryMode": p.delivery_mode(),
                "priority": p.priority(),
                "correlationId": text(p.correlation_id()),
                "replyTo": text(p.reply_to()),
                "expiration": text(p.expiration()),
                "messageId": text(p.message_id()),
                "timestamp": p.timestamp(),
                "type": text(p.kind()),
                "appId": text(p.app_id()),
                "exchange": delivery.exchange.as_str(),
                "routingKey": delivery.routing_key.as_str(),
                "body": self.common.body(&delivery.data),
                "metadata": self.common.metadata,
            });
            // A publisher's message id stays the same when the broker
            // redelivers: the bus then drops the second copy.
            let id = p
                .message_id()
                .as_ref()
                .map(|m| self.common.stable_id(&[c.exchange_name.as_str(), m.as_str()]));
            if !self.common.deliver(publisher, data, id, shutdown).await {
                return Ok(());
            }
            delivery.ack(BasicAckOptions::default()).await?;
        }
    }
}

/// `amqp://host/vhost` with `user:password@` put in, percent-encoded.
fn with_credentials(url: &str, user: &str, password: &str) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("url '{url}' is not amqp://HOST:PORT/VHOST"));
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    Ok(format!("{scheme}://{}:{}@{rest}", encode(user), encode(password)))
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_into_the_url_encoded() {
        assert_eq!(
            with_credentials("amqp://old:x@rabbit:5672/%2f", "me", "p@ss word").unwrap(),
            "amqp://me:p%40ss%20word@rabbit:5672/%2f"
        );
        assert!(with_credentials("rabbit", "a", "b").is_err());
    }
}
