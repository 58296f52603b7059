//! What crosses a step pod's boundary: the engine packs the step's inputs
//! (input artifacts, the script) as a tar in the step's folder, the pod's
//! `argon emissary init` fetches it, and `argon emissary run` sends back a
//! tar of the paths the step hands over plus its outcome (`outcome.json`:
//! exit code, `outputs.result`, the last stderr line), which the engine
//! unpacks under the step's `fs` folder, where the container executor
//! puts its outputs too.
//!
//! Both routes sit on the engine's API outside its Bearer-token check:
//! each request carries the step's own token, an HMAC of the workflow uid
//! and node id under a key kept in the state dir, and is accepted only
//! while the engine runs (or waits on) that step. A token that leaked from
//! a pod spec opens nothing once its step is over.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::executor::relative;

/// The most bytes a step sends back (outputs and outcome): as much as the
/// container executor copies out.
const OUTPUT_LIMIT: u64 = crate::executor::container::OUTPUT_LIMIT as u64;

/// The file of the step's outcome in the outputs tar.
pub const OUTCOME_FILE: &str = "outcome.json";

/// The tar of a step's inputs in its folder.
pub const INPUTS_TAR: &str = ".inputs.tar";

/// How a step's main container ended, as its emissary saw it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The command's exit code (128 + signal when a signal ended it).
    pub exit_code: i32,
    /// Stdout, capped at the executor's result limit, without its final newline.
    pub result: String,
    /// The last non-empty line on stderr.
    pub last_stderr: String,
    /// Why the command did not run (not found, not executable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The steps' transfers: their tokens and which steps may transfer now.
pub struct Transfers {
    key: Vec<u8>,
    state_dir: PathBuf,
    active: Mutex<HashSet<(String, String)>>,
}

impl Transfers {
    /// The transfers of an engine on `state_dir`; the key is read from
    /// `kubernetes-step-key` there, or made and written (mode 0600).
    pub fn open(state_dir: &Path) -> Result<Transfers, String> {
        let file = state_dir.join("kubernetes-step-key");
        let key = match std::fs::read(&file) {
            Ok(k) if k.len() >= 32 => k,
            _ => {
                // Two v4 UUIDs are 244 bits from the OS's random source
                // (uuid uses getrandom), with no extra dependency.
                let key: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
                    .iter()
                    .flat_map(|u| u.as_bytes().to_vec())
                    .collect();
                write_private(&file, &key).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                key
            }
        };
        Ok(Transfers {
            key,
            state_dir: state_dir.to_path_buf(),
            active: Mutex::new(HashSet::new()),
        })
    }

    /// The token of one step.
    pub fn token(&self, uid: &str, node: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(uid.as_bytes());
        mac.update(b"/");
        mac.update(node.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Lets the step transfer until the guard is dropped.
    pub fn activate(self: &Arc<Self>, uid: &str, node: &str) -> ActiveStep {
        let id = (uid.to_string(), node.to_string());
        self.active.lock().expect("active steps").insert(id.clone());
        ActiveStep {
            transfers: self.clone(),
            id,
        }
    }

    /// The folder of one step (as the operator names it).
    pub fn step_dir(&self, uid: &str, node: &str) -> PathBuf {
        self.state_dir.join("steps").join(uid).join(node)
    }

    fn check(&self, uid: &str, node: &str, headers: &HeaderMap) -> Result<PathBuf, Refused> {
        let plain = |c: &str| !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\']);
        if !plain(uid) || !plain(node) {
            return Err(Refused(StatusCode::BAD_REQUEST, "bad step id"));
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        let want = self.token(uid, node);
        use subtle::ConstantTimeEq as _;
        if !bool::from(want.as_bytes().ct_eq(given.trim_ascii())) {
            return Err(Refused(StatusCode::UNAUTHORIZED, "this step's token is required"));
        }
        if !self
            .active
            .lock()
            .expect("active steps")
            .contains(&(uid.to_string(), node.to_string()))
        {
            // An engine that restarted takes the step up again soon: the
            // emissary retries.
            return Err(Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine does not run this step now",
            ));
        }
        Ok(self.step_dir(uid, node))
    }

    /// `GET .../inputs` and `PUT .../outputs` under `/api/v1/steps/{uid}/{node}/`.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api/v1/steps/{uid}/{node}/inputs", get(inputs))
            .route("/api/v1/steps/{uid}/{node}/outputs", axum::routing::put(outputs))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(self.clone())
    }
}

/// Why a step's request is refused.
struct Refused(StatusCode, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self.0 {
            // An engine that restarted takes the step up again soon: the emissary retries.
            StatusCode::SERVICE_UNAVAILABLE => (self.0, [(header::RETRY_AFTER, "2")], self.1).into_response(),
            status => (status, self.1).into_response(),
        }
    }
}

/// A step that may transfer; it may no longer once dropped.
pub struct ActiveStep {
    transfers: Arc<Transfers>,
    id: (String, String),
}

impl Drop for ActiveStep {
    fn drop(&mut self) {
        self.transfers.active.lock().expect("active steps").remove(&self.id);
    }
}

fn write_private(file: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(data)?;
    f.sync_all()
}

type Step = UrlPath<(String, String)>;

async fn inputs(State(t): State<Arc<Transfers>>, UrlPath((uid, node)): Step, headers: HeaderMap) -> Response {
    let dir = match t.check(&uid, &node, &headers) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    match tokio::fs::File::open(dir.join(INPUTS_TAR)).await {
        Ok(f) => (
            [(header::CONTENT_TYPE, "application/x-tar")],
            Body::from_stream(tokio_util::io::ReaderStream::new(f)),
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the inputs: {e}"),
        )
            .into_response(),
    }
}

async fn outputs(
    State(t): State<Arc<Transfers>>,
    UrlPath((uid, node)): Step,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let dir = match t.check(&uid, &node, &headers) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    match receive(&dir, body).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err((status, message)) => (status, message).into_response(),
    }
}

/// Writes the body to a file (bounded memory), then unpacks the outcome and
/// the `fs/` entries into the step's folder, refusing anything else.
async fn receive(dir: &Path, body: Body) -> Result<(), (StatusCode, String)> {
    use tokio::io::AsyncWriteExt;
    let internal = |e: std::io::Error| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store the outputs: {e}"),
        )
    };
    tokio::fs::create_dir_all(dir).await.map_err(internal)?;
    let tar_file = dir.join(".outputs.tar");
    let mut file = tokio::fs::File::create(&tar_file).await.map_err(internal)?;
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| (StatusCode::BAD_REQUEST, format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > OUTPUT_LIMIT {
            drop(file);
            let _ = tokio::fs::remove_file(&tar_file).await;
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the outputs are larger than {} MiB", OUTPUT_LIMIT >> 20),
            ));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    drop(file);
    let into = dir.to_path_buf();
    let packed = tar_file.clone();
    let res = tokio::task::spawn_blocking(move || unpack(&packed, &into))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let _ = tokio::fs::remove_file(&tar_file).await;
    res.map_err(|e| (StatusCode::BAD_REQUEST, e))
}

fn unpack(tar_file: &Path, dir: &Path) -> Result<(), String> {
    let file = std::fs::File::open(tar_file).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    archive.set_preserve_permissions(false);
    archive.set_overwrite(true);
    let mut outcome = false;
    for entry in archive.entries().map_err(|e| format!("not a tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("not a tar: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let name = path.to_string_lossy();
        let allowed = name == OUTCOME_FILE || name.starts_with("fs/");
        if !allowed || relative(&name) != path {
            return Err(format!("unexpected entry {name} in the outputs"));
        }
        outcome |= name == OUTCOME_FILE;
        // unpack_in refuses entries that would land outside `dir`.
        entry.unpack_in(dir).map_err(|e| format!("cannot unpack {name}: {e}"))?;
    }
    if !outcome {
        return Err(format!("the outputs have no {OUTCOME_FILE}"));
    }
    Ok(())
}

/// The step's outcome as its emissary sent it, if it did.
pub fn read_outcome(step_dir: &Path) -> Option<Result<Outcome, String>> {
    let text = std::fs::read(step_dir.join(OUTCOME_FILE)).ok()?;
    Some(serde_json::from_slice(&text).map_err(|e| format!("the step's {OUTCOME_FILE} is not valid: {e}")))
}
