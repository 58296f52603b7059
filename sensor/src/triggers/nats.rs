//! `nats` triggers: publish the payload built from parameters to a subject,
//! flushed to the server; with Argon's `jetStream`, through JetStream,
//! waiting for the stream's ack, the firing's idempotency key as
//! `Nats-Msg-Id` (the stream stores a retried firing once).

use std::collections::HashMap;

use argon_crds::sensor::NATSTrigger;
use tokio::sync::Mutex;

use super::{Request, body_value};
use crate::params::{Events, Parameter, payload};
use crate::{Error, Result};

/// The message of one firing.
pub fn prepare(config: &NATSTrigger, payload_params: &[Parameter], events: &Events) -> Result<Request> {
    let body = payload(payload_params, events)?;
    Ok(Request::Nats {
        url: config.url.clone(),
        subject: config.subject.clone(),
        payload: body_value(&body),
        jet_stream: config.jet_stream.unwrap_or(false),
        raw_payload: body,
    })
}

/// NATS connections by URL, opened on first use.
#[derive(Default)]
pub struct Publisher {
    clients: Mutex<HashMap<String, async_nats::Client>>,
}

impl Publisher {
    /// Publishes and flushes (the message has reached the server when this
    /// returns), or with `jet_stream` waits for the stream's ack.
    pub async fn execute(&self, trigger: &str, request: &Request, key: &str) -> Result<()> {
        let Request::Nats {
            url,
            subject,
            raw_payload,
            jet_stream,
            ..
        } = request
        else {
            return Err(Error::permanent(trigger, "not a NATS request"));
        };
        let client = {
            let mut clients = self.clients.lock().await;
            match clients.get(url) {
                Some(c) => c.clone(),
                None => {
                    let c = async_nats::connect(url.as_str())
                        .await
                        .map_err(|e| Error::transient(trigger, format!("cannot connect to NATS at {url}: {e}")))?;
                    clients.insert(url.clone(), c.clone());
                    c
                }
            }
        };
        if *jet_stream {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", key);
            let ack = async_nats::jetstream::new(client)
                .publish_with_headers(subject.clone(), headers, raw_payload.clone().into())
                .await
                .map_err(|e| Error::transient(trigger, format!("JetStream publish to {subject}: {e}")))?;
            ack.await.map_err(|e| {
                Error::transient(
                    trigger,
                    format!("JetStream did not ack the message on {subject} (does a stream take this subject?): {e}"),
                )
            })?;
            return Ok(());
        }
        client
            .publish(subject.clone(), raw_payload.clone().into())
            .await
            .map_err(|e| Error::transient(trigger, format!("publish to {subject}: {e}")))?;
        client
            .flush()
            .await
            .map_err(|e| Error::transient(trigger, format!("flush to {url}: {e}")))?;
        Ok(())
    }
}
