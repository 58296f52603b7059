//! `slack` triggers: post a message with Slack's Web API `chat.postMessage`.
//! The base URL is `https://slack.com/api` unless Argon's `apiURL` says
//! otherwise. A message of a `thread.messageAggregationKey` goes into the
//! thread the first message of that key opened (remembered in memory, as
//! upstream does). Rate limits, 5xx answers and Slack's own transient
//! errors are retried by the trigger's retry strategy; the others (a bad
//! token, an unknown channel) are not. A bot that is not in the channel
//! joins it (looking its id up by name) and posts again.

use std::collections::HashMap;
use std::time::Duration;

use argon_crds::secret::Secrets;
use argon_crds::sensor::SlackTrigger;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::Request;
use super::client::HttpClient;
use crate::{Error, Result};

/// Slack's Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";
/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The message of one firing.
pub fn prepare(trigger: &str, config: &SlackTrigger, secrets: &Secrets, redact: bool) -> Result<Request> {
    let bad = |m: String| Error::permanent(trigger, m);
    let channel = config
        .channel
        .clone()
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| bad("slack.channel is empty: name the channel to post to".into()))?;
    let mut body = Map::new();
    body.insert("channel".into(), json!(channel));
    if let Some(text) = config.message.as_deref().filter(|m| !m.is_empty()) {
        body.insert("text".into(), json!(text));
    }
    for (field, text) in [("attachments", &config.attachments), ("blocks", &config.blocks)] {
        if let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) {
            let value: Value =
                serde_json::from_str(text).map_err(|e| bad(format!("slack.{field} is not JSON: {e}")))?;
            if !value.is_array() {
                return Err(bad(format!("slack.{field} must be a JSON array")));
            }
            body.insert(field.into(), value);
        }
    }
    if !body.contains_key("text") && !body.contains_key("blocks") && !body.contains_key("attachments") {
        return Err(bad(
            "slack trigger has nothing to post: set message, blocks or attachments".into(),
        ));
    }
    if let Some(sender) = &config.sender {
        if let Some(name) = sender.username.as_deref().filter(|n| !n.is_empty()) {
            body.insert("username".into(), json!(name));
        }
        if let Some(icon) = sender.icon.as_deref().filter(|i| !i.is_empty()) {
            let field = if icon.starts_with(':') && icon.ends_with(':') {
                "icon_emoji"
            } else {
                "icon_url"
            };
            body.insert(field.into(), json!(icon));
        }
    }
    let token = match (&config.slack_token, redact) {
        (None, _) => {
            return Err(bad(
                "slack.slackToken is not set: name the secret holding the bot token".into(),
            ));
        }
        (Some(_), true) => String::new(),
        (Some(selector), false) => secrets
            .require(selector)
            .map_err(|e| bad(format!("slack.slackToken: {e}")))?
            .trim()
            .to_owned(),
    };
    let base = config
        .api_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_API_URL)
        .trim_end_matches('/');
    let thread = config.thread.as_ref();
    Ok(Request::Slack {
        url: format!("{base}/chat.postMessage"),
        body: Value::Object(body),
        thread_key: thread
            .and_then(|t| t.message_aggregation_key.clone())
            .filter(|k| !k.is_empty()),
        broadcast: thread.and_then(|t| t.broadcast_message_to_channel).unwrap_or(false),
        token,
    })
}

/// Posts messages; remembers the thread of each aggregation key and the id
/// of each channel name it had to look up.
pub struct Poster {
    client: HttpClient,
    threads: Mutex<HashMap<String, String>>,
    channel_ids: Mutex<HashMap<String, String>>,
}

/// How a Web API call went wrong.
enum CallError {
    /// Slack answered `ok: false` with this error.
    Slack(String),
    /// The call failed otherwise (the trigger's error).
    Other(Error),
}

impl Poster {
    /// A poster verifying Slack's certificate against the system roots.
    pub fn new() -> Result<Self> {
        let tls = super::tls::client_config("slack", None, &Secrets::default())?;
        Ok(Poster {
            client: HttpClient::new(tls),
            threads: Mutex::default(),
            channel_ids: Mutex::default(),
        })
    }

    /// Posts the message; the error says whether a retry can help. When the
    /// bot is not in the channel (`not_in_channel`), it looks the channel's
    /// id up by name (`conversations.list`), joins it (`conversations.join`)
    /// and posts again, as upstream does.
    pub async fn execute(&self, trigger: &str, request: &Request) -> Result<()> {
        let Request::Slack {
            url,
            body,
            thread_key,
            broadcast,
            token,
        } = request
        else {
            return Err(Error::permanent(trigger, "not a Slack request"));
        };
        let mut body = body.clone();
        if let Some(key) = thread_key
            && let Some(ts) = self.threads.lock().await.get(key)
        {
            body["thread_ts"] = json!(ts);
            if *broadcast {
                body["reply_broadcast"] = json!(true);
            }
        }
        let answer = match self.call(trigger, "POST", url, token, Some(&body)).await {
            Err(CallError::Slack(error)) if error == "not_in_channel" => {
                let base = url.strip_suffix("/chat.postMessage").unwrap_or(url);
                let channel = body["channel"].as_str().unwrap_or_default().to_owned();
                self.join(trigger, base, token, &channel).await?;
                self.call(trigger, "POST", url, token, Some(&body)).await
            }
            other => other,
        }
        .map_err(|e| refused(trigger, "the message", e))?;
        if let Some(key) = thread_key
            && let Some(ts) = answer["ts"].as_str()
        {
            self.threads
                .lock()
                .await
                .entry(key.clone())
                .or_insert_with(|| ts.to_owned());
        }
        Ok(())
    }

    /// Joins `channel` (a name, with or without `#`, or an id).
    async fn join(&self, trigger: &str, base: &str, token: &str, channel: &str) -> Result<()> {
        let id = self.channel_id(trigger, base, token, channel).await?;
        self.call(
            trigger,
            "POST",
            &format!("{base}/conversations.join"),
            token,
            Some(&json!({"channel": id})),
        )
        .await
        .map_err(|e| refused(trigger, &format!("joining channel {channel}"), e))?;
        Ok(())
    }

    /// The id of the channel named `channel`: looked up page by page in
    /// the workspace's public and private channels, then remembered. A
    /// channel given by its id is its own id.
    async fn channel_id(&self, trigger: &str, base: &str, token: &str, channel: &str) -> Result<String> {
        let name = channel.trim_start_matches('#');
        if let Some(id) = self.channel_ids.lock().await.get(name) {
            return Ok(id.clone());
        }
        let mut cursor = String::new();
        loop {
            let url = format!(
                "{base}/conversations.list?types=public_channel,private_channel&exclude_archived=true&limit=200{}",
                if cursor.is_empty() {
                    String::new()
                } else {
                    format!(
                        "&cursor={}",
                        form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>()
                    )
                }
            );
            let page = self
                .call(trigger, "GET", &url, token, None)
                .await
                .map_err(|e| refused(trigger, "listing channels", e))?;
            for c in page["channels"].as_array().into_iter().flatten() {
                let (Some(id), Some(n)) = (c["id"].as_str(), c["name"].as_str()) else {
                    continue;
                };
                if n == name || id == name {
                    self.channel_ids.lock().await.insert(name.to_owned(), id.to_owned());
                    return Ok(id.to_owned());
                }
            }
            let next = page["response_metadata"]["next_cursor"].as_str().unwrap_or_default();
            // A cursor that does not move would page forever.
            let stuck = next == cursor;
            cursor = next.to_owned();
            if cursor.is_empty() || stuck {
                return Err(Error::permanent(
                    trigger,
                    format!("Slack refused the message: not_in_channel, and no channel named {name} was found to join"),
                ));
            }
        }
    }

    /// One Web API call: its `ok` answer, or why it failed.
    async fn call(
        &self,
        trigger: &str,
        method: &str,
        url: &str,
        token: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, CallError> {
        let mut headers = vec![("Authorization".to_owned(), format!("Bearer {token}"))];
        let payload = match body {
            Some(body) => {
                headers.push(("Content-Type".to_owned(), "application/json; charset=utf-8".to_owned()));
                serde_json::to_vec(body).unwrap_or_default()
            }
            None => Vec::new(),
        };
        let response = self
            .client
            .send(method, url, &headers, payload.into(), TIMEOUT)
            .await
            .map_err(|e| CallError::Other(Error::transient(trigger, e)))?;
        if response.status == 429 || response.status >= 500 {
            return Err(CallError::Other(Error::transient(
                trigger,
                format!("Slack answered {} at {url}", response.status),
            )));
        }
        if !(200..300).contains(&response.status) {
            return Err(CallError::Other(Error::permanent(
                trigger,
                format!("Slack answered {} at {url}", response.status),
            )));
        }
        let answer: Value = serde_json::from_slice(&response.body).map_err(|e| {
            CallError::Other(Error::transient(
                trigger,
                format!("Slack's answer is not JSON ({e}); is {url} Slack's Web API?"),
            ))
        })?;
        if answer["ok"] != json!(true) {
            return Err(CallError::Slack(
                answer["error"].as_str().unwrap_or("no error given").to_owned(),
            ));
        }
        Ok(answer)
    }
}

/// The trigger's error for a failed call about `what`: Slack's transient
/// errors can be retried, the others cannot.
fn refused(trigger: &str, what: &str, error: CallError) -> Error {
    match error {
        CallError::Other(e) => e,
        CallError::Slack(error) => {
            let message = if what == "the message" {
                format!("Slack refused the message: {error}")
            } else {
                format!("Slack refused {what}: {error}")
            };
            if TRANSIENT.contains(&error.as_str()) {
                Error::transient(trigger, message)
            } else {
                Error::permanent(trigger, message)
            }
        }
    }
}

/// Slack's errors that a later attempt can get past.
const TRANSIENT: [&str; 5] = [
    "ratelimited",
    "service_unavailable",
    "request_timeout",
    "internal_error",
    "fatal_error",
];

#[cfg(test)]
mod tests {
    use super::*;
    use argon_crds::sensor::SlackSender;

    fn config() -> SlackTrigger {
        SlackTrigger {
            slack_token: Some(k8s_openapi::api::core::v1::SecretKeySelector {
                name: "slack".into(),
                key: "token".into(),
                optional: None,
            }),
            channel: Some("general".into()),
            message: Some("hi".into()),
            ..SlackTrigger::default()
        }
    }

    #[test]
    fn the_request_is_chat_post_message_with_slack_field_names() {
        let mut c = config();
        c.sender = Some(SlackSender {
            username: Some("argon".into()),
            icon: Some(":robot_face:".into()),
        });
        c.blocks = Some(r#"[{"type":"divider"}]"#.into());
        let Request::Slack { url, body, .. } = prepare("t", &c, &Secrets::default(), true).unwrap() else {
            panic!("not slack")
        };
        assert_eq!(url, "https://slack.com/api/chat.postMessage");
        assert_eq!(
            body,
            json!({"channel": "general", "text": "hi", "username": "argon", "icon_emoji": ":robot_face:",
                   "blocks": [{"type": "divider"}]})
        );
    }

    #[test]
    fn bad_configurations_are_clear_errors() {
        let mut c = config();
        c.channel = None;
        assert!(
            prepare("t", &c, &Secrets::default(), true)
                .unwrap_err()
                .to_string()
                .contains("channel")
        );
        let mut c = config();
        c.attachments = Some("{not json".into());
        assert!(
            prepare("t", &c, &Secrets::default(), true)
                .unwrap_err()
                .to_string()
                .contains("attachments is not JSON")
        );
        let mut c = config();
        c.slack_token = None;
        assert!(
            prepare("t", &c, &Secrets::default(), true)
                .unwrap_err()
                .to_string()
                .contains("slackToken")
        );
    }
}
