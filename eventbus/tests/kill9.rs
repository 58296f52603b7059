//! A process publishing to the embedded bus is killed with SIGKILL; every
//! event whose `publish` had returned is found after reopening the store.
//!
//! The test binary runs itself as the child: `publisher_child` does the
//! publishing when `ARGON_KILL9_DIR` is set, and is a no-op otherwise.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use argon_eventbus::embedded::EmbeddedBus;
use argon_eventbus::{ConsumerSpec, EmbeddedConfig, Event, EventBus};
use futures::StreamExt as _;
use serde_json::json;

const DIR_VAR: &str = "ARGON_KILL9_DIR";

/// The child: publishes from 32 tasks forever, printing each id once its
/// publish returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else { return };
    let bus = Arc::new(EmbeddedBus::open(EmbeddedConfig::new(dir)).await.unwrap());
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let event = Event::new("s", "e", "webhook", &json!({"worker": worker, "n": n}));
                bus.publish(&event).await.unwrap();
                println!("published {}", event.context.id);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn kill9_after_publish_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "publisher_child", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut published = BTreeSet::new();
    // Kill mid-stream, once a good number of publishes have returned.
    while published.len() < 2000 {
        let line = lines.next().expect("child stopped publishing").unwrap();
        if let Some(id) = line.strip_prefix("published ") {
            published.insert(id.to_owned());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Whatever the child printed before dying was also acknowledged to it.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix("published ") {
            published.insert(id.to_owned());
        }
    }

    let bus = EmbeddedBus::open(EmbeddedConfig::new(dir.path())).await.unwrap();
    // Sequences go on after the restored events, none handed out twice.
    let next = bus
        .publish(&Event::new("s", "e", "webhook", &json!({"after": true})))
        .await
        .unwrap();
    assert!(
        next.sequence > published.len() as u64,
        "sequence {} reused after reopen ({} were published)",
        next.sequence,
        published.len()
    );
    let mut sub = bus.subscribe(&ConsumerSpec::new("check")).await.unwrap();
    let mut missing = published.clone();
    while !missing.is_empty() {
        let d = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{} published events missing after kill -9", missing.len()))
            .unwrap()
            .unwrap();
        missing.remove(&d.event.context.id);
        d.ack().await.unwrap();
    }
}
