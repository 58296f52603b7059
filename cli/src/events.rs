//! `argon events list|get|replay`: the event history of `argon run`, through
//! its API.

use std::process::ExitCode;

use anyhow::Result;
use argon_client::events::EventQuery;
use clap::{Subcommand, ValueEnum};
use serde_json::Value;

use crate::engine::{Conn, client};

/// Output formats of the event commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsOutput {
    Json,
    Wide,
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Stored events, newest first.
    List {
        /// Only this EventSource's events.
        #[arg(long)]
        source: Option<String>,
        /// Only events of this name.
        #[arg(long)]
        event: Option<String>,
        /// Only events stored since: a duration back from now (1h, 2d) or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// At most this many (0: every stored event, a page at a time).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(short, long, value_enum)]
        output: Option<EventsOutput>,
        #[command(flatten)]
        conn: Conn,
    },
    /// One stored event: its context, data and the workflows it created.
    Get {
        id: String,
        #[arg(short, long, value_enum)]
        output: Option<EventsOutput>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Sends a stored event again, with a new id, so that its sensors fire again.
    Replay {
        id: String,
        /// Only this sensor acts on the replay.
        #[arg(long)]
        sensor: Option<String>,
        #[arg(short, long, value_enum)]
        output: Option<EventsOutput>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Runs an event command.
pub fn dispatch(command: EventsCommand) -> ExitCode {
    crate::exit_code(crate::block_on(run(command)))
}

async fn run(command: EventsCommand) -> Result<()> {
    match command {
        EventsCommand::List {
            source,
            event,
            since,
            limit,
            output,
            conn,
        } => {
            let client = client(&conn)?;
            let page_size = if limit == 0 { 500 } else { limit.min(1000) };
            let mut query = EventQuery {
                source,
                event,
                since,
                limit: Some(page_size),
                continue_token: None,
            };
            let mut shown = 0;
            let wide = output == Some(EventsOutput::Wide);
            if output != Some(EventsOutput::Json) {
                println!("{}", row(&header(wide)));
            }
            loop {
                let page = client.list_events(&query).await?;
                for item in &page.items {
                    if limit > 0 && shown == limit {
                        break;
                    }
                    match output {
                        Some(EventsOutput::Json) => println!("{item}"),
                        _ => println!("{}", row(&columns(item, wide))),
                    }
                    shown += 1;
                }
                match page.continue_token {
                    Some(token) if limit == 0 || shown < limit => query.continue_token = Some(token),
                    _ => break,
                }
            }
            Ok(())
        }
        EventsCommand::Get { id, output, conn } => {
            let event = client(&conn)?.get_event(&id).await?;
            match output {
                Some(EventsOutput::Json) => println!("{}", serde_json::to_string_pretty(&event)?),
                _ => print!("{}", describe(&event)),
            }
            Ok(())
        }
        EventsCommand::Replay {
            id,
            sensor,
            output,
            conn,
        } => {
            let event = client(&conn)?.replay_event(&id, sensor.as_deref()).await?;
            match output {
                Some(EventsOutput::Json) => println!("{event}"),
                _ => println!(
                    "{} replayed as {}{}",
                    id,
                    text(&event["context"]["id"]),
                    sensor.map(|s| format!(" (for sensor {s})")).unwrap_or_default()
                ),
            }
            Ok(())
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(String::new, str::to_owned)
}

fn header(wide: bool) -> Vec<String> {
    let mut h = vec!["ID", "SOURCE", "EVENT", "STORED", "REPLAY OF"];
    if wide {
        h.extend(["TYPE", "BUS", "SEQUENCE"]);
    }
    h.into_iter().map(str::to_owned).collect()
}

fn columns(item: &Value, wide: bool) -> Vec<String> {
    let c = &item["context"];
    let mut out = vec![
        text(&c["id"]),
        text(&c["source"]),
        text(&c["subject"]),
        text(&item["storedAt"]),
        text(&c["argonreplayof"]),
    ];
    if wide {
        out.extend([text(&c["type"]), text(&item["bus"]), item["sequence"].to_string()]);
    }
    out
}

/// Columns padded for a terminal (IDs are 36 characters).
fn row(columns: &[String]) -> String {
    let widths = [36, 20, 20, 32, 36, 12, 10, 8];
    let mut line = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i + 1 == columns.len() {
            line.push_str(c);
        } else {
            line.push_str(&format!("{c:<width$}  ", width = widths.get(i).copied().unwrap_or(10)));
        }
    }
    line.trim_end().to_owned()
}

/// An event as `argon events get` prints it.
fn describe(event: &Value) -> String {
    let c = &event["context"];
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        if !v.is_empty() {
            out.push_str(&format!("{k:<13}{v}\n"));
        }
    };
    line("ID:", text(&c["id"]));
    line("Source:", text(&c["source"]));
    line("Event:", text(&c["subject"]));
    line("Type:", text(&c["type"]));
    line("Time:", text(&c["time"]));
    line("Stored:", text(&event["storedAt"]));
    line(
        "Bus:",
        format!("{} (sequence {})", text(&event["bus"]), event["sequence"]),
    );
    line("Replay of:", text(&c["argonreplayof"]));
    line("For sensor:", text(&c["argonsensor"]));
    let data = event
        .get("data")
        .map(|d| serde_json::to_string_pretty(d).unwrap_or_default())
        .or_else(|| event.get("data_base64").map(|d| format!("(base64) {}", text(d))))
        .unwrap_or_default();
    out.push_str(&format!("Data:\n{data}\n"));
    let workflows = event["workflows"].as_array().cloned().unwrap_or_default();
    if workflows.is_empty() {
        out.push_str("Workflows:   none\n");
    } else {
        out.push_str("Workflows:\n");
        for wf in workflows {
            out.push_str(&format!(
                "  {:<30} {:<10} {}/{}{}\n",
                text(&wf["name"]),
                text(&wf["phase"]),
                text(&wf["sensor"]),
                text(&wf["trigger"]),
                if wf["replayOf"].is_string() {
                    " (from a replay)"
                } else {
                    ""
                }
            ));
        }
    }
    out
}
