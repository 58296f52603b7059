//! `argon-bench source KIND` (`nats`, `redisStream`, `amqp`, `mqtt`, `sqs`): events/s from
//! a durable message source into the embedded bus, against the broker's own
//! raw consume rate (the same client library consuming and acknowledging
//! the same number of messages, one by one, as the source does) in the same
//! run. Each side reads `--events` messages preloaded into the broker,
//! which the bench starts on a free port in a temp dir (the brokers of the
//! message-source tests, [`argon_eventsource::testing`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use argon_crds::manifest::{LoadReport, load_text};
use argon_crds::secret::Secrets;
use argon_eventbus::{ConsumerSpec, Event, EventBus, KeyValue, PublishAck, Subscription};
use argon_eventsource::testing::{Broker, Kind as BrokerKind};
use argon_eventsource::{EventSourceRunner, RunnerConfig};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::Options;

/// The broker of a source kind.
fn broker_kind(kind: &str) -> anyhow::Result<BrokerKind> {
    Ok(match kind {
        "nats" => BrokerKind::Nats,
        "redisStream" => BrokerKind::Redis,
        "amqp" => BrokerKind::RabbitMq,
        "mqtt" => BrokerKind::Mosquitto,
        "sqs" => BrokerKind::Moto,
        other => bail!("unknown source kind {other:?}; one of {}", KINDS.join(", ")),
    })
}

/// The durable source kinds this bench measures.
pub const KINDS: [&str; 5] = ["nats", "redisStream", "amqp", "mqtt", "sqs"];

/// The embedded bus, counting what it stored.
struct Counting {
    inner: Arc<dyn EventBus>,
    stored: AtomicUsize,
}

#[async_trait::async_trait]
impl EventBus for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn publish(&self, event: &Event) -> argon_eventbus::Result<PublishAck> {
        let ack = self.inner.publish(event).await?;
        self.stored.fetch_add(1, Ordering::Relaxed);
        Ok(ack)
    }
    async fn subscribe(&self, consumer: &ConsumerSpec) -> argon_eventbus::Result<Subscription> {
        self.inner.subscribe(consumer).await
    }
    async fn kv(&self, bucket: &str) -> argon_eventbus::Result<Arc<dyn KeyValue>> {
        self.inner.kv(bucket).await
    }
}

pub async fn run(kind: &str, options: &Options) -> anyhow::Result<()> {
    let broker = Broker::start(broker_kind(kind)?);
    let n = options.events;
    let body = format!(r#"{{"payload":"{}"}}"#, "x".repeat(options.size.saturating_sub(14)));
    println!(
        "source {kind}: {n} messages of {} bytes, broker on port {}",
        body.len(),
        broker.port()
    );

    preload(kind, broker.port(), "raw", n, &body).await?;
    let started = Instant::now();
    raw_consume(kind, broker.port(), "raw", n, options.max_time).await?;
    let raw = n as f64 / started.elapsed().as_secs_f64();

    preload(kind, broker.port(), "argon", n, &body).await?;
    let dir = tempfile::tempdir()?;
    let bus = Arc::new(Counting {
        inner: argon_eventbus::open(&format!("embedded:{}", dir.path().display())).await?,
        stored: AtomicUsize::new(0),
    });
    let manifest = manifest(kind, broker.port());
    let mut report = LoadReport::default();
    load_text("bench.yaml", &manifest, &mut report);
    let manifests = report.event_sources();
    anyhow::ensure!(manifests.len() == 1, "the bench manifest did not load: {manifest}");
    // The sqs source reads its AWS keys from secrets; moto takes any.
    let secrets_dir = tempfile::tempdir()?;
    std::fs::create_dir(secrets_dir.path().join("aws"))?;
    std::fs::write(secrets_dir.path().join("aws/accessKey"), "bench")?;
    std::fs::write(secrets_dir.path().join("aws/secretKey"), "bench")?;
    let secrets = Secrets::new(Some(secrets_dir.path().to_owned()));
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running =
        EventSourceRunner::start(&manifests, bus.clone(), &secrets, RunnerConfig::default(), stop.clone()).await?;
    while bus.stored.load(Ordering::Relaxed) < n {
        if started.elapsed() > options.max_time {
            bail!(
                "Argon stored {} of {n} events within {:?}",
                bus.stored.load(Ordering::Relaxed),
                options.max_time
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let argon = n as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = running.wait().await;
    println!(
        "{:<44} {:>10.0} msg/s",
        format!("raw consume + ack ({kind} client)"),
        raw
    );
    println!(
        "{:<44} {:>10.0} events/s  ({:.0}% of raw)",
        format!("argon {kind} source -> embedded bus"),
        argon,
        100.0 * argon / raw
    );
    Ok(())
}

fn manifest(kind: &str, port: u16) -> String {
    let spec = match kind {
        "nats" => format!(
            "  nats:\n    m:\n      url: nats://127.0.0.1:{port}\n      subject: argon.>\n      jsonBody: true\n      \
             jetStream:\n        stream: ARGON\n        consumer: argon-bench\n"
        ),
        "redisStream" => format!(
            "  redisStream:\n    m:\n      hostAddress: 127.0.0.1:{port}\n      streams: [argon]\n      \
             consumerGroup: bench\n      maxMsgCountPerRead: 10\n"
        ),
        "mqtt" => format!(
            "  mqtt:\n    m:\n      url: tcp://127.0.0.1:{port}\n      topic: argon/#\n      \
             clientId: argon-consumer\n      jsonBody: true\n"
        ),
        "sqs" => format!(
            "  sqs:\n    m:\n      region: us-east-1\n      queue: argon\n      endpoint: http://127.0.0.1:{port}\n      \
             waitTimeSeconds: 1\n      jsonBody: true\n      accessKey: {{name: aws, key: accessKey}}\n      \
             secretKey: {{name: aws, key: secretKey}}\n"
        ),
        _ => format!(
            "  amqp:\n    m:\n      url: amqp://guest:guest@127.0.0.1:{port}\n      exchangeName: bench\n      \
             exchangeType: direct\n      routingKey: argon\n      jsonBody: true\n      queueDeclare:\n        \
             name: argon\n        durable: true\n        exclusive: false\n        autoDelete: false\n"
        ),
    };
    format!("apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: bench\nspec:\n{spec}")
}

/// Puts `n` messages where the reader named `target` (`raw` or `argon`) reads.
async fn preload(kind: &str, port: u16, target: &str, n: usize, body: &str) -> anyhow::Result<()> {
    match kind {
        "nats" => {
            let js = async_nats::jetstream::new(async_nats::connect(format!("nats://127.0.0.1:{port}")).await?);
            let name = target.to_uppercase();
            js.get_or_create_stream(async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![format!("{target}.>")],
                ..Default::default()
            })
            .await?;
            let mut acks = Vec::with_capacity(1024);
            for _ in 0..n {
                acks.push(js.publish(format!("{target}.m"), body.to_owned().into()).await?);
                if acks.len() == 1024 {
                    for a in acks.drain(..) {
                        a.await?;
                    }
                }
            }
            for a in acks {
                a.await?;
            }
        }
        "redisStream" => {
            let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
                .get_multiplexed_async_connection()
                .await?;
            // The group exists before the entries, at the stream's start.
            let _: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg(&["CREATE", target, "bench", "0", "MKSTREAM"][..])
                .query_async(&mut con)
                .await;
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                let mut pipe = redis::pipe();
                for _ in chunk {
                    pipe.cmd("XADD").arg(target).arg("*").arg("body").arg(body).ignore();
                }
                let () = pipe.query_async(&mut con).await?;
            }
        }
        "mqtt" => mqtt_preload(port, target, n, body).await?,
        "sqs" => {
            let client = argon_eventsource::testing::sqs_client(port);
            let url = client
                .create_queue()
                .queue_name(target)
                .send()
                .await?
                .queue_url
                .context("moto gave no queue url")?;
            for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
                let mut batch = client.send_message_batch().queue_url(&url);
                for i in chunk {
                    batch = batch.entries(
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(body)
                            .build()?,
                    );
                }
                batch.send().await?;
            }
        }
        _ => {
            let url = format!("amqp://guest:guest@127.0.0.1:{port}");
            let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel
                .exchange_declare(
                    "bench".into(),
                    lapin::ExchangeKind::Direct,
                    lapin::options::ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    Default::default(),
                )
                .await?;
            channel
                .queue_declare(
                    target.into(),
                    lapin::options::QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    Default::default(),
                )
                .await?;
            channel
                .queue_bind(
                    target.into(),
                    "bench".into(),
                    target.into(),
                    Default::default(),
                    Default::default(),
                )
                .await?;
            channel
                .confirm_select(lapin::options::ConfirmSelectOptions::default())
                .await?;
            let mut confirms = Vec::with_capacity(1024);
            for _ in 0..n {
                confirms.push(
                    channel
                        .basic_publish(
                            "bench".into(),
                            target.into(),
                            Default::default(),
                            body.as_bytes(),
                            lapin::BasicProperties::default().with_delivery_mode(2),
                        )
                        .await?,
                );
                if confirms.len() == 1024 {
                    for c in confirms.drain(..) {
                        c.await?;
                    }
                }
            }
            for c in confirms {
                c.await?;
            }
            let _ = connection.close(200, "done".into()).await;
        }
    }
    Ok(())
}

/// Consumes and acks `n` messages of `target` with the broker's own client,
/// one ack per message like the source.
async fn raw_consume(kind: &str, port: u16, target: &str, n: usize, max: Duration) -> anyhow::Result<()> {
    let work = async {
        match kind {
            "nats" => {
                use async_nats::jetstream::consumer::{AckPolicy, pull};
                let js = async_nats::jetstream::new(async_nats::connect(format!("nats://127.0.0.1:{port}")).await?);
                let stream = js.get_stream(target.to_uppercase()).await?;
                let consumer: async_nats::jetstream::consumer::Consumer<pull::Config> = stream
                    .get_or_create_consumer(
                        "raw",
                        pull::Config {
                            durable_name: Some("raw".into()),
                            ack_policy: AckPolicy::Explicit,
                            ..Default::default()
                        },
                    )
                    .await?;
                let mut messages = consumer.messages().await?;
                for _ in 0..n {
                    let m = messages.next().await.context("the consumer ended")??;
                    std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&m.payload).ok());
                    m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
            "redisStream" => {
                let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
                    .get_multiplexed_async_connection()
                    .await?;
                let mut seen = 0;
                let options = redis::streams::StreamReadOptions::default()
                    .group("bench", "raw")
                    .count(10);
                while seen < n {
                    let reply: redis::streams::StreamReadReply =
                        redis::AsyncCommands::xread_options(&mut con, &[target], &[">"], &options).await?;
                    for key in reply.keys {
                        for entry in key.ids {
                            let _: i64 = redis::AsyncCommands::xack(&mut con, target, "bench", &[&entry.id]).await?;
                            seen += 1;
                        }
                    }
                }
            }
            "mqtt" => {
                let (client, mut events) = mqtt_client(port, &format!("{target}-consumer"), true);
                let mut seen = 0;
                while seen < n {
                    if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = events.poll().await? {
                        std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&p.payload).ok());
                        client.ack(&p).await?;
                        seen += 1;
                    }
                }
            }
            "sqs" => {
                let client = argon_eventsource::testing::sqs_client(port);
                let url = client
                    .get_queue_url()
                    .queue_name(target)
                    .send()
                    .await?
                    .queue_url
                    .context("no queue url")?;
                let mut seen = 0;
                while seen < n {
                    let got = client
                        .receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .send()
                        .await?;
                    let messages = got.messages.unwrap_or_default();
                    if messages.is_empty() {
                        continue;
                    }
                    // One delete per receive, as the Argon source does.
                    let mut delete = client.delete_message_batch().queue_url(&url);
                    for (i, m) in messages.iter().enumerate() {
                        std::hint::black_box(
                            serde_json::from_str::<serde_json::Value>(m.body().unwrap_or_default()).ok(),
                        );
                        delete = delete.entries(
                            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(m.receipt_handle().unwrap_or_default())
                                .build()?,
                        );
                        seen += 1;
                    }
                    delete.send().await?;
                }
            }
            _ => {
                let url = format!("amqp://guest:guest@127.0.0.1:{port}");
                let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
                let channel = connection.create_channel().await?;
                channel.basic_qos(256, Default::default()).await?;
                let mut consumer = channel
                    .basic_consume(target.into(), "raw".into(), Default::default(), Default::default())
                    .await?;
                for _ in 0..n {
                    let d = consumer.next().await.context("the consumer ended")??;
                    std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&d.data).ok());
                    d.ack(Default::default()).await?;
                }
                let _ = connection.close(200, "done".into()).await;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(max, work)
        .await
        .map_err(|_| anyhow::anyhow!("the raw consumer did not read {n} messages within {max:?}"))?
}

/// An MQTT client in a persistent session (clean session off) named `id`.
fn mqtt_client(port: u16, id: &str, manual_acks: bool) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_clean_session(false)
        .set_manual_acks(manual_acks);
    // Room for every ack the broker may wait for (see the mqtt source).
    rumqttc::AsyncClient::new(options, usize::from(u16::MAX) + 1)
}

/// Opens the persistent session of the reader of `target` with its
/// subscription (so the broker queues for it), then publishes `n` messages.
async fn mqtt_preload(port: u16, target: &str, n: usize, body: &str) -> anyhow::Result<()> {
    let (reader, mut events) = mqtt_client(port, &format!("{target}-consumer"), true);
    reader
        .subscribe(format!("{target}/#"), rumqttc::QoS::AtLeastOnce)
        .await?;
    while !matches!(
        events.poll().await?,
        rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))
    ) {}
    reader.disconnect().await?;
    while !matches!(
        events.poll().await,
        Err(_) | Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect))
    ) {}
    mqtt_publish(port, target, n, body.to_owned()).await
}

/// Publishes `n` messages to the topic of `target` at QoS 1 and waits for
/// each PUBACK.
async fn mqtt_publish(port: u16, target: &str, n: usize, body: String) -> anyhow::Result<()> {
    let (writer, mut events) = mqtt_client(port, &format!("{target}-writer"), false);
    let topic = format!("{target}/m");
    let publishing = tokio::spawn(async move {
        for _ in 0..n {
            writer
                .publish(&topic, rumqttc::QoS::AtLeastOnce, false, body.clone())
                .await?;
        }
        anyhow::Ok(writer)
    });
    let mut acked = 0;
    while acked < n {
        if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = events.poll().await? {
            acked += 1;
        }
    }
    let writer = publishing.await??;
    writer.disconnect().await?;
    Ok(())
}
