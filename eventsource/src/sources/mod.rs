//! One module per source kind. The webhook family turns a request into zero
//! or more events ([`Receiver`]); `calendar` runs its own timer; the message
//! sources ([`MessageSource`]: `nats`, `mqtt`, `redis`, `redisStream`,
//! `amqp`, `sqs`, `file`) each hold a connection and acknowledge their broker only
//! once the bus has stored the event.

pub(crate) mod amqp;
pub mod bitbucket;
pub mod bitbucketserver;
pub mod calendar;
pub(crate) mod file;
pub mod github;
pub mod gitlab;
pub(crate) mod message;
pub(crate) mod mqtt;
pub(crate) mod nats;
pub(crate) mod redis;
pub(crate) mod redis_stream;
pub(crate) mod sqs;
pub mod webhook;

use std::collections::BTreeMap;

use argon_crds::eventsource::EventConfig;
use argon_crds::secret::Secrets;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use bytes::Bytes;
use hmac::{Hmac, Mac as _};
use serde::ser::{SerializeMap as _, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::error::{Error, Rejection, Result};

/// What one request produced: the event data, and an id when the sender
/// gives one that stays the same across redeliveries.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The event id; a fresh one is made when `None`.
    pub id: Option<String>,
    /// The event data, as JSON text.
    pub data: Box<RawValue>,
}

/// Turns a request of one webhook-family event into events: verifies it,
/// parses it, and decides whether it is an event at all (`Ok(vec![])`: answered
/// 200, nothing published).
pub trait Receiver: Send + Sync {
    /// Handles the request head and its full body.
    fn receive(&self, request: &Parts, body: &Bytes) -> Result<Vec<Incoming>, Rejection>;
}

/// The receiver of one event, its kind name, and its filter expression.
pub(crate) fn receiver<'a>(
    source: &str,
    event: &str,
    config: &EventConfig<'a>,
    secrets: &Secrets,
) -> Result<(&'static str, Box<dyn Receiver>, Option<&'a str>)> {
    let secret = |selector: &k8s_openapi::api::core::v1::SecretKeySelector| {
        secrets.require(selector).map_err(|e| Error::Secret {
            source_name: source.to_owned(),
            event: event.to_owned(),
            secret: Box::new(e),
        })
    };
    let expression = |f: &'a Option<argon_crds::common::EventSourceFilter>| {
        f.as_ref()
            .and_then(|f| f.expression.as_deref())
            .filter(|e| !e.trim().is_empty())
    };
    Ok(match *config {
        EventConfig::Webhook(c) => (
            "webhook",
            Box::new(webhook::Webhook::new(&c.context)),
            expression(&c.filter),
        ),
        EventConfig::Github(c) => (
            "github",
            Box::new(github::Github::new(source, event, c, secret)?),
            expression(&c.filter),
        ),
        EventConfig::Gitlab(c) => (
            "gitlab",
            Box::new(gitlab::Gitlab::new(source, event, c, secret)?),
            expression(&c.filter),
        ),
        EventConfig::Bitbucket(c) => (
            "bitbucket",
            Box::new(bitbucket::Bitbucket::new(source, event, c)),
            expression(&c.filter),
        ),
        EventConfig::BitbucketServer(c) => (
            "bitbucketserver",
            Box::new(bitbucketserver::BitbucketServer::new(source, event, c, secret)?),
            expression(&c.filter),
        ),
        _ => return Err(Error::config(source, event, "not a webhook-family event")),
    })
}

/// An event of a message-queue kind (or `file`), ready to run. Boxed:
/// the sources differ much in size and there is one per event.
pub(crate) enum MessageSource {
    Nats(Box<nats::NatsEvent>),
    Mqtt(Box<mqtt::MqttSource>),
    Redis(Box<redis::RedisSource>),
    RedisStream(Box<redis_stream::RedisStreamSource>),
    Amqp(Box<amqp::AmqpSource>),
    Sqs(Box<sqs::SqsSource>),
    File(Box<file::FileSource>),
}

impl MessageSource {
    /// The message source of an event, `None` for the other kinds.
    pub(crate) fn new(source: &str, event: &str, config: &EventConfig<'_>, secrets: &Secrets) -> Result<Option<Self>> {
        Ok(Some(match *config {
            EventConfig::Nats(c) => MessageSource::Nats(Box::new(nats::NatsEvent::new(source, event, c, secrets)?)),
            EventConfig::Mqtt(c) => MessageSource::Mqtt(Box::new(mqtt::MqttSource::new(source, event, c, secrets)?)),
            EventConfig::Redis(c) => {
                MessageSource::Redis(Box::new(redis::RedisSource::new(source, event, c, secrets)?))
            }
            EventConfig::RedisStream(c) => MessageSource::RedisStream(Box::new(redis_stream::RedisStreamSource::new(
                source, event, c, secrets,
            )?)),
            EventConfig::Amqp(c) => MessageSource::Amqp(Box::new(amqp::AmqpSource::new(source, event, c, secrets)?)),
            EventConfig::Sqs(c) => MessageSource::Sqs(Box::new(sqs::SqsSource::new(source, event, c, secrets)?)),
            EventConfig::File(c) => MessageSource::File(Box::new(file::FileSource::new(source, event, c)?)),
            _ => return Ok(None),
        }))
    }

    /// Runs until shut down; a source whose broker is away keeps retrying.
    pub(crate) async fn run(
        self,
        publisher: crate::Publisher,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<()> {
        // The sources of one connection at a time share the reconnecting
        // loop; the others run their own.
        match self {
            MessageSource::Nats(s) => return s.run(publisher, shutdown).await,
            MessageSource::Mqtt(s) => return s.run(publisher, shutdown).await,
            MessageSource::File(s) => return s.run(publisher, shutdown).await,
            MessageSource::Redis(s) => message::reconnect(*s, publisher, shutdown).await,
            MessageSource::RedisStream(s) => message::reconnect(*s, publisher, shutdown).await,
            MessageSource::Amqp(s) => message::reconnect(*s, publisher, shutdown).await,
            MessageSource::Sqs(s) => message::reconnect(*s, publisher, shutdown).await,
        }
        Ok(())
    }
}

/// Headers whose values never reach the bus.
const MASKED_HEADERS: [&str; 3] = ["authorization", "x-gitlab-token", "proxy-authorization"];

/// The request headers, serialized as `{"Content-Type": ["application/json"], ...}`
/// (names in canonical form, secrets masked) without building a JSON tree.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl serde::Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Straight from the header map: no copies of names or values beyond
        // a name's canonical form (on the stack when it is short).
        let mut map = serializer.serialize_map(Some(self.0.keys_len()))?;
        for name in self.0.keys() {
            let values = HeaderValues {
                map: self.0,
                name,
                masked: MASKED_HEADERS.contains(&name.as_str()),
            };
            let mut buf = [0u8; 64];
            match buf.get_mut(..name.as_str().len()) {
                Some(short) => map.serialize_entry(canonical_header_name_in(name.as_str(), short), &values)?,
                None => map.serialize_entry(&canonical_header_name(name.as_str()), &values)?,
            }
        }
        map.end()
    }
}

/// The values of one header, as a JSON array of strings.
struct HeaderValues<'a> {
    map: &'a HeaderMap,
    name: &'a axum::http::HeaderName,
    masked: bool,
}

impl serde::Serialize for HeaderValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        if self.masked {
            return ["*****"].serialize(serializer);
        }
        let all = self.map.get_all(self.name);
        let mut seq = serializer.serialize_seq(None)?;
        for value in all {
            seq.serialize_element(&String::from_utf8_lossy(value.as_bytes()))?;
        }
        seq.end()
    }
}

/// Serializes event data; the parts are plain JSON values, which cannot fail.
pub(crate) fn to_raw(data: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(data)
        .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON")))
}

/// `x-github-event` -> `X-Github-Event`.
fn canonical_header_name(name: &str) -> String {
    let mut buf = vec![0; name.len()];
    canonical_header_name_in(name, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// [`canonical_header_name`] into `buf`, which is as long as `name`.
fn canonical_header_name_in<'b>(name: &str, buf: &'b mut [u8]) -> &'b str {
    let mut upper = true;
    for (out, c) in buf.iter_mut().zip(name.bytes()) {
        *out = if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        };
        upper = c == b'-';
    }
    // ASCII case changes keep UTF-8 valid (header names are ASCII anyway).
    std::str::from_utf8(buf).unwrap_or_default()
}

/// A header as text, if present and readable.
pub(crate) fn header<'h>(request: &'h Parts, name: &str) -> Option<&'h str> {
    request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The content type's essence, lower case (`application/json`).
pub(crate) fn content_type(request: &Parts) -> String {
    header(request, "content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Checks that a body is JSON (without building a tree), or says precisely
/// why it is not.
pub(crate) fn parse_json(body: &[u8]) -> Result<&RawValue, Rejection> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::BadRequest("body is empty; expected JSON".into()));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| Rejection::BadRequest(format!("body is not valid JSON: not UTF-8 ({e})")))?;
    serde_json::from_str(text.trim()).map_err(|e| Rejection::BadRequest(format!("body is not valid JSON: {e}")))
}

/// `a=1&b=2&b=3` as `{"a": "1", "b": ["2", "3"]}`.
pub(crate) fn form_map(text: &[u8]) -> Value {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(text) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    Value::Object(
        out.into_iter()
            .map(|(k, mut v)| {
                let value = if v.len() == 1 {
                    Value::String(v.remove(0))
                } else {
                    Value::Array(v.into_iter().map(Value::String).collect())
                };
                (k, value)
            })
            .collect::<Map<_, _>>(),
    )
}

/// `{"headers": ..., "body": ..., "metadata": ...}`, the data of the git hosts.
pub(crate) fn git_event_data(request: &Parts, body: &RawValue, metadata: &BTreeMap<String, String>) -> Box<RawValue> {
    #[derive(serde::Serialize)]
    struct GitData<'a> {
        headers: Headers<'a>,
        body: &'a RawValue,
        metadata: &'a BTreeMap<String, String>,
    }
    to_raw(&GitData {
        headers: Headers(&request.headers),
        body,
        metadata,
    })
}

/// Checks `sha256=<hex>` against HMAC-SHA256 of `body` under `secret`, in
/// constant time.
pub(crate) fn verify_hmac_sha256(secret: &[u8], body: &[u8], signature: Option<&str>) -> Result<(), Rejection> {
    let Some(signature) = signature else {
        return Err(Rejection::Unauthorized("missing signature header"));
    };
    let hex = signature.strip_prefix("sha256=").unwrap_or(signature);
    let Some(expected) = decode_hex(hex) else {
        return Err(Rejection::Unauthorized("invalid signature"));
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Rejection::Internal)?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| Rejection::Unauthorized("invalid signature"))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether a delivery's event type is one the manifest asked for (`events`
/// empty or containing `*` means all).
pub(crate) fn wanted(events: &[String], event_type: &str) -> bool {
    events.is_empty() || events.iter().any(|e| e == "*" || e == event_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_header_names() {
        assert_eq!(canonical_header_name("x-github-event"), "X-Github-Event");
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
    }

    #[test]
    fn headers_serialize_with_every_value_and_long_names() {
        let mut headers = HeaderMap::new();
        headers.append("x-multi", "one".parse().unwrap());
        headers.append("x-multi", "two".parse().unwrap());
        headers.append("authorization", "Bearer secret".parse().unwrap());
        let long = format!("x-{}", "a".repeat(80));
        headers.append(
            axum::http::HeaderName::from_bytes(long.as_bytes()).unwrap(),
            "v".parse().unwrap(),
        );
        let json = serde_json::to_value(Headers(&headers)).unwrap();
        assert_eq!(json["X-Multi"], serde_json::json!(["one", "two"]));
        assert_eq!(json["Authorization"], serde_json::json!(["*****"]));
        assert_eq!(json[format!("X-A{}", "a".repeat(79))], serde_json::json!(["v"]));
    }

    #[test]
    fn forms_become_maps() {
        assert_eq!(
            form_map(b"a=1&b=x+y&b=%2F"),
            serde_json::json!({"a": "1", "b": ["x y", "/"]})
        );
    }

    #[test]
    fn hmac_verification() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"body");
        let sig: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(verify_hmac_sha256(b"k", b"body", Some(&format!("sha256={sig}"))).is_ok());
        assert!(verify_hmac_sha256(b"k", b"body!", Some(&format!("sha256={sig}"))).is_err());
        assert!(verify_hmac_sha256(b"k", b"body", None).is_err());
        assert!(verify_hmac_sha256(b"k", b"body", Some("sha256=zz")).is_err());
    }
}
