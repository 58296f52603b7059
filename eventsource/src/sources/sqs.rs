//! `sqs` events: each message of an SQS queue becomes an event. Messages
//! are received by long polling and deleted only once the bus has stored
//! their event; a message received by an Argon that died before that
//! becomes visible again after the queue's visibility timeout and is
//! received again. The event id comes from the queue and the message id, so
//! the bus drops a second copy of a message it already stored. A failed
//! receive (SQS away, the queue missing) is retried after a backoff.

use std::collections::BTreeMap;

use argon_crds::eventsource::SQSEventSource;
use argon_crds::secret::Secrets;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::message::{Common, ConnectBackoff, Session, secret};
use crate::Publisher;
use crate::error::Result;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One `sqs` event, ready to run.
pub(crate) struct SqsSource {
    common: Common,
    client: aws_sdk_sqs::Client,
    queue: String,
    account: Option<String>,
    wait_seconds: i32,
    json_body: bool,
}

impl SqsSource {
    pub(crate) fn new(source: &str, event: &str, config: &SQSEventSource, secrets: &Secrets) -> Result<Self> {
        // The body is parsed here (upstream keeps a plain string without
        // jsonBody, not base64), so Common gets no jsonBody.
        let common = Common::new(
            source,
            event,
            "sqs",
            config.filter.as_ref(),
            &config.metadata,
            None,
            None,
        )?;
        if config.queue.trim().is_empty() {
            return Err(common.error("queue is empty"));
        }
        if config.region.trim().is_empty() {
            return Err(common.error("region is empty"));
        }
        if config.role_arn.as_deref().is_some_and(|r| !r.is_empty()) {
            tracing::warn!(event_source = %source, event = %event, "roleARN is not assumed by Argon; the keys or the AWS_* environment variables are used as they are");
        }
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let access_key = match &config.access_key {
            Some(s) => Some(secret(&common, secrets, s)?.trim().to_owned()),
            None => from_env("AWS_ACCESS_KEY_ID"),
        };
        let secret_key = match &config.secret_key {
            Some(s) => Some(secret(&common, secrets, s)?.trim().to_owned()),
            None => from_env("AWS_SECRET_ACCESS_KEY"),
        };
        let session_token = match &config.session_token {
            Some(s) => Some(secret(&common, secrets, s)?.trim().to_owned()),
            None if config.access_key.is_none() => from_env("AWS_SESSION_TOKEN"),
            None => None,
        };
        let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
            return Err(common.error(
                "no AWS credentials: set accessKey and secretKey, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in Argon's environment",
            ));
        };
        let mut builder = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(Credentials::new(access_key, secret_key, session_token, None, "argon"));
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.is_empty()) {
            let url = if endpoint.contains("://") {
                endpoint.to_owned()
            } else {
                format!("https://{endpoint}")
            };
            builder = builder.endpoint_url(url);
        }
        let wait_seconds = match config.wait_time_seconds {
            None => 20,
            Some(n @ 0..=20) => n as i32,
            Some(n) => return Err(common.error(format!("waitTimeSeconds is {n}; SQS long polls 0 to 20 seconds"))),
        };
        Ok(SqsSource {
            client: aws_sdk_sqs::Client::from_conf(builder.build()),
            queue: config.queue.clone(),
            account: config.queue_account_id.clone().filter(|a| !a.is_empty()),
            wait_seconds,
            json_body: config.json_body.unwrap_or(false),
            common,
        })
    }

    /// Deletes the received messages whose receipt handles are in `handles`
    /// (at most 10, one receive's worth) in one call; entries SQS reports as
    /// failed are an error, so the source backs off and they are received
    /// again.
    async fn delete(&self, url: &str, handles: &mut Vec<String>) -> Result<(), String> {
        if handles.is_empty() {
            return Ok(());
        }
        let mut batch = self.client.delete_message_batch().queue_url(url);
        for (i, handle) in handles.drain(..).enumerate() {
            batch = batch.entries(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let out = batch
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        match out.failed.first() {
            Some(failed) => Err(format!(
                "SQS did not delete a received message: {} {}",
                failed.code,
                failed.message.as_deref().unwrap_or_default()
            )),
            None => Ok(()),
        }
    }
}

impl Session for SqsSource {
    type Error = BoxError;

    fn backoff(&mut self) -> &mut ConnectBackoff {
        &mut self.common.backoff
    }

    fn lost(&self, error: &BoxError) {
        tracing::warn!(event_source = %self.common.source, event = %self.common.event, queue = %self.queue, error = %error, failures = self.common.backoff.failures(), "sqs receive failed; retrying");
    }

    /// Looks the queue's url up, then receives (a failed call is a failed
    /// connection).
    async fn consume(&mut self, publisher: &Publisher, shutdown: &CancellationToken) -> Result<(), BoxError> {
        let url = self
            .client
            .get_queue_url()
            .queue_name(&self.queue)
            .set_queue_owner_aws_account_id(self.account.clone())
            .send()
            .await
            .map_err(|e| format!("queue '{}': {}", self.queue, aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .queue_url
            .ok_or("SQS gave no url for the queue")?;
        tracing::debug!(event_source = %self.common.source, event = %self.common.event, %url, "sqs source receiving");
        loop {
            let received = tokio::select! {
                r = self
                    .client
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(self.wait_seconds)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .message_attribute_names("All")
                    .send() => r.map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?,
                () = shutdown.cancelled() => return Ok(()),
            };
            self.common.backoff.reset();
            // Every message of the batch is stored on the bus before the
            // batch is deleted in one call; a crash in between redelivers
            // them, and their stable ids keep the bus from storing twice.
            let mut delivered = Vec::new();
            for message in received.messages.unwrap_or_default() {
                let body = message.body.as_deref().unwrap_or_default();
                let body = if self.json_body {
                    self.common.body_json(body.as_bytes())
                } else {
                    Value::String(body.to_owned())
                };
                let attributes: BTreeMap<String, Value> = message
                    .message_attributes
                    .iter()
                    .flatten()
                    .map(|(name, value)| {
                        (
                            name.clone(),
                            json!({
                                "DataType": value.data_type,
                                "StringValue": value.string_value,
                            }),
                        )
                    })
                    .collect();
                let data = json!({
                    "messageId": message.message_id,
                    "messageAttributes": attributes,
                    "body": body,
                    "metadata": self.common.metadata,
                });
                let id = message
                    .message_id
                    .as_deref()
                    .map(|m| self.common.stable_id(&[&self.queue, m]));
                if !self.common.deliver(publisher, data, id, shutdown).await {
                    return Ok(());
                }
                if let Some(handle) = message.receipt_handle {
                    delivered.push(handle);
                }
            }
            self.delete(&url, &mut delivered).await?;
        }
    }
}
