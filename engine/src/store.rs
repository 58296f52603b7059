//! The engine's store, SQLite under the state dir (WAL mode): workflows
//! (metadata, spec and status without nodes), their nodes one row each, step
//! logs, WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows, and
//! the idempotency keys of submissions. It is the source of truth: a
//! restarted engine reads its running workflows back from here.
//!
//! Longer than most files: every table's SQL is here, in one place, with
//! the list queries (selectors, pages), the archive and the migrations.

use std::path::Path;
use std::sync::Mutex;

use argon_crds::workflow::{NodeStatus, Workflow};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, Result};
use argon_client::TemplateKind;
use argon_client::list::{Field, Filter, LabelRequirement};

/// The store's errors as the engine's: the store could not be used.
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| Error::Unavailable(format!("workflow store: {e}")))
    }
}

/// One line of a step's output.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Position in the store, increasing: a follower asks for lines after it.
    pub seq: i64,
    pub node_id: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 time the line was read.
    pub time: String,
    pub line: String,
}

/// A row of the workflow list (no nodes).
#[derive(Clone, Debug)]
pub struct WorkflowRow {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub doc: Workflow,
}

/// The SQLite store. Calls are short and synchronous; the connection is
/// shared behind a mutex.
pub struct Store {
    conn: Mutex<Connection>,
    changes: tokio::sync::broadcast::Sender<Change>,
}

/// A workflow was created, changed or deleted: what watchers of the store
/// hear (the API's watch stream). Sent after the change is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub kind: ChangeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// How many changes a slow watcher may fall behind before it is told it
/// lagged (it then reads the current state again).
const CHANGE_BACKLOG: usize = 4096;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workflows (
    uid TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    phase TEXT NOT NULL,
    finished_at TEXT,
    doc TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    expires_at TEXT,
    UNIQUE (namespace, name)
);
CREATE INDEX IF NOT EXISTS workflows_by_created ON workflows (created_at);
CREATE INDEX IF NOT EXISTS workflows_by_namespace ON workflows (namespace, created_at);
CREATE INDEX IF NOT EXISTS workflows_by_expiry ON workflows (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS workflow_labels (
    uid TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (key, value, uid)
);
CREATE INDEX IF NOT EXISTS workflow_labels_by_uid ON workflow_labels (uid);
CREATE TABLE IF NOT EXISTS archived_workflows (
    uid TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    phase TEXT NOT NULL,
    doc TEXT NOT NULL,
    nodes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_by_created ON archived_workflows (created_at);
CREATE INDEX IF NOT EXISTS archived_by_namespace ON archived_workflows (namespace, created_at);
CREATE INDEX IF NOT EXISTS archived_by_finished ON archived_workflows (finished_at);
CREATE TABLE IF NOT EXISTS archived_labels (
    uid TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (key, value, uid)
);
CREATE INDEX IF NOT EXISTS archived_labels_by_uid ON archived_labels (uid);
CREATE TABLE IF NOT EXISTS nodes (
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (uid, id)
);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL,
    node_id TEXT NOT NULL,
    time TEXT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_workflow ON logs (uid, seq);
CREATE TABLE IF NOT EXISTS templates (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    uid TEXT NOT NULL
);
";

impl Store {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path).db()?;
        conn.pragma_update(None, "journal_mode", "WAL").db()?;
        conn.pragma_update(None, "synchronous", "NORMAL").db()?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).db()?;
        let columns: Vec<String> = {
            let mut stmt = conn.prepare("PRAGMA table_info(workflows)").db()?;
            let names = stmt.query_map([], |r| r.get::<_, String>(1)).db()?;
            names.collect::<Result<_, _>>().db()?
        };
        // A store from before label selectors and expiry times: the columns
        // and the label table are filled from the documents once.
        let old = !columns.is_empty() && !columns.iter().any(|n| n == "expires_at");
        if old {
            if !columns.iter().any(|n| n == "labels") {
                conn.execute_batch("ALTER TABLE workflows ADD COLUMN labels TEXT NOT NULL DEFAULT '{}'")
                    .db()?;
            }
            conn.execute_batch("ALTER TABLE workflows ADD COLUMN expires_at TEXT")
                .db()?;
        }
        conn.execute_batch(SCHEMA).db()?;
        if old {
            backfill(&conn)?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
            changes: tokio::sync::broadcast::channel(CHANGE_BACKLOG).0,
        })
    }

    /// Hears every change stored from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn changed(&self, wf: &Workflow, kind: ChangeKind) {
        self.notify(Change {
            uid: wf.metadata.uid.clone().unwrap_or_default(),
            namespace: wf.metadata.namespace.clone().unwrap_or_default(),
            name: wf.metadata.name.clone().unwrap_or_default(),
            kind,
        });
    }

    fn notify(&self, change: Change) {
        // No watcher is not an error.
        let _ = self.changes.send(change);
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts a new workflow, recording `idempotency_key` in the same
    /// transaction. When the key is already known, nothing is written and the
    /// uid of the workflow it created is returned.
    pub fn insert_workflow(&self, wf: &Workflow, idempotency_key: Option<&str>) -> Result<Option<String>> {
        let mut conn = self.conn();
        let tx = conn.transaction().db()?;
        if let Some(key) = idempotency_key {
            let existing: Option<String> = tx
                .query_row("SELECT uid FROM idempotency WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .db()?;
            if let Some(uid) = existing {
                return Ok(Some(uid));
            }
        }
        let uid = wf.metadata.uid.clone().unwrap_or_default();
        let doc = workflow_doc(wf)?;
        let created = wf
            .metadata
            .creation_timestamp
            .as_ref()
            .map(crate::time::to_chrono)
            .unwrap_or_else(chrono::Utc::now);
        let labels = labels_of(wf);
        tx.execute(
            "INSERT INTO workflows (uid, namespace, name, created_at, phase, doc, labels) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                uid,
                wf.metadata.namespace.clone().unwrap_or_default(),
                wf.metadata.name.clone().unwrap_or_default(),
                stored_time(created),
                phase_of(wf),
                doc,
                serde_json::to_string(&labels)?
            ],
        )
        .db()?;
        put_labels(&tx, &uid, &labels)?;
        if let Some(key) = idempotency_key {
            tx.execute("INSERT INTO idempotency (key, uid) VALUES (?1, ?2)", params![key, uid])
                .db()?;
        }
        tx.commit().db()?;
        drop(conn);
        self.changed(wf, ChangeKind::Added);
        Ok(None)
    }

    /// The uid of the workflow an idempotency key created.
    pub fn idempotent(&self, key: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT uid FROM idempotency WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .db()
    }

    /// Whether a workflow named `name` exists in `namespace`.
    pub fn name_taken(&self, namespace: &str, name: &str) -> Result<bool> {
        let n: i64 = self
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM workflows WHERE namespace = ?1 AND name = ?2",
                params![namespace, name],
                |r| r.get(0),
            )
            .db()?;
        Ok(n > 0)
    }

    /// Saves the workflow's metadata, spec and status (nodes excluded).
    pub fn update_workflow(&self, wf: &Workflow) -> Result<()> {
        let finished = wf
            .status
            .as_ref()
            .and_then(|s| s.finished_at.as_ref())
            .map(|t| t.0.to_string());
        let uid = wf.metadata.uid.clone().unwrap_or_default();
        let labels = labels_of(wf);
        let labels_text = serde_json::to_string(&labels)?;
        let mut conn = self.conn();
        let tx = conn.transaction().db()?;
        let n = tx
            .execute(
                "UPDATE workflows SET phase = ?2, finished_at = ?3, doc = ?4, expires_at = ?5 WHERE uid = ?1",
                params![
                    uid,
                    phase_of(wf),
                    finished,
                    workflow_doc(wf)?,
                    expiry(wf).map(stored_time)
                ],
            )
            .db()?;
        // Labels rarely change: the label rows are rewritten only when they did.
        let relabel = tx
            .execute(
                "UPDATE workflows SET labels = ?2 WHERE uid = ?1 AND labels != ?2",
                params![uid, labels_text],
            )
            .db()?;
        if relabel > 0 {
            tx.execute("DELETE FROM workflow_labels WHERE uid = ?1", [&uid]).db()?;
            put_labels(&tx, &uid, &labels)?;
        }
        tx.commit().db()?;
        drop(conn);
        if n > 0 {
            self.changed(wf, ChangeKind::Modified);
        }
        Ok(())
    }

    /// Saves one node.
    pub fn put_node(&self, uid: &str, node: &NodeStatus) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO nodes (uid, id, doc) VALUES (?1, ?2, ?3) ON CONFLICT (uid, id) DO UPDATE SET doc = excluded.doc",
            params![uid, node.id, serde_json::to_string(node)?],
        ).db()?;
        let names: Option<(String, String)> = if self.changes.receiver_count() > 0 {
            conn.query_row("SELECT namespace, name FROM workflows WHERE uid = ?1", [uid], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .db()?
        } else {
            None
        };
        drop(conn);
        if let Some((namespace, name)) = names {
            self.notify(Change {
                uid: uid.to_string(),
                namespace,
                name,
                kind: ChangeKind::Modified,
            });
        }
        Ok(())
    }

    /// Removes nodes (a retry forgets the failed ones).
    pub fn delete_nodes(&self, uid: &str, ids: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().db()?;
        for id in ids {
            tx.execute("DELETE FROM nodes WHERE uid = ?1 AND id = ?2", params![uid, id])
                .db()?;
        }
        tx.commit().db()?;
        Ok(())
    }

    /// The workflow with uid `uid`, with its nodes.
    pub fn workflow(&self, uid: &str) -> Result<Option<Workflow>> {
        let conn = self.conn();
        let doc: Option<String> = conn
            .query_row("SELECT doc FROM workflows WHERE uid = ?1", [uid], |r| r.get(0))
            .optional()
            .db()?;
        let Some(doc) = doc else { return Ok(None) };
        let mut wf: Workflow = serde_json::from_str(&doc)?;
        let mut stmt = conn.prepare_cached("SELECT doc FROM nodes WHERE uid = ?1").db()?;
        let nodes = stmt.query_map([uid], |r| r.get::<_, String>(0)).db()?;
        let status = wf.status.get_or_insert_with(Default::default);
        for n in nodes {
            let node: NodeStatus = serde_json::from_str(&n.db()?)?;
            status.nodes.insert(node.id.clone(), node);
        }
        Ok(Some(wf))
    }

    /// The uid of the workflow `name` in `namespace` (any namespace when
    /// `namespace` is empty and the name is unique); `@latest` names the newest.
    pub fn find(&self, namespace: &str, name: &str) -> Result<Option<String>> {
        let conn = self.conn();
        let any_ns = namespace.is_empty();
        let uid =
            if name == "@latest" {
                conn.query_row(
                "SELECT uid FROM workflows WHERE (?1 OR namespace = ?2) ORDER BY created_at DESC, rowid DESC LIMIT 1",
                params![any_ns, namespace],
                |r| r.get(0),
            )
            .optional().db()?
            } else {
                conn.query_row(
                "SELECT uid FROM workflows WHERE (?1 OR namespace = ?2) AND name = ?3 ORDER BY created_at DESC LIMIT 1",
                params![any_ns, namespace, name],
                |r| r.get(0),
            )
            .optional().db()?
            };
        Ok(uid)
    }

    /// One page of workflows (without nodes), newest first, in `namespace`
    /// (all when empty), that pass `filter`: at most `limit` of them (all
    /// when `None`), after the position `after` that a previous page ended
    /// at. Returns the rows and, when more follow, the position to go on from.
    pub fn list_page(
        &self,
        namespace: &str,
        filter: &Filter,
        limit: Option<usize>,
        after: Option<&Position>,
    ) -> Result<(Vec<WorkflowRow>, Option<Position>)> {
        self.page(Table::Live, namespace, filter, limit, after)
    }

    /// [`Store::list_page`] of the archive.
    pub fn archived_page(
        &self,
        namespace: &str,
        filter: &Filter,
        limit: Option<usize>,
        after: Option<&Position>,
    ) -> Result<(Vec<WorkflowRow>, Option<Position>)> {
        self.page(Table::Archive, namespace, filter, limit, after)
    }

    fn page(
        &self,
        table: Table,
        namespace: &str,
        filter: &Filter,
        limit: Option<usize>,
        after: Option<&Position>,
    ) -> Result<(Vec<WorkflowRow>, Option<Position>)> {
        use rusqlite::types::Value as V;
        let (workflows, labels) = match table {
            Table::Live => ("workflows", "workflow_labels"),
            Table::Archive => ("archived_workflows", "archived_labels"),
        };
        let mut sql = format!(
            "SELECT w.uid, w.namespace, w.name, w.phase, w.doc, w.created_at, w.rowid FROM {workflows} w WHERE 1",
        );
        let mut args: Vec<V> = Vec::new();
        let arg = |args: &mut Vec<V>, v: V| {
            args.push(v);
            format!("?{}", args.len())
        };
        if !namespace.is_empty() {
            sql += &format!(" AND w.namespace = {}", arg(&mut args, V::Text(namespace.into())));
        }
        let list = |args: &mut Vec<V>, values: &[String]| -> String {
            let parts: Vec<String> = values.iter().map(|v| arg(args, V::Text(v.clone()))).collect();
            format!("({})", parts.join(", "))
        };
        for r in &filter.labels {
            let key = arg(&mut args, V::Text(r.key().into()));
            let exists = format!("EXISTS (SELECT 1 FROM {labels} l WHERE l.uid = w.uid AND l.key = ");
            match r {
                LabelRequirement::In(_, vs) => {
                    sql += &format!(" AND {exists}{key} AND l.value IN {})", list(&mut args, vs))
                }
                LabelRequirement::NotIn(_, vs) => {
                    sql += &format!(" AND NOT {exists}{key} AND l.value IN {})", list(&mut args, vs))
                }
                LabelRequirement::Exists(_) => sql += &format!(" AND {exists}{key})"),
                LabelRequirement::NotExists(_) => sql += &format!(" AND NOT {exists}{key})"),
            }
        }
        for r in &filter.fields {
            let column = match r.field {
                Field::Name => "w.name",
                Field::Namespace => "w.namespace",
                Field::Phase => "w.phase",
            };
            let op = if r.equal { "=" } else { "!=" };
            sql += &format!(" AND {column} {op} {}", arg(&mut args, V::Text(r.value.clone())));
        }
        if let Some(phases) = &filter.phases {
            sql += &format!(" AND w.phase IN {}", list(&mut args, phases));
        }
        if !filter.not_phases.is_empty() {
            sql += &format!(" AND w.phase NOT IN {}", list(&mut args, &filter.not_phases));
        }
        if let Some(prefix) = &filter.name_prefix {
            // substr, not LIKE: a prefix may hold `%` or `_`.
            let p = arg(&mut args, V::Text(prefix.clone()));
            sql += &format!(" AND substr(w.name, 1, length({p})) = {p}");
        }
        if let Some(t) = filter.created_after {
            sql += &format!(" AND w.created_at >= {}", arg(&mut args, V::Text(stored_time(t))));
        }
        if let Some(t) = filter.created_before {
            sql += &format!(" AND w.created_at < {}", arg(&mut args, V::Text(stored_time(t))));
        }
        if let Some(t) = filter.finished_before {
            // Finish times are kept as the manifest prints them (fractions of
            // varying length): compared to the second.
            let t = arg(&mut args, V::Text(stored_time(t)));
            sql += &format!(" AND w.finished_at IS NOT NULL AND substr(w.finished_at, 1, 19) < substr({t}, 1, 19)");
        }
        if let Some(p) = after {
            let c = arg(&mut args, V::Text(p.created_at.clone()));
            let r = arg(&mut args, V::Integer(p.rowid));
            // A row value: the index on the creation time (with the row id
            // as its last column) starts the scan right after the position.
            sql += &format!(" AND (w.created_at, w.rowid) < ({c}, {r})");
        }
        sql += " ORDER BY w.created_at DESC, w.rowid DESC";
        if let Some(n) = limit {
            // One more than asked tells whether another page follows.
            sql += &format!(" LIMIT {}", arg(&mut args, V::Integer(n as i64 + 1)));
        }
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).db()?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    WorkflowRow {
                        uid: r.get(0)?,
                        namespace: r.get(1)?,
                        name: r.get(2)?,
                        phase: r.get(3)?,
                        doc: Workflow::new("", Default::default()),
                    },
                    r.get::<_, String>(4)?,
                    Position {
                        created_at: r.get(5)?,
                        rowid: r.get(6)?,
                    },
                ))
            })
            .db()?;
        let mut out = Vec::new();
        let mut last = None;
        for row in rows {
            let (mut row, doc, position) = row.db()?;
            if limit.is_some_and(|n| out.len() == n) {
                return Ok((out, last));
            }
            row.doc = serde_json::from_str(&doc)?;
            out.push(row);
            last = Some(position);
        }
        Ok((out, None))
    }

    /// Keeps a finished workflow (nodes included) in the archive, replacing
    /// an earlier copy (a retried workflow finishes again).
    pub fn archive(&self, wf: &Workflow) -> Result<()> {
        let uid = wf.metadata.uid.clone().unwrap_or_default();
        let created = wf
            .metadata
            .creation_timestamp
            .as_ref()
            .map(crate::time::to_chrono)
            .unwrap_or_else(chrono::Utc::now);
        let finished = wf
            .status
            .as_ref()
            .and_then(|s| s.finished_at.as_ref())
            .map(crate::time::to_chrono)
            .unwrap_or_else(chrono::Utc::now);
        let nodes = wf
            .status
            .as_ref()
            .map(|s| serde_json::to_string(&s.nodes))
            .transpose()?;
        let labels = labels_of(wf);
        let mut conn = self.conn();
        let tx = conn.transaction().db()?;
        tx.execute(
            "INSERT OR REPLACE INTO archived_workflows (uid, namespace, name, created_at, finished_at, phase, doc, nodes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                uid,
                wf.metadata.namespace.clone().unwrap_or_default(),
                wf.metadata.name.clone().unwrap_or_default(),
                stored_time(created),
                stored_time(finished),
                phase_of(wf),
                workflow_doc(wf)?,
                nodes.unwrap_or_else(|| "{}".into())
            ],
        )
        .db()?;
        tx.execute("DELETE FROM archived_labels WHERE uid = ?1", [&uid]).db()?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT OR REPLACE INTO archived_labels (uid, key, value) VALUES (?1, ?2, ?3)")
                .db()?;
            for (k, v) in &labels {
                stmt.execute(params![uid, k, v]).db()?;
            }
        }
        tx.commit().db()
    }

    /// An archived workflow, nodes included.
    pub fn archived(&self, uid: &str) -> Result<Option<Workflow>> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row("SELECT doc, nodes FROM archived_workflows WHERE uid = ?1", [uid], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .db()?;
        let Some((doc, nodes)) = row else { return Ok(None) };
        let mut wf: Workflow = serde_json::from_str(&doc)?;
        wf.status.get_or_insert_with(Default::default).nodes = serde_json::from_str(&nodes)?;
        Ok(Some(wf))
    }

    /// Removes a workflow from the archive; whether it was there.
    pub fn delete_archived(&self, uid: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().db()?;
        let n = tx
            .execute("DELETE FROM archived_workflows WHERE uid = ?1", [uid])
            .db()?;
        tx.execute("DELETE FROM archived_labels WHERE uid = ?1", [uid]).db()?;
        tx.commit().db()?;
        Ok(n > 0)
    }

    /// Removes the archived workflows that finished before `before`; how many.
    pub fn expire_archive(&self, before: chrono::DateTime<chrono::Utc>) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction().db()?;
        let t = stored_time(before);
        tx.execute(
            "DELETE FROM archived_labels WHERE uid IN (SELECT uid FROM archived_workflows WHERE finished_at < ?1)",
            [&t],
        )
        .db()?;
        let n = tx
            .execute("DELETE FROM archived_workflows WHERE finished_at < ?1", [&t])
            .db()?;
        tx.commit().db()?;
        Ok(n)
    }

    /// The (namespace, name) of finished workflows whose `ttlStrategy`
    /// time has come by `now`.
    pub fn expired(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT namespace, name FROM workflows WHERE expires_at IS NOT NULL AND expires_at <= ?1 \
                 ORDER BY expires_at LIMIT 1000",
            )
            .db()?;
        let rows = stmt
            .query_map([stored_time(now)], |r| Ok((r.get(0)?, r.get(1)?)))
            .db()?;
        rows.collect::<Result<_, _>>().db()
    }

    /// The uids of workflows in a phase that is not finished.
    pub fn unfinished(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT uid FROM workflows WHERE phase IN ('', 'Pending', 'Running') ORDER BY created_at")
            .db()?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).db()?;
        rows.collect::<Result<_, _>>().db()
    }

    /// Deletes a workflow, its nodes, logs and idempotency keys.
    pub fn delete_workflow(&self, uid: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().db()?;
        let names: Option<(String, String)> = tx
            .query_row("SELECT namespace, name FROM workflows WHERE uid = ?1", [uid], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .db()?;
        tx.execute("DELETE FROM workflows WHERE uid = ?1", [uid]).db()?;
        tx.execute("DELETE FROM workflow_labels WHERE uid = ?1", [uid]).db()?;
        tx.execute("DELETE FROM nodes WHERE uid = ?1", [uid]).db()?;
        tx.execute("DELETE FROM logs WHERE uid = ?1", [uid]).db()?;
        tx.execute("DELETE FROM idempotency WHERE uid = ?1", [uid]).db()?;
        tx.commit().db()?;
        drop(conn);
        if let Some((namespace, name)) = names {
            self.notify(Change {
                uid: uid.to_string(),
                namespace,
                name,
                kind: ChangeKind::Deleted,
            });
        }
        Ok(())
    }

    /// Appends log lines of a node.
    pub fn append_logs(&self, uid: &str, node_id: &str, stream: &str, lines: &[String]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut conn = self.conn();
        let tx = conn.transaction().db()?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO logs (uid, node_id, time, stream, line) VALUES (?1, ?2, ?3, ?4, ?5)")
                .db()?;
            for line in lines {
                stmt.execute(params![uid, node_id, now, stream, line]).db()?;
            }
        }
        tx.commit().db()?;
        Ok(())
    }

    /// Forgets the log lines of a node (a step that starts again from the start).
    pub fn clear_node_logs(&self, uid: &str, node_id: &str) -> Result<()> {
        self.conn()
            .execute(
                "DELETE FROM logs WHERE uid = ?1 AND node_id = ?2",
                params![uid, node_id],
            )
            .db()?;
        Ok(())
    }

    /// Log lines of a workflow after position `after`, in order.
    pub fn logs(&self, uid: &str, after: i64) -> Result<Vec<LogLine>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, node_id, stream, time, line FROM logs WHERE uid = ?1 AND seq > ?2 ORDER BY seq",
            )
            .db()?;
        let rows = stmt
            .query_map(params![uid, after], |r| {
                Ok(LogLine {
                    seq: r.get(0)?,
                    node_id: r.get(1)?,
                    stream: r.get(2)?,
                    time: r.get(3)?,
                    line: r.get(4)?,
                })
            })
            .db()?;
        rows.collect::<Result<_, _>>().db()
    }

    /// Saves a template (or CronWorkflow) document, replacing any of the same name.
    pub fn put_template(&self, kind: TemplateKind, namespace: &str, name: &str, doc: &serde_json::Value) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO templates (kind, namespace, name, doc) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (kind, namespace, name) DO UPDATE SET doc = excluded.doc",
                params![kind.as_str(), namespace, name, doc.to_string()],
            )
            .db()?;
        Ok(())
    }

    /// A stored template document.
    pub fn template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<Option<serde_json::Value>> {
        let doc: Option<String> = self
            .conn()
            .query_row(
                "SELECT doc FROM templates WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![kind.as_str(), namespace, name],
                |r| r.get(0),
            )
            .optional()
            .db()?;
        Ok(match doc {
            Some(d) => Some(serde_json::from_str(&d)?),
            None => None,
        })
    }

    /// Stored templates of a kind in `namespace` (all namespaces when empty), by name.
    pub fn templates(&self, kind: TemplateKind, namespace: &str) -> Result<Vec<serde_json::Value>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT doc FROM templates WHERE kind = ?1 AND (?2 OR namespace = ?3) ORDER BY namespace, name",
            )
            .db()?;
        let rows = stmt
            .query_map(params![kind.as_str(), namespace.is_empty(), namespace], |r| {
                r.get::<_, String>(0)
            })
            .db()?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r.db()?)?);
        }
        Ok(out)
    }

    /// Deletes a stored template; false when there was none.
    pub fn delete_template(&self, kind: TemplateKind, namespace: &str, name: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM templates WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![kind.as_str(), namespace, name],
            )
            .db()?;
        Ok(n > 0)
    }
}

fn phase_of(wf: &Workflow) -> String {
    wf.status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| format!("{p:?}"))
        .unwrap_or_default()
}

/// The workflow as stored in its row: everything but the nodes.
fn workflow_doc(wf: &Workflow) -> Result<String> {
    let mut v = serde_json::to_value(wf)?;
    if let Some(status) = v.get_mut("status").and_then(|s| s.as_object_mut()) {
        status.remove("nodes");
    }
    Ok(v.to_string())
}

/// The live workflows or the archive.
#[derive(Clone, Copy)]
enum Table {
    Live,
    Archive,
}

/// Where a page of the list ended: the creation time and row of its last
/// workflow. The API hands it out as the opaque `continue` token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    created_at: String,
    rowid: i64,
}

impl Position {
    /// The position as a `continue` token.
    pub fn token(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}\n{}", self.rowid, self.created_at))
    }

    /// The position a `continue` token stands for.
    pub fn from_token(token: &str) -> Result<Position> {
        use base64::Engine as _;
        let bad = || {
            Error::Invalid(format!(
                "listOptions.continue '{token}' is not a token this server gave"
            ))
        };
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        let (rowid, created_at) = text.split_once('\n').ok_or_else(bad)?;
        Ok(Position {
            created_at: created_at.to_string(),
            rowid: rowid.parse().map_err(|_| bad())?,
        })
    }
}

/// A time as the store keeps it: RFC 3339 in UTC with microseconds, so
/// that text order is time order.
fn stored_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn labels_of(wf: &Workflow) -> std::collections::BTreeMap<String, String> {
    wf.metadata.labels.clone().unwrap_or_default()
}

fn put_labels(tx: &Connection, uid: &str, labels: &std::collections::BTreeMap<String, String>) -> Result<()> {
    let mut stmt = tx
        .prepare_cached("INSERT OR REPLACE INTO workflow_labels (uid, key, value) VALUES (?1, ?2, ?3)")
        .db()?;
    for (k, v) in labels {
        stmt.execute(params![uid, k, v]).db()?;
    }
    Ok(())
}

/// When a finished workflow's `ttlStrategy` lets it be deleted.
fn expiry(wf: &Workflow) -> Option<chrono::DateTime<chrono::Utc>> {
    use argon_crds::workflow::WorkflowPhase;
    let ttl = wf.spec.ttl_strategy.as_ref()?;
    let status = wf.status.as_ref()?;
    let finished = crate::time::to_chrono(status.finished_at.as_ref()?);
    let secs = match status.phase? {
        WorkflowPhase::Succeeded => ttl.seconds_after_success.or(ttl.seconds_after_completion),
        WorkflowPhase::Failed | WorkflowPhase::Error => ttl.seconds_after_failure.or(ttl.seconds_after_completion),
        _ => None,
    }?;
    Some(finished + chrono::Duration::seconds(secs.max(0) as i64))
}

/// Fills the label and expiry columns and the label table of a store made
/// before they existed.
fn backfill(conn: &Connection) -> Result<()> {
    let rows: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT uid, doc FROM workflows").db()?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?;
        rows.collect::<Result<_, _>>().db()?
    };
    conn.execute_batch("BEGIN").db()?;
    for (uid, doc) in rows {
        let wf: Workflow = serde_json::from_str(&doc)?;
        let labels = labels_of(&wf);
        conn.execute(
            "UPDATE workflows SET labels = ?2, expires_at = ?3 WHERE uid = ?1",
            params![uid, serde_json::to_string(&labels)?, expiry(&wf).map(stored_time)],
        )
        .db()?;
        put_labels(conn, &uid, &labels)?;
    }
    conn.execute_batch("COMMIT").db()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before label selectors and expiry times existed is
    /// brought up to date when opened: its workflows answer label selectors
    /// and their ttl comes due.
    #[test]
    fn an_old_store_is_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sqlite");
        let mut wf = Workflow::new("old", Default::default());
        wf.metadata.namespace = Some("default".into());
        wf.metadata.uid = Some("u1".into());
        wf.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        wf.spec.ttl_strategy = Some(argon_crds::workflow::TtlStrategy {
            seconds_after_completion: Some(0),
            ..Default::default()
        });
        wf.status = Some(argon_crds::workflow::WorkflowStatus {
            phase: Some(argon_crds::workflow::WorkflowPhase::Succeeded),
            finished_at: Some(crate::time::now()),
            ..Default::default()
        });
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE workflows (uid TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, \
                 created_at TEXT NOT NULL, phase TEXT NOT NULL, finished_at TEXT, doc TEXT NOT NULL, \
                 UNIQUE (namespace, name));",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO workflows VALUES ('u1', 'default', 'old', '2026-01-01T00:00:00.000000Z', 'Succeeded', \
                 '2026-01-01T00:00:01Z', ?1)",
                [workflow_doc(&wf).unwrap()],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let filter = Filter {
            labels: vec![LabelRequirement::In("team".into(), vec!["a".into()])],
            ..Default::default()
        };
        let (rows, _) = store.list_page("", &filter, None, None).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "old");
        assert_eq!(
            store.expired(chrono::Utc::now()).unwrap(),
            vec![("default".to_string(), "old".to_string())]
        );
        drop(store);
        // Opening it again changes nothing.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.list_page("", &filter, None, None).unwrap().0.len(), 1);
    }

    #[test]
    fn continue_tokens_round_trip_and_refuse_garbage() {
        let p = Position {
            created_at: "2026-12-07T10:00:00.000001Z".into(),
            rowid: 42,
        };
        assert_eq!(Position::from_token(&p.token()).unwrap(), p);
        for bad in ["", "x", "!!!", "NDI"] {
            assert!(Position::from_token(bad).is_err(), "{bad}");
        }
    }
}
