//! `redis` events: each message on the subscribed Redis pub/sub channels
//! becomes an event. Pub/sub keeps nothing: a message published while Argon
//! is not subscribed is not seen (as upstream); one received while the bus
//! is down is retried until the bus takes it. A lost connection is opened
//! again after `connectionBackoff`-style waits (doubling from 1 s, at most
//! 30 s), and the channels are subscribed again.

use argon_crds::common::TLSConfig;
use argon_crds::eventsource::RedisEventSource;
use argon_crds::secret::Secrets;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::SecretKeySelector;
use redis::{ConnectionAddr, IntoConnectionInfo as _, RedisConnectionInfo};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::message::{Common, ConnectBackoff, Session, secret};
use crate::Publisher;
use crate::error::Result;

/// One `redis` event, ready to run.
pub(crate) struct RedisSource {
    common: Common,
    client: redis::Client,
    channels: Vec<String>,
}

impl RedisSource {
    pub(crate) fn new(source: &str, event: &str, config: &RedisEventSource, secrets: &Secrets) -> Result<Self> {
        let common = Common::new(
            source,
            event,
            "redis",
            config.filter.as_ref(),
            &config.metadata,
            config.json_body,
            None,
        )?;
        if config.channels.is_empty() {
            return Err(common.error("channels is empty: name at least one channel"));
        }
        let client = client(
            &common,
            secrets,
            &config.host_address,
            config.db,
            config.username.as_deref(),
            config.password.as_ref(),
            config.tls.as_ref(),
        )?;
        Ok(RedisSource {
            common,
            client,
            channels: config.channels.clone(),
        })
    }
}

/// Why a subscription ended.
pub(crate) enum Lost {
    /// Connecting or subscribing failed.
    Subscribe(redis::RedisError),
    /// The server closed the connection.
    Closed,
}

impl Session for RedisSource {
    type Error = Lost;

    fn backoff(&mut self) -> &mut ConnectBackoff {
        &mut self.common.backoff
    }

    fn lost(&self, error: &Lost) {
        let common = &self.common;
        match error {
            Lost::Subscribe(e) => {
                tracing::warn!(event_source = %common.source, event = %common.event, error = %e, failures = common.backoff.failures(), "cannot subscribe to redis; retrying");
            }
            Lost::Closed => {
                tracing::warn!(event_source = %common.source, event = %common.event, "redis connection lost; reconnecting");
            }
        }
    }

    /// Subscribes to the channels, then reads.
    async fn consume(&mut self, publisher: &Publisher, shutdown: &CancellationToken) -> Result<(), Lost> {
        let RedisSource {
            common,
            client,
            channels,
        } = self;
        let mut pubsub = subscribe(client, channels).await.map_err(Lost::Subscribe)?;
        common.backoff.reset();
        tracing::debug!(event_source = %common.source, event = %common.event, ?channels, "redis source subscribed");
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                m = messages.next() => m,
                () = shutdown.cancelled() => return Ok(()),
            };
            let Some(message) = message else {
                return Err(Lost::Closed);
            };
            let pattern: Option<String> = message.get_pattern().ok();
            let data = json!({
                "channel": message.get_channel_name(),
                "pattern": pattern,
                "body": common.body(message.get_payload_bytes()),
                "metadata": common.metadata,
            });
            if !common.deliver(publisher, data, None, shutdown).await {
                return Ok(());
            }
        }
    }
}

async fn subscribe(client: &redis::Client, channels: &[String]) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    for channel in channels {
        pubsub.subscribe(channel).await?;
    }
    Ok(pubsub)
}

/// The client of a Redis server: `host:port`, database, ACL user and
/// password from a secret, and TLS (`caCertSecret`, client certificate,
/// `insecureSkipVerify`).
pub(crate) fn client(
    common: &Common,
    secrets: &Secrets,
    host_address: &str,
    db: Option<i32>,
    username: Option<&str>,
    password: Option<&SecretKeySelector>,
    tls: Option<&TLSConfig>,
) -> Result<redis::Client> {
    let (host, port) = match host_address.rsplit_once(':') {
        Some((h, p)) => (
            h.to_owned(),
            p.parse::<u16>()
                .map_err(|_| common.error(format!("hostAddress '{host_address}': port '{p}' is not a number")))?,
        ),
        None => (host_address.to_owned(), 6379),
    };
    if host.is_empty() {
        return Err(common.error("hostAddress is empty; give host:port"));
    }
    let addr = match tls {
        Some(t) => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: t.insecure_skip_verify.unwrap_or(false),
            tls_params: None,
        },
        None => ConnectionAddr::Tcp(host, port),
    };
    let mut settings = RedisConnectionInfo::default().set_db(i64::from(db.unwrap_or(0)));
    if let Some(user) = username.filter(|u| !u.is_empty()) {
        settings = settings.set_username(user);
    }
    if let Some(selector) = password {
        settings = settings.set_password(secret(common, secrets, selector)?);
    }
    let info = addr
        .into_connection_info()
        .map_err(|e| common.error(format!("hostAddress '{host_address}': {e}")))?
        .set_redis_settings(settings);
    let custom_tls = tls.filter(|t| t.ca_cert_secret.is_some() || t.client_cert_secret.is_some());
    let client = match custom_tls {
        Some(t) => {
            let read = |s: &SecretKeySelector| secret(common, secrets, s).map(String::into_bytes);
            let root_cert = t.ca_cert_secret.as_ref().map(read).transpose()?;
            let client_tls = match (&t.client_cert_secret, &t.client_key_secret) {
                (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                    client_cert: read(cert)?,
                    client_key: read(key)?,
                }),
                _ => None,
            };
            redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls, root_cert })
        }
        None => redis::Client::open(info),
    };
    client.map_err(|e| common.error(format!("redis client: {e}")))
}
