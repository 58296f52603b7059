//! `file` events: a change to a file of the watched directory whose
//! operation is the event's `eventType` (CREATE, WRITE, REMOVE, RENAME or
//! CHMOD) and whose path is `path` (relative to the directory) or matches
//! `pathRegexp` becomes `{"name": PATH, "op": OP, "metadata": ...}`, as
//! fsnotify reports it upstream. The watcher is the `notify` crate
//! (inotify, or polling every second with `polling: true`). Changes made
//! while Argon is not running are not seen.

use std::path::{Path, PathBuf};
use std::time::Duration;

use argon_crds::eventsource::FileEventSource;
use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use regex::Regex;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::message::Common;
use crate::Publisher;
use crate::error::Result;

/// The operations fsnotify names.
const OPS: [&str; 5] = ["CREATE", "WRITE", "REMOVE", "RENAME", "CHMOD"];

/// One `file` event, ready to run.
pub(crate) struct FileSource {
    common: Common,
    op: String,
    directory: PathBuf,
    path: Option<String>,
    pattern: Option<Regex>,
    /// Watching from the start, so a change right after the runner started
    /// is seen; dropping it stops it.
    watcher: Box<dyn notify::Watcher + Send>,
    changes: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
}

impl FileSource {
    pub(crate) fn new(source: &str, event: &str, config: &FileEventSource) -> Result<Self> {
        let common = Common::new(
            source,
            event,
            "file",
            config.filter.as_ref(),
            &config.metadata,
            None,
            None,
        )?;
        let op = config.event_type.to_ascii_uppercase();
        if !OPS.contains(&op.as_str()) {
            return Err(common.error(format!(
                "eventType '{}' is not one of {}",
                config.event_type,
                OPS.join(", ")
            )));
        }
        let w = &config.watch_path_config;
        if w.directory.is_empty() {
            return Err(common.error("watchPathConfig.directory is empty"));
        }
        let pattern = w
            .path_regexp
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| Regex::new(p).map_err(|e| common.error(format!("watchPathConfig.pathRegexp: {e}"))))
            .transpose()?;
        let path = w.path.clone().filter(|p| !p.is_empty());
        if path.is_none() && pattern.is_none() {
            return Err(common.error("watchPathConfig needs a path or a pathRegexp"));
        }
        let directory = PathBuf::from(&w.directory);
        let (tx, changes) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
        let handler = move |res| {
            let _ = tx.send(res);
        };
        let mut watcher: Box<dyn notify::Watcher + Send> = if config.polling.unwrap_or(false) {
            let config = notify::Config::default().with_poll_interval(Duration::from_secs(1));
            Box::new(notify::PollWatcher::new(handler, config).map_err(|e| common.error(format!("watcher: {e}")))?)
        } else {
            Box::new(
                notify::RecommendedWatcher::new(handler, notify::Config::default())
                    .map_err(|e| common.error(format!("watcher: {e}")))?,
            )
        };
        watcher
            .watch(&directory, RecursiveMode::NonRecursive)
            .map_err(|e| common.error(format!("cannot watch {}: {e}", directory.display())))?;
        Ok(FileSource {
            common,
            op,
            directory,
            path,
            pattern,
            watcher,
            changes,
        })
    }

    pub(crate) async fn run(mut self, publisher: Publisher, shutdown: CancellationToken) -> Result<()> {
        loop {
            let change = tokio::select! {
                c = self.changes.recv() => c,
                () = shutdown.cancelled() => return Ok(()),
            };
            let change = match change {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    tracing::warn!(event_source = %self.common.source, event = %self.common.event, error = %e, "file watcher error");
                    continue;
                }
                None => return Ok(()),
            };
            let _ = &self.watcher;
            for (path, op) in operations(&change) {
                if op != self.op || !self.wanted(path) {
                    continue;
                }
                let data = json!({
                    "name": path.to_string_lossy(),
                    "op": op,
                    "metadata": self.common.metadata,
                });
                if !self.common.deliver(&publisher, data, None, &shutdown).await {
                    return Ok(());
                }
            }
        }
    }

    fn wanted(&self, path: &Path) -> bool {
        let relative = path.strip_prefix(&self.directory).unwrap_or(path);
        let relative = relative.to_string_lossy();
        if let Some(p) = &self.path
            && relative == p.trim_start_matches("./")
        {
            return true;
        }
        self.pattern.as_ref().is_some_and(|r| r.is_match(&relative))
    }
}

/// The fsnotify operations of one notify event, per path: a rename's old
/// name is RENAME, its new name CREATE, as inotify reports them upstream.
fn operations(change: &notify::Event) -> Vec<(&Path, &'static str)> {
    let all = |op| change.paths.iter().map(|p| (p.as_path(), op)).collect();
    match change.kind {
        EventKind::Create(_) => all("CREATE"),
        EventKind::Remove(_) => all("REMOVE"),
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => all("WRITE"),
        EventKind::Modify(ModifyKind::Metadata(_)) => all("CHMOD"),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => all("CREATE"),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => change
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_path(), if i == 0 { "RENAME" } else { "CREATE" }))
            .collect(),
        EventKind::Modify(ModifyKind::Name(_)) => all("RENAME"),
        _ => Vec::new(),
    }
}
