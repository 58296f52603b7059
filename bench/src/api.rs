//! Scenario `api`: the list API over many stored workflows. `--events N`
//! finished workflows (100,000 by default; 50 templates, two labels each)
//! are written to a store, and `argon server`'s router answers on a real
//! port: the first page of 100, a page deep into the list (by its
//! `continue` token), a page of one template's runs (label selector), a
//! page by phase (field selector), the watch stream's first event, and the
//! whole list without `limit` once. The raw limit beside them: a bare axum
//! handler answering a body of the same size as the first page.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use argon_crds::workflow::{Workflow, WorkflowPhase, WorkflowStatus};
use argon_engine::{Engine, EngineConfig, ExecutorChoice};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Options;

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One GET: the body and how long until its last byte.
async fn get(sender: &mut Sender, addr: SocketAddr, path: &str) -> anyhow::Result<(Bytes, Duration)> {
    sender.ready().await?;
    let request = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::new())?;
    let start = Instant::now();
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let took = start.elapsed();
    if !status.is_success() {
        bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok((body, took))
}

/// Median and worst of `rounds` GETs of `path`.
async fn measure(
    sender: &mut Sender,
    addr: SocketAddr,
    path: &str,
    rounds: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..rounds {
        let (body, took) = get(sender, addr, path).await?;
        size = body.len();
        times.push(took);
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() - 1], size))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn finished(i: usize) -> Workflow {
    let mut wf = Workflow::new(&format!("run-{i:06}"), Default::default());
    wf.metadata.namespace = Some("default".into());
    wf.metadata.uid = Some(format!("00000000-0000-0000-0000-{i:012}"));
    wf.metadata.labels = Some(
        [
            (
                argon_client::api::WORKFLOW_TEMPLATE_LABEL.to_string(),
                format!("template-{:02}", i % 50),
            ),
            ("team".to_string(), format!("team-{}", i % 7)),
        ]
        .into(),
    );
    wf.metadata.creation_timestamp = Some(argon_engine::time::now());
    wf.spec.entrypoint = Some("main".into());
    wf.status = Some(WorkflowStatus {
        phase: Some(if i.is_multiple_of(10) {
            WorkflowPhase::Failed
        } else {
            WorkflowPhase::Succeeded
        }),
        started_at: Some(argon_engine::time::now()),
        finished_at: Some(argon_engine::time::now()),
        ..Default::default()
    });
    wf
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let n = options.events;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    let start = Instant::now();
    {
        let store = argon_engine::store::Store::open(&state.join("engine.sqlite"))?;
        for i in 0..n {
            store.insert_workflow(&finished(i), None)?;
        }
    }
    println!(
        "stored {n} finished workflows in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let mut config = EngineConfig::new(&state);
    config.executor = ExecutorChoice::Host;
    let engine: std::sync::Arc<Engine> = Engine::open(config)?;
    let app = argon_engine::server::router(argon_engine::server::ApiState {
        engine,
        auth: Default::default(),
        metrics: None,
        events: None,
    });
    let (addr, _stop) = crate::serve(app).await?;
    let mut c = connect(addr).await?;
    let rounds = options.rounds.max(20);

    let first = "/api/v1/workflows/default?listOptions.limit=100";
    let (first_body, _) = get(&mut c, addr, first).await?;
    let page: serde_json::Value = serde_json::from_slice(&first_body)?;
    let items = page["items"].as_array().map(|a| a.len()).unwrap_or(0);
    if items != 100.min(n) {
        bail!("the first page holds {items} workflows");
    }

    // The raw limit: a bare handler answering a body as large as the first page.
    let body = first_body.clone();
    let bare = axum::Router::new().route(
        "/page",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([(hyper::header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let (bare_addr, _bare_stop) = crate::serve(bare).await?;
    let mut b = connect(bare_addr).await?;
    let (raw_median, raw_worst, raw_size) = measure(&mut b, bare_addr, "/page", rounds).await?;
    println!(
        "bare axum handler, {raw_size} bytes: median {}, worst {}",
        ms(raw_median),
        ms(raw_worst)
    );

    let (median, worst, size) = measure(&mut c, addr, first, rounds).await?;
    println!(
        "first page of 100 of {n}: median {}, worst {} ({size} bytes; {:.1}x the bare handler)",
        ms(median),
        ms(worst),
        median.as_secs_f64() / raw_median.as_secs_f64().max(1e-9)
    );

    let (median, worst, _) = measure(&mut c, addr, "/api/v1/workflows/-?listOptions.limit=100", rounds).await?;
    println!(
        "first page of 100, every namespace: median {}, worst {}",
        ms(median),
        ms(worst)
    );

    // A page deep into the list: follow the tokens half way.
    let mut token = page["metadata"]["continue"].as_str().map(str::to_string);
    let mut pages = 1;
    while pages < (n / 100) / 2 {
        let Some(t) = token.take() else { break };
        let (body, _) = get(&mut c, addr, &format!("{first}&listOptions.continue={t}")).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        token = v["metadata"]["continue"].as_str().map(str::to_string);
        pages += 1;
    }
    if let Some(t) = token {
        let (median, worst, _) = measure(&mut c, addr, &format!("{first}&listOptions.continue={t}"), rounds).await?;
        println!(
            "page {} of 100 (continue token): median {}, worst {}",
            pages + 1,
            ms(median),
            ms(worst)
        );
    }
    let selected = format!(
        "{first}&listOptions.labelSelector={}%3Dtemplate-07",
        argon_client::api::WORKFLOW_TEMPLATE_LABEL.replace('/', "%2F")
    );
    let (median, worst, _) = measure(&mut c, addr, &selected, rounds).await?;
    println!(
        "first 100 runs of one template of 50 (label selector): median {}, worst {}",
        ms(median),
        ms(worst)
    );
    let failed = format!("{first}&listOptions.fieldSelector=status.phase%3DFailed");
    let (median, worst, _) = measure(&mut c, addr, &failed, rounds).await?;
    println!(
        "first 100 Failed (field selector, 1 in 10): median {}, worst {}",
        ms(median),
        ms(worst)
    );

    // The watch stream: until its first event arrives.
    let mut w = connect(addr).await?;
    w.ready().await?;
    let request = Request::get("/api/v1/workflow-events/default?listOptions.fieldSelector=metadata.name%3Drun-000000")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::new())?;
    let start = Instant::now();
    let mut body = w.send_request(request).await?.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .context("no watch event within 30 s")?;
    if frame.is_none() {
        bail!("the watch stream ended at once");
    }
    println!("watch of one workflow by name, first event: {}", ms(start.elapsed()));

    let (body, took) = get(&mut c, addr, "/api/v1/workflows/default").await?;
    println!(
        "whole list without limit: {} in {} ({:.1} MB)",
        n,
        ms(took),
        body.len() as f64 / 1e6
    );
    Ok(())
}
