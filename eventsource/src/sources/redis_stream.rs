//! `redisStream` events: each entry of the streams becomes an event, read
//! with XREADGROUP in a consumer group (created at the streams' end when
//! missing) and acknowledged with XACK only once the bus has stored its
//! event. The consumer name is fixed per event (`argon-SOURCE-EVENT`), so
//! after a crash or a lost connection the entries it read but had not
//! acknowledged (its pending list) are read again first. The event id is
//! derived from the stream and the entry id: a second delivery of an entry
//! the bus already stored is dropped by the bus.

use std::collections::BTreeMap;
use std::time::Duration;

use argon_crds::eventsource::RedisStreamEventSource;
use argon_crds::secret::Secrets;
use redis::AsyncCommands as _;
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::message::{Common, ConnectBackoff, Session};
use crate::Publisher;
use crate::error::Result;

/// The consumer group upstream uses when none is given.
const DEFAULT_GROUP: &str = "argo-events-cg";
/// How long one XREADGROUP waits for new entries.
const BLOCK: Duration = Duration::from_secs(2);

/// One `redisStream` event, ready to run.
pub(crate) struct RedisStreamSource {
    common: Common,
    client: redis::Client,
    streams: Vec<String>,
    group: String,
    consumer: String,
    count: usize,
}

impl RedisStreamSource {
    pub(crate) fn new(source: &str, event: &str, config: &RedisStreamEventSource, secrets: &Secrets) -> Result<Self> {
        // Stream entries are field/value maps, never a body to parse.
        let common = Common::new(
            source,
            event,
            "redisStream",
            config.filter.as_ref(),
            &config.metadata,
            None,
            None,
        )?;
        if config.streams.is_empty() {
            return Err(common.error("streams is empty: name at least one stream"));
        }
        let client = super::redis::client(
            &common,
            secrets,
            &config.host_address,
            config.db,
            config.username.as_deref(),
            config.password.as_ref(),
            config.tls.as_ref(),
        )?;
        Ok(RedisStreamSource {
            client,
            streams: config.streams.clone(),
            group: config
                .consumer_group
                .clone()
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| DEFAULT_GROUP.to_owned()),
            consumer: format!("argon-{source}-{event}"),
            count: config.max_msg_count_per_read.filter(|n| *n > 0).unwrap_or(10) as usize,
            common,
        })
    }
}

impl Session for RedisStreamSource {
    type Error = redis::RedisError;

    fn backoff(&mut self) -> &mut ConnectBackoff {
        &mut self.common.backoff
    }

    fn lost(&self, error: &redis::RedisError) {
        tracing::warn!(event_source = %self.common.source, event = %self.common.event, error = %error, failures = self.common.backoff.failures(), "redis stream read failed; reconnecting");
    }

    /// Creates the consumer groups, then reads.
    async fn consume(&mut self, publisher: &Publisher, shutdown: &CancellationToken) -> redis::RedisResult<()> {
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(BLOCK + Duration::from_secs(10)));
        let mut con = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        for stream in &self.streams {
            let created: redis::RedisResult<()> = con.xgroup_create_mkstream(stream, &self.group, "$").await;
            match created {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e),
            }
        }
        self.common.backoff.reset();
        tracing::debug!(event_source = %self.common.source, event = %self.common.event, streams = ?self.streams, group = %self.group, "redis stream source reading");
        // First what this consumer read before and did not acknowledge,
        // then new entries.
        let mut pending = true;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let ids: Vec<&str> = vec![if pending { "0" } else { ">" }; self.streams.len()];
            let mut options = StreamReadOptions::default()
                .group(&self.group, &self.consumer)
                .count(self.count);
            if !pending {
                options = options.block(BLOCK.as_millis() as usize);
            }
            let read = tokio::select! {
                r = con.xread_options::<_, _, Option<StreamReadReply>>(&self.streams, &ids, &options) => r?,
                () = shutdown.cancelled() => return Ok(()),
            };
            let keys = read.map(|r| r.keys).unwrap_or_default();
            let entries: usize = keys.iter().map(|k| k.ids.len()).sum();
            if pending && entries == 0 {
                pending = false;
                continue;
            }
            for key in keys {
                for entry in key.ids {
                    let values: BTreeMap<String, String> = entry
                        .map
                        .iter()
                        .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap_or_default()))
                        .collect();
                    let data = json!({
                        "stream": key.key,
                        "id": entry.id,
                        "values": values,
                        "metadata": self.common.metadata,
                    });
                    let id = self.common.stable_id(&[&key.key, &entry.id]);
                    if !self.common.deliver(publisher, data, Some(id), shutdown).await {
                        return Ok(());
                    }
                    let _: i64 = con.xack(&key.key, &self.group, &[&entry.id]).await?;
                }
            }
        }
    }
}
