//! A workflow while its operator runs: the workflow with its nodes in
//! memory, written through to the store on every change, its control state
//! (suspended, shutting down) and the tokens that kill its steps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use argon_crds::workflow::{NodeStatus, NodeType, ShutdownStrategy, Workflow, WorkflowSpec};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Control;
use crate::store::Store;

pub(crate) struct Run {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    wf: Mutex<Workflow>,
    control: watch::Sender<Control>,
    version: watch::Sender<u64>,
    /// Cancels the steps of the main templates (stop, terminate, deadline).
    pub main_cancel: CancellationToken,
    /// Cancels the exit handler's steps too (terminate).
    pub exit_cancel: CancellationToken,
    deleted: AtomicBool,
    /// WorkflowTemplate specs resolved for templateRefs, by (name, cluster scope).
    pub refs: Mutex<HashMap<(String, bool), Arc<WorkflowSpec>>>,
    /// `workflow.outputs.parameters.*` set so far.
    pub global_outputs: Mutex<Vec<(String, String)>>,
}

impl Run {
    pub fn new(wf: Workflow) -> Run {
        let control = Control {
            suspended: wf.spec.suspend.unwrap_or(false),
            shutdown: wf.spec.shutdown.map(|s| (s, format!("Stopped with strategy '{s:?}'"))),
            resume_seq: 0,
            resumed: Default::default(),
        };
        let main_cancel = CancellationToken::new();
        let exit_cancel = CancellationToken::new();
        match wf.spec.shutdown {
            Some(ShutdownStrategy::Terminate) => {
                main_cancel.cancel();
                exit_cancel.cancel();
            }
            Some(ShutdownStrategy::Stop) => main_cancel.cancel(),
            None => {}
        }
        let global_outputs = wf
            .status
            .as_ref()
            .and_then(|s| s.outputs.as_ref())
            .map(|o| {
                o.parameters
                    .iter()
                    .map(|p| (p.name.clone(), p.value_or_default().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Run {
            uid: wf.metadata.uid.clone().unwrap_or_default(),
            namespace: wf.metadata.namespace.clone().unwrap_or_default(),
            name: wf.metadata.name.clone().unwrap_or_default(),
            wf: Mutex::new(wf),
            control: watch::channel(control).0,
            version: watch::channel(0).0,
            main_cancel,
            exit_cancel,
            deleted: AtomicBool::new(false),
            refs: Mutex::new(HashMap::new()),
            global_outputs: Mutex::new(global_outputs),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Workflow> {
        self.wf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the workflow as it is now.
    pub fn snapshot(&self) -> Workflow {
        self.lock().clone()
    }

    /// Runs `f` on the workflow (not to be held across awaits).
    pub fn with<R>(&self, f: impl FnOnce(&Workflow) -> R) -> R {
        f(&self.lock())
    }

    /// Signals watchers that the workflow changed.
    pub fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn control(&self) -> watch::Receiver<Control> {
        self.control.subscribe()
    }

    pub fn control_now(&self) -> Control {
        self.control.borrow().clone()
    }

    pub fn deleted(&self) {
        self.deleted.store(true, Ordering::SeqCst);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    pub fn set_suspended(&self, suspended: bool) {
        self.control.send_modify(|c| c.suspended = suspended);
        self.lock().spec.suspend = suspended.then_some(true);
        self.bump();
    }

    /// Resumes the workflow and its suspended nodes.
    pub fn resume(&self) {
        let waiting: Vec<String> = {
            let mut wf = self.lock();
            wf.spec.suspend = None;
            wf.status
                .iter()
                .flat_map(|s| s.nodes.values())
                .filter(|n| n.type_ == Some(NodeType::Suspend) && !n.phase.is_some_and(|p| p.is_fulfilled()))
                .map(|n| n.id.clone())
                .collect()
        };
        self.control.send_modify(|c| {
            c.suspended = false;
            c.resume_seq += 1;
            c.resumed.extend(waiting);
        });
        self.bump();
    }

    /// Stops starting steps and kills the running ones; `Terminate` also
    /// skips the exit handler.
    pub fn shutdown(&self, strategy: ShutdownStrategy, message: String) {
        self.control.send_modify(|c| {
            if c.shutdown.is_none() || strategy == ShutdownStrategy::Terminate {
                c.shutdown = Some((strategy, message));
            }
            c.suspended = false;
        });
        {
            let mut wf = self.lock();
            wf.spec.shutdown = Some(strategy);
            wf.spec.suspend = None;
        }
        self.main_cancel.cancel();
        if strategy == ShutdownStrategy::Terminate {
            self.exit_cancel.cancel();
        }
        self.bump();
    }

    /// Stops the workflow because its deadline passed: no new steps, running
    /// ones killed, the exit handler still runs.
    pub fn expire(&self, message: String) {
        self.control.send_modify(|c| {
            if c.shutdown.is_none() {
                c.shutdown = Some((ShutdownStrategy::Stop, message));
            }
            c.suspended = false;
        });
        self.main_cancel.cancel();
        self.bump();
    }

    /// Saves the workflow's row (not its nodes).
    pub fn persist_workflow(&self, store: &Store) {
        let wf = self.lock();
        if self.is_deleted() {
            return;
        }
        if let Err(e) = store.update_workflow(&wf) {
            tracing::error!(workflow = %self.name, error = %e, "cannot save workflow");
        }
    }

    /// Changes the workflow (status, spec) and saves its row.
    pub fn update_workflow(&self, store: &Store, f: impl FnOnce(&mut Workflow)) {
        {
            let mut wf = self.lock();
            f(&mut wf);
            if !self.is_deleted()
                && let Err(e) = store.update_workflow(&wf)
            {
                tracing::error!(workflow = %self.name, error = %e, "cannot save workflow");
            }
        }
        self.bump();
    }

    /// The node `id`, if it exists.
    pub fn node(&self, id: &str) -> Option<NodeStatus> {
        self.lock().status.as_ref().and_then(|s| s.nodes.get(id).cloned())
    }

    /// Creates or changes the node `id` and saves it; returns it.
    pub fn update_node(&self, store: &Store, id: &str, f: impl FnOnce(&mut NodeStatus)) -> NodeStatus {
        let node = {
            let mut wf = self.lock();
            let status = wf.status.get_or_insert_with(Default::default);
            let node = status.nodes.entry(id.to_string()).or_insert_with(|| NodeStatus {
                id: id.to_string(),
                ..Default::default()
            });
            f(node);
            let node = node.clone();
            // Written under the lock so two updates of one node reach the store in order.
            if !self.is_deleted()
                && let Err(e) = store.put_node(&self.uid, &node)
            {
                tracing::error!(workflow = %self.name, node = %id, error = %e, "cannot save node");
            }
            node
        };
        self.bump();
        node
    }

    /// Records `child` as a child of `parent`, in memory: the parent's row is
    /// saved with its next change (at the latest when it finishes), and a
    /// resumed operator records the children again as it walks the tree.
    /// Saving a node with a thousand children for each child would write
    /// quadratic amounts.
    pub fn add_child(&self, _store: &Store, parent: &str, child: &str) {
        {
            let mut wf = self.lock();
            let status = wf.status.get_or_insert_with(Default::default);
            let node = status.nodes.entry(parent.to_string()).or_insert_with(|| NodeStatus {
                id: parent.to_string(),
                ..Default::default()
            });
            if node.children.iter().any(|c| c == child) {
                return;
            }
            node.children.push(child.to_string());
        }
        self.bump();
    }

    /// The workflow's phase, without copying it.
    pub fn phase(&self) -> Option<argon_crds::workflow::WorkflowPhase> {
        self.lock().status.as_ref().and_then(|s| s.phase)
    }
}
