//! The engine's store, SQLite under the state dir (WAL mode): workflows
//! (metadata, spec and status without nodes), their nodes one row each, step
//! logs, WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows, and
//! the idempotency keys of submissions. It is the source of truth: a
//! restarted engine reads its running workflows back from here.

use std::path::Path;
use std::sync::Mutex;

use argon_crds::workflow::{NodeStatus, Workflow};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, Result};
use argon_client::TemplateKind;

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
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workflows (
    uid TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    phase TEXT NOT NULL,
    finished_at TEXT,
    doc TEXT NOT NULL,
    UNIQUE (namespace, name)
);
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
        conn.execute_batch(SCHEMA).db()?;
        Ok(Store { conn: Mutex::new(conn) })
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
        tx.execute(
            "INSERT INTO workflows (uid, namespace, name, created_at, phase, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                uid,
                wf.metadata.namespace.clone().unwrap_or_default(),
                wf.metadata.name.clone().unwrap_or_default(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                phase_of(wf),
                doc
            ],
        )
        .db()?;
        if let Some(key) = idempotency_key {
            tx.execute("INSERT INTO idempotency (key, uid) VALUES (?1, ?2)", params![key, uid])
                .db()?;
        }
        tx.commit().db()?;
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
        self.conn()
            .execute(
                "UPDATE workflows SET phase = ?2, finished_at = ?3, doc = ?4 WHERE uid = ?1",
                params![
                    wf.metadata.uid.clone().unwrap_or_default(),
                    phase_of(wf),
                    finished,
                    workflow_doc(wf)?
                ],
            )
            .db()?;
        Ok(())
    }

    /// Saves one node.
    pub fn put_node(&self, uid: &str, node: &NodeStatus) -> Result<()> {
        self.conn().execute(
            "INSERT INTO nodes (uid, id, doc) VALUES (?1, ?2, ?3) ON CONFLICT (uid, id) DO UPDATE SET doc = excluded.doc",
            params![uid, node.id, serde_json::to_string(node)?],
        ).db()?;
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

    /// Workflows (without nodes), newest first, in `namespace` (all when empty).
    pub fn list(&self, namespace: &str) -> Result<Vec<WorkflowRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT uid, namespace, name, phase, doc FROM workflows WHERE (?1 OR namespace = ?2) \
             ORDER BY created_at DESC, rowid DESC",
            )
            .db()?;
        let rows = stmt
            .query_map(params![namespace.is_empty(), namespace], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .db()?;
        let mut out = Vec::new();
        for row in rows {
            let (uid, namespace, name, phase, doc) = row.db()?;
            out.push(WorkflowRow {
                uid,
                namespace,
                name,
                phase,
                doc: serde_json::from_str(&doc)?,
            });
        }
        Ok(out)
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
        tx.execute("DELETE FROM workflows WHERE uid = ?1", [uid]).db()?;
        tx.execute("DELETE FROM nodes WHERE uid = ?1", [uid]).db()?;
        tx.execute("DELETE FROM logs WHERE uid = ?1", [uid]).db()?;
        tx.execute("DELETE FROM idempotency WHERE uid = ?1", [uid]).db()?;
        tx.commit().db()?;
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
