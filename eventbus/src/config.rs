//! Plain configuration of the two buses, kept apart from the running buses.
//! The CLI maps the EventBus manifest onto these structs.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The bus name used when the manifest does not name one.
pub const DEFAULT_BUS: &str = "default";

/// Which bus to open, and how.
#[derive(Clone, Debug, PartialEq)]
pub enum BusConfig {
    /// The embedded durable bus.
    Embedded(EmbeddedConfig),
    /// NATS JetStream.
    JetStream(JetStreamConfig),
}

impl BusConfig {
    /// Parses `nats://HOST:PORT` (also `tls://`, comma-separated lists) or
    /// `embedded:DIR`, with default settings.
    pub fn from_url(url: &str) -> Result<Self> {
        if let Some(dir) = url.strip_prefix("embedded:") {
            if dir.is_empty() {
                return Err(Error::Config(
                    "embedded: needs a directory, e.g. embedded:/var/lib/argon/bus".into(),
                ));
            }
            Ok(BusConfig::Embedded(EmbeddedConfig::new(dir)))
        } else if url.starts_with("nats://") || url.starts_with("tls://") {
            Ok(BusConfig::JetStream(JetStreamConfig::new(url)))
        } else {
            Err(Error::Config(format!(
                "bus URL {url:?} is neither nats://HOST:PORT nor embedded:DIR"
            )))
        }
    }
}

/// Settings of the embedded bus.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedConfig {
    /// Directory holding the store (created if missing).
    pub dir: PathBuf,
    /// Bus name: the first token of every subject.
    pub name: String,
    /// A second publish of an event id within this window is dropped.
    pub dedup_window: Duration,
    /// Events older than this are removed; `None` keeps them forever.
    pub max_age: Option<Duration>,
    /// At most this many events are kept (oldest removed first); `None` for no limit.
    pub max_msgs: Option<u64>,
    /// At most this many bytes of events are kept (oldest removed first);
    /// `None` for no limit. Whole segments are deleted, so the files can hold
    /// up to a segment more.
    pub max_bytes: Option<u64>,
    /// Most publishes committed together in one durable write.
    pub max_batch: usize,
    /// Shortest time between two syncs of the event log. Publishes that
    /// arrive meanwhile share the next sync, so under load each sync (whose
    /// cost is mostly fixed) carries more events; an idle bus syncs a publish
    /// at once. Zero syncs as soon as the previous sync is done. Default
    /// 300 µs: on a 2-core machine it lifts webhook ingest by a sixth and
    /// lowers its p99 (fewer, fuller syncs), while a publish on a quiet bus
    /// waits for nothing.
    pub sync_interval: Duration,
    /// An event log segment is sealed, and a new one started, at this size;
    /// retention deletes whole segments.
    pub segment_bytes: u64,
    /// The newest events are kept in memory, up to this many bytes, so
    /// consumers that keep up read them without touching the disk.
    pub cache_bytes: usize,
}

impl EmbeddedConfig {
    /// Applies the retention of an EventBus manifest's `streamConfig`:
    /// `maxAge`, `maxBytes` and `maxMsgs` (zero or -1: no limit), the same
    /// limits JetStream would keep.
    pub fn apply_stream_settings(&mut self, settings: &StreamSettings) {
        self.max_age = (!settings.max_age.is_zero()).then_some(settings.max_age);
        self.max_bytes = u64::try_from(settings.max_bytes).ok().filter(|b| *b > 0);
        self.max_msgs = u64::try_from(settings.max_msgs).ok().filter(|m| *m > 0);
    }

    /// Defaults: bus `default`, dedup window 2 min, events kept 72 h, at most
    /// 1,000,000 and 1 GiB of them; syncs at most every 300 µs, 64 MiB
    /// segments, 8 MiB cache.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            dir: dir.into(),
            name: DEFAULT_BUS.to_owned(),
            dedup_window: Duration::from_secs(120),
            max_age: Some(Duration::from_secs(72 * 3600)),
            max_msgs: Some(1_000_000),
            max_bytes: Some(1 << 30),
            max_batch: 1024,
            sync_interval: Duration::from_micros(300),
            segment_bytes: 64 << 20,
            cache_bytes: 8 << 20,
        }
    }
}

/// How to authenticate to NATS.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Auth {
    /// No credentials (or credentials inside the URL).
    #[default]
    None,
    /// User name and password.
    UserPassword {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// A bearer token.
    Token(String),
    /// An NKey seed (`SU...`).
    NKey(String),
    /// A `.creds` file (JWT + NKey seed).
    CredentialsFile(PathBuf),
}

/// TLS of the connection to NATS (`jetstreamExotic.tls`), as PEM files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tls {
    /// CA certificates that verify the server, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// The client certificate and its private key, for servers that verify clients.
    pub client_cert: Option<ClientCert>,
    /// Refuse to talk to the server without TLS (also implied by a `tls://` URL).
    pub require_tls: bool,
}

/// A client certificate and its private key, as PEM files.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientCert {
    /// The certificate (chain).
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
}

/// Settings of the JetStream bus.
#[derive(Clone, Debug, PartialEq)]
pub struct JetStreamConfig {
    /// Server URL(s), comma separated: `nats://host:4222` (`jetstreamExotic.url`).
    pub url: String,
    /// Bus name: the stream name and the first token of every subject.
    pub name: String,
    /// The stream settings (`jetstream.streamConfig`).
    pub stream: StreamSettings,
    /// Credentials (`accessSecret`).
    pub auth: Auth,
    /// TLS (`tls`).
    pub tls: Tls,
    /// How long `publish` waits for the stored confirmation before failing
    /// with [`Error::Timeout`] or [`Error::Unavailable`] (default 5 s).
    pub publish_timeout: Duration,
    /// How long connecting and JetStream API calls may take.
    pub connect_timeout: Duration,
}

impl JetStreamConfig {
    /// Defaults: bus `default`, default stream settings, no auth, no TLS
    /// files, 5 s publish timeout.
    pub fn new(url: impl Into<String>) -> Self {
        JetStreamConfig {
            url: url.into(),
            name: DEFAULT_BUS.to_owned(),
            stream: StreamSettings::default(),
            auth: Auth::None,
            tls: Tls::default(),
            publish_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Retention policy of the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Retention {
    /// Keep events until a limit removes them (0).
    #[default]
    Limits,
    /// Keep events while a consumer is interested (1).
    Interest,
    /// Remove an event once one consumer acked it (2).
    WorkQueue,
}

/// What the stream does when full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Discard {
    /// Remove the oldest events (0).
    #[default]
    Old,
    /// Refuse new events (1).
    New,
}

/// JetStream stream settings, as in the EventBus manifest's `streamConfig`
/// YAML string: `maxMsgs`, `maxAge`, `maxBytes`, `replicas`, `duplicates`,
/// `retention` (0 limits, 1 interest, 2 work queue), `discard` (0 old, 1 new).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSettings {
    /// Most events kept; -1 for no limit.
    pub max_msgs: i64,
    /// Oldest event kept; zero for no limit.
    pub max_age: Duration,
    /// Most bytes kept; -1 for no limit.
    pub max_bytes: i64,
    /// Copies of each event in a cluster.
    pub replicas: usize,
    /// Dedup window on `Nats-Msg-Id`.
    pub duplicates: Duration,
    /// Retention policy.
    pub retention: Retention,
    /// Discard policy.
    pub discard: Discard,
}

impl Default for StreamSettings {
    /// 1,000,000 events, 72 h, 1 GiB, 1 replica, 5 min dedup window.
    fn default() -> Self {
        StreamSettings {
            max_msgs: 1_000_000,
            max_age: Duration::from_secs(72 * 3600),
            max_bytes: 1 << 30,
            replicas: 1,
            duplicates: Duration::from_secs(300),
            retention: Retention::Limits,
            discard: Discard::Old,
        }
    }
}

impl StreamSettings {
    /// Parses the `streamConfig` YAML string; absent keys keep their defaults.
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Wire {
            max_msgs: Option<i64>,
            max_age: Option<GoDuration>,
            max_bytes: Option<i64>,
            replicas: Option<usize>,
            duplicates: Option<GoDuration>,
            retention: Option<u8>,
            discard: Option<u8>,
        }
        let mut settings = StreamSettings::default();
        if yaml.trim().is_empty() {
            return Ok(settings);
        }
        let wire: Wire = serde_norway::from_str(yaml).map_err(|e| Error::Config(format!("streamConfig: {e}")))?;
        if let Some(v) = wire.max_msgs {
            settings.max_msgs = v;
        }
        if let Some(v) = wire.max_age {
            settings.max_age = v.0;
        }
        if let Some(v) = wire.max_bytes {
            settings.max_bytes = v;
        }
        if let Some(v) = wire.replicas {
            settings.replicas = v.max(1);
        }
        if let Some(v) = wire.duplicates {
            settings.duplicates = v.0;
        }
        settings.retention = match wire.retention {
            None | Some(0) => Retention::Limits,
            Some(1) => Retention::Interest,
            Some(2) => Retention::WorkQueue,
            Some(n) => return Err(Error::Config(format!("streamConfig: retention {n} is not 0, 1 or 2"))),
        };
        settings.discard = match wire.discard {
            None | Some(0) => Discard::Old,
            Some(1) => Discard::New,
            Some(n) => return Err(Error::Config(format!("streamConfig: discard {n} is not 0 or 1"))),
        };
        Ok(settings)
    }
}

/// A duration written as a Go duration string (`72h`, `1m30s`, `500ms`) or an
/// integer number of nanoseconds.
struct GoDuration(Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Nanos(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Nanos(n) => Ok(GoDuration(Duration::from_nanos(n))),
            Raw::Text(s) => parse_go_duration(&s).map(GoDuration).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses a Go duration string such as `72h`, `1h30m`, `1.5s`, `300ms`.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 72h, 5m or 300s");
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_nanos(n));
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stream_config_yaml() {
        let s = StreamSettings::from_yaml(
            "maxMsgs: 50\nmaxAge: 168h\nmaxBytes: -1\nreplicas: 3\nduplicates: 300s\nretention: 0\n",
        )
        .unwrap();
        assert_eq!(s.max_msgs, 50);
        assert_eq!(s.max_age, Duration::from_secs(168 * 3600));
        assert_eq!(s.max_bytes, -1);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.duplicates, Duration::from_secs(300));
        assert!(StreamSettings::from_yaml("maxMgs: 1").is_err());
        assert!(StreamSettings::from_yaml("retention: 7").is_err());
        assert_eq!(StreamSettings::from_yaml("").unwrap(), StreamSettings::default());
    }

    #[test]
    fn embedded_bus_takes_the_stream_retention() {
        let mut config = EmbeddedConfig::new("/tmp/x");
        config.apply_stream_settings(&StreamSettings::from_yaml("maxAge: 1h\nmaxBytes: 1048576\nmaxMsgs: -1").unwrap());
        assert_eq!(config.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(config.max_bytes, Some(1 << 20));
        assert_eq!(config.max_msgs, None);
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_go_duration("300ms").unwrap(), Duration::from_millis(300));
        assert!(parse_go_duration("3 days").is_err());
    }

    #[test]
    fn parses_urls() {
        assert!(matches!(
            BusConfig::from_url("nats://127.0.0.1:4222").unwrap(),
            BusConfig::JetStream(_)
        ));
        let BusConfig::Embedded(e) = BusConfig::from_url("embedded:/tmp/x").unwrap() else {
            panic!("embedded")
        };
        assert_eq!(e.dir, PathBuf::from("/tmp/x"));
        assert!(BusConfig::from_url("http://x").is_err());
    }
}
