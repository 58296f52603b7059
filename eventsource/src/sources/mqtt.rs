//! `mqtt` events: each message on an MQTT topic becomes an event. Argon
//! subscribes at QoS 1 in a persistent session (`clientId`, clean session
//! off) and acknowledges a message (PUBACK) only once the bus has stored its
//! event, so a message published at QoS 1 that Argon received but had not
//! stored is sent again by the broker after a crash or a reconnect.

use std::sync::Arc;
use std::time::Duration;

use argon_crds::eventsource::MQTTEventSource;
use argon_crds::secret::Secrets;
use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, EventLoop, MqttOptions, Packet, Publish, QoS, TlsConfiguration,
    Transport,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::message::{Common, ConnectBackoff, Session, basic_auth, reconnect};
use crate::Publisher;
use crate::error::Result;

/// One `mqtt` event, ready to run.
pub(crate) struct MqttSource {
    common: Common,
    topic: String,
    options: MqttOptions,
}

impl MqttSource {
    pub(crate) fn new(source: &str, event: &str, config: &MQTTEventSource, secrets: &Secrets) -> Result<Self> {
        let common = Common::new(
            source,
            event,
            "mqtt",
            config.filter.as_ref(),
            &config.metadata,
            config.json_body,
            config.connection_backoff.as_ref(),
        )?;
        if config.topic.trim().is_empty() {
            return Err(common.error("topic is empty"));
        }
        if config.client_id.trim().is_empty() {
            return Err(common
                .error("clientId is empty; the broker keeps the session (and the unacknowledged messages) under it"));
        }
        let (scheme, host, port) = parse_url(&config.url).map_err(|why| common.error(why))?;
        let mut options = MqttOptions::new(config.client_id.clone(), host, port);
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_clean_session(false)
            .set_manual_acks(true);
        if let Some(auth) = &config.auth {
            let (user, password) = basic_auth(&common, secrets, auth)?;
            options.set_credentials(user, password);
        }
        let tls_wanted = config.tls.is_some() || matches!(scheme, "ssl" | "tls" | "mqtts");
        if tls_wanted {
            let client = argon_crds::tls::client_config(config.tls.as_ref(), secrets)
                .map_err(|why| common.error(format!("tls: {why}")))?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(client))));
        }
        Ok(MqttSource {
            common,
            topic: config.topic.clone(),
            options,
        })
    }

    pub(crate) async fn run(self, publisher: Publisher, shutdown: CancellationToken) -> Result<()> {
        let MqttSource { common, topic, options } = self;
        // Room for an ack of every message the broker can have in flight
        // (packet ids are 16 bits), so `ack` never waits for room: a sender
        // waiting on a full request channel was not woken by the event loop
        // (seen with rumqttc 0.25: the source stalled after 64 queued acks
        // during a burst). The channel allocates as it fills.
        let (client, eventloop) = AsyncClient::new(options, usize::from(u16::MAX) + 1);
        // The event loop keeps the connection alive (pings, reconnects) while
        // the events are being stored; it hands each message over and the
        // loop below acknowledges it once the bus has it. The broker limits
        // the messages in flight unacknowledged, so the channel never fills
        // up to the point of blocking the connection for long.
        let (tx, mut rx) = mpsc::channel::<Publish>(1024);
        let connection = MqttConnection {
            source: common.source.clone(),
            event: common.event.clone(),
            backoff: common.backoff.clone(),
            eventloop,
            client: client.clone(),
            topic,
            messages: tx,
        };
        let connection = tokio::spawn(reconnect(connection, publisher.clone(), shutdown.clone()));
        let outcome = loop {
            let message = tokio::select! {
                m = rx.recv() => m,
                () = shutdown.cancelled() => break Ok(()),
            };
            let Some(message) = message else {
                break Ok(());
            };
            let data = json!({
                "topic": message.topic,
                "messageId": message.pkid,
                "body": common.body(&message.payload),
                "metadata": common.metadata,
            });
            if !common.deliver(&publisher, data, None, &shutdown).await {
                break Ok(());
            }
            if let Err(e) = client.ack(&message).await {
                tracing::warn!(event_source = %common.source, event = %common.event, error = %e, "mqtt ack not sent; the broker will send the message again");
            }
        };
        connection.abort();
        outcome
    }
}

/// The connection of one `mqtt` event: rumqttc's event loop, which
/// reconnects when polled again after an error.
struct MqttConnection {
    source: String,
    event: String,
    backoff: ConnectBackoff,
    eventloop: EventLoop,
    client: AsyncClient,
    topic: String,
    /// Where each message goes to be stored and acknowledged.
    messages: mpsc::Sender<Publish>,
}

impl Session for MqttConnection {
    type Error = ConnectionError;

    fn backoff(&mut self) -> &mut ConnectBackoff {
        &mut self.backoff
    }

    fn lost(&self, error: &ConnectionError) {
        tracing::warn!(event_source = %self.source, event = %self.event, error = %error, failures = self.backoff.failures(), "mqtt connection lost; reconnecting");
    }

    /// Polls the event loop (subscribing at each connection) and hands each
    /// message over; the messages are stored by the source, not here.
    async fn consume(&mut self, _: &Publisher, shutdown: &CancellationToken) -> Result<(), ConnectionError> {
        loop {
            let polled = tokio::select! {
                p = self.eventloop.poll() => p?,
                () = shutdown.cancelled() => return Ok(()),
            };
            match polled {
                MqttEvent::Incoming(Packet::ConnAck(ack)) => {
                    self.backoff.reset();
                    tracing::debug!(event_source = %self.source, event = %self.event, session_present = ack.session_present, "mqtt connected");
                    if let Err(e) = self.client.try_subscribe(self.topic.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(event_source = %self.source, event = %self.event, error = %e, "mqtt subscribe not sent");
                    }
                }
                MqttEvent::Incoming(Packet::Publish(p)) => {
                    // Refused once the source stopped reading: it is shutting down.
                    let Ok(()) = self.messages.send(p).await else {
                        return Ok(());
                    };
                }
                _ => {}
            }
        }
    }
}

/// `tcp://host:1883` (also `mqtt://`, `ssl://`, `tls://`, `mqtts://`, or a
/// bare `host:port`) as (scheme, host, port).
fn parse_url(url: &str) -> Result<(&str, String, u16), String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("tcp", url));
    let scheme = match scheme {
        "tcp" | "mqtt" | "ssl" | "tls" | "mqtts" => scheme,
        other => return Err(format!("url scheme '{other}' is not one of tcp, mqtt, ssl, tls, mqtts")),
    };
    let rest = rest.trim_end_matches('/');
    let default_port = if matches!(scheme, "ssl" | "tls" | "mqtts") {
        8883
    } else {
        1883
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("url '{url}': port '{p}' is not a number"))?,
        ),
        None => (rest, default_port),
    };
    if host.is_empty() {
        return Err(format!("url '{url}' has no host"));
    }
    Ok((scheme, host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("tcp://mqtt.local:1884").unwrap(),
            ("tcp", "mqtt.local".into(), 1884)
        );
        assert_eq!(parse_url("ssl://b").unwrap(), ("ssl", "b".into(), 8883));
        assert_eq!(parse_url("127.0.0.1:1").unwrap(), ("tcp", "127.0.0.1".into(), 1));
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("tcp://x:y").is_err());
    }
}
