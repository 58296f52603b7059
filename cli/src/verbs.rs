//! The argo-style verbs beyond `submit` and `get`: `list` and `delete` with
//! argo's selection flags (read page by page, printed as they come),
//! `watch` and `wait` on the server's watch stream, `logs` with its
//! filters, and `cron ...`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use argon_client::list::{COMPLETED_LABEL, ListOptions, PHASE_LABEL};
use argon_client::{HttpClient, LogEntry, TemplateKind, WorkflowAdmin, WorkflowClient};
use argon_crds::workflow::{CronWorkflow, Workflow, WorkflowPhase};
use clap::{Args, Subcommand};

use crate::engine::{Conn, Output, client, ns, print_workflow};
use crate::render::{human, render_list, render_shape, render_workflow};

/// Which workflows `list` and `delete` take: argo's selection flags.
#[derive(Args, Clone, Debug, Default)]
pub struct Selection {
    /// Only workflows whose labels match (k=v, k!=v, k in (a,b), k notin (a), k, !k).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Only workflows whose fields match: metadata.name, metadata.namespace,
    /// status.phase with =, == or !=.
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,
    /// Only workflows in these phases (Pending, Running, Succeeded, Failed,
    /// Error), comma separated or repeated.
    #[arg(long, value_delimiter = ',', value_name = "PHASE")]
    pub status: Vec<String>,
    /// Only finished workflows.
    #[arg(long, conflicts_with = "running")]
    pub completed: bool,
    /// Only workflows that have not finished.
    #[arg(long)]
    pub running: bool,
    /// Only workflows created within this time (30m, 2h, 1d).
    #[arg(long, value_parser = argon_crds::time::parse_duration, value_name = "DURATION")]
    pub since: Option<Duration>,
    /// Only workflows that finished longer ago than this (30m, 2h, 1d).
    #[arg(long, value_parser = argon_crds::time::parse_duration, value_name = "DURATION")]
    pub older: Option<Duration>,
    /// Only workflows whose name starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only the runs of this WorkflowTemplate.
    #[arg(long)]
    pub template: Option<String>,
}

/// The phases a workflow may be in, as `--status` takes them.
const PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Error"];

fn ago(d: Duration) -> Result<String> {
    let d = chrono::Duration::from_std(d).context("the duration is too long")?;
    Ok((chrono::Utc::now() - d).to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

impl Selection {
    /// Whether no flag narrows the selection.
    pub fn is_empty(&self) -> bool {
        self.selector.is_none()
            && self.field_selector.is_none()
            && self.status.is_empty()
            && !self.completed
            && !self.running
            && self.since.is_none()
            && self.older.is_none()
            && self.prefix.is_none()
            && self.template.is_none()
    }

    /// The selection as the API's list options.
    pub fn options(&self) -> Result<ListOptions> {
        let mut o = ListOptions {
            label_selector: self.selector.clone(),
            field_selector: self.field_selector.clone(),
            name_prefix: self.prefix.clone(),
            ..Default::default()
        };
        if !self.status.is_empty() {
            let mut phases = Vec::new();
            for s in &self.status {
                let Some(p) = PHASES.iter().find(|p| p.eq_ignore_ascii_case(s.trim())) else {
                    bail!("--status '{s}' is not a phase; use {}", PHASES.join(", "));
                };
                phases.push(*p);
            }
            o.and_label(&format!("{PHASE_LABEL} in ({})", phases.join(",")));
        }
        if self.completed {
            o.and_label(&format!("{COMPLETED_LABEL}=true"));
        }
        if self.running {
            o.and_label(&format!("{COMPLETED_LABEL}!=true"));
        }
        if let Some(t) = &self.template {
            o.and_label(&argon_client::api::template_selector(t));
        }
        if let Some(d) = self.since {
            o.created_after = Some(ago(d)?);
        }
        if let Some(d) = self.older {
            o.finished_before = Some(ago(d)?);
        }
        Ok(o)
    }
}

/// Which workflows a listing reads: the live ones or the archive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Live,
    Archive,
}

/// Reads the workflows `options` select, `chunk` at a time, handing each
/// page to `each`; returns how many there were.
pub async fn each_page(
    c: &HttpClient,
    source: Source,
    namespace: &str,
    mut options: ListOptions,
    chunk: usize,
    mut each: impl FnMut(Vec<Workflow>) -> Result<()>,
) -> Result<usize> {
    options.limit = (chunk > 0).then_some(chunk);
    let mut n = 0;
    loop {
        let page = match source {
            Source::Live => c.list(namespace, &options).await?,
            Source::Archive => c.archived(namespace, &options).await?,
        };
        n += page.items.len();
        each(page.items)?;
        match page.continue_token {
            Some(t) => options.continue_token = Some(t),
            None => return Ok(n),
        }
    }
}

/// `argon list` (and `argon archive list`).
pub async fn list(
    conn: &Conn,
    source: Source,
    selection: &Selection,
    chunk: usize,
    output: Option<Output>,
    no_headers: bool,
) -> Result<ExitCode> {
    use std::io::Write as _;
    let c = client(conn)?;
    let options = selection.options()?;
    let mut all = Vec::new();
    let mut first = true;
    let mut out = std::io::stdout();
    each_page(&c, source, &ns(conn), options, chunk, |items| {
        match output {
            Some(Output::Json) | Some(Output::Yaml) => all.extend(items),
            Some(Output::Name) => {
                for w in &items {
                    writeln!(out, "{}", w.metadata.name.clone().unwrap_or_default())?;
                }
            }
            _ => {
                // Each page is printed as it comes: a long list starts at once.
                let header = first && !no_headers;
                write!(out, "{}", render_list(&items, output == Some(Output::Wide), header))?;
            }
        }
        first = false;
        Ok(())
    })
    .await?;
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&all)?),
        Some(Output::Yaml) => print!("{}", serde_norway::to_string(&all)?),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `argon delete`: the named workflows, or those the selection takes
/// (`--all` for every one).
pub async fn delete(
    conn: &Conn,
    names: &[String],
    all: bool,
    selection: &Selection,
    dry_run: bool,
) -> Result<ExitCode> {
    let c = client(conn)?;
    let mut targets: Vec<(String, String)> = Vec::new();
    if names.is_empty() {
        if selection.is_empty() && !all {
            bail!(
                "name the workflows to delete, or select them (--all, --completed, --older, --prefix, -l, --status ...)"
            );
        }
        each_page(&c, Source::Live, &ns(conn), selection.options()?, 500, |items| {
            for w in items {
                targets.push((
                    w.metadata.namespace.unwrap_or_default(),
                    w.metadata.name.unwrap_or_default(),
                ));
            }
            Ok(())
        })
        .await?;
    } else {
        for n in names {
            let wf = c.get(&ns(conn), n).await?;
            targets.push((
                wf.metadata.namespace.unwrap_or_default(),
                wf.metadata.name.unwrap_or_default(),
            ));
        }
    }
    for (namespace, name) in targets {
        if dry_run {
            println!("Workflow '{name}' deleted (dry-run)");
            continue;
        }
        match c.delete(&namespace, &name).await {
            Ok(()) => println!("Workflow '{name}' deleted"),
            // Gone meanwhile (its ttl, another client): what was asked holds.
            Err(argon_client::Error::NotFound { .. }) if names.is_empty() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn phase(wf: &Workflow) -> Option<WorkflowPhase> {
    wf.status.as_ref().and_then(|s| s.phase)
}

/// Follows workflow `name` on the server's watch stream, calling `show` on
/// each change, until it finishes; returns it finished. A broken stream
/// (the server restarting) is opened again, for up to a minute.
pub async fn until_done(
    c: &HttpClient,
    namespace: &str,
    name: &str,
    mut show: impl FnMut(&Workflow),
) -> Result<Workflow> {
    let options = ListOptions {
        field_selector: Some(format!("metadata.namespace={namespace},metadata.name={name}")),
        ..Default::default()
    };
    let mut backoff = Duration::from_millis(200);
    let mut broken_since: Option<std::time::Instant> = None;
    loop {
        let mut done: Option<Result<Workflow>> = None;
        let watched = c
            .watch(namespace, &options, |ev| {
                if ev.kind == "DELETED" {
                    done = Some(Err(anyhow::anyhow!("workflow {name} was deleted")));
                    return false;
                }
                show(&ev.workflow);
                if phase(&ev.workflow).is_some_and(|p| p.is_completed()) {
                    done = Some(Ok(ev.workflow));
                    return false;
                }
                true
            })
            .await;
        if let Some(d) = done {
            return d;
        }
        let e = match watched {
            Ok(()) => anyhow::anyhow!("the watch of {name} ended"),
            Err(e) => e.into(),
        };
        let since = *broken_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() > Duration::from_secs(60) {
            return Err(e.context(format!("watching workflow {name}")));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Follows a workflow until it ends, printing its tree as `argon watch`
/// does: redrawn on a terminal, printed when it changes elsewhere.
pub async fn watch(c: &HttpClient, namespace: &str, name: &str) -> Result<Workflow> {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    let done = until_done(c, namespace, name, |wf| {
        let shape = render_shape(wf);
        if tty {
            print!("\x1b[H\x1b[2J{}", render_workflow(wf, false));
        } else if shape != last {
            println!("{}", render_workflow(wf, false));
        }
        last = shape;
    })
    .await?;
    if !tty {
        // The final state, durations included.
        println!("{}", render_workflow(&done, false));
    }
    Ok(done)
}

/// `argon wait NAME...`: until each has finished; fails unless all succeeded.
pub async fn wait(conn: &Conn, names: &[String], ignore_not_found: bool) -> Result<ExitCode> {
    let c = client(conn)?;
    let mut code = ExitCode::SUCCESS;
    for n in names {
        let wf = match c.get(&ns(conn), n).await {
            Ok(wf) => wf,
            Err(argon_client::Error::NotFound { .. }) if ignore_not_found => continue,
            Err(e) => return Err(e.into()),
        };
        let namespace = wf.metadata.namespace.clone().unwrap_or_default();
        let name = wf.metadata.name.clone().unwrap_or_default();
        let done = until_done(&c, &namespace, &name, |_| {}).await?;
        let p = phase(&done).unwrap_or(WorkflowPhase::Error);
        println!("{name} {p:?}");
        if p != WorkflowPhase::Succeeded {
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

/// The filters of `argon logs`.
#[derive(Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// Keep printing until the workflow ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (of what is there when the command starts).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines written within this time (30s, 5m, 1h).
    #[arg(long, value_parser = argon_crds::time::parse_duration, value_name = "DURATION")]
    pub since: Option<Duration>,
    /// Only lines written at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME", conflicts_with = "since")]
    pub since_time: Option<String>,
    /// Only lines matching this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,
    /// The container whose lines to print; Argon keeps the main container's.
    #[arg(short = 'c', long, default_value = "main")]
    pub container: String,
    /// Print each line's time.
    #[arg(long)]
    pub timestamps: bool,
}

/// `argon logs NAME [STEP]`.
pub async fn logs(conn: &Conn, name: &str, step: Option<&str>, args: &LogArgs) -> Result<ExitCode> {
    if args.container != "main" {
        bail!(
            "-c {}: Argon keeps the logs of the main container only (init and sidecar output is not stored)",
            args.container
        );
    }
    let grep = args
        .grep
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--grep")?;
    let since = match (&args.since, &args.since_time) {
        (Some(d), _) => Some(chrono::Utc::now() - chrono::Duration::from_std(*d)?),
        (None, Some(t)) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .with_context(|| format!("--since-time '{t}' is not an RFC 3339 time"))?
                .with_timezone(&chrono::Utc),
        ),
        (None, None) => None,
    };
    let keep = |l: &LogEntry| -> bool {
        step.is_none_or(|s| l.step == s)
            && since.is_none_or(|t| {
                chrono::DateTime::parse_from_rfc3339(&l.time).is_ok_and(|lt| lt.with_timezone(&chrono::Utc) >= t)
            })
            && grep.as_ref().is_none_or(|g| g.is_match(&l.line))
    };
    let print = |l: &LogEntry| {
        use std::io::Write as _;
        let text = if args.timestamps {
            format!("{}: {} {}", l.step, l.time, l.line)
        } else {
            format!("{}: {}", l.step, l.line)
        };
        // A closed pipe (`argon logs X | head`) ends the command quietly.
        if writeln!(std::io::stdout(), "{text}").is_err() {
            std::process::exit(0);
        }
    };
    let c = client(conn)?;
    let wf = c.get(&ns(conn), name).await?;
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let name = wf.metadata.name.clone().unwrap_or_default();
    let mut after = 0;
    if let Some(n) = args.tail {
        // What is there now, its last N lines; then, when following, the rest.
        let mut backlog: Vec<LogEntry> = Vec::new();
        c.stream_logs(&namespace, &name, 0, false, |l| {
            after = l.seq;
            if keep(&l) {
                backlog.push(l);
            }
        })
        .await?;
        for l in &backlog[backlog.len().saturating_sub(n)..] {
            print(l);
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
    }
    c.stream_logs(&namespace, &name, after, args.follow, |l| {
        if keep(&l) {
            print(&l);
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum CronCommand {
    /// Store the CronWorkflows of files (created, or replaced).
    Create {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List CronWorkflows with their schedule, last and next run.
    List {
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a CronWorkflow and its recent runs.
    Get {
        name: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a CronWorkflow (its runs stay).
    Delete {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop scheduling a CronWorkflow.
    Suspend {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Schedule a suspended CronWorkflow again.
    Resume {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn cron_of(v: serde_json::Value) -> Result<CronWorkflow> {
    serde_json::from_value(v).context("the server's CronWorkflow is not understood")
}

fn schedules(c: &CronWorkflow) -> String {
    let mut s: Vec<String> = c.spec.schedules.clone();
    if let Some(one) = c.spec.schedule.clone().filter(|s| !s.is_empty()) {
        s.push(one);
    }
    s.join(",")
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>, now: chrono::DateTime<chrono::Utc>) -> String {
    match t {
        Some(t) if t >= now => human(t - now),
        Some(t) => format!("{} ago", human(now - t)),
        None => "N/A".to_string(),
    }
}

/// `argon cron ...`.
pub async fn cron(command: CronCommand) -> Result<ExitCode> {
    let now = chrono::Utc::now();
    match command {
        CronCommand::Create { files, conn } => crate::engine::store_templates(files, conn, &["CronWorkflow"]).await,
        CronCommand::List { output, conn } => {
            let c = client(&conn)?;
            let items = c.list_templates(TemplateKind::CronWorkflow, &ns(&conn)).await?;
            match output {
                Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&items)?),
                Some(Output::Yaml) => print!("{}", serde_norway::to_string(&items)?),
                Some(Output::Name) => {
                    for i in &items {
                        println!("{}", i["metadata"]["name"].as_str().unwrap_or_default());
                    }
                }
                _ => {
                    println!(
                        "{:<28} {:<12} {:<10} {:<12} {:<12} {:<20} {:<10} SUSPENDED",
                        "NAME", "NAMESPACE", "AGE", "LAST RUN", "NEXT RUN", "SCHEDULE", "TIMEZONE"
                    );
                    for i in items {
                        let cw = cron_of(i)?;
                        let age = cw
                            .metadata
                            .creation_timestamp
                            .as_ref()
                            .map(|t| human(now - argon_engine::time::to_chrono(t)))
                            .unwrap_or_default();
                        let last = cw
                            .status
                            .as_ref()
                            .and_then(|s| s.last_scheduled_time.as_ref())
                            .map(argon_engine::time::to_chrono);
                        println!(
                            "{:<28} {:<12} {:<10} {:<12} {:<12} {:<20} {:<10} {}",
                            cw.metadata.name.clone().unwrap_or_default(),
                            cw.metadata.namespace.clone().unwrap_or_default(),
                            age,
                            when(last, now),
                            when(argon_engine::cron::next_run(&cw, now), now),
                            schedules(&cw),
                            cw.spec.timezone.clone().unwrap_or_default(),
                            cw.spec.suspend.unwrap_or(false)
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CronCommand::Get { name, output, conn } => {
            let c = client(&conn)?;
            let doc = c.get_template(TemplateKind::CronWorkflow, &ns(&conn), &name).await?;
            match output {
                Some(Output::Json) => {
                    println!("{}", serde_json::to_string_pretty(&doc)?);
                    return Ok(ExitCode::SUCCESS);
                }
                Some(Output::Yaml) => {
                    print!("{}", serde_norway::to_string(&doc)?);
                    return Ok(ExitCode::SUCCESS);
                }
                _ => {}
            }
            let cw = cron_of(doc)?;
            let namespace = cw.metadata.namespace.clone().unwrap_or_default();
            let last = cw
                .status
                .as_ref()
                .and_then(|s| s.last_scheduled_time.as_ref())
                .map(argon_engine::time::to_chrono);
            let row = |k: &str, v: String| println!("{:<20} {v}", format!("{k}:"));
            row("Name", cw.metadata.name.clone().unwrap_or_default());
            row("Namespace", namespace.clone());
            row("Schedule", schedules(&cw));
            row("Timezone", cw.spec.timezone.clone().unwrap_or_else(|| "UTC".into()));
            row("Suspended", cw.spec.suspend.unwrap_or(false).to_string());
            row(
                "ConcurrencyPolicy",
                format!(
                    "{:?}",
                    cw.spec
                        .concurrency_policy
                        .unwrap_or(argon_crds::workflow::ConcurrencyPolicy::Allow)
                ),
            );
            row(
                "LastScheduledTime",
                last.map(|t| t.to_rfc3339()).unwrap_or_else(|| "N/A".into()),
            );
            row(
                "NextScheduledTime",
                argon_engine::cron::next_run(&cw, now)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "N/A".into()),
            );
            let mut runs = ListOptions {
                limit: Some(10),
                ..Default::default()
            };
            runs.and_label(&format!("{}={name}", argon_engine::CRON_WORKFLOW_LABEL));
            let page = c.list(&namespace, &runs).await?;
            if !page.items.is_empty() {
                println!("\nRecent runs:");
                print!("{}", render_list(&page.items, false, true));
            }
            Ok(ExitCode::SUCCESS)
        }
        CronCommand::Delete { name, conn } => {
            client(&conn)?
                .delete_template(TemplateKind::CronWorkflow, &ns(&conn), &name)
                .await?;
            println!("CronWorkflow '{name}' deleted");
            Ok(ExitCode::SUCCESS)
        }
        CronCommand::Suspend { name, conn } => {
            client(&conn)?.suspend_cron(&ns(&conn), &name, true).await?;
            println!("CronWorkflow '{name}' suspended");
            Ok(ExitCode::SUCCESS)
        }
        CronCommand::Resume { name, conn } => {
            client(&conn)?.suspend_cron(&ns(&conn), &name, false).await?;
            println!("CronWorkflow '{name}' resumed");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ArchiveCommand {
    /// List archived workflows, newest first.
    List {
        #[command(flatten)]
        selection: Selection,
        /// How many workflows to ask the server for at a time (0: all at once).
        #[arg(long, default_value_t = 500)]
        chunk_size: usize,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show an archived workflow (by uid or name) with its steps.
    Get {
        id: String,
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove workflows (by uid or name) from the archive.
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `argon archive ...`.
pub async fn archive(command: ArchiveCommand) -> Result<ExitCode> {
    match command {
        ArchiveCommand::List {
            selection,
            chunk_size,
            output,
            conn,
        } => list(&conn, Source::Archive, &selection, chunk_size, output, false).await,
        ArchiveCommand::Get { id, output, conn } => {
            let wf = client(&conn)?.archived_workflow(&ns(&conn), &id).await?;
            print_workflow(&wf, output)?;
            Ok(ExitCode::SUCCESS)
        }
        ArchiveCommand::Delete { ids, conn } => {
            let c = client(&conn)?;
            for id in ids {
                c.delete_archived(&ns(&conn), &id).await?;
                println!("Archived workflow '{id}' deleted");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
