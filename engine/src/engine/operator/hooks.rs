//! Exit hooks of steps and tasks (`onExit`, `hooks.exit`): a template call
//! run after the step's or task's node finishes.

use std::collections::BTreeMap;

use argon_crds::workflow::{Arguments, NodeStatus};

use super::expand::substitute_args;
use super::nodes::record;
use super::{Call, Ctx, Scope};
use crate::expr::Vars;

impl Ctx {
    /// Runs a step's or task's exit hook (`onExit`, `hooks.exit`) after its
    /// node. `own` is `("steps" | "tasks", NAME)`: the hook sees its step's
    /// own results as `{{steps.NAME.outputs...}}` (or `tasks.`), which the
    /// step itself could not.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_exit_hook(
        &self,
        own: (&str, &str),
        scope: &Scope,
        on_exit: Option<&str>,
        hooks: &BTreeMap<String, argon_crds::workflow::LifecycleHook>,
        node: &NodeStatus,
        boundary: &str,
        vars: &Vars,
    ) {
        let hook = hooks.get("exit");
        let (template, template_ref, args) = match (hook, on_exit) {
            (Some(h), _) => (h.template.as_deref(), h.template_ref.as_ref(), h.arguments.clone()),
            (None, Some(t)) => (Some(t), None, Arguments::default()),
            (None, None) => return,
        };
        let name = format!("{}.onExit", node.name);
        let mut hvars = vars.clone();
        record(&mut hvars, own.0, own.1, std::slice::from_ref(node), false, None);
        hvars.insert(
            "status".into(),
            node.phase.map(|p| format!("{p:?}")).unwrap_or_default(),
        );
        let args = match substitute_args(&args, &hvars) {
            Ok(a) => a,
            Err(e) => {
                self.error_node(&name, &name, Some(&node.id), Some(boundary), &e);
                return;
            }
        };
        match self.resolve(scope, template, template_ref, None).await {
            Ok(resolved) => {
                self.execute(Call {
                    name: name.clone(),
                    display: format!("{}.onExit", node.display_name.clone().unwrap_or_default()),
                    boundary: Some(boundary.to_string()),
                    parent: Some(node.id.clone()),
                    resolved,
                    args,
                })
                .await;
            }
            Err(e) => {
                self.error_node(&name, &name, Some(&node.id), Some(boundary), &e);
            }
        }
    }
}
